"""pywebtransport/janus parity and asyncio stream habits (issue 13, deliverable 3; audit 18)."""

from __future__ import annotations

import asyncio

import pytest

from seigr_stt import (
    CloseCode,
    ConfigError,
    NodeEvent,
    SessionClosedError,
    SessionState,
    StreamError,
)
from tests.aio.helpers import NodeFactory, Pair, connect, next_incoming_stream, wait_until
from tests.timing import SECOND


async def test_ready_is_ready_is_closed_and_wait_closed(pair: Pair) -> None:
    session = pair.session
    await session.ready(timeout=1)
    await session.ready()
    assert session.is_ready
    assert not session.is_closed
    with pytest.raises(ConfigError, match="timeout"):
        await session.ready(timeout=0)
    waiter = asyncio.create_task(session.wait_closed())
    await asyncio.sleep(0)
    assert not waiter.done()
    await pair.peer.close(CloseCode.NORMAL, "bye")
    async with asyncio.timeout(10 * SECOND):
        await waiter
    assert session.is_closed
    assert not session.is_ready
    with pytest.raises(SessionClosedError) as closed:
        await session.ready(timeout=1)
    assert closed.value.by_peer
    assert closed.value.reason == "bye"


async def test_manager_lists_removes_and_shuts_down(make_node: NodeFactory) -> None:
    server = await make_node(ws=False)
    client = await make_node(server_mode=False, ws=False)
    manager = client.session_manager
    first, first_peer = await connect(client, server, "udp")
    second, _ = await connect(client, server, "udp")
    assert set(manager.get_all_sessions()) == {first, second}
    removed = await manager.remove_session(first.session_id, CloseCode.NORMAL, "removed")
    assert removed is first
    assert first.is_closed
    assert manager.get_all_sessions() == [second]
    assert await manager.remove_session(first.session_id) is None  # twice is no error
    with pytest.raises(TypeError, match="session_id must be bytes"):
        await manager.remove_session(first.session_id.hex())  # type: ignore[arg-type]
    await wait_until(lambda: first_peer.is_closed, "the peer saw the close")
    assert first_peer.close_reason == "removed"
    async with manager:
        third, _ = await connect(client, server, "udp")
        assert len(manager.get_all_sessions()) == 2
    assert manager.get_all_sessions() == []
    assert second.is_closed
    assert third.close_code is CloseCode.GOING_AWAY
    assert client.is_running  # the manager shut its sessions down, not the node
    again, _ = await connect(client, server, "udp")
    assert again.is_active()
    await manager.shutdown()
    assert again.is_closed


async def test_session_listeners_see_only_their_session(make_node: NodeFactory) -> None:
    server = await make_node(ws=False)
    client = await make_node(server_mode=False, ws=False)
    one, _ = await connect(client, server, "udp")
    two, _ = await connect(client, server, "udp")
    seen: list[tuple[str, bytes]] = []

    def listener(event: NodeEvent) -> None:
        seen.append((event.kind, event.session.session_id))

    async def async_listener(event: NodeEvent) -> None:
        seen.append(("async " + event.kind, event.session.session_id))

    one.on("key_rotated", listener)
    one.on("session_closed", listener)
    one.on("session_closed", async_listener)
    await one.rotate_key()
    await two.rotate_key()
    assert seen == [("key_rotated", one.session_id)]
    one.off("key_rotated", listener)
    await one.rotate_key()
    assert seen == [("key_rotated", one.session_id)]
    with pytest.raises(ValueError, match="not registered"):
        one.off("key_rotated", listener)
    with pytest.raises(ConfigError, match="unknown session event kind"):
        one.on("session_established", listener)
    with pytest.raises(TypeError, match="listener must be callable"):
        one.on("key_rotated", None)  # type: ignore[arg-type]
    await two.close()
    await one.close()
    await asyncio.sleep(0)  # the coroutine listener runs as a task
    assert seen[1:] == [
        ("session_closed", one.session_id),
        ("async session_closed", one.session_id),
    ]


async def test_node_off_stops_a_listener(make_node: NodeFactory) -> None:
    server = await make_node(ws=False)
    client = await make_node(server_mode=False, ws=False)
    established: list[NodeEvent] = []
    server.on("session_established", established.append)
    await connect(client, server, "udp")
    server.off("session_established", established.append)
    await connect(client, server, "udp")
    assert len(established) == 1
    with pytest.raises(ValueError, match="not registered"):
        server.off("session_established", established.append)
    with pytest.raises(ConfigError, match="unknown event kind"):
        server.off("no_such_kind", established.append)


async def test_write_without_await_sends(pair: Pair) -> None:
    stream = await pair.session.open_stream()
    stream.write(b"first line\n")  # as with asyncio.StreamWriter: no await
    await stream.write(b"second ")  # api.md's form keeps working
    stream.write(memoryview(b"line\nrest"))
    stream.write_eof()
    assert stream.is_closing()
    incoming = await next_incoming_stream(pair.peer)
    assert await incoming.readline() == b"first line\n"
    assert await incoming.readuntil(b"line\n") == b"second line\n"
    assert not incoming.at_eof()
    with pytest.raises(asyncio.IncompleteReadError) as partial:
        await incoming.readuntil(b"\n")
    assert partial.value.partial == b"rest"
    assert incoming.at_eof()
    assert await incoming.readline() == b""
    await incoming.close()
    async with asyncio.timeout(10 * SECOND):
        await stream.wait_closed()
        await incoming.wait_closed()


async def test_readuntil_waits_across_chunks_and_honours_the_limit(pair: Pair) -> None:
    stream = await pair.session.open_stream()
    stream.write(b"abc")
    incoming = await next_incoming_stream(pair.peer)
    reading = asyncio.create_task(incoming.readuntil(b"\r\n"))
    await asyncio.sleep(0.05)
    assert not reading.done()
    stream.write(b"def\r")
    await asyncio.sleep(0.05)
    assert not reading.done()
    stream.write(b"\nnext")
    async with asyncio.timeout(10 * SECOND):
        assert await reading == b"abcdef\r\n"
    stream.write(b"x" * 20)
    await wait_until(lambda: len(incoming._buffer) >= 24, "the bytes arrived")
    with pytest.raises(asyncio.LimitOverrunError):
        await incoming.readuntil(b"\n", limit=16)
    assert await incoming.readexactly(24) == b"next" + b"x" * 20  # nothing was lost
    with pytest.raises(ValueError, match="separator"):
        await incoming.readuntil(b"")


async def test_is_closing_and_wait_closed_after_the_session_closes(pair: Pair) -> None:
    stream = await pair.session.open_stream()
    assert not stream.is_closing()
    assert not stream.at_eof()
    await pair.session.close()
    async with asyncio.timeout(10 * SECOND):
        await stream.wait_closed()
    assert stream.is_closing()
    assert stream.at_eof()
    assert pair.session.state == SessionState.CLOSED


async def test_a_unidirectional_stream_carries_one_way(pair: Pair) -> None:
    with pytest.raises(TypeError, match="unidirectional must be a bool"):
        await pair.session.open_stream(unidirectional=1)  # type: ignore[arg-type]
    stream = await pair.session.open_stream(unidirectional=True)
    assert stream.is_unidirectional
    assert stream.at_eof()  # nothing ever arrives on it
    # Announced before its first byte: the peer's incoming_streams() yields it already.
    incoming = await next_incoming_stream(pair.peer)
    assert incoming.stream_id == stream.stream_id
    assert incoming.is_unidirectional
    with pytest.raises(StreamError, match="unidirectional: only the peer sends on it"):
        incoming.write(b"back")
    stream.write(b"one way\n" * 1000)
    await stream.close()
    assert await incoming.read() == b"one way\n" * 1000
    with pytest.raises(StreamError, match="unidirectional: only this side sends on it"):
        await stream.read()
    with pytest.raises(ConfigError, match="marks unidirectional"):
        stream.reset(2**62 - 1)
    async with asyncio.timeout(10 * SECOND):
        await stream.wait_closed()
        await incoming.wait_closed()
    assert pair.session.stats().active_streams == 0
    assert pair.peer.stats().active_streams == 0
    other = await pair.session.create_unidirectional_stream()
    assert other.is_unidirectional
    bidirectional = await pair.session.create_bidirectional_stream()
    assert not bidirectional.is_unidirectional


async def test_get_extra_info(pair: Pair) -> None:
    stream = await pair.session.open_stream()
    assert stream.get_extra_info("peername") == pair.session.peer_addr
    assert stream.get_extra_info("transport") == pair.transport
    assert stream.get_extra_info("session_id") == pair.session.session_id
    assert stream.get_extra_info("stream_id") == stream.stream_id
    assert stream.get_extra_info("peer_node_id") == pair.server.node_id
    assert stream.get_extra_info("sockname", "none") == "none"


async def test_once_fires_on_the_next_event_only(make_node: NodeFactory) -> None:
    server = await make_node()
    client = await make_node(server_mode=False)
    seen: list[NodeEvent] = []
    server.once("session_established", seen.append)
    first, _ = await connect(client, server, "udp")
    second, _ = await connect(client, server, "udp")
    await wait_until(lambda: len(server.session_manager.get_active_sessions()) == 2)
    assert [event.session.session_id for event in seen] == [first.session_id]
    assert second.session_id != first.session_id


async def test_wait_for_an_event_with_a_condition_and_a_timeout(make_node: NodeFactory) -> None:
    server = await make_node()
    client = await make_node(server_mode=False)
    session, peer = await connect(client, server, "udp")
    with pytest.raises(TimeoutError):
        await session.wait_for("key_rotated", timeout=0.05)
    assert session._listeners is not None  # wait_for registered, then removed its listener
    assert session._listeners.get("key_rotated") == []  # nothing left registered
    second_rotation = asyncio.create_task(
        peer.wait_for("key_rotated", condition=lambda event: event.key_version == 2)
    )
    await session.rotate_key()
    await session.rotate_key()
    async with asyncio.timeout(10 * SECOND):
        event = await second_rotation
    assert event.key_version == 2
    assert event.session is peer
    closed = asyncio.create_task(server.wait_for("session_closed", timeout=10 * SECOND))
    await asyncio.sleep(0)
    await session.close(CloseCode.NORMAL, "done")
    assert (await closed).reason == "done"
    with pytest.raises(ConfigError, match="unknown event kind"):
        await server.wait_for("nothing")
    with pytest.raises(TypeError, match="condition"):
        await server.wait_for("session_closed", condition=3)  # type: ignore[arg-type]
