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
    handshakes = r"^handshakes initiated \d+(, accepted \d+)?, failed \d+, in flight \d+$"
    assert re.search(handshakes, result.stdout, re.M)  # accepted: when the exporter has roles
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


def test_handshakes_by_role_when_the_exporter_labels_them() -> None:
    from seigr_stt.cli.stats import _summary

    info = {"node_id": "00" * 8, "udp": "127.0.0.1:9000", "websocket": "", "server_mode": "True"}
    Samples = dict[str, list[tuple[dict[str, str], float]]]
    samples: Samples = {
        "stt_node_info": [(info, 1.0)],
        "stt_node_running": [({}, 1.0)],
        "stt_handshakes_failed_total": [({}, 2.0)],
    }
    plain: Samples = {**samples, "stt_handshakes_started_total": [({}, 4.0)]}
    assert "handshakes initiated 4, failed 2, in flight 0" in _summary(plain)
    by_role: Samples = {
        **samples,
        "stt_handshakes_started_total": [
            ({"role": "initiator"}, 1.0),
            ({"role": "responder"}, 9.0),
        ],
    }
    assert "handshakes initiated 1, accepted 9, failed 2, in flight 0" in _summary(by_role)
