"""Inner frames carried inside a record's plaintext (``docs/protocol.md`` §6).

Every frame starts with a one-byte type. Integers are QUIC variable-length integers (RFC 9000
§16): the two high bits of the first byte give the length (1, 2, 4 or 8 bytes), values up to
2**62 - 1. :func:`parse_frames` is the one place frames are validated; it raises only
:class:`FrameError`.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    FRAME_RESET_STREAM,
    FRAME_STOP_SENDING,
    FRAME_STREAM,
)

__all__ = [
    "ACK_ELICITING",
    "VARINT_MAX",
    "Ack",
    "Close",
    "Datagram",
    "Frame",
    "FrameError",
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
    "parse_frames",
    "serialize_frames",
    "varint_size",
]

VARINT_MAX = (1 << 62) - 1


class FrameError(ValueError):
    """The plaintext of an authenticated record does not parse: a protocol violation."""


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

#: Frames whose loss matters: a record carrying one is acknowledged by the peer (§14).
ACK_ELICITING = (
    Ping,
    Datagram,
    Close,
    Stream,
    ResetStream,
    StopSending,
    MaxData,
    MaxStreamData,
    MaxStreams,
)


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
    prefix = {1: 0x00, 2: 0x40, 4: 0x80, 8: 0xC0}[size]
    raw = value.to_bytes(size, "big")
    return bytes([raw[0] | prefix]) + raw[1:]


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(buf):
        raise FrameError("truncated varint")
    first = buf[pos]
    size = 1 << (first >> 6)
    end = pos + size
    if end > len(buf):
        raise FrameError("truncated varint")
    value = int.from_bytes(buf[pos:end], "big") & ((1 << (8 * size - 2)) - 1)
    return value, end


def _read_bytes(buf: bytes, pos: int) -> tuple[bytes, int]:
    length, pos = _read_varint(buf, pos)
    end = pos + length
    if end > len(buf):
        raise FrameError("frame length exceeds the record")
    return buf[pos:end], end


def frame_size(frame: Frame) -> int:
    """The encoded size of ``frame`` in bytes (to fill records without overflowing them)."""
    if isinstance(frame, Ping | Pong):
        return 1 + varint_size(frame.token)
    if isinstance(frame, Datagram):
        return 1 + varint_size(len(frame.data)) + len(frame.data)
    if isinstance(frame, Stream):
        n = len(frame.data)
        return 1 + varint_size(frame.stream_id) + varint_size(frame.offset) + 1 + varint_size(n) + n
    if isinstance(frame, Ack):
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
    if isinstance(frame, ResetStream):
        return (
            1
            + varint_size(frame.stream_id)
            + varint_size(frame.code)
            + varint_size(frame.final_size)
        )
    if isinstance(frame, StopSending):
        return 1 + varint_size(frame.stream_id) + varint_size(frame.code)
    if isinstance(frame, MaxData | MaxStreams):
        return 1 + varint_size(frame.maximum)
    if isinstance(frame, MaxStreamData):
        return 1 + varint_size(frame.stream_id) + varint_size(frame.maximum)
    reason = frame.reason.encode()
    return 1 + varint_size(frame.code) + varint_size(len(reason)) + len(reason)


def _serialize_ack(frame: Ack) -> bytes:
    """ACK layout (RFC 9000 §19.3 without ECN): largest, delay, range count, first range,
    then (gap, length) per further range."""
    ranges = frame.ranges
    if not ranges or len(ranges) > ACK_RANGES_MAX_ON_WIRE:
        raise ValueError("an ACK carries 1 to 256 ranges")
    low, high = ranges[0]
    if low > high:
        raise ValueError("ACK range low above high")
    out = bytearray([FRAME_ACK])
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
    return bytes(out)


def serialize_frames(frames: list[Frame] | tuple[Frame, ...]) -> bytes:
    """Encode frames back to back. Raises ``ValueError`` for a frame that cannot be encoded."""
    out = bytearray()
    for frame in frames:
        if isinstance(frame, Ping):
            out.append(FRAME_PING)
            out += encode_varint(frame.token)
        elif isinstance(frame, Pong):
            out.append(FRAME_PONG)
            out += encode_varint(frame.token)
        elif isinstance(frame, Datagram):
            out.append(FRAME_DATAGRAM)
            out += encode_varint(len(frame.data))
            out += frame.data
        elif isinstance(frame, Stream):
            out.append(FRAME_STREAM)
            out += encode_varint(frame.stream_id)
            out += encode_varint(frame.offset)
            out.append(1 if frame.fin else 0)
            out += encode_varint(len(frame.data))
            out += frame.data
        elif isinstance(frame, Ack):
            out += _serialize_ack(frame)
        elif isinstance(frame, ResetStream):
            out.append(FRAME_RESET_STREAM)
            out += encode_varint(frame.stream_id)
            out += encode_varint(frame.code)
            out += encode_varint(frame.final_size)
        elif isinstance(frame, StopSending):
            out.append(FRAME_STOP_SENDING)
            out += encode_varint(frame.stream_id)
            out += encode_varint(frame.code)
        elif isinstance(frame, MaxData):
            out.append(FRAME_MAX_DATA)
            out += encode_varint(frame.maximum)
        elif isinstance(frame, MaxStreamData):
            out.append(FRAME_MAX_STREAM_DATA)
            out += encode_varint(frame.stream_id)
            out += encode_varint(frame.maximum)
        elif isinstance(frame, MaxStreams):
            out.append(FRAME_MAX_STREAMS)
            out += encode_varint(frame.maximum)
        else:
            reason = frame.reason.encode()
            if len(reason) > CLOSE_REASON_MAX_BYTES:
                raise ValueError(f"close reason longer than {CLOSE_REASON_MAX_BYTES} bytes")
            out.append(FRAME_CLOSE)
            out += encode_varint(frame.code)
            out += encode_varint(len(reason))
            out += reason
    return bytes(out)


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


def parse_frames(buf: bytes) -> list[Frame]:
    """Decode every frame in ``buf`` (an authenticated plaintext without its padding).

    Raises :class:`FrameError` on an unknown type, a truncated field, unknown flags, or a close
    reason that is too long or not UTF-8.
    """
    frames: list[Frame] = []
    pos = 0
    end = len(buf)
    while pos < end:
        ftype = buf[pos]
        pos += 1
        if ftype == FRAME_STREAM:
            stream_id, pos = _read_varint(buf, pos)
            offset, pos = _read_varint(buf, pos)
            if pos >= end:
                raise FrameError("truncated stream frame")
            flags = buf[pos]
            if flags > 1:
                raise FrameError("unknown stream flags")
            data, pos = _read_bytes(buf, pos + 1)
            if offset + len(data) > VARINT_MAX:
                raise FrameError("stream offset out of range")
            frames.append(Stream(stream_id, offset, flags == 1, data))
        elif ftype == FRAME_ACK:
            ack, pos = _read_ack(buf, pos)
            frames.append(ack)
        elif ftype == FRAME_DATAGRAM:
            data, pos = _read_bytes(buf, pos)
            frames.append(Datagram(data))
        elif ftype == FRAME_RESET_STREAM:
            stream_id, pos = _read_varint(buf, pos)
            code, pos = _read_varint(buf, pos)
            final_size, pos = _read_varint(buf, pos)
            frames.append(ResetStream(stream_id, code, final_size))
        elif ftype == FRAME_STOP_SENDING:
            stream_id, pos = _read_varint(buf, pos)
            code, pos = _read_varint(buf, pos)
            frames.append(StopSending(stream_id, code))
        elif ftype == FRAME_MAX_DATA:
            maximum, pos = _read_varint(buf, pos)
            frames.append(MaxData(maximum))
        elif ftype == FRAME_MAX_STREAM_DATA:
            stream_id, pos = _read_varint(buf, pos)
            maximum, pos = _read_varint(buf, pos)
            frames.append(MaxStreamData(stream_id, maximum))
        elif ftype == FRAME_MAX_STREAMS:
            maximum, pos = _read_varint(buf, pos)
            frames.append(MaxStreams(maximum))
        elif ftype == FRAME_PING:
            token, pos = _read_varint(buf, pos)
            frames.append(Ping(token))
        elif ftype == FRAME_PONG:
            token, pos = _read_varint(buf, pos)
            frames.append(Pong(token))
        elif ftype == FRAME_CLOSE:
            code, pos = _read_varint(buf, pos)
            raw, pos = _read_bytes(buf, pos)
            if len(raw) > CLOSE_REASON_MAX_BYTES:
                raise FrameError("close reason too long")
            try:
                reason = raw.decode()
            except UnicodeDecodeError as exc:
                raise FrameError("close reason is not UTF-8") from exc
            frames.append(Close(code, reason))
        else:
            raise FrameError(f"unknown frame type 0x{ftype:02x}")
    return frames
