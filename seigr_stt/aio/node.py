"""``STTNode``: the asyncio runtime around the sans-I/O endpoint (api.md).

The node is the facade: it checks arguments, starts and stops the transports, opens sessions
(``connect_*``), sends to many sessions, collects received messages for :meth:`STTNode.receive`,
calls event listeners and reports statistics. A :class:`~seigr_stt.aio.driver.Driver` owns the
endpoint, the clock, the one drain point and the timer; the sessions, streams and the manager
know the driver, never the node.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import inspect
import ipaddress
import logging
import os
import socket
import ssl as ssl_module
import time
from collections.abc import AsyncIterator, Callable, Hashable, Iterable
from dataclasses import fields
from types import MappingProxyType, TracebackType
from typing import Any, Literal

from seigr_stt.aio.driver import Driver
from seigr_stt.aio.inbox import Inbox, InboxClosed, InboxIterator, check_wait_timeout
from seigr_stt.aio.manager import SessionManager
from seigr_stt.aio.peer import (
    PeerSession,
    SessionHooks,
    check_channel,
    check_message,
    return_credit,
)
from seigr_stt.aio.relay import RelayLink, check_node_id, normalize_relay_url
from seigr_stt.aio.session import (
    EVENT_KINDS,
    EventSource,
    NodeEvent,
    ReceivedPacket,
    STTSession,
    check_timeout,
)
from seigr_stt.aio.stats import NodeStats, UDPStats, WebSocketStats
from seigr_stt.aio.udp import UDPTransport, ip_version
from seigr_stt.aio.websocket import WebSocketTransport, WSLink
from seigr_stt.config import NodeConfig
from seigr_stt.constants import (
    CLOSE_ATTEMPTS,
    CLOSE_RETRANSMIT_S,
    NODE_ID_BYTES,
    PATH_PROBES_MAX,
    PATHS_MAX_ENTRIES,
    RELAY_REGISTER_TIMEOUT_S,
    SESSION_ID_BYTES,
    WEBSOCKET_PATH,
    CloseCode,
)
from seigr_stt.core.endpoint import Endpoint
from seigr_stt.core.events import (
    Event,
    HandshakeAborted,
    PathChanged,
    PathDegraded,
    PathsAnnounced,
    SessionEstablished,
)
from seigr_stt.core.identity import NodeIdentity, SharedSecrets, parse_seed
from seigr_stt.core.link import Link, RelayAddress, TransportKind
from seigr_stt.core.session import Session
from seigr_stt.exceptions import (
    BindError,
    ConfigError,
    HandshakeError,
    HandshakeTimeout,
    ProtocolError,
    RelayError,
    SessionClosedError,
    SessionNotFound,
    STTError,
    WeakSeedError,
)
from seigr_stt.logs import format_addr
from seigr_stt.ticket import TICKET_MAX_ENTRIES, NodeTicket, looks_like_ticket, unique

__all__ = ["EVENT_KINDS", "STTNode"]


def _allowed_peers(
    allowed: Iterable[bytes] | Callable[[bytes], bool] | None,
) -> Callable[[bytes], bool] | None:
    """``allowed_peers`` as a callable; ConfigError for anything but 32-byte node ids."""
    if allowed is None or callable(allowed):
        return allowed
    if isinstance(allowed, bytes | str):
        raise ConfigError("allowed_peers must be an iterable of node ids, not one id")
    ids = frozenset(allowed)
    for node_id in ids:
        if not isinstance(node_id, bytes) or len(node_id) != NODE_ID_BYTES:
            raise ConfigError(
                f"allowed_peers holds node ids of {NODE_ID_BYTES} bytes, not {node_id!r}"
            )
    return ids.__contains__


def check_host(host: object) -> None:
    """A host to connect to: a non-empty str (a name or an IP literal). TypeError otherwise,
    ConfigError for an empty one."""
    if not isinstance(host, str):
        raise TypeError(f"host must be a str, not {type(host).__name__}")
    if not host:
        raise ConfigError("host must not be empty")


def check_port(port: object, name: str = "port") -> None:
    """A port to connect to: an int within 1..65535. TypeError for a non-int (a str "9000"
    included), ConfigError outside the range."""
    if isinstance(port, bool) or not isinstance(port, int):
        raise TypeError(f"{name} must be an int, not {type(port).__name__}")
    if not 1 <= port <= 65535:
        raise ConfigError(f"{name} must be within 1..65535, not {port}")


def _bind_error(transport: str, host: str, port: int | None, exc: OSError) -> BindError:
    """``exc`` (from binding ``host:port``) as a BindError naming the transport and address."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if isinstance(exc, socket.gaierror):
        text = f"cannot bind {transport} to {where}: the host does not resolve ({exc.strerror})"
    else:
        text = f"cannot bind {transport} to {where}: {exc.strerror or exc}"
    return BindError(exc.errno, text) if exc.errno is not None else BindError(text)


#: stop() first lets sessions deliver what was written (up to the drain limit), then closes.
_STOP_CLOSE_WAIT_S = CLOSE_ATTEMPTS * CLOSE_RETRANSMIT_S + 3.0

Listener = Callable[[NodeEvent], Any]


def _relay_urls(relays: Iterable[str] | None) -> list[str]:
    """Relay URLs, checked and normalized (TypeError / ConfigError)."""
    if relays is None:
        return []
    if isinstance(relays, str | bytes):
        raise TypeError("relays must be an iterable of URLs, not one URL")
    return [normalize_relay_url(url) for url in relays]


def _unspecified(host: str) -> bool:
    """Whether ``host`` is a wildcard address (0.0.0.0, ::): a bound socket's, never a peer's."""
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def _same_family(host: str, bound: str) -> bool:
    """Whether a socket bound to ``bound`` can send to ``host`` (a name: maybe, so yes)."""
    version, bound_version = ip_version(host), ip_version(bound)
    return version is None or bound_version is None or version == bound_version


def _transport_of(addr: object) -> str:
    """The transport label of a session's address: websocket, relay or udp."""
    if isinstance(addr, WSLink):
        return "websocket"
    if isinstance(addr, RelayAddress):
        return "relay"
    return "udp"


class STTNode(EventSource):
    """An encrypted peer-to-peer node: UDP always, WebSocket when ``ws_port`` is set.

    ``node_seed`` is this node's private seed (its identity: the same seed gives the same
    :attr:`node_id`); ``shared_seed`` is shared by every authorized peer. Both are bytes or
    hex/base64 text of at least 32 random bytes, and they must differ; a weak seed raises
    :class:`~seigr_stt.exceptions.WeakSeedError` here. Nothing is bound until :meth:`start`.

    ``allowed_peers`` pins the peers: the node ids (32 bytes each) of the members this node may
    hold sessions with, or a callable ``allowed(node_id) -> bool``; None (the default) accepts
    every holder of the shared seed. A refused peer's handshake fails: when we connect, with a
    :class:`~seigr_stt.exceptions.HandshakeError` naming it; when it connects, it is dropped and
    counted as ``peer_refused`` (it sees no answer).

    ``server_mode=True`` makes :meth:`start` (and ``async with``) accept peers' handshakes, so a
    server is ``async with STTNode(..., server_mode=True) as node:`` with no separate
    ``start()`` call; ``start(server_mode=...)`` still overrides it.

    ``relays`` (URLs ``udp://host:port``, ``ws://host:port/stt``, ``wss://...``): :meth:`start`
    registers the node at each, so that peers can reach it by node id through them
    (:meth:`connect`; in server mode it accepts their handshakes). docs/relay.md.
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
        allowed_peers: Iterable[bytes] | Callable[[bytes], bool] | None = None,
        server_mode: bool = False,
        relays: Iterable[str] | None = None,
    ) -> None:
        self._relay_urls = _relay_urls(relays)
        if not isinstance(server_mode, bool):
            raise TypeError(f"server_mode must be a bool, not {type(server_mode).__name__}")
        self._identity = NodeIdentity.from_seed(node_seed)
        self._secrets = SharedSecrets.from_seed(shared_seed)
        if hmac.compare_digest(
            parse_seed(node_seed, "node_seed"), parse_seed(shared_seed, "shared_seed")
        ):
            raise WeakSeedError(
                "node_seed and shared_seed must differ: the node seed is this node's private "
                "identity, the shared seed is what every authorized peer holds"
            )
        self.allowed_peers = _allowed_peers(allowed_peers)
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
        endpoint = Endpoint(
            self._identity,
            self._secrets,
            self.config,
            os.urandom,
            accept_incoming=False,
            allowed_peers=self.allowed_peers,
        )
        self._driver = Driver(
            endpoint,
            on_established=self._on_established,
            on_aborted=self._on_aborted,
            logger=self.logger,
        )
        self.session_manager = SessionManager(self._driver, self.config.max_sessions)
        # (packet, flow-control credit to return once the application has taken it), for
        # node.receive(): the messages of every session without a reader of its own
        self._rx: Inbox[tuple[ReceivedPacket, int]] = Inbox()
        self._hooks = SessionHooks(
            deliver=self._rx.put,
            emit=self._emit,
            on_closed=self.session_manager.forget,
            claim=self._claim,
            paths=self._on_path_event,
        )
        self._ws = WebSocketTransport(
            self._driver.receive_websocket,
            self._on_ws_closed,
            self.config,
            carries=self._driver.endpoint.bound_to,
            on_room=self._driver.link_room,
        )
        self._connects: dict[int, asyncio.Future[PeerSession]] = {}
        self._sessions: dict[bytes, PeerSession] = {}
        # The WebSocket link each WebSocket session was established over (its idle timer
        # restarts when the session closes).
        self._ws_session_links: dict[bytes, WSLink] = {}
        self._listeners: dict[str, list[Listener]] = {kind: [] for kind in EVENT_KINDS}
        self._started = False
        self._stopped = False
        self._server_mode_default = server_mode
        self.server_mode = False
        self._relays: dict[str, RelayLink] = {}
        #: How this node reaches a public UDP address (§18): None sends to it directly. A test
        #: puts the node behind a NAT box with ``node.udp_route = box.route``
        #: (``seigr_stt.testing.NATBox``: the box's inside address standing for that remote).
        self.udp_route: Callable[[tuple[str, int]], tuple[str, int]] | None = None
        # The WebSocket URLs each peer announced (PATHS), and the sessions opening one now.
        self._peer_websockets: dict[bytes, tuple[str, ...]] = {}
        self._opening: set[bytes] = set()
        self._path_tasks: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return (
            f"STTNode(node_id={self.node_id.hex()[:16]}…, udp={self.udp_address}, "
            f"ws={self.ws_url}, started={self._started and not self._stopped}"
            f"{', stopped=True' if self._stopped else ''})"
        )

    # -- identity, addresses, internals -------------------------------------------------------
    @property
    def node_id(self) -> bytes:
        """32 bytes derived from ``node_seed``: stable across restarts."""
        return self._identity.node_id

    @property
    def udp_address(self) -> tuple[str, int] | None:
        """The ``(host, port)`` the UDP socket is bound to, once started."""
        udp = self._driver.udp
        return udp.address if udp is not None else None

    @property
    def udp_transport(self) -> UDPTransport | None:
        """The UDP transport once started (``udp_transport.is_running``, ``.address``)."""
        return self._driver.udp

    @property
    def ws_url(self) -> str | None:
        """``ws://host:port/stt`` (``wss://`` with TLS) when serving WebSocket, else None."""
        if self._ws.server is None:
            return None
        host, port = self._ws.server.address
        if ":" in host:
            host = f"[{host}]"
        scheme = "wss" if self._ws.tls else "ws"
        return f"{scheme}://{host}:{port}{WEBSOCKET_PATH}"

    @property
    def websocket_links(self) -> frozenset[WSLink]:
        """The open WebSocket connections, accepted and initiated."""
        return frozenset(self._ws.links)

    @property
    def is_running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._started and not self._stopped

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop the node runs on, once started."""
        return self._driver.loop

    @property
    def endpoint(self) -> Endpoint:
        """The sans-I/O protocol endpoint this node drives (for inspection by tools and tests;
        changing it behind the node's back is unsupported)."""
        return self._driver.endpoint

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(
        self,
        server_mode: bool | None = None,
        *,
        ssl: ssl_module.SSLContext | None = None,
        relays: Iterable[str] | None = None,
    ) -> None:
        """Bind UDP ``host:port`` (and WebSocket ``host:ws_port`` if set) and start serving.

        ``server_mode=True`` also accepts peers' handshakes; otherwise the node only takes part
        in sessions it initiates (None: the constructor's ``server_mode``, False by default).
        ``ssl`` makes the WebSocket server serve ``wss://``. Raises :class:`BindError` (an
        :class:`OSError`, naming the address) when a port is busy or the host is not local, and
        :class:`ProtocolError` on a node already started or stopped. ``relays`` adds to the
        constructor's: the node registers at each before this returns (:class:`RelayError`
        when one refuses or does not answer; the node is then stopped).
        """
        extra_relays = _relay_urls(relays)
        if self._stopped:
            raise ProtocolError("a stopped node cannot be restarted; create a new STTNode")
        if self._started:
            raise ProtocolError("node already started")
        if server_mode is None:
            server_mode = self._server_mode_default
        elif not isinstance(server_mode, bool):
            raise TypeError(f"server_mode must be a bool, not {type(server_mode).__name__}")
        driver = self._driver
        driver.start(asyncio.get_running_loop())
        self.server_mode = server_mode
        driver.endpoint.accept_incoming = server_mode
        config = self.config
        driver.udp_link = Link(
            TransportKind.UDP, config.udp_max_record_size, config.udp_pmtu_probe_max
        )
        try:
            driver.udp = await UDPTransport.bind(
                self.host, self.port, driver.receive_udp, driver.transmit
            )
        except OSError as exc:
            raise _bind_error("UDP", self.host, self.port, exc) from exc
        try:
            if self.ws_port is not None:
                await self._ws.serve(self.host, self.ws_port, ssl)
        except BaseException as exc:
            driver.udp.close()
            driver.udp = None
            if isinstance(exc, OSError) and not isinstance(exc, STTError):
                raise _bind_error("WebSocket", self.host, self.ws_port, exc) from exc
            raise
        self._started = True
        try:
            for url in dict.fromkeys(self._relay_urls + extra_relays):
                await self._relay(url)
        except BaseException:
            await self.stop()
            raise
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
        driver = self._driver
        udp_address, ws_url = self.udp_address, self.ws_url  # for the log line, before closing
        now = driver.now()
        for session in list(driver.endpoint.sessions.values()):
            with contextlib.suppress(STTError):
                session.close(CloseCode.GOING_AWAY, "node stopping", now, drain=True)
        driver.transmit()
        waiting = [s.wait_closed() for s in self._sessions.values()]
        if waiting:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*waiting), _STOP_CLOSE_WAIT_S)
        for session in list(driver.endpoint.sessions.values()):
            session.abort(CloseCode.GOING_AWAY, "node stopped")
        driver.transmit()
        self._stopped = True
        driver.stop()
        for future in self._connects.values():
            if not future.done():
                future.set_exception(HandshakeError("node stopped"))
                # Its connect_* call raises it; nobody else must be told it went unretrieved.
                future.exception()
        self._connects.clear()
        for task in list(self._path_tasks):
            task.cancel()
        self.session_manager.end_manual_sessions(CloseCode.GOING_AWAY, "node stopped")
        for relay in self._relays.values():
            await relay.aclose()
        await self._ws.close()
        if driver.udp is not None:
            driver.udp.close()
        self._rx.close()
        self.logger.info(
            "node %s stopped: udp %s, websocket %s", self.node_id.hex()[:16], udp_address, ws_url
        )

    async def __aenter__(self) -> STTNode:
        """Start the node (in the constructor's ``server_mode``) unless already started.
        A stopped node cannot be entered again: :class:`ProtocolError`."""
        if self._stopped:
            raise ProtocolError("a stopped node cannot be restarted; create a new STTNode")
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
        if not callable(listener):
            raise TypeError(f"listener must be callable, not {type(listener).__name__}")
        self._listeners[kind].append(listener)

    def off(self, kind: str, listener: Listener) -> None:
        """Stop calling ``listener`` for ``kind`` (added with :meth:`on`). Raises
        :class:`ConfigError` for an unknown kind and :class:`ValueError` when ``listener`` was
        not added for it."""
        if kind not in self._listeners:
            raise ConfigError(f"unknown event kind {kind!r}; expected one of {EVENT_KINDS}")
        if listener not in self._listeners[kind]:
            raise ValueError(f"listener {listener!r} is not registered for {kind!r}")
        self._listeners[kind].remove(listener)

    def _emit(self, event: NodeEvent) -> None:
        if event.kind == "session_closed":
            self._sessions.pop(event.session.session_id, None)
            self._peer_websockets.pop(event.session.session_id, None)
            link = self._ws_session_links.pop(event.session.session_id, None)
            if link is not None:
                self._ws.released(link)
        for listener in list(self._listeners[event.kind]):
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

    def _claim(self, session_id: bytes) -> list[tuple[ReceivedPacket, int]]:
        """A session got its own reader: its messages waiting here move to it, in order."""
        return self._rx.take_where(lambda item: item[0].session_id == session_id)

    def _on_established(self, event: SessionEstablished) -> None:
        core = self._driver.get_session(event.session_id)
        if core is None:  # pragma: no cover - closed in the same drain
            return
        transport = _transport_of(event.addr)
        if isinstance(event.addr, WSLink):
            # No longer pending, and only the idle timeout applies (docs/protocol.md §12.2).
            self._ws.established(event.addr)
            self._ws_session_links[event.session_id] = event.addr
        session = PeerSession(
            self._driver, core, transport_type=transport, hooks=self._hooks, logger=self.logger
        )
        self._sessions[event.session_id] = session
        self.session_manager.track(session)
        self._announce_paths(core)
        if self.logger.isEnabledFor(logging.INFO):  # a session's log adapter is made on use
            session.log.info(
                "session established with %s over %s (%s)",
                event.peer_node_id.hex()[:16],
                transport,
                "initiator" if event.initiator else "responder",
            )
        if event.handle is not None:
            future = self._connects.pop(event.handle, None)
            if future is not None and not future.done():
                future.set_result(session)
        self._emit(NodeEvent("session_established", session))

    # -- paths (docs/protocol.md §18) ---------------------------------------------------------
    def announced_paths(self) -> tuple[tuple[tuple[str, int], ...], tuple[str, ...]]:
        """What this node tells each new peer about its other addresses (a PATHS frame): the
        UDP addresses its relays observed (``udp://`` relays), its own UDP address when bound to
        a specific non-loopback one, and its WebSocket URL when it serves one."""
        udp: list[tuple[str, int]] = []
        for relay in self._relays.values():
            if relay.observed is not None and relay.observed not in udp:
                udp.append(relay.observed)
        bound = self.udp_address
        if bound is not None:
            try:
                ip = ipaddress.ip_address(bound[0])
            except ValueError:  # pragma: no cover - the socket's own address is a literal
                ip = None
            if ip is not None and not (ip.is_loopback or ip.is_unspecified) and bound not in udp:
                udp.append(bound)
        websocket = (self.ws_url,) if self.ws_url is not None else ()
        return tuple(udp[: PATHS_MAX_ENTRIES - len(websocket)]), websocket

    def _announce_paths(self, core: Session) -> None:
        if not self.config.migration:
            return
        udp, websocket = self.announced_paths()
        if core.transport == "websocket":
            websocket = ()  # the peer reaches us there already
        if udp or websocket:
            core.announce_paths(udp, websocket)
            self._driver.transmit_soon()

    def _route_udp(self, addr: tuple[str, int]) -> tuple[str, int]:
        return self.udp_route(addr) if self.udp_route is not None else addr

    def _on_path_event(self, session: PeerSession, event: Event) -> None:
        """A session's path event (§18): probe what the peer announced, open a WebSocket when
        the path degraded, keep the WebSocket links' timers right."""
        driver = self._driver
        core = driver.get_session(session.session_id)
        if core is None or self._stopped:
            return
        if isinstance(event, PathsAnnounced):
            first = session.session_id not in self._peer_websockets
            self._peer_websockets[session.session_id] = event.websocket
            link = driver.udp_link
            # Only the first PATHS of a session is probed (hole punching: both peers probe at
            # once), and at most PATH_PROBES_MAX addresses: a peer cannot make this node send
            # probes to addresses of its choosing again and again.
            if first and core.transport != "udp" and link is not None and driver.udp is not None:
                family = ":" in driver.udp.address[0]
                same = [addr for addr in event.udp if (":" in addr[0]) == family]
                for addr in same[:PATH_PROBES_MAX]:
                    core.probe_path(self._route_udp(addr), link, driver.now())
                driver.transmit_soon()
        elif isinstance(event, PathDegraded):
            urls = self._peer_websockets.get(session.session_id, ())
            if (
                event.transport == "udp"
                and urls
                and session.session_id not in self._opening
                and not any(isinstance(a, WSLink) for a, _ in core.standby)
            ):
                self._opening.add(session.session_id)
                task = asyncio.get_running_loop().create_task(
                    self._open_websocket_path(session.session_id, urls[0])
                )
                self._path_tasks.add(task)
                task.add_done_callback(self._path_tasks.discard)
        elif isinstance(event, PathChanged):
            if isinstance(event.addr, WSLink):
                self._ws.established(event.addr)
                self._ws_session_links[session.session_id] = event.addr
            if isinstance(event.old_addr, WSLink) and event.old_addr is not event.addr:
                if self._ws_session_links.get(session.session_id) is event.old_addr:
                    del self._ws_session_links[session.session_id]
                self._ws.released(event.old_addr)

    async def _open_websocket_path(self, session_id: bytes, url: str) -> None:
        """Open a WebSocket to the peer's ``url`` and give it to the session as a path."""
        try:
            link = await self._ws.connect(url, ssl=None, open_timeout=RELAY_REGISTER_TIMEOUT_S)
        except Exception as exc:  # OSError, TimeoutError, websockets' errors
            self.logger.info("cannot open a WebSocket path to %s: %s", url, exc)
            return
        finally:
            self._opening.discard(session_id)
        core = self._driver.get_session(session_id)
        if core is None or self._stopped:
            await link.aclose()
            return
        self._ws.established(link)  # carries a session (soon): only the idle timeout applies
        core.probe_path(link, link.link, self._driver.now())
        self._driver.transmit_soon()

    def _on_aborted(self, event: HandshakeAborted) -> None:
        future = self._connects.pop(event.handle, None)
        if future is None or future.done():
            return
        if event.timeout:
            future.set_exception(
                HandshakeTimeout(
                    "no valid handshake answer before the timeout: the peer is unreachable, "
                    "not in server mode, or does not share our shared_seed"
                )
            )
        else:
            future.set_exception(
                HandshakeError(f"handshake failed: {event.reason}", code=event.code)
            )

    def _on_ws_closed(self, link: WSLink) -> None:
        if self._driver.loop is None or self._stopped:
            return
        self._driver.endpoint.abort_address(
            link, CloseCode.GOING_AWAY, "websocket connection closed"
        )
        self._driver.transmit()

    # -- connecting ---------------------------------------------------------------------------
    async def _handshake(
        self, addr: Hashable, link: Link, timeout: float, peer_node_id: bytes | None = None
    ) -> STTSession:
        driver = self._driver
        handle = driver.endpoint.connect(
            addr,
            driver.now(),
            link=link,
            timestamp_ns=time.time_ns(),
            timeout_s=timeout,
            peer_node_id=peer_node_id,
        )
        future: asyncio.Future[PeerSession] = asyncio.get_running_loop().create_future()
        self._connects[handle] = future
        transport = _transport_of(addr)
        # A WebSocket link's address is its connection's remote address.
        remote = getattr(getattr(addr, "connection", None), "remote_address", addr)
        where = format_addr(remote) or transport
        log_fields = {"stt_transport": transport, "stt_addr": format_addr(remote)}
        self.logger.info("handshake with %s over %s started", where, transport, extra=log_fields)
        try:
            driver.transmit()
            return await asyncio.shield(future)
        except HandshakeError as exc:
            self.logger.info("handshake with %s failed: %s", where, exc, extra=log_fields)
            raise
        except BaseException:
            # Cancelled, or the send itself failed: nothing of this handshake stays in flight.
            self._connects.pop(handle, None)
            if not self._stopped and not future.done():
                driver.endpoint.cancel_connect(handle, driver.now())
                driver.transmit()
            raise

    async def connect_udp(
        self,
        host: str,
        port: int,
        *,
        timeout: float = 10.0,
        peer_node_id: bytes | str | None = None,
    ) -> STTSession:
        """Handshake with the node at ``host:port`` over UDP and return the session.

        ``peer_node_id`` (32 bytes or 64 hex digits): the node there must prove this id in the
        handshake, or the handshake fails (:class:`HandshakeError`) before any session exists.
        Raises :class:`HandshakeTimeout` when no valid answer comes within ``timeout`` seconds
        (a peer with another shared seed never answers) and :class:`HandshakeError` otherwise.
        """
        check_host(host)
        check_port(port)
        check_timeout(timeout)
        expected = check_node_id(peer_node_id) if peer_node_id is not None else None
        self._require_running()
        udp = self._driver.udp
        assert udp is not None
        try:
            addr = await udp.resolve(host, port)
        except OSError as exc:
            raise HandshakeError(f"cannot resolve {host!r} (port {port}): {exc}") from exc
        bound = udp.address[0]
        if not _same_family(str(addr[0]), bound):
            raise ConfigError(
                f"cannot reach {host!r} over UDP: the node's socket is bound to {bound!r}, "
                "another address family (bind the node to a host of the same family)"
            )
        link = self._driver.udp_link
        assert link is not None
        return await self._handshake(addr, link, timeout, expected)

    async def connect_websocket(
        self,
        url: str,
        *,
        timeout: float = 10.0,
        ssl: ssl_module.SSLContext | None = None,
        proxy: str | Literal[True] | None = None,
        peer_node_id: bytes | str | None = None,
    ) -> STTSession:
        """Open a WebSocket to ``url`` (``ws://`` or ``wss://``, path ``/stt``) and handshake.

        ``peer_node_id``: as for :meth:`connect_udp`, the node must prove this id.

        ``proxy``: None (the default) connects directly; a proxy URL (``http://``,
        ``https://``, or ``socks5://`` with the ``python-socks`` package) connects through that
        proxy; True through the proxy the environment names (``HTTPS_PROXY``, ``ALL_PROXY``,
        ``NO_PROXY``), as the ``websockets`` library does by default. The session is
        end-to-end encrypted either way: the proxy sees only the WebSocket's records."""
        if not isinstance(url, str):
            raise TypeError(f"url must be a str, not {type(url).__name__}")
        if not url.startswith(("ws://", "wss://")):
            raise ConfigError("url must start with ws:// or wss://")
        if not (proxy is None or proxy is True or isinstance(proxy, str)):
            raise TypeError(f"proxy must be a URL, True or None, not {type(proxy).__name__}")
        check_timeout(timeout)
        expected = check_node_id(peer_node_id) if peer_node_id is not None else None
        self._require_running()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            link = await self._ws.connect(url, ssl=ssl, open_timeout=timeout, proxy=proxy)
        except (OSError, TimeoutError) as exc:
            raise HandshakeError(f"cannot open a WebSocket to {url}: {exc}") from exc
        except Exception as exc:  # websockets' InvalidURI, InvalidHandshake, ...
            raise HandshakeError(f"cannot open a WebSocket to {url}: {exc}") from exc
        remaining = max(deadline - loop.time(), 0.001)
        try:
            return await self._handshake(link, link.link, remaining, expected)
        except BaseException:
            await link.aclose()
            raise

    async def _connect_ticket(
        self, ticket: NodeTicket, relays: Iterable[str] | None, timeout: float
    ) -> STTSession:
        """:meth:`connect` with a ticket: every listed way at once, the first session wins."""
        check_timeout(timeout)
        self._require_running()
        if ticket.node_id == self.node_id:
            raise ConfigError("the ticket is this node's own")
        try:
            relay_urls = unique(
                [*_relay_urls(ticket.relays), *(_relay_urls(relays) if relays else [])]
            )
        except ConfigError as exc:
            raise ConfigError(f"a relay URL of the ticket: {exc}") from exc
        peer = ticket.node_id
        attempts: dict[asyncio.Task[STTSession], str] = {}

        def attempt(label: str, coro: Any) -> None:
            attempts[asyncio.ensure_future(coro)] = label

        udp = self.udp_address
        for host, port in ticket.addresses:
            if udp is not None and _same_family(host, udp[0]):
                attempt(
                    f"udp {format_addr((host, port))}",
                    self.connect_udp(
                        *self._route_udp((host, port)), timeout=timeout, peer_node_id=peer
                    ),
                )
        for url in ticket.websockets:
            attempt(
                f"websocket {url}",
                self.connect_websocket(url, timeout=timeout, peer_node_id=peer),
            )
        if relay_urls:
            attempt(
                f"relays {', '.join(relay_urls)}",
                self.connect(peer, relays=relay_urls, timeout=timeout),
            )
        if not attempts:
            raise ConfigError(
                "the ticket lists no UDP address of this node's address family, no WebSocket "
                "and no relay"
            )
        winner: STTSession | None = None
        errors: list[str] = []
        timeouts = 0
        try:
            pending: set[asyncio.Task[STTSession]] = set(attempts)
            while pending and winner is None:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in sorted(done, key=lambda t: attempts[t]):
                    error = task.exception()
                    if error is None:
                        if winner is None:
                            winner = task.result()
                    else:
                        timeouts += isinstance(error, TimeoutError)
                        errors.append(f"{attempts[task]}: {error}")
        finally:
            for task in attempts:
                task.cancel()
            outcomes = await asyncio.gather(*attempts, return_exceptions=True)
            for outcome in outcomes:
                if isinstance(outcome, STTSession) and outcome is not winner:
                    await outcome.close()  # a second way that completed before its cancel
        if winner is None:
            who = peer.hex()[:16]
            message = f"cannot reach node {who}… by its ticket: " + "; ".join(errors)
            if timeouts == len(errors):
                raise HandshakeTimeout(message)
            raise HandshakeError(message)
        return winner

    def ticket(self) -> NodeTicket:
        """A :class:`~seigr_stt.ticket.NodeTicket` for this node: its node id, the UDP address
        it is bound to (unless a wildcard such as 0.0.0.0) and those its relays observed, its
        WebSocket URL (unless bound to a wildcard) and its relays. ``str()`` of it is the text
        to hand to a peer (``stt connect TICKET``). :class:`ProtocolError` before
        :meth:`start` or after :meth:`stop`."""
        self._require_running()
        addresses: list[tuple[str, int]] = []
        udp = self.udp_address
        if udp is not None and not _unspecified(udp[0]):
            addresses.append(udp)
        for relay in self._relays.values():
            if relay.observed is not None:
                addresses.append(relay.observed)
        websockets = []
        ws_url = self.ws_url
        server = self._ws.server
        if ws_url is not None and server is not None and not _unspecified(server.address[0]):
            websockets.append(ws_url)
        return NodeTicket(
            self.node_id,
            tuple(unique(addresses)[:TICKET_MAX_ENTRIES]),
            tuple(websockets),
            tuple(list(self._relays)[:TICKET_MAX_ENTRIES]),
        )

    # -- relays -------------------------------------------------------------------------------
    @property
    def relays(self) -> tuple[str, ...]:
        """The URLs of the relays this node uses (registered at :meth:`start` or a
        :meth:`connect`)."""
        return tuple(self._relays)

    def relay_link(self, url: str) -> RelayLink | None:
        """The link to the relay ``url`` (its registration, observed address), or None."""
        return self._relays.get(normalize_relay_url(url))

    async def _relay(self, url: str, timeout: float = RELAY_REGISTER_TIMEOUT_S) -> RelayLink:
        """The registered link to relay ``url`` (registering first if need be)."""
        relay = self._relays.get(url)
        if relay is None:
            driver = self._driver
            relay = RelayLink(
                url,
                self._identity,
                driver.receive_relayed,
                driver.transmit,
                udp=driver.udp,
                logger=self.logger,
            )
            self._relays[url] = relay
            driver.relays[url] = relay
            if relay.kind == "udp":
                await relay.open()  # its answers come to our UDP socket: route them to it
                assert relay.udp_address is not None
                driver.udp_relays[relay.udp_address] = relay
        if not relay.registered:
            await relay.register(timeout)
        return relay

    async def connect(
        self,
        peer_node_id: bytes | str | NodeTicket,
        *,
        relays: Iterable[str] | None = None,
        timeout: float = 10.0,
    ) -> STTSession:
        """Dial a peer by its node id (32 bytes, or 64 hex digits) through a relay both are
        registered at, and return the session: the normal handshake (and then every record)
        goes through the relay, sealed end to end; the relay learns nothing (docs/relay.md).

        Given a :class:`~seigr_stt.ticket.NodeTicket` (or its text, ``stt...``), every way the
        ticket lists is tried at once: its UDP addresses and WebSocket URLs directly and its
        relays (plus ``relays``), each requiring the ticket's node id; the first session made
        wins and the other attempts are cancelled (a session that completed anyway is closed).
        The ticket's UDP addresses are addresses learned from elsewhere: they go through
        :attr:`udp_route` when it is set, as the addresses a peer announces do.
        :class:`HandshakeError` names every attempt and why it failed when none succeeds
        (:class:`HandshakeTimeout` when all timed out); :class:`TicketError` for a malformed
        ticket (docs/connecting-anywhere.md).

        ``relays`` are tried in order (default: the relays this node registered at); this node
        registers at each first if it has not. The session fails unless the peer proves
        ``peer_node_id`` in the handshake. Raises :class:`RelayError` when no relay takes
        the registration, :class:`HandshakeTimeout` when the peer does not answer within
        ``timeout`` seconds (it is not registered there, not in server mode, or has another
        shared seed) and :class:`HandshakeError` otherwise.
        """
        if looks_like_ticket(peer_node_id):
            return await self._connect_ticket(NodeTicket.coerce(peer_node_id), relays, timeout)
        peer = check_node_id(peer_node_id)
        urls = _relay_urls(relays) if relays is not None else list(self._relays)
        if not urls:
            raise ConfigError("connect() needs relays=[...] or a node registered at a relay")
        check_timeout(timeout)
        self._require_running()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        errors: list[str] = []
        unreachable = 0  # relays that said the peer is not registered there
        registered = 0  # relays that took our registration
        for url in urls:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                relay = await self._relay(url, min(remaining, RELAY_REGISTER_TIMEOUT_S))
            except RelayError as exc:
                errors.append(str(exc))
                continue
            assert relay.link is not None
            registered += 1
            addr = RelayAddress(relay.url, peer)
            try:
                return await self._handshake(
                    addr, relay.link, max(deadline - loop.time(), 0.001), peer
                )
            except HandshakeTimeout as exc:
                if peer in relay.unreachable:
                    unreachable += 1
                    errors.append(f"{url}: peer {peer.hex()[:16]}… is not registered there")
                else:
                    errors.append(f"{url}: {exc}")
        if registered == 0 or unreachable == registered:
            raise RelayError("cannot reach the peer through any relay: " + "; ".join(errors))
        raise HandshakeTimeout(
            "no relay carried a handshake with the peer in time: " + "; ".join(errors)
        )

    # -- data ---------------------------------------------------------------------------------
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
        payload = check_message(data, self.config.max_message_size)
        if type(session_ids) is list or type(session_ids) is tuple:
            ids = session_ids  # the common case, without the slower checks below
        elif isinstance(session_ids, bytes | bytearray | str):
            raise TypeError("session_ids must be an iterable of session ids, not one id")
        elif not isinstance(session_ids, Iterable):
            raise TypeError(
                "session_ids must be an iterable of session ids (bytes), "
                f"not {type(session_ids).__name__}"
            )
        else:
            ids = list(session_ids)
        for session_id in ids:
            if not isinstance(session_id, bytes) or len(session_id) != SESSION_ID_BYTES:
                raise TypeError(
                    f"session_ids must hold {SESSION_ID_BYTES}-byte session ids (bytes), "
                    f"not {session_id!r}"
                )
        check_channel(stream_id)
        failed: list[bytes] = []
        sent: list[bytes] = []
        driver = self._driver
        now = driver.now()
        session_of = driver.session
        for session_id in ids:
            try:
                session_of(session_id).send_message(stream_id, payload, now)
                sent.append(session_id)
            except (SessionNotFound, SessionClosedError):
                failed.append(session_id)
        driver.transmit_soon()
        await driver.after_send(sent)
        if failed:
            raise SessionNotFound(
                "not sent to "
                + ", ".join(sid.hex() for sid in failed)
                + ": no active session with that id",
                tuple(failed),
            )

    async def send_to_all(self, data: bytes, stream_id: int = 0) -> int:
        """Send ``data`` to every active session; returns how many sessions it was sent to.

        Raises :class:`ProtocolError` before :meth:`start` and after :meth:`stop`, and the
        errors of :meth:`send_to_sessions` for ``data`` and ``stream_id`` even with no session.
        """
        self._require_running()
        check_message(data, self.config.max_message_size)
        check_channel(stream_id)
        ids = [s.session_id for s in self.session_manager.get_active_sessions() if not s.is_manual]
        if ids:
            await self.send_to_sessions(ids, data, stream_id)
        return len(ids)

    def receive(self) -> AsyncIterator[ReceivedPacket]:
        """Every application message received, as :class:`ReceivedPacket`, until the node stops
        (the iteration then ends, after the messages already received).

        It sees the messages of every session that has no reader of its own: once
        ``session.recv()`` is called or ``async for packet in session`` starts, that session's
        messages go only to the session (docs/sessions.md, "Receiving"). Several iterators may
        run at once; each message goes to exactly one of them. The iterator survives
        cancellation: a cancelled or timed-out ``anext()`` (``asyncio.wait_for(anext(it),
        0.5)``) takes nothing, and the next ``anext(it)`` waits again.
        """
        return InboxIterator(self._rx, self._take)

    def _take(self, item: tuple[ReceivedPacket, int]) -> ReceivedPacket:
        packet, credit = item
        return_credit(self._driver, packet, credit)
        return packet

    async def recv(self, timeout: float | None = None) -> ReceivedPacket:
        """The next message :meth:`receive` would yield.

        Raises :class:`TimeoutError` when none arrives within ``timeout`` seconds (None: wait
        as long as it takes; a timeout takes nothing) and :class:`ProtocolError` once the node
        is stopped and every message it received was taken. ``timeout`` must be None or a
        positive number of seconds (TypeError / ConfigError).
        """
        wait = check_wait_timeout(timeout)
        try:
            async with asyncio.timeout(wait):
                item = await self._rx.get()
        except InboxClosed:
            raise ProtocolError("node stopped: it receives no more messages") from None
        return self._take(item)

    # -- statistics ---------------------------------------------------------------------------
    def stats(self) -> NodeStats:
        """A frozen snapshot of the node's figures (see :class:`NodeStats`): its sessions by
        state, handshakes (in flight counted once), transports, traffic and drops by reason."""
        snap = self._driver.endpoint.snapshot()
        counters = snap.counters
        udp = self._driver.udp
        ws = self._ws
        return NodeStats(
            node_id=self.node_id,
            running=self.is_running,
            server_mode=self.server_mode,
            sessions=self.session_manager.stats(),
            handshakes_started=counters.handshakes_started,
            handshakes_accepted=counters.handshakes_accepted,
            handshakes_failed=counters.handshakes_failed,
            handshakes_in_flight=snap.handshakes_in_flight,
            version_mismatches=counters.version_mismatches,
            udp=UDPStats(
                address=self.udp_address,
                datagrams_sent=udp.datagrams_sent if udp else 0,
                datagrams_received=udp.datagrams_received if udp else 0,
                send_errors=udp.send_errors if udp else 0,
                send_dropped=udp.send_dropped if udp else 0,
                offload=bool(udp and udp.gso),
                offloaded_sends=udp.gso_sends if udp else 0,
                coalesced_reads=udp.gro_reads if udp else 0,
            ),
            websocket=WebSocketStats(
                url=self.ws_url,
                connections=len(ws.links),
                pending=ws.pending,
                refused_connections=ws.refused_connections,
                closed_handshake_timeout=ws.closed_handshake_timeout,
                closed_idle=ws.closed_idle,
                text_frames_refused=ws.text_frames_refused,
                oversized_refused=ws.oversized_refused,
                send_dropped=ws.send_dropped,
                send_queued_bytes=ws.send_queued_bytes,
            ),
            packets_received=counters.packets_received,
            packets_sent=counters.packets_sent,
            bytes_received=counters.bytes_received,
            bytes_sent=counters.bytes_sent,
            drops=MappingProxyType({str(r): n for r, n in counters.drops.items()}),
            drops_total=snap.drops_total,
            receive_queue=len(self._rx),
        )

    def get_stats(self) -> dict[str, Any]:
        """Node-wide figures as the chapter's dict, built from :meth:`stats`: sessions (the
        manager's :meth:`~SessionManager.get_stats`), handshakes, transports, drops by reason
        (every reason of docs/protocol.md §11, zero or not)."""
        st = self.stats()
        return {
            "node_id": st.node_id.hex(),
            "running": st.running,
            "server_mode": st.server_mode,
            "sessions": self.session_manager.get_stats(st.sessions),
            "handshakes": {
                "started": st.handshakes_started,
                "accepted": st.handshakes_accepted,
                "failed": st.handshakes_failed,
                "in_flight": st.handshakes_in_flight,
                "version_mismatches": st.version_mismatches,
            },
            "transports": {
                "udp": {f.name: getattr(st.udp, f.name) for f in fields(UDPStats)},
                "websocket": {
                    f.name: getattr(st.websocket, f.name) for f in fields(WebSocketStats)
                },
            },
            "packets_received": st.packets_received,
            "packets_sent": st.packets_sent,
            "bytes_received": st.bytes_received,
            "bytes_sent": st.bytes_sent,
            "drops": dict(st.drops),
            "drops_total": st.drops_total,
            "receive_queue": st.receive_queue,
        }
