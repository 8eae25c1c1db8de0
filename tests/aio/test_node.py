"""``STTNode``: construction, lifecycle, connecting, events, receive(), stop, statistics."""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
from typing import Any

import pytest

from seigr_stt import (
    EVENT_KINDS,
    ConfigError,
    HandshakeError,
    HandshakeTimeout,
    NodeConfig,
    NodeEvent,
    ProtocolError,
    ReceivedPacket,
    SessionClosedError,
    SessionState,
    STTError,
    STTNode,
    STTSession,
    WeakSeedError,
    generate_seed,
)
from seigr_stt.constants import CLOSE_GOING_AWAY, CLOSE_IDLE_TIMEOUT, PROTOCOL_VERSION
from tests.aio.helpers import (
    LOOPBACK,
    SENTINEL,
    NodeFactory,
    Pair,
    Transport,
    collect_until_sentinels,
    connect,
    loopback_udp_socket,
    receive_n,
    recv_all,
    wait_until,
)
from tests.timing import MS, SECOND


# -- construction ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "seed",
    [
        b"server" * 8,  # the chapter's seed: long enough, far too little entropy
        b"shared_secret_32bytes_minimum!",  # the chapter's shared seed: 30 bytes
        bytes(32),
        b"",
        "not hex and not base64 !",
        "00" * 16,  # 16 bytes of hex
        12345,
        None,
    ],
)
def test_weak_or_malformed_seeds_are_refused(seed: Any) -> None:
    good = generate_seed()
    with pytest.raises(WeakSeedError):
        STTNode(seed, good)
    with pytest.raises(WeakSeedError):
        STTNode(good, seed)
    assert issubclass(WeakSeedError, ValueError)


def test_seeds_as_hex_or_base64_text_give_the_same_node_id() -> None:
    seed = generate_seed()
    shared = generate_seed()
    ids = {
        STTNode(seed, shared).node_id,
        STTNode(seed.hex(), shared).node_id,
        STTNode("0x" + seed.hex(), shared.hex()).node_id,
        STTNode(base64.b64encode(seed).decode(), shared).node_id,
        STTNode(base64.urlsafe_b64encode(seed).decode(), shared).node_id,
    }
    assert len(ids) == 1
    (node_id,) = ids
    assert len(node_id) == 32
    assert STTNode(generate_seed(), shared).node_id != node_id


@pytest.mark.parametrize(
    "kwargs",
    [
        {"port": -1},
        {"port": 65536},
        {"port": True},
        {"port": "8080"},
        {"port": 1.5},
        {"ws_port": -1},
        {"ws_port": 70000},
        {"ws_port": "0"},
        {"host": ""},
        {"host": None},
        {"config": {"max_sessions": 2}},
        {"config": "NodeConfig()"},
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        STTNode(generate_seed(), generate_seed(), **kwargs)


@pytest.mark.parametrize(
    "fields",
    [
        {"max_sessions": 0},
        {"max_sessions": -1},
        {"max_sessions": True},
        {"max_message_size": "big"},
        {"keepalive_s": float("nan")},
        {"keepalive_s": float("inf")},
        {"udp_max_record_size": 100},
        {"udp_max_record_size": 70000},
        {"websocket_max_record_size": 17 * 1024 * 1024},
        {"capabilities": -1},
        {"capabilities": 1 << 64},
        {"handshake_load_threshold": 10, "handshake_half_open_max": 5},
    ],
)
def test_bad_config_values_are_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        NodeConfig(**fields)


def test_config_none_disables_idle_expiry_only() -> None:
    config = NodeConfig(session_idle_timeout_s=None, capabilities=0)
    node = STTNode(generate_seed(), generate_seed(), config=config)
    assert node.config is config
    assert node.config.session_idle_timeout_s is None
    assert node.udp_address is None
    assert node.ws_url is None
    assert not node.is_running
    assert "started=False" in repr(node)
    # Automatic rotation cannot be turned off: keys must change before they expire (170 s).
    with pytest.raises(ConfigError, match="rekey_after_s"):
        NodeConfig(rekey_after_s=None)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="rekey_after_s"):
        NodeConfig(rekey_after_s=170.5)
    assert NodeConfig(rekey_after_s=170).rekey_after_s == 170


async def test_sessions_without_an_idle_timeout_outlive_idle_ones(
    make_node: NodeFactory, transport: Transport
) -> None:
    never = NodeConfig(session_idle_timeout_s=None)
    short = NodeConfig(session_idle_timeout_s=0.2)
    lasting, lasting_peer = await connect(
        await make_node(server_mode=False, config=never), await make_node(config=never), transport
    )
    expiring, expiring_peer = await connect(
        await make_node(server_mode=False, config=short), await make_node(config=short), transport
    )
    async with asyncio.timeout(10 * SECOND):
        await expiring.wait_closed()
        await expiring_peer.wait_closed()
    assert expiring.close_code == CLOSE_IDLE_TIMEOUT
    await asyncio.sleep(0.6)  # three more idle timeouts of the other pair
    assert lasting.is_active()
    assert lasting_peer.is_active()


# -- lifecycle ------------------------------------------------------------------------------------
async def test_start_binds_udp_and_websocket(make_node: NodeFactory) -> None:
    node = await make_node(ws=True)
    assert node.udp_address is not None
    host, port = node.udp_address
    assert host == LOOPBACK
    assert 0 < port < 65536
    assert node.ws_url is not None
    assert node.ws_url.startswith("ws://127.0.0.1:")
    assert node.ws_url.endswith("/stt")
    assert int(node.ws_url.rsplit(":", 1)[1].split("/")[0]) > 0
    assert node.is_running
    assert node.server_mode
    assert node.node_id.hex()[:16] in repr(node)


async def test_without_ws_port_there_is_no_websocket(make_node: NodeFactory) -> None:
    node = await make_node(ws=False)
    assert node.ws_url is None
    assert node.udp_address is not None
    assert node.get_stats()["transports"]["websocket"]["url"] is None


async def test_explicit_port_is_bound(make_node: NodeFactory) -> None:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind((LOOPBACK, 0))
    port = int(probe.getsockname()[1])
    probe.close()
    node = await make_node(port=port)
    assert node.udp_address == (LOOPBACK, port)


async def test_port_in_use_fails_to_start(make_node: NodeFactory, shared_seed: bytes) -> None:
    first = await make_node()
    assert first.udp_address is not None
    second = STTNode(generate_seed(), shared_seed, LOOPBACK, first.udp_address[1])
    with pytest.raises(OSError, match="in use"):
        await second.start()
    assert not second.is_running
    assert second.udp_address is None


async def test_websocket_port_in_use_releases_udp(
    make_node: NodeFactory, shared_seed: bytes
) -> None:
    first = await make_node()
    assert first.ws_url is not None
    ws_port = int(first.ws_url.rsplit(":", 1)[1].split("/")[0])
    second = STTNode(generate_seed(), shared_seed, LOOPBACK, 0, ws_port=ws_port)
    with pytest.raises(OSError, match="in use"):
        await second.start()
    assert second.udp_address is None  # the UDP socket it had bound was closed again
    assert second.ws_url is None
    assert not second.is_running
    assert second.get_stats()["transports"]["websocket"]["url"] is None


async def test_ipv6_loopback(make_node: NodeFactory) -> None:
    server = await make_node(host="::1")
    client = await make_node(host="::1", server_mode=False)
    assert server.udp_address is not None
    assert server.udp_address[0] == "::1"
    assert server.ws_url is not None
    assert server.ws_url.startswith("ws://[::1]:")
    for transport in ("udp", "websocket"):
        transport_name: Transport = "udp" if transport == "udp" else "websocket"
        session, peer = await connect(client, server, transport_name)
        await session.send(b"over ipv6 " + transport.encode())
        (packet,) = await receive_n(server, 1)
        assert packet.data == b"over ipv6 " + transport.encode()
        assert packet.session_id == peer.session_id


async def test_async_with_starts_and_stops(shared_seed: bytes) -> None:
    async with STTNode(generate_seed(), shared_seed, ws_port=0) as node:
        assert node.is_running
        assert node.udp_address is not None
        assert node.ws_url is not None
        assert not node.server_mode
    assert not node.is_running
    with pytest.raises(ProtocolError):
        await node.start()


async def test_async_with_keeps_an_already_started_node(shared_seed: bytes) -> None:
    node = STTNode(generate_seed(), shared_seed)
    await node.start(server_mode=True)
    async with node as same:
        assert same is node
        assert node.server_mode
    assert not node.is_running


async def test_async_with_stops_when_the_body_raises(shared_seed: bytes) -> None:
    node = STTNode(generate_seed(), shared_seed)
    with pytest.raises(RuntimeError):
        async with node:
            raise RuntimeError("boom")
    assert not node.is_running


async def test_start_twice_raises(make_node: NodeFactory) -> None:
    node = await make_node()
    with pytest.raises(ProtocolError, match="already started"):
        await node.start()
    assert node.is_running


async def test_stop_is_idempotent_and_final(make_node: NodeFactory) -> None:
    node = await make_node()
    await node.stop()
    await node.stop()
    assert not node.is_running
    assert not node.get_stats()["running"]
    with pytest.raises(ProtocolError, match="stopped"):
        await node.start()
    with pytest.raises(ProtocolError, match="stopped"):
        await node.connect_udp(LOOPBACK, 9)
    with pytest.raises(ProtocolError, match="stopped"):
        await node.send_to_sessions([b"12345678"], b"x")


async def test_calls_before_start_raise(shared_seed: bytes) -> None:
    node = STTNode(generate_seed(), shared_seed)
    with pytest.raises(ProtocolError, match="not started"):
        await node.connect_udp(LOOPBACK, 9)
    with pytest.raises(ProtocolError, match="not started"):
        await node.connect_websocket("ws://127.0.0.1:9/stt")
    with pytest.raises(ProtocolError, match="not started"):
        await node.send_to_sessions([b"12345678"], b"x")


async def test_node_id_survives_a_restart(shared_seed: bytes) -> None:
    seed = generate_seed()
    async with STTNode(seed, shared_seed) as first:
        first_id = first.node_id
    async with STTNode(seed, shared_seed) as second:
        assert second.node_id == first_id


# -- connecting -----------------------------------------------------------------------------------
async def test_connect_rejects_bad_arguments(make_node: NodeFactory) -> None:
    node = await make_node()
    assert node.ws_url is not None
    assert node.udp_address is not None
    with pytest.raises(ConfigError):
        await node.connect_websocket("http://127.0.0.1:1/stt")
    with pytest.raises(ConfigError):
        await node.connect_websocket(node.ws_url, timeout=0)
    with pytest.raises(ConfigError):
        await node.connect_udp(*node.udp_address, timeout=-1)
    with pytest.raises(HandshakeError):
        await node.connect_websocket(node.ws_url.replace("/stt", "/other"))
    assert node.session_manager.get_session_count() == 0


async def test_connect_websocket_to_a_closed_port_fails(make_node: NodeFactory) -> None:
    node = await make_node()
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.bind((LOOPBACK, 0))
    port = int(probe.getsockname()[1])
    probe.close()  # nothing listens there now
    with pytest.raises(HandshakeError) as info:
        await node.connect_websocket(f"ws://127.0.0.1:{port}/stt", timeout=5 * SECOND)
    assert not isinstance(info.value, HandshakeTimeout)


async def test_connect_by_host_name(make_node: NodeFactory) -> None:
    server = await make_node()
    client = await make_node(server_mode=False)
    assert server.udp_address is not None
    session = await client.connect_udp("localhost", server.udp_address[1])
    assert session.peer_addr == server.udp_address
    assert session.peer_node_id == server.node_id


async def test_connect_to_silence_times_out(make_node: NodeFactory) -> None:
    client = await make_node(server_mode=False)
    silent = loopback_udp_socket()
    try:
        host, port = silent.getsockname()[:2]
        with pytest.raises(HandshakeTimeout) as info:
            await client.connect_udp(host, port, timeout=1500 * MS)
        assert isinstance(info.value, TimeoutError)
        assert isinstance(info.value, HandshakeError)
        assert client.udp_address is not None
        # What it sent there (the first datagram from it) was a handshake INIT.
        init, *_ = recv_all(silent, client.udp_address)
        assert init[:2] == bytes([PROTOCOL_VERSION, 1])
    finally:
        silent.close()
    stats = client.get_stats()
    assert stats["handshakes"]["failed"] == 1
    assert stats["handshakes"]["in_flight"] == 0
    assert client.session_manager.get_session_count() == 0


async def test_a_node_not_in_server_mode_refuses_handshakes(
    make_node: NodeFactory, transport: Transport
) -> None:
    closed_node = await make_node(server_mode=False)
    client = await make_node(server_mode=False)
    with pytest.raises(HandshakeTimeout):
        await connect(client, closed_node, transport, timeout=1500 * MS)
    assert closed_node.get_stats()["drops"]["handshake_state"] >= 1
    assert closed_node.session_manager.get_session_count() == 0
    assert client.session_manager.get_session_count() == 0


async def test_cancelled_connect_leaves_nothing_behind(make_node: NodeFactory) -> None:
    client = await make_node(server_mode=False)
    silent = loopback_udp_socket()
    try:
        host, port = silent.getsockname()[:2]
        task = asyncio.create_task(client.connect_udp(host, port))
        await wait_until(lambda: client.get_stats()["handshakes"]["in_flight"] == 1, "INIT")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        silent.close()
    assert client.get_stats()["handshakes"]["in_flight"] == 0
    assert client.session_manager.get_stats()["handshake"] == 0


async def test_wrong_shared_seed_times_out_and_creates_nothing(
    make_node: NodeFactory, transport: Transport
) -> None:
    server = await make_node()
    intruder = await make_node(server_mode=False, shared_seed=generate_seed())
    with pytest.raises(HandshakeTimeout):
        await connect(intruder, server, transport, timeout=1500 * MS)
    assert server.get_stats()["drops"]["mac1"] >= 1
    for node in (server, intruder):
        assert node.session_manager.get_session_count() == 0
        assert node.session_manager.get_stats()["handshake"] == 0
    assert server.get_stats()["handshakes"]["in_flight"] == 0
    assert intruder.get_stats()["transports"]["udp"]["datagrams_received"] == 0
    if transport == "websocket":
        await wait_until(
            lambda: intruder.get_stats()["transports"]["websocket"]["connections"] == 0,
            "the intruder's WebSocket to close",
        )


# -- events ---------------------------------------------------------------------------------------
async def test_listener_api_accepts_only_known_kinds(make_node: NodeFactory) -> None:
    node = await make_node()
    assert set(EVENT_KINDS) == {
        "session_established",
        "session_closed",
        "key_rotated",
        "peer_address_changed",
        "path_changed",
    }
    for kind in EVENT_KINDS:
        node.on(kind, lambda event: None)
    for bad in ("message", "Session_Closed", ""):
        with pytest.raises(ConfigError, match="unknown event kind"):
            node.on(bad, lambda event: None)


async def test_session_established_on_both_sides(
    make_node: NodeFactory, transport: Transport
) -> None:
    server = await make_node()
    client = await make_node(server_mode=False)
    events: list[tuple[str, NodeEvent]] = []
    server.on("session_established", lambda e: events.append(("server", e)))
    client.on("session_established", lambda e: events.append(("client", e)))
    session, peer = await connect(client, server, transport)
    assert sorted((who, e.kind, e.session) for who, e in events) == [
        ("client", "session_established", session),
        ("server", "session_established", peer),
    ]


async def test_async_listeners_run_as_tasks(pair: Pair) -> None:
    seen: list[int] = []
    done = asyncio.Event()

    async def listener(event: NodeEvent) -> None:
        await asyncio.sleep(0)
        assert event.key_version is not None
        seen.append(event.key_version)
        done.set()

    pair.client.on("key_rotated", listener)
    await pair.session.rotate_key()
    async with asyncio.timeout(10 * SECOND):
        await done.wait()
    assert seen == [1]


async def test_raising_listeners_do_not_break_the_node(
    pair: Pair, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []

    def bad(event: NodeEvent) -> None:
        calls.append(event.kind)
        raise ValueError("listener bug")

    async def bad_async(event: NodeEvent) -> None:
        calls.append("async " + event.kind)
        raise ValueError("async listener bug")

    for kind in EVENT_KINDS:
        pair.server.on(kind, bad)
        pair.server.on(kind, bad_async)
    good: list[NodeEvent] = []
    pair.server.on("session_established", good.append)
    with caplog.at_level(logging.ERROR, logger="seigr_stt.node"):
        again, again_peer = await connect(pair.client, pair.server, pair.transport)
        await again.rotate_key()
        await again.send(b"still working")
        (packet,) = await receive_n(pair.server, 1)
        await again.close()
        async with asyncio.timeout(10 * SECOND):
            await again_peer.wait_closed()
        await wait_until(lambda: calls.count("async session_closed") == 1, "the async listener")
        await asyncio.sleep(0)
    assert packet.data == b"still working"
    assert [e.session for e in good] == [again_peer]
    assert calls.count("session_established") == 1
    assert calls.count("session_closed") == 1
    assert calls.count("key_rotated") == 1
    assert "listener for session_established raised" in caplog.text
    assert "listener task raised" in caplog.text
    assert pair.server.is_running
    assert pair.peer.is_active()


async def test_session_log_lines_carry_the_session_id(
    make_node: NodeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server = await make_node()
    client = await make_node(server_mode=False)
    with caplog.at_level(logging.INFO, logger="seigr_stt"):
        session, _ = await connect(client, server, "udp")
        await session.close(6, "log me")
    prefix = f"[{session.session_id.hex()[:8]}] "
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith(prefix)]
    assert any("session established with" in line and "initiator" in line for line in lines)
    assert any("session established with" in line and "responder" in line for line in lines)
    assert any("session closed (code 6)" in line for line in lines)


# -- receive() ------------------------------------------------------------------------------------
async def test_received_packet_fields(pair: Pair) -> None:
    await pair.session.send(b"fields", stream_id=12)
    (packet,) = await receive_n(pair.server, 1)
    assert isinstance(packet, ReceivedPacket)
    assert packet.session_id == pair.session.session_id
    assert packet.stream_id == 12
    assert packet.data == b"fields"
    assert packet.peer_node_id == pair.client.node_id
    assert packet.transport == pair.transport
    assert packet.received_at > 0
    with pytest.raises(AttributeError):
        packet.data = b"frozen"  # type: ignore[misc]


async def test_cancelling_receive_loses_nothing(pair: Pair) -> None:
    before = [b"before %d" % i for i in range(5)]
    after = [b"after %d" % i for i in range(5)]
    for message in before:
        await pair.session.send(message, stream_id=1)
    # Take one packet, then cancel a pending __anext__ with nothing queued for it.
    first = await receive_n(pair.server, 1)
    assert [p.data for p in first] == before[:1]
    await wait_until(lambda: pair.server.get_stats()["receive_queue"] == 4, "the rest to queue")
    iterator = pair.server.receive()
    for expected in before[1:]:
        packet = await anext(iterator)
        assert packet.data == expected
    pending = asyncio.ensure_future(anext(iterator))
    await asyncio.sleep(0)
    assert not pending.done()
    pending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pending
    for message in after:
        await pair.session.send(message, stream_id=1)
    await pair.session.send(SENTINEL, stream_id=1)
    packets = await collect_until_sentinels(pair.server, [(pair.peer.session_id, 1)])
    assert [p.data for p in packets] == after


async def test_cancelling_a_consumer_task_loses_nothing(pair: Pair) -> None:
    consumed: list[bytes] = []

    async def consume() -> None:
        async for packet in pair.server.receive():
            consumed.append(packet.data)

    consumer = asyncio.create_task(consume())
    messages = [b"m%d" % i for i in range(40)]
    for message in messages[:20]:
        await pair.session.send(message, stream_id=2)
    await wait_until(lambda: len(consumed) >= 5, "the consumer to start")
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    for message in messages[20:]:
        await pair.session.send(message, stream_id=2)
    await pair.session.send(SENTINEL, stream_id=2)
    rest = await collect_until_sentinels(pair.server, [(pair.peer.session_id, 2)])
    assert consumed + [p.data for p in rest] == messages


async def test_receive_ends_when_the_node_stops(pair: Pair) -> None:
    got: list[list[ReceivedPacket]] = [[], []]

    async def consume(k: int) -> None:
        async for packet in pair.server.receive():
            got[k].append(packet)

    consumers = [asyncio.create_task(consume(k)) for k in range(2)]
    await pair.session.send(b"last words")
    await wait_until(lambda: len(got[0]) + len(got[1]) == 1, "the message")
    await pair.server.stop()
    async with asyncio.timeout(10 * SECOND):
        await asyncio.gather(*consumers)
    assert [p.data for p in got[0] + got[1]] == [b"last words"]
    async with asyncio.timeout(10 * SECOND):
        async for _ in pair.server.receive():
            raise AssertionError("a stopped node yields nothing")


# -- sending edge cases ---------------------------------------------------------------------------
async def test_send_to_sessions_argument_checks(pair: Pair) -> None:
    with pytest.raises(TypeError):
        await pair.client.send_to_sessions(pair.session.session_id, b"x")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        await pair.client.send_to_sessions([pair.session.session_id], b"x", stream_id=-1)
    with pytest.raises(ConfigError):
        await pair.client.send_to_sessions([pair.session.session_id], b"x", stream_id=1 << 62)
    with pytest.raises(TypeError):
        await pair.client.send_to_sessions([pair.session.session_id], "text")  # type: ignore[arg-type]
    await pair.client.send_to_sessions([], b"to nobody")
    await pair.client.send_to_sessions((s for s in [pair.session.session_id]), b"generator")
    (packet,) = await receive_n(pair.server, 1)
    assert packet.data == b"generator"


async def test_send_to_all_without_sessions(make_node: NodeFactory) -> None:
    node = await make_node()
    assert await node.send_to_all(b"nobody listens") == 0


# -- stop while busy ------------------------------------------------------------------------------
@pytest.mark.parametrize("stopper", ["client", "server"])
async def test_stop_while_sending_in_a_loop(pair: Pair, stopper: str) -> None:
    sender_node, sender = (
        (pair.client, pair.session) if stopper == "client" else (pair.server, pair.peer)
    )
    other_node, other = (
        (pair.server, pair.peer) if stopper == "client" else (pair.client, pair.session)
    )
    closed: list[NodeEvent] = []
    other_node.on("session_closed", closed.append)
    sent = 0

    async def flood() -> None:
        nonlocal sent
        while True:
            await sender.send(b"f" * 512, stream_id=1)
            sent += 1
            # A send that never yields would starve the loop (and hang this test): fail instead.
            assert sent < 50_000, "the sending loop starved the event loop"

    flooding = asyncio.create_task(flood())
    received = 0

    async def drain() -> None:
        nonlocal received
        async for _ in other_node.receive():
            received += 1

    draining = asyncio.create_task(drain())
    await wait_until(lambda: received >= 50, "the flood to arrive")
    async with asyncio.timeout(10 * SECOND):
        await sender_node.stop()
    assert not sender_node.is_running
    async with asyncio.timeout(10 * SECOND):
        with pytest.raises(STTError) as info:
            await flooding
    assert isinstance(info.value, SessionClosedError | ProtocolError)
    async with asyncio.timeout(10 * SECOND):
        await other.wait_closed()
    assert [(e.session, e.code, e.by_peer) for e in closed] == [(other, CLOSE_GOING_AWAY, True)]
    assert sender.state == other.state == SessionState.CLOSED
    draining.cancel()
    with pytest.raises(asyncio.CancelledError):
        await draining
    assert received <= sent


async def test_stop_with_an_unreachable_peer_returns(make_node: NodeFactory) -> None:
    server = await make_node()
    client = await make_node(server_mode=False)
    session, _ = await connect(client, server, "udp")
    # The peer vanishes without a word: its socket stops reading.
    assert server.udp_transport is not None
    server.udp_transport.close()
    async with asyncio.timeout(10 * SECOND):
        await client.stop()
    assert session.state == SessionState.CLOSED
    assert session.close_code == CLOSE_GOING_AWAY


async def test_stop_fails_pending_connects(make_node: NodeFactory) -> None:
    client = await make_node(server_mode=False)
    silent = loopback_udp_socket()
    try:
        host, port = silent.getsockname()[:2]
        connecting = asyncio.create_task(client.connect_udp(host, port))
        await wait_until(lambda: client.get_stats()["handshakes"]["in_flight"] == 1, "INIT")
        await client.stop()
        with pytest.raises(HandshakeError, match="stopped"):
            await connecting
    finally:
        silent.close()


async def test_stop_closes_manual_sessions(make_node: NodeFactory) -> None:
    node = await make_node()
    manual = await node.session_manager.create_session(b"12345678", bytes(32))
    await node.stop()
    assert manual.state == SessionState.CLOSED
    assert manual.close_code == CLOSE_GOING_AWAY


# -- statistics -----------------------------------------------------------------------------------
async def test_get_stats_structure(pair: Pair) -> None:
    await pair.session.send(b"counted")
    await receive_n(pair.server, 1)
    stats = pair.server.get_stats()
    assert stats["node_id"] == pair.server.node_id.hex()
    assert stats["running"] is True
    assert stats["server_mode"] is True
    assert set(stats["sessions"]) >= {"total", "handshake", "active", "closing", "closed"}
    assert stats["sessions"]["active"] == 1
    assert set(stats["handshakes"]) == {
        "started",
        "accepted",
        "failed",
        "in_flight",
        "version_mismatches",
    }
    assert stats["handshakes"]["version_mismatches"] == 0
    udp = stats["transports"]["udp"]
    assert udp["address"] == pair.server.udp_address
    assert set(udp) >= {"datagrams_sent", "datagrams_received", "send_errors", "send_dropped"}
    websocket = stats["transports"]["websocket"]
    assert websocket["url"] == pair.server.ws_url
    if pair.transport == "udp":
        assert udp["datagrams_received"] >= 3  # INIT, FINAL, the message
        assert websocket["connections"] == 0
    else:
        assert websocket["connections"] == 1
    assert stats["packets_received"] >= 3
    assert stats["bytes_received"] > len(b"counted")
    assert stats["packets_sent"] >= 1
    assert stats["bytes_sent"] > 0
    assert isinstance(stats["drops"], dict)
    assert stats["drops_total"] == sum(stats["drops"].values()) == 0
    assert stats["receive_queue"] == 0
    client_stats = pair.client.get_stats()
    assert client_stats["handshakes"] == {
        "started": 1,
        "accepted": 0,
        "failed": 0,
        "in_flight": 0,
        "version_mismatches": 0,
    }
    assert stats["handshakes"]["accepted"] == 1  # the server's side of the same handshake
    assert client_stats["server_mode"] is False


async def test_get_stats_of_a_node_never_started(shared_seed: bytes) -> None:
    stats = STTNode(generate_seed(), shared_seed).get_stats()
    assert stats["running"] is False
    assert stats["transports"]["udp"]["address"] is None
    assert stats["transports"]["udp"]["datagrams_sent"] == 0
    assert stats["sessions"]["total"] == 0


async def test_session_objects_are_shared(pair: Pair) -> None:
    """The session a listener gets, connect returns and the manager holds are one object."""
    seen: list[STTSession] = []
    pair.server.on("session_established", lambda e: seen.append(e.session))
    session, peer = await connect(pair.client, pair.server, pair.transport)
    assert seen == [peer]
    assert pair.client.session_manager.get_session(session.session_id) is session


async def test_allowed_peers_pins_node_ids_in_both_roles(make_node: NodeFactory) -> None:
    friend_seed, stranger_seed = generate_seed(), generate_seed()
    friend_id = STTNode(friend_seed, generate_seed()).node_id
    server = await make_node(allowed_peers=[friend_id])
    friend = await make_node(server_mode=False, node_seed=friend_seed)
    stranger = await make_node(server_mode=False, node_seed=stranger_seed)
    assert server.udp_address is not None
    session = await friend.connect_udp(*server.udp_address)
    assert session.is_active()
    with pytest.raises(HandshakeTimeout):  # the server answers nothing to a refused member
        await stranger.connect_udp(*server.udp_address, timeout=1500 * MS)
    assert server.get_stats()["drops"]["peer_refused"] >= 1
    # As initiator, a node that pins its peers refuses a responder it does not know at once.
    picky = await make_node(server_mode=False, allowed_peers=lambda node_id: node_id == friend_id)
    with pytest.raises(HandshakeError, match="not in allowed_peers"):
        await picky.connect_udp(*server.udp_address)
    assert picky.get_stats()["drops"]["peer_refused"] == 1


@pytest.mark.parametrize(
    "allowed", [[b"short"], b"\x00" * 32, ["not bytes"], [bytes(33)]], ids=repr
)
def test_allowed_peers_must_be_node_ids(allowed: Any) -> None:
    with pytest.raises(ConfigError, match="allowed_peers"):
        STTNode(generate_seed(), generate_seed(), allowed_peers=allowed)


def test_node_seed_and_shared_seed_must_differ() -> None:
    seed = generate_seed()
    with pytest.raises(WeakSeedError, match="must differ"):
        STTNode(seed, seed)
    with pytest.raises(WeakSeedError, match="must differ"):
        STTNode(seed, seed.hex())  # the same seed in another encoding
