"""Transport migration over real loopback sockets (§18): one session moves UDP -> WebSocket ->
UDP when UDP is blocked and comes back, and from a relay to a direct UDP path between two nodes
behind two emulated NATs (hole punching), falling back to the relay when the direct path breaks.
Each 4 MiB stream arrives intact across the switches."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable

import pytest

from seigr_stt import NodeConfig, STTNode, generate_seed
from seigr_stt.aio.session import NodeEvent, STTSession
from seigr_stt.relay import RelayServer
from seigr_stt.testing import Firewall, NATBox, NATConfig
from tests.aio.helpers import next_incoming_stream, wait_until, write_chunks
from tests.timing import SECOND

MIB = 1024 * 1024
CONFIG = NodeConfig(path_reprobe_interval_s=0.2)


@pytest.fixture
async def nodes(shared_seed: bytes) -> AsyncIterator[Callable[..., STTNode]]:
    made: list[STTNode] = []

    def make(**kwargs: object) -> STTNode:
        node = STTNode(generate_seed(), shared_seed, config=CONFIG, **kwargs)  # type: ignore[arg-type]
        made.append(node)
        return node

    yield make
    await asyncio.gather(*(node.stop() for node in made))


def path_changes(session: STTSession) -> list[str]:
    seen: list[str] = []

    def note(event: NodeEvent) -> None:
        assert event.transport is not None
        seen.append(event.transport)

    session.on("path_changed", note)
    return seen


async def transfer(sender: STTSession, receiver: STTSession, data: bytes) -> asyncio.Task[bytes]:
    """Start a stream of ``data`` from ``sender``; returns the task that writes it and returns
    what the other end read."""
    stream = await sender.open_stream()
    writer = asyncio.ensure_future(write_chunks(stream, data))

    async def read() -> bytes:
        incoming = await next_incoming_stream(receiver)
        received = await incoming.read()
        await writer
        return received

    return asyncio.ensure_future(read())


async def test_a_4_mib_stream_survives_udp_to_websocket_and_back(
    nodes: Callable[..., STTNode],
) -> None:
    server = nodes(server_mode=True, ws_port=0)
    client = nodes()
    await server.start()
    await client.start()
    firewall = Firewall(udp=True)
    async with NATBox(NATConfig.full_cone(), firewall=firewall) as box:
        assert server.udp_address is not None
        session = await client.connect_udp(*box.route(server.udp_address), timeout=5 * SECOND)
        [peer] = server.session_manager.get_active_sessions()
        changes, peer_changes = path_changes(session), path_changes(peer)
        data = hashlib.shake_256(b"udp-ws-udp").digest(4 * MIB)
        reader = await transfer(session, peer, data)
        await wait_until(lambda: peer.stats().bytes_received > MIB, "the first MiB", 10 * SECOND)
        firewall.udp = False  # UDP blocked: the client opens the WebSocket the server announced
        await wait_until(lambda: changes == ["websocket"], "the move to WebSocket", 5 * SECOND)
        await wait_until(lambda: peer_changes == ["websocket"], "the server to follow", 5 * SECOND)
        assert session.path[0] == peer.path[0] == "websocket"
        firewall.udp = True  # UDP back: the client's re-probe finds it
        await wait_until(lambda: changes == ["websocket", "udp"], "UDP again", 5 * SECOND)
        await wait_until(lambda: peer_changes[-1:] == ["udp"], "the server on UDP", 5 * SECOND)
        async with asyncio.timeout(20 * SECOND):
            received = await reader
        await asyncio.gather(client.stop(), server.stop())  # while the box still carries CLOSE
    assert received == data
    assert session.session_id == peer.session_id
    assert session.path[0] == "udp"
    assert session.transport_type == "udp"


async def hole_punching_pair(
    nodes: Callable[..., STTNode], relay: RelayServer, box_a: NATBox, box_b: NATBox
) -> tuple[STTNode, STTNode, STTSession, STTSession]:
    """A behind ``box_a`` dials B behind ``box_b`` by node id through the relay (over UDP, so
    the relay observes each node's public address)."""
    assert relay.udp_address is not None
    url_a = "udp://{}:{}".format(*box_a.route(relay.udp_address))
    url_b = "udp://{}:{}".format(*box_b.route(relay.udp_address))
    a, b = nodes(), nodes(server_mode=True, relays=[url_b])
    a.udp_route, b.udp_route = box_a.route, box_b.route
    await b.start()
    await a.start()
    session = await a.connect(b.node_id, relays=[url_a], timeout=5 * SECOND)
    [peer] = b.session_manager.get_active_sessions()
    assert session.path[0] == peer.path[0] == "relay"
    return a, b, session, peer


@pytest.fixture
async def relay() -> AsyncIterator[RelayServer]:
    async with RelayServer(udp_port=0, ws_port=None) as server:
        yield server


async def test_cone_nats_end_on_the_direct_path_with_a_4_mib_stream_intact(
    nodes: Callable[..., STTNode], relay: RelayServer
) -> None:
    config = NATConfig.port_restricted_cone()
    async with (
        NATBox(config, public_host="127.0.0.2") as box_a,
        NATBox(config, public_host="127.0.0.3") as box_b,
    ):
        a, b, session, peer = await hole_punching_pair(nodes, relay, box_a, box_b)
        changes, peer_changes = path_changes(session), path_changes(peer)
        data = hashlib.shake_256(b"relay-direct").digest(4 * MIB)
        reader = await transfer(session, peer, data)
        await wait_until(lambda: changes == ["udp"], "the direct path", 5 * SECOND)
        await wait_until(lambda: peer_changes == ["udp"], "the peer on it", 5 * SECOND)
        async with asyncio.timeout(20 * SECOND):
            received = await reader
        assert received == data
        # The direct path runs through both NATs: each side sends to its box's gateway.
        transport, addr = session.path
        assert transport == "udp"
        assert addr[0] == box_a.inside_host
        assert box_a.nat.stats.translated_in > 0
        assert box_b.nat.stats.translated_in > 0
        await asyncio.gather(a.stop(), b.stop())


async def test_symmetric_nats_stay_relayed(
    nodes: Callable[..., STTNode], relay: RelayServer
) -> None:
    config = NATConfig.symmetric()
    async with (
        NATBox(config, public_host="127.0.0.2") as box_a,
        NATBox(config, public_host="127.0.0.3") as box_b,
    ):
        a, b, session, peer = await hole_punching_pair(nodes, relay, box_a, box_b)
        changes = path_changes(session)
        await wait_until(
            lambda: box_a.nat.stats.dropped_filtered + box_b.nat.stats.dropped_filtered > 0,
            "a probe filtered by a symmetric NAT",
            5 * SECOND,
        )
        await session.send(b"still relayed")
        packet = await peer.recv(timeout=5 * SECOND)
        assert packet.data == b"still relayed"
        assert changes == []
        assert session.path[0] == peer.path[0] == "relay"
        await asyncio.gather(a.stop(), b.stop())


async def test_a_broken_direct_path_falls_back_to_the_relay(
    nodes: Callable[..., STTNode], relay: RelayServer
) -> None:
    config = NATConfig.port_restricted_cone()
    assert relay.udp_address is not None
    firewall = Firewall(udp=True)
    async with (
        NATBox(config, public_host="127.0.0.2", firewall=firewall) as box_a,
        NATBox(config, public_host="127.0.0.3") as box_b,
    ):
        a, b, session, peer = await hole_punching_pair(nodes, relay, box_a, box_b)
        changes, peer_changes = path_changes(session), path_changes(peer)
        await wait_until(lambda: changes == ["udp"], "the direct path", 5 * SECOND)
        await wait_until(lambda: peer_changes == ["udp"], "the peer on it", 5 * SECOND)
        firewall.udp = frozenset({relay.udp_address[1]})  # only the relay gets through now
        data = hashlib.shake_256(b"fallback").digest(256 * 1024)
        reader = await transfer(session, peer, data)
        await wait_until(lambda: changes == ["udp", "relay"], "the fallback", 5 * SECOND)
        await wait_until(lambda: peer_changes == ["udp", "relay"], "the peer's", 5 * SECOND)
        async with asyncio.timeout(10 * SECOND):
            received = await reader
        assert received == data
        assert session.path[0] == peer.path[0] == "relay"
        await asyncio.gather(a.stop(), b.stop())
