"""demo, bench, connect, send and ping (:mod:`seigr_stt.cli.commands`)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.cli.helpers import NodeProcess, clean_env, run


def test_demo_shows_the_whole_lifecycle() -> None:
    result = run("demo")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for step in (
        "1. handshake over UDP",
        "2. data both ways over UDP",
        "3. handshake over WebSocket",
        "4. data both ways over WebSocket",
        "5. key rotation",
        "6. statistics",
        "7. close",
        "both nodes stopped",
    ):
        assert step in out
    assert "received b'hello over udp'" in out
    assert "received b'hello over websocket'" in out
    assert out.count("(intact: True)") == 2
    assert out.count("key version 0 -> 1 (server 1; keys equal: True)") == 2
    assert "udp session state CLOSED" in out
    assert "websocket session state CLOSED" in out
    assert "server drops: 0" in out


def test_connect_over_udp_and_websocket(echo_node: NodeProcess, seeds: dict[str, Path]) -> None:
    node_id = echo_node.lines[0].removeprefix("node ")
    shared = ("--shared-seed", str(seeds["shared"]))
    udp = run("connect", *echo_node.target, *shared, "--rotate")
    assert udp.returncode == 0, udp.stderr
    assert re.search(r"^session +[0-9a-f]{16} over udp$", udp.stdout, re.M)
    assert f"peer       {node_id}" in udp.stdout
    assert "key        version 0" in udp.stdout
    assert "rotated    key version 0 -> 1" in udp.stdout
    assert re.search(r"^rtt +[0-9.]+ ms$", udp.stdout, re.M)
    assert udp.stdout.rstrip().endswith("closed")
    assert echo_node.ws_url is not None
    ws = run("connect", "--ws", echo_node.ws_url, *shared)
    assert ws.returncode == 0, ws.stderr
    assert "over websocket" in ws.stdout
    assert f"peer       {node_id}" in ws.stdout


def test_send_with_reply_and_seeds_from_the_environment(
    echo_node: NodeProcess, seeds: dict[str, Path]
) -> None:
    shared_text = seeds["shared"].read_text().strip()
    result = run(
        "send", *echo_node.target, "héllo stt", "--stream", "3", "--wait-reply",
        STT_SHARED_SEED=shared_text,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "sent 10 bytes on channel 3" in result.stdout
    assert "reply on channel 3 (10 bytes): héllo stt" in result.stdout
    assert shared_text not in result.stdout + result.stderr


def test_ping_prints_rtt_statistics(echo_node: NodeProcess, seeds: dict[str, Path]) -> None:
    result = run(
        "ping", *echo_node.target, "-c", "3", "--interval", "0",
        "--shared-seed", str(seeds["shared"]),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("reply seq=") == 3
    assert "3 sent, 3 received, 0% loss" in result.stdout
    assert re.search(r"rtt min/avg/p50/max = [0-9.]+/[0-9.]+/[0-9.]+/[0-9.]+ ms", result.stdout)


def test_importing_the_cli_loads_no_optional_package() -> None:
    """The benchmarks, the demo, rich and the metrics exporter load only when a command runs."""
    code = (
        "import sys, seigr_stt.cli\n"
        "lazy = ('seigr_stt.bench', 'seigr_stt.demo', 'seigr_stt.metrics', 'rich',"
        " 'prometheus_client')\n"
        "print(sorted(m for m in sys.modules if m.startswith(lazy)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=clean_env(),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
