"""The WebSocket transport on the ``websockets`` library (§12.2).

One binary WebSocket message carries one packet (a handshake packet or a record). Compression is
off, ``max_size`` bounds every message (a larger one closes the connection with code 1009), and a
text message closes the connection with code 1003. The server serves the path ``/stt``.

Each connection is a :class:`WSLink`: the node's endpoint sees it as an opaque address. Outgoing
packets go to a per-connection queue drained by one writer task, so the node's single drain point
stays synchronous while the library applies TCP backpressure. The queue is bounded in bytes and
its free space is the link's :class:`~seigr_stt.core.link.SendRoom`: WebSocket is a reliable
transport (§14.8), so a session runs no congestion window on it and starts a record of stream
data only while the queue has room for a whole one, and one its stream data would not fill
only while the queue is empty; when the queue drains again (or empties) the link calls
``on_room`` (the driver's drain point). A handshake packet beyond the bound is dropped and
counted; a record (which nothing retransmits on a reliable link) may take the queue up to twice
the bound (only a session's small control records get there: its stream data waits for room)
and is dropped and counted beyond that.

What an outsider can cost (docs/security.md): the server counts every accepted TCP connection
that carries no established session yet (*pending*), in total and per remote host, from the TCP
accept on, and refuses connections beyond the limits (HTTP 503). An accepted connection must
carry a handshake the endpoint keeps within ``websocket_handshake_timeout_s`` of its upgrade, and
an established session within ``websocket_session_timeout_s``; any connection that carries
neither a session nor a handshake for ``websocket_idle_timeout_s`` is closed. Each connection has
at most one loop timer for these deadlines, cancelled when it closes. No HTTP answer names the
software: no ``Server`` header, bodies that only repeat the status.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import http
import logging
import ssl as ssl_module
from collections import deque
from collections.abc import Callable, Coroutine, MutableMapping
from typing import Any, ClassVar, Literal

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.connection import Connection
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.http11 import Request, Response

from seigr_stt.aio.wsframes import burst_record_size, tcp_segment_size
from seigr_stt.config import TransportConfig
from seigr_stt.constants import WEBSOCKET_MAX_RECORD_SIZE, WEBSOCKET_PATH, PacketType
from seigr_stt.core.link import Link, SendRoom, TransportKind

try:  # POSIX: the limit on open files, which the pending connections must stay well below
    import resource
except ImportError:  # pragma: no cover - Windows has no RLIMIT_NOFILE
    resource = None  # type: ignore[assignment]

__all__ = [
    "CLOSE_TIMEOUT_S",
    "WSLink",
    "WebSocketServer",
    "WebSocketTransport",
    "open_client_link",
]

_log = logging.getLogger("seigr_stt.websocket")

#: Seconds closing a connection waits for the peer (its close frame, or room in a send buffer
#: that the peer does not read) before the TCP connection is dropped.
CLOSE_TIMEOUT_S = 2.0
#: Seconds :meth:`WSLink.aclose` lets packets already queued (a CLOSE record) go out first.
_FLUSH_ON_CLOSE_S = 1.0
#: The close frames of connections closed for a deadline (code, reason): nothing names the
#: software or says more than the kind of deadline.
_TIMEOUT_CLOSE = (CloseCode.POLICY_VIOLATION, "timeout")
_IDLE_CLOSE = (CloseCode.NORMAL_CLOSURE, "idle")
_DATA_TYPE = bytes([PacketType.DATA])  # the second byte of a record, after the version (§5.1)


class _QuietLog(logging.LoggerAdapter[logging.Logger]):
    """The ``websockets`` library's logger: its per-connection INFO lines ("connection open",
    "connection closed", "HTTP response sent (404 Not Found)") go out at DEBUG, so a flood of
    connections cannot flood the log. Warnings and errors keep their level."""

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        """Log ``msg`` at ``level``, with INFO lowered to DEBUG."""
        super().log(logging.DEBUG if level == logging.INFO else level, msg, *args, **kwargs)

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        """Pass ``msg`` through unchanged (no added context)."""
        return msg, kwargs


_library_log = _QuietLog(_log, {})


def _plain(connection: ServerConnection, status: http.HTTPStatus) -> Response:
    """An HTTP answer whose body only repeats its status (``Not Found``)."""
    return connection.respond(status, f"{status.phrase}\n")


def _fd_budget() -> int | None:
    """Half the process's soft limit on open files: the most sockets the server gives to
    connections without a session. None when there is no such limit."""
    if resource is None:  # pragma: no cover - Windows
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return None
    return int(soft) // 2


# -- admission of accepted connections -----------------------------------------------------------
class _Admission(enum.Enum):
    """Where an accepted TCP connection stands against the server's limits."""

    PENDING = "pending"  # counted: no established session yet
    REFUSED = "refused"  # beyond the limits: answered 503 once its HTTP request arrives
    SETTLED = "settled"  # counts nothing (carries an established session, or was dropped)


class _Gate:
    """Counts the server's pending connections, in total and per remote host.

    A connection is pending from its TCP accept until it carries an established session or
    closes. Beyond ``max_pending`` in total or ``max_per_source`` for its host, a new connection
    is refused: it is answered HTTP 503 when its request arrives, or dropped at once when
    ``max_per_source`` refused connections are already waiting for theirs, so that connections
    without a session never hold more than ``max_pending + max_per_source`` sockets.
    """

    def __init__(self, max_pending: int, max_per_source: int) -> None:
        self.max_pending = max_pending
        self.max_per_source = max_per_source
        self.pending = 0
        self.refusing = 0
        #: Connections refused since the server started (503 or dropped at once).
        self.refused = 0
        self._by_source: dict[str, int] = {}

    def admit(self, source: str) -> _Admission | None:
        """Count a new TCP connection from host ``source``; None: drop it at once."""
        held = self._by_source.get(source, 0)
        if self.pending < self.max_pending and held < self.max_per_source:
            self.pending += 1
            self._by_source[source] = held + 1
            return _Admission.PENDING
        self.refused += 1
        if self.refusing < self.max_per_source:
            self.refusing += 1
            return _Admission.REFUSED
        return None

    def release(self, admission: _Admission, source: str) -> None:
        """Stop counting a connection that was ``admission``."""
        if admission is _Admission.PENDING:
            self.pending -= 1
            held = self._by_source[source] - 1
            if held:
                self._by_source[source] = held
            else:
                del self._by_source[source]
        elif admission is _Admission.REFUSED:
            self.refusing -= 1


class _GatedConnection(ServerConnection):
    """A server connection admitted by a :class:`_Gate` on TCP accept and counted until it
    carries an established session (:meth:`settle`) or is lost. Each server uses a subclass
    whose :attr:`gate` is its own. Under ``wss://`` asyncio reports the connection only once its
    TLS handshake completes: until then only ``open_timeout`` bounds it."""

    gate: ClassVar[_Gate]
    admission: _Admission = _Admission.SETTLED
    source: str = "?"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Count the new connection; drop it at once when even refusals are full."""
        super().connection_made(transport)
        peer = transport.get_extra_info("peername")
        self.source = str(peer[0]) if peer else "?"
        admission = self.gate.admit(self.source)
        if admission is None:
            self.transport.abort()
        else:
            self.admission = admission

    def connection_lost(self, exc: Exception | None) -> None:
        """The TCP connection is gone: it counts no more."""
        super().connection_lost(exc)
        self.settle()

    def settle(self) -> None:
        """Stop counting this connection (idempotent)."""
        self.gate.release(self.admission, self.source)
        self.admission = _Admission.SETTLED


def _gated_connection_class(gate: _Gate) -> type[_GatedConnection]:
    """A :class:`_GatedConnection` class counted by ``gate``."""

    class _Connection(_GatedConnection):
        pass

    _Connection.gate = gate
    return _Connection


# -- one connection ------------------------------------------------------------------------------
class WSLink:
    """One WebSocket connection, used by the endpoint as a peer address (hashable by identity).

    Packets for the peer wait in a queue of ``send_queue_bytes`` bytes, sent by one writer
    task; its free space is :attr:`room` (the link's ``SendRoom``), and ``on_room`` (if set) is
    called once the queue drained after it lacked room for a record of :attr:`record_size`, or
    once it is empty while a session holds back a partial record (``SendRoom.corked``). A
    handshake packet that does not fit is dropped and counted in :attr:`send_dropped`; a record
    only beyond twice the bound (see the module docstring).
    Application senders wait in :meth:`wait_writable` while the queue holds half of the bound
    or more, until it is down to a quarter.
    """

    def __init__(
        self,
        connection: Connection,
        on_packet: Callable[[bytes, WSLink], None],
        on_closed: Callable[[WSLink], None],
        max_record_size: int,
        *,
        send_queue_bytes: int = 16 * WEBSOCKET_MAX_RECORD_SIZE,
        accepted: bool = False,
    ) -> None:
        if send_queue_bytes < max_record_size:
            raise ValueError("send_queue_bytes must hold one record of max_record_size")
        self.connection = connection
        self._on_packet = on_packet
        self._on_closed = on_closed
        self._queue: deque[bytes] = deque()
        self._queued_bytes = 0
        #: Most bytes the send queue ever held (above :attr:`send_queue_limit` only by records
        #: other than stream data: at most twice it).
        self.peak_queued_bytes = 0
        #: The send queue's bound in bytes.
        self.send_queue_limit = send_queue_bytes
        self._high_water = send_queue_bytes // 2
        self._low_water = send_queue_bytes // 4
        transport = connection.transport
        #: The size of the records sessions send here: ``max_record_size``, or less so that a
        #: record's frame leaves as one TCP burst (:func:`burst_record_size`).
        self.record_size = burst_record_size(
            max_record_size,
            tcp_segment_size(transport),
            masked=not accepted,  # a client masks its frames (RFC 6455 §5.3)
            tls=transport.get_extra_info("ssl_object") is not None,
        )
        #: The queue's free space, read by the session's packetizer (``Link.room``).
        self.room = SendRoom(send_queue_bytes)
        #: Called when the queue drained after it lacked room for a record: the session may
        #: send the stream data it held back (the node sets the driver's drain point here).
        self.on_room: Callable[[WSLink], None] | None = None
        self._held = False  # the queue lacked room for a record since it last drained
        self._wakeup = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self._idle = asyncio.Event()
        self._idle.set()
        self.closed = False
        self.text_frames_refused = 0
        self.oversized_refused = 0
        #: Packets dropped: the send queue was full, or the link was closed.
        self.send_dropped = 0
        #: True for a connection our server accepted, False for one this node opened.
        self.accepted = accepted
        #: Whether a session was established over this connection.
        self.established = False
        loop = asyncio.get_running_loop()
        #: Loop time of the WebSocket upgrade (the deadlines count from it).
        self.opened_at = loop.time()
        self._timer: asyncio.TimerHandle | None = None
        remote = connection.remote_address
        self.remote = f"{remote[0]}:{remote[1]}" if remote else "?"
        #: The peer's host: the key of the per-source handshake rate limit (§10) and of the
        #: per-source limit on pending connections.
        self.remote_host = str(remote[0]) if remote else "?"
        #: This connection as the endpoint sees it: its own link, and its own address.
        self.link = Link(
            TransportKind.WEBSOCKET,
            max_record_size,
            peer=self.remote,
            source=self.remote_host,
            room=self.room,
            record_size=self.record_size,
        )
        self._writer = loop.create_task(self._write_loop())

    def __repr__(self) -> str:
        return f"WSLink({self.remote})"

    @property
    def queued_bytes(self) -> int:
        """Bytes waiting in the send queue now."""
        return self._queued_bytes

    def send(self, packet: bytes) -> None:
        """Queue one packet for the writer task (never blocks). A packet that comes once the
        link is closed, a handshake packet that would take the queue beyond
        :attr:`send_queue_limit` bytes, or a record beyond twice that, is dropped and counted
        in :attr:`send_dropped`."""
        size = len(packet)
        queued = self._queued_bytes + size
        limit = self.send_queue_limit
        if self.closed or queued > 2 * limit or (queued > limit and packet[1:2] != _DATA_TYPE):
            self.send_dropped += 1
            return
        self._queue.append(packet)
        self._queued_bytes = queued
        self.room.bytes = limit - queued
        if limit - queued < self.record_size:
            self._held = True
        self.peak_queued_bytes = max(self.peak_queued_bytes, self._queued_bytes)
        self._idle.clear()
        if self._queued_bytes >= self._high_water:
            self._writable.clear()
        self._wakeup.set()

    async def wait_writable(self) -> None:
        """Return once the send queue is below its high-water mark (half its bound)."""
        await self._writable.wait()

    def mark_established(self) -> None:
        """A session was established over this connection: it no longer counts against the
        server's limits on pending connections."""
        self.established = True
        if isinstance(self.connection, _GatedConnection):
            self.connection.settle()

    def set_timer(self, timer: asyncio.TimerHandle | None) -> None:
        """Make ``timer`` this link's one deadline timer (cancelling the previous one)."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = timer
        if self.closed and timer is not None:
            timer.cancel()

    async def _write_loop(self) -> None:
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                while self._queue:
                    packet = self._queue.popleft()
                    self._queued_bytes -= len(packet)
                    self.room.bytes = self.send_queue_limit - self._queued_bytes
                    if self._queued_bytes <= self._low_water:
                        self._writable.set()
                        if self._held:
                            self._room_again()
                    await self.connection.send(packet)
                if self.room.corked:
                    # Everything queued went to the connection while a session held back the
                    # tail of a write (§15.4). One loop turn first: an application ready to
                    # write again fills that record, instead of the tail leaving alone. (Waking
                    # the session as the last packet was taken off the queue raced the
                    # application's next write, and the event loop decided: up to 1.5 records
                    # per 64 KiB write on uvloop, 1.2 on asyncio; docs/performance.md.)
                    await asyncio.sleep(0)
                    if not self._queue:
                        self._room_again()
                if not self._queue:
                    self._idle.set()
        except ConnectionClosed:
            pass
        finally:
            self._writable.set()
            self._idle.set()

    def _room_again(self) -> None:
        self._held = False
        if self.on_room is not None:
            self.on_room(self)

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

    async def aclose(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Close the connection with ``code`` and stop the writer (idempotent). Packets still
        queued get up to a second to go out; a peer that does not take the close within
        :data:`CLOSE_TIMEOUT_S` is cut off."""
        if self.closed:
            return
        self.closed = True
        self.set_timer(None)
        try:
            if self._queue and not self._writer.done():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._idle.wait(), _FLUSH_ON_CLOSE_S)
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._writer
            self.send_dropped += len(self._queue)
            self._queue.clear()
            self._queued_bytes = 0
            try:
                await asyncio.wait_for(self.connection.close(code, reason), CLOSE_TIMEOUT_S)
            except TimeoutError:
                self.connection.transport.abort()
        finally:
            self._on_closed(self)


# -- the server ----------------------------------------------------------------------------------
class WebSocketServer:
    """Serves ``ws://host:port/stt``; each accepted connection becomes a :class:`WSLink`.

    Connections are admitted on TCP accept against ``websocket_max_pending`` and
    ``websocket_max_pending_per_source`` (:attr:`gate`); a refused one is answered HTTP 503. Any
    other path is answered 404. No answer carries a ``Server`` header or a body naming the
    software.
    """

    def __init__(
        self,
        on_packet: Callable[[bytes, WSLink], None],
        on_link: Callable[[WSLink], None],
        on_closed: Callable[[WSLink], None],
        config: TransportConfig,
    ) -> None:
        self._on_packet = on_packet
        self._on_link = on_link
        self._on_closed = on_closed
        self._config = config
        self._server: Server | None = None
        self._address: tuple[str, int] | None = None
        self.links: set[WSLink] = set()
        self.gate = _Gate(config.websocket_max_pending, config.websocket_max_pending_per_source)

    def _fit_file_limit(self) -> None:
        """Lower the pending limits to fit half the process's limit on open files, so that
        outsiders cannot make ``accept()`` fail (Python 3.11's loop then logs every failure)."""
        budget = _fd_budget()
        gate = self.gate
        if budget is None or gate.max_pending + gate.max_per_source <= budget:
            return
        lowered = max(1, budget - gate.max_per_source)
        _log.warning(
            "websocket_max_pending lowered from %d to %d to fit half of the limit on open files "
            "(%d); raise the limit (ulimit -n, LimitNOFILE=) or lower websocket_max_pending",
            gate.max_pending,
            lowered,
            2 * budget,
        )
        gate.max_pending = lowered
        gate.max_per_source = min(gate.max_per_source, lowered)

    async def start(self, host: str, port: int, ssl: ssl_module.SSLContext | None = None) -> None:
        """Serve ``host:port`` (``wss://`` with ``ssl``); port 0 picks a free one."""
        self._fit_file_limit()
        config = self._config
        self._server = await serve(
            self._handler,
            host,
            port,
            compression=None,
            max_size=config.websocket_max_record_size,
            max_queue=64,
            ping_interval=None,
            # The HTTP upgrade (and TLS handshake) shares the first packet's deadline.
            open_timeout=config.websocket_handshake_timeout_s,
            close_timeout=CLOSE_TIMEOUT_S,
            process_request=self._check_request,
            process_response=self._plain_response,
            server_header=None,
            create_connection=_gated_connection_class(self.gate),
            ssl=ssl,
            logger=_library_log,
        )
        sockname = next(iter(self._server.sockets)).getsockname()
        self._address = (str(sockname[0]), int(sockname[1]))

    @property
    def address(self) -> tuple[str, int]:
        """The ``(host, port)`` actually bound."""
        assert self._address is not None
        return self._address

    @staticmethod
    def _check_request(connection: ServerConnection, request: Request) -> Response | None:
        if isinstance(connection, _GatedConnection) and (
            connection.admission is _Admission.REFUSED
        ):
            return _plain(connection, http.HTTPStatus.SERVICE_UNAVAILABLE)
        if request.path != WEBSOCKET_PATH:
            return _plain(connection, http.HTTPStatus.NOT_FOUND)
        return None

    @staticmethod
    def _plain_response(
        connection: ServerConnection, request: Request, response: Response
    ) -> Response | None:
        """Every answer but the upgrade gets a body that only repeats its status: the library's
        own texts (a malformed upgrade on ``/stt``) would name it."""
        if response.status_code == http.HTTPStatus.SWITCHING_PROTOCOLS:
            return None
        plain = _plain(connection, http.HTTPStatus(response.status_code))
        for name in ("Allow", "Upgrade", "Sec-WebSocket-Version"):  # what a client may act on
            for value in response.headers.get_all(name):
                plain.headers[name] = value
        return plain

    async def _handler(self, connection: ServerConnection) -> None:
        config = self._config
        link = WSLink(
            connection,
            self._on_packet,
            self._closed,
            config.websocket_max_record_size,
            send_queue_bytes=config.websocket_send_queue_bytes,
            accepted=True,
        )
        self.links.add(link)
        self._on_link(link)
        await link.run()

    def _closed(self, link: WSLink) -> None:
        self.links.discard(link)
        self._on_closed(link)

    async def close(self) -> None:
        """Close every connection and stop serving."""
        await asyncio.gather(*(link.aclose() for link in list(self.links)))
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
    send_queue_bytes: int = 16 * WEBSOCKET_MAX_RECORD_SIZE,
    proxy: str | Literal[True] | None = None,
) -> tuple[WSLink, asyncio.Task[None]]:
    """Connect to a node's WebSocket URL; returns the link and its reader task. The request
    carries no ``User-Agent`` header. ``proxy`` is websockets' own: None connects directly, a
    proxy URL (``http://``, ``https://``, ``socks5://``...) goes through that proxy, True through
    the one the environment names (``HTTPS_PROXY``, ``ALL_PROXY``...)."""
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
        close_timeout=CLOSE_TIMEOUT_S,
        user_agent_header=None,
        proxy=proxy,
        logger=_library_log,
        **kwargs,  # type: ignore[arg-type]
    )
    link = WSLink(connection, on_packet, on_closed, max_size, send_queue_bytes=send_queue_bytes)
    task = asyncio.get_running_loop().create_task(link.run())
    return link, task


# -- the node's WebSocket side -------------------------------------------------------------------
class WebSocketTransport:
    """A node's WebSocket side: the server (if any) and every open connection, accepted or
    initiated, their deadlines, and the counts of connections refused or closed.

    ``on_packet(data, link)`` gets every binary message; ``on_closed(link)`` every connection
    that ended (after it left :attr:`links`). ``carries(link)`` tells whether the endpoint keeps
    a session or a handshake on ``link``. ``on_room(link)`` is each link's call when its send queue
    drained after lacking room for a record (the driver's drain point). The node reports
    :meth:`established` when a session is established over a link and :meth:`released` when
    one closes.

    Deadlines, each one loop timer per link (docs/protocol.md §12.2):

    * an accepted link must carry something by ``websocket_handshake_timeout_s`` after its
      upgrade and an established session by ``websocket_session_timeout_s``, else it is closed
      with 1008 (:attr:`closed_handshake_timeout`);
    * any link, accepted or opened here, that carries nothing for ``websocket_idle_timeout_s``
      is closed with 1000 (:attr:`closed_idle`); the timer checks again after each period while
      the link carries something.
    """

    def __init__(
        self,
        on_packet: Callable[[bytes, WSLink], None],
        on_closed: Callable[[WSLink], None],
        config: TransportConfig,
        *,
        carries: Callable[[WSLink], bool],
        on_room: Callable[[WSLink], None] | None = None,
    ) -> None:
        self._on_packet = on_packet
        self._on_room = on_room
        self._on_closed = on_closed
        self._config = config
        self._carries = carries
        self.server: WebSocketServer | None = None
        self.tls = False
        self.links: set[WSLink] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._refused_closed = [0, 0]  # text, oversized messages of links already closed
        self._dropped_closed = 0  # send_dropped of links already closed
        #: Links closed because they carried nothing for ``websocket_idle_timeout_s``.
        self.closed_idle = 0
        #: Accepted links closed for carrying no handshake, or no session, in time.
        self.closed_handshake_timeout = 0

    async def serve(self, host: str, port: int, ssl: ssl_module.SSLContext | None) -> None:
        """Serve ``ws://host:port/stt`` (``wss://`` with ``ssl``)."""
        server = WebSocketServer(self._on_packet, self._accepted, self._closed, self._config)
        await server.start(host, port, ssl)
        self.server = server
        self.tls = ssl is not None

    async def connect(
        self,
        url: str,
        *,
        ssl: ssl_module.SSLContext | None,
        open_timeout: float,
        proxy: str | Literal[True] | None = None,
    ) -> WSLink:
        """Open a connection to ``url``; raises what ``websockets`` raises (OSError, TimeoutError,
        InvalidURI, InvalidHandshake, ...)."""
        config = self._config
        link, task = await open_client_link(
            url,
            self._on_packet,
            self._closed,
            max_size=config.websocket_max_record_size,
            ssl=ssl,
            open_timeout=open_timeout,
            send_queue_bytes=config.websocket_send_queue_bytes,
            proxy=proxy,
        )
        link.on_room = self._on_room
        self.links.add(link)
        self._keep(task)
        self._arm(link, config.websocket_idle_timeout_s, self._idle_check)
        return link

    # -- deadlines ------------------------------------------------------------------------------
    def _accepted(self, link: WSLink) -> None:
        link.on_room = self._on_room
        self.links.add(link)
        self._arm(link, self._config.websocket_handshake_timeout_s, self._first_deadline)

    def established(self, link: WSLink) -> None:
        """A session was established over ``link``: it stops counting as pending, and only the
        idle timeout applies from now on."""
        if link.closed:
            return
        link.mark_established()
        self._arm(link, self._config.websocket_idle_timeout_s, self._idle_check)

    def released(self, link: WSLink) -> None:
        """A session over ``link`` closed: its idle period starts now."""
        if link.established and not link.closed:
            self._arm(link, self._config.websocket_idle_timeout_s, self._idle_check)

    def _arm(self, link: WSLink, delay: float, check: Callable[[WSLink], None]) -> None:
        link.set_timer(asyncio.get_running_loop().call_later(delay, check, link))

    def _first_deadline(self, link: WSLink) -> None:
        if link.closed or link.established:
            return
        if not self._carries(link):
            self._expire(link, idle=False)
            return
        loop = asyncio.get_running_loop()
        at = link.opened_at + self._config.websocket_session_timeout_s
        link.set_timer(loop.call_at(at, self._session_deadline, link))

    def _session_deadline(self, link: WSLink) -> None:
        if not link.closed and not link.established:
            self._expire(link, idle=False)

    def _idle_check(self, link: WSLink) -> None:
        if link.closed:
            return
        if self._carries(link):
            self._arm(link, self._config.websocket_idle_timeout_s, self._idle_check)
        else:
            self._expire(link, idle=True)

    def _expire(self, link: WSLink, *, idle: bool) -> None:
        if idle:
            self.closed_idle += 1
            code, reason = _IDLE_CLOSE
        else:
            self.closed_handshake_timeout += 1
            code, reason = _TIMEOUT_CLOSE
        _log.debug(
            "closing %r: %s", link, "idle" if idle else "no handshake or session before deadline"
        )
        self._spawn(link.aclose(code, reason))

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        self._keep(asyncio.get_running_loop().create_task(coroutine))

    def _keep(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _closed(self, link: WSLink) -> None:
        self.links.discard(link)
        self._refused_closed[0] += link.text_frames_refused
        self._refused_closed[1] += link.oversized_refused
        self._dropped_closed += link.send_dropped
        self._on_closed(link)

    # -- figures --------------------------------------------------------------------------------
    @property
    def text_frames_refused(self) -> int:
        """Connections closed for a text message (1003), open or closed since."""
        return self._refused_closed[0] + sum(link.text_frames_refused for link in self.links)

    @property
    def oversized_refused(self) -> int:
        """Connections closed for a message above the size limit (1009)."""
        return self._refused_closed[1] + sum(link.oversized_refused for link in self.links)

    @property
    def pending(self) -> int:
        """Accepted connections (from TCP accept on) that carry no established session yet."""
        return self.server.gate.pending if self.server is not None else 0

    @property
    def refused_connections(self) -> int:
        """Connections refused (HTTP 503, or dropped at once) for the pending limits."""
        return self.server.gate.refused if self.server is not None else 0

    @property
    def send_dropped(self) -> int:
        """Packets dropped by the links' send queues (full, or the link closed)."""
        return self._dropped_closed + sum(link.send_dropped for link in self.links)

    @property
    def send_queued_bytes(self) -> int:
        """Bytes waiting in every link's send queue now."""
        return sum(link.queued_bytes for link in self.links)

    async def close(self) -> None:
        """Stop serving and close every connection."""
        if self.server is not None:
            await self.server.close()
        await asyncio.gather(*(link.aclose() for link in list(self.links)))
        for task in list(self._tasks):
            task.cancel()
