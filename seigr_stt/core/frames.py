"""Inner frames carried inside a record's plaintext (``docs/protocol.md`` §6).

Every frame starts with a one-byte type. Integers are QUIC variable-length integers (RFC 9000
§16): the two high bits of the first byte give the length (1, 2, 4 or 8 bytes), values up to
2**62 - 1. :data:`FRAMES` is the one table of frame types (class, size, writer, reader, whether
the peer acknowledges it, whether it is retransmitted); :func:`parse_frames` is the one place
frames are validated, and raises only :class:`FrameError`.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from seigr_stt.constants import (
    ACK_RANGES_MAX_ON_WIRE,
    CLOSE_REASON_MAX_BYTES,
    MAX_FRAMES_PER_RECORD,
    PATHS_MAX_ENTRIES,
    PATHS_URL_MAX_BYTES,
    RATCHET_PUBLIC_KEY_BYTES,
    FrameType,
)
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
    "Paths",
    "Ping",
    "Pong",
    "RatchetInit",
    "RatchetReply",
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
    "write_frame",
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


@dataclass(frozen=True, slots=True)
class RatchetInit:
    """Starts a DH ratchet out of epoch ``base_epoch``: the sender's fresh X25519 public key
    (§7.1). The ephemeral's private half never leaves :mod:`~seigr_stt.core.ratchet`."""

    base_epoch: int
    public: bytes


@dataclass(frozen=True, slots=True)
class RatchetReply:
    """Answers a :class:`RatchetInit` of ``base_epoch`` with the replier's fresh public key."""

    base_epoch: int
    public: bytes


@dataclass(frozen=True, slots=True)
class Paths:
    """The sender's other addresses (§18): UDP ``(ip, port)`` pairs where it may be reached
    directly (as a relay observed them, or its own) and WebSocket URLs it serves. The receiver
    may validate a path to any of them; nothing moves before a path answers (§5.5)."""

    udp: tuple[tuple[str, int], ...] = ()
    websocket: tuple[str, ...] = ()


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
    | RatchetInit
    | RatchetReply
    | Paths
)


# A frozen dataclass's generated __init__ only assigns its fields, each through
# object.__setattr__ (a lookup and a call per field). The parser builds one STREAM frame per
# record received: it fills the slots directly instead (same object; tested equal).
_new_object = object.__new__
_SET_STREAM_ID = Stream.__dict__["stream_id"].__set__
_SET_OFFSET = Stream.__dict__["offset"].__set__
_SET_FIN = Stream.__dict__["fin"].__set__
_SET_DATA = Stream.__dict__["data"].__set__


def _new_stream(stream_id: int, offset: int, fin: bool, data: bytes) -> Stream:
    """``Stream(stream_id, offset, fin, data)``, faster (see above)."""
    frame: Stream = _new_object(Stream)
    _SET_STREAM_ID(frame, stream_id)
    _SET_OFFSET(frame, offset)
    _SET_FIN(frame, fin)
    _SET_DATA(frame, data)
    return frame


# -- varints -------------------------------------------------------------------------------------
# Fixed-size big-endian packers with the length prefix or-ed in: one C call per varint, no
# intermediate bytes (the record path encodes ~8 varints per record and decodes as many).
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_PREFIX_2 = 0x4000
_PREFIX_4 = 0x8000_0000
_PREFIX_8 = 0xC000_0000_0000_0000
_MASK_4 = 0x3FFF_FFFF
_MASK_8 = VARINT_MAX


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
    if value < 0x40:
        if value < 0:
            raise ValueError("varint out of range")
        return _U8[value]
    if value < 0x4000:
        return _U16.pack(value | _PREFIX_2)
    if value < 0x40000000:
        return _U32.pack(value | _PREFIX_4)
    if value <= VARINT_MAX:
        return _U64.pack(value | _PREFIX_8)
    raise ValueError("varint out of range")


_U8 = tuple(bytes([i]) for i in range(0x40))


def _append_varint(out: bytearray, value: int) -> None:
    """``out += encode_varint(value)`` without the intermediate bytes for one-byte values."""
    if 0 <= value < 0x40:
        out.append(value)
    else:
        out += encode_varint(value)


def peek_varint(buf: bytes | bytearray, pos: int = 0) -> tuple[int, int] | None:
    """Decode the varint at ``pos``: ``(value, end position)``, or None if ``buf`` ends first.

    The one varint decoder of the package (frames, message length prefixes)."""
    if pos >= len(buf):
        return None
    first = buf[pos]
    prefix = first >> 6
    if prefix == 0:
        return first, pos + 1
    end = pos + (1 << prefix)
    if end > len(buf):
        return None
    if prefix == 1:
        return ((first & 0x3F) << 8) | buf[pos + 1], end
    if prefix == 2:
        return _U32.unpack_from(buf, pos)[0] & _MASK_4, end
    return _U64.unpack_from(buf, pos)[0] & _MASK_8, end


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    # peek_varint, raising: inlined, as the record path reads ~5 varints per record.
    if pos >= len(buf):
        raise FrameError("truncated varint")
    first = buf[pos]
    prefix = first >> 6
    if prefix == 0:
        return first, pos + 1
    end = pos + (1 << prefix)
    if end > len(buf):
        raise FrameError("truncated varint")
    if prefix == 1:
        return ((first & 0x3F) << 8) | buf[pos + 1], end
    if prefix == 2:
        return _U32.unpack_from(buf, pos)[0] & _MASK_4, end
    return _U64.unpack_from(buf, pos)[0] & _MASK_8, end


def _read_bytes(buf: bytes, pos: int) -> tuple[bytes, int]:
    length, pos = _read_varint(buf, pos)
    end = pos + length
    if end > len(buf):
        raise FrameError("frame length exceeds the record")
    return buf[pos:end], end


# -- one entry per frame type: size, write, read ------------------------------------------------
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


_T_DATAGRAM = int(FrameType.DATAGRAM)
_T_CLOSE = int(FrameType.CLOSE)
_T_ACK = int(FrameType.ACK)
_T_STREAM = int(FrameType.STREAM)


def _write_datagram(out: bytearray, frame: Datagram) -> None:
    out.append(_T_DATAGRAM)
    _append_varint(out, len(frame.data))
    out += frame.data


def _write_close(out: bytearray, frame: Close) -> None:
    reason = frame.reason.encode()
    if len(reason) > CLOSE_REASON_MAX_BYTES:
        raise ValueError(f"close reason longer than {CLOSE_REASON_MAX_BYTES} bytes")
    out.append(_T_CLOSE)
    _append_varint(out, frame.code)
    _append_varint(out, len(reason))
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
    out.append(_T_ACK)
    _append_varint(out, high)
    _append_varint(out, frame.delay)
    _append_varint(out, len(ranges) - 1)
    _append_varint(out, high - low)
    previous_low = low
    for low, high in ranges[1:]:
        if low > high or high + 2 > previous_low:
            raise ValueError("ACK ranges must be disjoint, newest first, not adjacent")
        _append_varint(out, previous_low - high - 2)
        _append_varint(out, high - low)
        previous_low = low


def _write_stream(out: bytearray, frame: Stream) -> None:
    out.append(_T_STREAM)
    _append_varint(out, frame.stream_id)
    _append_varint(out, frame.offset)
    out.append(1 if frame.fin else 0)
    _append_varint(out, len(frame.data))
    out += frame.data


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
    return _new_stream(stream_id, offset, flags == 1, data), pos


def _ratchet_frame(frame_type: FrameType, cls: type[Any]) -> FrameSpec:
    """RATCHET_INIT and RATCHET_REPLY: ``base_epoch: varint || public: 32 bytes`` (§6, §7.1)."""

    def size(frame: Any) -> int:
        return 1 + varint_size(frame.base_epoch) + RATCHET_PUBLIC_KEY_BYTES

    def write(out: bytearray, frame: Any) -> None:
        if len(frame.public) != RATCHET_PUBLIC_KEY_BYTES:
            raise ValueError(f"a ratchet public key is {RATCHET_PUBLIC_KEY_BYTES} bytes")
        out.append(frame_type)
        _append_varint(out, frame.base_epoch)
        out += frame.public

    def read(buf: bytes, pos: int) -> tuple[Any, int]:
        base_epoch, pos = _read_varint(buf, pos)
        end = pos + RATCHET_PUBLIC_KEY_BYTES
        if end > len(buf):
            raise FrameError("truncated ratchet public key")
        return cls(base_epoch, bytes(buf[pos:end])), end

    return FrameSpec(frame_type, cls, size, write, read, True, True)


_PATH_IPV4 = 1
_PATH_IPV6 = 2
_PATH_WEBSOCKET = 3


def _paths_entries(frame: Paths) -> list[bytes]:
    entries: list[bytes] = []
    for host, port in frame.udp:
        ip = ipaddress.ip_address(host)  # ValueError for a name: PATHS carries addresses only
        if not 0 < port < 65536:
            raise ValueError(f"a UDP port is within 1..65535, not {port}")
        kind = _PATH_IPV4 if ip.version == 4 else _PATH_IPV6
        entries.append(bytes((kind,)) + ip.packed + port.to_bytes(2, "big"))
    for url in frame.websocket:
        raw = url.encode()
        if not raw or len(raw) > PATHS_URL_MAX_BYTES:
            raise ValueError(f"a WebSocket URL in PATHS is 1..{PATHS_URL_MAX_BYTES} bytes")
        entries.append(bytes((_PATH_WEBSOCKET, len(raw))) + raw)
    if len(entries) > PATHS_MAX_ENTRIES:
        raise ValueError(f"PATHS holds at most {PATHS_MAX_ENTRIES} addresses")
    return entries


def _size_paths(frame: Paths) -> int:
    return 2 + sum(len(e) for e in _paths_entries(frame))


def _write_paths(out: bytearray, frame: Paths) -> None:
    entries = _paths_entries(frame)
    out.append(FrameType.PATHS)
    out.append(len(entries))
    for entry in entries:
        out += entry


def _read_paths(buf: bytes, pos: int) -> tuple[Paths, int]:
    if pos >= len(buf):
        raise FrameError("truncated PATHS frame")
    count = buf[pos]
    pos += 1
    if count > PATHS_MAX_ENTRIES:
        raise FrameError("too many addresses in PATHS")
    udp: list[tuple[str, int]] = []
    websocket: list[str] = []
    for _ in range(count):
        if pos + 2 > len(buf):
            raise FrameError("truncated PATHS entry")
        kind = buf[pos]
        if kind in (_PATH_IPV4, _PATH_IPV6):
            width = 4 if kind == _PATH_IPV4 else 16
            end = pos + 1 + width + 2
            if end > len(buf):
                raise FrameError("truncated PATHS address")
            raw = bytes(buf[pos + 1 : pos + 1 + width])
            port = int.from_bytes(buf[end - 2 : end], "big")
            if port == 0:
                raise FrameError("UDP port 0 in PATHS")
            ip = ipaddress.IPv4Address(raw) if width == 4 else ipaddress.IPv6Address(raw)
            udp.append((str(ip), port))
        elif kind == _PATH_WEBSOCKET:
            length = buf[pos + 1]
            end = pos + 2 + length
            if length == 0 or end > len(buf):
                raise FrameError("truncated PATHS URL")
            try:
                url = bytes(buf[pos + 2 : end]).decode()
            except UnicodeDecodeError as exc:
                raise FrameError("PATHS URL is not UTF-8") from exc
            if not url.startswith(("ws://", "wss://")):
                raise FrameError("PATHS URL is not ws:// or wss://")
            websocket.append(url)
        else:
            raise FrameError(f"unknown PATHS entry kind {kind}")
        pos = end
    return Paths(tuple(udp), tuple(websocket)), pos


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


def _varint_frame(
    frame_type: FrameType, cls: type[Any], names: tuple[str, ...], *, eliciting: bool, again: bool
) -> FrameSpec:
    """The entry of a frame whose fields are all varints, in ``names`` order after the type."""
    getters = [attrgetter(name) for name in names]

    def size(frame: Any) -> int:
        return 1 + sum(varint_size(get(frame)) for get in getters)

    def write(out: bytearray, frame: Any) -> None:
        out.append(frame_type)
        for get in getters:
            _append_varint(out, get(frame))

    def read(buf: bytes, pos: int) -> tuple[Any, int]:
        values = []
        for _ in getters:
            value, pos = _read_varint(buf, pos)
            values.append(value)
        return cls(*values), pos

    return FrameSpec(frame_type, cls, size, write, read, eliciting, again)


#: The frame table, keyed by type byte: the one place a frame type is defined.
FRAMES: dict[FrameType, FrameSpec] = {
    spec.frame_type: spec
    for spec in (
        _varint_frame(FrameType.PING, Ping, ("token",), eliciting=True, again=False),
        _varint_frame(FrameType.PONG, Pong, ("token",), eliciting=False, again=False),
        FrameSpec(
            FrameType.DATAGRAM,
            Datagram,
            _size_datagram,
            _write_datagram,
            _read_datagram,
            ack_eliciting=True,
            retransmittable=False,
        ),
        FrameSpec(
            FrameType.CLOSE,
            Close,
            _size_close,
            _write_close,
            _read_close,
            ack_eliciting=True,
            retransmittable=False,
        ),
        FrameSpec(
            FrameType.ACK,
            Ack,
            _size_ack,
            _write_ack,
            _read_ack,
            ack_eliciting=False,
            retransmittable=False,
        ),
        FrameSpec(
            FrameType.STREAM,
            Stream,
            _size_stream,
            _write_stream,
            _read_stream,
            ack_eliciting=True,
            retransmittable=True,
        ),
        _varint_frame(
            FrameType.RESET_STREAM,
            ResetStream,
            ("stream_id", "code", "final_size"),
            eliciting=True,
            again=True,
        ),
        _varint_frame(
            FrameType.STOP_SENDING, StopSending, ("stream_id", "code"), eliciting=True, again=True
        ),
        _varint_frame(FrameType.MAX_DATA, MaxData, ("maximum",), eliciting=True, again=True),
        _varint_frame(
            FrameType.MAX_STREAM_DATA,
            MaxStreamData,
            ("stream_id", "maximum"),
            eliciting=True,
            again=True,
        ),
        _varint_frame(FrameType.MAX_STREAMS, MaxStreams, ("maximum",), eliciting=True, again=True),
        _ratchet_frame(FrameType.RATCHET_INIT, RatchetInit),
        _ratchet_frame(FrameType.RATCHET_REPLY, RatchetReply),
        FrameSpec(
            FrameType.PATHS,
            Paths,
            _size_paths,
            _write_paths,
            _read_paths,
            ack_eliciting=True,
            retransmittable=True,
        ),
    )
}
_BY_CLASS: dict[type[Any], FrameSpec] = {spec.cls: spec for spec in FRAMES.values()}
_WRITERS: dict[type[Any], Callable[[bytearray, Any], None]] = {
    spec.cls: spec.write for spec in FRAMES.values()
}
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
    # A loop, not any() over a generator: called per record received.
    for frame in frames:  # noqa: SIM110
        if type(frame) in ACK_ELICITING:
            return True
    return False


def serialize_frames(frames: list[Frame] | tuple[Frame, ...]) -> bytes:
    """Encode frames back to back. Raises ``ValueError`` for a frame that cannot be encoded."""
    out = bytearray()
    for frame in frames:
        _WRITERS[type(frame)](out, frame)
    return bytes(out)


def write_frame(out: bytearray, frame: Frame) -> None:
    """Append ``frame``'s encoding to ``out`` (the record builder writes every frame of a
    record into one buffer). Raises ``ValueError`` for a frame that cannot be encoded; ``out``
    may then hold part of it."""
    _WRITERS[type(frame)](out, frame)


def parse_frames(buf: bytes) -> list[Frame]:
    """Decode every frame in ``buf`` (an authenticated plaintext without its padding).

    Raises :class:`FrameError` on an unknown type (never read as another frame), a truncated
    field, unknown flags, a close reason that is too long or not UTF-8, more than
    ``MAX_FRAMES_PER_RECORD`` frames, or more than one ACK frame.
    """
    frames: list[Frame] = []
    pos = 0
    end = len(buf)
    readers = _READERS
    acks = 0
    while pos < end:
        if len(frames) == MAX_FRAMES_PER_RECORD:
            raise FrameError(f"more than {MAX_FRAMES_PER_RECORD} frames in one record")
        ftype = buf[pos]
        reader = readers.get(ftype)
        if reader is None:
            raise FrameError(f"unknown frame type 0x{ftype:02x}")
        if ftype == FrameType.ACK:
            acks += 1
            if acks > 1:
                raise FrameError("more than one ACK frame in one record")
        frame, pos = reader(buf, pos + 1)
        frames.append(frame)
    return frames
