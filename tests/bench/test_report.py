"""The report (seigr_stt.bench.report): per-round ratios, target verdicts, number formatting."""

from __future__ import annotations

import math

from seigr_stt.bench.cases import SEIGR_UDP, TARGETS, with_asyncio_twins
from seigr_stt.bench.model import Case, CaseResult, Metric, Quantity, Suite, Target
from seigr_stt.bench.orchestrate import environment
from seigr_stt.bench.report import evaluate, format_value, ratios, render, suite_targets


def _suite(**series: list[float | None]) -> Suite:
    """One metric ``m`` with a case per system, each with the given per-round values of ``q``."""
    results = {}
    for system, values in series.items():
        case = Case("m", system, "seigr", "seigr:messages", {})
        rounds = [None if v is None else {"q": v} for v in values]
        results[("m", system)] = CaseResult(case, values=rounds)
    return Suite([], results, {}, "test")


def test_ratios_are_per_round_over_rounds_where_both_ran() -> None:
    assert ratios([2.0, None, 6.0, 4.0, 9.0], [1.0, 3.0, None, 0.0, 3.0]) == [2.0, 3.0]


def test_a_target_against_a_peer_is_judged_by_the_median_per_round_ratio() -> None:
    suite = _suite(A=[4.0, 6.0, 9.0], B=[2.0, 2.0, 3.0])  # ratios 2, 3, 3
    met = evaluate(suite, Target("1", "A >= 2.5x B", "m", "q", "A", ">=", 2.5, peer="B"))
    assert met is not None
    assert (met.verdict, met.ratio, met.low, met.high) == ("met", 3.0, 2.0, 3.0)
    assert (met.value, met.peer_value) == (6.0, 2.0)
    worst = evaluate(suite, Target("1", "", "m", "q", "A", ">=", 2.5, peer="B", worst=True))
    assert worst is not None
    assert (worst.verdict, worst.ratio) == ("NOT met", 2.0)


def test_a_target_without_peer_rounds_is_not_applicable_or_failed() -> None:
    suite = _suite(A=[4.0], B=[None])
    missing = evaluate(suite, Target("1", "", "m", "q", "A", ">=", 1, peer="C"))
    assert missing is not None
    assert (missing.verdict, missing.note) == ("n/a", "peer not run")
    failed = evaluate(suite, Target("1", "", "m", "q", "A", ">=", 1, peer="B"))
    assert failed is not None
    assert failed.verdict == "failed"
    assert evaluate(suite, Target("1", "", "m", "q", "C", ">=", 1)) is None


def test_a_target_against_a_recorded_figure_or_an_absolute_threshold() -> None:
    suite = _suite(A=[150.0, 250.0, 200.0])
    reference = evaluate(suite, Target("3b", "", "m", "q", "A", ">=", 1, reference=100.0))
    assert reference is not None
    assert (reference.verdict, reference.ratio, reference.peer_value) == ("met", 2.0, 100.0)
    absolute = evaluate(suite, Target("7a", "", "m", "q", "A", "<=", 8))
    assert absolute is not None
    assert (absolute.verdict, absolute.ratio) == ("NOT met", 200.0)


def test_format_value() -> None:
    assert format_value(math.nan) == "—"
    assert format_value(1234.4) == "1,234"
    assert format_value(42.4) == "42"
    assert format_value(3.14159) == "3.14"
    assert format_value(2.34, 1) == "2.3"
    assert format_value(12345.678, 2) == "12,345.68"


def test_loop_both_adds_a_verdict_per_figure_uvloop_against_asyncio() -> None:
    metric = Metric(
        "rtt",
        "RTT",
        (Quantity("rate", "rate", "/s"), Quantity("p50_us", "p50", "µs", higher_is_better=False)),
        (Case("rtt", SEIGR_UDP, "seigr", "seigr:rtt", {}),),
        3,
    )
    (twinned,) = with_asyncio_twins([metric])
    uv, asyncio_ = twinned.cases
    results = {
        ("rtt", uv.name): CaseResult(uv, values=[{"rate": 96.0, "p50_us": 110.0}] * 3),
        ("rtt", asyncio_.name): CaseResult(asyncio_, values=[{"rate": 100.0, "p50_us": 100.0}] * 3),
    }
    suite = Suite([twinned], results, environment("uvloop", inprocess=True), "test")
    outcomes = {t.quantity: evaluate(suite, t) for t in suite_targets(suite) if t.number == "P6"}
    rate, p50 = outcomes["rate"], outcomes["p50_us"]
    assert rate is not None
    assert (rate.verdict, rate.ratio) == ("met", 0.96)
    assert p50 is not None
    assert (p50.verdict, p50.ratio) == ("NOT met", 1.1)
    assert "| P6 | seigr_stt UDP: uvloop >= 0.95x asyncio, rtt p50 |" in render(suite)
    assert len(suite_targets(Suite([metric], {}, {}, "test"))) == len(TARGETS)
