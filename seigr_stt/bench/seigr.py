"""seigr_stt workloads, over UDP (``transport="udp"``) or WebSocket (``transport="ws"``).

One server function serves every workload: it echoes or counts messages, counts datagrams and
reads every byte stream a peer opens. The client functions each run one workload.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import zlib
from collections.abc import AsyncGenerator
from typing import Any

from seigr_stt import NodeConfig, ReceivedPacket, STTNode, STTSession, generate_seed
from seigr_stt.aio.session import NodeEvent
from seigr_stt.aio.streams import STTStream
from seigr_stt.bench.common import (
    DONE,
    END,
    JSON,
    Ready,
    Receiver,
    cancel_all,
    chunk_for,
    measure_rtt,
    poll_until,
    rss_bytes,
    settled_rss,
)

__all__ = [
    "client_bulk",
    "client_datagrams",
    "client_handshakes",
    "client_messages",
    "client_rtt",
    "client_scale",
    "server",
]

_HOST = "127.0.0.1"


def _host(params: JSON) -> str:
    """Where the node binds: ``params["host"]`` (a real-path run's namespace address) or
    127.0.0.1."""
    return str(params.get("host", _HOST))


def _config(params: JSON) -> NodeConfig:
    """The bench's node settings: defaults, but with room for the sessions of the scale run,
    without the handshake rate limits (every client here is 127.0.0.1, and the handshake
    workloads connect as fast as they can by design), and without migration for WebSocket."""
    sessions = int(params.get("sessions", 0))
    settings: dict[str, Any] = {
        "max_sessions": max(10_000, sessions + 1_000),
        "max_message_size": max(16 * 1024 * 1024, int(params.get("size", 0)) + 16),
        "handshake_rate_per_source_per_s": 1e9,
        "handshake_burst_per_source": 1_000_000_000,
        "handshake_rate_unproven_per_s": 1e9,
        "handshake_burst_unproven": 1_000_000_000,
        # A WebSocket case measures WebSocket: with migration on, both nodes reach each other's
        # UDP address and the session would move to UDP, the better path (protocol.md §18).
        "migration": params.get("transport") != "ws",
    }
    known = {f.name for f in dataclasses.fields(NodeConfig)}
    return NodeConfig(**{k: v for k, v in settings.items() if k in known})


def _node(params: JSON, *, ws: bool = False) -> STTNode:
    return STTNode(
        generate_seed(),
        bytes.fromhex(str(params["shared"])),
        _host(params),
        0,
        ws_port=0 if ws else None,
        config=_config(params),
    )


async def _connect(node: STTNode, params: JSON, info: JSON) -> STTSession:
    if params.get("transport") == "ws":
        return await node.connect_websocket(str(info["ws"]), timeout=10.0)
    host, port = info["udp"]
    return await node.connect_udp(str(host), int(port), timeout=10.0)


async def server(params: JSON, ready: Ready, stop: asyncio.Event) -> JSON:
    """Serve every seigr workload until ``stop`` is set; return what was received."""
    ws = params.get("transport") == "ws"
    node = _node(params, ws=ws)
    await node.start(server_mode=True)
    echo = params.get("mode") == "echo"
    passive = bool(params.get("passive", False))  # scale: no task per session
    expected = int(params.get("sessions", 0))
    messages = Receiver()
    datagrams = Receiver()
    stream_bytes = Receiver(check=bool(params.get("check", False)))
    tasks: list[asyncio.Task[Any]] = []
    established = 0
    all_up = asyncio.Event()
    scale: JSON = {}

    async def read_stream(stream: STTStream) -> None:
        while True:
            chunk = await stream.read(1 << 20)
            if not chunk:
                break
            stream_bytes.add(chunk)
        await stream.write(DONE)
        await stream.close()

    async def serve_session(session: STTSession) -> None:
        async def datagrams_of() -> None:
            async for data in session.datagrams():
                datagrams.add(data)

        reader = asyncio.create_task(datagrams_of())
        try:
            async for stream in session.incoming_streams():
                tasks.append(asyncio.create_task(read_stream(stream)))
        finally:
            await reader

    def on_established(event: NodeEvent) -> None:
        nonlocal established
        established += 1
        if expected and established >= expected:
            all_up.set()
        if not passive:
            tasks.append(asyncio.create_task(serve_session(event.session)))

    async def serve_messages() -> None:
        async for packet in node.receive():
            if packet.data[:4] == END:
                await node.send_to_sessions([packet.session_id], DONE)
            elif echo:
                await node.send_to_sessions([packet.session_id], packet.data, packet.stream_id)
            else:
                messages.add(packet.data)

    async def measure_scale() -> None:
        await all_up.wait()
        scale["rss_at_sessions"] = await settled_rss()
        scale["sessions_at_measure"] = len(node.session_manager.get_active_sessions())

    node.on("session_established", on_established)
    tasks.append(asyncio.create_task(serve_messages()))
    if expected:
        tasks.append(asyncio.create_task(measure_scale()))
    rss_before = await settled_rss()
    address = node.udp_address
    assert address is not None
    ready({"udp": list(address), "ws": node.ws_url})
    await stop.wait()
    result: JSON = {
        "messages": messages.result(),
        "datagrams": datagrams.result(),
        "stream": stream_bytes.result(),
        "sessions_established": established,
        "drops": dict(node.get_stats()["drops"]),
    }
    if expected:
        rss_after = scale.get("rss_at_sessions", rss_bytes())
        sessions = int(scale.get("sessions_at_measure", established)) or 1
        result.update(
            rss_before=rss_before,
            rss_after=rss_after,
            sessions=sessions,
            kib_per_session=(rss_after - rss_before) / sessions / 1024,
        )
    await node.stop()
    await cancel_all(tasks)
    return result


async def _replies(node: STTNode) -> AsyncGenerator[ReceivedPacket, None]:
    async for packet in node.receive():
        yield packet


async def _finish(node: STTNode, session: STTSession, size: int, timeout: float) -> bool:
    """Send END (reliably) and wait for the server's DONE; True when it came."""
    replies = node.receive()
    await session.send(END + bytes(max(size - len(END), 0)))
    try:
        async with asyncio.timeout(timeout):
            async for packet in replies:
                if packet.data == DONE:
                    return True
    except TimeoutError:
        return False
    return False  # pragma: no cover - the node stopped


async def client_handshakes(params: JSON, info: JSON) -> JSON:
    """Sequential connects (full XXpsk3 handshakes); sessions stay open until the end."""
    node = _node(params)
    await node.start()
    count, duration = int(params["count"]), float(params["duration_s"])
    done = 0
    start = time.perf_counter()
    try:
        while done < count and time.perf_counter() - start < duration:
            await _connect(node, params, info)
            done += 1
        elapsed = time.perf_counter() - start
    finally:
        await node.stop()
    return {"handshakes": done, "elapsed_s": elapsed, "rate": done / elapsed}


async def client_messages(params: JSON, info: JSON) -> JSON:
    """One-way reliable messages of ``size`` bytes with ``send_to_sessions`` for
    ``duration_s`` (at most ``count``); the server measures the rate."""
    node = _node(params)
    await node.start()
    try:
        session = await _connect(node, params, info)
        ids = [session.session_id]
        size, count, duration = int(params["size"]), int(params["count"]), params["duration_s"]
        payload = bytes(size)
        sent = 0
        start = time.perf_counter()
        while sent < count and time.perf_counter() - start < duration:
            await node.send_to_sessions(ids, payload)
            sent += 1
        send_s = time.perf_counter() - start
        finished = await _finish(node, session, size, float(params.get("finish_s", 30.0)))
        stats = session.get_statistics()
    finally:
        await node.stop()
    return {
        "sent": sent,
        "send_s": send_s,
        "finished": finished,
        "packets_sent": stats["packets_sent"],
        "retransmitted_bytes": stats["retransmitted_bytes"],
    }


async def client_datagrams(params: JSON, info: JSON) -> JSON:
    """Unreliable datagrams of ``size`` bytes as fast as the socket takes them."""
    node = _node(params)
    await node.start()
    try:
        session = await _connect(node, params, info)
        size, count, duration = int(params["size"]), int(params["count"]), params["duration_s"]
        payload = bytes(size)
        udp = node.udp_transport
        sent = 0
        start = time.perf_counter()
        while sent < count and time.perf_counter() - start < duration:
            await session.send_datagram(payload)
            sent += 1
            if sent % 32 == 0:
                await asyncio.sleep(0)
                if udp is not None:
                    await poll_until(lambda: udp.queued <= 256)
        send_s = time.perf_counter() - start
        await asyncio.sleep(0.05)  # the tail reaches the server before END
        finished = await _finish(node, session, 64, float(params.get("finish_s", 10.0)))
        dropped = node.get_stats()["transports"]["udp"]["send_dropped"]
    finally:
        await node.stop()
    return {"sent": sent, "send_s": send_s, "finished": finished, "send_dropped": dropped}


async def client_bulk(params: JSON, info: JSON) -> JSON:
    """One byte stream written in ``chunk`` pieces for ``duration_s`` (at most ``bytes``);
    with ``rotate_s`` the client rotates the session key that often meanwhile."""
    node = _node(params)
    await node.start()
    rotations = 0
    rotation_errors = 0
    try:
        session = await _connect(node, params, info)
        rotate_s = float(params.get("rotate_s", 0.0))

        async def rotate() -> None:
            nonlocal rotations, rotation_errors
            while True:
                await asyncio.sleep(rotate_s)
                try:
                    await session.rotate_key(timeout=5.0)
                    rotations += 1
                except Exception:
                    rotation_errors += 1

        rotator = asyncio.create_task(rotate()) if rotate_s > 0 else None
        stream = await session.open_stream()
        chunk_size, total, duration = (
            int(params["chunk"]),
            int(params["bytes"]),
            params["duration_s"],
        )
        check = bool(params.get("check", False))
        crc = 0
        sent = 0
        index = 0
        start = time.perf_counter()
        while sent < total and time.perf_counter() - start < duration:
            chunk = chunk_for(index, chunk_size)
            if check:
                crc = zlib.crc32(chunk, crc)
            await stream.write(chunk)
            await stream.drain()
            sent += chunk_size
            index += 1
        send_s = time.perf_counter() - start
        await stream.close()
        try:
            async with asyncio.timeout(float(params.get("finish_s", 60.0))):
                reply = await stream.read()
        except TimeoutError:
            reply = b""
        if rotator is not None:
            await cancel_all([rotator])
        stats = session.get_statistics()
    finally:
        await node.stop()
    return {
        "bytes": sent,
        "send_s": send_s,
        "crc": crc,
        "finished": reply == DONE,
        "rotations": rotations,
        "rotation_errors": rotation_errors,
        "key_version": stats["key_version"],
        "packets_sent": stats["packets_sent"],
        "packets_lost": stats["packets_lost"],
        "retransmitted_bytes": stats["retransmitted_bytes"],
    }


async def client_rtt(params: JSON, info: JSON) -> JSON:
    """Sequential echoes of ``size``-byte messages; percentiles of the round trip in µs."""
    node = _node(params)
    await node.start()
    try:
        session = await _connect(node, params, info)
        replies = _replies(node)
        payload = bytes(int(params["size"]))

        async def round_trip() -> bool:
            await session.send(payload)
            await anext(replies)
            return True

        result = await measure_rtt(params, round_trip)
        await replies.aclose()
    finally:
        await node.stop()
    return result


async def client_scale(params: JSON, info: JSON) -> JSON:
    """``sessions`` handshakes from ``nodes`` client nodes (each connecting sequentially, so the
    server's per-peer timestamp check never sees them out of order); sessions stay open for
    ``hold_s`` while the server measures its memory."""
    total, width = int(params["sessions"]), int(params["nodes"])
    nodes = [_node(params) for _ in range(width)]
    for node in nodes:
        await node.start()
    completions: list[float] = []
    failures = 0

    async def run(node: STTNode, n: int) -> None:
        nonlocal failures
        for _ in range(n):
            try:
                await _connect(node, params, info)
                completions.append(time.perf_counter())
            except Exception:
                failures += 1

    shares = [total // width + (1 if k < total % width else 0) for k in range(width)]
    start = time.perf_counter()
    try:
        await asyncio.gather(*(run(node, n) for node, n in zip(nodes, shares, strict=True)))
        elapsed = time.perf_counter() - start
        await asyncio.sleep(float(params.get("hold_s", 1.0)))
    finally:
        await asyncio.gather(*(node.stop() for node in nodes))
    completions.sort()
    window = min(int(params.get("window", 1000)), max(len(completions) // 2, 1))
    first_s = completions[window - 1] - start if completions else float("nan")
    last_s = completions[-1] - completions[-window - 1] if len(completions) > window else first_s
    return {
        "sessions": len(completions),
        "failures": failures,
        "elapsed_s": elapsed,
        "rate": len(completions) / elapsed,
        "window": window,
        "first_window_s": first_s,
        "last_window_s": last_s,
        "last_vs_first": first_s / last_s if last_s > 0 else float("nan"),
    }
