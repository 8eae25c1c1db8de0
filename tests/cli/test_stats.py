"""``stt stats`` (:mod:`seigr_stt.cli.stats`): the summary of a node's metrics endpoint."""

from __future__ import annotations

import re
import socket
from pathlib import Path

from tests.cli.helpers import NodeProcess, run


def test_stats_summarises_the_metrics_endpoint(
    echo_node: NodeProcess, seeds: dict[str, Path]
) -> None:
    assert echo_node.metrics_url is not None
    port = echo_node.metrics_url.rsplit(":", 1)[1].split("/")[0]
    result = run("stats", "127.0.0.1", port)
    assert result.returncode == 0, result.stderr
    node_id = echo_node.lines[0].removeprefix("node ")
    assert f"node       {node_id[:16]}…" in result.stdout
    assert f"udp        {echo_node.host}:{echo_node.port}" in result.stdout
    assert re.search(r"sessions   active 0 .*\(created \d+, closed \d+\)", result.stdout)
    assert re.search(r"^handshakes initiated \d+, failed \d+, in flight \d+$", result.stdout, re.M)
    assert re.search(r"^bytes      sent [0-9.]+ (B|KiB|MiB), received", result.stdout, re.M)
    raw = run("stats", "--url", echo_node.metrics_url, "--raw")
    assert raw.returncode == 0
    assert "stt_node_info{" in raw.stdout
    assert "# TYPE stt_drops_total counter" in raw.stdout


def test_stats_without_an_exporter_exits_1() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run("stats", "127.0.0.1", str(port), "--timeout", "2")
    assert result.returncode == 1
    assert "--metrics-port" in result.stderr
