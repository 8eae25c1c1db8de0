"""The baselines run next to seigr_stt: raw asyncio UDP + ChaCha20-Poly1305, and websockets.

*raw-udp* is the ceiling for encrypted UDP in Python: one AEAD call per datagram (pyca/
cryptography's ChaCha20Poly1305, the fastest binding here), an 8-byte counter as header, no
reliability, no congestion control, no replay window. Its one-way rates are what the receiver
manages to decrypt while the sender blasts (the kernel drops the rest).

*websockets* is the ``websockets`` library over TCP, without compression; plain, or over TLS
(``tls=True``: TLS 1.3 with a self-signed P-256 certificate made by each server, which its clients
trust and verify).

Servers bind to ``params["host"]`` (default 127.0.0.1): the real-path runs put the server in one
network namespace and the client in another.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from typing import Any, cast

from nacl import bindings as nacl_bindings
from nacl.exceptions import CryptoError
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from seigr_stt.bench import tls
from seigr_stt.bench.common import DONE, END, JSON, Ready, Receiver, measure_rtt, poll_until

__all__ = [
    "AEAD_BINDING",
    "raw_client_blast",
    "raw_client_rtt",
    "raw_server",
    "ws_client_handshakes",
    "ws_client_messages",
    "ws_client_rtt",
    "ws_server",
]

_HOST = "127.0.0.1"


def _host(params: JSON) -> str:
    return str(params.get("host", _HOST))


_UP_KEY = bytes(range(32))  # client -> server
_DOWN_KEY = bytes(range(32, 64))  # server -> client
_PREFIX = b"\x00\x00\x00\x00"


class _NaclAEAD:
    """pynacl's ChaCha20-Poly1305 (IETF) with pyca/cryptography's interface: the fallback when
    cryptography is not installed (it comes with the ``speed`` and ``bench`` extras)."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def encrypt(self, nonce: bytes, data: bytes, ad: bytes | None) -> bytes:
        return bytes(
            nacl_bindings.crypto_aead_chacha20poly1305_ietf_encrypt(data, ad, nonce, self._key)
        )

    def decrypt(self, nonce: bytes, data: bytes, ad: bytes | None) -> bytes:
        try:
            return bytes(
                nacl_bindings.crypto_aead_chacha20poly1305_ietf_decrypt(data, ad, nonce, self._key)
            )
        except CryptoError as exc:
            raise ValueError("authentication failed") from exc


try:
    from cryptography.exceptions import InvalidTag as _InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305 as _ChaCha

    AEAD_BINDING = "cryptography"
except ImportError:  # pragma: no cover - depends on the installation
    _ChaCha = _NaclAEAD  # type: ignore[assignment,misc]
    _InvalidTag = ValueError  # type: ignore[assignment,misc]
    AEAD_BINDING = "pynacl"


class _Sealer:
    """One direction of the raw channel: counter nonces, ChaCha20-Poly1305."""

    def __init__(self, key: bytes) -> None:
        self._aead = _ChaCha(key)
        self._counter = 0

    def seal(self, plaintext: bytes) -> bytes:
        self._counter += 1
        head = self._counter.to_bytes(8, "little")
        return head + self._aead.encrypt(_PREFIX + head, plaintext, None)

    def open(self, packet: bytes) -> bytes | None:
        try:
            return self._aead.decrypt(_PREFIX + packet[:8], packet[8:], None)
        except (_InvalidTag, ValueError):
            return None


class _RawServer(asyncio.DatagramProtocol):
    def __init__(self, echo: bool, receiver: Receiver) -> None:
        self.echo = echo
        self.receiver = receiver
        self.opener = _Sealer(_UP_KEY)
        self.sealer = _Sealer(_DOWN_KEY)
        self.transport: asyncio.DatagramTransport | None = None
        self.bad = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        plain = self.opener.open(data)
        if plain is None:
            self.bad += 1
            return
        assert self.transport is not None
        if plain[:4] == END:
            self.transport.sendto(self.sealer.seal(DONE), addr)
        elif self.echo:
            self.transport.sendto(self.sealer.seal(plain), addr)
        else:
            self.receiver.add(plain)


async def raw_server(params: JSON, ready: Ready, stop: asyncio.Event) -> JSON:
    """Decrypt and count (``mode="sink"``) or decrypt, re-encrypt and echo (``"echo"``)."""
    loop = asyncio.get_running_loop()
    receiver = Receiver()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: _RawServer(params.get("mode") == "echo", receiver), local_addr=(_host(params), 0)
    )
    try:
        host, port = transport.get_extra_info("sockname")[:2]
        ready({"udp": [host, port]})
        await stop.wait()
    finally:
        transport.close()
    return {"messages": receiver.result(), "bad": protocol.bad}


class _RawClient(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.opener = _Sealer(_DOWN_KEY)
        self.replies: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        plain = self.opener.open(data)
        if plain is not None:
            self.replies.put_nowait(plain)


async def _raw_endpoint(info: JSON) -> tuple[asyncio.DatagramTransport, _RawClient]:
    loop = asyncio.get_running_loop()
    host, port = info["udp"]
    return await loop.create_datagram_endpoint(_RawClient, remote_addr=(str(host), int(port)))


async def raw_client_blast(params: JSON, info: JSON) -> JSON:
    """Send ``size``-byte encrypted datagrams as fast as possible for ``duration_s``."""
    transport, protocol = await _raw_endpoint(info)
    buffered = cast(Any, transport).get_write_buffer_size  # missing from the type stubs
    sealer = _Sealer(_UP_KEY)
    size, count, duration = int(params["size"]), int(params["count"]), params["duration_s"]
    payload = bytes(size)
    sent = 0
    finished = False
    try:
        start = time.perf_counter()
        while sent < count and time.perf_counter() - start < duration:
            transport.sendto(sealer.seal(payload))
            sent += 1
            if sent % 32 == 0:
                await asyncio.sleep(0)
                await poll_until(lambda: buffered() <= 256 * 1024)
        send_s = time.perf_counter() - start
        await asyncio.sleep(0.05)
        end = sealer.seal(END + bytes(max(size - len(END), 0)))
        deadline = time.perf_counter() + float(params.get("finish_s", 10.0))
        while not finished and time.perf_counter() < deadline:
            transport.sendto(end)
            with contextlib.suppress(TimeoutError):
                finished = await asyncio.wait_for(protocol.replies.get(), 0.02) == DONE
    finally:
        transport.close()
    return {"sent": sent, "send_s": send_s, "finished": finished}


async def raw_client_rtt(params: JSON, info: JSON) -> JSON:
    """Sequential encrypted echoes; percentiles of the round trip in µs."""
    transport, protocol = await _raw_endpoint(info)
    sealer = _Sealer(_UP_KEY)
    payload = bytes(int(params["size"]))

    async def round_trip() -> bool:
        transport.sendto(sealer.seal(payload))
        try:
            await asyncio.wait_for(protocol.replies.get(), 1.0)
        except TimeoutError:
            return False
        return True

    try:
        return await measure_rtt(params, round_trip)
    finally:
        transport.close()


# -- websockets ------------------------------------------------------------------------------
async def ws_server(params: JSON, ready: Ready, stop: asyncio.Event) -> JSON:
    """A websockets server that counts (``mode="sink"``) or echoes (``"echo"``) messages; over
    TLS when ``tls`` is set (its ready info then carries the certificate as ``ca``)."""
    echo = params.get("mode") == "echo"
    host = _host(params)
    context: ssl.SSLContext | None = None
    info: JSON = {}
    if params.get("tls"):
        cert, key = tls.self_signed([host])
        context = tls.server_context(cert, key)
        info["ca"] = cert.decode("ascii")
    receiver = Receiver()
    connections = 0

    async def handler(ws: ServerConnection) -> None:
        nonlocal connections
        connections += 1
        with contextlib.suppress(ConnectionClosed):
            async for message in ws:
                data = message if isinstance(message, bytes) else message.encode()
                if data[:4] == END:
                    await ws.send(DONE)
                elif echo:
                    await ws.send(data)
                else:
                    receiver.add(data)

    async with serve(
        handler, host, 0, compression=None, max_size=None, ping_interval=None, ssl=context
    ) as server:
        bound, port = next(iter(server.sockets)).getsockname()[:2]
        scheme = "wss" if context is not None else "ws"
        ready({**info, "url": f"{scheme}://{bound}:{port}/"})
        await stop.wait()
        server.close()
        await server.wait_closed()
    return {"messages": receiver.result(), "connections": connections}


async def _ws_connect(info: JSON) -> ClientConnection:
    context = tls.client_context(str(info["ca"])) if info.get("ca") else None
    return await connect(
        str(info["url"]),
        compression=None,
        max_size=None,
        ping_interval=None,
        proxy=None,
        ssl=context,
    )


async def ws_client_handshakes(params: JSON, info: JSON) -> JSON:
    """Sequential connection setups (TCP + HTTP upgrade); connections stay open to the end."""
    count, duration = int(params["count"]), float(params["duration_s"])
    opened: list[ClientConnection] = []
    start = time.perf_counter()
    try:
        while len(opened) < count and time.perf_counter() - start < duration:
            opened.append(await _ws_connect(info))
        elapsed = time.perf_counter() - start
    finally:
        await asyncio.gather(*(ws.close() for ws in opened), return_exceptions=True)
    return {"handshakes": len(opened), "elapsed_s": elapsed, "rate": len(opened) / elapsed}


async def ws_client_messages(params: JSON, info: JSON) -> JSON:
    """One-way binary messages of ``size`` bytes for ``duration_s``."""
    size, count, duration = int(params["size"]), int(params["count"]), params["duration_s"]
    payload = bytes(size)
    sent = 0
    finished = False
    ws = await _ws_connect(info)
    try:
        start = time.perf_counter()
        while sent < count and time.perf_counter() - start < duration:
            await ws.send(payload)
            sent += 1
        send_s = time.perf_counter() - start
        await ws.send(END + bytes(max(size - len(END), 0)))
        async with asyncio.timeout(float(params.get("finish_s", 30.0))):
            async for message in ws:
                if message == DONE:
                    finished = True
                    break
    finally:
        await ws.close()
    return {"sent": sent, "send_s": send_s, "finished": finished}


async def ws_client_rtt(params: JSON, info: JSON) -> JSON:
    """Sequential echoes; percentiles of the round trip in µs."""
    payload = bytes(int(params["size"]))
    ws = await _ws_connect(info)

    async def round_trip() -> bool:
        await ws.send(payload)
        await ws.recv()
        return True

    try:
        return await measure_rtt(params, round_trip)
    finally:
        await ws.close()
