"""``STTSession`` over real sockets: identity, statistics, key rotation, close, datagrams."""

from __future__ import annotations

import asyncio
from dataclasses import FrozenInstanceError, astuple

import pytest

from seigr_stt import (
    KeyRotationError,
    MessageTooLarge,
    NodeConfig,
    NodeEvent,
    ProtocolError,
    ReceivedPacket,
    SessionClosedError,
    SessionNotFound,
    SessionState,
    STTSession,
)
from seigr_stt.aio.session import make_packet
from seigr_stt.constants import (
    CLOSE_NORMAL,
    CLOSE_REASON_MAX_BYTES,
    STT_SESSION_STATE_ACTIVE,
    STT_SESSION_STATE_CLOSED,
    STT_SESSION_STATE_CLOSING,
    STT_SESSION_STATE_HANDSHAKE,
)
from tests.aio.helpers import (
    SENTINEL,
    NodeFactory,
    Pair,
    Transport,
    UDPRelay,
    collect_until_sentinels,
    connect,
    receive_n,
    wait_until,
)
from tests.timing import MS, SECOND

CHAPTER_STAT_KEYS = {
    "session_id",
    "peer_node_id",
    "state",
    "created_at",
    "uptime",
    "bytes_sent",
    "bytes_received",
    "packets_sent",
    "packets_received",
    "send_errors",
    "receive_errors",
}


def test_session_state_matches_the_constants() -> None:
    assert [int(state) for state in SessionState] == [0, 1, 2, 3]
    assert [int(state) for state in SessionState] == [
        STT_SESSION_STATE_HANDSHAKE,
        STT_SESSION_STATE_ACTIVE,
        STT_SESSION_STATE_CLOSING,
        STT_SESSION_STATE_CLOSED,
    ]
    assert SessionState(STT_SESSION_STATE_ACTIVE) is SessionState.ACTIVE
    assert f"{SessionState.CLOSED}" == "3"  # the chapter prints states as ints


# -- identity -------------------------------------------------------------------------------------
async def test_both_sides_agree_on_the_session(pair: Pair) -> None:
    session, peer = pair.session, pair.peer
    assert len(session.session_id) == 8
    assert session.session_id == peer.session_id
    assert session.peer_node_id == pair.server.node_id
    assert peer.peer_node_id == pair.client.node_id
    assert len(session.peer_node_id) == 32
    assert len(session.session_key) == 32
    assert session.session_key == peer.session_key
    assert session.key_version == peer.key_version == 0
    assert session.state == peer.state == SessionState.ACTIVE
    assert session.is_active()
    assert peer.is_active()
    assert not session.is_manual
    assert not peer.is_manual
    assert session.transport_type == peer.transport_type == pair.transport
    assert session.capabilities == peer.capabilities == 0
    assert 0 < session.max_datagram_size < 65536
    for side in (session, peer):
        assert isinstance(side.created_at, float)
        assert side.last_key_rotation == side.created_at
        assert side.last_active >= side.created_at
        assert side.session_id.hex() in repr(side)


async def test_peer_addr_is_the_other_node(pair: Pair) -> None:
    session, peer = pair.session, pair.peer
    assert session.peer_addr is not None
    assert peer.peer_addr is not None
    if pair.transport == "udp":
        assert session.peer_addr == pair.server.udp_address
        assert peer.peer_addr == pair.client.udp_address
    else:
        assert pair.server.ws_url == f"ws://127.0.0.1:{session.peer_addr[1]}/stt"
        assert peer.peer_addr[0] == "127.0.0.1"


async def test_each_connection_is_a_new_session(pair: Pair) -> None:
    again, again_peer = await connect(pair.client, pair.server, pair.transport)
    assert again.session_id != pair.session.session_id
    assert again.session_key != pair.session.session_key
    assert again_peer is not pair.peer
    assert pair.server.session_manager.get_session_count() == 2


async def test_capabilities_are_exchanged(make_node: NodeFactory, transport: Transport) -> None:
    server = await make_node(config=NodeConfig(capabilities=0b101))
    client = await make_node(server_mode=False, config=NodeConfig(capabilities=0b11))
    session, peer = await connect(client, server, transport)
    assert session.capabilities == 0b101
    assert peer.capabilities == 0b11
    assert session.get_statistics()["capabilities"] == 0b101


# -- statistics -----------------------------------------------------------------------------------
async def test_statistics_have_the_chapters_keys(pair: Pair) -> None:
    stats = pair.session.get_statistics()
    assert set(stats) >= CHAPTER_STAT_KEYS | {"key_version", "rtt", "replays_dropped"}
    assert stats["session_id"] == pair.session.session_id.hex()
    assert stats["peer_node_id"] == pair.server.node_id.hex()
    assert stats["state"] == STT_SESSION_STATE_ACTIVE
    assert stats["created_at"] == pair.session.created_at
    assert stats["uptime"] >= 0.0
    assert stats["transport"] == pair.transport
    assert stats["send_errors"] == stats["receive_errors"] == 0


async def test_statistics_count_traffic(pair: Pair) -> None:
    before = pair.session.get_statistics()
    peer_before = pair.peer.get_statistics()
    await pair.session.send(b"x" * 1000, stream_id=2)
    await receive_n(pair.server, 1)
    after = pair.session.get_statistics()
    peer_after = pair.peer.get_statistics()
    assert after["messages_sent"] == before["messages_sent"] + 1
    assert after["packets_sent"] > before["packets_sent"]
    assert after["bytes_sent"] >= before["bytes_sent"] + 1000
    assert peer_after["messages_received"] == peer_before["messages_received"] + 1
    assert peer_after["packets_received"] > peer_before["packets_received"]
    assert peer_after["bytes_received"] >= peer_before["bytes_received"] + 1000
    assert peer_after["last_active"] >= peer_before["last_active"]


async def test_record_methods_change_the_figures(pair: Pair) -> None:
    session = pair.session
    before = session.get_statistics()
    session.record_frame_sent(payload_size=1024)
    session.record_frame_received(payload_size=2048)
    session.record_send_error()
    session.record_receive_error()
    after = session.get_statistics()
    assert after["packets_sent"] == before["packets_sent"] + 1
    assert after["bytes_sent"] == before["bytes_sent"] + 1024
    assert after["packets_received"] == before["packets_received"] + 1
    assert after["bytes_received"] == before["bytes_received"] + 2048
    assert after["send_errors"] == before["send_errors"] + 1
    assert after["receive_errors"] == before["receive_errors"] + 1


async def test_rtt_is_measured(pair: Pair) -> None:
    await pair.session.send(b"ping me")
    await wait_until(lambda: pair.session.rtt is not None, "an RTT sample")
    rtt = pair.session.rtt
    assert rtt is not None
    assert rtt >= 0.0
    assert pair.session.get_statistics()["rtt"] == rtt


# -- key rotation ---------------------------------------------------------------------------------
async def test_rotate_key_moves_both_sides_to_a_new_key(pair: Pair) -> None:
    session, peer = pair.session, pair.peer
    old_key = session.session_key
    old_rotation = session.last_key_rotation
    new_key = await session.rotate_key()
    assert new_key == session.session_key == peer.session_key
    assert new_key != old_key
    assert session.key_version == peer.key_version == 1
    assert session.last_key_rotation >= old_rotation
    assert session.get_statistics()["key_version"] == 1
    await session.send(b"after rotation", stream_id=1)
    await peer.send(b"reply after rotation", stream_id=1)
    await session.send(SENTINEL, stream_id=1)
    await peer.send(SENTINEL, stream_id=1)
    got_server = await collect_until_sentinels(pair.server, [(peer.session_id, 1)])
    got_client = await collect_until_sentinels(pair.client, [(session.session_id, 1)])
    assert [p.data for p in got_server] == [b"after rotation"]
    assert [p.data for p in got_client] == [b"reply after rotation"]


async def test_several_rotations_in_a_row(pair: Pair) -> None:
    keys = {pair.session.session_key}
    for version in range(1, 6):
        side = pair.session if version % 2 else pair.peer
        key = await side.rotate_key()
        assert pair.session.key_version == pair.peer.key_version == version
        assert pair.session.session_key == pair.peer.session_key == key
        keys.add(key)
    assert len(keys) == 6


async def test_crossed_rotations_converge(pair: Pair) -> None:
    previous = pair.session.key_version
    for _ in range(4):
        key_before = pair.session.session_key
        async with asyncio.timeout(10 * SECOND):
            mine, theirs = await asyncio.gather(pair.session.rotate_key(), pair.peer.rotate_key())
        assert pair.session.key_version == pair.peer.key_version > previous
        assert pair.session.session_key == pair.peer.session_key
        assert mine == theirs == pair.session.session_key
        assert mine != key_before
        previous = pair.session.key_version


async def test_rotate_key_always_moves_to_a_new_key(
    make_node: NodeFactory, transport: Transport
) -> None:
    """A pending request of one side that the peer's rotation already satisfied must not make
    that side's next rotate_key() return at once with the key it already had."""
    server = await make_node(config=NodeConfig(key_rotation_min_interval_s=0.5))
    client = await make_node(server_mode=False)
    session, peer = await connect(client, server, transport)
    await peer.rotate_key()  # version 1; the server may not rotate again for 0.5 s
    waiting = asyncio.create_task(peer.rotate_key())  # deferred by the server's interval...
    await asyncio.sleep(0)
    await session.rotate_key()  # ...and satisfied by the client's rotation to version 2
    async with asyncio.timeout(10 * SECOND):
        assert await waiting == peer.session_key
    assert session.key_version == peer.key_version == 2
    for side in (peer, session, peer):
        before = side.session_key
        version = side.key_version
        async with asyncio.timeout(10 * SECOND):
            new_key = await side.rotate_key()
        assert new_key != before
        assert side.key_version > version
        assert session.session_key == peer.session_key


async def test_messages_before_during_and_after_rotations_all_arrive(pair: Pair) -> None:
    up = [b"message %d" % i for i in range(300)]
    before, during, after = up[:50], up[50:250], up[250:]

    async def pump(messages: list[bytes]) -> None:
        for message in messages:
            await pair.session.send(message, stream_id=3)

    async def rotate(session: STTSession, times: int) -> None:
        for _ in range(times):
            await session.rotate_key()

    await pump(before)  # sent, not necessarily received, when the rotations start
    async with asyncio.timeout(30 * SECOND):
        await asyncio.gather(pump(during), rotate(pair.session, 3), rotate(pair.peer, 2))
    await pump(after)
    await pair.session.send(SENTINEL, stream_id=3)
    packets = await collect_until_sentinels(pair.server, [(pair.peer.session_id, 3)])
    assert [p.data for p in packets] == up
    # Rotations requested by both sides at once may be served by one new epoch.
    assert pair.session.key_version == pair.peer.key_version >= 3
    assert pair.session.session_key == pair.peer.session_key
    for side in (pair.session, pair.peer):
        assert side.get_statistics()["auth_failures"] == 0
    # Exactly once: nothing lost at a key change, nothing delivered twice.
    assert pair.session.get_statistics()["messages_sent"] == len(up) + 1
    assert pair.peer.get_statistics()["messages_received"] == len(up) + 1


async def test_rotation_concurrent_with_sending_both_ways(pair: Pair) -> None:
    count = 200
    up = [b"u%d" % i for i in range(count)]
    down = [b"d%d" % i for i in range(count)]

    async def pump(session: STTSession, messages: list[bytes]) -> None:
        for message in messages:
            await session.send(message, stream_id=5)
        await session.send(SENTINEL, stream_id=5)

    async with asyncio.timeout(30 * SECOND):
        got_server, got_client, *_ = await asyncio.gather(
            collect_until_sentinels(pair.server, [(pair.peer.session_id, 5)]),
            collect_until_sentinels(pair.client, [(pair.session.session_id, 5)]),
            pump(pair.session, up),
            pump(pair.peer, down),
            pair.session.rotate_key(),
            pair.peer.rotate_key(),
        )
    assert [p.data for p in got_server] == up
    assert [p.data for p in got_client] == down
    assert pair.session.key_version == pair.peer.key_version >= 1
    assert pair.session.get_statistics()["auth_failures"] == 0
    assert pair.peer.get_statistics()["auth_failures"] == 0


async def test_key_rotated_events_on_both_nodes(pair: Pair) -> None:
    client_events: list[NodeEvent] = []
    server_events: list[NodeEvent] = []
    pair.client.on("key_rotated", client_events.append)
    pair.server.on("key_rotated", server_events.append)
    await pair.session.rotate_key()
    await wait_until(lambda: bool(server_events), "key_rotated on the server")
    assert [(e.session, e.key_version) for e in client_events] == [(pair.session, 1)]
    assert [(e.session, e.key_version) for e in server_events] == [(pair.peer, 1)]
    assert client_events[0].kind == "key_rotated"


async def test_rotate_key_with_fresh_dh(make_node: NodeFactory, transport: Transport) -> None:
    # A DH ratchet (§7.1) between real nodes on loopback UDP and WebSocket, asked for by either
    # side: the call returns once the peer confirmed, both nodes report fresh_dh, and data flows.
    server = await make_node()
    client = await make_node(server_mode=False)
    session, peer = await connect(client, server, transport)
    client_events: list[NodeEvent] = []
    server_events: list[NodeEvent] = []
    client.on("key_rotated", client_events.append)
    server.on("key_rotated", server_events.append)
    old_key = session.session_key
    async with asyncio.timeout(10 * SECOND):
        new_key = await session.rotate_key(fresh_dh=True)
        assert new_key == session.session_key == peer.session_key != old_key
        await peer.rotate_key(fresh_dh=True)  # the responder's own request
        await session.rotate_key()  # and a hash rotation, reported as such
        await wait_until(lambda: len(server_events) == 3, "key_rotated on the server")
    assert session.key_version == peer.key_version == 3
    for events, side in ((client_events, session), (server_events, peer)):
        assert [(e.session, e.key_version, e.fresh_dh) for e in events] == [
            (side, 1, True),
            (side, 2, True),
            (side, 3, False),
        ]
    # Both sides at once: the INITs cross (or one side's request is served by the other's
    # ratchet, or a second ratchet follows); either way both calls return a fresh key.
    async with asyncio.timeout(10 * SECOND):
        await asyncio.gather(session.rotate_key(fresh_dh=True), peer.rotate_key(fresh_dh=True))
        await wait_until(
            lambda: (
                client_events[-1].key_version == server_events[-1].key_version
                and session.key_version >= 4
            ),
            "both sides on one version",
        )
    assert session.key_version == peer.key_version
    assert session.session_key == peer.session_key
    assert [e.fresh_dh for e in client_events[3:]] == [True] * (session.key_version - 3)
    assert [e.fresh_dh for e in server_events[3:]] == [True] * (peer.key_version - 3)
    await session.send(b"after the ratchet", stream_id=1)
    await peer.send(b"reply after the ratchet", stream_id=1)
    await session.send(SENTINEL, stream_id=1)
    await peer.send(SENTINEL, stream_id=1)
    got_server = await collect_until_sentinels(server, [(peer.session_id, 1)])
    got_client = await collect_until_sentinels(client, [(session.session_id, 1)])
    assert [p.data for p in got_server] == [b"after the ratchet"]
    assert [p.data for p in got_client] == [b"reply after the ratchet"]
    assert session.get_statistics()["auth_failures"] == 0
    assert peer.get_statistics()["auth_failures"] == 0


# -- close ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("closer", ["client", "server"])
async def test_close_is_seen_by_the_peer(pair: Pair, closer: str) -> None:
    events: dict[str, list[NodeEvent]] = {"client": [], "server": []}
    pair.client.on("session_closed", events["client"].append)
    pair.server.on("session_closed", events["server"].append)
    closing, other = (pair.session, pair.peer) if closer == "client" else (pair.peer, pair.session)
    other_name = "server" if closer == "client" else "client"
    await closing.close(42, "bye now")
    async with asyncio.timeout(10 * SECOND):
        await other.wait_closed()
        await closing.wait_closed()
    assert closing.state == other.state == SessionState.CLOSED
    assert not closing.is_active()
    (mine,) = events[closer]
    (theirs,) = events[other_name]
    assert (mine.kind, mine.session, mine.code, mine.reason, mine.by_peer) == (
        "session_closed",
        closing,
        42,
        "bye now",
        False,
    )
    assert (theirs.session, theirs.code, theirs.reason, theirs.by_peer) == (
        other,
        42,
        "bye now",
        True,
    )
    assert other.close_code == 42
    assert other.close_reason == "bye now"
    assert other.get_statistics()["close_code"] == 42
    for node in (pair.client, pair.server):
        manager = node.session_manager
        assert manager.get_session(pair.session.session_id) is None
        assert manager.get_session_count() == 1
        stats = manager.get_stats()
        assert (stats["total"], stats["active"], stats["closed"]) == (1, 0, 1)


async def test_close_reason_is_cut_to_its_limit(pair: Pair) -> None:
    events: list[NodeEvent] = []
    pair.server.on("session_closed", events.append)
    await pair.session.close(7, "é" * 100)  # 200 bytes of UTF-8
    await wait_until(lambda: bool(events), "the server to see the close")
    reason = events[0].reason
    assert reason == "é" * (CLOSE_REASON_MAX_BYTES // 2)
    assert len(reason.encode()) <= CLOSE_REASON_MAX_BYTES


async def test_close_twice_and_after_the_peer_closed(pair: Pair) -> None:
    await pair.peer.close()
    async with asyncio.timeout(10 * SECOND):
        await pair.session.wait_closed()
    await pair.session.close(5, "too late")  # already closed: nothing happens
    await pair.peer.close()
    assert pair.session.close_code == CLOSE_NORMAL
    assert pair.session.state == pair.peer.state == SessionState.CLOSED


async def test_async_with_session_closes_on_exit(pair: Pair) -> None:
    closed: list[NodeEvent] = []
    pair.server.on("session_closed", closed.append)
    async with pair.session as session:
        assert session is pair.session
        await session.send(b"inside")
    assert pair.session.state == SessionState.CLOSED
    await wait_until(lambda: bool(closed), "the server to see the close")
    assert closed[0].by_peer
    assert closed[0].code == CLOSE_NORMAL
    (packet,) = await receive_n(pair.server, 1)
    assert packet.data == b"inside"


async def test_async_with_session_closes_when_the_body_raises(pair: Pair) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async with pair.session:
            raise RuntimeError("boom")
    assert pair.session.state == SessionState.CLOSED
    async with asyncio.timeout(10 * SECOND):
        await pair.peer.wait_closed()


async def test_a_closed_session_refuses_use(pair: Pair) -> None:
    await pair.session.close(9, "done")
    with pytest.raises(SessionClosedError) as info:
        await pair.session.send(b"late")
    assert info.value.code == 9
    with pytest.raises(SessionClosedError):
        await pair.session.send_datagram(b"late")
    with pytest.raises(SessionClosedError):
        await pair.session.rotate_key()
    with pytest.raises(SessionClosedError):
        _ = pair.session.session_key
    async with asyncio.timeout(10 * SECOND):
        await pair.peer.wait_closed()
    with pytest.raises(SessionClosedError):
        await pair.peer.send(b"late")
    with pytest.raises(SessionNotFound) as not_found:
        await pair.client.send_to_sessions([pair.session.session_id], b"late")
    assert not_found.value.session_ids == (pair.session.session_id,)


async def test_sending_while_closing_raises(pair: Pair) -> None:
    closing = asyncio.create_task(pair.session.close())
    await asyncio.sleep(0)  # the close task runs up to its wait; no packet is read meanwhile
    assert pair.session.get_statistics()["state"] == SessionState.CLOSING
    assert pair.client.session_manager.get_stats()["closing"] == 1
    assert pair.client.session_manager.get_sessions_by_state(SessionState.CLOSING) == [pair.session]
    with pytest.raises(SessionClosedError):
        await pair.session.send(b"while closing")
    async with asyncio.timeout(10 * SECOND):
        await closing
    assert pair.session.state == SessionState.CLOSED


async def test_send_to_sessions_names_the_ids_it_could_not_reach(pair: Pair) -> None:
    second, second_peer = await connect(pair.client, pair.server, pair.transport)
    closed, _ = await connect(pair.client, pair.server, pair.transport)
    await closed.close()
    unknown = b"\x00unknown"
    ids = [pair.session.session_id, unknown, second.session_id, closed.session_id]
    with pytest.raises(SessionNotFound) as info:
        await pair.client.send_to_sessions(ids, b"to the good ones", stream_id=6)
    assert info.value.session_ids == (unknown, closed.session_id)
    assert isinstance(info.value, KeyError)
    assert unknown.hex() in str(info.value)
    assert closed.session_id.hex() in str(info.value)
    await pair.client.send_to_sessions([pair.session.session_id, second.session_id], SENTINEL, 6)
    packets = await collect_until_sentinels(
        pair.server, [(pair.peer.session_id, 6), (second_peer.session_id, 6)]
    )
    assert sorted((p.session_id, p.data) for p in packets) == sorted(
        [(pair.peer.session_id, b"to the good ones"), (second_peer.session_id, b"to the good ones")]
    )


async def test_too_large_message_leaves_the_session_usable(
    make_node: NodeFactory, transport: Transport
) -> None:
    server = await make_node()
    client = await make_node(server_mode=False, config=NodeConfig(max_message_size=1000))
    session, _ = await connect(client, server, transport)
    with pytest.raises(MessageTooLarge):
        await session.send(b"x" * 1001)
    with pytest.raises(MessageTooLarge):
        await client.send_to_sessions([session.session_id], b"x" * 1001)
    await session.send(b"x" * 1000)
    (packet,) = await receive_n(server, 1)
    assert packet.data == b"x" * 1000


async def test_send_rejects_wrong_types(pair: Pair) -> None:
    with pytest.raises(TypeError):
        await pair.session.send("text is not bytes")  # type: ignore[arg-type]
    # Accepted at run time although the annotation says bytes.
    await pair.session.send(bytearray(b"a bytearray"))  # type: ignore[arg-type]
    await pair.session.send(memoryview(b"a memoryview"))  # type: ignore[arg-type]
    packets = await receive_n(pair.server, 2)
    assert [p.data for p in packets] == [b"a bytearray", b"a memoryview"]
    assert all(type(p.data) is bytes for p in packets)


# -- datagrams ------------------------------------------------------------------------------------
async def test_datagrams_arrive_and_end_at_close(pair: Pair) -> None:
    received: list[bytes] = []

    async def read() -> None:
        async for datagram in pair.peer.datagrams():
            received.append(datagram)

    reader = asyncio.create_task(read())
    # Datagrams are unreliable: send until one arrives (loopback practically never loses one).
    async with asyncio.timeout(10 * SECOND):
        while not received:
            await pair.session.send_datagram(b"datagram")
            await asyncio.sleep(0.01)
    assert set(received) == {b"datagram"}
    assert pair.session.get_statistics()["datagrams_sent"] >= 1
    assert pair.peer.get_statistics()["datagrams_received"] == len(received)
    await pair.session.close()
    async with asyncio.timeout(10 * SECOND):
        await reader  # the iteration ends when the session closes


async def test_too_large_datagram_raises(pair: Pair) -> None:
    limit = pair.session.max_datagram_size
    with pytest.raises(MessageTooLarge):
        await pair.session.send_datagram(b"x" * (limit + 1))
    await pair.session.send(b"still usable")
    (packet,) = await receive_n(pair.server, 1)
    assert packet.data == b"still usable"


async def test_manual_session_cannot_send(pair: Pair) -> None:
    manual = await pair.client.session_manager.create_session(b"12345678", bytes(32))
    with pytest.raises(ProtocolError):
        await manual.send(b"nowhere")
    with pytest.raises(ProtocolError):
        await manual.send_datagram(b"nowhere")
    assert manual.max_datagram_size == 0
    assert manual.peer_addr is None
    assert manual.rtt is None


# -- a peer that went silent ----------------------------------------------------------------------
async def test_rotation_unconfirmed_by_a_silent_peer(make_node: NodeFactory) -> None:
    server = await make_node()
    # Without migration: the client would move to the WebSocket the server announced (§18).
    client = await make_node(server_mode=False, config=NodeConfig(migration=False))
    assert server.udp_address is not None
    relay = UDPRelay(server.udp_address)
    try:
        session = await client.connect_udp(*relay.address)
    finally:
        relay.close()  # from now on nothing gets through either way
    with pytest.raises(KeyRotationError, match="did not confirm"):
        await session.rotate_key(timeout=300 * MS)
    with pytest.raises(KeyRotationError, match="did not confirm a DH ratchet"):
        await session.rotate_key(timeout=300 * MS, fresh_dh=True)
    rotating = asyncio.create_task(session.rotate_key(timeout=30 * SECOND))
    await asyncio.sleep(0)
    async with asyncio.timeout(10 * SECOND):
        await session.close(3, "giving up")  # CLOSE is never answered: closes after retries
    with pytest.raises(SessionClosedError, match="during key rotation") as info:
        await rotating
    assert info.value.code == 3
    assert session.state == SessionState.CLOSED


# -- ReceivedPacket's fast maker ---------------------------------------------------------------
def test_make_packet_makes_the_same_frozen_packet_as_the_constructor() -> None:
    """The receive path's maker sets every field (in the dataclass's order) and the result is
    indistinguishable from a constructed packet: equal, same hash, same repr, still frozen."""
    fields_ = (b"\x01" * 8, 5, b"payload", b"\x02" * 32, "websocket", 1234.5)
    made = make_packet(*fields_)
    built = ReceivedPacket(*fields_)
    assert type(made) is ReceivedPacket
    assert made == built
    assert hash(made) == hash(built)
    assert repr(made) == repr(built)
    assert astuple(made) == fields_
    with pytest.raises(FrozenInstanceError):
        made.data = b"changed"  # type: ignore[misc]
    assert made != make_packet(*fields_[:5], 1234.6)  # every field counts, the last one too
