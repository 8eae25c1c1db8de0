"""``STTSession``: one session as the application sees it (api.md, chapter 17).

:class:`STTSession` is the public interface, with what every session shares: identity,
statistics (the protocol's and what the application records), closing. Two kinds implement it:
:class:`~seigr_stt.aio.peer.PeerSession` (made by a handshake, carried by a transport: what
``connect_udp``, ``connect_websocket`` and server-mode nodes give you) and
:class:`~seigr_stt.aio.manual.ManualSession` (made by ``SessionManager.create_session``: tracked
and counted, with no peer to talk to; sending is refused).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, fields
from types import TracebackType
from typing import Any, Self

from seigr_stt.aio.inbox import check_wait_timeout
from seigr_stt.aio.stats import SessionStats
from seigr_stt.aio.streams import STTStream
from seigr_stt.constants import CloseCode, SessionState
from seigr_stt.core.stats import SessionCounters, SessionSnapshot
from seigr_stt.exceptions import ConfigError, SessionClosedError, as_close_code
from seigr_stt.logs import format_addr

__all__ = [
    "EVENT_KINDS",
    "SESSION_EVENT_KINDS",
    "NodeEvent",
    "ReceivedPacket",
    "STTSession",
    "SessionLog",
    "call_listeners",
]

_log = logging.getLogger("seigr_stt.session")


#: The kinds :meth:`STTNode.on` accepts.
EVENT_KINDS = (
    "session_established",
    "session_closed",
    "key_rotated",
    "peer_address_changed",
    "path_changed",
)
#: The kinds :meth:`STTSession.on` accepts (a session handed out is already established).
SESSION_EVENT_KINDS = ("session_closed", "key_rotated", "peer_address_changed", "path_changed")


@dataclass(frozen=True, slots=True)
class ReceivedPacket:
    """One application message as :meth:`STTNode.receive` yields it."""

    session_id: bytes
    stream_id: int
    data: bytes
    peer_node_id: bytes
    transport: str
    received_at: float


def _packet_maker() -> Callable[[bytes, int, bytes, bytes, str, float], ReceivedPacket]:
    """A fast maker of :class:`ReceivedPacket` for the receive path, one call per message.

    A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``: about
    1.2 µs per packet with keywords on this machine, a quarter of the receiver's CPU per 64 B
    message. The slots' own descriptors set the same fields in about 0.4 µs. The result is the
    same frozen object (equal, hashed and refusing assignment like any other)."""
    names = tuple(f.name for f in fields(ReceivedPacket))
    assert names == (
        "session_id",
        "stream_id",
        "data",
        "peer_node_id",
        "transport",
        "received_at",
    ), "make_packet sets the fields in this order"
    new = ReceivedPacket.__new__
    s_id, s_stream, s_data, s_peer, s_transport, s_at = (
        getattr(ReceivedPacket, name).__set__ for name in names
    )

    def make_packet(
        session_id: bytes,
        stream_id: int,
        data: bytes,
        peer_node_id: bytes,
        transport: str,
        received_at: float,
    ) -> ReceivedPacket:
        packet = new(ReceivedPacket)
        s_id(packet, session_id)
        s_stream(packet, stream_id)
        s_data(packet, data)
        s_peer(packet, peer_node_id)
        s_transport(packet, transport)
        s_at(packet, received_at)
        return packet

    return make_packet


#: ``make_packet(session_id, stream_id, data, peer_node_id, transport, received_at)``: a
#: :class:`ReceivedPacket`, made faster than by its ``__init__`` (see :func:`_packet_maker`).
make_packet = _packet_maker()


@dataclass(frozen=True, slots=True)
class NodeEvent:
    """What :meth:`STTNode.on` listeners receive.

    ``kind`` is one of ``"session_established"``, ``"session_closed"`` (``code``, ``reason``,
    ``by_peer`` set), ``"key_rotated"`` (``key_version`` set, and ``fresh_dh`` when the version
    completes a DH ratchet), ``"peer_address_changed"`` (``old_address``, ``new_address`` set)
    and ``"path_changed"`` (the session moved to another path, docs/sessions.md: ``transport``
    is the new path's ``"udp"``, ``"websocket"`` or ``"relay"``, ``old_transport`` the old one's,
    and ``old_address``, ``new_address`` are set).
    """

    kind: str
    session: STTSession
    code: int | None = None
    reason: str = ""
    by_peer: bool = False
    key_version: int | None = None
    old_address: Any = None
    new_address: Any = None
    fresh_dh: bool = False
    transport: str | None = None
    old_transport: str | None = None


Listener = Callable[[NodeEvent], Any]


def call_listeners(listeners: list[Listener], event: NodeEvent, logger: logging.Logger) -> None:
    """Call each listener with ``event``; a coroutine's result runs as a task. What a listener
    raises is logged on ``logger``, never raised to the caller."""
    for listener in list(listeners):
        try:
            result = listener(event)
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                task.add_done_callback(lambda t: _listener_task_done(t, logger))
        except Exception:
            logger.exception("listener for %s raised", event.kind)


def _listener_task_done(task: asyncio.Future[Any], logger: logging.Logger) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("listener task raised", exc_info=task.exception())


class EventSource:
    """``once()`` and ``wait_for()`` on top of a class's ``on()``/``off()`` (the node and each
    session), as pywebtransport's event emitter offers them."""

    __slots__ = ()

    def on(self, kind: str, listener: Listener) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def off(self, kind: str, listener: Listener) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def once(self, kind: str, listener: Listener) -> None:
        """Call ``listener(NodeEvent)`` on the next event of ``kind`` only (as :meth:`on`: a
        coroutine function runs as a task). It cannot be removed with :meth:`off` before it
        fires; use :meth:`wait_for` in a task you can cancel for that."""

        def fire(event: NodeEvent) -> Any:
            self.off(kind, fire)
            return listener(event)

        self.on(kind, fire)

    async def wait_for(
        self,
        kind: str,
        *,
        timeout: float | None = None,
        condition: Callable[[NodeEvent], bool] | None = None,
    ) -> NodeEvent:
        """The next event of ``kind`` for which ``condition(event)`` is true (any, without a
        condition). Raises :class:`TimeoutError` after ``timeout`` seconds (None: no limit).
        Cancelling the wait leaves nothing registered. :class:`ConfigError` for an unknown
        kind, as :meth:`on`."""
        limit = check_wait_timeout(timeout)
        if condition is not None and not callable(condition):
            raise TypeError(f"condition must be callable, not {type(condition).__name__}")
        caught: asyncio.Future[NodeEvent] = asyncio.get_running_loop().create_future()

        def catch(event: NodeEvent) -> None:
            if not caught.done() and (condition is None or condition(event)):
                caught.set_result(event)

        self.on(kind, catch)
        try:
            async with asyncio.timeout(limit):
                return await caught
        finally:
            self.off(kind, catch)


class SessionLog(logging.LoggerAdapter[logging.Logger]):
    """Prefixes a session's log lines with its short id, and sets the structured fields
    ``stt_session``, ``stt_peer``, ``stt_transport`` and ``stt_addr`` on each record
    (``seigr_stt.logs``; read when the record is made, so ``stt_addr`` follows the peer)."""

    def __init__(
        self,
        logger: logging.Logger,
        extra: Mapping[str, object] | None = None,
        session: STTSession | None = None,
    ) -> None:
        super().__init__(logger, extra)
        self._session = session

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        """Prefix ``msg`` with the session's short id; add the session's fields to ``extra``."""
        session = self._session
        if session is not None:
            structured: dict[str, object] = {
                "stt_session": session.session_id.hex(),
                "stt_peer": session.peer_node_id.hex()[:16],
                "stt_transport": session.transport_type,
                "stt_addr": format_addr(session.peer_addr),
            }
            structured.update(kwargs.get("extra") or {})
            kwargs["extra"] = structured
        return f"[{self.extra['sid'] if self.extra else '?'}] {msg}", kwargs


class STTSession(EventSource, ABC):
    """One session as the application sees it; see the module docstring."""

    # Slots: an idle session should cost little memory (docs/performance.md); "__dict__" keeps
    # an application free to set its own attributes on a session (made only when it does).
    __slots__ = (
        "__dict__",
        "__weakref__",
        "_capabilities",
        "_closed",
        "_ended",
        "_listeners",
        "_log",
        "_logger",
        "_on_closed",
        "_peer_node_id",
        "_recorded",
        "_recorded_at",
        "_session_id",
        "_transport_type",
        "close_code",
        "close_reason",
        "closed_at",
        "closed_by_peer",
        "created_at",
        "last_key_rotation",
        "ready_at",
    )

    def __init__(
        self,
        session_id: bytes,
        peer_node_id: bytes,
        *,
        capabilities: int,
        transport_type: str | None,
        created_at: float,
        logger: logging.Logger | None = None,
        on_closed: Callable[[STTSession], None] | None = None,
    ) -> None:
        self._session_id = session_id
        self._peer_node_id = peer_node_id
        self._capabilities = capabilities
        self._transport_type = transport_type
        self._on_closed = on_closed
        self.created_at = created_at
        self.last_key_rotation = created_at
        #: Frames the application recorded itself (``record_frame_sent`` and friends); made
        #: on the first record.
        self._recorded: SessionCounters | None = None
        self._recorded_at: float | None = None
        self._closed: asyncio.Future[None] | None = None
        self._ended = False
        #: How the session ended: a :class:`CloseCode` when it is one of the protocol's codes
        #: (an application's own code stays an int); None while open.
        self.close_code: int | None = None
        self.close_reason = ""
        #: True when the peer closed the session (False while open or when this side did).
        self.closed_by_peer = False
        #: Unix time the session became ready (ACTIVE): a session is handed out ready.
        self.ready_at: float | None = created_at
        #: Unix time the session closed; None while open.
        self.closed_at: float | None = None
        self._listeners: dict[str, list[Listener]] | None = None  # made by the first on()
        self._logger = logger or _log
        self._log: SessionLog | None = None

    @property
    def log(self) -> SessionLog:
        """This session's logger adapter: the node's logger, with the short session id."""
        log = self._log
        if log is None:
            log = self._log = SessionLog(self._logger, {"sid": self._session_id.hex()[:8]}, self)
        return log

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(id={self._session_id.hex()}, state={self.state.name}, "
            f"transport={self._transport_type}, key_version={self.key_version})"
        )

    # -- identity and state -------------------------------------------------------------------
    @property
    def session_id(self) -> bytes:
        """8 bytes, equal on both peers (initiator index || responder index)."""
        return self._session_id

    @property
    def peer_node_id(self) -> bytes:
        """The peer's 32-byte node id, authenticated by the handshake."""
        return self._peer_node_id

    @property
    def capabilities(self) -> int:
        """The capability bits the peer advertised in the handshake."""
        return self._capabilities

    @property
    def transport_type(self) -> str | None:
        """``"udp"``, ``"websocket"``, ``"relay"`` (the path in use: it follows every
        ``path_changed``), or None for a manual session."""
        return self._transport_type

    @property
    def path(self) -> tuple[str | None, Any]:
        """The path in use, ``(transport, address)`` (docs/sessions.md, "Paths"); a manual
        session has none: ``(None, None)``."""
        return self._transport_type, None

    @property
    @abstractmethod
    def state(self) -> SessionState:
        """HANDSHAKE, ACTIVE, CLOSING or CLOSED (equal to the ``STT_SESSION_STATE_*`` ints)."""

    def is_active(self) -> bool:
        """True while the session can carry data."""
        return self.state == SessionState.ACTIVE

    @property
    def is_ready(self) -> bool:
        """True while the session is ACTIVE (the property form of :meth:`is_active`)."""
        return self.state == SessionState.ACTIVE

    @property
    def is_closed(self) -> bool:
        """True once the session is CLOSED (by either side, a timeout or the node stopping)."""
        return self.state == SessionState.CLOSED

    async def ready(self, *, timeout: float | None = None) -> None:
        """Return once the session is ready to carry data.

        ``connect_*`` and server-mode nodes hand sessions out already ACTIVE, so this returns at
        once on an open session; it exists for code written against pywebtransport's
        ``await session.ready(timeout=...)``. Raises :class:`SessionClosedError` (with ``code``
        and ``by_peer``) when the session is closing or closed, and :class:`ConfigError` for a
        ``timeout`` that is not a positive number or None.
        """
        if timeout is not None:
            check_timeout(timeout)
        if self.state != SessionState.ACTIVE:
            raise self._closed_error()

    def _closed_error(self, what: str = "") -> SessionClosedError:
        """The error for using a session that is closing or closed."""
        state = "closed" if self.state == SessionState.CLOSED else "closing"
        return SessionClosedError(
            what or f"session {self._session_id.hex()} is {state}",
            self.close_code,
            self.close_reason,
            self.closed_by_peer,
        )

    @property
    @abstractmethod
    def is_manual(self) -> bool:
        """True for a session made by :meth:`SessionManager.create_session`."""

    @property
    @abstractmethod
    def key_version(self) -> int:
        """The key epoch: 0 at creation, +1 per rotation (equal on both peers)."""

    @property
    @abstractmethod
    def session_key(self) -> bytes:
        """32 bytes of key material of the current epoch; SessionClosedError once closed."""

    @property
    @abstractmethod
    def last_active(self) -> float:
        """Unix time of the last packet sent or received (or recorded)."""

    @property
    def peer_addr(self) -> tuple[str, int] | None:
        """The peer's current ``(host, port)``; None when there is none."""
        return None

    @property
    def rtt(self) -> float | None:
        """Smoothed round-trip time in seconds, once measured."""
        return None

    @property
    def max_datagram_size(self) -> int:
        """Largest payload ``send_datagram`` accepts (0: no datagrams)."""
        return 0

    @abstractmethod
    async def rotate_key(self, timeout: float = 10.0, *, fresh_dh: bool = False) -> bytes:
        """Move both peers to the next key; returns the new :attr:`session_key`.

        Returns once the peer has confirmed the new epoch, so :attr:`key_version` is then equal on
        both sides. The previous key is kept for a short grace period for packets in flight, then
        erased; it cannot be computed from the new one. Raises :class:`KeyRotationError` if the
        peer does not confirm within ``timeout`` and :class:`SessionClosedError` if the session
        closes meanwhile. A manual session advances its local key at once.
        ``fresh_dh=True``: a DH ratchet (docs/protocol.md §7.1), which also mixes in a fresh
        Diffie-Hellman secret, so no earlier state of the session can derive the new key.
        """

    # -- data (a manual session refuses with ProtocolError) -----------------------------------
    @abstractmethod
    async def send(self, data: bytes, stream_id: int = 0) -> None:
        """Send one message reliably and in order on message channel ``stream_id``.

        Same semantics as :meth:`STTNode.send_to_sessions` for this one session: the message
        arrives as one :class:`ReceivedPacket`; waits while more than 4 MiB are unacknowledged.
        Raises :class:`SessionClosedError` when the session is not active,
        :class:`MessageTooLarge` above ``max_message_size``, and :class:`ProtocolError` on a
        manual session.
        """

    @abstractmethod
    async def send_datagram(self, data: bytes) -> None:
        """Send an unreliable, unordered datagram of at most :attr:`max_datagram_size` bytes
        (:class:`MessageTooLarge` above)."""

    @abstractmethod
    def datagrams(self) -> AsyncIterator[bytes]:
        """Datagrams from the peer, until the session closes.

        At most 1024 unread datagrams are held; more are dropped and counted in
        ``get_statistics()["datagrams_dropped"]``.
        """

    @abstractmethod
    async def ping(self, timeout: float = 5.0) -> float:
        """Send a PING and wait for the peer's PONG; returns the round-trip time in seconds.

        Raises :class:`TimeoutError` when no PONG arrives within ``timeout`` and
        :class:`SessionClosedError` when the session is not active.
        """

    @abstractmethod
    async def open_stream(self, *, unidirectional: bool = False) -> STTStream:
        """Open a reliable, ordered, bidirectional byte stream to the peer.

        ``unidirectional=True``: only we send on it (reading it raises :class:`StreamError`);
        the peer's ``incoming_streams()`` yields it at once, and its writes raise
        :class:`StreamError` (docs/streams.md). Raises :class:`StreamError` when the peer's
        limit of concurrent streams is reached and :class:`SessionClosedError` when the session
        is not active. Byte streams are separate from the message channels
        ``send(data, stream_id)`` uses.
        """

    async def create_bidirectional_stream(self) -> STTStream:
        """:meth:`open_stream` under pywebtransport's name."""
        return await self.open_stream()

    async def create_unidirectional_stream(self) -> STTStream:
        """``open_stream(unidirectional=True)`` under pywebtransport's name: a stream only we
        send on."""
        return await self.open_stream(unidirectional=True)

    @abstractmethod
    def incoming_streams(self) -> AsyncIterator[STTStream]:
        """Streams the peer opens, until the session closes."""

    # -- events of this session --------------------------------------------------------------
    def on(self, kind: str, listener: Listener) -> None:
        """Call ``listener(NodeEvent)`` on each event of ``kind`` of this session only.

        ``kind`` is one of :data:`SESSION_EVENT_KINDS` (``"session_closed"``,
        ``"key_rotated"``, ``"peer_address_changed"``); :class:`ConfigError` otherwise. Like
        :meth:`STTNode.on`: a coroutine function runs as a task, exceptions are logged. The
        session's listeners run before the node's.
        """
        if kind not in SESSION_EVENT_KINDS:
            raise ConfigError(
                f"unknown session event kind {kind!r}; expected one of {SESSION_EVENT_KINDS}"
            )
        if not callable(listener):
            raise TypeError(f"listener must be callable, not {type(listener).__name__}")
        if self._listeners is None:
            self._listeners = {}
        self._listeners.setdefault(kind, []).append(listener)

    def off(self, kind: str, listener: Listener) -> None:
        """Stop calling ``listener`` for ``kind`` (added with :meth:`on`); :class:`ConfigError`
        for an unknown kind, :class:`ValueError` when it was not added."""
        if kind not in SESSION_EVENT_KINDS:
            raise ConfigError(
                f"unknown session event kind {kind!r}; expected one of {SESSION_EVENT_KINDS}"
            )
        listeners = self._listeners.get(kind, []) if self._listeners is not None else []
        if listener not in listeners:
            raise ValueError(f"listener {listener!r} is not registered for {kind!r}")
        listeners.remove(listener)

    def _notify(self, event: NodeEvent) -> None:
        """Call this session's listeners of ``event.kind``."""
        listeners = self._listeners.get(event.kind) if self._listeners is not None else None
        if listeners:
            call_listeners(listeners, event, self._logger)

    # -- messages of this session (per-session receive; docs/sessions.md) ---------------------
    @abstractmethod
    async def recv(self, timeout: float | None = None) -> ReceivedPacket:
        """The next message of this session (a :class:`ReceivedPacket`).

        From the first call, or the first ``async for packet in session``, this session's
        messages go only to the session, no longer to ``node.receive()`` (those already waiting
        there move over first, in order). Raises :class:`TimeoutError` after ``timeout`` seconds
        without one (taking nothing) and :class:`SessionClosedError` once the session is closed
        and drained; a manual session raises :class:`ProtocolError` (nothing ever arrives).
        """

    @abstractmethod
    def __aiter__(self) -> AsyncIterator[ReceivedPacket]:
        """``async for packet in session``: this session's messages until it closes, read per
        session as with :meth:`recv`. A cancelled or timed-out ``anext()`` takes nothing and
        leaves the iterator usable."""

    # -- statistics ---------------------------------------------------------------------------
    def _snapshot(self) -> SessionSnapshot | None:
        """The core's figures, for a session that has a core."""
        return None

    def _now_unix(self) -> float:
        return self.created_at

    def stats(self) -> SessionStats:
        """A frozen snapshot of the session's figures (see :class:`SessionStats` for units).
        Counters add what the protocol counted and what the application recorded itself."""
        snap = self._snapshot()
        recorded = self._recorded
        counts = {
            f.name: 0 if recorded is None else getattr(recorded, f.name)
            for f in fields(SessionCounters)
        }
        if snap is not None:
            for name in counts:
                counts[name] += getattr(snap.counters, name)
        until = self.closed_at if self.closed_at is not None else self._now_unix()
        return SessionStats(
            session_id=self._session_id,
            peer_node_id=self._peer_node_id,
            state=SessionState(self.state),
            transport=self._transport_type,
            is_manual=self.is_manual,
            capabilities=self._capabilities,
            created_at=self.created_at,
            ready_at=self.ready_at,
            closed_at=self.closed_at,
            close_code=self.close_code,
            close_reason=self.close_reason,
            closed_by_peer=self.closed_by_peer,
            last_active_at=self.last_active,
            uptime_s=max(until - self.created_at, 0.0),
            rtt_s=self.rtt,
            key_version=self.key_version,
            last_key_rotation_at=self.last_key_rotation,
            active_streams=self._streams_live(),
            streams_opened=counts["streams_opened"],
            bytes_sent=counts["bytes_sent"],
            bytes_received=counts["bytes_received"],
            packets_sent=counts["packets_sent"],
            packets_received=counts["packets_received"],
            packets_lost=counts["packets_lost"],
            retransmitted_bytes=counts["retransmitted_bytes"],
            messages_sent=counts["messages_sent"],
            messages_received=counts["messages_received"],
            datagrams_sent=counts["datagrams_sent"],
            datagrams_received=counts["datagrams_received"],
            datagrams_dropped=self._datagrams_dropped(),
            send_errors=counts["send_errors"],
            receive_errors=counts["receive_errors"],
            replays_dropped=counts["replays_dropped"],
            auth_failures=counts["auth_failures"],
            epoch_drops=counts["epoch_drops"],
            cwnd_bytes=snap.cwnd if snap is not None else None,
            bytes_in_flight=snap.bytes_in_flight if snap is not None else None,
        )

    def get_statistics(self) -> dict[str, Any]:
        """The chapter's dict of the session's figures, built from :meth:`stats` (which has
        the same figures typed, with units in the names). ``state`` is an int here."""
        st = self.stats()
        return {
            "session_id": st.session_id.hex(),
            "peer_node_id": st.peer_node_id.hex(),
            "state": int(st.state),
            "created_at": st.created_at,
            "uptime": st.uptime_s,
            "last_active": st.last_active_at,
            "bytes_sent": st.bytes_sent,
            "bytes_received": st.bytes_received,
            "packets_sent": st.packets_sent,
            "packets_received": st.packets_received,
            "send_errors": st.send_errors,
            "receive_errors": st.receive_errors,
            "messages_sent": st.messages_sent,
            "messages_received": st.messages_received,
            "packets_lost": st.packets_lost,
            "retransmitted_bytes": st.retransmitted_bytes,
            "streams_opened": st.streams_opened,
            "streams_live": st.active_streams,
            "cwnd": st.cwnd_bytes,
            "bytes_in_flight": st.bytes_in_flight,
            "datagrams_sent": st.datagrams_sent,
            "datagrams_received": st.datagrams_received,
            "datagrams_dropped": st.datagrams_dropped,
            "key_version": st.key_version,
            "last_key_rotation": st.last_key_rotation_at,
            "rtt": st.rtt_s,
            "replays_dropped": st.replays_dropped,
            "auth_failures": st.auth_failures,
            "epoch_drops": st.epoch_drops,
            "capabilities": st.capabilities,
            "transport": st.transport,
            "close_code": st.close_code,
            "close_reason": st.close_reason,
            "ready_at": st.ready_at,
            "closed_at": st.closed_at,
        }

    def _datagrams_dropped(self) -> int:
        return 0

    def _streams_live(self) -> int:
        """Byte streams this handle still tracks (not yet finished both ways)."""
        return 0

    def _recorded_activity(self) -> None:
        """The application recorded traffic (a manual session's only activity)."""
        self._recorded_at = self._now_unix()

    def _counters(self) -> SessionCounters:
        recorded = self._recorded
        if recorded is None:
            recorded = self._recorded = SessionCounters()
        return recorded

    def record_frame_sent(self, payload_size: int) -> None:
        """Count one frame of ``payload_size`` bytes as sent (the node counts its own traffic;
        this adds what the application wants counted too)."""
        recorded = self._counters()
        recorded.packets_sent += 1
        recorded.bytes_sent += payload_size
        self._recorded_activity()

    def record_frame_received(self, payload_size: int) -> None:
        """Count one frame of ``payload_size`` bytes as received."""
        recorded = self._counters()
        recorded.packets_received += 1
        recorded.bytes_received += payload_size
        self._recorded_activity()

    def record_send_error(self) -> None:
        """Count one send error."""
        self._counters().send_errors += 1

    def record_receive_error(self) -> None:
        """Count one receive error."""
        self._counters().receive_errors += 1

    # -- closing ------------------------------------------------------------------------------
    @staticmethod
    def _check_close_code(code: int, reason: str = "") -> None:
        if isinstance(code, bool) or not isinstance(code, int):
            raise TypeError(f"code must be an int, not {type(code).__name__}")
        if not 0 <= code < 1 << 62:
            raise ConfigError("close code must be an int within 0..2**62-1")
        if not isinstance(reason, str):
            raise TypeError(f"reason must be a str, not {type(reason).__name__}")

    @abstractmethod
    async def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Close the session: the peer receives ``code`` and ``reason``; returns once CLOSED.

        Data already written is delivered first (for at most a few seconds). ``code`` is an int
        within 0..2**62-1 (:class:`TypeError` / :class:`ConfigError` otherwise), ``reason`` a
        str of which the peer receives at most 123 bytes of UTF-8 (``CLOSE_REASON_MAX_BYTES``,
        as a WebSocket close reason; longer is cut at a character boundary); no error if
        already closed.
        """

    def _closed_future(self) -> asyncio.Future[None]:
        if self._closed is None:
            self._closed = asyncio.get_running_loop().create_future()
            if self._ended:
                self._closed.set_result(None)
        return self._closed

    async def wait_closed(self) -> None:
        """Wait until the session is CLOSED (by either side, or by a timeout)."""
        await asyncio.shield(self._closed_future())

    def _finish(self, code: int, reason: str, by_peer: bool = False) -> None:
        """The session is closed: record how, wake :meth:`wait_closed`, tell the manager."""
        self.close_code = as_close_code(code)
        self.close_reason = reason
        self.closed_by_peer = by_peer
        self.closed_at = self._now_unix()
        self._ended = True
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)
        if self._on_closed is not None:
            self._on_closed(self)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def check_timeout(timeout: object, name: str = "timeout") -> float:
    """``timeout`` as a float: a positive, finite number of seconds. Raises TypeError for a
    non-number and ConfigError for zero, a negative or a non-finite value."""
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(f"{name} must be a number of seconds, not {type(timeout).__name__}")
    if not 0 < timeout < float("inf"):
        raise ConfigError(f"{name} must be a positive, finite number of seconds, not {timeout!r}")
    return float(timeout)
