"""Tests of stream send/receive buffers and flow control (``streams.py``)."""

from __future__ import annotations

import os
import random
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seigr_stt.core.streams import FlowControlError, ReadQueue, ReceiveStream, SendStream, copy_out
from tests.profiles import scaled

DATA = bytes(range(256)) * 4


def _drain(stream: SendStream, max_bytes: int = 10_000) -> list[tuple[int, bytes, bool]]:
    chunks = []
    while (chunk := stream.next_chunk(max_bytes)) is not None:
        chunks.append(chunk)
    return chunks


# -- SendStream --------------------------------------------------------------------------------


def test_send_offsets_and_sizes() -> None:
    s = SendStream(credit=1000)
    assert not s.has_pending()
    assert s.next_chunk(100) is None
    s.write(DATA[:100])
    s.write(b"")  # no-op
    s.write(DATA[100:150])
    assert s.written == 150
    assert s.buffered == 150
    assert s.has_pending()
    assert s.next_chunk(60) == (0, DATA[:60], False)
    assert s.next_chunk(60) == (60, DATA[60:120], False)
    assert s.next_chunk(100) == (120, DATA[120:150], False)
    assert s.next_chunk(100) is None
    assert not s.has_pending()
    assert s.buffered == 150  # nothing acknowledged yet
    s.write(DATA[150:160])
    assert s.next_chunk(0) is None  # no room: nothing taken
    assert s.next_chunk(100) == (150, DATA[150:160], False)


def test_send_credit_limits_sending() -> None:
    s = SendStream(credit=100)
    s.write(DATA[:250])
    assert not s.blocked_by_credit()
    assert s.next_chunk(1000) == (0, DATA[:100], False)
    assert s.blocked_by_credit()
    assert not s.has_pending()
    assert s.next_chunk(1000) is None
    s.credit = 180
    assert not s.blocked_by_credit()
    assert s.has_pending()
    assert s.next_chunk(1000) == (100, DATA[100:180], False)
    assert s.blocked_by_credit()
    s.credit = 1000
    assert _drain(s) == [(180, DATA[180:250], False)]
    assert not s.blocked_by_credit()  # nothing pending at all


def test_send_limit_caps_below_credit() -> None:
    s = SendStream(credit=1000)
    s.write(DATA[:300])
    s.finish()
    assert s.next_chunk(1000, limit=120) == (0, DATA[:120], False)
    assert s.next_chunk(1000, limit=120) is None  # the limit is at the next offset
    assert s.next_chunk(1000, limit=50) is None  # a limit below the next offset
    assert s.has_pending()  # only the stream credit counts here
    s.credit = 200
    assert s.next_chunk(1000, limit=5000) == (120, DATA[120:200], False)  # credit still applies
    s.credit = 1000
    assert s.next_chunk(1000, limit=None) == (200, DATA[200:300], True)


def test_send_fin_with_last_chunk() -> None:
    s = SendStream(credit=1000)
    s.write(DATA[:10])
    s.finish()
    assert s.next_chunk(4) == (0, DATA[:4], False)  # not the last byte yet
    assert not s.fin_sent
    assert s.next_chunk(100) == (4, DATA[4:10], True)
    assert s.fin_sent
    assert not s.has_pending()
    assert s.next_chunk(100) is None


def test_send_bare_fin_when_everything_sent() -> None:
    s = SendStream(credit=1000)
    s.write(DATA[:10])
    assert s.next_chunk(100) == (0, DATA[:10], False)
    s.finish()
    assert s.has_pending()
    assert s.next_chunk(100) == (10, b"", True)
    assert s.fin_sent
    assert not s.has_pending()
    assert s.next_chunk(100) is None


def test_send_empty_stream_fin() -> None:
    s = SendStream(credit=0)
    s.finish()
    assert s.has_pending()
    assert s.next_chunk(100) == (0, b"", True)
    s.on_acked(0, 0, True)
    assert s.fin_acked
    assert s.done


def test_send_fin_waits_for_credit() -> None:
    s = SendStream(credit=5)
    s.write(DATA[:10])
    s.finish()
    assert s.next_chunk(100) == (0, DATA[:5], False)
    assert not s.has_pending()  # FIN cannot overtake the blocked data
    assert s.next_chunk(100) is None
    assert not s.fin_sent
    s.credit = 10
    assert s.next_chunk(100) == (5, DATA[5:10], True)


def test_send_write_after_finish_or_reset_raises() -> None:
    s = SendStream(credit=100)
    s.finish()
    with pytest.raises(ValueError, match="finished"):
        s.write(b"x")
    r = SendStream(credit=100)
    r.reset(3)
    with pytest.raises(ValueError, match="finished"):
        r.write(b"x")


def test_send_done_needs_data_and_fin_acked() -> None:
    s = SendStream(credit=1000)
    s.write(DATA[:20])
    s.finish()
    (chunk,) = _drain(s)
    assert chunk == (0, DATA[:20], True)
    assert not s.done
    s.on_acked(0, 10, False)
    assert not s.done
    s.on_acked(10, 10, True)
    assert s.fin_acked
    assert s.buffered == 0
    assert s.done


def test_send_bare_fin_acked_before_data() -> None:
    s = SendStream(credit=1000)
    s.write(DATA[:20])
    _drain(s)
    s.finish()
    assert s.next_chunk(100) == (20, b"", True)
    s.on_acked(20, 0, True)
    assert s.fin_acked
    assert not s.done  # data still unacknowledged
    s.on_acked(0, 20, False)
    assert s.done


def test_send_acks_free_memory_in_order() -> None:
    s = SendStream(credit=1000)
    s.write(DATA[:300])
    _drain(s, 100)
    s.on_acked(0, 100, False)
    assert s.buffered == 200
    s.on_acked(100, 100, False)
    assert s.buffered == 100
    s.on_acked(0, 100, False)  # duplicate ack of freed data
    assert s.buffered == 100
    s.on_acked(200, 100, False)
    assert s.buffered == 0


def test_send_acks_out_of_order() -> None:
    s = SendStream(credit=1000)
    s.write(DATA[:400])
    _drain(s, 100)
    s.on_acked(200, 100, False)
    s.on_acked(100, 100, False)
    assert s.buffered == 400  # offset 0 still unacknowledged
    s.on_acked(0, 100, False)
    assert s.buffered == 100  # base jumps over the merged [0, 300)
    s.on_acked(350, 50, False)
    assert s.buffered == 100
    s.on_acked(300, 50, False)
    assert s.buffered == 0
    # Later writes continue from the right offset and buffer position.
    s.write(DATA[400:450])
    assert s.next_chunk(100) == (400, DATA[400:450], False)


def test_send_on_lost_requeues_only_unacked() -> None:
    s = SendStream(credit=1000)
    s.write(DATA[:300])
    _drain(s, 100)
    s.on_acked(100, 100, False)
    s.on_lost(0, 300, False)  # say one frame covered everything
    assert _drain(s) == [(0, DATA[:100], False), (200, DATA[200:300], False)]


def test_send_on_lost_below_base() -> None:
    s = SendStream(credit=1000)
    s.write(DATA[:200])
    _drain(s, 200)
    s.on_acked(0, 150, False)
    s.on_lost(0, 200, False)
    assert _drain(s) == [(150, DATA[150:200], False)]
    s.on_lost(0, 100, False)  # entirely acknowledged already
    assert not s.has_pending()


def test_send_lost_fin_chunk_is_resent_with_fin() -> None:
    s = SendStream(credit=1000)
    s.write(DATA[:50])
    s.finish()
    assert _drain(s) == [(0, DATA[:50], True)]
    s.on_lost(0, 50, True)
    assert not s.fin_sent
    assert s.has_pending()
    assert _drain(s) == [(0, DATA[:50], True)]
    assert s.fin_sent


def test_send_lost_bare_fin_is_resent() -> None:
    s = SendStream(credit=1000)
    s.write(DATA[:50])
    _drain(s)
    s.finish()
    assert _drain(s) == [(50, b"", True)]
    s.on_lost(50, 0, True)
    assert _drain(s) == [(50, b"", True)]
    s.on_acked(50, 0, True)
    s.on_lost(50, 0, True)  # a late loss of an older copy: the FIN is acknowledged
    assert s.fin_sent
    assert _drain(s) == []


def test_send_pending_not_straddling_acked_base() -> None:
    # Two frames lost, then a probe copy of the first acknowledged: only the second frame's
    # bytes are still owed, and they must go out at their own offset.
    s = SendStream(credit=1000)
    s.write(DATA[:100])
    assert s.next_chunk(50) == (0, DATA[:50], False)
    assert s.next_chunk(50) == (50, DATA[50:100], False)
    s.on_lost(0, 50, False)
    s.on_lost(50, 50, False)
    s.on_acked(0, 50, False)  # the probe carrying [0, 50) arrived
    assert s.buffered == 50
    assert _drain(s) == [(50, DATA[50:100], False)]


def test_send_acked_data_not_resent() -> None:
    s = SendStream(credit=1000)
    s.write(DATA[:300])
    _drain(s, 100)
    s.on_lost(0, 300, False)
    s.on_acked(100, 100, False)  # a copy of the middle arrived after the loss was declared
    assert _drain(s) == [(0, DATA[:100], False), (200, DATA[200:300], False)]


def test_send_reset_clears() -> None:
    s = SendStream(credit=1000)
    s.write(DATA[:100])
    s.finish()
    s.next_chunk(10)
    s.reset(7)
    assert s.reset_code == 7
    assert s.buffered == 0
    assert s.done
    assert not s.has_pending()
    assert s.next_chunk(100) is None
    s.on_lost(0, 10, True)
    assert not s.has_pending()
    assert s.next_chunk(100) is None


# -- ReceiveStream -----------------------------------------------------------------------------


def test_receive_in_order() -> None:
    r = ReceiveStream(1000)
    assert r.receive(0, DATA[:3], False) == (DATA[:3], 3)
    assert r.receive(3, DATA[3:5], False) == (DATA[3:5], 2)
    assert r.delivered == 5
    assert r.highest == 5
    assert not r.finished


def test_receive_out_of_order_held_then_delivered() -> None:
    r = ReceiveStream(1000)
    assert r.receive(10, DATA[10:15], False) == (b"", 15)
    assert r.receive(5, DATA[5:10], False) == (b"", 0)
    assert r.delivered == 0
    assert r.receive(0, DATA[:5], False) == (DATA[:15], 0)
    assert r.delivered == 15


def test_receive_overlaps_and_duplicates() -> None:
    r = ReceiveStream(1000)
    assert r.receive(0, DATA[:4], False) == (DATA[:4], 4)
    assert r.receive(2, DATA[2:6], False) == (DATA[4:6], 2)  # overlaps the delivered part
    assert r.receive(0, DATA[:6], False) == (b"", 0)  # duplicate
    assert r.receive(3, DATA[3:5], False) == (b"", 0)  # inside delivered data
    # Out-of-order overlaps.
    assert r.receive(10, DATA[10:14], False) == (b"", 8)
    assert r.receive(8, DATA[8:13], False) == (b"", 0)
    assert r.receive(10, DATA[10:12], False) == (b"", 0)  # shorter duplicate: the longer kept
    assert r.receive(6, DATA[6:9], False) == (DATA[6:14], 0)


def test_receive_overlapping_held_chunks_keep_the_longest() -> None:
    # Two held chunks both start below the delivered offset once the gap fills; the longer one
    # must not be replaced by the shorter when both are trimmed to the same start.
    r = ReceiveStream(1000)
    r.receive(5, DATA[5:25], False)
    r.receive(8, DATA[8:13], False)
    assert r.receive(0, DATA[:10], False) == (DATA[:25], 0)
    r2 = ReceiveStream(1000)
    r2.receive(8, DATA[8:13], False)
    r2.receive(5, DATA[5:25], False)
    assert r2.receive(0, DATA[:10], False) == (DATA[:25], 0)


def test_receive_held_chunk_fully_below_delivered_dropped() -> None:
    r = ReceiveStream(1000)
    r.receive(5, DATA[5:8], False)
    r.receive(20, DATA[20:22], False)
    assert r.receive(0, DATA[:10], False) == (DATA[:10], 0)
    assert r.receive(10, DATA[10:20], False) == (DATA[10:22], 0)


def test_receive_overlapping_chunks_are_stored_once_within_the_window() -> None:
    # 3-byte chunks at every odd offset overlap their neighbours by one byte: the held bytes are
    # the union (each offset once), the buffer never exceeds the window, and the 1-byte chunk
    # that fills the gap at 0 delivers everything in one piece.
    window = 4096
    data = bytes(range(256)) * (window // 256)
    r = ReceiveStream(window)
    end = 0  # the highest offset received
    for offset in range(1, window - 2, 2):
        assert r.receive(offset, data[offset : offset + 3], False) == (b"", offset + 3 - end)
        end = offset + 3
        assert r.held_bytes <= window
    assert end == window  # the last chunk ends at the credit
    assert r.buffered_ahead == end - 1
    assert r.fragments == 1
    got, _ = r.receive(0, data[:1], False)
    assert got == data[:end]
    assert r.buffered_ahead == 0
    assert r.held_bytes == 0


def test_receive_disjoint_fragments_are_counted() -> None:
    r = ReceiveStream(100)
    for offset in (10, 20, 30):
        r.receive(offset, DATA[offset : offset + 2], False)
    assert r.fragments == 3
    assert r.buffered_ahead == 6
    r.receive(0, DATA[:10], False)
    assert r.fragments == 2
    assert r.delivered == 12


def test_receive_empty_chunks() -> None:
    r = ReceiveStream(1000)
    assert r.receive(5, b"", False) == (b"", 5)
    assert r.receive(0, DATA[:5], False) == (DATA[:5], 0)
    assert r.receive(0, b"", False) == (b"", 0)


def test_receive_beyond_credit_raises() -> None:
    r = ReceiveStream(100)
    with pytest.raises(FlowControlError, match="credit"):
        r.receive(0, DATA[:101], False)
    with pytest.raises(FlowControlError, match="credit"):
        r.receive(100, b"x", False)
    assert r.receive(99, b"x", False) == (b"", 100)
    assert r.delivered == 0
    assert r.highest == 100


def test_receive_final_size_rules() -> None:
    r = ReceiveStream(1000)
    assert r.receive(0, DATA[:3], True) == (DATA[:3], 3)
    assert r.final_size == 3
    assert r.finished
    assert r.receive(3, b"", True) == (b"", 0)  # the same final size again
    assert r.receive(0, DATA[:3], True) == (b"", 0)
    with pytest.raises(FlowControlError, match="final size changed"):
        r.receive(0, DATA[:2], True)
    with pytest.raises(FlowControlError, match="beyond its final size"):
        r.receive(0, DATA[:4], False)
    with pytest.raises(FlowControlError, match="beyond its final size"):
        r.receive(3, b"x", False)


def test_receive_final_size_below_received_raises() -> None:
    r = ReceiveStream(1000)
    r.receive(10, DATA[10:20], False)
    with pytest.raises(FlowControlError, match="below data already received"):
        r.receive(0, DATA[:5], True)
    assert r.final_size is None


def test_receive_fin_before_data() -> None:
    r = ReceiveStream(1000)
    assert r.receive(5, DATA[5:10], True) == (b"", 10)
    assert r.final_size == 10
    assert not r.finished
    assert r.receive(0, DATA[:5], False) == (DATA[:10], 0)
    assert r.finished


def test_receive_after_reset_delivers_nothing() -> None:
    r = ReceiveStream(1000)
    r.reset_code = 9
    assert r.receive(0, DATA[:10], False) == (b"", 10)
    assert r.delivered == 0


def test_consume_announces_credit_after_half_a_window() -> None:
    r = ReceiveStream(100)
    assert r.consume(49) is None
    assert r.credit == 100
    assert r.consume(1) == 150  # 50 consumed: 50 + 100 - 100 >= 50
    assert r.credit == 150
    assert r.consume(49) is None
    assert r.consume(1) == 200
    r.receive(0, DATA[:10], True)
    assert r.consume(500) is None  # final size known: no more credit
    assert r.credit == 200


# -- Properties --------------------------------------------------------------------------------


@st.composite
def _chunked(draw: st.DrawFn) -> tuple[bytes, list[tuple[int, int]]]:
    """A byte string and chunks covering it: random (overlapping) spans, the gaps between them
    filled in, an empty chunk at the end, a few exact duplicates, all in random order."""
    n = draw(st.integers(0, 48) | st.integers(0, 200))
    data = draw(st.binary(min_size=n, max_size=n))
    spans = draw(
        st.lists(st.tuples(st.integers(0, n), st.integers(0, 16) | st.integers(0, n)), max_size=24)
    )
    chunks = [(a, min(a + length, n)) for a, length in spans]
    covered = bytearray(n)
    for a, b in chunks:
        covered[a:b] = b"\x01" * (b - a)
    gaps: list[tuple[int, int]] = []
    i = 0
    while i < n:
        if covered[i]:
            i += 1
            continue
        j = i
        while j < n and not covered[j]:
            j += 1
        cut = draw(st.integers(i, j)) if draw(st.booleans()) else j  # sometimes two pieces
        gaps += [(i, cut), (cut, j)] if i < cut < j else [(i, j)]
        i = j
    chunks += [*gaps, (n, n)]  # an empty chunk at the end: a bare FIN when fin is set
    chunks += draw(st.lists(st.sampled_from(chunks), max_size=4))  # exact duplicates
    order = draw(st.permutations(chunks))
    return data, order


@settings(max_examples=scaled(2), deadline=None)
@given(_chunked(), st.booleans())
def test_receive_reassembles_exactly_once(
    case: tuple[bytes, list[tuple[int, int]]], with_fin: bool
) -> None:
    data, chunks = case
    r = ReceiveStream(len(data) + 1)
    out = bytearray()
    for start, end in chunks:
        fin = with_fin and end == len(data)
        got, _ = r.receive(start, data[start:end], fin)
        out += got
        assert bytes(out) == data[: len(out)]
    assert bytes(out) == data
    assert r.delivered == len(data)
    assert r.highest == len(data)
    assert r.finished is with_fin
    assert r.buffered_ahead == 0
    assert r.fragments == 0


@settings(deadline=None)
@given(
    st.lists(st.binary(min_size=1, max_size=120), min_size=0, max_size=6),
    st.integers(8, 200),
    st.integers(0, 2**32),
)
def test_send_receive_round_trip(writes: list[bytes], window: int, seed: int) -> None:
    rnd = random.Random(seed)
    data = b"".join(writes)
    send = SendStream(credit=window)
    recv = ReceiveStream(window)
    out = bytearray()
    in_flight: list[tuple[int, bytes, bool]] = []
    pending_writes = list(writes)

    def deliver(offset: int, chunk: bytes, fin: bool) -> None:
        got, _ = recv.receive(offset, chunk, fin)
        out.extend(got)
        credit = recv.consume(len(got)) if got else None
        if credit is not None:
            send.credit = max(send.credit, credit)

    for _ in range(10_000):
        if send.done and not in_flight:
            break
        if pending_writes and rnd.random() < 0.3:
            send.write(pending_writes.pop(0))
            if not pending_writes:
                send.finish()
            continue
        if not pending_writes and not send.fin:
            send.finish()
        roll = rnd.random()
        if roll < 0.4 or not in_flight:
            chunk = send.next_chunk(rnd.randint(1, 64))
            if chunk is not None:
                in_flight.append(chunk)
            elif not in_flight and not pending_writes:
                pytest.fail(f"stalled: nothing to send, nothing in flight ({send.done=})")
            continue
        offset, piece, fin = in_flight.pop(rnd.randrange(len(in_flight)))
        fate = rnd.random()
        if fate < 0.5:  # delivered and acknowledged
            deliver(offset, piece, fin)
            send.on_acked(offset, len(piece), fin)
        elif fate < 0.7:  # lost
            send.on_lost(offset, len(piece), fin)
        elif fate < 0.8:  # delivered, the ack lost: declared lost anyway
            deliver(offset, piece, fin)
            send.on_lost(offset, len(piece), fin)
        elif fate < 0.9:  # a probe copy goes out too; this one stays in flight
            in_flight.append((offset, piece, fin))
            in_flight.append((offset, piece, fin))
        else:  # delivered twice, acknowledged once
            deliver(offset, piece, fin)
            deliver(offset, piece, fin)
            send.on_acked(offset, len(piece), fin)
    else:
        pytest.fail("did not finish")
    assert bytes(out) == data
    assert recv.finished
    assert recv.final_size == len(data)
    assert send.buffered == 0


def test_an_empty_frame_ahead_holds_no_memory() -> None:
    r = ReceiveStream(65_536)
    assert r.receive(60_000, b"", False) == (b"", 60_000)  # counts for flow control...
    assert r.held_bytes == 0  # ...but reserves nothing
    assert r.fragments == 0
    assert r.receive(0, b"abc", False) == (b"abc", 0)
    assert r.held_bytes == 0


@settings(deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 40), st.integers(1, 20), st.booleans()), max_size=30),
)
def test_send_acks_in_any_order_free_exactly_the_acknowledged_prefix(
    acks: list[tuple[int, int, bool]],
) -> None:
    # The in-order fast path of on_acked and the range-set path agree: the buffer always
    # starts at the lowest offset not yet acknowledged, and an acknowledged range is never
    # sent again.
    stream = SendStream(1000)
    stream.write(bytes(range(60)))
    acked: set[int] = set()
    for offset, length, lost_first in acks:
        if lost_first:
            stream.on_lost(offset, length, False)
        stream.on_acked(offset, length, False)
        acked.update(range(offset, offset + length))
        base = next(i for i in range(61) if i not in acked)
        assert stream.buffered == max(60 - base, 0)
    sent: set[int] = set()
    while (chunk := stream.next_chunk(7)) is not None:
        offset, data, _ = chunk
        sent.update(range(offset, offset + len(data)))
    assert not sent & acked


@pytest.mark.parametrize("size", [0, 1, 100, 8191, 8192, 65536])
def test_copy_out_is_a_slice_as_bytes_and_leaves_the_buffer_resizable(size: int) -> None:
    buffer = bytearray(os.urandom(size + 20))
    for start, end in ((0, size), (10, size + 10), (5, size + 1000), (size + 30, size + 40)):
        copied = copy_out(buffer, start, end)
        assert type(copied) is bytes
        assert copied == bytes(buffer[start:end])  # clamped like a slice
    del buffer[: size // 2]  # no view of it is left (BufferError otherwise)
    buffer += b"more"


_LARGE_PIECES = st.tuples(st.integers(1000, 3000), st.integers(0, 255)).map(
    lambda t: bytes(range(t[1], 256)) + bytes([t[1]]) * t[0]
)


@settings(max_examples=scaled(2), deadline=None)
@given(
    pieces=st.lists(st.binary(max_size=300) | _LARGE_PIECES, max_size=12),
    takes=st.lists(st.integers(min_value=0, max_value=7000), max_size=12),
)
def test_read_queue_hands_out_the_bytes_in_order_whatever_the_cuts(
    pieces: list[bytes], takes: list[int]
) -> None:
    # A model: one bytes string cut at the same places. Pieces small (gathered into a
    # bytearray) and large (queued as they are), mixed.
    queue = ReadQueue()
    model = b""
    for piece in pieces:
        queue.append(piece)
        model += piece
    assert len(queue) == len(model)
    assert bool(queue) == bool(model)
    for n in takes:
        taken = queue.take(n)
        assert type(taken) is bytes
        assert taken == model[:n]
        model = model[n:]
        assert len(queue) == len(model)
    assert queue.take(len(model) + 1) == model
    assert not queue
    assert queue.take(5) == b""


def test_read_queue_hands_a_whole_piece_over_without_a_copy() -> None:
    queue = ReadQueue()
    piece = bytes(range(200)) * 100
    queue.append(piece)
    queue.append(b"tail")
    assert queue.take(len(piece)) is piece
    assert queue.take(100) == b"tail"


def test_read_queue_keeps_no_empty_pieces() -> None:
    queue = ReadQueue()
    queue.append(b"")
    assert not queue
    assert queue.find(b"x") == -1


@settings(max_examples=scaled(1), deadline=None)
@given(
    pieces=st.lists(st.text(alphabet="ab\n", min_size=1, max_size=40).map(str.encode), max_size=8),
    taken=st.integers(min_value=0, max_value=30),
    start=st.integers(min_value=0, max_value=60),
)
def test_read_queue_finds_a_separator_across_pieces(
    pieces: list[bytes], taken: int, start: int
) -> None:
    queue = ReadQueue()
    for piece in pieces:
        queue.append(piece)
    model = b"".join(pieces)
    queue.take(taken)  # a partly taken first piece
    model = model[taken:]
    assert queue.find(b"\n", start) == model.find(b"\n", start)
    assert queue.find(b"ab", start) == model.find(b"ab", start)
    assert queue.take(len(model)) == model  # finding took nothing


def test_read_queue_memory_stays_near_the_bytes_held_however_small_the_pieces() -> None:
    # A peer may send its window in 2-byte STREAM frames: queued one bytes object each, that
    # would hold ~20x the data. Small pieces are gathered instead.
    queue = ReadQueue()
    for i in range(50_000):
        queue.append(bytes((i % 256, (i >> 8) % 256)))
    assert len(queue._pieces) == 1  # one bytearray
    held = sum(sys.getsizeof(piece) for piece in queue._pieces)
    assert held < 1.2 * len(queue)
    assert queue.take(4) == bytes((0, 0, 1, 0))


def test_read_queue_search_gathers_each_byte_once() -> None:
    # readuntil over a line arriving in many pieces: the search gathers into one bytearray
    # that later pieces extend, not a new copy of everything per piece.
    queue = ReadQueue()
    queue.append(b"x" * 2000)  # a large piece, kept as it is
    assert queue.find(b"\n") == -1
    gathered = queue._pieces[0]
    queue.append(b"y" * 3000)
    queue.append(b"z\n")
    assert queue.find(b"\n") == 5001
    assert queue._pieces[0] is gathered  # extended in place
    assert queue.take(5002) == b"x" * 2000 + b"y" * 3000 + b"z\n"


def test_read_queue_does_not_grow_while_a_reader_stays_just_behind() -> None:
    # Small frames keep arriving and the reader always leaves a little: the gathered bytearray
    # must drop what was taken, or it grows with everything that ever arrived.
    queue = ReadQueue()
    model = bytearray()
    for i in range(10_000):
        piece = bytes((i % 251,)) * 100
        queue.append(piece)
        model += piece
        taken = queue.take(99)
        assert taken == model[:99]
        del model[:99]
    assert len(queue) == len(model) == 10_000
    held = sum(sys.getsizeof(piece) for piece in queue._pieces)
    assert held < 2 * len(queue) + 1_000
    assert queue.take(20_000) == model
