"""``stt relay``: prints its URLs, registers nodes, and stops on SIGTERM with its figures."""

from __future__ import annotations

import asyncio
import signal
import sys

from seigr_stt import STTNode, generate_seed
from tests.timing import SECOND


async def test_stt_relay_serves_nodes_and_stops_on_sigterm() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "seigr_stt",
        "relay",
        "--udp-port",
        "0",
        "--ws-port",
        "0",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(10 * SECOND):
            line = (await process.stdout.readline()).decode().split()
        assert line[0] == "relay"
        assert line[1].startswith("udp://127.0.0.1:")
        assert line[2].startswith("ws://127.0.0.1:")
        async with STTNode(generate_seed(), generate_seed(), relays=line[1:]) as node:
            assert node.relays == tuple(line[1:])
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10 * SECOND):
            rest = (await process.stdout.read()).decode()
            assert await process.wait() == 0
        assert "2 registrations" in rest
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
