"""demo, bench, connect, send and ping (:mod:`seigr_stt.cli.commands`); ping ended by Ctrl-C
and by the node closing, in real subprocesses."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

from tests.cli.helpers import NodeProcess, clean_env, run
from tests.timing import SECOND


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
    assert re.search(r"^rtt +[0-9]+\.[0-9]{3} ms$", udp.stdout, re.M)
    heads = [line.split()[0] for line in udp.stdout.splitlines()]
    assert heads == ["session", "peer", "key", "handshake", "rtt", "rotated", "closed"]
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


def _pinging(echo_node: NodeProcess, seeds: dict[str, Path]) -> NodeProcess:
    """``stt ping`` that would run for 20 s, once its second reply has arrived."""
    ping = NodeProcess.spawn(
        "ping", *echo_node.target, "-c", "1000", "--interval", "0.02",
        "--shared-seed", str(seeds["shared"]),
    )  # fmt: skip
    ping.expect("reply seq=1 ")
    return ping


def test_ping_prints_its_summary_on_ctrl_c(echo_node: NodeProcess, seeds: dict[str, Path]) -> None:
    ping = _pinging(echo_node, seeds)
    assert ping.stop(signal.SIGINT) == 130
    summary = ping.expect("--- ")
    assert summary == f"--- {echo_node.host}:{echo_node.port} ping statistics ---"
    counts = re.fullmatch(r"(\d+) sent, (\d+) received, \d+% loss", ping.expect(""))
    assert counts is not None
    assert int(counts[2]) >= 2
    assert int(counts[1]) - int(counts[2]) in (0, 1)  # at most the ping in flight is lost
    assert ping.expect("rtt min/avg/p50/max = ")
    assert ping.err == []  # no "interrupted", no traceback


def test_ping_reports_the_node_closing_then_its_summary(seeds: dict[str, Path]) -> None:
    node = NodeProcess.start(
        "--shared-seed", str(seeds["shared"]), "--echo", "--no-ws", "--control-socket", "none"
    )
    ping = _pinging(node, seeds)
    assert node.stop() == 0, node.err
    assert ping.proc.wait(timeout=15 * SECOND) == 1
    ping.expect("--- ")
    ping.expect("rtt min/avg/p50/max = ")
    assert ping.err == [
        "stt ping: the node closed the session (code 1, going away: node stopping)"
    ], ping.err


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
