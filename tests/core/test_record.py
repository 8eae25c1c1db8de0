"""The record layer's wire format (``docs/protocol.md`` §5)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seigr_stt.constants import (
    AEAD_TAG_BYTES,
    INNER_TYPE_FRAMES,
    PACKET_DATA,
    PROTOCOL_VERSION,
    RECORD_HEADER_SIZE,
    RECORD_MIN_SIZE,
    RECORD_PAD_MULTIPLE_BYTES,
)
from seigr_stt.core import crypto
from seigr_stt.core.record import (
    RecordError,
    RecordHeader,
    max_frames_size,
    open_record,
    pack_header,
    parse_header,
    seal_frames,
    seal_record,
)
from tests.profiles import scaled

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
AEAD = crypto.make_aead(KEY)
OTHER_AEAD = crypto.make_aead(OTHER_KEY)
SID = b"\x01\x02\x03\x04\x05\x06\x07\x08"


def sealed(frames: bytes, counter: int = 7, epoch: int = 3, echo: int = 2) -> bytes:
    return seal_record(AEAD, pack_header(epoch, echo, SID, counter), counter, frames)


def test_header_layout() -> None:
    header = pack_header(3, 2, SID, 0x0102030405060708)
    assert len(header) == RECORD_HEADER_SIZE == 20
    assert header == bytes([PROTOCOL_VERSION, PACKET_DATA, 3, 2]) + SID + bytes(range(1, 9))
    assert pack_header(256 + 5, -1, SID, 0)[2:4] == b"\x05\xff"  # epochs travel mod 256


@pytest.mark.parametrize("size", [*range(0, 40), 100, 1000, 1179])
def test_round_trip_and_padding(size: int) -> None:
    frames = bytes((i * 7 + 1) % 256 for i in range(size))
    record = sealed(frames)
    body = len(record) - RECORD_HEADER_SIZE - AEAD_TAG_BYTES
    assert body % RECORD_PAD_MULTIPLE_BYTES == 0
    assert size + 1 <= body < size + 1 + RECORD_PAD_MULTIPLE_BYTES
    assert parse_header(record) == RecordHeader(3, 2, SID, 7)
    assert open_record(AEAD, record, 7) == frames


def test_plaintext_layout() -> None:
    record = sealed(b"abc")
    plaintext = crypto.aead_decrypt(KEY, 7, record[:20], record[20:])
    assert plaintext == b"abc" + bytes([INNER_TYPE_FRAMES]) + bytes(12)


def test_frames_ending_in_zero_bytes_survive_padding_removal() -> None:
    frames = b"\x04\x03\x00\x00\x00"
    assert open_record(AEAD, sealed(frames), 7) == frames
    assert open_record(AEAD, sealed(bytes(15)), 7) == bytes(15)


def test_minimum_record() -> None:
    record = sealed(b"")
    assert len(record) == RECORD_MIN_SIZE == 52
    assert open_record(AEAD, record, 7) == b""


@pytest.mark.parametrize("limit", [52, 53, 67, 68, 100, 1232, 65536])
def test_max_frames_size_fills_without_overflowing(limit: int) -> None:
    room = max_frames_size(limit)
    assert len(sealed(bytes(room))) <= limit
    assert len(sealed(bytes(room + 1))) > limit


def test_max_frames_size_for_udp() -> None:
    assert max_frames_size(1232) == 1183  # (1232 - 36) rounded down to 16, minus the inner type


@pytest.mark.parametrize(
    "plaintext",
    [b"", bytes(16), b"abc\x02" + bytes(12), b"\x01\x02" + bytes(14), b"\x00" * 31 + b"\x03"],
    ids=["empty", "all-zero", "inner-type-2", "ends-in-2-then-zeros", "inner-type-3"],
)
def test_wrong_inner_type_is_a_record_error(plaintext: bytes) -> None:
    header = pack_header(0, 0, SID, 1)
    record = header + crypto.aead_encrypt(KEY, 1, header, plaintext)
    with pytest.raises(RecordError, match="inner type"):
        open_record(AEAD, record, 1)


@pytest.mark.parametrize("offset", range(RECORD_HEADER_SIZE))
def test_tampered_header_fails_authentication(offset: int) -> None:
    record = bytearray(sealed(b"hello"))
    record[offset] ^= 0x10
    with pytest.raises(crypto.DecryptError):
        open_record(AEAD, bytes(record), 7)


def test_wrong_key_counter_or_body() -> None:
    record = sealed(b"hello")
    with pytest.raises(crypto.DecryptError):
        open_record(OTHER_AEAD, record, 7)
    with pytest.raises(crypto.DecryptError):
        open_record(AEAD, record, 8)
    body_flipped = record[:-1] + bytes([record[-1] ^ 1])
    with pytest.raises(crypto.DecryptError):
        open_record(AEAD, body_flipped, 7)
    with pytest.raises(crypto.DecryptError):
        open_record(AEAD, record[:-16], 7)


@pytest.mark.parametrize(
    ("packet", "match"),
    [
        (b"", "shorter"),
        (bytes(RECORD_MIN_SIZE - 1), "shorter"),
        (bytes([PROTOCOL_VERSION, 5]) + bytes(RECORD_MIN_SIZE + 1 - 2), "padded"),
        (bytes([PROTOCOL_VERSION, 5]) + bytes(RECORD_MIN_SIZE + 15 - 2), "padded"),
        (bytes([3, 5]) + bytes(RECORD_MIN_SIZE - 2), "version"),
        (bytes([0, 5]) + bytes(RECORD_MIN_SIZE - 2), "version"),
        (bytes([PROTOCOL_VERSION, 1]) + bytes(RECORD_MIN_SIZE - 2), "not a data record"),
        (bytes([PROTOCOL_VERSION, 6]) + bytes(RECORD_MIN_SIZE - 2), "not a data record"),
    ],
)
def test_parse_header_rejects(packet: bytes, match: str) -> None:
    with pytest.raises(RecordError, match=match):
        parse_header(packet)


def test_parse_header_reads_every_field() -> None:
    record = seal_record(AEAD, pack_header(255, 254, SID, (1 << 64) - 1), 0, b"")
    assert parse_header(record) == RecordHeader(255, 254, SID, (1 << 64) - 1)
    assert struct.unpack(">Q", record[12:20])[0] == (1 << 64) - 1


def test_record_error_is_a_value_error() -> None:
    assert issubclass(RecordError, ValueError)


@settings(max_examples=scaled(2), deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_record_error(data: bytes) -> None:
    try:
        header = parse_header(data)
    except RecordError:
        return
    assert len(data) >= RECORD_MIN_SIZE
    assert pack_header(*header) == data[:RECORD_HEADER_SIZE]


@settings(deadline=None)
@given(
    st.binary(max_size=1500),
    st.integers(min_value=0, max_value=255),
    st.integers(min_value=0, max_value=255),
    st.integers(min_value=0, max_value=(1 << 64) - 1),
)
def test_round_trip_any_frames(frames: bytes, epoch: int, echo: int, counter: int) -> None:
    header = pack_header(epoch, echo, SID, counter)
    record = seal_record(AEAD, header, counter, frames)
    assert parse_header(record) == RecordHeader(epoch, echo, SID, counter)
    assert open_record(AEAD, record, counter) == frames


@pytest.mark.parametrize("pad_to", [1232, 1233, 1400, 1452, 8192])
def test_pad_to_fills_the_record_without_exceeding_it(pad_to: int) -> None:
    # A path-MTU probe (§12.1) must be as large as the size it tests allows, and no larger.
    record = seal_record(AEAD, pack_header(0, 0, SID, 3), 3, b"\x01", pad_to)
    assert pad_to - RECORD_PAD_MULTIPLE_BYTES < len(record) <= pad_to
    assert (len(record) - RECORD_HEADER_SIZE - AEAD_TAG_BYTES) % RECORD_PAD_MULTIPLE_BYTES == 0
    assert open_record(AEAD, record, 3) == b"\x01"


def test_pad_to_below_the_natural_size_changes_nothing() -> None:
    header = pack_header(0, 0, SID, 3)
    assert seal_record(AEAD, header, 3, bytes(100), 60) == seal_record(AEAD, header, 3, bytes(100))


@settings(max_examples=scaled(0.3), deadline=None)
@given(st.binary(max_size=1400), st.integers(0, 1452))
def test_seal_frames_pads_in_place_and_seals_as_seal_record(frames: bytes, pad_to: int) -> None:
    header = pack_header(1, 0, SID, 9)
    expected = seal_record(AEAD, header, 9, frames, pad_to)
    for aead in (crypto.NaclAead(KEY), crypto.PycaAead(KEY)):
        assert seal_frames(aead, header, 9, bytearray(frames), pad_to) == expected
    assert open_record(AEAD, expected, 9) == frames
