"""aioquic workloads (QUIC v1, TLS 1.3 with a self-signed P-256 certificate made at start).

aioquic is optional (``pip install -e '.[bench]'`` in a checkout): when it cannot be imported,
:data:`AVAILABLE` is False and :data:`REASON` says why; the suite then reports these cases as
skipped (``Case.skip_reason``).
aioquic runs with its defaults (1200-byte packets, NewReno), as in docs/performance.md's peers.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
import ssl
import tempfile
import time
from pathlib import Path
from typing import Any

from seigr_stt.bench.common import DONE, END, JSON, Ready, Receiver, measure_rtt, poll_until

try:
    # (the ignores are for type checks run where the optional extra is not installed)
    from aioquic.asyncio.protocol import QuicConnectionProtocol  # type: ignore[import-not-found,unused-ignore]
    from aioquic.asyncio.server import serve  # type: ignore[import-not-found,unused-ignore]
    from aioquic.quic.configuration import QuicConfiguration  # type: ignore[import-not-found,unused-ignore]
    from aioquic.quic.connection import QuicConnection  # type: ignore[import-not-found,unused-ignore]
    from aioquic.quic.events import (  # type: ignore[import-not-found,unused-ignore]
        DatagramFrameReceived,
        QuicEvent,
        StreamDataReceived,
    )
except ImportError as exc:  # pragma: no cover - depends on the installation
    AVAILABLE = False
    REASON = f"aioquic is not installed ({exc}); pip install -e '.[bench]' from a checkout"
else:
    AVAILABLE = True
    REASON = ""

__all__ = [
    "AVAILABLE",
    "REASON",
    "client_bulk",
    "client_datagrams",
    "client_handshakes",
    "client_rtt",
    "server",
]

_HOST = "127.0.0.1"
_ALPN = ["seigr-bench"]
_DATAGRAM_FRAME_MAX = 65536


def _self_signed(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class _State:
    def __init__(self, echo: bool) -> None:
        self.echo = echo
        self.stream = Receiver()
        self.datagrams = Receiver()
        self.connections = 0


if AVAILABLE:

    class _ServerProtocol(QuicConnectionProtocol):  # type: ignore[misc,unused-ignore]
        """Counts stream bytes and datagrams, or echoes stream data; answers DONE to a FIN."""

        def __init__(self, state: _State, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._state = state
            state.connections += 1

        def quic_event_received(self, event: QuicEvent) -> None:
            state = self._state
            if isinstance(event, StreamDataReceived):
                if state.echo:
                    self._quic.send_stream_data(event.stream_id, event.data, event.end_stream)
                    return
                if event.data and event.data[:4] != END:
                    state.stream.add(event.data)
                if event.end_stream:
                    self._quic.send_stream_data(event.stream_id, DONE, end_stream=True)
            elif isinstance(event, DatagramFrameReceived):
                state.datagrams.add(event.data)

    class _ClientProtocol(QuicConnectionProtocol):  # type: ignore[misc,unused-ignore]
        """Queues what arrives on streams."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.replies: asyncio.Queue[bytes] = asyncio.Queue()

        def quic_event_received(self, event: QuicEvent) -> None:
            if isinstance(event, StreamDataReceived) and event.data:
                self.replies.put_nowait(event.data)


async def server(params: JSON, ready: Ready, stop: asyncio.Event) -> JSON:
    """An aioquic server for every workload: ``mode="echo"`` echoes stream data."""
    state = _State(params.get("mode") == "echo")
    with tempfile.TemporaryDirectory(prefix="seigr-bench-") as tmp:
        cert, key = _self_signed(Path(tmp))
        config = QuicConfiguration(
            is_client=False, alpn_protocols=_ALPN, max_datagram_frame_size=_DATAGRAM_FRAME_MAX
        )
        config.load_cert_chain(cert, key)
        quic_server = await serve(
            _HOST,
            0,
            configuration=config,
            create_protocol=functools.partial(_ServerProtocol, state),
        )
    try:
        assert quic_server._transport is not None
        host, port = quic_server._transport.get_extra_info("sockname")[:2]
        ready({"udp": [host, port]})
        await stop.wait()
    finally:
        quic_server.close()
    return {
        "stream": state.stream.result(),
        "datagrams": state.datagrams.result(),
        "connections": state.connections,
    }


class _Client:
    """One aioquic client connection bound to 127.0.0.1 (aioquic's own ``connect`` binds ::)."""

    def __init__(self, transport: asyncio.DatagramTransport, protocol: _ClientProtocol) -> None:
        self.transport = transport
        self.protocol = protocol

    @classmethod
    async def open(cls, info: JSON) -> _Client:
        loop = asyncio.get_running_loop()
        config = QuicConfiguration(
            is_client=True,
            alpn_protocols=_ALPN,
            verify_mode=ssl.CERT_NONE,
            server_name="localhost",
            max_datagram_frame_size=_DATAGRAM_FRAME_MAX,
        )
        connection = QuicConnection(configuration=config)
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: _ClientProtocol(connection), local_addr=(_HOST, 0)
        )
        host, port = info["udp"]
        protocol.connect((str(host), int(port)))
        try:
            # Not wait_for(): it would run wait_connected() as a task one loop turn later, and
            # aioquic forgets a HandshakeCompleted that comes before anyone waits for it.
            async with asyncio.timeout(10.0):
                await protocol.wait_connected()
        except BaseException:
            transport.close()
            raise
        return cls(transport, protocol)

    @property
    def quic(self) -> QuicConnection:
        return self.protocol._quic

    def unacked(self, stream_id: int) -> int:
        """Bytes written to a stream and not yet acknowledged (aioquic has no drain())."""
        stream: Any = self.quic._streams.get(stream_id)
        if stream is None:
            return 0
        sender = stream.sender
        return int(sender._buffer_stop - sender._buffer_start)

    async def close(self) -> None:
        self.protocol.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.protocol.wait_closed(), 0.5)
        self.transport.close()

    async def reply(self, timeout: float) -> bytes:
        return await asyncio.wait_for(self.protocol.replies.get(), timeout)


async def client_handshakes(params: JSON, info: JSON) -> JSON:
    """Sequential QUIC connection setups (TLS 1.3); connections stay open to the end."""
    count, duration = int(params["count"]), float(params["duration_s"])
    opened: list[_Client] = []
    start = time.perf_counter()
    try:
        while len(opened) < count and time.perf_counter() - start < duration:
            opened.append(await _Client.open(info))
        elapsed = time.perf_counter() - start
    finally:
        await asyncio.gather(*(c.close() for c in opened), return_exceptions=True)
    return {"handshakes": len(opened), "elapsed_s": elapsed, "rate": len(opened) / elapsed}


async def client_bulk(params: JSON, info: JSON) -> JSON:
    """One stream written in ``chunk`` pieces with at most 1 MiB unacknowledged."""
    client = await _Client.open(info)
    chunk_size, total, duration = int(params["chunk"]), int(params["bytes"]), params["duration_s"]
    chunk = bytes(chunk_size)
    sent = 0
    finished = False
    try:
        stream_id = client.quic.get_next_available_stream_id()
        start = time.perf_counter()
        while sent < total and time.perf_counter() - start < duration:
            client.quic.send_stream_data(stream_id, chunk)
            client.protocol.transmit()
            sent += chunk_size
            await asyncio.sleep(0)
            await poll_until(lambda: client.unacked(stream_id) <= 1024 * 1024)
        send_s = time.perf_counter() - start
        client.quic.send_stream_data(stream_id, b"", end_stream=True)
        client.protocol.transmit()
        with contextlib.suppress(TimeoutError):
            finished = await client.reply(float(params.get("finish_s", 60.0))) == DONE
    finally:
        await client.close()
    return {"bytes": sent, "send_s": send_s, "finished": finished}


async def client_datagrams(params: JSON, info: JSON) -> JSON:
    """DATAGRAM frames (RFC 9221) of ``size`` bytes as fast as aioquic takes them."""
    client = await _Client.open(info)
    size, count, duration = int(params["size"]), int(params["count"]), params["duration_s"]
    payload = bytes(size)
    sent = 0
    finished = False
    try:
        start = time.perf_counter()
        pending: Any = client.quic._datagrams_pending
        while sent < count and time.perf_counter() - start < duration:
            client.quic.send_datagram_frame(payload)
            sent += 1
            if sent % 32 == 0:
                client.protocol.transmit()
                await asyncio.sleep(0)
                await poll_until(lambda: len(pending) <= 256)
        client.protocol.transmit()
        send_s = time.perf_counter() - start
        await asyncio.sleep(0.05)
        stream_id = client.quic.get_next_available_stream_id()
        client.quic.send_stream_data(stream_id, END, end_stream=True)
        client.protocol.transmit()
        with contextlib.suppress(TimeoutError):
            finished = await client.reply(float(params.get("finish_s", 10.0))) == DONE
    finally:
        await client.close()
    return {"sent": sent, "send_s": send_s, "finished": finished}


async def client_rtt(params: JSON, info: JSON) -> JSON:
    """Sequential echoes on one bidirectional stream; percentiles of the round trip in µs."""
    client = await _Client.open(info)
    payload = bytes(int(params["size"]))
    try:
        stream_id = client.quic.get_next_available_stream_id()

        async def round_trip() -> bool:
            client.quic.send_stream_data(stream_id, payload)
            client.protocol.transmit()
            got = 0
            while got < len(payload):
                got += len(await client.reply(5.0))
            return True

        return await measure_rtt(params, round_trip)
    finally:
        await client.close()
