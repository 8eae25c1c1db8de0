"""Byte streams (``STTStream``, api.md) over UDP and WebSocket, between two real nodes.

open_stream / incoming_streams, write + drain, read(n), read() to the end, readexactly,
``async for``, close() as a half-close, reset(code), use after the session closed, 200 concurrent
streams, and backpressure: a slow reader keeps what the writer holds bounded, for streams and for
messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random

import pytest

from seigr_stt import NodeConfig, SessionClosedError, StreamError, STTNode, STTSession
from seigr_stt.aio.driver import SEND_HIGH_WATER_BYTES, Driver, high_water
from seigr_stt.aio.streams import STTStream
from seigr_stt.constants import STREAM_INITIAL_WINDOW_BYTES, STREAM_SEND_HIGH_WATER_BYTES
from seigr_stt.core.session import Session
from tests.aio.helpers import (
    KIB,
    MIB,
    WAIT_S,
    NodeFactory,
    Pair,
    Transport,
    connect,
    next_incoming_stream,
    receive_n,
    wait_until,
    write_chunks,
)
from tests.timing import SECOND


def payload(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def core_of(node: STTNode, session: STTSession) -> Session:
    """The sans-I/O session under ``session`` (to measure what it buffers)."""
    return node.endpoint.session(session.session_id)


async def read_until_error(stream: STTStream) -> None:
    """Read until ``read`` raises; a clean end of stream fails the test."""
    async with asyncio.timeout(WAIT_S):
        while True:
            chunk = await stream.read(1000)  # what arrived before a reset may come first
            assert chunk, "the stream ended cleanly instead of failing"


async def write_until_error(stream: STTStream) -> None:
    """Write until ``write`` raises (the peer's STOP_SENDING may take a moment to arrive)."""
    async with asyncio.timeout(WAIT_S):
        while True:
            await stream.write(b"more")
            await stream.drain()
            await asyncio.sleep(0.005)


# -- opening --------------------------------------------------------------------------------------
async def test_open_stream_reaches_the_peers_incoming_streams(pair: Pair) -> None:
    stream = await pair.session.open_stream()
    assert stream.stream_id & 1 == 0  # opened by the session's initiator
    assert str(stream.stream_id) in repr(stream)
    await stream.write(b"hello")
    await stream.drain()
    incoming = await next_incoming_stream(pair.peer)
    assert incoming.stream_id == stream.stream_id
    assert await incoming.readexactly(5) == b"hello"

    back = await pair.peer.open_stream()
    assert back.stream_id & 1 == 1  # opened by the responder
    assert back.stream_id != stream.stream_id
    await back.write(b"from the server")
    await back.close()
    got = await next_incoming_stream(pair.session)
    assert got.stream_id == back.stream_id
    assert await got.read() == b"from the server"

    # Message channels are another kind: channel number == a byte stream's id mixes nothing.
    await pair.session.send(b"a message", stream_id=stream.stream_id)
    await stream.write(b" world")
    (packet,) = await receive_n(pair.server, 1)
    assert (packet.stream_id, packet.data) == (stream.stream_id, b"a message")
    assert await incoming.readexactly(6) == b" world"
    for side in (pair.session, pair.peer):
        assert side.get_statistics()["streams_opened"] == 2


# -- reading --------------------------------------------------------------------------------------
async def test_read_n_returns_at_most_n_bytes(pair: Pair) -> None:
    data = payload(1, 300 * KIB + 7)
    stream = await pair.session.open_stream()
    writing = asyncio.create_task(write_chunks(stream, data))
    incoming = await next_incoming_stream(pair.peer)
    parts: list[bytes] = []
    async with asyncio.timeout(WAIT_S):
        while chunk := await incoming.read(1000):
            assert len(chunk) <= 1000
            parts.append(chunk)
        await writing
    assert b"".join(parts) == data
    assert await incoming.read(1000) == b""  # the end stays the end
    assert await incoming.read(0) == b""


async def test_read_returns_everything_until_the_peer_closes(pair: Pair) -> None:
    # Larger than the stream's flow-control window and the writer's high-water mark.
    data = payload(2, 2 * MIB + 123)
    stream = await pair.peer.open_stream()
    writing = asyncio.create_task(write_chunks(stream, data))
    incoming = await next_incoming_stream(pair.session)
    async with asyncio.timeout(WAIT_S):
        got = await incoming.read()
        await writing
    assert len(got) == len(data)
    assert sha256(got) == sha256(data)
    assert await incoming.read() == b""


async def test_readexactly_and_an_early_end(pair: Pair) -> None:
    stream = await pair.session.open_stream()
    await stream.write(b"0123456789")
    await stream.write(b"abc")
    await stream.close()
    incoming = await next_incoming_stream(pair.peer)
    async with asyncio.timeout(WAIT_S):
        assert await incoming.readexactly(4) == b"0123"
        assert await incoming.readexactly(0) == b""
        assert await incoming.readexactly(6) == b"456789"
        with pytest.raises(asyncio.IncompleteReadError) as info:
            await incoming.readexactly(10)
    assert info.value.partial == b"abc"
    assert info.value.expected == 10
    assert await incoming.read() == b""


async def test_async_for_yields_chunks_until_the_end(pair: Pair) -> None:
    data = payload(3, 3 * MIB // 2)
    stream = await pair.session.open_stream()
    writing = asyncio.create_task(write_chunks(stream, data))
    incoming = await next_incoming_stream(pair.peer)
    async with asyncio.timeout(WAIT_S):
        chunks = [chunk async for chunk in incoming]
        await writing
    assert all(0 < len(chunk) <= STREAM_SEND_HIGH_WATER_BYTES for chunk in chunks)
    assert b"".join(chunks) == data


# -- close and reset ------------------------------------------------------------------------------
async def test_close_finishes_one_direction_only(pair: Pair) -> None:
    request = payload(4, 100 * KIB)
    stream = await pair.session.open_stream()
    await write_chunks(stream, request)  # ends with close(): our FIN
    with pytest.raises(StreamError):
        await stream.write(b"after close")
    await stream.close()  # again: nothing happens
    incoming = await next_incoming_stream(pair.peer)
    async with asyncio.timeout(WAIT_S):
        assert await incoming.read() == request  # the end of the client's direction
        # The other direction still works after the client's FIN, in several writes.
        digest = sha256(request)
        await incoming.write(digest)
        await incoming.drain()
        assert await stream.readexactly(32) == digest
        reply = payload(5, 200 * KIB)
        await write_chunks(incoming, reply)
        assert await stream.read() == reply
    assert await stream.read() == b""
    with pytest.raises(StreamError):
        await incoming.write(b"after close")
    assert pair.session.is_active()


async def test_reset_is_seen_by_the_peer_on_read_and_on_write(pair: Pair) -> None:
    stream = await pair.session.open_stream()
    await stream.write(b"data written before the reset")
    await stream.drain()
    incoming = await next_incoming_stream(pair.peer)
    assert await incoming.readexactly(4) == b"data"
    stream.reset(42)
    # Our side: both directions are finished at once.
    with pytest.raises(StreamError):
        await stream.write(b"x")
    with pytest.raises(StreamError):
        await stream.read()
    # The peer: reading fails with the code, and so does writing (STOP_SENDING).
    with pytest.raises(StreamError, match="code 42"):
        await read_until_error(incoming)
    with pytest.raises(StreamError, match="code 42"):
        await write_until_error(incoming)
    # The session and its other streams are unaffected.
    other = await pair.session.open_stream()
    await write_chunks(other, b"still fine")
    assert await (await next_incoming_stream(pair.peer)).read() == b"still fine"


async def test_reset_by_the_accepting_side_with_the_default_code(pair: Pair) -> None:
    stream = await pair.session.open_stream()
    await stream.write(b"please stop me")
    incoming = await next_incoming_stream(pair.peer)
    incoming.reset()
    with pytest.raises(StreamError, match="code 0"):
        await write_until_error(stream)
    with pytest.raises(StreamError, match="code 0"):
        await stream.drain()
    with pytest.raises(StreamError, match="code 0"):
        await read_until_error(stream)
    with pytest.raises(StreamError):
        await incoming.read()
    incoming.reset(5)  # again: nothing happens


# -- the session closes ---------------------------------------------------------------------------
async def test_stream_operations_after_the_session_closed_raise(pair: Pair) -> None:
    stream = await pair.session.open_stream()
    await stream.write(b"unfinished")
    await stream.drain()
    incoming = await next_incoming_stream(pair.peer)
    assert await incoming.readexactly(10) == b"unfinished"
    finished = await pair.session.open_stream()
    await write_chunks(finished, b"complete before the close")
    finished_incoming = await next_incoming_stream(pair.peer)

    await pair.session.close()  # delivers what was written, then CLOSE
    async with asyncio.timeout(WAIT_S):
        await pair.peer.wait_closed()
    for side in (stream, incoming):  # closed locally / by the peer
        with pytest.raises(SessionClosedError):
            await side.write(b"x")
        with pytest.raises(SessionClosedError):
            await side.drain()
        with pytest.raises(SessionClosedError):
            await side.read()
        with pytest.raises(SessionClosedError):
            await side.readexactly(1)
        with pytest.raises(SessionClosedError):
            _ = [chunk async for chunk in side]
        await side.close()  # closing what is already gone is not an error
        side.reset(1)
    for session in (pair.session, pair.peer):
        with pytest.raises(SessionClosedError):
            await session.open_stream()
        assert [s async for s in session.incoming_streams()] == []
    # A stream the peer finished before the session closed still reads to its end.
    assert await finished_incoming.read() == b"complete before the close"
    assert await finished_incoming.read() == b""


async def test_what_arrived_before_the_node_stopped_can_still_be_read(pair: Pair) -> None:
    stream = await pair.session.open_stream()
    await write_chunks(stream, b"last words")
    incoming = await next_incoming_stream(pair.peer)
    # The data and the FIN may come in one record or two (a reliable link holds the FIN back
    # while its queue is busy, §15.4): both arrived before the node stops.
    await wait_until(lambda: incoming._fin_received, "the FIN")
    await pair.server.stop()
    assert await incoming.read() == b"last words"
    assert await incoming.read() == b""
    incoming.reset(3)  # nothing left to abort
    async with asyncio.timeout(WAIT_S):
        await pair.session.wait_closed()
    with pytest.raises(SessionClosedError):
        await stream.write(b"to a stopped node")


# -- many streams ---------------------------------------------------------------------------------
CONCURRENT_STREAMS = 200


async def test_200_concurrent_streams_each_carry_their_own_payload(pair: Pair) -> None:
    rng = random.Random(200)
    sizes = [0, 1, 64 * KIB, *(rng.randrange(64 * KIB) for _ in range(CONCURRENT_STREAMS - 3))]
    payloads = [rng.randbytes(size) for size in sizes]
    assert len(set(payloads)) == CONCURRENT_STREAMS

    async def answer(stream: STTStream) -> tuple[int, bytes]:
        digest = sha256(await stream.read())
        await stream.write(digest)  # the server echoes the hash of what it read
        await stream.close()
        return stream.stream_id, digest

    async def serve() -> dict[int, bytes]:
        answering: list[asyncio.Task[tuple[int, bytes]]] = []
        async for stream in pair.peer.incoming_streams():
            answering.append(asyncio.create_task(answer(stream)))
            if len(answering) == CONCURRENT_STREAMS:
                break
        return dict(await asyncio.gather(*answering))

    async def request(data: bytes) -> tuple[int, bytes]:
        stream = await pair.session.open_stream()
        await write_chunks(stream, data, chunk=16 * KIB)
        echoed = await stream.readexactly(32)
        assert await stream.read() == b""
        return stream.stream_id, echoed

    async with asyncio.timeout(30 * SECOND):
        serving = asyncio.create_task(serve())
        answers = await asyncio.gather(*(request(data) for data in payloads))
        seen_by_server = await serving
    assert len({stream_id for stream_id, _ in answers}) == CONCURRENT_STREAMS
    for data, (stream_id, echoed) in zip(payloads, answers, strict=True):
        assert echoed == sha256(data), f"stream {stream_id}"
        assert seen_by_server[stream_id] == sha256(data), f"stream {stream_id}"
    for side in (pair.session, pair.peer):
        assert side.get_statistics()["streams_opened"] == CONCURRENT_STREAMS
    # Once the last acknowledgements arrive, nothing stays buffered on either side.
    for core in (core_of(pair.client, pair.session), core_of(pair.server, pair.peer)):

        def all_acknowledged(core: Session = core) -> bool:
            return core.send_buffered == 0

        await wait_until(all_acknowledged, "the last acknowledgements")


# -- backpressure ---------------------------------------------------------------------------------
WRITE_BYTES = 64 * KIB
SLOW_TOTAL = 4 * MIB


async def test_a_slow_reader_keeps_the_writers_buffer_bounded(pair: Pair) -> None:
    """The writer loops on write + drain while the reader sleeps between small reads: what the
    writer's session holds stays below the high-water mark plus one write, whatever the amount
    written, and the reader holds at most one flow-control window."""
    data = payload(6, SLOW_TOTAL)
    core = core_of(pair.client, pair.session)
    stream = await pair.session.open_stream()
    bound = STREAM_SEND_HIGH_WATER_BYTES + WRITE_BYTES
    assert 3 * bound <= SLOW_TOTAL  # far more is written than may be held
    held: list[int] = []  # what the writer's session held after each write
    read = 0
    read_when_written = 0

    async def writer() -> None:
        nonlocal read_when_written
        for offset in range(0, SLOW_TOTAL, WRITE_BYTES):
            await stream.write(data[offset : offset + WRITE_BYTES])
            held.append(max(core.stream_buffered(stream.stream_id), core.send_buffered))
            await stream.drain()
        read_when_written = read
        await stream.close()

    async def slow_reader(incoming: STTStream) -> bytes:
        nonlocal read
        digest = hashlib.sha256()
        unread_peak = 0
        while chunk := await incoming.read(32 * KIB):
            read += len(chunk)
            digest.update(chunk)
            unread_peak = max(unread_peak, len(incoming._buffer))
            await asyncio.sleep(0.01)
        assert unread_peak <= STREAM_INITIAL_WINDOW_BYTES  # flow control bounds the reader too
        return digest.digest()

    async with asyncio.timeout(30 * SECOND):
        writing = asyncio.create_task(writer())
        reading = asyncio.create_task(slow_reader(await next_incoming_stream(pair.peer)))
        await writing
        assert await reading == sha256(data)
    assert max(held) <= bound, f"the writer held {max(held)} bytes"
    # drain() really waited for the reader: when the last write returned, the reader had taken
    # all but what the writer may hold and one window in flight.
    assert read_when_written >= SLOW_TOTAL - bound - STREAM_INITIAL_WINDOW_BYTES


MESSAGE_BYTES = 64 * KIB
MESSAGES_TOTAL = 8 * MIB


async def test_a_slow_message_consumer_keeps_the_sender_bounded(pair: Pair) -> None:
    """session.send() waits while more than SEND_HIGH_WATER_BYTES are unacknowledged, and the
    receiver's queue holds at most one channel window of messages the application has not
    taken."""
    count = MESSAGES_TOTAL // MESSAGE_BYTES
    core = core_of(pair.client, pair.session)
    held: list[int] = []
    taken = 0
    taken_when_sent = 0

    async def sender() -> None:
        nonlocal taken_when_sent
        for i in range(count):
            await pair.session.send(i.to_bytes(4, "big") * (MESSAGE_BYTES // 4), stream_id=1)
            held.append(core.send_buffered)
        taken_when_sent = taken

    async def slow_consumer() -> int:
        nonlocal taken
        queue_peak = 0
        async for packet in pair.server.receive():
            assert packet.data == taken.to_bytes(4, "big") * (MESSAGE_BYTES // 4)
            taken += 1
            queue_peak = max(queue_peak, pair.server.get_stats()["receive_queue"])
            if taken == count:
                break
            await asyncio.sleep(0.01)
        return queue_peak

    async with asyncio.timeout(30 * SECOND):
        sending = asyncio.create_task(sender())
        queue_peak = await slow_consumer()
        await sending
    assert max(held) <= SEND_HIGH_WATER_BYTES + MESSAGE_BYTES + 8
    assert queue_peak <= STREAM_INITIAL_WINDOW_BYTES // MESSAGE_BYTES + 1
    in_flight = (SEND_HIGH_WATER_BYTES + STREAM_INITIAL_WINDOW_BYTES) // MESSAGE_BYTES + 2
    assert taken_when_sent >= count - in_flight


async def test_finished_streams_are_released_and_an_idle_application_holds_the_peer_back(
    pair: Pair,
) -> None:
    # A peer opening and aborting streams at once leaves nothing behind in the application's
    # session, and one whose streams are never taken cannot open more than the limit (audit F6).
    accepted: list[STTStream] = []

    async def accept() -> None:
        async for incoming in pair.peer.incoming_streams():
            accepted.append(incoming)

    async def open_aborted() -> None:
        async with asyncio.timeout(10 * SECOND):
            while True:
                try:
                    stream = await pair.session.open_stream()
                except StreamError:  # at the limit until the server takes and finishes some
                    await asyncio.sleep(0.01)
                    continue
                await stream.write(b"x")
                stream.reset(1)
                return

    taking = asyncio.create_task(accept())
    try:
        for _ in range(300):  # more than MAX_STREAMS_DEFAULT: only taken ones free room
            await open_aborted()
        await wait_until(lambda: len(accepted) == 300, "every stream taken")
        await wait_until(lambda: pair.peer.get_statistics()["streams_live"] == 0, "release")
    finally:
        taking.cancel()
    await wait_until(lambda: pair.session.get_statistics()["streams_live"] == 0, "release")
    # Nobody takes the next ones: the peer is held at the limit, whatever it finished.
    opened_now = 0
    with contextlib.suppress(StreamError):
        for _ in range(256 + 64):
            stream = await pair.session.open_stream()
            stream.reset(1)
            opened_now += 1
            await asyncio.sleep(0.005)  # let any MAX_STREAMS the server sends arrive
    assert opened_now == 256


async def test_drain_lets_a_larger_stream_window_fill_before_it_waits(
    make_node: NodeFactory, transport: Transport, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a stream window above the 1 MiB mark, drain() waits only beyond the window. The
    peer grants credit after half a window, and over WebSocket its ACK rides on that credit
    (§14.8): a writer stopped at 1 MiB waited for the 25 ms ACK timer every time instead (64
    against 446 MB/s with a 4 MiB window across the veth path)."""
    window = 4 * MIB
    config = NodeConfig(stream_window=window, session_window=4 * window)
    server = await make_node(config=config)
    client = await make_node(server_mode=False, config=config)
    session, peer = await connect(client, server, transport)
    core = core_of(client, session)
    assert high_water(STREAM_SEND_HIGH_WATER_BYTES, core) == window
    waits = 0
    wait_progress = Driver.wait_progress

    async def counted(self: Driver) -> None:
        nonlocal waits
        waits += 1
        await wait_progress(self)

    monkeypatch.setattr(Driver, "wait_progress", counted)
    data = payload(9, 3 * MIB)
    stream = await session.open_stream()
    stream.write(data)
    assert core.stream_buffered(stream.stream_id) > STREAM_SEND_HIGH_WATER_BYTES
    await stream.drain()
    assert waits == 0  # 3 MiB unacknowledged is within the window: no wait
    stream.write(data)  # 6 MiB: beyond the window, drain waits for the peer
    async with asyncio.timeout(30 * SECOND):
        incoming = await next_incoming_stream(peer)
        reading = asyncio.create_task(incoming.readexactly(2 * len(data)))
        await stream.drain()
        assert waits >= 1
        assert core.stream_buffered(stream.stream_id) <= window
        assert await reading == data + data
