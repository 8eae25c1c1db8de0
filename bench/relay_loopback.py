"""Time to first byte and stream throughput through a relay, next to direct UDP, on loopback.

    .venv/bin/python bench/relay_loopback.py [--mib 16] [--runs 5]

One relay runs as its own process (``stt relay``, as deployed); each run starts two fresh nodes
in this process (one event loop for both). ``direct-1232`` is direct UDP with path-MTU probing
off, so its records are as small as a relayed path's (1232 bytes against 1198); ``direct-udp``
probes up to 65000-byte records on loopback. Time to first byte: from the ``connect`` call
(handshake included; the nodes are already registered) until the peer has received a 1-byte
message. Throughput: one stream of ``--mib`` MiB, from opening it until the reader has it all.
Medians over ``--runs``. Loopback figures, not the real path of ``python -m seigr_stt.bench``.
The relayed rows run with ``NodeConfig(migration=False)``: on loopback the relay observes
addresses both nodes reach directly, so a migrating session would leave the relay at once.

``relay->direct``: two nodes behind two port-restricted-cone NAT boxes (``seigr_stt.testing.
NATBox``, public hosts 127.0.0.2 and 127.0.0.3) dial each other by node id through the UDP relay;
the figure is the time from the first relayed byte (a 1-byte message received) until both
sides reported ``path_changed`` to the direct UDP path (hole punching and validation, §18).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time

from seigr_stt import NodeConfig, STTNode, generate_seed
from seigr_stt.aio.session import NodeEvent
from seigr_stt.testing import NATBox, NATConfig

MIB = 1024 * 1024
CHUNK = 256 * 1024


async def one_run(path: str, size: int, urls: dict[str, str]) -> tuple[float, float]:
    """``(time to first byte in s, MiB/s)`` of one fresh pair of nodes on ``path``."""
    shared = generate_seed()
    url = urls.get(path)
    relays = [url] if url else []
    config = NodeConfig(udp_pmtu_probe_max=1232) if path == "direct-1232" else None
    if url:
        config = NodeConfig(migration=False)  # stay on the relay (see the module docstring)
    server = STTNode(generate_seed(), shared, server_mode=True, relays=relays, config=config)
    client = STTNode(generate_seed(), shared, relays=relays, config=config)
    async with server, client:
        start = time.perf_counter()
        if url:
            session = await client.connect(server.node_id, relays=relays)
        else:
            address = server.udp_address
            assert address is not None
            session = await client.connect_udp(*address)
        await session.send(b"x")
        await server.recv()
        ttfb = time.perf_counter() - start
        peer = next(iter(server.session_manager.get_active_sessions()))
        data = os.urandom(size)
        start = time.perf_counter()
        stream = await session.open_stream()

        async def write() -> None:
            for offset in range(0, size, CHUNK):
                await stream.write(data[offset : offset + CHUNK])
                await stream.drain()
            await stream.close()

        writer = asyncio.ensure_future(write())
        received = b""
        async for incoming in peer.incoming_streams():
            received = await incoming.read()
            break
        elapsed = time.perf_counter() - start
        await writer
        assert received == data
        return ttfb, size / elapsed / MIB


async def takeover(relay_udp: tuple[str, int]) -> float:
    """Seconds from the first relayed byte until both nodes run on the direct path."""
    shared = generate_seed()
    cone = NATConfig.port_restricted_cone()
    async with (
        NATBox(cone, public_host="127.0.0.2") as box_a,
        NATBox(cone, public_host="127.0.0.3") as box_b,
    ):
        url_a = "udp://{}:{}".format(*box_a.route(relay_udp))
        url_b = "udp://{}:{}".format(*box_b.route(relay_udp))
        server = STTNode(generate_seed(), shared, server_mode=True, relays=[url_b])
        client = STTNode(generate_seed(), shared)
        server.udp_route, client.udp_route = box_b.route, box_a.route
        done = asyncio.Event()
        moved: set[str] = set()

        def note(event: NodeEvent) -> None:
            if event.transport == "udp":
                moved.add(event.session.session_id.hex() + str(id(event.session)))
                if len(moved) == 2:
                    done.set()

        server.on("path_changed", note)
        client.on("path_changed", note)
        async with server, client:
            session = await client.connect(server.node_id, relays=[url_a])
            await session.send(b"x")
            await server.recv()
            start = time.perf_counter()
            await asyncio.wait_for(done.wait(), 10)
            return time.perf_counter() - start


async def main() -> None:
    parser = argparse.ArgumentParser(description="relayed against direct, on loopback")
    parser.add_argument("--mib", type=int, default=16)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    relay = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "seigr_stt", "relay", "--udp-port", "0", "--ws-port", "0"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert relay.stdout is not None
        line = (await relay.stdout.readline()).decode().split()
        urls = {"relay-udp": line[1], "relay-ws": line[2]}
        print(f"{'path':<11} {'ttfb ms':>8} {'MiB/s':>7}   medians of {args.runs}, {args.mib} MiB")
        for path in ("direct-udp", "direct-1232", "relay-udp", "relay-ws"):
            runs = [await one_run(path, args.mib * MIB, urls) for _ in range(args.runs)]
            ttfb = statistics.median(r[0] for r in runs) * 1000
            rate = statistics.median(r[1] for r in runs)
            print(f"{path:<11} {ttfb:>8.2f} {rate:>7.1f}")
        host, port = urls["relay-udp"].removeprefix("udp://").rsplit(":", 1)
        times = [await takeover((host, int(port))) for _ in range(args.runs)]
        print(
            f"relay->direct: direct path in use {statistics.median(times) * 1000:.2f} ms "
            f"after the first relayed byte (median of {args.runs}; "
            f"min {min(times) * 1000:.2f}, max {max(times) * 1000:.2f})"
        )
    finally:
        relay.terminate()
        await relay.wait()


if __name__ == "__main__":
    asyncio.run(main())
