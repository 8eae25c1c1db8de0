"""The record layer's wire format (``docs/protocol.md`` §5).

A record is ``header (20 bytes) || AEAD(key, counter, ad=header, plaintext)`` with::

    offset size field
    0      1    version         PROTOCOL_VERSION
    1      1    type            PACKET_DATA
    2      1    epoch           sender's key epoch (mod 256)
    3      1    echoed epoch    epoch of the last record the sender authenticated from us
    4      8    session id      initiator index || responder index
    12     8    counter         64-bit big-endian; the AEAD nonce is 0x00000000 || LE64(counter)

The plaintext is ``frames || INNER_TYPE_FRAMES || zero padding`` to a multiple of 16 bytes. This
module only encodes and decodes; which key, which counter and whether to accept is the business of
:mod:`seigr_stt.core.keys` and :mod:`seigr_stt.core.session`.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from seigr_stt.constants import (
    AEAD_TAG_BYTES,
    INNER_TYPE_FRAMES,
    PROTOCOL_VERSION,
    RECORD_HEADER_SIZE,
    RECORD_MIN_SIZE,
    RECORD_PAD_MULTIPLE_BYTES,
    PacketType,
)
from seigr_stt.core import crypto
from seigr_stt.exceptions import RecordError

__all__ = [
    "RecordError",
    "RecordHeader",
    "max_frames_size",
    "open_record",
    "pack_header",
    "parse_header",
    "seal_frames",
    "seal_record",
]

_HEADER = struct.Struct(">BBBB8sQ")
_VERSION = int(PROTOCOL_VERSION)
_DATA = int(PacketType.DATA)
_INNER_TYPE = bytes([INNER_TYPE_FRAMES])
#: What follows the frames: the inner type, then ``i`` zero bytes of padding.
_TRAILERS = tuple(_INNER_TYPE + bytes(i) for i in range(RECORD_PAD_MULTIPLE_BYTES))


class RecordHeader(NamedTuple):
    """The parsed clear header of a record; all of it is authenticated as associated data."""

    epoch: int
    echo: int
    session_id: bytes
    counter: int


def pack_header(epoch: int, echo: int, session_id: bytes, counter: int) -> bytes:
    """Encode a record header (the associated data of the record's AEAD)."""
    return _HEADER.pack(_VERSION, _DATA, epoch & 0xFF, echo & 0xFF, session_id, counter)


def parse_header(packet: bytes) -> RecordHeader:
    """Parse and size-check a record's header. Raises :class:`RecordError` if the packet is too
    short for any valid record, has another version, or is not a data record."""
    if len(packet) < RECORD_MIN_SIZE:
        raise RecordError("record shorter than the minimum")
    if (len(packet) - RECORD_HEADER_SIZE - AEAD_TAG_BYTES) % RECORD_PAD_MULTIPLE_BYTES:
        raise RecordError("record ciphertext is not padded to a 16-byte multiple")
    version, ptype, epoch, echo, session_id, counter = _HEADER.unpack_from(packet)
    if version != PROTOCOL_VERSION:
        raise RecordError("unsupported protocol version")
    if ptype != PacketType.DATA:
        raise RecordError("not a data record")
    return RecordHeader(epoch, echo, session_id, counter)


def max_frames_size(record_size: int) -> int:
    """The largest frames payload that fits a record of at most ``record_size`` bytes."""
    room = record_size - RECORD_HEADER_SIZE - AEAD_TAG_BYTES
    return room - room % RECORD_PAD_MULTIPLE_BYTES - 1


def seal_record(
    aead: crypto.Aead, header: bytes, counter: int, frames: bytes, pad_to: int = 0
) -> bytes:
    """Pad ``frames``, encrypt with ``header`` as associated data, and return the record.

    ``pad_to`` asks for the largest record of at most that many bytes (path-MTU probes, §12.1:
    a probe must not exceed the size it tests); the extra padding is zero bytes like the rest.
    """
    return seal_frames(aead, header, counter, bytearray(frames), pad_to)


def seal_frames(
    aead: crypto.Aead, header: bytes, counter: int, frames: bytearray, pad_to: int = 0
) -> bytes:
    """:func:`seal_record` for frames written into a buffer the caller hands over: the inner
    type and the padding are appended to ``frames`` in place (no copy of the plaintext), and
    the buffer is not to be used again. The record builder's path (one buffer per record)."""
    frames += _TRAILERS[-(len(frames) + 1) % RECORD_PAD_MULTIPLE_BYTES]
    extra = pad_to - (RECORD_HEADER_SIZE + len(frames) + AEAD_TAG_BYTES)
    if extra > 0:
        frames += bytes(extra - extra % RECORD_PAD_MULTIPLE_BYTES)
    return header + aead.encrypt(counter, header, frames)


def open_record(aead: crypto.Aead, packet: bytes, counter: int) -> bytes:
    """Authenticate and decrypt a record, then strip its padding; returns the frames bytes.

    Raises :class:`crypto.DecryptError` if authentication fails and :class:`RecordError` if the
    authenticated plaintext has no valid inner type (a protocol violation by the peer).
    """
    header = packet[:RECORD_HEADER_SIZE]
    plaintext = aead.decrypt(counter, header, packet[RECORD_HEADER_SIZE:])
    stripped = plaintext.rstrip(b"\x00")
    if not stripped or stripped[-1] != INNER_TYPE_FRAMES:
        raise RecordError("invalid inner type")
    return stripped[:-1]
