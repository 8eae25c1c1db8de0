"""WebSocket frames on TCP: frame lengths, and record sizes that fit one TCP burst (§12.2)."""

from __future__ import annotations

import asyncio
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode

from seigr_stt.aio.wsframes import burst_record_size, frame_bytes, tcp_segment_size
from seigr_stt.constants import TCP_BURST_BYTES, TLS_MAX_PLAINTEXT_BYTES, TLS_RECORD_OVERHEAD_BYTES
from tests.profiles import scaled


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 65537, 1 << 20])
@pytest.mark.parametrize("masked", [False, True])
def test_frame_bytes_is_the_length_websockets_writes(size: int, masked: bool) -> None:
    frame = Frame(Opcode.BINARY, bytes(size))
    written = frame.serialize(mask=masked, extensions=[])
    assert frame_bytes(size, masked=masked, tls=False) == len(written)


def test_frame_bytes_under_tls_adds_an_overhead_per_tls_record() -> None:
    plain = frame_bytes(65000, masked=False, tls=False)
    records = -(-plain // TLS_MAX_PLAINTEXT_BYTES)
    assert records == 4
    assert frame_bytes(65000, masked=False, tls=True) == plain + 4 * TLS_RECORD_OVERHEAD_BYTES


@pytest.mark.parametrize(
    ("mss", "masked", "tls", "expected"),
    [
        # Ethernet with TCP timestamps (the benchmark's veth path): 45 segments of 1448 bytes.
        (1448, False, False, 65160 - 4),
        (1448, True, False, 65160 - 8),
        (1448, False, True, 65160 - 4 - 4 * TLS_RECORD_OVERHEAD_BYTES),
        (1460, False, False, 44 * 1460 - 4),  # no timestamps
        (8948, True, False, 7 * 8948 - 8),  # jumbo frames
    ],
)
def test_a_record_fills_whole_segments_of_one_burst(
    mss: int, masked: bool, tls: bool, expected: int
) -> None:
    size = burst_record_size(65536, mss, masked=masked, tls=tls)
    assert size == expected
    assert frame_bytes(size, masked=masked, tls=tls) == TCP_BURST_BYTES // mss * mss


@pytest.mark.parametrize("mss", [0, -1, 32741, 65483])
def test_the_configured_size_stays_without_segments_to_fit(mss: int) -> None:
    # Unknown (0), or loopback's MSS: a burst holds fewer than two segments.
    assert burst_record_size(65536, mss, masked=True, tls=False) == 65536


def test_a_record_that_fits_a_burst_keeps_its_size() -> None:
    assert burst_record_size(40000, 1448, masked=True, tls=True) == 40000
    assert burst_record_size(256, 1448, masked=False, tls=False) == 256


@settings(max_examples=scaled(2), deadline=None)
@given(
    limit=st.integers(256, 16 * 1024 * 1024),
    mss=st.integers(48, 32000),
    masked=st.booleans(),
    tls=st.booleans(),
)
def test_the_record_size_is_the_largest_that_fits_one_burst(
    limit: int, mss: int, masked: bool, tls: bool
) -> None:
    size = burst_record_size(limit, mss, masked=masked, tls=tls)
    burst = TCP_BURST_BYTES // mss * mss
    assert 0 < size <= limit
    if burst < 2 * mss:
        assert size == limit
        return
    assert frame_bytes(size, masked=masked, tls=tls) <= burst
    if size < limit:
        assert frame_bytes(size + 1, masked=masked, tls=tls) > burst


async def test_tcp_segment_size_reads_the_connections_mss() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    host, port = server.sockets[0].getsockname()[:2]
    writer = None
    try:
        _, writer = await asyncio.open_connection(host, port)
        sock = writer.get_extra_info("socket")
        expected = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG)
        assert expected > 0
        assert tcp_segment_size(writer.transport) == expected
    finally:
        if writer is not None:
            writer.close()
        server.close()
        await server.wait_closed()


class _NoSocket(asyncio.BaseTransport):
    def get_extra_info(self, name: str, default: object = None) -> object:
        return default


class _FailingSocket:
    def getsockopt(self, level: int, option: int) -> int:
        raise OSError("not a TCP socket")


class _FailingTransport(asyncio.BaseTransport):
    def get_extra_info(self, name: str, default: object = None) -> object:
        return _FailingSocket() if name == "socket" else default


def test_tcp_segment_size_is_0_when_nothing_tells() -> None:
    assert tcp_segment_size(_NoSocket()) == 0
    assert tcp_segment_size(_FailingTransport()) == 0
