"""``SessionManager``: manual sessions, lookups, counting, limits, expiry (chapter 17)."""

from __future__ import annotations

import asyncio
import time

import pytest

from seigr_stt import (
    ConfigError,
    HandshakeError,
    HandshakeTimeout,
    NodeConfig,
    NodeEvent,
    ProtocolError,
    SessionClosedError,
    SessionError,
    SessionManager,
    SessionNotFound,
    SessionState,
    STTNode,
    generate_seed,
)
from seigr_stt.constants import CLOSE_GOING_AWAY, CLOSE_IDLE_TIMEOUT, STT_SESSION_STATE_ACTIVE
from tests.aio.helpers import NodeFactory, Transport, connect, wait_until
from tests.timing import MS, SECOND

STATS_KEYS = {"total", "handshake", "active", "closing", "closed"}


async def test_the_node_owns_a_manager(make_node: NodeFactory) -> None:
    node = await make_node()
    manager = node.session_manager
    assert isinstance(manager, SessionManager)
    assert manager.max_sessions == node.config.max_sessions
    assert manager.get_session_count() == 0
    assert manager.get_active_sessions() == []
    stats = manager.get_stats()
    assert set(stats) >= STATS_KEYS
    assert {key: stats[key] for key in STATS_KEYS} == dict.fromkeys(STATS_KEYS, 0)
    assert "total=0" in repr(manager)


# -- manual sessions ------------------------------------------------------------------------------
async def test_create_session_tracks_a_manual_session(make_node: NodeFactory) -> None:
    node = await make_node()
    manager = node.session_manager
    session = await manager.create_session(
        session_id=b"12345678", peer_node_id=bytes(32), capabilities=0
    )
    assert session.is_manual
    assert session.session_id == b"12345678"
    assert session.peer_node_id == bytes(32)
    assert session.capabilities == 0
    assert session.state == SessionState.ACTIVE
    assert session.is_active()
    assert session.transport_type is None
    assert session.key_version == 0
    assert len(session.session_key) == 32
    assert manager.get_session(b"12345678") is session
    assert manager.has_session(b"12345678")
    assert manager.get_active_sessions() == [session]
    assert manager.get_sessions_by_state(SessionState.ACTIVE) == [session]
    assert manager.get_sessions_by_state(STT_SESSION_STATE_ACTIVE) == [session]
    assert manager.get_sessions_by_state(SessionState.CLOSED) == []
    assert manager.get_session_count() == 1
    stats = manager.get_stats()
    assert (stats["total"], stats["active"], stats["closed"], stats["live"]) == (1, 1, 0, 1)
    assert node.get_stats()["sessions"]["total"] == 1


async def test_close_session_closes_a_manual_session(make_node: NodeFactory) -> None:
    node = await make_node()
    manager = node.session_manager
    session = await manager.create_session(b"12345678", bytes(32))
    other = await manager.create_session(b"87654321", bytes(32))
    await manager.close_session(b"12345678")
    assert session.state == SessionState.CLOSED
    async with asyncio.timeout(10 * SECOND):
        await session.wait_closed()
    assert manager.get_session(b"12345678") is None
    assert not manager.has_session(b"12345678")
    assert manager.get_active_sessions() == [other]
    assert manager.get_session_count() == 2
    stats = manager.get_stats()
    assert (stats["total"], stats["active"], stats["closed"]) == (2, 1, 1)
    with pytest.raises(SessionClosedError):
        _ = session.session_key
    with pytest.raises(SessionClosedError):
        await session.rotate_key()
    await session.close()  # closing again is harmless
    assert manager.get_stats()["closed"] == 1
    with pytest.raises(SessionNotFound) as info:
        await manager.close_session(b"12345678")
    assert info.value.session_ids == (b"12345678",)


async def test_a_closed_id_can_be_used_again(make_node: NodeFactory) -> None:
    node = await make_node()
    manager = node.session_manager
    first = await manager.create_session(b"12345678", bytes(32))
    await first.close()
    second = await manager.create_session(b"12345678", bytes(32))
    assert second is not first
    assert manager.get_session(b"12345678") is second
    assert manager.get_session_count() == 2


@pytest.mark.parametrize(
    ("session_id", "peer_node_id", "capabilities"),
    [
        (b"1234567", bytes(32), 0),
        (b"123456789", bytes(32), 0),
        ("12345678", bytes(32), 0),
        (b"12345678", bytes(31), 0),
        (b"12345678", "00" * 32, 0),
        (b"12345678", bytes(32), -1),
        (b"12345678", bytes(32), "0"),
    ],
)
async def test_create_session_rejects_bad_arguments(
    make_node: NodeFactory, session_id: object, peer_node_id: object, capabilities: object
) -> None:
    node = await make_node()
    with pytest.raises(ConfigError):
        await node.session_manager.create_session(
            session_id,  # type: ignore[arg-type]
            peer_node_id,  # type: ignore[arg-type]
            capabilities,  # type: ignore[arg-type]
        )
    assert node.session_manager.get_session_count() == 0


async def test_create_session_rejects_a_duplicate_id(
    make_node: NodeFactory, transport: Transport
) -> None:
    server = await make_node()
    client = await make_node(server_mode=False)
    await client.session_manager.create_session(b"12345678", bytes(32))
    with pytest.raises(ConfigError):
        await client.session_manager.create_session(b"12345678", bytes(32))
    real, _ = await connect(client, server, transport)
    with pytest.raises(ConfigError):
        await client.session_manager.create_session(real.session_id, bytes(32))
    assert client.session_manager.get_session(real.session_id) is real


async def test_max_sessions_limits_manual_sessions(make_node: NodeFactory) -> None:
    node = await make_node(config=NodeConfig(max_sessions=2))
    manager = node.session_manager
    assert manager.max_sessions == 2
    first = await manager.create_session(b"11111111", bytes(32))
    await manager.create_session(b"22222222", bytes(32))
    with pytest.raises(SessionError, match="max_sessions"):
        await manager.create_session(b"33333333", bytes(32))
    await first.close()
    await manager.create_session(b"33333333", bytes(32))
    assert manager.get_stats()["live"] == 2


async def test_max_sessions_limits_handshakes(make_node: NodeFactory, transport: Transport) -> None:
    server = await make_node(config=NodeConfig(max_sessions=1))
    client = await make_node(server_mode=False, config=NodeConfig(max_sessions=2))
    first, _ = await connect(client, server, transport)
    started = time.perf_counter()
    with pytest.raises(HandshakeError, match="server is full") as refused:
        await connect(client, server, transport, timeout=10 * SECOND)
    assert not isinstance(refused.value, HandshakeTimeout)  # told at once, not timed out
    assert time.perf_counter() - started < 5 * SECOND
    assert server.get_stats()["drops"]["session_limit"] == 1
    assert server.session_manager.get_session_count() == 1
    await first.close()
    second, _ = await connect(client, server, transport)
    assert server.session_manager.get_stats()["live"] == 1
    assert second.is_active()


async def test_max_sessions_limits_connects(make_node: NodeFactory) -> None:
    server = await make_node()
    client = await make_node(server_mode=False, config=NodeConfig(max_sessions=1))
    await connect(client, server, "udp")
    assert server.udp_address is not None
    with pytest.raises(ProtocolError, match="max_sessions"):
        await client.connect_udp(*server.udp_address)


# -- real sessions --------------------------------------------------------------------------------
async def test_manager_tracks_real_sessions(make_node: NodeFactory) -> None:
    server = await make_node()
    client = await make_node(server_mode=False)
    udp, udp_peer = await connect(client, server, "udp")
    ws, ws_peer = await connect(client, server, "websocket")
    manager = server.session_manager
    assert {s.session_id for s in manager.get_active_sessions()} == {
        udp.session_id,
        ws.session_id,
    }
    assert manager.get_session(udp.session_id) is udp_peer
    assert manager.get_session(ws.session_id) is ws_peer
    await manager.close_session(udp.session_id, 11, "closed by the manager")
    async with asyncio.timeout(10 * SECOND):
        await udp.wait_closed()
    assert udp.close_code == 11
    assert udp.close_reason == "closed by the manager"
    assert manager.get_active_sessions() == [ws_peer]
    stats = manager.get_stats()
    assert (stats["total"], stats["active"], stats["closed"]) == (2, 1, 1)


async def test_close_all_sessions(make_node: NodeFactory) -> None:
    server = await make_node()
    client = await make_node(server_mode=False)
    events: list[NodeEvent] = []
    client.on("session_closed", events.append)
    sessions = [(await connect(client, server, t))[0] for t in ("udp", "websocket", "udp")]
    manual = await server.session_manager.create_session(b"12345678", bytes(32))
    await server.session_manager.close_all_sessions(CLOSE_GOING_AWAY, "maintenance")
    assert manual.state == SessionState.CLOSED
    assert server.session_manager.get_active_sessions() == []
    async with asyncio.timeout(10 * SECOND):
        for session in sessions:
            await session.wait_closed()
    assert sorted(e.session.session_id for e in events) == sorted(s.session_id for s in sessions)
    assert all((e.code, e.reason, e.by_peer) == (1, "maintenance", True) for e in events)
    await server.session_manager.close_all_sessions()  # nothing left: harmless
    assert server.session_manager.get_stats()["closed"] == 4


async def test_handshakes_in_flight_count_as_handshake(make_node: NodeFactory) -> None:
    silent = await make_node(server_mode=False)  # drops every INIT: not in server mode
    client = await make_node(server_mode=False)
    assert silent.udp_address is not None
    connecting = asyncio.create_task(client.connect_udp(*silent.udp_address, timeout=1500 * MS))
    await wait_until(lambda: client.session_manager.get_stats()["handshake"] == 1, "a handshake")
    assert client.session_manager.get_stats()["handshakes_in_flight"] == 1
    with pytest.raises(HandshakeTimeout):
        await connecting
    stats = client.session_manager.get_stats()
    assert (stats["handshake"], stats["total"]) == (0, 0)


async def test_idle_sessions_expire_by_themselves(
    make_node: NodeFactory, transport: Transport
) -> None:
    server = await make_node()
    client = await make_node(server_mode=False, config=NodeConfig(session_idle_timeout_s=0.3))
    events: list[NodeEvent] = []
    server.on("session_closed", events.append)
    session, peer = await connect(client, server, transport)
    async with asyncio.timeout(10 * SECOND):
        await peer.wait_closed()
        await session.wait_closed()
    assert session.state == SessionState.CLOSED
    assert session.close_code == CLOSE_IDLE_TIMEOUT
    assert [(e.session, e.code, e.by_peer) for e in events] == [(peer, CLOSE_IDLE_TIMEOUT, True)]
    assert client.session_manager.get_session(session.session_id) is None
    assert client.session_manager.get_stats()["closed"] == 1


async def test_a_manager_of_a_node_that_never_started(shared_seed: bytes) -> None:
    node = STTNode(generate_seed(), shared_seed)
    session = await node.session_manager.create_session(b"12345678", bytes(32))
    assert node.session_manager.get_stats()["total"] == 1
    await node.stop()
    # stop() of a node that never started is a no-op
    assert session.get_statistics()["state"] == SessionState.ACTIVE
    await session.close()
    assert session.state == SessionState.CLOSED
