"""The plots (seigr_stt.bench.plots): which figures the real-path plot shows, and that it draws."""

from __future__ import annotations

from pathlib import Path

import pytest

from seigr_stt.bench.model import Case, CaseResult, Metric, Quantity, Suite
from seigr_stt.bench.orchestrate import environment
from seigr_stt.bench.plots import path_bars, write_plots

RATE = Quantity("rate", "handshakes", "/s")
RTT = Quantity("p50_us", "RTT p50", "µs", higher_is_better=False)


def _metric(key: str, quantity: Quantity, systems: list[str], *, netns: bool = True) -> Metric:
    cases = tuple(Case(key, s, "seigr", "seigr:x", {}, netns=netns) for s in systems)
    return Metric(key, f"{key} (details)", (quantity,), cases, rounds=3)


def _suite(metrics: list[Metric], values: dict[tuple[str, str], list[float | None]]) -> Suite:
    results = {}
    for metric in metrics:
        for case in metric.cases:
            series = values.get((metric.key, case.name))
            if series is not None:
                key = metric.quantities[0].key
                rounds = [None if v is None else {key: v} for v in series]
                results[(metric.key, case.name)] = CaseResult(case, values=rounds)
    return Suite(metrics, results, environment("asyncio", inprocess=True), "test")


def test_the_real_path_plot_has_a_bar_per_system_that_ran() -> None:
    handshakes = _metric("path_handshakes", RATE, ["seigr_stt UDP", "websockets", "aioquic"])
    rtt = _metric("path_rtt", RTT, ["seigr_stt UDP", "websockets"])
    loopback = _metric("handshakes", RATE, ["seigr_stt UDP"], netns=False)
    curve = Metric("loss", "loss", (RATE,), handshakes.cases, rounds=3, plot="loss")
    suite = _suite(
        [handshakes, rtt, loopback, curve],
        {
            ("path_handshakes", "seigr_stt UDP"): [600.0, None, 500.0, 700.0],
            ("path_handshakes", "websockets"): [1400.0, 1300.0, 1500.0],
            ("path_handshakes", "aioquic"): [None, None],  # failed every round: no bar
            ("path_rtt", "seigr_stt UDP"): [400.0, 380.0, 420.0],
            ("handshakes", "seigr_stt UDP"): [1.0],
        },
    )
    panels = path_bars(suite)
    assert [(metric.key, label) for metric, label, _ in panels] == [
        ("path_handshakes", "handshakes (/s)"),
        ("path_rtt", "RTT p50 (µs, lower is better)"),
    ]
    assert panels[0][2] == [
        ("seigr_stt UDP", 600.0, 500.0, 700.0),
        ("websockets", 1400.0, 1300.0, 1500.0),
    ]
    assert panels[1][2] == [("seigr_stt UDP", 400.0, 380.0, 420.0)]


def test_a_suite_without_real_path_results_has_no_real_path_plot() -> None:
    handshakes = _metric("path_handshakes", RATE, ["seigr_stt UDP"])
    assert path_bars(_suite([handshakes], {})) == []


def test_write_plots_draws_the_real_path_figures(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="the bench extra draws the plots")
    handshakes = _metric("path_handshakes", RATE, ["seigr_stt UDP", "websockets"])
    suite = _suite(
        [handshakes],
        {
            ("path_handshakes", "seigr_stt UDP"): [600.0, 500.0, 700.0],
            ("path_handshakes", "websockets"): [1400.0, 1300.0, 1500.0],
        },
    )
    messages = write_plots(suite, tmp_path)
    assert messages == [f"wrote {tmp_path / 'real_path.png'}"]
    assert (tmp_path / "real_path.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
