"""``STTNode``: the asyncio runtime around the sans-I/O endpoint (api.md).

One :class:`~seigr_stt.core.endpoint.Endpoint` serves both transports. Every entry — a UDP
datagram, a WebSocket message, the timer, an application call — ends in :meth:`STTNode._transmit`,
the node's single drain point: it sends what the core produced, dispatches the core's events and
re-arms the one timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import ipaddress
import logging
import os
import socket
import ssl as ssl_module
import time
from collections.abc import AsyncIterator, Callable, Hashable, Iterable
from types import TracebackType
from typing import Any

from seigr_stt.aio.manager import SessionManager
from seigr_stt.aio.session import NodeEvent, ReceivedPacket, STTSession
from seigr_stt.aio.udp import UDPTransport
from seigr_stt.aio.websocket import WebSocketServer, WSLink, open_client_link
from seigr_stt.config import NodeConfig
from seigr_stt.constants import CLOSE_ATTEMPTS, CLOSE_GOING_AWAY, CLOSE_RETRANSMIT_S, WEBSOCKET_PATH
from seigr_stt.core.endpoint import Endpoint
from seigr_stt.core.stats import DropReason

DROP_REASONS = tuple(DropReason)
from seigr_stt.core.events import (
    DatagramReceived,
    Event,
    HandshakeAborted,
    KeyRotated,
    MessageReceived,
    PeerAddressChanged,
    PongReceived,
    SessionClosed,
    SessionEstablished,
    StreamDataReceived,
    StreamOpened,
    StreamReset,
)
from seigr_stt.core.identity import NodeIdentity, SharedSecrets
from seigr_stt.core.session import MAX_CHANNEL
from seigr_stt.exceptions import (
    ConfigError,
    HandshakeError,
    HandshakeTimeout,
    MessageTooLarge,
    ProtocolError,
    SessionClosedError,
    SessionNotFound,
    STTError,
)

__all__ = ["EVENT_KINDS", "STTNode"]

EVENT_KINDS = ("session_established", "session_closed", "key_rotated", "peer_address_changed")
#: stop() first lets sessions deliver what was written (up to the drain limit), then closes.
_STOP_CLOSE_WAIT_S = CLOSE_ATTEMPTS * CLOSE_RETRANSMIT_S + 3.0
#: Senders wait while a session holds more unacknowledged application bytes than this.
SEND_HIGH_WATER_BYTES = 4 * 1024 * 1024
#: A task that only sends yields to the event loop at least this often.
YIELD_EVERY_SENDS = 32

Listener = Callable[[NodeEvent], Any]


def _check_channel(stream_id: int) -> None:
    """Message channels are ``0..MAX_CHANNEL`` (2**60 - 1): the id must fit a stream id (§16.1)."""
    if isinstance(stream_id, bool) or not isinstance(stream_id, int):
        raise ConfigError(f"stream_id must be an int, not {type(stream_id).__name__}")
    if not 0 <= stream_id <= MAX_CHANNEL:
        raise ConfigError(f"stream_id must be within 0..{MAX_CHANNEL}")


class _Connect:
    __slots__ = ("future", "link", "transport")

    def __init__(
        self, future: asyncio.Future[STTSession], transport: str, link: WSLink | None
    ) -> None:
        self.future = future
        self.transport = transport
        self.link = link


class STTNode:
    """An encrypted peer-to-peer node: UDP always, WebSocket when ``ws_port`` is set.

    ``node_seed`` is this node's private seed (its identity: the same seed gives the same
    :attr:`node_id`); ``shared_seed`` is shared by every authorized peer. Both are bytes or
    hex/base64 text of at least 32 random bytes; a weak seed raises
    :class:`~seigr_stt.exceptions.WeakSeedError` here. Nothing is bound until :meth:`start`.
    """

    def __init__(
        self,
        node_seed: bytes | str,
        shared_seed: bytes | str,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        ws_port: int | None = None,
        config: NodeConfig | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self._identity = NodeIdentity.from_seed(node_seed)
        self._secrets = SharedSecrets.from_seed(shared_seed)
        if not isinstance(host, str) or not host:
            raise ConfigError("host must be a non-empty string")
        for name, value in (("port", port), ("ws_port", ws_port)):
            if value is None and name == "ws_port":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
                raise ConfigError(f"{name} must be an int within 0..65535, not {value!r}")
        if config is not None and not isinstance(config, NodeConfig):
            raise ConfigError("config must be a NodeConfig")
        self.config = config or NodeConfig()
        self.host = host
        self.port = port
        self.ws_port = ws_port
        self.logger = logger or logging.getLogger("seigr_stt.node")
        self._endpoint = Endpoint(
            self._identity, self._secrets, self.config, os.urandom, accept_incoming=False
        )
        self.session_manager = SessionManager(self)
        self._udp: UDPTransport | None = None
        self._ws_server: WebSocketServer | None = None
        self._ws_tls = False
        self._ws_links: set[WSLink] = set()
        self._ws_tasks: set[asyncio.Task[None]] = set()
        self._ws_refused_closed = [0, 0]  # text, oversized messages of links already closed
        self._connects: dict[int, _Connect] = {}
        self._wrappers: dict[bytes, STTSession] = {}
        # (packet, flow-control credit to return once the application has taken it)
        self._rx: asyncio.Queue[tuple[ReceivedPacket, int] | None] = asyncio.Queue()
        self._progress = asyncio.Event()
        self._transmit_scheduled = False
        self._sends_since_yield = 0
        self._listeners: dict[str, list[Listener]] = {kind: [] for kind in EVENT_KINDS}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._clock_offset = 0.0
        self._started = False
        self._stopped = False
        self.server_mode = False

    def __repr__(self) -> str:
        return (
            f"STTNode(node_id={self.node_id.hex()[:16]}…, udp={self.udp_address}, "
            f"ws={self.ws_url}, started={self._started})"
        )

    # -- identity and addresses ---------------------------------------------------------------
    @property
    def node_id(self) -> bytes:
        """32 bytes derived from ``node_seed``: stable across restarts."""
        return self._identity.node_id

    @property
    def udp_address(self) -> tuple[str, int] | None:
        """The ``(host, port)`` the UDP socket is bound to, once started."""
        return self._udp.address if self._udp is not None else None

    @property
    def ws_url(self) -> str | None:
        """``ws://host:port/stt`` (``wss://`` with TLS) when serving WebSocket, else None."""
        if self._ws_server is None:
            return None
        host, port = self._ws_server.address
        if ":" in host:
            host = f"[{host}]"
        scheme = "wss" if self._ws_tls else "ws"
        return f"{scheme}://{host}:{port}{WEBSOCKET_PATH}"

    @property
    def is_running(self) -> bool:
        return self._started and not self._stopped

    # -- clocks -------------------------------------------------------------------------------
    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def _unix(self, loop_time: float) -> float:
        return loop_time + self._clock_offset

    def _unix_now(self) -> float:
        return time.time()

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(
        self, server_mode: bool = False, *, ssl: ssl_module.SSLContext | None = None
    ) -> None:
        """Bind UDP ``host:port`` (and WebSocket ``host:ws_port`` if set) and start serving.

        ``server_mode=True`` also accepts peers' handshakes; otherwise the node only takes part
        in sessions it initiates. ``ssl`` makes the WebSocket server serve ``wss://``.
        """
        if self._stopped:
            raise ProtocolError("a stopped node cannot be restarted; create a new STTNode")
        if self._started:
            raise ProtocolError("node already started")
        self._loop = asyncio.get_running_loop()
        self._clock_offset = time.time() - self._loop.time()
        self.server_mode = server_mode
        self._endpoint.accept_incoming = server_mode
        self._udp = await UDPTransport.bind(self.host, self.port, self._on_udp, self._transmit)
        try:
            if self.ws_port is not None:
                self._ws_server = WebSocketServer(
                    self._on_ws_packet,
                    self._ws_links.add,
                    self._on_ws_closed,
                    self.config.websocket_max_record_size,
                )
                await self._ws_server.start(self.host, self.ws_port, ssl)
                self._ws_tls = ssl is not None
        except BaseException:
            self._udp.close()
            self._udp = None
            self._ws_server = None
            raise
        self._started = True
        self.logger.info(
            "node %s started: udp %s, websocket %s, server_mode=%s",
            self.node_id.hex()[:16],
            self.udp_address,
            self.ws_url,
            server_mode,
        )

    async def stop(self) -> None:
        """Close every session (the peers see CLOSE, code ``CLOSE_GOING_AWAY``) and the
        transports. Data already written is delivered first when the peers are reachable;
        returns within about 4 seconds even when they are not. Idempotent."""
        if not self._started or self._stopped:
            self._stopped = True
            return
        now = self._now()
        for session_id in list(self._endpoint.sessions):
            with contextlib.suppress(STTError):
                self._endpoint.close(session_id, CLOSE_GOING_AWAY, "node stopping", now, drain=True)
        self._transmit()
        waiting = [s.wait_closed() for s in self._wrappers.values()]
        if waiting:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*waiting), _STOP_CLOSE_WAIT_S)
        for session_id in list(self._endpoint.sessions):
            with contextlib.suppress(STTError):
                self._endpoint.abort(session_id, CLOSE_GOING_AWAY, "node stopped")
        self._transmit()
        self._stopped = True
        for pending in self._connects.values():
            if not pending.future.done():
                pending.future.set_exception(HandshakeError("node stopped"))
        self._connects.clear()
        for manual in list(self.session_manager.get_sessions_by_state(1)):
            if manual.is_manual:
                manual._manual_close(CLOSE_GOING_AWAY, "node stopped")
        if self._ws_server is not None:
            await self._ws_server.close()
        for link in list(self._ws_links):
            await link.aclose()
        for task in list(self._ws_tasks):
            task.cancel()
        if self._udp is not None:
            self._udp.close()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._rx.put_nowait(None)
        self.logger.info("node %s stopped", self.node_id.hex()[:16])

    async def __aenter__(self) -> STTNode:
        if not self._started:
            await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _require_running(self) -> None:
        if not self._started:
            raise ProtocolError("node not started: call `await node.start()` first")
        if self._stopped:
            raise ProtocolError("node stopped")

    # -- events -------------------------------------------------------------------------------
    def on(self, kind: str, listener: Listener) -> None:
        """Call ``listener(NodeEvent)`` on each event of ``kind`` (see :data:`EVENT_KINDS`).

        A coroutine function is run as a task. Exceptions from listeners are logged, never
        raised into the node.
        """
        if kind not in self._listeners:
            raise ConfigError(f"unknown event kind {kind!r}; expected one of {EVENT_KINDS}")
        self._listeners[kind].append(listener)

    def _emit(self, event: NodeEvent) -> None:
        for listener in self._listeners[event.kind]:
            try:
                result = listener(event)
                if inspect.isawaitable(result):
                    task = asyncio.ensure_future(result)
                    task.add_done_callback(self._listener_done)
            except Exception:
                self.logger.exception("listener for %s raised", event.kind)

    def _listener_done(self, task: asyncio.Future[Any]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.logger.error("listener task raised", exc_info=task.exception())

    # -- the drain point ----------------------------------------------------------------------
    def _transmit(self) -> None:
        """Send what the core produced, dispatch its events, re-arm the timer."""
        endpoint = self._endpoint
        now = self._now()
        for packet, addr in endpoint.datagrams_to_send(now):
            if isinstance(addr, WSLink):
                addr.send(packet)
            elif self._udp is not None:
                self._udp.sendto(packet, addr)  # type: ignore[arg-type]
        for event in endpoint.events_received():
            self._dispatch(event)
        # Wake everything waiting for acknowledgements or credit (backpressure, drain()).
        self._progress.set()
        self._progress = asyncio.Event()
        deadline = endpoint.get_timer()
        if deadline != self._timer_at or self._timer is None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._timer_at = deadline
            if deadline is not None and not self._stopped:
                assert self._loop is not None
                self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        now = max(self._now(), self._timer_at or 0.0)
        self._timer_at = None
        self._endpoint.handle_timer(now)
        self._transmit()

    def _on_udp(self, data: bytes, addr: tuple[str, int]) -> None:
        # The drain point (_transmit) runs once per batch of datagrams (UDPTransport).
        config = self.config
        self._endpoint.receive_datagram(
            data,
            addr,
            self._now(),
            config.udp_max_record_size,
            config.udp_pmtu_probe_max,
            source=addr[0],  # the handshake rate limit is per host, whatever the port (§10)
        )

    def _on_ws_packet(self, data: bytes, link: WSLink) -> None:
        self._endpoint.receive_datagram(
            data, link, self._now(), self.config.websocket_max_record_size, source=link.remote_host
        )
        self._transmit()

    def _on_ws_closed(self, link: WSLink) -> None:
        self._ws_links.discard(link)
        self._ws_refused_closed[0] += link.text_frames_refused
        self._ws_refused_closed[1] += link.oversized_refused
        if self._loop is None or self._stopped:
            return
        self._endpoint.abort_address(link, CLOSE_GOING_AWAY, "websocket connection closed")
        self._transmit()

    def _transport_of(self, addr: Hashable) -> str:
        return "websocket" if isinstance(addr, WSLink) else "udp"

    def _dispatch(self, event: Event) -> None:
        if isinstance(event, MessageReceived):
            wrapper = self._wrappers.get(event.session_id)
            if wrapper is None:  # pragma: no cover - established always precedes data
                return
            packet = ReceivedPacket(
                session_id=event.session_id,
                stream_id=event.channel,
                data=event.data,
                peer_node_id=wrapper.peer_node_id,
                transport=wrapper.transport_type or "udp",
                received_at=time.time(),
            )
            self._rx.put_nowait((packet, event.credit))
        elif isinstance(event, StreamDataReceived):
            wrapper = self._wrappers.get(event.session_id)
            if wrapper is not None:
                wrapper._on_stream_data(event.stream_id, event.data, event.fin)
        elif isinstance(event, PongReceived):
            wrapper = self._wrappers.get(event.session_id)
            if wrapper is not None:
                wrapper._on_pong(event.token)
        elif isinstance(event, StreamOpened):
            wrapper = self._wrappers.get(event.session_id)
            if wrapper is not None:
                wrapper._on_stream_opened(event.stream_id)
        elif isinstance(event, StreamReset):
            wrapper = self._wrappers.get(event.session_id)
            if wrapper is not None:
                wrapper._on_stream_reset(event.stream_id, event.code, event.sending)
        elif isinstance(event, DatagramReceived):
            wrapper = self._wrappers.get(event.session_id)
            if wrapper is not None:
                wrapper._on_datagram(event.data)
        elif isinstance(event, SessionEstablished):
            self._on_established(event)
        elif isinstance(event, HandshakeAborted):
            pending = self._connects.pop(event.handle, None)
            if pending is not None and not pending.future.done():
                error: HandshakeError = (
                    HandshakeTimeout(
                        "no valid handshake answer before the timeout: the peer is unreachable, "
                        "not in server mode, or does not share our shared_seed"
                    )
                    if event.timeout
                    else HandshakeError(f"handshake failed: {event.reason}")
                )
                pending.future.set_exception(error)
        elif isinstance(event, KeyRotated):
            wrapper = self._wrappers.get(event.session_id)
            if wrapper is not None:
                wrapper._on_key_rotated(event.key_version)
                self._emit(NodeEvent("key_rotated", wrapper, key_version=event.key_version))
        elif isinstance(event, PeerAddressChanged):
            wrapper = self._wrappers.get(event.session_id)
            if wrapper is not None:
                wrapper.log.info("peer address changed")
                self._emit(
                    NodeEvent(
                        "peer_address_changed",
                        wrapper,
                        old_address=event.old,
                        new_address=event.new,
                    )
                )
        elif isinstance(event, SessionClosed):
            wrapper = self._wrappers.pop(event.session_id, None)
            if wrapper is not None:
                wrapper.log.info(
                    "session closed (code %d%s)", event.code, ", by peer" if event.by_peer else ""
                )
                wrapper._on_closed(event.code, event.reason, event.by_peer)
                self._emit(
                    NodeEvent(
                        "session_closed",
                        wrapper,
                        code=event.code,
                        reason=event.reason,
                        by_peer=event.by_peer,
                    )
                )

    def _on_established(self, event: SessionEstablished) -> None:
        core = self._endpoint.sessions.get(event.session_id)
        if core is None:  # pragma: no cover - closed in the same drain
            return
        wrapper = STTSession(
            self,
            event.session_id,
            event.peer_node_id,
            capabilities=core.peer_capabilities,
            core=core,
            transport_type=self._transport_of(event.addr),
            created_at=self._unix(core.created_at),
        )
        self._wrappers[event.session_id] = wrapper
        self.session_manager._add(wrapper)
        wrapper.log.info(
            "session established with %s over %s (%s)",
            event.peer_node_id.hex()[:16],
            wrapper.transport_type,
            "initiator" if event.initiator else "responder",
        )
        if event.handle is not None:
            pending = self._connects.pop(event.handle, None)
            if pending is not None and not pending.future.done():
                pending.future.set_result(wrapper)
        self._emit(NodeEvent("session_established", wrapper))

    # -- connecting ---------------------------------------------------------------------------
    async def _resolve_udp(self, host: str, port: int) -> tuple[str, int]:
        assert self._loop is not None
        assert self._udp is not None
        try:
            ipaddress.ip_address(host)
            return (host, port)
        except ValueError:
            pass
        family = socket.AF_INET6 if ":" in self._udp.address[0] else socket.AF_INET
        infos = await self._loop.getaddrinfo(host, port, family=family, type=socket.SOCK_DGRAM)
        if not infos:  # pragma: no cover - getaddrinfo raises instead
            raise HandshakeError(f"cannot resolve {host!r}")
        sockaddr = infos[0][4]
        return (str(sockaddr[0]), int(sockaddr[1]))

    async def _handshake(
        self,
        addr: Hashable,
        transport: str,
        link: WSLink | None,
        max_record_size: int,
        timeout: float,
    ) -> STTSession:
        assert self._loop is not None
        handle = self._endpoint.connect(
            addr,
            self._now(),
            timestamp_ns=time.time_ns(),
            max_record_size=max_record_size,
            timeout_s=timeout,
            probe_max=self.config.udp_pmtu_probe_max if transport == "udp" else 0,
        )
        future: asyncio.Future[STTSession] = self._loop.create_future()
        self._connects[handle] = _Connect(future, transport, link)
        self._transmit()
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            self._connects.pop(handle, None)
            if not self._stopped:
                self._endpoint.cancel_connect(handle, self._now())
                self._transmit()
            raise

    async def connect_udp(self, host: str, port: int, *, timeout: float = 10.0) -> STTSession:
        """Handshake with the node at ``host:port`` over UDP and return the session.

        Raises :class:`HandshakeTimeout` when no valid answer comes within ``timeout`` seconds
        (a peer with another shared seed never answers) and :class:`HandshakeError` otherwise.
        """
        self._require_running()
        if timeout <= 0:
            raise ConfigError("timeout must be positive")
        addr = await self._resolve_udp(host, port)
        return await self._handshake(addr, "udp", None, self.config.udp_max_record_size, timeout)

    async def connect_websocket(
        self, url: str, *, timeout: float = 10.0, ssl: ssl_module.SSLContext | None = None
    ) -> STTSession:
        """Open a WebSocket to ``url`` (``ws://`` or ``wss://``, path ``/stt``) and handshake."""
        self._require_running()
        if not url.startswith(("ws://", "wss://")):
            raise ConfigError("url must start with ws:// or wss://")
        if timeout <= 0:
            raise ConfigError("timeout must be positive")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            link, task = await open_client_link(
                url,
                self._on_ws_packet,
                self._on_ws_closed,
                max_size=self.config.websocket_max_record_size,
                ssl=ssl,
                open_timeout=timeout,
            )
        except (OSError, TimeoutError) as exc:
            raise HandshakeError(f"cannot open a WebSocket to {url}: {exc}") from exc
        except Exception as exc:  # websockets' InvalidURI, InvalidHandshake, ...
            raise HandshakeError(f"cannot open a WebSocket to {url}: {exc}") from exc
        self._ws_links.add(link)
        self._ws_tasks.add(task)
        task.add_done_callback(self._ws_tasks.discard)
        remaining = max(deadline - loop.time(), 0.001)
        try:
            return await self._handshake(
                link, "websocket", link, self.config.websocket_max_record_size, remaining
            )
        except BaseException:
            await link.aclose()
            raise

    # -- data ---------------------------------------------------------------------------------
    def _check_message(self, data: bytes) -> bytes:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"data must be bytes, not {type(data).__name__}")
        if len(data) > self.config.max_message_size:
            raise MessageTooLarge(
                f"message of {len(data)} bytes exceeds max_message_size "
                f"({self.config.max_message_size})"
            )
        return bytes(data)

    async def _send_one(self, session_id: bytes, data: bytes, stream_id: int) -> None:
        self._require_running()
        payload = self._check_message(data)
        _check_channel(stream_id)
        try:
            self._endpoint.send_message(session_id, stream_id, payload, self._now())
        finally:
            self._transmit_soon()
        await self._backpressure((session_id,))

    async def _wait_progress(self) -> None:
        """Wait until the next drain (an acknowledgement, new credit, a timer)."""
        await self._progress.wait()

    def _transmit_soon(self) -> None:
        """The drain point for application calls: the first call in a loop turn drains at once
        (no added latency), later calls in the same turn share one drain at the end of the turn,
        so many small sends share records instead of each sealing its own."""
        if self._transmit_scheduled or self._loop is None:
            return
        self._transmit()
        self._transmit_scheduled = True
        self._loop.call_soon(self._transmit_deferred)

    def _transmit_deferred(self) -> None:
        self._transmit_scheduled = False
        if not self._stopped:
            self._transmit()

    async def _backpressure(self, session_ids: Iterable[bytes]) -> None:
        """Wait while a target session holds more than SEND_HIGH_WATER_BYTES unacknowledged,
        or its transport's queue is full. Yields at least every YIELD_EVERY_SENDS calls, so a
        task sending in a loop cannot starve the loop (readers, timers and stop() run there)."""
        self._sends_since_yield += 1
        if self._sends_since_yield >= YIELD_EVERY_SENDS:
            self._sends_since_yield = 0
            await asyncio.sleep(0)
        for session_id in session_ids:
            while not self._stopped:
                core = self._endpoint.sessions.get(session_id)
                if core is None or core.send_buffered <= SEND_HIGH_WATER_BYTES:
                    break
                await self._wait_progress()
            core = self._endpoint.sessions.get(session_id)
            if core is not None and isinstance(core.addr, WSLink):
                await core.addr.wait_writable()
        if self._udp is not None and self._udp.queued:
            await self._udp.wait_writable()

    async def send_to_sessions(
        self, session_ids: Iterable[bytes], data: bytes, stream_id: int = 0
    ) -> None:
        """Send ``data`` as one message on channel ``stream_id`` to each session.

        Each message arrives as exactly one :class:`ReceivedPacket`, in order per (session,
        channel). Raises :class:`MessageTooLarge` before sending anything if ``data`` exceeds
        ``config.max_message_size``. Ids with no live, active session do not stop the others:
        after sending to every other session, raises :class:`SessionNotFound` whose
        ``session_ids`` lists the ids that were not sent to.
        """
        self._require_running()
        payload = self._check_message(data)
        if isinstance(session_ids, bytes):
            raise TypeError("session_ids must be an iterable of session ids, not one id")
        _check_channel(stream_id)
        failed: list[bytes] = []
        sent: list[bytes] = []
        now = self._now()
        for session_id in session_ids:
            try:
                self._endpoint.send_message(session_id, stream_id, payload, now)
                sent.append(session_id)
            except (SessionNotFound, SessionClosedError):
                failed.append(session_id)
        self._transmit_soon()
        await self._backpressure(sent)
        if failed:
            raise SessionNotFound(
                "not sent to "
                + ", ".join(sid.hex() for sid in failed)
                + ": no active session with that id",
                tuple(failed),
            )

    async def send_to_all(self, data: bytes, stream_id: int = 0) -> int:
        """Send ``data`` to every active session; returns how many sessions it was sent to."""
        ids = [s.session_id for s in self.session_manager.get_active_sessions() if not s.is_manual]
        if ids:
            await self.send_to_sessions(ids, data, stream_id)
        return len(ids)

    async def receive(self) -> AsyncIterator[ReceivedPacket]:
        """Yield every application message received, until the node stops.

        Cancelling the iteration loses nothing: undelivered packets stay queued for the next
        call.
        """
        while True:
            item = await self._rx.get()
            if item is None:
                self._rx.put_nowait(None)  # let every other consumer end too
                return
            packet, credit = item
            if credit and not self._stopped:
                # Taking the message frees its share of the flow-control window (§16.3).
                self._endpoint.consume_message(packet.session_id, packet.stream_id, credit)
                self._transmit_soon()
            yield packet

    # -- statistics ---------------------------------------------------------------------------
    def get_stats(self) -> dict[str, Any]:
        """Node-wide figures: sessions (the manager's stats), transports, drops by reason."""
        ep = self._endpoint
        udp = self._udp
        return {
            "node_id": self.node_id.hex(),
            "running": self.is_running,
            "server_mode": self.server_mode,
            "sessions": self.session_manager.get_stats(),
            "handshakes": {
                "started": ep.handshakes_started,
                "failed": ep.handshakes_failed,
                "in_flight": ep.live_handshakes(),
            },
            "transports": {
                "udp": {
                    "address": self.udp_address,
                    "datagrams_sent": udp.datagrams_sent if udp else 0,
                    "datagrams_received": udp.datagrams_received if udp else 0,
                    "send_errors": udp.send_errors if udp else 0,
                    "send_dropped": udp.send_dropped if udp else 0,
                },
                "websocket": {
                    "url": self.ws_url,
                    "connections": len(self._ws_links),
                    # connections closed for a text message (1003) or an oversized one (1009)
                    "text_frames_refused": self._ws_refused_closed[0]
                    + sum(link.text_frames_refused for link in self._ws_links),
                    "oversized_refused": self._ws_refused_closed[1]
                    + sum(link.oversized_refused for link in self._ws_links),
                },
            },
            "packets_received": ep.packets_received,
            "packets_sent": ep.packets_sent,
            "bytes_received": ep.bytes_received,
            "bytes_sent": ep.bytes_sent,
            # every reason of docs/protocol.md §11, zero or not
            "drops": {reason: ep.drops[reason] for reason in DROP_REASONS} | dict(ep.drops),
            "drops_total": sum(ep.drops.values()),
            "receive_queue": self._rx.qsize(),
        }
