"""The loopback NAT box: real nodes behind a :class:`~seigr_stt.testing.NAT` model.

Public through :mod:`seigr_stt.testing`, which re-exports every name of ``__all__``.

How an unchanged node gets "behind" the box: the box is its gateway. For every remote address
the node should reach, :meth:`NATBox.route` gives an inside address on the box (a UDP socket
standing for that remote: a one-line forwarding table). The node sends there; the box
translates the datagram as its model says (creating or refreshing a mapping, a real UDP socket
bound at the mapping's public port on ``public_host``) and sends it from that public socket to
the remote. Datagrams arriving at a public port pass the model's filtering and reach the inside
node from the inside address standing for their sender, so the node sees each remote as one
stable address. TCP (WebSocket) is forwarded per connection by :meth:`NATBox.route_tcp`, with
only the firewall's TCP rule applied (TCP mappings are not modelled).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import socket
import time
from collections.abc import Callable
from types import TracebackType

from seigr_stt.testing.nat import NAT, Firewall, NATConfig

__all__ = ["NATBox"]

Address = tuple[str, int]
_READ_BATCH = 64  # datagrams read per wake-up of one socket
_MAX_DATAGRAM = 65535


def _loopback(addr: Address, what: str) -> Address:
    host, port = addr[0], addr[1]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{what} must be an IPv4 loopback address, not {host!r}") from None
    if ip.version != 4 or not ip.is_loopback:
        raise ValueError(f"{what} must be an IPv4 loopback address, not {host!r}")
    if not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"{what} port must be within 1..65535, not {port!r}")
    return (str(ip), port)


class NATBox:
    """A NAT (and optionally a firewall) on IPv4 loopback between real inside nodes and the rest.

    ``config`` is the NAT's behaviour (full cone by default); ``public_host`` the box's public
    address and ``inside_host`` the address of its gateway sockets (both IPv4 loopback: give each
    box its own ``127.0.0.x`` public host to tell NATs apart by host, as address-dependent
    filtering does). ``clock`` (``time.monotonic`` by default) times the mappings: a test may
    give its own to expire them without waiting. ``rng`` draws random public ports
    (``os.urandom`` by default). :attr:`nat` is the model, with its ``stats`` and
    ``mappings(now)``; :attr:`send_errors` counts datagrams the kernel refused to send.

    Use it as ``async with NATBox(...) as box:``; every socket is closed on exit.
    """

    def __init__(
        self,
        config: NATConfig | None = None,
        *,
        firewall: Firewall | None = None,
        public_host: str = "127.0.0.1",
        inside_host: str = "127.0.0.1",
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.public_host = _loopback((public_host, 1), "public_host")[0]
        self.inside_host = _loopback((inside_host, 1), "inside_host")[0]
        self.clock = clock
        self.nat = NAT(
            config if config is not None else NATConfig.full_cone(),
            self.public_host,
            rng,
            firewall=firewall,
            claim_port=self._claim_public,
            release_port=self._release_public,
        )
        self.send_errors = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._public: dict[int, socket.socket] = {}
        self._gateways: dict[Address, socket.socket] = {}
        self._tcp_servers: list[asyncio.Server] = []
        self._tcp_tasks: set[asyncio.Task[None]] = set()
        self._tcp_writers: set[asyncio.StreamWriter] = set()
        self._closed = False

    @property
    def firewall(self) -> Firewall | None:
        """The firewall in the box, or None."""
        return self.nat.firewall

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Attach the box to the running event loop (sockets are opened as they are needed)."""
        self._loop = asyncio.get_running_loop()

    def close(self) -> None:
        """Close every socket and TCP forwarder (datagrams in flight are dropped)."""
        self._closed = True
        for sock in [*self._public.values(), *self._gateways.values()]:
            self._unwatch(sock)
        self._public.clear()
        self._gateways.clear()
        for server in self._tcp_servers:
            server.close()
        for writer in self._tcp_writers:  # the pipes see the end of their streams and return
            writer.transport.abort()

    async def __aenter__(self) -> NATBox:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
        for server in self._tcp_servers:
            await server.wait_closed()
        if self._tcp_tasks:
            await asyncio.gather(*self._tcp_tasks, return_exceptions=True)

    # -- what a test or an inside node uses ---------------------------------------------------
    def route(self, remote: Address) -> Address:
        """The inside address standing for ``remote``: an inside node sends there to reach
        ``remote`` through the NAT, and gets ``remote``'s datagrams from there."""
        return self._gateway(_loopback(remote, "remote")).getsockname()[:2]  # type: ignore[no-any-return]

    def punch(self, inside: Address, remote: Address, data: bytes | None = None) -> Address | None:
        """Account for a datagram from ``inside`` to ``remote`` leaving through the NAT (a
        hole-punching probe, or a STUN request) and return the public address it left from,
        or None when the NAT dropped it. ``data`` is then really sent to ``remote``; with None
        nothing is (as if the probe was lost on the way)."""
        self._require_started()
        remote = _loopback(remote, "remote")
        public = self.nat.outbound(_loopback(inside, "inside"), remote, self.clock())
        if public is not None and data is not None:
            self._send(self._public[public[1]], data, remote)
        return public

    async def route_tcp(self, remote: Address) -> Address:
        """An inside TCP address forwarding each connection to ``remote`` (WebSocket through
        the box). The firewall's TCP rule decides each connection; no NAT state is kept."""
        self._require_started()
        target = _loopback(remote, "remote")

        async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._tcp_tasks.add(task)
            try:
                await self._forward_tcp(target, reader, writer)
            finally:
                self._tcp_tasks.discard(task)

        server = await asyncio.start_server(forward, self.inside_host, 0)
        self._tcp_servers.append(server)
        return server.sockets[0].getsockname()[:2]  # type: ignore[no-any-return]

    # -- UDP ----------------------------------------------------------------------------------
    def _require_started(self) -> None:
        if self._loop is None or self._closed:
            raise RuntimeError("the NAT box is not running (use 'async with NATBox(...)')")

    def _gateway(self, remote: Address) -> socket.socket:
        sock = self._gateways.get(remote)
        if sock is None:
            self._require_started()
            sock = self._bind(self.inside_host, 0)
            if sock is None:  # pragma: no cover - the kernel has no ephemeral port left
                raise OSError(f"cannot bind a gateway socket on {self.inside_host}")
            self._gateways[remote] = sock
            self._watch(sock, lambda data, src: self._from_inside(remote, data, src))
        return sock

    def _claim_public(self, port: int) -> bool:
        sock = self._bind(self.public_host, port)
        if sock is None:
            return False
        self._public[port] = sock
        self._watch(sock, lambda data, src: self._from_outside(port, data, src))
        return True

    def _release_public(self, port: int) -> None:
        sock = self._public.pop(port, None)
        if sock is not None:
            self._unwatch(sock)

    def _from_inside(self, remote: Address, data: bytes, inside: Address) -> None:
        public = self.nat.outbound(inside, remote, self.clock())
        if public is not None:
            self._send(self._public[public[1]], data, remote)

    def _from_outside(self, port: int, data: bytes, remote: Address) -> None:
        inside = self.nat.inbound(remote, (self.public_host, port), self.clock())
        if inside is not None:
            assert isinstance(inside, tuple)  # the box's inside endpoints are (host, port)
            self._send(self._gateway(remote), data, inside)

    def _send(self, sock: socket.socket, data: bytes, addr: tuple[object, ...]) -> None:
        try:
            sock.sendto(data, addr)
        except OSError:  # a full buffer or an ICMP error reported late: the datagram is lost
            self.send_errors += 1

    @staticmethod
    def _bind(host: str, port: int) -> socket.socket | None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((host, port))
        except OSError:
            sock.close()
            return None
        sock.setblocking(False)
        return sock

    def _watch(self, sock: socket.socket, handler: Callable[[bytes, Address], None]) -> None:
        assert self._loop is not None
        self._loop.add_reader(sock.fileno(), self._read, sock, handler)

    def _unwatch(self, sock: socket.socket) -> None:
        if self._loop is not None:
            self._loop.remove_reader(sock.fileno())
        sock.close()

    def _read(self, sock: socket.socket, handler: Callable[[bytes, Address], None]) -> None:
        for _ in range(_READ_BATCH):
            try:
                data, src = sock.recvfrom(_MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # an ICMP error of an earlier send, or the socket just closed
                if sock.fileno() == -1:
                    return
                continue
            if self._closed:
                return
            handler(data, (src[0], src[1]))

    # -- TCP ----------------------------------------------------------------------------------
    async def _forward_tcp(
        self, target: Address, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        firewall = self.nat.firewall
        if self._closed or (firewall is not None and not firewall.allows("tcp", target)):
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*target)
        except OSError:
            writer.close()
            return
        self._tcp_writers |= {writer, up_writer}
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                self._tcp_writers.discard(w)
                w.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    if writer.can_write_eof():
        with contextlib.suppress(OSError):
            writer.write_eof()
