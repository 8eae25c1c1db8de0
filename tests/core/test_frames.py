"""Inner frames (``docs/protocol.md`` §6): encoding, decoding and their one error type."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seigr_stt.constants import (
    ACK_RANGES_MAX_ON_WIRE,
    CLOSE_REASON_MAX_BYTES,
    FRAME_ACK,
    FRAME_CLOSE,
    FRAME_DATAGRAM,
    FRAME_MAX_DATA,
    FRAME_MAX_STREAM_DATA,
    FRAME_MAX_STREAMS,
    FRAME_PING,
    FRAME_PONG,
    FRAME_RATCHET_INIT,
    FRAME_RATCHET_REPLY,
    FRAME_RESET_STREAM,
    FRAME_STOP_SENDING,
    FRAME_STREAM,
    MAX_FRAMES_PER_RECORD,
    RATCHET_PUBLIC_KEY_BYTES,
)
from seigr_stt.core.frames import (
    VARINT_MAX,
    Ack,
    Close,
    Datagram,
    Frame,
    FrameError,
    MaxData,
    MaxStreamData,
    MaxStreams,
    Ping,
    Pong,
    RatchetInit,
    RatchetReply,
    ResetStream,
    StopSending,
    Stream,
    encode_varint,
    frame_size,
    is_ack_eliciting,
    parse_frames,
    peek_varint,
    serialize_frames,
    varint_size,
    write_frame,
)

VARINT_BOUNDARIES = [
    (0, 1),
    (1, 1),
    (0x3F, 1),
    (0x40, 2),
    (0x3FFF, 2),
    (0x4000, 4),
    (0x3FFF_FFFF, 4),
    (0x4000_0000, 8),
    (VARINT_MAX, 8),
]


@pytest.mark.parametrize(("value", "size"), VARINT_BOUNDARIES)
def test_varint_boundaries(value: int, size: int) -> None:
    encoded = encode_varint(value)
    assert len(encoded) == varint_size(value) == size
    assert encoded[0] >> 6 == {1: 0, 2: 1, 4: 2, 8: 3}[size]
    # A varint round-trips through a frame that carries one.
    assert parse_frames(bytes([FRAME_PING]) + encoded) == [Ping(value)]


def test_varint_rfc9000_examples() -> None:
    # RFC 9000 §A.1 sample encodings.
    assert encode_varint(151_288_809_941_952_652) == bytes.fromhex("c2197c5eff14e88c")
    assert encode_varint(494_878_333) == bytes.fromhex("9d7f3e7d")
    assert encode_varint(15_293) == bytes.fromhex("7bbd")
    assert encode_varint(37) == bytes.fromhex("25")
    assert parse_frames(bytes([FRAME_PING]) + bytes.fromhex("4025")) == [Ping(37)]


@pytest.mark.parametrize("value", [-1, VARINT_MAX + 1, 1 << 64])
def test_varint_out_of_range(value: int) -> None:
    with pytest.raises(ValueError, match="out of range"):
        encode_varint(value)
    with pytest.raises(ValueError, match="out of range"):
        serialize_frames([Ping(value)])


ONE_OF_EACH: list[Frame] = [
    Ping(0),
    Pong(VARINT_MAX),
    Datagram(b""),
    Datagram(bytes(range(256)) * 70),
    Close(0, ""),
    Close(4, "péché ✓"),
    Close(VARINT_MAX, "r" * CLOSE_REASON_MAX_BYTES),
    Ack(0, ((0, 0),)),
    Ack(VARINT_MAX, ((100, VARINT_MAX),)),
    Ack(25, ((90, 100), (50, 60), (0, 0))),
    Ack(1, tuple((i * 3, i * 3) for i in range(ACK_RANGES_MAX_ON_WIRE - 1, -1, -1))),
    Stream(0, 0, False, b""),
    Stream(4, 1 << 40, True, b"tail"),
    Stream(VARINT_MAX, 0, False, bytes(2000)),
    Stream(2, 70_000, False, b"\x00middle\x00"),  # a message channel: length-prefixed bytes
    Stream(6, (1 << 62) - 4, True, b"end"),  # the last offsets a stream can reach
    ResetStream(3, 7, 1 << 30),
    StopSending(VARINT_MAX, 0),
    MaxData(1 << 50),
    MaxStreamData(8, 0),
    MaxStreams(256),
    RatchetInit(0, bytes(range(32))),
    RatchetReply(VARINT_MAX, b"\xff" * RATCHET_PUBLIC_KEY_BYTES),
]


@pytest.mark.parametrize("frame", ONE_OF_EACH, ids=repr)
def test_every_frame_type_round_trips(frame: Frame) -> None:
    encoded = serialize_frames([frame])
    assert len(encoded) == frame_size(frame)
    assert parse_frames(encoded) == [frame]


def test_frame_type_bytes() -> None:
    expected: dict[type, int] = {
        Ping: FRAME_PING,
        Pong: FRAME_PONG,
        Datagram: FRAME_DATAGRAM,
        Close: FRAME_CLOSE,
        Ack: FRAME_ACK,
        Stream: FRAME_STREAM,
        ResetStream: FRAME_RESET_STREAM,
        StopSending: FRAME_STOP_SENDING,
        MaxData: FRAME_MAX_DATA,
        MaxStreamData: FRAME_MAX_STREAM_DATA,
        MaxStreams: FRAME_MAX_STREAMS,
        RatchetInit: FRAME_RATCHET_INIT,
        RatchetReply: FRAME_RATCHET_REPLY,
    }
    assert set(expected) == {type(f) for f in ONE_OF_EACH}
    for frame in ONE_OF_EACH:
        assert serialize_frames([frame])[0] == expected[type(frame)]


def test_exact_encodings() -> None:
    assert serialize_frames([Ping(1)]) == b"\x01\x01"
    assert serialize_frames([Datagram(b"z")]) == b"\x04\x01z"
    assert serialize_frames([Close(4, "ok")]) == b"\x05\x04\x02ok"
    # ACK: largest, delay, extra range count, first range length, then (gap, length) pairs.
    assert serialize_frames([Ack(5, ((90, 100), (50, 60)))]) == bytes(
        [FRAME_ACK, 0x40, 100, 5, 1, 10, 28, 10]
    )
    assert serialize_frames([Stream(1, 2, True, b"z")]) == b"\x07\x01\x02\x01\x01z"


def test_several_frames_back_to_back() -> None:
    # One record carries at most one ACK: one list per ACK example, each with every other frame.
    others = [f for f in ONE_OF_EACH if not isinstance(f, Ack)]
    for ack in (f for f in ONE_OF_EACH if isinstance(f, Ack)):
        frames = [*others[:3], ack, *others[3:]]
        encoded = serialize_frames(frames)
        assert len(encoded) == sum(frame_size(f) for f in frames)
        assert parse_frames(encoded) == frames
        assert serialize_frames(tuple(frames)) == encoded


def test_one_ack_and_at_most_max_frames_per_record() -> None:
    ack = serialize_frames([Ack(0, ((0, 0),))])
    with pytest.raises(FrameError, match="more than one ACK"):
        parse_frames(ack + serialize_frames([Ping(1)]) + ack)
    pings = serialize_frames([Ping(1)])
    assert len(parse_frames(pings * MAX_FRAMES_PER_RECORD)) == MAX_FRAMES_PER_RECORD
    with pytest.raises(FrameError, match=f"more than {MAX_FRAMES_PER_RECORD} frames"):
        parse_frames(pings * (MAX_FRAMES_PER_RECORD + 1))


def test_ratchet_frames_exact_encoding() -> None:
    # §7.1: type byte, base epoch as a varint, then the 32-byte X25519 public key verbatim.
    public = bytes(range(32))
    assert serialize_frames([RatchetInit(5, public)]) == b"\x10\x05" + public
    assert serialize_frames([RatchetReply(300, public)]) == b"\x11\x41\x2c" + public
    assert frame_size(RatchetInit(5, public)) == 34
    # Non-minimal base epochs are read like every other varint; trailing frames follow.
    assert parse_frames(b"\x11\x40\x05" + public + b"\x01\x02") == [
        RatchetReply(5, public),
        Ping(2),
    ]


def test_ratchet_frames_are_acknowledged_and_sent_again() -> None:
    # The ratchet relies on the peer acknowledging INIT and REPLY (its delivery handler sends
    # a lost one again), so both must elicit an ACK.
    public = bytes(32)
    assert is_ack_eliciting([RatchetInit(0, public)])
    assert is_ack_eliciting([RatchetReply(0, public)])


def test_empty() -> None:
    assert serialize_frames([]) == b""
    assert parse_frames(b"") == []


def test_non_minimal_varints_are_accepted() -> None:
    assert parse_frames(b"\x01\x40\x05") == [Ping(5)]
    assert parse_frames(b"\x02\xc0\x00\x00\x00\x00\x00\x00\x09") == [Pong(9)]


@pytest.mark.parametrize(
    ("frame", "match"),
    [
        (Close(0, "r" * (CLOSE_REASON_MAX_BYTES + 1)), "reason"),
        (Close(0, "é" * 62), "reason"),  # 124 bytes of UTF-8
        (Ack(0, ()), "ranges"),
        (Ack(0, tuple((i * 3, i * 3) for i in range(ACK_RANGES_MAX_ON_WIRE, -1, -1))), "ranges"),
        (Ack(0, ((5, 4),)), "low above high"),
        (Ack(0, ((10, 20), (5, 9))), "adjacent"),  # touching ranges must be one range
        (Ack(0, ((10, 20), (5, 12))), "adjacent"),  # overlapping
        (Ack(0, ((10, 20), (30, 40))), "adjacent"),  # oldest first
        (Ack(0, ((10, 20), (8, 7))), "disjoint"),
        (RatchetInit(0, bytes(31)), "32 bytes"),
        (RatchetReply(1, bytes(33)), "32 bytes"),
        (RatchetInit(VARINT_MAX + 1, bytes(32)), "range"),
    ],
)
def test_unencodable_frames(frame: Frame, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        serialize_frames([frame])


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"\x00", "unknown frame type"),
        (b"\x7f", "unknown frame type"),
        (b"\xff", "unknown frame type"),
        (b"\x01", "truncated varint"),
        (b"\x01\x40", "truncated varint"),
        (b"\x02\xc0\x00\x00", "truncated varint"),
        (b"\x03\x00\x00\x03\x01a", "unknown frame type 0x03"),  # the retired MESSAGE frame
        (b"\x0d", "unknown frame type"),  # one past the last frame type
        (b"\x04\x02a", "exceeds"),
        (b"\x04", "truncated varint"),
        (b"\x05\x00", "truncated varint"),
        (b"\x05\x00\x40\x7c" + b"r" * 124, "too long"),
        (b"\x05\x00\x02\xff\xfe", "UTF-8"),
        (b"\x01\x01\x99", "unknown frame type"),
        (b"\x07\x00\x00", "truncated stream"),
        (b"\x07\x00\x00\x02\x00", "stream flags"),
        (b"\x07\x00\x00\x00\x05ab", "exceeds"),
        (b"\x07\x00\xff\xff\xff\xff\xff\xff\xff\xff\x00\x01z", "out of range"),
        (b"\x06\x05\x00\x00\x06", "below zero"),  # first range larger than largest
        (b"\x06\x05\x00\x01\x00\x04\x00", "below zero"),  # a gap below zero
        (b"\x06\x09\x00\x01\x00\x00\x08", "below zero"),  # a length below zero
        (b"\x06\x05\x00\x41\x00\x00", "too many"),
        (b"\x06\x05\x00", "truncated varint"),
        (b"\x08\x00\x00", "truncated varint"),
        (b"\x09\x00", "truncated varint"),
        (b"\x0a", "truncated varint"),
        (b"\x0b\x00", "truncated varint"),
        (b"\x0c", "truncated varint"),
        (b"\x10", "truncated varint"),  # RATCHET_INIT without its base epoch
        (b"\x11\x40", "truncated varint"),
        (b"\x10\x00" + bytes(31), "truncated ratchet public key"),
        (b"\x11\x07" + bytes(16), "truncated ratchet public key"),
        (b"\x12" + bytes(33), "unknown frame type 0x12"),  # reserved for the ratchet (§7.1)
        (b"\x0f", "unknown frame type"),
    ],
)
def test_malformed_frames(data: bytes, match: str) -> None:
    with pytest.raises(FrameError, match=match):
        parse_frames(data)


def test_frame_error_is_a_value_error() -> None:
    assert issubclass(FrameError, ValueError)


# -- properties ------------------------------------------------------------------------------
varints = st.integers(min_value=0, max_value=VARINT_MAX)
small_bytes = st.binary(max_size=300)
reasons = st.text(alphabet=st.characters(codec="utf-8"), max_size=CLOSE_REASON_MAX_BYTES).filter(
    lambda r: len(r.encode()) <= CLOSE_REASON_MAX_BYTES
)


@st.composite
def acks(draw: st.DrawFn) -> Ack:
    """Valid ACK frames: ranges newest first, disjoint and not adjacent, all above zero."""
    high = draw(varints)
    ranges: list[tuple[int, int]] = []
    for _ in range(draw(st.integers(min_value=1, max_value=8))):
        if high < 0:
            break
        low = high - draw(st.integers(min_value=0, max_value=min(high, 1000)))
        ranges.append((low, high))
        high = low - 2 - draw(st.integers(min_value=0, max_value=1000))
    return Ack(draw(varints), tuple(ranges))


frames_strategy: st.SearchStrategy[Frame] = st.one_of(
    st.builds(Ping, varints),
    st.builds(Pong, varints),
    st.builds(Datagram, small_bytes),
    st.builds(Close, varints, reasons),
    acks(),
    st.builds(
        Stream,
        varints,
        st.integers(min_value=0, max_value=VARINT_MAX - 300),
        st.booleans(),
        small_bytes,
    ),
    st.builds(ResetStream, varints, varints, varints),
    st.builds(StopSending, varints, varints),
    st.builds(MaxData, varints),
    st.builds(MaxStreamData, varints, varints),
    st.builds(MaxStreams, varints),
    st.builds(RatchetInit, varints, st.binary(min_size=32, max_size=32)),
    st.builds(RatchetReply, varints, st.binary(min_size=32, max_size=32)),
)


@settings(deadline=None)
@given(
    st.lists(frames_strategy, max_size=12).filter(
        lambda frames: sum(isinstance(f, Ack) for f in frames) <= 1
    )
)
def test_round_trip_of_any_frame_list(frames: list[Frame]) -> None:
    encoded = serialize_frames(frames)
    assert len(encoded) == sum(frame_size(f) for f in frames)
    assert parse_frames(encoded) == frames
    # The record builder's path writes the same bytes into one buffer.
    out = bytearray(b"head")
    for frame in frames:
        write_frame(out, frame)
    assert out == b"head" + encoded


@settings(deadline=None)
@given(st.integers(0, VARINT_MAX), st.binary(max_size=3))
def test_peek_varint_reads_every_size_and_refuses_truncation(value: int, before: bytes) -> None:
    encoded = encode_varint(value)
    buf = before + encoded + b"\xff"
    assert peek_varint(buf, len(before)) == (value, len(before) + len(encoded))
    assert peek_varint(bytearray(buf), len(before)) == (value, len(before) + len(encoded))
    assert peek_varint(before + encoded[:-1], len(before)) is None


@settings(deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_raise_only_frame_error(data: bytes) -> None:
    try:
        frames = parse_frames(data)
    except FrameError:
        return
    # Whatever parses re-encodes to something that parses to the same frames.
    assert parse_frames(serialize_frames(frames)) == frames


@settings(deadline=None)
@given(st.lists(frames_strategy, min_size=1, max_size=6), st.data())
def test_truncated_frame_lists_raise_frame_error(frames: list[Frame], data: st.DataObject) -> None:
    encoded = serialize_frames(frames)
    cut = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1))
    try:
        parsed = parse_frames(encoded[:cut])
    except FrameError:
        return
    # A cut exactly between frames parses to a prefix of the list.
    assert parsed == frames[: len(parsed)]
    assert len(serialize_frames(parsed)) == cut


def test_the_parsers_stream_frames_are_ordinary_frozen_frames() -> None:
    from dataclasses import FrozenInstanceError

    from seigr_stt.core.frames import _new_stream

    fast = _new_stream(4, 1 << 40, True, b"data")
    assert fast == Stream(4, 1 << 40, True, b"data")
    assert hash(fast) == hash(Stream(4, 1 << 40, True, b"data"))
    assert repr(fast) == repr(Stream(4, 1 << 40, True, b"data"))
    with pytest.raises(FrozenInstanceError):
        fast.offset = 0  # type: ignore[misc]
