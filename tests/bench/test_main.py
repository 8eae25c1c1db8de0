"""``python -m seigr_stt.bench`` (seigr_stt.bench.main): the smoke mode runs every workload once,
tiny, in process (no timings checked); bad options are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seigr_stt.bench import main, netns
from seigr_stt.bench.cases import LOOPBACK_METRIC_KEYS, build_suite

ROW_METRICS = [key for key in LOOPBACK_METRIC_KEYS if key not in ("loss", "size")]


def test_smoke_runs_every_workload_and_prints_every_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "bench.json"
    code = main(["--smoke", "--json", str(report)])
    out = capsys.readouterr().out
    assert code == 0, out
    table = [line for line in out.splitlines() if line.startswith("| ")]
    for metric in ROW_METRICS:
        assert any(line.startswith(f"| {metric}: ") for line in table), metric
    assert "## Targets" in out
    for number in ("1a", "1b", "2", "3a", "3b", "4", "5", "6a", "6b", "7a", "7b", "8a", "8b"):
        assert any(line.startswith(f"| {number} | ") for line in table), number
    assert "loss 5%" in out  # the loss curve's table
    assert "65536 B" in out  # the message-size curve's table
    data = json.loads(report.read_text())
    assert {m["key"] for m in data["metrics"]} == set(LOOPBACK_METRIC_KEYS)
    for metric in data["metrics"]:
        for case in metric["cases"]:
            assert not case["errors"], (metric["key"], case["name"], case["errors"])


def test_only_selects_metrics_and_unknown_names_are_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert [m.key for m in build_suite(True, 5, ["rtt", "scale"])] == ["rtt", "scale"]
    with pytest.raises(SystemExit) as exc:
        main(["--smoke", "--only", "nonsense"])
    assert exc.value.code == 2
    assert "unknown metric" in capsys.readouterr().err


def test_the_real_path_is_skipped_with_its_reason_or_refused_when_required(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(netns, "probe", lambda: "needs root (uid 1000)")
    assert main(["--real-path", "on", "--only", "path_rtt"]) == 1
    assert "the real path cannot run here: needs root (uid 1000)" in capsys.readouterr().err
    assert main(["--only", "path_rtt"]) == 1  # auto: skipped, so nothing is left to run
    err = capsys.readouterr().err
    assert "real path (veth pair, MTU 1500, two network namespaces) skipped: needs root" in err
    assert "nothing to run" in err


def test_loop_both_runs_the_seigr_cases_on_both_loops_and_judges_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("uvloop")
    assert main(["--smoke", "--loop", "both", "--only", "rtt"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| rtt: RTT p50 | ")]
    systems = [row.split(" | ")[1] for row in rows]
    assert "seigr_stt UDP" in systems
    assert "seigr_stt UDP [asyncio]" in systems
    assert "seigr_stt WebSocket [asyncio]" in systems
    assert "websockets [asyncio]" not in systems  # the peers run once, on uvloop
    verdicts = [line for line in out.splitlines() if line.startswith("| P6 | ")]
    assert len(verdicts) == 4  # 2 systems x (p50, p99)
    assert all(line.rstrip(" |").endswith(("met", "NOT met")) for line in verdicts)
    assert "uvloop, and asyncio for the seigr_stt cases' [asyncio] twins" in out
