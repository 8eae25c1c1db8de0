"""The WebSocket transport on the ``websockets`` library (§12.2).

One binary WebSocket message carries one packet (a handshake packet or a record). Compression is
off, ``max_size`` bounds every message (a larger one closes the connection with code 1009), and a
text message closes the connection with code 1003. The server serves the path ``/stt``.

Each connection is a :class:`WSLink`: the node's endpoint sees it as an opaque address. Outgoing
packets go to a per-connection queue drained by one writer task, so the node's single drain point
stays synchronous while the library applies TCP backpressure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl as ssl_module
from collections import deque
from collections.abc import Callable

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.connection import Connection
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.http11 import Request, Response

from seigr_stt.constants import WEBSOCKET_PATH
from seigr_stt.core.link import Link, TransportKind

__all__ = ["WSLink", "WebSocketServer", "WebSocketTransport", "open_client_link"]

_log = logging.getLogger("seigr_stt.websocket")

SEND_QUEUE_HIGH_WATER = 1024


class WSLink:
    """One WebSocket connection, used by the endpoint as a peer address (hashable by identity)."""

    def __init__(
        self,
        connection: Connection,
        on_packet: Callable[[bytes, WSLink], None],
        on_closed: Callable[[WSLink], None],
        max_record_size: int,
    ) -> None:
        self.connection = connection
        self._on_packet = on_packet
        self._on_closed = on_closed
        self._queue: deque[bytes] = deque()
        self._wakeup = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self._idle = asyncio.Event()
        self._idle.set()
        self.closed = False
        self.text_frames_refused = 0
        self.oversized_refused = 0
        self.send_dropped = 0
        remote = connection.remote_address
        self.remote = f"{remote[0]}:{remote[1]}" if remote else "?"
        #: The peer's host: the key of the per-source handshake rate limit (§10).
        self.remote_host = str(remote[0]) if remote else "?"
        #: This connection as the endpoint sees it: its own link, and its own address.
        self.link = Link(
            TransportKind.WEBSOCKET, max_record_size, peer=self.remote, source=self.remote_host
        )
        self._writer = asyncio.get_running_loop().create_task(self._write_loop())

    def __repr__(self) -> str:
        return f"WSLink({self.remote})"

    def send(self, packet: bytes) -> None:
        """Queue one packet for the writer task (never blocks)."""
        if self.closed:
            self.send_dropped += 1
            return
        self._queue.append(packet)
        self._idle.clear()
        if len(self._queue) >= SEND_QUEUE_HIGH_WATER:
            self._writable.clear()
        self._wakeup.set()

    async def wait_writable(self) -> None:
        """Return once the send queue is below its high-water mark."""
        await self._writable.wait()

    async def _write_loop(self) -> None:
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                while self._queue:
                    packet = self._queue.popleft()
                    if len(self._queue) < SEND_QUEUE_HIGH_WATER // 2:
                        self._writable.set()
                    await self.connection.send(packet)
                self._idle.set()
        except ConnectionClosed:
            pass
        finally:
            self._writable.set()
            self._idle.set()

    async def run(self) -> None:
        """Read binary messages until the connection closes; refuses text with code 1003."""
        try:
            async for message in self.connection:
                if isinstance(message, str):
                    self.text_frames_refused += 1
                    await self.connection.close(CloseCode.UNSUPPORTED_DATA, "binary messages only")
                    break
                self._on_packet(message, self)
        except ConnectionClosed as closed:
            if closed.sent is not None and closed.sent.code == CloseCode.MESSAGE_TOO_BIG:
                self.oversized_refused += 1  # the library refused a message above max_size
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Close the connection and stop the writer (idempotent)."""
        if self.closed:
            return
        self.closed = True
        # Let queued packets (a CLOSE record, say) go out before closing.
        if self._queue and not self._writer.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), 1.0)
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._writer
        await self.connection.close()
        self._on_closed(self)


class WebSocketServer:
    """Serves ``ws://host:port/stt``; each accepted connection becomes a :class:`WSLink`."""

    def __init__(
        self,
        on_packet: Callable[[bytes, WSLink], None],
        on_link: Callable[[WSLink], None],
        on_closed: Callable[[WSLink], None],
        max_size: int,
    ) -> None:
        self._on_packet = on_packet
        self._on_link = on_link
        self._on_closed = on_closed
        self._max_size = max_size
        self._server: Server | None = None
        self._address: tuple[str, int] | None = None
        self.links: set[WSLink] = set()

    async def start(self, host: str, port: int, ssl: ssl_module.SSLContext | None = None) -> None:
        """Serve ``host:port`` (``wss://`` with ``ssl``); port 0 picks a free one."""
        self._server = await serve(
            self._handler,
            host,
            port,
            compression=None,
            max_size=self._max_size,
            max_queue=64,
            ping_interval=None,
            process_request=self._check_path,
            ssl=ssl,
            logger=_log,
        )
        sockname = next(iter(self._server.sockets)).getsockname()
        self._address = (str(sockname[0]), int(sockname[1]))

    @property
    def address(self) -> tuple[str, int]:
        """The ``(host, port)`` actually bound."""
        assert self._address is not None
        return self._address

    @staticmethod
    def _check_path(connection: ServerConnection, request: Request) -> Response | None:
        if request.path != WEBSOCKET_PATH:
            return connection.respond(404, "seigr_stt serves /stt\n")
        return None

    async def _handler(self, connection: ServerConnection) -> None:
        link = WSLink(connection, self._on_packet, self._closed, self._max_size)
        self.links.add(link)
        self._on_link(link)
        await link.run()

    def _closed(self, link: WSLink) -> None:
        self.links.discard(link)
        self._on_closed(link)

    async def close(self) -> None:
        """Close every connection and stop serving."""
        for link in list(self.links):
            await link.aclose()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


async def open_client_link(
    url: str,
    on_packet: Callable[[bytes, WSLink], None],
    on_closed: Callable[[WSLink], None],
    *,
    max_size: int,
    ssl: ssl_module.SSLContext | None,
    open_timeout: float,
) -> tuple[WSLink, asyncio.Task[None]]:
    """Connect to a node's WebSocket URL; returns the link and its reader task."""
    kwargs: dict[str, object] = {}
    if url.startswith("wss://"):
        kwargs["ssl"] = ssl if ssl is not None else ssl_module.create_default_context()
    elif ssl is not None:
        raise ValueError("an ssl context needs a wss:// URL")
    connection: ClientConnection = await connect(
        url,
        compression=None,
        max_size=max_size,
        max_queue=64,
        ping_interval=None,
        open_timeout=open_timeout,
        proxy=None,
        logger=_log,
        **kwargs,  # type: ignore[arg-type]
    )
    link = WSLink(connection, on_packet, on_closed, max_size)
    task = asyncio.get_running_loop().create_task(link.run())
    return link, task


class WebSocketTransport:
    """A node's WebSocket side: the server (if any) and every open connection, accepted or
    initiated, with the counts of connections refused for what they sent.

    ``on_packet(data, link)`` gets every binary message; ``on_closed(link)`` every connection
    that ended (after it left :attr:`links`).
    """

    def __init__(
        self,
        on_packet: Callable[[bytes, WSLink], None],
        on_closed: Callable[[WSLink], None],
        max_size: int,
    ) -> None:
        self._on_packet = on_packet
        self._on_closed = on_closed
        self._max_size = max_size
        self.server: WebSocketServer | None = None
        self.tls = False
        self.links: set[WSLink] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._refused_closed = [0, 0]  # text, oversized messages of links already closed

    async def serve(self, host: str, port: int, ssl: ssl_module.SSLContext | None) -> None:
        """Serve ``ws://host:port/stt`` (``wss://`` with ``ssl``)."""
        server = WebSocketServer(self._on_packet, self.links.add, self._closed, self._max_size)
        await server.start(host, port, ssl)
        self.server = server
        self.tls = ssl is not None

    async def connect(
        self, url: str, *, ssl: ssl_module.SSLContext | None, open_timeout: float
    ) -> WSLink:
        """Open a connection to ``url``; raises what ``websockets`` raises (OSError, TimeoutError,
        InvalidURI, InvalidHandshake, ...)."""
        link, task = await open_client_link(
            url,
            self._on_packet,
            self._closed,
            max_size=self._max_size,
            ssl=ssl,
            open_timeout=open_timeout,
        )
        self.links.add(link)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return link

    def _closed(self, link: WSLink) -> None:
        self.links.discard(link)
        self._refused_closed[0] += link.text_frames_refused
        self._refused_closed[1] += link.oversized_refused
        self._on_closed(link)

    @property
    def text_frames_refused(self) -> int:
        """Connections closed for a text message (1003), open or closed since."""
        return self._refused_closed[0] + sum(link.text_frames_refused for link in self.links)

    @property
    def oversized_refused(self) -> int:
        """Connections closed for a message above the size limit (1009)."""
        return self._refused_closed[1] + sum(link.oversized_refused for link in self.links)

    async def close(self) -> None:
        """Stop serving and close every connection."""
        if self.server is not None:
            await self.server.close()
        for link in list(self.links):
            await link.aclose()
        for task in list(self._tasks):
            task.cancel()
