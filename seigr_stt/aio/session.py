"""``STTSession``: the application's handle on one authenticated connection (api.md)."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import IntEnum
from types import TracebackType
from typing import TYPE_CHECKING, Any

from seigr_stt.aio.streams import STTStream
from seigr_stt.constants import (
    CLOSE_NORMAL,
    STT_SESSION_STATE_ACTIVE,
    STT_SESSION_STATE_CLOSED,
    STT_SESSION_STATE_CLOSING,
    STT_SESSION_STATE_HANDSHAKE,
)
from seigr_stt.core import crypto
from seigr_stt.core.session import Session, SessionCounters
from seigr_stt.exceptions import (
    ConfigError,
    KeyRotationError,
    ProtocolError,
    SessionClosedError,
)

if TYPE_CHECKING:
    from seigr_stt.aio.node import STTNode

__all__ = ["DATAGRAM_QUEUE_MAX", "NodeEvent", "ReceivedPacket", "STTSession", "SessionState"]

#: Unread datagrams held per session before new ones are dropped (and counted).
DATAGRAM_QUEUE_MAX = 1024

_log = logging.getLogger("seigr_stt.session")


class SessionState(IntEnum):
    """Session states; equal to the ``STT_SESSION_STATE_*`` ints of :mod:`seigr_stt.constants`."""

    HANDSHAKE = STT_SESSION_STATE_HANDSHAKE
    ACTIVE = STT_SESSION_STATE_ACTIVE
    CLOSING = STT_SESSION_STATE_CLOSING
    CLOSED = STT_SESSION_STATE_CLOSED


@dataclass(frozen=True, slots=True)
class ReceivedPacket:
    """One application message as :meth:`STTNode.receive` yields it."""

    session_id: bytes
    stream_id: int
    data: bytes
    peer_node_id: bytes
    transport: str
    received_at: float


@dataclass(frozen=True, slots=True)
class NodeEvent:
    """What :meth:`STTNode.on` listeners receive.

    ``kind`` is one of ``"session_established"``, ``"session_closed"`` (``code``, ``reason``,
    ``by_peer`` set), ``"key_rotated"`` (``key_version`` set) and ``"peer_address_changed"``
    (``old_address``, ``new_address`` set).
    """

    kind: str
    session: STTSession
    code: int | None = None
    reason: str = ""
    by_peer: bool = False
    key_version: int | None = None
    old_address: Any = None
    new_address: Any = None


class _SessionLog(logging.LoggerAdapter[logging.Logger]):
    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        return f"[{self.extra['sid'] if self.extra else '?'}] {msg}", kwargs


class STTSession:
    """One authenticated session between two nodes.

    Sessions made by a handshake come from :meth:`STTNode.connect_udp`,
    :meth:`STTNode.connect_websocket` or from peers connecting to a server-mode node. A session
    made by :meth:`SessionManager.create_session` is *manual*: it is tracked and keeps
    statistics, but has no peer or transport, so sending raises :class:`ProtocolError` and
    :meth:`rotate_key` only advances its own local key.
    """

    def __init__(
        self,
        node: STTNode | None,
        session_id: bytes,
        peer_node_id: bytes,
        *,
        capabilities: int,
        core: Session | None,
        transport_type: str | None,
        created_at: float,
    ) -> None:
        self._node = node
        self._core = core
        self._session_id = session_id
        self._peer_node_id = peer_node_id
        self._capabilities = capabilities
        self._transport_type = transport_type
        self.created_at = created_at
        self.last_key_rotation = created_at
        self._counters = core.counters if core is not None else SessionCounters()
        self._manual_state = SessionState.ACTIVE
        self._manual_key: bytes | None = os.urandom(32) if core is None else None
        self._manual_version = 0
        self._manual_last_active = created_at
        self._closed: asyncio.Future[None] | None = None
        self._rotation_waiters: list[tuple[int, asyncio.Future[None]]] = []
        # Created on first use: most sessions never carry datagrams or peer-opened streams, and
        # an idle session should cost little memory (docs/performance.md, scale).
        self._datagram_queue: asyncio.Queue[bytes | None] | None = None
        self._incoming_queue: asyncio.Queue[STTStream | None] | None = None
        self._ended = False
        self._datagrams_dropped = 0
        self._pings: dict[int, asyncio.Future[float]] = {}
        self._streams: dict[int, STTStream] = {}
        self.close_code: int | None = None
        self.close_reason = ""
        self.log = _SessionLog(
            node.logger if node is not None else _log, {"sid": session_id.hex()[:8]}
        )

    def __repr__(self) -> str:
        return (
            f"STTSession(id={self._session_id.hex()}, state={self.state.name}, "
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
    def state(self) -> SessionState:
        if self._core is None:
            return self._manual_state
        return SessionState(self._core.state)

    def is_active(self) -> bool:
        """True while the session can carry data."""
        return self.state == SessionState.ACTIVE

    @property
    def is_manual(self) -> bool:
        """True for a session made by :meth:`SessionManager.create_session`."""
        return self._core is None

    @property
    def key_version(self) -> int:
        """The key epoch: 0 after the handshake, +1 per rotation, equal on both peers."""
        if self._core is None:
            return self._manual_version
        return self._core.key_version

    @property
    def session_key(self) -> bytes:
        """32 bytes of key material of the current epoch, equal on both peers.

        Derived one-way from the traffic keys' epoch root: it reveals no traffic key. Raises
        :class:`SessionClosedError` once the session is closed (the keys are erased).
        """
        if self._core is None:
            if self._manual_key is None:
                raise SessionClosedError("session closed: its key was erased")
            return self._manual_key
        if self._core.keys.erased:
            raise SessionClosedError("session closed: its keys were erased")
        return self._core.keys.session_key

    @property
    def transport_type(self) -> str | None:
        """``"udp"``, ``"websocket"``, or None for a manual session."""
        return self._transport_type

    @property
    def peer_addr(self) -> tuple[str, int] | None:
        """The peer's current ``(host, port)`` (follows authenticated address changes)."""
        if self._core is None:
            return None
        addr = self._core.addr
        if isinstance(addr, tuple):
            return (str(addr[0]), int(addr[1]))
        remote = getattr(getattr(addr, "connection", None), "remote_address", None)
        return (str(remote[0]), int(remote[1])) if remote else None

    def _to_unix(self, loop_time: float | None) -> float:
        if loop_time is None or self._node is None:
            return self.created_at
        return self._node._unix(loop_time)

    @property
    def last_active(self) -> float:
        """Unix time of the last packet sent or received."""
        if self._core is None:
            return self._manual_last_active
        times = [t for t in (self._core.last_sent_at, self._core.last_received_at) if t is not None]
        return self._to_unix(max(times)) if times else self.created_at

    @property
    def rtt(self) -> float | None:
        """Smoothed round-trip time in seconds, once measured."""
        return self._core.rtt_s if self._core is not None else None

    @property
    def max_datagram_size(self) -> int:
        """Largest payload :meth:`send_datagram` accepts on this session's transport."""
        if self._core is None:
            return 0
        return self._core.max_datagram_size

    # -- statistics ---------------------------------------------------------------------------
    def get_statistics(self) -> dict[str, Any]:
        """A snapshot of the session's figures (the chapter's keys and more)."""
        c = self._counters
        now = self._node._unix_now() if self._node is not None else self.created_at
        return {
            "session_id": self._session_id.hex(),
            "peer_node_id": self._peer_node_id.hex(),
            "state": int(self.state),
            "created_at": self.created_at,
            "uptime": max(now - self.created_at, 0.0),
            "last_active": self.last_active,
            "bytes_sent": c.bytes_sent,
            "bytes_received": c.bytes_received,
            "packets_sent": c.packets_sent,
            "packets_received": c.packets_received,
            "send_errors": c.send_errors,
            "receive_errors": c.receive_errors,
            "messages_sent": c.messages_sent,
            "messages_received": c.messages_received,
            "packets_lost": c.packets_lost,
            "retransmitted_bytes": c.retransmitted_bytes,
            "streams_opened": c.streams_opened,
            "cwnd": self._core.cc.cwnd if self._core is not None else None,
            "bytes_in_flight": (
                self._core.recovery.bytes_in_flight if self._core is not None else None
            ),
            "datagrams_sent": c.datagrams_sent,
            "datagrams_received": c.datagrams_received,
            "datagrams_dropped": self._datagrams_dropped,
            "key_version": self.key_version,
            "last_key_rotation": self.last_key_rotation,
            "rtt": self.rtt,
            "replays_dropped": c.replays_dropped,
            "auth_failures": c.auth_failures,
            "epoch_drops": c.epoch_drops,
            "capabilities": self._capabilities,
            "transport": self._transport_type,
            "close_code": self.close_code,
        }

    def _touch(self) -> None:
        if self._core is None and self._node is not None:
            self._manual_last_active = self._node._unix_now()

    def record_frame_sent(self, payload_size: int) -> None:
        """Count one frame of ``payload_size`` bytes as sent (the node does this itself)."""
        self._counters.packets_sent += 1
        self._counters.bytes_sent += payload_size
        self._touch()

    def record_frame_received(self, payload_size: int) -> None:
        """Count one frame of ``payload_size`` bytes as received."""
        self._counters.packets_received += 1
        self._counters.bytes_received += payload_size
        self._touch()

    def record_send_error(self) -> None:
        self._counters.send_errors += 1

    def record_receive_error(self) -> None:
        self._counters.receive_errors += 1

    # -- data ---------------------------------------------------------------------------------
    def _require_node(self) -> STTNode:
        if self._core is None or self._node is None:
            raise ProtocolError("a manual session has no peer or transport; nothing can be sent")
        if self._core.state == SessionState.CLOSED:
            # The endpoint forgets closed sessions; say "closed", not "not found".
            raise SessionClosedError(
                f"session {self._session_id.hex()} is closed", self.close_code, self.close_reason
            )
        return self._node

    async def send(self, data: bytes, stream_id: int = 0) -> None:
        """Send one message reliably and in order on message channel ``stream_id``.

        Same semantics as :meth:`STTNode.send_to_sessions` for this one session; raises
        :class:`SessionClosedError` when the session is not active.
        """
        node = self._require_node()
        await node._send_one(self._session_id, data, stream_id)

    async def send_datagram(self, data: bytes) -> None:
        """Send an unreliable, unordered datagram of at most :attr:`max_datagram_size` bytes."""
        node = self._require_node()
        node._endpoint.send_datagram(self._session_id, bytes(data), node._now())
        node._transmit_soon()

    def _datagrams(self) -> asyncio.Queue[bytes | None]:
        if self._datagram_queue is None:
            self._datagram_queue = asyncio.Queue()
            if self._ended:
                self._datagram_queue.put_nowait(None)
        return self._datagram_queue

    def _incoming(self) -> asyncio.Queue[STTStream | None]:
        if self._incoming_queue is None:
            self._incoming_queue = asyncio.Queue()
            if self._ended:
                self._incoming_queue.put_nowait(None)
        return self._incoming_queue

    def _on_datagram(self, data: bytes) -> None:
        # Datagrams are unreliable: when the application does not keep up, the newest ones are
        # dropped and counted rather than held without bound.
        if self._datagrams().qsize() >= DATAGRAM_QUEUE_MAX:
            self._datagrams_dropped += 1
            return
        self._datagrams().put_nowait(data)

    async def datagrams(self) -> AsyncIterator[bytes]:
        """Datagrams from the peer, until the session closes.

        At most ``DATAGRAM_QUEUE_MAX`` (1024) unread datagrams are held; more are dropped and
        counted in ``get_statistics()["datagrams_dropped"]``.
        """
        while True:
            item = await self._datagrams().get()
            if item is None:
                self._datagrams().put_nowait(None)
                return
            yield item

    # -- liveness ---------------------------------------------------------------------------
    async def ping(self, timeout: float = 5.0) -> float:
        """Send a PING and wait for the peer's PONG; returns the round-trip time in seconds.

        Raises :class:`TimeoutError` when no PONG arrives within ``timeout`` and
        :class:`SessionClosedError` when the session is not active.
        """
        node = self._require_node()
        loop = asyncio.get_running_loop()
        started = loop.time()
        token = node._endpoint.ping(self._session_id, node._now())
        future: asyncio.Future[float] = loop.create_future()
        self._pings[token] = future
        node._transmit()
        try:
            async with asyncio.timeout(timeout):
                return await future - started
        finally:
            self._pings.pop(token, None)

    def _on_pong(self, token: int) -> None:
        future = self._pings.get(token)
        if future is not None and not future.done():
            future.set_result(asyncio.get_running_loop().time())

    # -- byte streams -------------------------------------------------------------------------
    async def open_stream(self) -> STTStream:
        """Open a reliable, ordered, bidirectional byte stream to the peer.

        Raises :class:`StreamError` when the peer's limit of concurrent streams is reached and
        :class:`SessionClosedError` when the session is not active. Byte streams are separate
        from the message channels ``send(data, stream_id)`` uses (§16.1).
        """
        node = self._require_node()
        stream_id = node._endpoint.open_stream(self._session_id, node._now())
        stream = self._streams[stream_id] = STTStream(self, stream_id)
        node._transmit()
        return stream

    async def incoming_streams(self) -> AsyncIterator[STTStream]:
        """Streams the peer opens, until the session closes."""
        while True:
            stream = await self._incoming().get()
            if stream is None:
                self._incoming().put_nowait(None)
                return
            yield stream

    def _on_stream_opened(self, stream_id: int) -> None:
        stream = self._streams[stream_id] = STTStream(self, stream_id)
        self._incoming().put_nowait(stream)

    def _on_stream_data(self, stream_id: int, data: bytes, fin: bool) -> None:
        stream = self._streams.get(stream_id)
        if stream is not None:
            stream._on_data(data, fin)

    def _on_stream_reset(self, stream_id: int, code: int, sending: bool) -> None:
        stream = self._streams.get(stream_id)
        if stream is not None:
            stream._on_reset(code, sending)

    # -- key rotation -------------------------------------------------------------------------
    async def rotate_key(self, timeout: float = 10.0) -> bytes:
        """Move both peers to the next key; returns the new :attr:`session_key`.

        Returns once the peer has confirmed the new epoch, so :attr:`key_version` is then equal on
        both sides. The previous key is kept for a short grace period for packets in flight, then
        erased; it cannot be computed from the new one. Raises :class:`KeyRotationError` if the
        peer does not confirm within ``timeout`` and :class:`SessionClosedError` if the session
        closes meanwhile.
        """
        if self._core is None:
            if self._manual_key is None:
                raise SessionClosedError("session closed")
            self._manual_key = crypto.kdf(self._manual_key, b"manual-rotation")
            self._manual_version += 1
            self.last_key_rotation = (
                self._node._unix_now() if self._node is not None else self.created_at
            )
            return self._manual_key
        node = self._require_node()
        target = node._endpoint.request_rotation(self._session_id, node._now())
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._rotation_waiters.append((target, future))
        node._transmit()
        self._resolve_rotations()
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            raise KeyRotationError(
                f"peer did not confirm key version {target} within {timeout} s"
            ) from None
        finally:
            if not future.done():
                future.cancel()
            self._rotation_waiters = [(t, f) for t, f in self._rotation_waiters if f is not future]
        self.log.debug("key rotated to version %d", self.key_version)
        return self.session_key

    def _resolve_rotations(self) -> None:
        confirmed = self._core._confirmed_version if self._core is not None else 0
        for target, future in self._rotation_waiters:
            if not future.done() and confirmed >= target:
                future.set_result(None)

    def _on_key_rotated(self, version: int) -> None:
        if self._node is not None:
            self.last_key_rotation = self._node._unix_now()
        self._resolve_rotations()

    # -- close --------------------------------------------------------------------------------
    def _closed_future(self) -> asyncio.Future[None]:
        if self._closed is None:
            self._closed = asyncio.get_running_loop().create_future()
            if self.state == SessionState.CLOSED:
                self._closed.set_result(None)
        return self._closed

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Close the session: the peer receives ``code`` and ``reason``; returns once CLOSED."""
        if isinstance(code, bool) or not isinstance(code, int) or not 0 <= code < 1 << 62:
            raise ConfigError("close code must be an int within 0..2**62-1")
        if self._core is None:
            self._manual_close(code, reason)
            return
        node = self._node
        assert node is not None
        if self.state != SessionState.CLOSED:
            node._endpoint.close(self._session_id, code, reason, node._now(), drain=True)
            node._transmit()
        await self.wait_closed()

    def _manual_close(self, code: int, reason: str) -> None:
        if self._manual_state == SessionState.CLOSED:
            return
        self._manual_state = SessionState.CLOSED
        self._manual_key = None
        self._on_closed(code, reason, by_peer=False)

    async def wait_closed(self) -> None:
        """Wait until the session is CLOSED (by either side, or by a timeout)."""
        await asyncio.shield(self._closed_future())

    def _on_closed(self, code: int, reason: str, by_peer: bool) -> None:
        self.close_code = code
        self.close_reason = reason
        future = self._closed_future()
        if not future.done():
            future.set_result(None)
        for _, waiter in self._rotation_waiters:
            if not waiter.done():
                waiter.set_exception(
                    SessionClosedError("session closed during key rotation", code, reason)
                )
        self._ended = True
        if self._datagram_queue is not None:
            self._datagram_queue.put_nowait(None)
        if self._incoming_queue is not None:
            self._incoming_queue.put_nowait(None)
        for ping in self._pings.values():
            if not ping.done():
                ping.set_exception(SessionClosedError("session closed", code, reason))
        error = SessionClosedError(f"session {self._session_id.hex()} closed", code, reason)
        for stream in self._streams.values():
            stream._on_session_closed(error)
        if self._node is not None:
            self._node.session_manager._on_closed(self)

    async def __aenter__(self) -> STTSession:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
