"""Typed statistics: frozen SessionStats / NodeStats, and the chapter's dicts built from them
(issue 13, deliverable 4)."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest

from seigr_stt import (
    CloseCode,
    NodeConfig,
    NodeStats,
    SessionCountStats,
    SessionState,
    SessionStats,
)
from tests.aio.helpers import NodeFactory, Pair, connect, receive_n, wait_until


async def test_session_stats_are_typed_and_frozen(pair: Pair) -> None:
    before = time.time()
    await pair.session.send(b"hello")
    await receive_n(pair.server, 1)
    await pair.session.ping()
    stream = await pair.session.open_stream()
    st = pair.session.stats()
    assert isinstance(st, SessionStats)
    with pytest.raises(dataclasses.FrozenInstanceError):
        st.bytes_sent = 0  # type: ignore[misc]
    assert st.state is SessionState.ACTIVE
    assert st.session_id == pair.session.session_id
    assert st.transport == pair.transport
    assert st.ready_at is not None
    assert st.created_at <= st.ready_at <= time.time()
    assert st.ready_at >= before - 10
    assert st.closed_at is None
    assert st.close_code is None
    assert st.close_reason == ""
    assert st.active_streams == 1
    assert st.streams_opened == 1
    assert st.messages_sent == 1
    assert st.bytes_sent > 5
    assert isinstance(st.rtt_s, float)
    assert 0 < st.rtt_s < 1
    assert st.uptime_s >= 0
    await stream.close()


async def test_get_statistics_is_built_from_stats(pair: Pair) -> None:
    await pair.session.send(b"x")
    st = pair.session.stats()
    legacy = pair.session.get_statistics()
    assert legacy["state"] == int(SessionState.ACTIVE) == 1
    assert legacy["session_id"] == st.session_id.hex()
    assert legacy["rtt"] == st.rtt_s
    assert legacy["streams_live"] == st.active_streams
    assert legacy["last_key_rotation"] == st.last_key_rotation_at
    assert legacy["messages_sent"] == st.messages_sent == 1
    for key in ("uptime", "last_active", "cwnd", "bytes_in_flight", "close_code", "ready_at"):
        assert key in legacy


async def test_closed_session_stats_say_when_how_and_by_whom(pair: Pair) -> None:
    await pair.session.close(CloseCode.NORMAL, "done")
    await wait_until(lambda: pair.peer.is_closed, "the server side closed")
    mine, theirs = pair.session.stats(), pair.peer.stats()
    for st in (mine, theirs):
        assert st.state is SessionState.CLOSED
        assert st.closed_at is not None
        assert st.closed_at >= st.created_at
        assert st.close_code is CloseCode.NORMAL
        assert st.close_reason == "done"
        assert st.uptime_s == pytest.approx(st.closed_at - st.created_at)
    assert not mine.closed_by_peer
    assert theirs.closed_by_peer
    await asyncio.sleep(0.01)
    assert pair.session.stats().uptime_s == mine.uptime_s  # frozen at the close
    assert pair.session.get_statistics()["close_reason"] == "done"


async def test_node_stats_count_handshakes_in_flight_once(make_node: NodeFactory) -> None:
    server = await make_node(ws=False)
    client = await make_node(server_mode=False, ws=False)
    silent = await make_node(server_mode=False, ws=False)
    assert silent.udp_address is not None
    await connect(client, server, "udp")
    pending = asyncio.create_task(client.connect_udp(*silent.udp_address, timeout=5))
    await wait_until(lambda: client.stats().handshakes_in_flight == 1, "a handshake in flight")
    st = client.stats()
    assert isinstance(st, NodeStats)
    assert isinstance(st.sessions, SessionCountStats)
    assert st.handshakes_in_flight == 1
    assert st.sessions.handshakes_in_flight == 1
    assert st.sessions.by_state[SessionState.HANDSHAKE] == 0  # not counted again as a session
    assert st.sessions.by_state[SessionState.ACTIVE] == 1
    assert st.sessions.live == 1
    assert st.sessions.created_total == 1
    assert st.udp.address == client.udp_address
    assert st.drops_total == sum(st.drops.values())
    legacy = client.get_stats()
    assert legacy["handshakes"]["in_flight"] == 1
    assert legacy["sessions"]["active"] == 1
    assert legacy["transports"]["udp"]["address"] == client.udp_address
    assert set(legacy["drops"]) == set(st.drops)
    pending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pending
    assert client.stats().handshakes_in_flight == 0


async def test_manager_stats_keep_a_high_water_mark_and_per_state_counts(
    make_node: NodeFactory,
) -> None:
    server = await make_node(ws=False, config=NodeConfig(max_sessions=5))
    client = await make_node(server_mode=False, ws=False)
    sessions = [(await connect(client, server, "udp"))[0] for _ in range(3)]
    await sessions[0].close()
    await sessions[1].close()
    await wait_until(lambda: server.session_manager.stats().live == 1, "two closed")
    st = server.session_manager.stats()
    assert st.max_concurrent == 3
    assert st.created_total == 3
    assert st.closed_total == 2
    assert st.by_state[SessionState.ACTIVE] == 1
    legacy = server.session_manager.get_stats()
    assert legacy["max_concurrent"] == 3
    assert legacy["by_state"] == {"HANDSHAKE": 0, "ACTIVE": 1, "CLOSING": 0, "CLOSED": 0}
    assert legacy["total"] == 3
    assert legacy["closed"] == 2
    assert legacy["live"] == 1
