"""Helpers of the aio tests: connecting nodes, collecting packets, waiting, a UDP relay.

Every wait here has an upper bound (:data:`WAIT_S`) that only keeps a broken test from hanging;
no test asserts how long anything took.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal, Protocol

from seigr_stt import NodeConfig, ReceivedPacket, STTNode, STTSession
from seigr_stt.aio.streams import STTStream
from tests.timing import SECOND

__all__ = [
    "KIB",
    "LOOPBACK",
    "MIB",
    "SENTINEL",
    "TRANSPORTS",
    "WAIT_S",
    "NodeFactory",
    "Pair",
    "Transport",
    "UDPRelay",
    "collect_until_sentinels",
    "connect",
    "loopback_udp_socket",
    "next_incoming_stream",
    "receive_n",
    "wait_until",
    "write_chunks",
]

LOOPBACK = "127.0.0.1"
KIB = 1024
MIB = 1024 * 1024
WAIT_S = 10 * SECOND
"""Upper bound for anything that should happen promptly (a hung test fails instead); scaled by
``STT_TESTS_TIMEOUT_FACTOR`` (:mod:`tests.timing`)."""

SENTINEL = b"\xff-sentinel-\xff"
"""Payload that marks the end of a burst on one (session, stream)."""

Transport = Literal["udp", "websocket"]
TRANSPORTS: tuple[Transport, ...] = ("udp", "websocket")


class NodeFactory(Protocol):
    """The ``make_node`` fixture: starts a node on 127.0.0.1, stopped at teardown."""

    async def __call__(
        self,
        *,
        server_mode: bool = True,
        ws: bool = True,
        node_seed: bytes | None = None,
        shared_seed: bytes | None = None,
        host: str = LOOPBACK,
        port: int = 0,
        config: NodeConfig | None = None,
        allowed_peers: Iterable[bytes] | Callable[[bytes], bool] | None = None,
    ) -> STTNode: ...


@dataclass
class Pair:
    """Two started nodes and one session between them, seen from both sides."""

    client: STTNode
    server: STTNode
    session: STTSession  # the client's (initiator's) side
    peer: STTSession  # the server's (responder's) side
    transport: Transport


async def connect(
    client: STTNode, server: STTNode, transport: Transport, *, timeout: float = WAIT_S
) -> tuple[STTSession, STTSession]:
    """Connect ``client`` to ``server`` over ``transport``; return (client side, server side)."""
    if transport == "udp":
        assert server.udp_address is not None
        host, port = server.udp_address
        session = await client.connect_udp(host, port, timeout=timeout)
    else:
        assert server.ws_url is not None
        session = await client.connect_websocket(server.ws_url, timeout=timeout)
    # The responder's session exists before the initiator's: its first record confirms the keys.
    peer = server.session_manager.get_session(session.session_id)
    assert peer is not None, "the server has no session with the client's session id"
    return session, peer


async def wait_until(
    predicate: Callable[[], bool], what: str = "condition", timeout: float = WAIT_S
) -> None:
    """Poll ``predicate`` until it is true; fail the test if it is not within ``timeout``."""
    try:
        async with asyncio.timeout(timeout):
            # Polling: the conditions are plain counters and states with no event to await.
            while not predicate():  # noqa: ASYNC110
                await asyncio.sleep(0.005)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def receive_n(node: STTNode, n: int, timeout: float = WAIT_S) -> list[ReceivedPacket]:
    """The next ``n`` packets ``node`` receives."""
    packets: list[ReceivedPacket] = []
    if n == 0:
        return packets
    async with asyncio.timeout(timeout):
        async for packet in node.receive():
            packets.append(packet)
            if len(packets) == n:
                break
    assert len(packets) == n, f"the node stopped after {len(packets)} of {n} packets"
    return packets


async def collect_until_sentinels(
    node: STTNode, channels: Iterable[tuple[bytes, int]], timeout: float = WAIT_S
) -> list[ReceivedPacket]:
    """Collect packets until a :data:`SENTINEL` arrived on each ``(session_id, stream_id)``.

    Returns every non-sentinel packet received meanwhile, in arrival order. Because delivery is
    ordered per (session, stream), a duplicate of anything sent before a sentinel would have
    arrived before it, so comparing the result with what was sent checks "exactly once".
    A second sentinel on one channel fails the test.
    """
    waiting = set(channels)
    packets: list[ReceivedPacket] = []
    async with asyncio.timeout(timeout):
        async for packet in node.receive():
            if packet.data == SENTINEL:
                key = (packet.session_id, packet.stream_id)
                assert key in waiting, f"unexpected or duplicate sentinel on {key}"
                waiting.discard(key)
                if not waiting:
                    break
            else:
                packets.append(packet)
    assert not waiting, "the node stopped before every sentinel arrived"
    return packets


def loopback_udp_socket(host: str = LOOPBACK) -> socket.socket:
    """A non-blocking UDP socket bound to an ephemeral loopback port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.bind((host, 0))
    return sock


def recv_all(sock: socket.socket, source: tuple[str, int]) -> list[bytes]:
    """Every datagram waiting on the non-blocking ``sock`` that came from ``source`` (the node
    under test). Datagrams from anywhere else are skipped: with tests running in parallel, a
    node of another test may still be sending to a port it used, which the kernel has handed
    to ``sock`` since."""
    out: list[bytes] = []
    while True:
        try:
            data, sender = sock.recvfrom(65535)
        except (BlockingIOError, InterruptedError):
            return out
        if sender[:2] == source[:2]:
            out.append(data)


class UDPRelay:
    """Forwards datagrams between one client and a server, all on 127.0.0.1.

    The client talks to :attr:`address`; the relay talks to the server from its current *back*
    socket. :meth:`rebind` switches to a new back socket, so the server sees the client's packets
    come from a new address (a NAT rebinding). Every datagram sent toward the server is kept in
    :attr:`to_server` so a test can replay it with :meth:`inject`. A test that sets
    :attr:`divert` takes datagrams off the path: one from the client for which it returns True
    is neither forwarded nor kept (what an on-path attacker does with a packet it withholds).
    """

    def __init__(self, server_addr: tuple[str, int]) -> None:
        assert server_addr[0] == LOOPBACK
        self._loop = asyncio.get_running_loop()
        self.server_addr = server_addr
        self.front = loopback_udp_socket()
        self.client_addr: tuple[str, int] | None = None
        self.backs: list[socket.socket] = []
        self.to_server: list[bytes] = []
        self.to_client: list[bytes] = []
        self.divert: Callable[[bytes], bool] | None = None
        self._loop.add_reader(self.front.fileno(), self._from_client)
        self.rebind()

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.front.getsockname()[:2]
        return (str(host), int(port))

    @property
    def back_address(self) -> tuple[str, int]:
        """Where the server sees the client's packets come from now."""
        host, port = self.backs[-1].getsockname()[:2]
        return (str(host), int(port))

    def rebind(self) -> None:
        """Send to the server from a new socket from now on (old sockets still forward replies)."""
        back = loopback_udp_socket()
        self.backs.append(back)
        self._loop.add_reader(back.fileno(), self._from_server, back)

    def inject(self, data: bytes) -> None:
        """Send ``data`` to the server from the current back socket, as the client would."""
        self.backs[-1].sendto(data, self.server_addr)

    def _from_client(self) -> None:
        while True:
            try:
                data, addr = self.front.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            self.client_addr = (str(addr[0]), int(addr[1]))
            if self.divert is not None and self.divert(data):
                continue
            self.to_server.append(data)
            self.backs[-1].sendto(data, self.server_addr)

    def _from_server(self, sock: socket.socket) -> None:
        while True:
            try:
                data, sender = sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            if sender[:2] != self.server_addr[:2]:
                continue  # a stray: another test's node sending to a port this socket now has
            if self.client_addr is not None:
                self.to_client.append(data)
                self.front.sendto(data, self.client_addr)

    def close(self) -> None:
        for sock in (self.front, *self.backs):
            self._loop.remove_reader(sock.fileno())
            sock.close()


async def next_incoming_stream(session: STTSession, timeout: float = WAIT_S) -> STTStream:
    """The next byte stream the peer of ``session`` opens."""
    async with asyncio.timeout(timeout):
        async for stream in session.incoming_streams():
            return stream
    raise AssertionError("the session closed before the peer opened a stream")


async def write_chunks(
    stream: STTStream, data: bytes, chunk: int = 64 * KIB, *, close: bool = True
) -> None:
    """Write ``data`` in ``chunk``-byte writes, each followed by ``drain()`` (backpressure), then
    finish our side when ``close``."""
    for offset in range(0, len(data), chunk):
        await stream.write(data[offset : offset + chunk])
        await stream.drain()
    if close:
        await stream.close()
