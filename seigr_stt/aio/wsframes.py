"""WebSocket frames on a TCP connection: the bytes a message takes, and the record size whose
frame leaves as one TCP burst (``docs/protocol.md`` §12.2, "Record size").

A TCP sender hands the network device at most one segmentation-offload burst at a time: whole
segments of the connection's MSS, at most :data:`~seigr_stt.constants.TCP_BURST_BYTES` in all. A
WebSocket frame a few bytes larger than a burst leaves as a burst and a tiny segment of its own,
and a receiver that had emptied its socket wakes for each. :class:`~seigr_stt.aio.websocket.WSLink`
sizes its records with :func:`burst_record_size` from the connection's :func:`tcp_segment_size`.
"""

from __future__ import annotations

import asyncio
import socket

from seigr_stt.constants import TCP_BURST_BYTES, TLS_MAX_PLAINTEXT_BYTES, TLS_RECORD_OVERHEAD_BYTES

__all__ = ["burst_record_size", "frame_bytes", "tcp_segment_size"]


def frame_bytes(size: int, *, masked: bool, tls: bool) -> int:
    """Bytes a binary WebSocket message of ``size`` bytes takes on the TCP connection: the frame
    header (RFC 6455 §5.2: 2 bytes, 2 or 8 more for the length, 4 more for a client's mask) and,
    under TLS, at most :data:`TLS_RECORD_OVERHEAD_BYTES` per TLS record of up to 16 KiB."""
    framed = size + 2 + (0 if size < 126 else 2 if size < 65536 else 8) + (4 if masked else 0)
    if tls:
        framed += -(-framed // TLS_MAX_PLAINTEXT_BYTES) * TLS_RECORD_OVERHEAD_BYTES
    return framed


def burst_record_size(limit: int, mss: int, *, masked: bool, tls: bool) -> int:
    """The record size to send on a WebSocket connection whose TCP segments carry ``mss`` bytes:
    the largest size up to ``limit`` whose frame fits one segmentation-offload burst (whole
    segments, at most :data:`TCP_BURST_BYTES`), so that each record leaves as one burst instead
    of a burst and a tiny last segment (§12.2, "Record size"). ``limit`` itself when its frame
    fits, when ``mss`` is unknown (0), or when a burst holds fewer than two segments (loopback's
    64 KiB MTU: no segmentation to fit)."""
    if mss <= 0:
        return limit
    burst = TCP_BURST_BYTES // mss * mss
    if burst < 2 * mss:
        return limit
    size = limit
    while (excess := frame_bytes(size, masked=masked, tls=tls) - burst) > 0:
        size -= excess  # the frame grows at least byte for byte with the size: now it fits
    # A shorter length field may have freed a few bytes: take them (at most a TLS overhead).
    while size < limit and frame_bytes(size + 1, masked=masked, tls=tls) <= burst:
        size += 1
    return size


def tcp_segment_size(transport: asyncio.BaseTransport) -> int:
    """The maximum segment size of the TCP connection under ``transport`` (``TCP_MAXSEG``), or 0
    when the platform or the transport does not tell."""
    option = getattr(socket, "TCP_MAXSEG", None)
    sock = transport.get_extra_info("socket")
    if option is None or sock is None:
        return 0
    try:
        return int(sock.getsockopt(socket.IPPROTO_TCP, option))
    except (OSError, TypeError, ValueError):
        return 0
