"""``serve()`` and ``connect()``: the two verbs of the ``websockets`` library, for seigr_stt.

:func:`serve` starts a server-mode :class:`~seigr_stt.aio.node.STTNode` and runs
``handler(session)`` as a task for every session a peer opens, over UDP and WebSocket::

    async def echo(session):
        async for packet in session:
            await session.send(packet.data, packet.stream_id)

    async with serve(echo, node_seed, shared_seed, "0.0.0.0", 9000, ws_port=9001) as server:
        await server.serve_forever()

:func:`connect` opens one session from a client node of its own; as an async context manager
it gives the session and stops the node on exit, and as an async iterator it reconnects::

    async with connect("udp://server.example:9000", node_seed, shared_seed) as session:
        await session.send(b"hello")

    async for session in connect("ws://server.example:9001/stt", node_seed, shared_seed):
        async for packet in session:  # ends when the session closes; then it reconnects
            ...

docs/serve-and-connect.md is the guide.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import ssl as ssl_module
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Iterable, Iterator
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import urlsplit

from seigr_stt.aio.node import STTNode
from seigr_stt.aio.peer import PeerSession
from seigr_stt.aio.session import NodeEvent, STTSession
from seigr_stt.config import NodeConfig
from seigr_stt.constants import CloseCode
from seigr_stt.exceptions import (
    ConfigError,
    HandshakeError,
    ProtocolError,
    SessionClosedError,
    STTError,
)

__all__ = [
    "BACKOFF_FACTOR",
    "BACKOFF_INITIAL_DELAY_S",
    "BACKOFF_MAX_DELAY_S",
    "Connect",
    "Handler",
    "Server",
    "backoff",
    "connect",
    "serve",
]

#: What :func:`serve` runs for each session a peer opens.
Handler = Callable[[STTSession], Awaitable[None]]

#: The first reconnection delay of :func:`connect` (before jitter), in seconds.
BACKOFF_INITIAL_DELAY_S = 1.0
#: Each further failed attempt multiplies the delay by this.
BACKOFF_FACTOR = 1.618
#: The delay never exceeds this, in seconds.
BACKOFF_MAX_DELAY_S = 60.0

_log = logging.getLogger("seigr_stt.serve")


# -- serve ----------------------------------------------------------------------------------------
class Server:
    """A server-mode node running ``handler(session)`` per session; made by :func:`serve`.

    Start it with ``async with serve(...) as server`` (closed on exit) or ``server = await
    serve(...)`` (then call :meth:`close` and :meth:`wait_closed`). Each session a peer opens,
    over UDP or WebSocket, gets its own handler task, and is read per session from the start
    (``session.recv()``, ``async for packet in session``; ``node.receive()`` sees none of its
    messages). The session is closed when the handler
    returns (``CLOSE_NORMAL``) or raises (the exception is logged and the peer receives
    ``CLOSE_INTERNAL_ERROR``). Closing the server stops accepting sessions, cancels the running
    handlers and waits for them, then stops the node (the peers receive ``CLOSE_GOING_AWAY``).
    """

    def __init__(
        self,
        handler: Handler,
        node: STTNode,
        *,
        ssl: ssl_module.SSLContext | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        if not callable(handler):
            raise TypeError(f"handler must be an async function, not {type(handler).__name__}")
        self._handler = handler
        self.node = node
        """The server's :class:`STTNode` (``node.udp_address``, ``node.ws_url``, statistics)."""
        self._ssl = ssl
        self.logger = logger or _log
        self._tasks: dict[asyncio.Task[None], STTSession] = {}
        self._started = False
        self._serving = False
        self._closing: asyncio.Task[None] | None = None
        self._closed: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        return (
            f"Server(udp={self.node.udp_address}, ws={self.node.ws_url}, "
            f"handlers={len(self._tasks)}, serving={self.is_serving()})"
        )

    @property
    def udp_address(self) -> tuple[str, int] | None:
        """The ``(host, port)`` the server's UDP socket is bound to, once started."""
        return self.node.udp_address

    @property
    def ws_url(self) -> str | None:
        """``ws://host:port/stt`` (``wss://`` with TLS) when serving WebSocket, else None."""
        return self.node.ws_url

    @property
    def sessions(self) -> list[STTSession]:
        """The sessions whose handler is running now."""
        return list(self._tasks.values())

    def is_serving(self) -> bool:
        """True from start until :meth:`close`."""
        return self._serving

    async def start(self) -> None:
        """Start the node in server mode and begin running handlers. ``async with`` and
        ``await serve(...)`` call it; a server starts once."""
        if self._started:
            raise ProtocolError("server already started")
        self._started = True
        self._closed = asyncio.get_running_loop().create_future()
        self.node.on("session_established", self._on_established)
        try:
            await self.node.start(server_mode=True, ssl=self._ssl)
        except BaseException:
            self._closed.set_result(None)  # nothing to close
            raise
        self._serving = True

    def _on_established(self, event: NodeEvent) -> None:
        session = event.session
        if not self._serving:
            return
        if isinstance(session, PeerSession) and session.initiator:
            return  # a session this node opened itself: not a client of the server
        # The handler's session is read per session from the start: node.receive() sees none
        # of its messages, and what the handler leaves unread goes away with the session.
        aiter(session)
        task = asyncio.get_running_loop().create_task(self._run(session))
        self._tasks[task] = session
        task.add_done_callback(self._handler_done)

    def _handler_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task, None)

    async def _run(self, session: STTSession) -> None:
        code: int = CloseCode.NORMAL
        reason = ""
        try:
            await self._handler(session)
        except SessionClosedError:
            if session.is_active():
                code, reason = self._failed(session)
            # else: the session ended under the handler: a normal end for a handler
        except Exception:
            code, reason = self._failed(session)
        with contextlib.suppress(STTError):
            await session.close(code, reason)

    def _failed(self, session: STTSession) -> tuple[int, str]:
        self.logger.exception("handler of session %s raised", session.session_id.hex()[:16])
        return CloseCode.INTERNAL_ERROR, "internal error"

    def close(self) -> None:
        """Stop serving: no new sessions, running handlers cancelled, then the node stopped
        (its sessions closed with ``CLOSE_GOING_AWAY``). Returns at once; await
        :meth:`wait_closed` for the end. Idempotent."""
        if self._serving:
            self._serving = False
            self._closing = asyncio.get_running_loop().create_task(self._close())

    async def _close(self) -> None:
        self.node.endpoint.accept_incoming = False
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        try:
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            await self.node.stop()
        finally:
            if self._closed is not None and not self._closed.done():
                self._closed.set_result(None)

    async def wait_closed(self) -> None:
        """Wait until the server is closed: handlers finished, node stopped."""
        if self._closed is None:
            raise ProtocolError("server not started")
        await asyncio.shield(self._closed)
        if self._closing is not None and self._closing.done() and not self._closing.cancelled():
            self._closing.result()  # raise what stopping raised, if anything

    async def serve_forever(self) -> None:
        """Serve until :meth:`close` is called, from another task or a handler; cancelling the
        waiting task closes the server."""
        try:
            await self.wait_closed()
        except asyncio.CancelledError:
            self.close()
            await asyncio.shield(self.wait_closed())
            raise

    def __await__(self) -> Generator[Any, None, Self]:
        return self._start_and_return().__await__()

    async def _start_and_return(self) -> Self:
        await self.start()
        return self

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
        await self.wait_closed()


def serve(
    handler: Handler,
    node_seed: bytes | str,
    shared_seed: bytes | str,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    ws_port: int | None = None,
    config: NodeConfig | None = None,
    ssl: ssl_module.SSLContext | None = None,
    logger: logging.Logger | None = None,
    allowed_peers: Iterable[bytes] | Callable[[bytes], bool] | None = None,
) -> Server:
    """A :class:`Server` running ``await handler(session)`` for each session a peer opens.

    ``node_seed``, ``shared_seed``, ``host``, ``port``, ``ws_port``, ``config``, ``logger`` and
    ``allowed_peers`` are :class:`STTNode`'s (UDP on ``host:port``; WebSocket too when
    ``ws_port`` is set, ``wss://`` with ``ssl``; port 0 picks a free one). Use it as ``async
    with serve(...) as server:`` or ``server = await serve(...)``. Bad arguments raise here
    (:class:`ConfigError`, :class:`WeakSeedError`, :class:`TypeError`); nothing is bound until
    the server starts.
    """
    node = STTNode(
        node_seed,
        shared_seed,
        host,
        port,
        ws_port=ws_port,
        config=config,
        logger=logger,
        allowed_peers=allowed_peers,
    )
    return Server(handler, node, ssl=ssl, logger=logger)


# -- connect --------------------------------------------------------------------------------------
def backoff(
    initial_delay: float = BACKOFF_INITIAL_DELAY_S,
    factor: float = BACKOFF_FACTOR,
    max_delay: float = BACKOFF_MAX_DELAY_S,
    rng: Callable[[], float] = random.random,
) -> Iterator[float]:
    """The delays between reconnection attempts: exponential, capped, with jitter.

    The k-th delay (k = 0, 1, ...) is ``min(max_delay, initial_delay * factor**k)`` times a
    random factor between 0.5 and 1 drawn from ``rng()`` (a float in [0, 1), like
    :func:`random.random`): clients that lost the same server do not all come back at once, and
    none waits less than half the nominal delay.
    """
    if not (initial_delay >= 0 and factor >= 1 and max_delay >= initial_delay):
        raise ConfigError(
            "backoff needs initial_delay >= 0, factor >= 1 and max_delay >= initial_delay"
        )
    return _delays(initial_delay, factor, max_delay, rng)


def _delays(
    initial_delay: float, factor: float, max_delay: float, rng: Callable[[], float]
) -> Iterator[float]:
    nominal = initial_delay
    while True:
        yield min(nominal, max_delay) * (0.5 + 0.5 * rng())
        nominal = min(nominal * factor, max_delay)


def _parse_target(target: str | tuple[str, int]) -> tuple[str, str, int]:
    """``("udp", host, port)`` or ``("websocket", url, 0)``; ConfigError for anything else."""
    port: int | None
    if isinstance(target, tuple):
        if len(target) != 2:
            raise ConfigError(f"a UDP target is (host, port), not {target!r}")
        host, port = target
    elif isinstance(target, str):
        if target.startswith(("ws://", "wss://")):
            return ("websocket", target, 0)
        if not target.startswith("udp://"):
            raise ConfigError(
                f"target must be 'udp://host:port', 'ws://…', 'wss://…' or (host, port), "
                f"not {target!r}"
            )
        parts = urlsplit(target)
        try:
            port = parts.port
        except ValueError as exc:
            raise ConfigError(f"bad port in {target!r}: {exc}") from None
        host = parts.hostname or ""
        if port is None:
            raise ConfigError(f"{target!r} names no port")
    else:
        kind = type(target).__name__
        raise TypeError(f"target must be a str or a (host, port) tuple, not {kind}")
    if not isinstance(host, str) or not host:
        raise ConfigError(f"host must be a non-empty string, not {host!r}")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port <= 65535:
        raise ConfigError(f"port must be an int within 1..65535, not {port!r}")
    return ("udp", host, port)


def _bind_host(host: str) -> str:
    """Where a client node binds to reach ``host``: loopback for a loopback target."""
    v6 = ":" in host
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if loopback:
        return "::1" if v6 else "127.0.0.1"
    return "::" if v6 else "0.0.0.0"


#: Failures :func:`connect`'s iteration retries; anything else ends it.
_RETRIED = (HandshakeError, OSError, TimeoutError)


class Connect:
    """What :func:`connect` returns: an async context manager giving one session, and an async
    iterator giving a session per (re)connection. See :func:`connect`."""

    def __init__(
        self,
        target: str | tuple[str, int],
        node_seed: bytes | str,
        shared_seed: bytes | str,
        *,
        local_host: str | None,
        local_port: int,
        config: NodeConfig | None,
        ssl: ssl_module.SSLContext | None,
        proxy: str | Literal[True] | None,
        open_timeout: float,
        logger: logging.Logger | None,
        allowed_peers: Iterable[bytes] | Callable[[bytes], bool] | None,
        initial_delay: float,
        factor: float,
        max_delay: float,
        rng: Callable[[], float],
    ) -> None:
        self._scheme, self._address, self._port = _parse_target(target)
        if isinstance(open_timeout, bool) or not open_timeout > 0:
            raise ConfigError(f"open_timeout must be positive, not {open_timeout!r}")
        backoff(initial_delay, factor, max_delay, rng)  # checks the parameters now
        self._delays = (initial_delay, factor, max_delay, rng)
        self._seeds = (node_seed, shared_seed)
        self._ssl = ssl
        self._proxy = proxy
        self._open_timeout = open_timeout
        self.logger = logger or _log
        host = self._address if self._scheme == "udp" else urlsplit(self._address).hostname or ""
        self._node_args: dict[str, Any] = {
            "host": local_host if local_host is not None else _bind_host(host),
            "port": local_port,
            "config": config,
            "logger": logger,
            "allowed_peers": allowed_peers,
        }
        # Fail on bad seeds, hosts and ports here, not at the first attempt.
        self._new_node()
        self.node: STTNode | None = None
        """The client node of the running ``async with`` or iteration (None before)."""
        self._session: STTSession | None = None
        # The iteration, weakly: a strong reference (the generator's frame refers to this
        # object) would make a cycle, and a loop left with ``break`` would never be finalized.
        self._iteration: weakref.ref[AsyncGenerator[STTSession, None]] | None = None
        self._iteration_ended: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        target = self._address if self._scheme == "websocket" else f"{self._address}:{self._port}"
        return f"Connect({self._scheme} {target})"

    @property
    def target(self) -> str:
        """What this connects to: ``udp://host:port`` or the WebSocket URL."""
        if self._scheme == "websocket":
            return self._address
        host = f"[{self._address}]" if ":" in self._address else self._address
        return f"udp://{host}:{self._port}"

    def _new_node(self) -> STTNode:
        node_seed, shared_seed = self._seeds
        return STTNode(node_seed, shared_seed, **self._node_args)

    async def _open(self, node: STTNode) -> STTSession:
        if self._scheme == "udp":
            return await node.connect_udp(self._address, self._port, timeout=self._open_timeout)
        return await node.connect_websocket(
            self._address, timeout=self._open_timeout, ssl=self._ssl, proxy=self._proxy
        )

    # async with connect(...) as session:
    async def __aenter__(self) -> STTSession:
        if self.node is not None:
            raise ProtocolError("connect() is already in use: enter it once, or iterate it")
        node = self.node = self._new_node()
        try:
            await node.start()
            self._session = await self._open(node)
        except BaseException:
            self.node = None
            await node.stop()
            raise
        return self._session

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        node, session = self.node, self._session
        self.node = self._session = None
        try:
            if session is not None:
                with contextlib.suppress(STTError):
                    await session.close()
        finally:
            if node is not None:
                await node.stop()

    # async for session in connect(...):
    def __aiter__(self) -> AsyncGenerator[STTSession, None]:
        if self.node is not None or self._iteration is not None:
            raise ProtocolError("connect() is already in use: enter it once, or iterate it")
        iteration = self._reconnecting()
        self._iteration = weakref.ref(iteration)
        return iteration

    async def _reconnecting(self) -> AsyncGenerator[STTSession, None]:
        node = self.node = self._new_node()
        ended = self._iteration_ended = asyncio.get_running_loop().create_future()
        delays: Iterator[float] | None = None
        try:
            await node.start()
            while True:
                try:
                    session = await self._open(node)
                except _RETRIED as exc:
                    if delays is None:
                        delays = backoff(*self._delays)
                    delay = next(delays)
                    self.logger.info(
                        "connect to %s failed; retrying in %.3f s: %s", self.target, delay, exc
                    )
                    await asyncio.sleep(delay)
                    continue
                delays = None  # connected: the next failure starts the backoff again
                try:
                    yield session
                finally:
                    # The consumer asked for the next session (or left): this one is done.
                    with contextlib.suppress(STTError):
                        await session.close()
        finally:
            try:
                await node.stop()
            finally:
                self.node = None
                ended.set_result(None)

    async def aclose(self) -> None:
        """End the iteration now: close its session and stop its node (``break`` leaves that to
        the garbage collector; use ``async with contextlib.aclosing(connect(...)) as sessions:
        async for session in sessions:`` to have it done when the block ends)."""
        iteration = self._iteration() if self._iteration is not None else None
        if iteration is not None:
            await iteration.aclose()
        elif self._iteration_ended is not None:
            # Left with ``break`` and already finalized: its clean-up runs in a task.
            await asyncio.shield(self._iteration_ended)


def connect(
    target: str | tuple[str, int],
    node_seed: bytes | str,
    shared_seed: bytes | str,
    *,
    local_host: str | None = None,
    local_port: int = 0,
    config: NodeConfig | None = None,
    ssl: ssl_module.SSLContext | None = None,
    proxy: str | Literal[True] | None = None,
    open_timeout: float = 10.0,
    logger: logging.Logger | None = None,
    allowed_peers: Iterable[bytes] | Callable[[bytes], bool] | None = None,
    initial_delay: float = BACKOFF_INITIAL_DELAY_S,
    factor: float = BACKOFF_FACTOR,
    max_delay: float = BACKOFF_MAX_DELAY_S,
    rng: Callable[[], float] = random.random,
) -> Connect:
    """Connect to ``target`` from a client node of its own, as ``websockets.connect`` does.

    ``target`` is ``"udp://host:port"`` or ``(host, port)`` for UDP, a ``ws://`` or ``wss://``
    URL (path ``/stt``) for WebSocket (``ssl`` for ``wss://``; ``proxy`` as for
    :meth:`STTNode.connect_websocket`: direct by default). The client node is an
    :class:`STTNode` with ``node_seed``, ``shared_seed``, ``config``, ``logger`` and
    ``allowed_peers``, bound to ``local_host:local_port`` (by default loopback for a loopback
    target, else every interface, port 0). A handshake that gets no answer within
    ``open_timeout`` seconds fails.

    ``async with connect(...) as session:`` starts the node, handshakes and gives the session;
    on exit the session is closed and the node stopped. A failed handshake raises
    (:class:`HandshakeTimeout`, :class:`HandshakeError`) with nothing left running.

    ``async for session in connect(...):`` gives a session, and when the loop comes back for the
    next one, closes it and connects again, for ever: write the body to return when the session
    ends (``async for packet in session`` does), and ``break`` to stop. A failed attempt
    (:class:`HandshakeError`, :class:`HandshakeTimeout`, :class:`OSError`) is logged at INFO
    and retried after a delay from :func:`backoff` (``initial_delay``, ``factor``,
    ``max_delay``, ``rng``); a successful connection resets the delays; any other error ends the
    loop. One node (one node id, one UDP port) serves every attempt; it stops when the
    iteration ends (``break`` leaves that to the garbage collector, as for any async generator:
    :meth:`Connect.aclose` or ``contextlib.aclosing`` make it immediate). A server that vanished
    without closing is noticed when the session closes after ``config``'s
    ``ping_interval_s + dead_peer_timeout_s`` (docs/deployment.md, Timers).
    """
    return Connect(
        target,
        node_seed,
        shared_seed,
        local_host=local_host,
        local_port=local_port,
        config=config,
        ssl=ssl,
        proxy=proxy,
        open_timeout=open_timeout,
        logger=logger,
        allowed_peers=allowed_peers,
        initial_delay=initial_delay,
        factor=factor,
        max_delay=max_delay,
        rng=rng,
    )
