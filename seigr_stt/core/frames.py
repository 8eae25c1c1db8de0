"""Inner frames carried inside a record's plaintext (``docs/protocol.md`` §6).

Every frame starts with a one-byte type. Integers are QUIC variable-length integers (RFC 9000
§16): the two high bits of the first byte give the length (1, 2, 4 or 8 bytes), values up to
2**62 - 1. :data:`FRAMES` is the one table of frame types (class, size, writer, reader, whether
the peer acknowledges it, whether it is retransmitted); :func:`parse_frames` is the one place
frames are validated, and raises only :class:`FrameError`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from seigr_stt.constants import ACK_RANGES_MAX_ON_WIRE, CLOSE_REASON_MAX_BYTES, FrameType
from seigr_stt.exceptions import FrameError

__all__ = [
    "ACK_ELICITING",
    "FRAMES",
    "RETRANSMITTABLE",
    "VARINT_MAX",
    "Ack",
    "Close",
    "Datagram",
    "Frame",
    "FrameError",
    "FrameSpec",
    "MaxData",
    "MaxStreamData",
    "MaxStreams",
    "Ping",
    "Pong",
    "ResetStream",
    "StopSending",
    "Stream",
    "encode_varint",
    "frame_size",
    "is_ack_eliciting",
    "parse_frames",
    "peek_varint",
    "serialize_frames",
    "varint_size",
]

VARINT_MAX = (1 << 62) - 1


@dataclass(frozen=True, slots=True)
class Ping:
    """Asks the peer for a :class:`Pong` echoing ``token`` (RTT measurement, liveness)."""

    token: int


@dataclass(frozen=True, slots=True)
class Pong:
    """Answers a :class:`Ping`."""

    token: int


@dataclass(frozen=True, slots=True)
class Datagram:
    """An unreliable, unordered application datagram."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Close:
    """Ends the session: ``code`` (§9) and a short UTF-8 ``reason``."""

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Ack:
    """Acknowledges record counters: ``ranges`` are ``(low, high)`` inclusive, newest first,
    disjoint and not adjacent; ``delay`` is the ack delay in microseconds >> 3."""

    delay: int
    ranges: tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class Stream:
    """Bytes ``data`` at ``offset`` of stream ``stream_id``; ``fin`` marks its final byte."""

    stream_id: int
    offset: int
    fin: bool
    data: bytes


@dataclass(frozen=True, slots=True)
class ResetStream:
    """The sender abandons stream ``stream_id`` at ``final_size`` bytes with ``code``."""

    stream_id: int
    code: int
    final_size: int


@dataclass(frozen=True, slots=True)
class StopSending:
    """The receiver of stream ``stream_id`` asks the sender to stop (and reset) with ``code``."""

    stream_id: int
    code: int


@dataclass(frozen=True, slots=True)
class MaxData:
    """Session-level credit: the peer may send stream bytes up to ``maximum`` in total."""

    maximum: int


@dataclass(frozen=True, slots=True)
class MaxStreamData:
    """Stream-level credit: the peer may send stream ``stream_id`` up to offset ``maximum``."""

    stream_id: int
    maximum: int


@dataclass(frozen=True, slots=True)
class MaxStreams:
    """The peer may open byte streams with index below ``maximum``."""

    maximum: int


Frame = (
    Ping
    | Pong
    | Datagram
    | Close
    | Ack
    | Stream
    | ResetStream
    | StopSending
    | MaxData
    | MaxStreamData
    | MaxStreams
)


# -- varints -------------------------------------------------------------------------------------
_VARINT_PREFIX = {1: 0x00, 2: 0x40, 4: 0x80, 8: 0xC0}


def varint_size(value: int) -> int:
    """Bytes needed to encode ``value`` as a QUIC varint."""
    if value < 0x40:
        return 1
    if value < 0x4000:
        return 2
    if value < 0x40000000:
        return 4
    if value <= VARINT_MAX:
        return 8
    raise ValueError("varint out of range")


def encode_varint(value: int) -> bytes:
    """Encode ``0 <= value <= VARINT_MAX``; raises ``ValueError`` otherwise."""
    if value < 0:
        raise ValueError("varint out of range")
    size = varint_size(value)
    raw = value.to_bytes(size, "big")
    return bytes([raw[0] | _VARINT_PREFIX[size]]) + raw[1:]


def peek_varint(buf: bytes | bytearray, pos: int = 0) -> tuple[int, int] | None:
    """Decode the varint at ``pos``: ``(value, end position)``, or None if ``buf`` ends first.

    The one varint decoder of the package (frames, message length prefixes)."""
    if pos >= len(buf):
        return None
    size = 1 << (buf[pos] >> 6)
    end = pos + size
    if end > len(buf):
        return None
    return int.from_bytes(buf[pos:end], "big") & ((1 << (8 * size - 2)) - 1), end


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    decoded = peek_varint(buf, pos)
    if decoded is None:
        raise FrameError("truncated varint")
    return decoded


def _read_bytes(buf: bytes, pos: int) -> tuple[bytes, int]:
    length, pos = _read_varint(buf, pos)
    end = pos + length
    if end > len(buf):
        raise FrameError("frame length exceeds the record")
    return buf[pos:end], end


# -- one entry per frame type: size, write, read ------------------------------------------------
def _size_token(frame: Ping | Pong) -> int:
    return 1 + varint_size(frame.token)


def _size_datagram(frame: Datagram) -> int:
    return 1 + varint_size(len(frame.data)) + len(frame.data)


def _size_close(frame: Close) -> int:
    reason = frame.reason.encode()
    return 1 + varint_size(frame.code) + varint_size(len(reason)) + len(reason)


def _size_ack(frame: Ack) -> int:
    # Arithmetic, not a trial encoding: the ACK is measured on every record built.
    ranges = frame.ranges
    high = ranges[0][1]
    size = 1 + varint_size(high) + varint_size(frame.delay) + varint_size(len(ranges) - 1)
    size += varint_size(high - ranges[0][0])
    previous_low = ranges[0][0]
    for low, high in ranges[1:]:
        size += varint_size(previous_low - high - 2) + varint_size(high - low)
        previous_low = low
    return size


def _size_stream(frame: Stream) -> int:
    n = len(frame.data)
    return 1 + varint_size(frame.stream_id) + varint_size(frame.offset) + 1 + varint_size(n) + n


def _size_reset(frame: ResetStream) -> int:
    return (
        1 + varint_size(frame.stream_id) + varint_size(frame.code) + varint_size(frame.final_size)
    )


def _size_stop(frame: StopSending) -> int:
    return 1 + varint_size(frame.stream_id) + varint_size(frame.code)


def _size_maximum(frame: MaxData | MaxStreams) -> int:
    return 1 + varint_size(frame.maximum)


def _size_max_stream_data(frame: MaxStreamData) -> int:
    return 1 + varint_size(frame.stream_id) + varint_size(frame.maximum)


def _write_ping(out: bytearray, frame: Ping) -> None:
    out.append(FrameType.PING)
    out += encode_varint(frame.token)


def _write_pong(out: bytearray, frame: Pong) -> None:
    out.append(FrameType.PONG)
    out += encode_varint(frame.token)


def _write_datagram(out: bytearray, frame: Datagram) -> None:
    out.append(FrameType.DATAGRAM)
    out += encode_varint(len(frame.data))
    out += frame.data


def _write_close(out: bytearray, frame: Close) -> None:
    reason = frame.reason.encode()
    if len(reason) > CLOSE_REASON_MAX_BYTES:
        raise ValueError(f"close reason longer than {CLOSE_REASON_MAX_BYTES} bytes")
    out.append(FrameType.CLOSE)
    out += encode_varint(frame.code)
    out += encode_varint(len(reason))
    out += reason


def _write_ack(out: bytearray, frame: Ack) -> None:
    """ACK layout (RFC 9000 §19.3 without ECN): largest, delay, range count, first range,
    then (gap, length) per further range."""
    ranges = frame.ranges
    if not ranges or len(ranges) > ACK_RANGES_MAX_ON_WIRE:
        raise ValueError("an ACK carries 1 to 256 ranges")
    low, high = ranges[0]
    if low > high:
        raise ValueError("ACK range low above high")
    out.append(FrameType.ACK)
    out += encode_varint(high)
    out += encode_varint(frame.delay)
    out += encode_varint(len(ranges) - 1)
    out += encode_varint(high - low)
    previous_low = low
    for low, high in ranges[1:]:
        if low > high or high + 2 > previous_low:
            raise ValueError("ACK ranges must be disjoint, newest first, not adjacent")
        out += encode_varint(previous_low - high - 2)
        out += encode_varint(high - low)
        previous_low = low


def _write_stream(out: bytearray, frame: Stream) -> None:
    out.append(FrameType.STREAM)
    out += encode_varint(frame.stream_id)
    out += encode_varint(frame.offset)
    out.append(1 if frame.fin else 0)
    out += encode_varint(len(frame.data))
    out += frame.data


def _write_reset(out: bytearray, frame: ResetStream) -> None:
    out.append(FrameType.RESET_STREAM)
    out += encode_varint(frame.stream_id)
    out += encode_varint(frame.code)
    out += encode_varint(frame.final_size)


def _write_stop(out: bytearray, frame: StopSending) -> None:
    out.append(FrameType.STOP_SENDING)
    out += encode_varint(frame.stream_id)
    out += encode_varint(frame.code)


def _write_max_data(out: bytearray, frame: MaxData) -> None:
    out.append(FrameType.MAX_DATA)
    out += encode_varint(frame.maximum)


def _write_max_stream_data(out: bytearray, frame: MaxStreamData) -> None:
    out.append(FrameType.MAX_STREAM_DATA)
    out += encode_varint(frame.stream_id)
    out += encode_varint(frame.maximum)


def _write_max_streams(out: bytearray, frame: MaxStreams) -> None:
    out.append(FrameType.MAX_STREAMS)
    out += encode_varint(frame.maximum)


def _read_ping(buf: bytes, pos: int) -> tuple[Ping, int]:
    token, pos = _read_varint(buf, pos)
    return Ping(token), pos


def _read_pong(buf: bytes, pos: int) -> tuple[Pong, int]:
    token, pos = _read_varint(buf, pos)
    return Pong(token), pos


def _read_datagram(buf: bytes, pos: int) -> tuple[Datagram, int]:
    data, pos = _read_bytes(buf, pos)
    return Datagram(data), pos


def _read_close(buf: bytes, pos: int) -> tuple[Close, int]:
    code, pos = _read_varint(buf, pos)
    raw, pos = _read_bytes(buf, pos)
    if len(raw) > CLOSE_REASON_MAX_BYTES:
        raise FrameError("close reason too long")
    try:
        reason = raw.decode()
    except UnicodeDecodeError as exc:
        raise FrameError("close reason is not UTF-8") from exc
    return Close(code, reason), pos


def _read_ack(buf: bytes, pos: int) -> tuple[Ack, int]:
    largest, pos = _read_varint(buf, pos)
    delay, pos = _read_varint(buf, pos)
    count, pos = _read_varint(buf, pos)
    if count >= ACK_RANGES_MAX_ON_WIRE:
        raise FrameError("too many ACK ranges")
    first, pos = _read_varint(buf, pos)
    if first > largest:
        raise FrameError("ACK range below zero")
    low = largest - first
    ranges = [(low, largest)]
    for _ in range(count):
        gap, pos = _read_varint(buf, pos)
        length, pos = _read_varint(buf, pos)
        high = low - gap - 2
        if high < 0 or length > high:
            raise FrameError("ACK range below zero")
        low = high - length
        ranges.append((low, high))
    return Ack(delay, tuple(ranges)), pos


def _read_stream(buf: bytes, pos: int) -> tuple[Stream, int]:
    stream_id, pos = _read_varint(buf, pos)
    offset, pos = _read_varint(buf, pos)
    if pos >= len(buf):
        raise FrameError("truncated stream frame")
    flags = buf[pos]
    if flags > 1:
        raise FrameError("unknown stream flags")
    data, pos = _read_bytes(buf, pos + 1)
    if offset + len(data) > VARINT_MAX:
        raise FrameError("stream offset out of range")
    return Stream(stream_id, offset, flags == 1, data), pos


def _read_reset(buf: bytes, pos: int) -> tuple[ResetStream, int]:
    stream_id, pos = _read_varint(buf, pos)
    code, pos = _read_varint(buf, pos)
    final_size, pos = _read_varint(buf, pos)
    return ResetStream(stream_id, code, final_size), pos


def _read_stop(buf: bytes, pos: int) -> tuple[StopSending, int]:
    stream_id, pos = _read_varint(buf, pos)
    code, pos = _read_varint(buf, pos)
    return StopSending(stream_id, code), pos


def _read_max_data(buf: bytes, pos: int) -> tuple[MaxData, int]:
    maximum, pos = _read_varint(buf, pos)
    return MaxData(maximum), pos


def _read_max_stream_data(buf: bytes, pos: int) -> tuple[MaxStreamData, int]:
    stream_id, pos = _read_varint(buf, pos)
    maximum, pos = _read_varint(buf, pos)
    return MaxStreamData(stream_id, maximum), pos


def _read_max_streams(buf: bytes, pos: int) -> tuple[MaxStreams, int]:
    maximum, pos = _read_varint(buf, pos)
    return MaxStreams(maximum), pos


@dataclass(frozen=True, slots=True)
class FrameSpec:
    """How one frame type is sized, written and read, and how the peer treats it (§6, §14):
    an *ack-eliciting* frame makes the record carrying it acknowledged; a *retransmittable*
    frame is sent again (or its current value is) when that record is lost."""

    frame_type: FrameType
    cls: type[Any]
    size: Callable[[Any], int]
    write: Callable[[bytearray, Any], None]
    read: Callable[[bytes, int], tuple[Any, int]]
    ack_eliciting: bool
    retransmittable: bool


#: The frame table, keyed by type byte: the one place a frame type is defined.
FRAMES: dict[FrameType, FrameSpec] = {
    spec.frame_type: spec
    for spec in (
        FrameSpec(FrameType.PING, Ping, _size_token, _write_ping, _read_ping, True, False),
        FrameSpec(FrameType.PONG, Pong, _size_token, _write_pong, _read_pong, False, False),
        FrameSpec(
            FrameType.DATAGRAM,
            Datagram,
            _size_datagram,
            _write_datagram,
            _read_datagram,
            True,
            False,
        ),
        FrameSpec(FrameType.CLOSE, Close, _size_close, _write_close, _read_close, True, False),
        FrameSpec(FrameType.ACK, Ack, _size_ack, _write_ack, _read_ack, False, False),
        FrameSpec(FrameType.STREAM, Stream, _size_stream, _write_stream, _read_stream, True, True),
        FrameSpec(
            FrameType.RESET_STREAM,
            ResetStream,
            _size_reset,
            _write_reset,
            _read_reset,
            True,
            True,
        ),
        FrameSpec(
            FrameType.STOP_SENDING, StopSending, _size_stop, _write_stop, _read_stop, True, True
        ),
        FrameSpec(
            FrameType.MAX_DATA,
            MaxData,
            _size_maximum,
            _write_max_data,
            _read_max_data,
            True,
            True,
        ),
        FrameSpec(
            FrameType.MAX_STREAM_DATA,
            MaxStreamData,
            _size_max_stream_data,
            _write_max_stream_data,
            _read_max_stream_data,
            True,
            True,
        ),
        FrameSpec(
            FrameType.MAX_STREAMS,
            MaxStreams,
            _size_maximum,
            _write_max_streams,
            _read_max_streams,
            True,
            True,
        ),
    )
}
_BY_CLASS: dict[type[Any], FrameSpec] = {spec.cls: spec for spec in FRAMES.values()}
_READERS: dict[int, Callable[[bytes, int], tuple[Any, int]]] = {
    int(t): spec.read for t, spec in FRAMES.items()
}

#: Frame classes whose record the peer acknowledges (§14): all but ACK and PONG.
ACK_ELICITING: frozenset[type[Any]] = frozenset(s.cls for s in FRAMES.values() if s.ack_eliciting)
#: Frame classes sent again (or refreshed) when their record is lost (§14.6).
RETRANSMITTABLE: frozenset[type[Any]] = frozenset(
    s.cls for s in FRAMES.values() if s.retransmittable
)


def frame_size(frame: Frame) -> int:
    """The encoded size of ``frame`` in bytes (to fill records without overflowing them)."""
    return _BY_CLASS[type(frame)].size(frame)


def is_ack_eliciting(frames: list[Frame] | tuple[Frame, ...]) -> bool:
    """Whether a record carrying ``frames`` is acknowledged by the peer (§14)."""
    return any(type(frame) in ACK_ELICITING for frame in frames)


def serialize_frames(frames: list[Frame] | tuple[Frame, ...]) -> bytes:
    """Encode frames back to back. Raises ``ValueError`` for a frame that cannot be encoded."""
    out = bytearray()
    for frame in frames:
        _BY_CLASS[type(frame)].write(out, frame)
    return bytes(out)


def parse_frames(buf: bytes) -> list[Frame]:
    """Decode every frame in ``buf`` (an authenticated plaintext without its padding).

    Raises :class:`FrameError` on an unknown type (never read as another frame), a truncated
    field, unknown flags, or a close reason that is too long or not UTF-8.
    """
    frames: list[Frame] = []
    pos = 0
    end = len(buf)
    readers = _READERS
    while pos < end:
        ftype = buf[pos]
        reader = readers.get(ftype)
        if reader is None:
            raise FrameError(f"unknown frame type 0x{ftype:02x}")
        frame, pos = reader(buf, pos + 1)
        frames.append(frame)
    return frames
