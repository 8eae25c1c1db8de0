"""Real nodes behind :class:`seigr_stt.testing.NATBox` over real loopback sockets.

Each node runs unchanged: it reaches a remote through the address its box gives for it
(``box.route(remote)``), and the box translates as its NAT model says. Handshakes expected to
fail use short timeouts; mapping expiry uses an injected clock (no waiting).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from seigr_stt import HandshakeTimeout, STTNode, generate_seed
from seigr_stt.testing import Firewall, NATBox, NATConfig
from tests.timing import MS, SECOND

Address = tuple[str, int]
NodeMaker = Callable[[], Awaitable[STTNode]]
BoxMaker = Callable[..., Awaitable[NATBox]]
#: Where a node would ask for its public address: no packet is sent there (``punch`` without
#: data only accounts for one).
STUN = ("127.0.0.1", 3478)
WAIT_S = 10 * SECOND


@pytest.fixture
async def make_box() -> AsyncIterator[BoxMaker]:
    """Started boxes, closed at teardown after the nodes (``make_node`` depends on this), so
    the nodes' closing handshakes still get through."""
    boxes: list[NATBox] = []

    async def factory(config: NATConfig | None = None, **kwargs: Any) -> NATBox:
        box = NATBox(config, **kwargs)
        boxes.append(box)
        await box.start()
        return box

    yield factory
    for box in boxes:
        await box.__aexit__(None, None, None)


@pytest.fixture
async def make_node(make_box: BoxMaker) -> AsyncIterator[NodeMaker]:
    shared = generate_seed()
    nodes: list[STTNode] = []

    async def factory() -> STTNode:
        node = STTNode(generate_seed(), shared, "127.0.0.1", 0, ws_port=0)
        nodes.append(node)
        await node.start(server_mode=True)
        return node

    yield factory
    async with asyncio.timeout(WAIT_S):
        await asyncio.gather(*(node.stop() for node in nodes))


def udp(node: STTNode) -> Address:
    assert node.udp_address is not None
    return node.udp_address


async def exchange(a: STTNode, b: STTNode, a_side_target: Address) -> None:
    """A connects to ``a_side_target``; a message goes each way."""
    async with asyncio.timeout(WAIT_S):
        session = await a.connect_udp(*a_side_target, timeout=WAIT_S)
        await session.send(b"hello from A")
        peer = b.session_manager.get_session(session.session_id)
        assert peer is not None
        assert (await peer.recv()).data == b"hello from A"
        await peer.send(b"hello from B")
        assert (await session.recv()).data == b"hello from B"


async def test_two_real_nodes_behind_full_cone_boxes_connect(
    make_node: NodeMaker, make_box: BoxMaker
) -> None:
    a, b = await make_node(), await make_node()
    box_a, box_b = await make_box(NATConfig.full_cone()), await make_box(NATConfig.full_cone())
    b_public = box_b.punch(udp(b), STUN)  # B learns its public address (as from STUN)
    assert b_public is not None
    assert b_public[1] != udp(b)[1]  # the inside port is taken on 127.0.0.1: not preserved
    await exchange(a, b, box_a.route(b_public))
    # B saw A at the box's inside address standing for A's public address.
    (a_mapping,) = box_a.nat.mappings(box_a.clock())
    assert a_mapping.inside == udp(a)
    (peer,) = b.session_manager.get_sessions_by_peer(a.node_id)
    assert peer.peer_addr == box_b.route(a_mapping.public)
    assert box_a.nat.stats.translated_out > 0
    assert box_b.nat.stats.translated_in > 0


async def test_port_restricted_boxes_need_the_punch(
    make_node: NodeMaker, make_box: BoxMaker
) -> None:
    a, b = await make_node(), await make_node()
    config = NATConfig.port_restricted_cone()
    box_a, box_b = await make_box(config), await make_box(config)
    b_public = box_b.punch(udp(b), STUN)
    assert b_public is not None
    with pytest.raises(HandshakeTimeout):
        await a.connect_udp(*box_a.route(b_public), timeout=300 * MS)
    assert box_b.nat.stats.dropped_filtered > 0  # unsolicited at B's box
    # The hole punch: B sends toward A's public address (endpoint-independent mapping:
    # the one A's handshake already uses), and B's box now lets A in.
    (a_mapping,) = box_a.nat.mappings(box_a.clock())
    assert box_b.punch(udp(b), a_mapping.public) == b_public
    await exchange(a, b, box_a.route(b_public))


async def test_a_firewall_blocks_udp_and_websocket_still_works(
    make_node: NodeMaker, make_box: BoxMaker
) -> None:
    client, server = await make_node(), await make_node()
    assert server.ws_url is not None
    wall = Firewall()
    box = await make_box(firewall=wall)
    with pytest.raises(HandshakeTimeout):
        await client.connect_udp(*box.route(udp(server)), timeout=300 * MS)
    assert wall.stats.udp_dropped > 0
    assert box.nat.stats.translated_out == 0
    host, port = server.ws_url.removeprefix("ws://").removesuffix("/stt").rsplit(":", 1)
    inside_host, inside_port = await box.route_tcp((host, int(port)))
    async with asyncio.timeout(WAIT_S):
        session = await client.connect_websocket(
            f"ws://{inside_host}:{inside_port}/stt", timeout=WAIT_S
        )
        await session.send(b"over TCP")
        peer = server.session_manager.get_session(session.session_id)
        assert peer is not None
        assert (await peer.recv()).data == b"over TCP"
    assert wall.stats.tcp_passed == 1


async def test_a_closed_tcp_port_refuses_the_websocket(
    make_node: NodeMaker, make_box: BoxMaker
) -> None:
    client, server = await make_node(), await make_node()
    assert server.ws_url is not None
    box = await make_box(firewall=Firewall(tcp=False))
    host, port = server.ws_url.removeprefix("ws://").removesuffix("/stt").rsplit(":", 1)
    inside = await box.route_tcp((host, int(port)))
    with pytest.raises(Exception, match="WebSocket"):
        await client.connect_websocket(f"ws://{inside[0]}:{inside[1]}/stt", timeout=WAIT_S)
    assert box.firewall is not None
    assert box.firewall.stats.tcp_dropped == 1


def raw_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


async def recv(sock: socket.socket, timeout: float) -> tuple[bytes, Address] | None:
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            data, addr = await loop.sock_recvfrom(sock, 65535)
    except TimeoutError:
        return None
    return data, (addr[0], addr[1])


async def test_an_expired_mapping_drops_and_its_port_is_released() -> None:
    now = [100.0]
    inside, outside = raw_socket(), raw_socket()
    try:
        config = NATConfig.full_cone(mapping_timeout_s=30.0)
        async with NATBox(config, clock=lambda: now[0]) as box:
            gateway = box.route(outside.getsockname())
            inside.sendto(b"out", gateway)
            got = await recv(outside, WAIT_S)
            assert got is not None
            assert got[0] == b"out"
            public = got[1]
            outside.sendto(b"back", public)
            assert await recv(inside, WAIT_S) == (b"back", gateway)
            now[0] += 31.0  # idle past the timeout
            outside.sendto(b"late", public)
            assert await recv(inside, 200 * MS) is None
            assert box.nat.stats.mappings_expired == 1
            assert box.nat.stats.dropped_no_mapping == 1
            probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            probe.bind(public)  # the released public port is free again
            probe.close()
    finally:
        inside.close()
        outside.close()


async def test_a_symmetric_box_uses_a_fresh_public_port_per_remote() -> None:
    inside, first, second = raw_socket(), raw_socket(), raw_socket()
    try:
        async with NATBox(NATConfig.symmetric()) as box:
            inside.sendto(b"1", box.route(first.getsockname()))
            inside.sendto(b"2", box.route(second.getsockname()))
            got_first, got_second = await recv(first, WAIT_S), await recv(second, WAIT_S)
            assert got_first is not None
            assert got_second is not None
            assert got_first[1] != got_second[1]
            second.sendto(b"wrong port", got_first[1])  # a stranger to that mapping
            first.sendto(b"right", got_first[1])
            assert await recv(inside, WAIT_S) == (b"right", box.route(first.getsockname()))
            assert box.nat.stats.dropped_filtered == 1
    finally:
        for sock in (inside, first, second):
            sock.close()


async def test_the_box_refuses_other_than_loopback() -> None:
    with pytest.raises(ValueError, match="loopback"):
        NATBox(public_host="192.0.2.1")
    async with NATBox() as box:
        with pytest.raises(ValueError, match="loopback"):
            box.route(("192.0.2.1", 80))
    with pytest.raises(RuntimeError, match="not running"):
        box.route(("127.0.0.1", 80))


async def test_address_dependent_filtering_tells_loopback_hosts_apart() -> None:
    inside, peer = raw_socket(), raw_socket()
    other_port = raw_socket()
    other_host = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other_host.bind(("127.0.0.3", 0))
    try:
        async with NATBox(NATConfig.restricted_cone(), public_host="127.0.0.2") as box:
            inside.sendto(b"out", box.route(peer.getsockname()))
            got = await recv(peer, WAIT_S)
            assert got is not None
            public = got[1]
            assert public[0] == "127.0.0.2"
            other_host.sendto(b"other host", public)  # filtered: A never sent to 127.0.0.3
            other_port.sendto(b"same host", public)  # passes: same host as the peer
            assert await recv(inside, WAIT_S) == (b"same host", box.route(other_port.getsockname()))
            assert box.nat.stats.dropped_filtered == 1
    finally:
        for sock in (inside, peer, other_port, other_host):
            sock.close()
