"""``PeerSession``: a session with a peer, made by a handshake (api.md).

A session knows its :class:`~seigr_stt.aio.driver.Driver` and its id, never the node. Each
application call changes the core session through the driver, then asks for a drain
(``driver.transmit_soon()``); the driver hands the session its core events
(:meth:`PeerSession.handle_event`). What the node must hear of — a message for
``node.receive()``, a node event for listeners, the end of the session — goes through the
callables of :class:`SessionHooks`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from seigr_stt.aio.driver import Driver
from seigr_stt.aio.inbox import Inbox, InboxClosed, InboxIterator, check_wait_timeout
from seigr_stt.aio.session import (
    NodeEvent,
    ReceivedPacket,
    STTSession,
    check_timeout,
    make_packet,
)
from seigr_stt.aio.streams import STTStream
from seigr_stt.constants import CloseCode, SessionState
from seigr_stt.core.events import (
    DatagramReceived,
    Event,
    KeyRotated,
    MessageReceived,
    PathChanged,
    PathDegraded,
    PathsAnnounced,
    PeerAddressChanged,
    PongReceived,
    SessionClosed,
    StreamDataReceived,
    StreamOpened,
    StreamReleased,
    StreamReset,
)
from seigr_stt.core.flow import MAX_CHANNEL
from seigr_stt.core.session import Session
from seigr_stt.core.stats import SessionSnapshot
from seigr_stt.exceptions import (
    ConfigError,
    KeyRotationError,
    MessageTooLarge,
    SessionClosedError,
)
from seigr_stt.logs import format_addr

__all__ = [
    "DATAGRAM_QUEUE_MAX",
    "PeerSession",
    "SessionHooks",
    "check_bytes",
    "check_channel",
    "check_message",
    "return_credit",
]

#: Unread datagrams held per session before new ones are dropped (and counted).
DATAGRAM_QUEUE_MAX = 1024


def _code_name(code: int) -> str:
    """``CloseCode`` name of ``code`` (``"NORMAL"``), or ``"application"`` for other codes."""
    try:
        return CloseCode(code).name
    except ValueError:
        return "application"


@dataclass(frozen=True, slots=True)
class SessionHooks:
    """What a session tells the node, as callables (no reference to the node itself)."""

    deliver: Callable[[tuple[ReceivedPacket, int]], None]  # a message, and the credit to return
    emit: Callable[[NodeEvent], None]  # an event for the node's listeners
    on_closed: Callable[[STTSession], None]  # the session closed (the manager forgets it)
    # The session got its own reader: hand over its messages still waiting for node.receive()
    # (in order, with their credit); from then on the session keeps its messages itself.
    claim: Callable[[bytes], list[tuple[ReceivedPacket, int]]] | None = None
    # The session's path events the node acts on (§18): PathsAnnounced, PathDegraded,
    # PathChanged (after the session's own listeners heard of the change).
    paths: Callable[[PeerSession, Event], None] | None = None


def return_credit(driver: Driver, packet: ReceivedPacket, credit: int) -> None:
    """The application took ``packet``: free its share of the flow-control window (§16.3), at
    the end of the loop turn together with the other messages taken in it."""
    driver.owe_credit(packet.session_id, packet.stream_id, credit)


class PeerSession(STTSession):
    """One authenticated session between two nodes, made by a handshake.

    Sessions come from :meth:`STTNode.connect_udp`, :meth:`STTNode.connect_websocket` or from
    peers connecting to a server-mode node.
    """

    __slots__ = (
        "_core",
        "_datagram_queue",
        "_datagrams_lost",
        "_driver",
        "_hooks",
        "_inbox",
        "_incoming_queue",
        "_pings",
        "_ratchet_waiters",
        "_rotation_waiters",
        "_streams",
    )

    def __init__(
        self,
        driver: Driver,
        core: Session,
        *,
        transport_type: str,
        hooks: SessionHooks,
        logger: Any = None,
    ) -> None:
        super().__init__(
            core.session_id,
            core.peer_node_id,
            capabilities=core.peer_capabilities,
            transport_type=transport_type,
            created_at=driver.unix(core.created_at),
            logger=logger,
            on_closed=hooks.on_closed,
        )
        self._driver = driver
        self._hooks = hooks
        # Made when the handshake completed (keys confirmed): ACTIVE from now on. created_at is
        # when the core session was made (for the initiator, when it sent FINAL).
        self.ready_at = driver.unix_now()
        # Tuples (the empty one is shared) and dicts made on first use: an idle session should
        # cost little memory (docs/performance.md, scale).
        self._rotation_waiters: tuple[tuple[int, asyncio.Future[None]], ...] = ()
        self._ratchet_waiters: tuple[tuple[int, asyncio.Future[None]], ...] = ()  # fresh_dh
        # Created on first use: most sessions never carry datagrams or peer-opened streams, and
        # an idle session should cost little memory (docs/performance.md, scale).
        self._datagram_queue: Inbox[bytes] | None = None
        self._incoming_queue: Inbox[STTStream] | None = None
        # This session's own messages, once it has a reader of its own (recv(), async for);
        # until then its messages go to node.receive().
        self._inbox: Inbox[tuple[ReceivedPacket, int]] | None = None
        self._datagrams_lost = 0
        self._pings: dict[int, asyncio.Future[float]] | None = None
        self._streams: dict[int, STTStream] | None = None
        # The core session object outlives its place in the endpoint's table: once closed it
        # still answers state, key version and figures (its keys are erased).
        self._core = core
        driver.bind(core.session_id, self)

    # -- state --------------------------------------------------------------------------------
    @property
    def state(self) -> SessionState:
        """The core session's state (it outlives the session's place in the endpoint)."""
        return self._core.state

    @property
    def is_manual(self) -> bool:
        """False: a handshake made this session."""
        return False

    @property
    def initiator(self) -> bool:
        """True when this node opened the session (``connect_*``), False when the peer did."""
        return bool(self._core.initiator)

    @property
    def key_version(self) -> int:
        """The key epoch: 0 after the handshake, +1 per rotation, equal on both peers."""
        return self._core.key_version

    @property
    def session_key(self) -> bytes:
        """32 bytes of key material of the current epoch, equal on both peers.

        Derived one-way from the traffic keys' epoch root: it reveals no traffic key. Raises
        :class:`SessionClosedError` once the session is closed (the keys are erased).
        """
        if self._core.keys.erased:
            raise SessionClosedError("session closed: its keys were erased")
        return self._core.keys.session_key

    @property
    def peer_addr(self) -> tuple[str, int] | None:
        """The peer's current ``(host, port)`` (follows authenticated address changes)."""
        addr = self._core.addr
        if isinstance(addr, tuple):
            return (str(addr[0]), int(addr[1]))
        remote = getattr(getattr(addr, "connection", None), "remote_address", None)
        return (str(remote[0]), int(remote[1])) if remote else None

    @property
    def last_active(self) -> float:
        """Unix time of the last packet sent or received."""
        at = self._core.timers.last_active_at
        return self._driver.unix(at) if at is not None else self.created_at

    @property
    def rtt(self) -> float | None:
        """Smoothed round-trip time in seconds, once measured."""
        return self._core.rtt_s

    @property
    def max_datagram_size(self) -> int:
        """Largest payload :meth:`send_datagram` accepts on this session's transport."""
        return self._core.max_datagram_size

    def _snapshot(self) -> SessionSnapshot:
        return self._core.snapshot()

    def _now_unix(self) -> float:
        return self._driver.unix_now()

    def _datagrams_dropped(self) -> int:
        return self._datagrams_lost

    def _streams_live(self) -> int:
        return 0 if self._streams is None else len(self._streams)

    def _stream_info(self) -> dict[str, Any]:
        """What this session's streams answer in ``get_extra_info``."""
        return {
            "peername": self.peer_addr,
            "transport": self._transport_type,
            "peer_node_id": self._peer_node_id,
        }

    # -- data ---------------------------------------------------------------------------------
    def _active_core(self) -> Session:
        core = self._core
        if core.state == SessionState.CLOSED:
            raise self._closed_error()
        return core

    async def send(self, data: bytes, stream_id: int = 0) -> None:
        """Send one message reliably and in order on message channel ``stream_id``.

        Same semantics as :meth:`STTNode.send_to_sessions` for this one session; raises
        :class:`SessionClosedError` when the session is not active.
        """
        core = self._active_core()
        payload = check_message(data, core.config.max_message_size)
        check_channel(stream_id)
        try:
            core.send_message(stream_id, payload, self._driver.now())
        finally:
            self._driver.transmit_soon()
        await self._driver.after_send((self._session_id,))

    async def send_datagram(self, data: bytes) -> None:
        """Send an unreliable, unordered datagram of at most :attr:`max_datagram_size` bytes.

        Raises :class:`TypeError` unless ``data`` is bytes-like (bytes, bytearray, memoryview).
        """
        payload = check_bytes(data)
        self._active_core().send_datagram(payload, self._driver.now())
        self._driver.transmit_soon()

    def _datagrams(self) -> Inbox[bytes]:
        if self._datagram_queue is None:
            self._datagram_queue = Inbox()
            if self._ended:
                self._datagram_queue.close()
        return self._datagram_queue

    def _incoming(self) -> Inbox[STTStream]:
        if self._incoming_queue is None:
            self._incoming_queue = Inbox()
            if self._ended:
                self._incoming_queue.close()
        return self._incoming_queue

    def datagrams(self) -> AsyncIterator[bytes]:
        """Datagrams from the peer, until the session closes.

        At most ``DATAGRAM_QUEUE_MAX`` (1024) unread datagrams are held; more are dropped and
        counted in ``get_statistics()["datagrams_dropped"]``. The iterator survives
        cancellation: a cancelled or timed-out ``anext()`` takes nothing, the next one waits
        again.
        """
        return InboxIterator(self._datagrams(), _same)

    # -- messages of this session -------------------------------------------------------------
    def _own_inbox(self) -> Inbox[tuple[ReceivedPacket, int]]:
        """This session's message inbox; the first call makes the session read per session: its
        messages still waiting for ``node.receive()`` move here, in order, and later ones come
        here only."""
        if self._inbox is None:
            inbox: Inbox[tuple[ReceivedPacket, int]] = Inbox()
            if self._hooks.claim is not None:
                for item in self._hooks.claim(self._session_id):
                    inbox.put(item)
            if self._ended:
                inbox.close()
            self._inbox = inbox
        return self._inbox

    def _take_message(self, item: tuple[ReceivedPacket, int]) -> ReceivedPacket:
        packet, credit = item
        return_credit(self._driver, packet, credit)
        return packet

    async def recv(self, timeout: float | None = None) -> ReceivedPacket:
        """The next message of this session, as a :class:`ReceivedPacket` (``.data`` holds the
        bytes, ``.stream_id`` the channel it was sent on).

        From the first call (or the first ``async for packet in session``) this session's
        messages go only to this session, no longer to ``node.receive()``; the ones already
        waiting there move here first, so none is lost or seen twice. Raises
        :class:`TimeoutError` when none arrives within ``timeout`` seconds (None: wait as long
        as it takes; a timeout takes nothing) and :class:`SessionClosedError` (with the close
        code and reason) once the session is closed and every message it received was taken.
        A ``timeout`` that is not None or a positive number raises TypeError / ConfigError and
        changes nothing.
        """
        wait = check_wait_timeout(timeout)  # before anything changes
        inbox = self._own_inbox()
        try:
            async with asyncio.timeout(wait):
                item = await inbox.get()
        except InboxClosed:
            raise self._closed_error(
                f"session {self._session_id.hex()} is closed: no more messages"
            ) from None
        return self._take_message(item)

    def __aiter__(self) -> AsyncIterator[ReceivedPacket]:
        """``async for packet in session``: this session's messages until it closes (the loop
        then ends; ``close_code`` says how). Starting it makes the session read per session,
        as :meth:`recv` does; a cancelled or timed-out ``anext()`` takes nothing."""
        return InboxIterator(self._own_inbox(), self._take_message)

    # -- liveness -----------------------------------------------------------------------------
    async def ping(self, timeout: float = 5.0) -> float:
        """Send a PING and wait for the peer's PONG; returns the round-trip time in seconds.

        Raises :class:`TimeoutError` when no PONG arrives within ``timeout`` and
        :class:`SessionClosedError` when the session is not active.
        """
        check_timeout(timeout)
        core = self._active_core()
        loop = asyncio.get_running_loop()
        started = self._driver.now()
        token = core.ping(started)
        future: asyncio.Future[float] = loop.create_future()
        pings = self._pings
        if pings is None:
            pings = self._pings = {}
        pings[token] = future
        self._driver.transmit_soon()
        try:
            async with asyncio.timeout(timeout):
                return await future - started
        finally:
            pings.pop(token, None)

    # -- byte streams -------------------------------------------------------------------------
    async def open_stream(self, *, unidirectional: bool = False) -> STTStream:
        """Open a reliable, ordered, bidirectional byte stream to the peer.

        ``unidirectional=True``: only we send on it (§16.4: its receiving half is stopped at
        once, which also tells the peer of it). Raises :class:`StreamError` when the peer's
        limit of concurrent streams is reached and :class:`SessionClosedError` when the session
        is not active. Byte streams are separate from the message channels
        ``send(data, stream_id)`` uses (§16.1).
        """
        if not isinstance(unidirectional, bool):
            raise TypeError(f"unidirectional must be a bool, not {type(unidirectional).__name__}")
        stream_id = self._active_core().open_stream(self._driver.now(), unidirectional)
        stream = self._stream_table()[stream_id] = STTStream(
            self._driver,
            self._session_id,
            stream_id,
            send_only=unidirectional,
            info=self._stream_info,
        )
        self._driver.transmit_soon()
        return stream

    def incoming_streams(self) -> AsyncIterator[STTStream]:
        """Streams the peer opens, until the session closes. The peer may open more only as
        streams it opened are taken here and finished (at most 256 wait at once). The iterator
        survives cancellation: a stream is taken only by an ``anext()`` that returns it."""
        return InboxIterator(self._incoming(), self._accept_stream)

    def _accept_stream(self, stream: STTStream) -> STTStream:
        if self._core.state != SessionState.CLOSED:
            self._core.accept_stream(stream.stream_id)
            self._driver.transmit_soon()
        return stream

    # -- key rotation -------------------------------------------------------------------------
    async def rotate_key(self, timeout: float = 10.0, *, fresh_dh: bool = False) -> bytes:
        """Move both peers to the next key; returns the new :attr:`session_key`.

        Returns once the peer has confirmed the new epoch, so :attr:`key_version` is then equal on
        both sides. The previous key is kept for a short grace period for packets in flight, then
        erased; it cannot be computed from the new one. Raises :class:`KeyRotationError` if the
        peer does not confirm within ``timeout`` and :class:`SessionClosedError` if the session
        closes meanwhile.

        ``fresh_dh=False`` (the cheap hash rotation): the new key is derived one way from the
        old, so whoever copied this session's keys can follow. ``fresh_dh=True`` (a DH ratchet,
        docs/protocol.md §7.1): the peers first exchange fresh X25519 keys inside the session and
        mix the shared secret into the new key, so no state of this session from before the call
        can derive it (post-compromise security); it costs one more round trip.
        """
        check_timeout(timeout)
        core = self._active_core()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if fresh_dh:
            target = core.request_ratchet(self._driver.now())
            self._ratchet_waiters += ((target, future),)
            what = "a DH ratchet"
        else:
            target = core.request_rotation(self._driver.now())
            self._rotation_waiters += ((target, future),)
            what = f"key version {target}"
        self._driver.transmit_soon()
        self._resolve_rotations(core.confirmed_key_version)
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            raise KeyRotationError(f"peer did not confirm {what} within {timeout} s") from None
        finally:
            if not future.done():
                future.cancel()
            self._rotation_waiters = tuple(w for w in self._rotation_waiters if w[1] is not future)
            self._ratchet_waiters = tuple(w for w in self._ratchet_waiters if w[1] is not future)
        return self.session_key

    def _resolve_rotations(self, confirmed: int) -> None:
        for target, future in self._rotation_waiters:
            if not future.done() and confirmed >= target:
                future.set_result(None)
        completed = self._core.ratchets_completed
        for target, future in self._ratchet_waiters:
            if not future.done() and completed >= target:
                future.set_result(None)

    # -- close --------------------------------------------------------------------------------
    async def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Close the session: the peer receives ``code`` and ``reason``; returns once CLOSED.

        Data already written is delivered first (for at most a few seconds)."""
        self._check_close_code(code, reason)
        if self._core.state != SessionState.CLOSED:
            self._core.close(code, reason, self._driver.now(), drain=True)
            self._driver.transmit_soon()
        await self.wait_closed()

    # -- events from the driver ---------------------------------------------------------------
    def handle_event(self, event: Event) -> None:
        """Act on one core event of this session (called by the driver's drain)."""
        handler = _EVENT_HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event)

    def _on_message(self, event: MessageReceived) -> None:
        packet = make_packet(
            event.session_id,
            event.channel,
            event.data,
            self._peer_node_id,
            self._transport_type or "udp",
            time.time(),
        )
        if self._inbox is not None:
            self._inbox.put((packet, event.credit))
        else:
            self._hooks.deliver((packet, event.credit))

    def _on_datagram(self, event: DatagramReceived) -> None:
        # Datagrams are unreliable: when the application does not keep up, the newest ones are
        # dropped and counted rather than held without bound.
        if len(self._datagrams()) >= DATAGRAM_QUEUE_MAX:
            self._datagrams_lost += 1
            return
        self._datagrams().put(event.data)

    def _on_pong(self, event: PongReceived) -> None:
        # A PONG answers every PING up to its token (the peer answers the latest one).
        now = self._driver.now()
        for token, future in (self._pings or {}).items():
            if token <= event.token and not future.done():
                future.set_result(now)

    def _on_stream_opened(self, event: StreamOpened) -> None:
        stream = STTStream(
            self._driver,
            self._session_id,
            event.stream_id,
            opened_by_peer=True,
            info=self._stream_info,
        )
        self._stream_table()[event.stream_id] = stream
        self._incoming().put(stream)

    def _stream_table(self) -> dict[int, STTStream]:
        streams = self._streams
        if streams is None:
            streams = self._streams = {}
        return streams

    def _on_stream_data(self, event: StreamDataReceived) -> None:
        stream = self._stream_table().get(event.stream_id)
        if stream is not None:
            stream.handle_data(event.data, event.fin)

    def _on_stream_reset(self, event: StreamReset) -> None:
        stream = self._stream_table().get(event.stream_id)
        if stream is not None:
            stream.handle_reset(event.code, event.sending)

    def _on_stream_released(self, event: StreamReleased) -> None:
        # Finished both ways: the core forgot it, so do we. The application keeps what it
        # holds of the stream (its unread bytes stay readable); nothing more arrives for it.
        stream = self._stream_table().pop(event.stream_id, None)
        if stream is not None:
            stream.handle_released()

    def _on_key_rotated(self, event: KeyRotated) -> None:
        self.last_key_rotation = self._driver.unix_now()
        self._resolve_rotations(event.key_version)
        self.log.info(
            "key rotated to version %d%s", event.key_version, " (DH ratchet)" * event.fresh_dh
        )
        self._tell(
            NodeEvent("key_rotated", self, key_version=event.key_version, fresh_dh=event.fresh_dh)
        )

    def _on_address_changed(self, event: PeerAddressChanged) -> None:
        self.log.info(
            "peer address changed: %s -> %s", format_addr(event.old), format_addr(event.new)
        )
        self._tell(
            NodeEvent("peer_address_changed", self, old_address=event.old, new_address=event.new)
        )

    def _on_path_changed(self, event: PathChanged) -> None:
        self._transport_type = event.transport
        self.log.info(
            "path changed: %s %s -> %s %s",
            event.old_transport,
            format_addr(event.old_addr),
            event.transport,
            format_addr(event.addr),
        )
        if self._hooks.paths is not None:
            self._hooks.paths(self, event)
        self._tell(
            NodeEvent(
                "path_changed",
                self,
                old_address=event.old_addr,
                new_address=event.addr,
                transport=event.transport,
                old_transport=event.old_transport,
            )
        )

    def _on_path_event(self, event: PathsAnnounced | PathDegraded) -> None:
        if self._hooks.paths is not None:
            self._hooks.paths(self, event)

    @property
    def path(self) -> tuple[str, Any]:
        """The path in use: ``(transport, address)``, where transport is ``"udp"``,
        ``"websocket"`` or ``"relay"`` and the address is the peer's ``(host, port)``, the
        WebSocket link, or the ``RelayAddress`` (it follows every ``path_changed``)."""
        return self._core.transport, self._core.addr

    @property
    def core(self) -> Session:
        """The sans-I/O session (for the node's path logic and tools; do not drive it)."""
        return self._core

    def _tell(self, event: NodeEvent) -> None:
        """An event for this session's listeners, then the node's."""
        self._notify(event)
        self._hooks.emit(event)

    def _on_session_closed(self, event: SessionClosed) -> None:
        self._driver.unbind(self._session_id)
        self.log.info(
            "session closed (code %d%s): %s%s",
            event.code,
            ", by peer" if event.by_peer else "",
            _code_name(event.code),
            f", reason {event.reason!r}" if event.reason else "",
        )
        code, reason, by_peer = event.code, event.reason, event.by_peer
        for _, waiter in self._rotation_waiters + self._ratchet_waiters:
            if not waiter.done():
                waiter.set_exception(
                    SessionClosedError("session closed during key rotation", code, reason, by_peer)
                )
        for inbox in (self._datagram_queue, self._incoming_queue, self._inbox):
            if inbox is not None:
                inbox.close()
        for ping in (self._pings or {}).values():
            if not ping.done():
                ping.set_exception(SessionClosedError("session closed", code, reason, by_peer))
        error = SessionClosedError(
            f"session {self._session_id.hex()} closed", code, reason, by_peer
        )
        for stream in (self._streams or {}).values():
            stream.handle_session_closed(error)
        self._finish(code, reason, by_peer)
        self._tell(
            NodeEvent("session_closed", self, code=self.close_code, reason=reason, by_peer=by_peer)
        )


def check_bytes(data: object, name: str = "data") -> bytes:
    """``data`` as bytes: TypeError naming ``name`` unless it is bytes, bytearray or a
    memoryview (an int would otherwise become that many zero bytes, a str has no encoding)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"{name} must be bytes, not {type(data).__name__}")
    return bytes(data)


def _same(item: bytes) -> bytes:
    return item


def check_message(data: bytes, max_message_size: int) -> bytes:
    """``data`` as bytes; TypeError for anything else, MessageTooLarge above the limit."""
    if type(data) is not bytes:
        data = check_bytes(data)
    if len(data) > max_message_size:
        raise MessageTooLarge(
            f"message of {len(data)} bytes exceeds max_message_size ({max_message_size})"
        )
    return data


def check_channel(stream_id: int) -> None:
    """Message channels are ``0..MAX_CHANNEL`` (2**60 - 1): the id must fit a stream id (§16.1).
    Raises ConfigError."""
    if isinstance(stream_id, bool) or not isinstance(stream_id, int):
        raise ConfigError(f"stream_id must be an int, not {type(stream_id).__name__}")
    if not 0 <= stream_id <= MAX_CHANNEL:
        raise ConfigError(f"stream_id must be within 0..{MAX_CHANNEL}")


_EVENT_HANDLERS: dict[type[Any], Callable[[PeerSession, Any], None]] = {
    MessageReceived: PeerSession._on_message,
    DatagramReceived: PeerSession._on_datagram,
    PongReceived: PeerSession._on_pong,
    StreamOpened: PeerSession._on_stream_opened,
    StreamDataReceived: PeerSession._on_stream_data,
    StreamReset: PeerSession._on_stream_reset,
    StreamReleased: PeerSession._on_stream_released,
    KeyRotated: PeerSession._on_key_rotated,
    PeerAddressChanged: PeerSession._on_address_changed,
    PathChanged: PeerSession._on_path_changed,
    PathDegraded: PeerSession._on_path_event,
    PathsAnnounced: PeerSession._on_path_event,
    SessionClosed: PeerSession._on_session_closed,
}
