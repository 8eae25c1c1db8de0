"""Per-session receive: ``session.recv()``, ``async for packet in session``, ``node.recv()``,
iterators that survive cancellation, and the manager's lookups by peer and by address.

Real nodes over real loopback sockets (UDP, and WebSocket where the transport matters).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import pytest

from seigr_stt import (
    CloseCode,
    ConfigError,
    NodeConfig,
    ProtocolError,
    ReceivedPacket,
    SessionClosedError,
    STTNode,
    STTSession,
    generate_seed,
)
from seigr_stt.aio.peer import PeerSession
from seigr_stt.core.channels import message_header
from seigr_stt.core.session import Session
from tests.aio.helpers import (
    LOOPBACK,
    SENTINEL,
    WAIT_S,
    NodeFactory,
    Pair,
    collect_until_sentinels,
    connect,
    receive_n,
    wait_until,
)
from tests.timing import MS, SECOND


async def _two_clients(
    make_node: NodeFactory, transport: str = "udp", config: NodeConfig | None = None
) -> tuple[STTNode, list[STTSession], list[STTSession]]:
    """A server and two client sessions to it: (server, client sides, server sides)."""
    server = await make_node(config=config)
    mine: list[STTSession] = []
    theirs: list[STTSession] = []
    for _ in range(2):
        client = await make_node(server_mode=False, config=config)
        session, peer = await connect(client, server, "udp" if transport == "udp" else "websocket")
        mine.append(session)
        theirs.append(peer)
    return server, mine, theirs


# -- one reader per session ---------------------------------------------------------------------
@pytest.mark.parametrize("transport", ["udp", "websocket"])
async def test_a_reader_per_session_gets_only_its_sessions_messages(
    make_node: NodeFactory, transport: str
) -> None:
    server, (a, b), (peer_a, peer_b) = await _two_clients(make_node, transport)
    got: dict[str, list[bytes]] = {"a": [], "b": []}

    async def read(name: str, session: STTSession) -> None:
        async for packet in session:
            assert packet.session_id == session.session_id
            got[name].append(packet.data)
            if len(got[name]) == 5:
                return

    readers = [
        asyncio.create_task(read("a", peer_a)),
        asyncio.create_task(read("b", peer_b)),
    ]
    for i in range(5):  # interleaved, as in the audit's finding 8
        await a.send(b"from A #%d" % i)
        await b.send(b"from B #%d" % i)
    async with asyncio.timeout(WAIT_S):
        await asyncio.gather(*readers)
    assert got == {
        "a": [b"from A #%d" % i for i in range(5)],
        "b": [b"from B #%d" % i for i in range(5)],
    }
    assert server.get_stats()["receive_queue"] == 0


async def test_node_receive_sees_only_sessions_without_a_reader(make_node: NodeFactory) -> None:
    server, (a, b), (peer_a, peer_b) = await _two_clients(make_node)
    await a.send(b"a0")
    assert (await peer_a.recv(timeout=WAIT_S)).data == b"a0"  # A is read per session now
    for i in range(1, 4):
        await a.send(b"a%d" % i)
        await b.send(b"b%d" % i)
    await b.send(SENTINEL)
    others = await collect_until_sentinels(server, [(peer_b.session_id, 0)])
    assert [p.data for p in others] == [b"b1", b"b2", b"b3"]
    assert [(await peer_a.recv(timeout=WAIT_S)).data for _ in range(3)] == [b"a1", b"a2", b"a3"]


async def test_switching_to_a_session_reader_loses_and_repeats_nothing(pair: Pair) -> None:
    messages = [b"m%d" % i for i in range(30)]
    for message in messages[:10]:
        await pair.session.send(message, stream_id=3)
    # Three taken by node.receive(), the other seven wait there when the session gets a reader.
    early = await receive_n(pair.server, 3)
    await wait_until(lambda: pair.server.get_stats()["receive_queue"] == 7, "the rest to queue")
    iterator = aiter(pair.peer)
    assert pair.server.get_stats()["receive_queue"] == 0  # moved to the session, in order
    for message in messages[10:]:
        await pair.session.send(message, stream_id=3)
    late = [await anext(iterator) for _ in range(27)]
    assert [p.data for p in early + late] == messages
    assert all(p.stream_id == 3 for p in late)
    # node.receive() no longer sees this session's messages.
    await pair.session.send(b"after")
    assert (await pair.peer.recv(timeout=WAIT_S)).data == b"after"
    with pytest.raises(TimeoutError):
        await pair.server.recv(timeout=50 * MS)


async def test_recv_returns_the_packet_with_its_channel(pair: Pair) -> None:
    await pair.session.send(b"on channel 9", stream_id=9)
    packet = await pair.peer.recv(timeout=WAIT_S)
    assert isinstance(packet, ReceivedPacket)
    assert (packet.data, packet.stream_id, packet.session_id) == (
        b"on channel 9",
        9,
        pair.peer.session_id,
    )
    assert packet.peer_node_id == pair.client.node_id
    assert packet.transport == pair.transport


# -- flow control per session ------------------------------------------------------------------
async def test_credit_is_returned_per_session(make_node: NodeFactory) -> None:
    """An unread session holds only its own window; a session read per session gets all."""
    config = NodeConfig(session_window=4096, stream_window=4096)
    _, (a, b), (peer_a, peer_b) = await _two_clients(make_node, config=config)
    messages = [bytes([i]) * 1000 for i in range(40)]  # ten times the window each
    aiter(peer_a)  # A is read per session, but nobody reads it yet
    for message in messages:
        await a.send(message, stream_id=1)
        await b.send(message, stream_id=1)
    got_b = [(await peer_b.recv(timeout=WAIT_S)).data for _ in messages]
    assert got_b == messages
    assert isinstance(peer_a, PeerSession)
    waiting = peer_a._inbox
    assert waiting is not None
    assert len(waiting) < len(messages)  # held back by A's window, not by B's traffic
    got_a = [(await peer_a.recv(timeout=WAIT_S)).data for _ in messages]
    assert got_a == messages


async def test_messages_taken_in_one_turn_return_their_credit_together(
    make_node: NodeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Credit goes back once per channel and loop turn, not once per message, and all of it."""
    config = NodeConfig(session_window=8192, stream_window=4096)
    server = await make_node(config=config)
    client = await make_node(server_mode=False, config=config)
    session, peer = await connect(client, server, "udp")
    assert isinstance(peer, PeerSession)
    returns: list[tuple[int, int]] = []
    consume_message = Session.consume_message

    def counting(self: Session, channel: int, credit: int, count: int = 1) -> None:
        returns.append((credit, count))
        consume_message(self, channel, credit, count)

    monkeypatch.setattr(Session, "consume_message", counting)
    messages = [i.to_bytes(2, "big") * 50 for i in range(200)]  # 20 KB: five stream windows
    aiter(peer)  # read per session
    sender = asyncio.create_task(_send_all(session, messages))
    got: list[bytes] = []
    inbox = peer._inbox
    assert inbox is not None
    while len(got) < len(messages):
        await wait_until(lambda: len(inbox) > 0, "a message")
        for _ in range(len(inbox)):  # every waiting message, in this one loop turn
            got.append((await peer.recv(timeout=WAIT_S)).data)
    await sender
    assert got == messages
    await wait_until(lambda: sum(count for _, count in returns) == len(messages), "credit")
    framed = sum(len(message_header(m)) + len(m) for m in messages)
    assert sum(credit for credit, _ in returns) == framed
    assert len(returns) < len(messages) // 2  # many messages per return


async def _send_all(session: STTSession, messages: list[bytes]) -> None:
    for message in messages:
        await session.send(message, stream_id=1)


# -- iterators that survive cancellation -------------------------------------------------------
async def _timed_out_then_next(iterator: AsyncIterator[object]) -> None:
    """The audit's scenario: ``wait_for(anext(it), ...)`` times out, the iterator lives on."""
    for _ in range(2):
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(iterator), 20 * MS)


async def test_node_receive_survives_a_timed_out_anext(pair: Pair) -> None:
    iterator = pair.server.receive()
    await _timed_out_then_next(iterator)
    await pair.session.send(b"still here")
    packet = await asyncio.wait_for(anext(iterator), WAIT_S)
    assert packet.data == b"still here"


async def test_session_iteration_survives_a_timed_out_anext(pair: Pair) -> None:
    iterator = aiter(pair.peer)
    await _timed_out_then_next(iterator)
    await pair.session.send(b"one")
    await pair.session.send(b"two")
    assert (await asyncio.wait_for(anext(iterator), WAIT_S)).data == b"one"
    assert (await pair.peer.recv(timeout=WAIT_S)).data == b"two"


async def test_datagrams_survive_a_timed_out_anext(pair: Pair) -> None:
    iterator = pair.peer.datagrams()
    await _timed_out_then_next(iterator)
    # Datagrams may be lost: send until one arrives.
    async with asyncio.timeout(WAIT_S):
        for i in itertools.count():
            await pair.session.send_datagram(b"datagram %d" % i)
            try:
                datagram = await asyncio.wait_for(anext(iterator), 50 * MS)
            except TimeoutError:
                continue
            assert datagram.startswith(b"datagram ")
            break


async def test_incoming_streams_survive_a_timed_out_anext(pair: Pair) -> None:
    iterator = pair.peer.incoming_streams()
    await _timed_out_then_next(iterator)
    stream = await pair.session.open_stream()
    await stream.write(b"stream data")
    await stream.close()
    incoming = await asyncio.wait_for(anext(iterator), WAIT_S)
    assert incoming.stream_id == stream.stream_id
    async with asyncio.timeout(WAIT_S):
        assert await incoming.read() == b"stream data"


async def test_a_cancelled_reader_task_hands_its_message_to_the_next(pair: Pair) -> None:
    readers = [asyncio.create_task(pair.peer.recv()) for _ in range(3)]
    await asyncio.sleep(0)
    readers[0].cancel()
    await pair.session.send(b"only one")
    done, pending = await asyncio.wait(readers[1:], timeout=WAIT_S, return_when="FIRST_COMPLETED")
    assert [task.result().data for task in done] == [b"only one"]
    for task in pending:
        task.cancel()
    assert readers[0].cancelled()


# -- the end of a session, of a node ------------------------------------------------------------
async def test_session_reader_drains_then_ends_when_the_session_closes(pair: Pair) -> None:
    iterator = aiter(pair.peer)
    for i in range(3):
        await pair.session.send(b"last %d" % i)
    await wait_until(lambda: len(pair.peer._inbox or ()) == 3, "the messages")  # type: ignore[attr-defined]
    await pair.session.close(code=300, reason="done")
    await pair.peer.wait_closed()
    assert [p.data async for p in iterator] == [b"last 0", b"last 1", b"last 2"]
    with pytest.raises(SessionClosedError) as info:
        await pair.peer.recv(timeout=WAIT_S)
    assert (info.value.code, info.value.reason) == (300, "done")
    assert [p async for p in pair.peer] == []


async def test_recv_after_the_session_closed_without_a_reader(pair: Pair) -> None:
    await pair.session.send(b"before close")
    await wait_until(lambda: pair.server.get_stats()["receive_queue"] == 1, "the message")
    await pair.session.close()
    await pair.peer.wait_closed()
    assert (await pair.peer.recv(timeout=WAIT_S)).data == b"before close"
    with pytest.raises(SessionClosedError):
        await pair.peer.recv()


async def test_node_recv(pair: Pair) -> None:
    with pytest.raises(TimeoutError):
        await pair.server.recv(timeout=20 * MS)
    await pair.session.send(b"one message")
    packet = await pair.server.recv(timeout=WAIT_S)
    assert (packet.data, packet.session_id) == (b"one message", pair.peer.session_id)
    await pair.session.send(b"queued at stop")
    await wait_until(lambda: pair.server.get_stats()["receive_queue"] == 1, "the message")
    async with asyncio.timeout(10 * SECOND):
        await pair.server.stop()
    assert (await pair.server.recv()).data == b"queued at stop"
    with pytest.raises(ProtocolError, match="node stopped"):
        await pair.server.recv()
    with pytest.raises(StopAsyncIteration):
        await anext(pair.server.receive())


async def test_recv_checks_its_timeout_first(pair: Pair) -> None:
    for recv in (pair.server.recv, pair.peer.recv):
        for bad in (0, -1, float("nan"), float("inf")):
            with pytest.raises(ConfigError, match="timeout"):
                await recv(timeout=bad)
        with pytest.raises(TypeError, match="timeout"):
            await recv(timeout="1")  # type: ignore[arg-type]
    # The refused calls changed nothing: the session still reads through node.receive().
    await pair.session.send(b"to the node")
    assert (await pair.server.recv(timeout=WAIT_S)).data == b"to the node"


async def test_node_recv_wakes_when_the_node_stops(pair: Pair) -> None:
    waiting = asyncio.create_task(pair.server.recv())
    await asyncio.sleep(0)
    async with asyncio.timeout(10 * SECOND):
        await pair.server.stop()
        with pytest.raises(ProtocolError):
            await waiting


async def test_a_manual_session_receives_nothing(make_node: NodeFactory) -> None:
    node = await make_node()
    manual = await node.session_manager.create_session(b"12345678", bytes(32))
    with pytest.raises(ProtocolError, match="manual"):
        await manual.recv(timeout=WAIT_S)
    assert [p async for p in manual] == []


# -- lookups -------------------------------------------------------------------------------------
async def test_get_sessions_by_peer(make_node: NodeFactory) -> None:
    server = await make_node()
    client = await make_node(server_mode=False)
    udp, _ = await connect(client, server, "udp")
    ws, _ = await connect(client, server, "websocket")
    manager = client.session_manager
    assert manager.get_sessions_by_peer(server.node_id) == [udp, ws]
    assert manager.get_sessions_by_peer(client.node_id) == []
    by_client = server.session_manager.get_sessions_by_peer(client.node_id)
    assert {s.session_id for s in by_client} == {udp.session_id, ws.session_id}
    with pytest.raises(ConfigError):
        manager.get_sessions_by_peer(b"short")
    await udp.close()
    assert manager.get_sessions_by_peer(server.node_id) == [ws]


async def test_get_sessions_by_address_resolves_names(make_node: NodeFactory) -> None:
    server = await make_node()
    client = await make_node(server_mode=False)
    assert server.udp_address is not None
    _, port = server.udp_address
    session = await client.connect_udp("localhost", port)
    manager = client.session_manager
    assert await manager.get_sessions_by_address("localhost", port) == [session]
    assert await manager.get_sessions_by_address(LOOPBACK, port) == [session]
    assert await manager.get_sessions_by_address(LOOPBACK, port + 1 if port < 65535 else 1) == []
    for host, bad_port in (("", port), (LOOPBACK, 70000), (LOOPBACK, "9000")):
        with pytest.raises(ConfigError):
            await manager.get_sessions_by_address(host, bad_port)  # type: ignore[arg-type]


async def test_get_sessions_by_address_before_the_node_starts() -> None:
    node = STTNode(generate_seed(), generate_seed())
    assert await node.session_manager.get_sessions_by_address("localhost", 9000) == []
    assert await node.session_manager.get_sessions_by_address(LOOPBACK, 9000) == []


async def test_the_chapters_session_pool_reuses_sessions(make_node: NodeFactory) -> None:
    """The chapter's Session Pool, written with the lookup: "localhost" finds the session."""

    class SessionPool:
        def __init__(self, node: STTNode) -> None:
            self.node = node

        async def get_or_create(self, peer_host: str, peer_port: int) -> STTSession:
            manager = self.node.session_manager
            for session in await manager.get_sessions_by_address(peer_host, peer_port):
                if session.is_active():
                    return session
            return await self.node.connect_udp(peer_host, peer_port)

    server = await make_node()
    client = await make_node(server_mode=False)
    assert server.udp_address is not None
    pool = SessionPool(client)
    first = await pool.get_or_create("localhost", server.udp_address[1])
    second = await pool.get_or_create("localhost", server.udp_address[1])
    assert first is second
    assert client.session_manager.get_session_count() == 1
    await first.close(CloseCode.NORMAL)
    third = await pool.get_or_create("localhost", server.udp_address[1])
    assert third is not first


# -- the chapter's names -------------------------------------------------------------------------
async def test_the_chapters_udp_transport_is_running(pair: Pair) -> None:
    """Chapter block 21: ``session.is_active() and node.udp_transport.is_running``."""
    node = pair.server
    assert node.udp_transport is not None
    sent = False
    if pair.peer.is_active() and node.udp_transport.is_running:  # the chapter's check
        await pair.peer.send(b"sent")
        sent = True
    assert sent
    transport = node.udp_transport
    async with asyncio.timeout(10 * SECOND):
        await node.stop()
    assert not transport.is_running
    assert not pair.peer.is_active()
