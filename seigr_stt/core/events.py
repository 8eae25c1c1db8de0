"""Events the core hands to its adapter: small frozen dataclasses (architecture habit 4)."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

__all__ = [
    "DatagramReceived",
    "Event",
    "HandshakeAborted",
    "KeyRotated",
    "MessageReceived",
    "PathChanged",
    "PathDegraded",
    "PathsAnnounced",
    "PeerAddressChanged",
    "PongReceived",
    "SessionClosed",
    "SessionEstablished",
    "StreamDataReceived",
    "StreamOpened",
    "StreamReleased",
    "StreamReset",
]


@dataclass(frozen=True, slots=True)
class SessionEstablished:
    """A handshake completed and the session's keys are confirmed on this side."""

    session_id: bytes
    peer_node_id: bytes
    addr: Hashable
    initiator: bool
    handle: int | None  # the value connect() returned, on the initiator


@dataclass(frozen=True, slots=True)
class HandshakeAborted:
    """An initiated handshake gave up; ``timeout`` tells a timeout from a refusal (or the
    transport closing). ``handle`` is what ``Endpoint.connect`` returned."""

    handle: int
    reason: str
    timeout: bool
    #: The close code of a responder that refused the handshake (``CloseCode.SERVER_FULL``), or
    #: None.
    code: int | None = None


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """A complete application message arrived on message channel ``channel``.

    ``credit`` is the flow-control credit the adapter returns with
    ``Session.consume_message`` once the application has taken the message (§16.3).
    """

    session_id: bytes
    channel: int
    data: bytes
    credit: int = 0


@dataclass(frozen=True, slots=True)
class PongReceived:
    """The peer answered the PING that ``Session.ping`` returned ``token`` for."""

    session_id: bytes
    token: int


@dataclass(frozen=True, slots=True)
class StreamOpened:
    """The peer opened byte stream ``stream_id``."""

    session_id: bytes
    stream_id: int


@dataclass(frozen=True, slots=True)
class StreamReleased:
    """Byte stream ``stream_id`` is finished in both directions (or reset) and forgotten by
    the core: the adapter drops its own state for it (what the application already holds of
    it stays readable)."""

    session_id: bytes
    stream_id: int


@dataclass(frozen=True, slots=True)
class StreamDataReceived:
    """Bytes of byte stream ``stream_id``, in order; ``fin`` when the peer finished it.

    The adapter returns credit with ``Session.consume_stream`` as the application reads.
    """

    session_id: bytes
    stream_id: int
    data: bytes
    fin: bool


# Built once per record of a byte stream received: the slots are filled directly rather than
# through the frozen dataclass's __init__ (an object.__setattr__ per field). Same object.
_new_object = object.__new__
_SET_SESSION_ID = StreamDataReceived.__dict__["session_id"].__set__
_SET_STREAM_ID = StreamDataReceived.__dict__["stream_id"].__set__
_SET_DATA = StreamDataReceived.__dict__["data"].__set__
_SET_FIN = StreamDataReceived.__dict__["fin"].__set__


def stream_data_received(
    session_id: bytes, stream_id: int, data: bytes, fin: bool
) -> StreamDataReceived:
    """``StreamDataReceived(session_id, stream_id, data, fin)``, faster (the receive path's)."""
    event: StreamDataReceived = _new_object(StreamDataReceived)
    _SET_SESSION_ID(event, session_id)
    _SET_STREAM_ID(event, stream_id)
    _SET_DATA(event, data)
    _SET_FIN(event, fin)
    return event


@dataclass(frozen=True, slots=True)
class StreamReset:
    """Stream ``stream_id`` was aborted with ``code``: by the peer's RESET_STREAM (``sending``
    False: no more data will arrive) or STOP_SENDING (``sending`` True: we must stop writing)."""

    session_id: bytes
    stream_id: int
    code: int
    sending: bool


@dataclass(frozen=True, slots=True)
class DatagramReceived:
    """An unreliable application datagram arrived."""

    session_id: bytes
    data: bytes


@dataclass(frozen=True, slots=True)
class KeyRotated:
    """Both directions of the session now use ``key_version``, confirmed by the peer.
    ``fresh_dh``: this version completes a DH ratchet (§7.1), so its keys hold a fresh
    Diffie-Hellman secret that no earlier state of the session can derive."""

    session_id: bytes
    key_version: int
    fresh_dh: bool = False


@dataclass(frozen=True, slots=True)
class PeerAddressChanged:
    """An authenticated record came from a new address; the session now sends there."""

    session_id: bytes
    old: Hashable
    new: Hashable


@dataclass(frozen=True, slots=True)
class PathChanged:
    """The session now sends by another path (§18): a validated address on the same transport
    or another one. ``transport`` is the new path's kind (``"udp"``, ``"websocket"``,
    ``"relay"``) and ``old_transport`` the old one's; ``addr``/``old_addr`` are the adapter's
    addresses of each."""

    session_id: bytes
    old_addr: Hashable
    addr: Hashable
    old_transport: str
    transport: str


@dataclass(frozen=True, slots=True)
class PathDegraded:
    """The session's path stopped answering (``PATH_DEGRADED_PTO_COUNT`` probe timeouts in a
    row, §18): the session probes the other paths it knows; the adapter may open one more
    (a WebSocket to a URL the peer announced) and give it with ``Session.probe_path``."""

    session_id: bytes
    addr: Hashable
    transport: str


@dataclass(frozen=True, slots=True)
class PathsAnnounced:
    """The peer told us its other addresses (a PATHS frame, §18): UDP ``(ip, port)`` pairs and
    WebSocket URLs. The adapter may probe them (``Session.probe_path``)."""

    session_id: bytes
    udp: tuple[tuple[str, int], ...]
    websocket: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SessionClosed:
    """The session is closed; its keys are erased. ``by_peer`` when the peer sent CLOSE."""

    session_id: bytes
    code: int
    reason: str
    by_peer: bool


Event = (
    SessionEstablished
    | HandshakeAborted
    | MessageReceived
    | DatagramReceived
    | KeyRotated
    | PeerAddressChanged
    | PathChanged
    | PathDegraded
    | PathsAnnounced
    | SessionClosed
    | PongReceived
    | StreamOpened
    | StreamDataReceived
    | StreamReset
    | StreamReleased
)
