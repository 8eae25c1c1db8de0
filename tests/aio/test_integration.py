"""End-to-end behaviour of nodes over real loopback sockets (issue 3).

Messages of every size both ways, a full mesh of eight nodes over UDP and WebSocket, restarts
with the same seeds, and the user's chapter 17 example (``examples/session_lifecycle.py``) imported
and run.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import random
import re
from collections import defaultdict
from typing import Literal

import pytest

from examples.session_lifecycle import session_lifecycle
from seigr_stt import (
    NodeConfig,
    SessionState,
    STTNode,
    STTSession,
    generate_seed,
)
from seigr_stt.constants import (
    CLOSE_GOING_AWAY,
    STT_SESSION_STATE_ACTIVE,
    UDP_MAX_RECORD_SIZE,
)
from seigr_stt.exceptions import SessionClosedError
from tests.aio.helpers import (
    SENTINEL,
    TRANSPORTS,
    WAIT_S,
    NodeFactory,
    Pair,
    Transport,
    UDPRelay,
    collect_until_sentinels,
    connect,
    wait_until,
)
from tests.timing import SECOND

KIB = 1024
MIB = 1024 * 1024

# (stream_id, size) in sending order: every interesting size, several streams, interleaved, so
# that order is checked per stream while the streams mix on the wire.
PLAN: list[tuple[int, int]] = [
    (0, 0),
    (1, 1),
    (2, 1200),
    (3, 64 * KIB),
    (4, MIB),
    (0, 0),
    (1, 1),
    (2, 1200),
    (3, 64 * KIB),
    (5, 0),
    (0, 1),
    (2, 1199),
    (1, 1201),
    (6, 3 * 1200),
]


def burst(seed: int) -> list[tuple[int, bytes]]:
    """The messages of :data:`PLAN`, with contents drawn from ``seed`` (differ per message)."""
    rng = random.Random(seed)
    return [(stream_id, rng.randbytes(size)) for stream_id, size in PLAN]


def by_stream(messages: list[tuple[int, bytes]]) -> dict[int, list[bytes]]:
    out: dict[int, list[bytes]] = defaultdict(list)
    for stream_id, data in messages:
        out[stream_id].append(data)
    return dict(out)


async def send_burst(
    sender: STTNode,
    session: STTSession,
    messages: list[tuple[int, bytes]],
    api: Literal["send", "send_to_sessions"],
) -> None:
    for stream_id, data in messages:
        if api == "send":
            await session.send(data, stream_id=stream_id)
        else:
            await sender.send_to_sessions([session.session_id], data, stream_id)
    for stream_id in {s for s, _ in messages}:
        await session.send(SENTINEL, stream_id=stream_id)


async def check_burst(
    receiver: STTNode,
    receiver_session: STTSession,
    sender: STTNode,
    messages: list[tuple[int, bytes]],
    transport: Transport,
) -> None:
    channels = {(receiver_session.session_id, s) for s, _ in messages}
    packets = await collect_until_sentinels(receiver, channels)
    for packet in packets:
        assert packet.session_id == receiver_session.session_id
        assert packet.peer_node_id == sender.node_id
        assert packet.transport == transport
        assert isinstance(packet.received_at, float)
    received = by_stream([(p.stream_id, p.data) for p in packets])
    expected = by_stream(messages)
    assert sorted(received) == sorted(expected)
    for stream_id, datas in expected.items():
        got = received[stream_id]
        assert [len(d) for d in got] == [len(d) for d in datas], f"stream {stream_id}"
        assert got == datas, f"stream {stream_id}: contents differ"


@pytest.mark.parametrize("api", ["send", "send_to_sessions"])
@pytest.mark.parametrize("direction", ["to_server", "to_client"])
async def test_messages_of_every_size_arrive_once_in_order(
    pair: Pair,
    direction: Literal["to_server", "to_client"],
    api: Literal["send", "send_to_sessions"],
) -> None:
    messages = burst(seed=len(direction) * 7 + len(api))
    if direction == "to_server":
        sender, session, receiver, receiver_session = (
            pair.client,
            pair.session,
            pair.server,
            pair.peer,
        )
    else:
        sender, session, receiver, receiver_session = (
            pair.server,
            pair.peer,
            pair.client,
            pair.session,
        )
    sending = asyncio.create_task(send_burst(sender, session, messages, api))
    await check_burst(receiver, receiver_session, sender, messages, pair.transport)
    await sending
    for side in (pair.session, pair.peer):
        assert side.get_statistics()["auth_failures"] == 0
    # Every message (and one sentinel per stream) was delivered, each exactly once: the receiver
    # counted as many as were sent, and check_burst saw them in order with nothing extra.
    sent = len(messages) + len({s for s, _ in messages})
    assert session.get_statistics()["messages_sent"] == sent
    assert receiver_session.get_statistics()["messages_received"] == sent


async def test_both_directions_at_once(pair: Pair) -> None:
    up = burst(seed=1)
    down = burst(seed=2)
    async with asyncio.timeout(20 * SECOND):
        await asyncio.gather(
            send_burst(pair.client, pair.session, up, "send_to_sessions"),
            send_burst(pair.server, pair.peer, down, "send"),
            check_burst(pair.server, pair.peer, pair.client, up, pair.transport),
            check_burst(pair.client, pair.session, pair.server, down, pair.transport),
        )


@pytest.mark.parametrize("probing", [False, True], ids=["fixed_mtu", "pmtu_probing"])
async def test_large_message_over_udp_is_split_into_datagrams(
    make_node: NodeFactory, probing: bool
) -> None:
    """Without path-MTU probing no datagram exceeds ``udp_max_record_size`` (1232 B); with it,
    none exceeds ``udp_pmtu_probe_max``. The message arrives whole either way."""
    config = NodeConfig() if probing else NodeConfig(udp_pmtu_probe_max=UDP_MAX_RECORD_SIZE)
    limit = config.udp_pmtu_probe_max if probing else config.udp_max_record_size
    server = await make_node(config=config)
    client = await make_node(server_mode=False, config=config)
    assert server.udp_address is not None
    relay = UDPRelay(server.udp_address)  # records every datagram toward the server
    try:
        session = await client.connect_udp(*relay.address, timeout=WAIT_S)
        peer = server.session_manager.get_session(session.session_id)
        assert peer is not None
        before = len(relay.to_server)
        data = random.Random(5).randbytes(MIB)
        await session.send(data, stream_id=9)
        await session.send(SENTINEL, stream_id=9)
        packets = await collect_until_sentinels(server, [(peer.session_id, 9)])
        assert [p.data for p in packets] == [data]
        datagrams = relay.to_server[before:]
        assert max(len(d) for d in datagrams) <= limit
        assert len(datagrams) >= MIB // limit
        if not probing:
            assert len(datagrams) > MIB // UDP_MAX_RECORD_SIZE
        assert session.get_statistics()["packets_sent"] >= len(datagrams)
        await session.close()
    finally:
        relay.close()


# -- a full mesh ----------------------------------------------------------------------------------
MESH_SIZE = 8


async def test_full_mesh_of_eight_nodes_over_udp_and_websocket(make_node: NodeFactory) -> None:
    nodes = [await make_node(server_mode=True) for _ in range(MESH_SIZE)]
    index_of = {node.node_id: i for i, node in enumerate(nodes)}
    assert len(index_of) == MESH_SIZE
    # sessions[(i, j, transport)] is node i's session with node j.
    sessions: dict[tuple[int, int, Transport], STTSession] = {}
    for transport in TRANSPORTS:
        for i in range(MESH_SIZE):
            for j in range(i + 1, MESH_SIZE):
                mine, theirs = await connect(nodes[i], nodes[j], transport)
                sessions[(i, j, transport)] = mine
                sessions[(j, i, transport)] = theirs
    for (_, j, transport), session in sessions.items():
        assert session.peer_node_id == nodes[j].node_id
        assert session.transport_type == transport
        assert session.is_active()
    for i, node in enumerate(nodes):
        stats = node.session_manager.get_stats()
        assert stats["active"] == 2 * (MESH_SIZE - 1), f"node {i}"

    def message(i: int, j: int, transport: Transport) -> bytes:
        return f"from {i} to {j} over {transport}".encode()

    async def send_all(i: int) -> None:
        for (src, dst, transport), session in sessions.items():
            if src == i:
                await nodes[i].send_to_sessions(
                    [session.session_id], message(i, dst, transport), stream_id=dst
                )
                await session.send(SENTINEL, stream_id=dst)

    async def receive_all(j: int) -> list[tuple[int, Transport, bytes]]:
        channels = [
            (session.session_id, j) for (src, _, _), session in sessions.items() if src == j
        ]
        packets = await collect_until_sentinels(nodes[j], channels, timeout=20 * SECOND)
        got: list[tuple[int, Transport, bytes]] = []
        for packet in packets:
            assert packet.stream_id == j
            assert packet.transport in TRANSPORTS
            transport: Transport = "udp" if packet.transport == "udp" else "websocket"
            got.append((index_of[packet.peer_node_id], transport, packet.data))
        return got

    async with asyncio.timeout(30 * SECOND):
        results = await asyncio.gather(
            *(receive_all(j) for j in range(MESH_SIZE)),
            *(send_all(i) for i in range(MESH_SIZE)),
        )
    for j in range(MESH_SIZE):
        got = results[j]
        assert got is not None
        expected = sorted(
            (i, transport, message(i, j, transport))
            for i in range(MESH_SIZE)
            if i != j
            for transport in TRANSPORTS
        )
        assert sorted(got) == expected, f"node {j}"


async def test_send_to_all_reaches_every_peer_once(make_node: NodeFactory) -> None:
    hub = await make_node()
    spokes = [await make_node(server_mode=False) for _ in range(3)]
    for k, spoke in enumerate(spokes):
        await connect(spoke, hub, TRANSPORTS[k % 2])
    manual = await hub.session_manager.create_session(b"manual!!", bytes(32))
    assert await hub.send_to_all(b"hello everyone", stream_id=4) == len(spokes)
    assert await hub.send_to_all(SENTINEL, stream_id=4) == len(spokes)
    for spoke in spokes:
        (session,) = spoke.session_manager.get_active_sessions()
        packets = await collect_until_sentinels(spoke, [(session.session_id, 4)])
        assert [(p.data, p.peer_node_id) for p in packets] == [(b"hello everyone", hub.node_id)]
    assert manual.get_statistics()["bytes_sent"] == 0


async def test_simultaneous_connects_from_both_sides(
    make_node: NodeFactory, transport: Transport
) -> None:
    a = await make_node()
    b = await make_node()
    async with asyncio.timeout(20 * SECOND):
        (a_side, b_peer), (b_side, a_peer) = await asyncio.gather(
            connect(a, b, transport), connect(b, a, transport)
        )
    assert a_side.session_id != b_side.session_id
    for node, mine, other in ((a, a_side, b), (b, b_side, a)):
        assert mine.peer_node_id == other.node_id
        assert node.session_manager.get_stats()["active"] == 2
    await a_side.send(b"a on its session", stream_id=1)
    await a_peer.send(b"a on b's session", stream_id=1)
    await a_side.send(SENTINEL, stream_id=1)
    await a_peer.send(SENTINEL, stream_id=1)
    packets = await collect_until_sentinels(b, [(b_peer.session_id, 1), (b_side.session_id, 1)])
    assert sorted((p.session_id, p.data) for p in packets) == sorted(
        [(b_peer.session_id, b"a on its session"), (b_side.session_id, b"a on b's session")]
    )


# -- restarts -------------------------------------------------------------------------------------
async def test_restarted_server_with_same_seeds_gets_a_new_session(
    make_node: NodeFactory, transport: Transport
) -> None:
    node_seed = generate_seed()
    server = await make_node(node_seed=node_seed)
    assert server.udp_address is not None
    port = server.udp_address[1]
    client = await make_node(server_mode=False)
    closed: list[bytes] = []
    client.on("session_closed", lambda event: closed.append(event.session.session_id))
    first, _ = await connect(client, server, transport)

    await server.stop()
    async with asyncio.timeout(10 * SECOND):
        await first.wait_closed()
    assert first.state == SessionState.CLOSED
    assert first.close_code == CLOSE_GOING_AWAY
    assert closed == [first.session_id]
    with pytest.raises(SessionClosedError):
        await first.send(b"to the old server")

    restarted = await make_node(node_seed=node_seed, port=port)
    assert restarted.node_id == server.node_id
    assert restarted.udp_address == server.udp_address
    second, peer = await connect(client, restarted, transport)
    assert second.session_id != first.session_id
    assert second.peer_node_id == server.node_id
    assert peer.peer_node_id == client.node_id
    await second.send(b"after restart", stream_id=1)
    await second.send(SENTINEL, stream_id=1)
    packets = await collect_until_sentinels(restarted, [(peer.session_id, 1)])
    assert [p.data for p in packets] == [b"after restart"]


async def test_restarted_client_with_same_seeds_gets_a_new_session(
    make_node: NodeFactory, transport: Transport
) -> None:
    node_seed = generate_seed()
    server = await make_node()
    client = await make_node(server_mode=False, node_seed=node_seed)
    first, first_peer = await connect(client, server, transport)
    await client.stop()
    async with asyncio.timeout(10 * SECOND):
        await first_peer.wait_closed()
    assert first_peer.close_code == CLOSE_GOING_AWAY
    assert server.session_manager.get_session(first.session_id) is None

    restarted = await make_node(server_mode=False, node_seed=node_seed)
    assert restarted.node_id == client.node_id
    second, peer = await connect(restarted, server, transport)
    assert second.session_id != first.session_id
    assert peer.peer_node_id == client.node_id
    await peer.send(b"welcome back")
    await peer.send(SENTINEL)
    packets = await collect_until_sentinels(restarted, [(second.session_id, 0)])
    assert [(p.data, p.peer_node_id) for p in packets] == [(b"welcome back", server.node_id)]


async def test_second_instance_with_same_seed_gets_its_own_session(
    make_node: NodeFactory,
) -> None:
    """A restarted peer whose old instance never said goodbye (crash) still gets in."""
    node_seed = generate_seed()
    server = await make_node()
    old = await make_node(server_mode=False, node_seed=node_seed)
    new = await make_node(server_mode=False, node_seed=node_seed)
    a, a_peer = await connect(old, server, "udp")
    b, b_peer = await connect(new, server, "udp")
    assert a.session_id != b.session_id
    assert a_peer.peer_node_id == b_peer.peer_node_id == old.node_id == new.node_id
    assert len(server.session_manager.get_active_sessions()) == 2
    await server.send_to_sessions([a.session_id, b.session_id], b"both")
    await server.send_to_sessions([a.session_id, b.session_id], SENTINEL)
    for node, session in ((old, a), (new, b)):
        packets = await collect_until_sentinels(node, [(session.session_id, 0)])
        assert [p.data for p in packets] == [b"both"]


# -- the user's chapter 17 ------------------------------------------------------------------------
def test_chapter_17_session_lifecycle_example() -> None:
    """ "Complete Example: Session Lifecycle" from chapter 17: ``examples/session_lifecycle.py``
    (adapted only where it must be: the package name, seeds from generate_seed(), port 0),
    imported and run here, then the server it returns is looked at."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        server = asyncio.run(asyncio.wait_for(session_lifecycle(), 30 * SECOND))
    text = out.getvalue()
    assert re.search(r"^   Session ID: [0-9a-f]{16}$", text, re.M), text
    assert f"   State: {STT_SESSION_STATE_ACTIVE} (ACTIVE)\n" in text
    match = re.search(r"^   Bytes sent: (\d+)$", text, re.M)
    assert match is not None
    assert int(match.group(1)) > len(b"Test data")
    assert re.search(r"^   Uptime: \d+\.\d\ds$", text, re.M)
    assert "   Key version: 0 → 1\n" in text
    assert re.search(r"^   Last rotation: \d+\.\d+$", text, re.M)
    assert "   Total sessions: 1\n   Active: 1\n" in text
    assert text.rstrip().endswith("   State: 3 (CLOSED)")
    # The server received the chapter's message and saw the close.
    stats = server.get_stats()
    assert stats["sessions"]["total"] == 1
    assert stats["sessions"]["closed"] == 1
    assert not server.is_running


async def test_chapter_17_session_pool_pattern(make_node: NodeFactory) -> None:
    """The chapter's SessionPool finds the live session by ``peer_addr`` instead of connecting."""

    class SessionPool:
        def __init__(self, node: STTNode) -> None:
            self.node = node

        async def get_or_create(self, peer_host: str, peer_port: int) -> STTSession:
            sessions = self.node.session_manager.get_active_sessions()
            for session in sessions:
                if hasattr(session, "peer_addr") and session.peer_addr == (peer_host, peer_port):
                    return session
            return await self.node.connect_udp(peer_host, peer_port)

    server = await make_node()
    client = await make_node(server_mode=False)
    assert server.udp_address is not None
    pool = SessionPool(client)
    first = await pool.get_or_create(*server.udp_address)
    again = await pool.get_or_create(*server.udp_address)
    assert again is first
    assert client.session_manager.get_session_count() == 1
    await first.close()
    third = await pool.get_or_create(*server.udp_address)
    assert third is not first
    assert client.session_manager.get_session_count() == 2


async def test_chapter_17_troubleshooting_session_not_found(pair: Pair) -> None:
    manager = pair.client.session_manager
    session_id = pair.session.session_id
    found = manager.get_session(session_id)
    assert found is pair.session
    assert found.is_active()
    await pair.session.close()
    assert manager.get_session(session_id) is None
    assert not manager.has_session(session_id)
    assert pair.session.state == SessionState.CLOSED
    await wait_until(
        lambda: pair.server.session_manager.get_session(session_id) is None,
        "the server to forget the closed session",
    )
