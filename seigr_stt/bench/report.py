"""The report of a run: per-round ratios, the verdict of each target, the Markdown table and the
JSON dump.

Ratios are taken per round (seigr_stt's value over the peer's value of the same round) and reported
as their median and min–max.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from seigr_stt.bench.cases import (
    EXTRA_RATIOS,
    PATH_METRIC_KEYS,
    PATH_PEERS,
    SEIGR_UDP,
    SEIGR_WS,
    TARGETS,
    loop_targets,
)
from seigr_stt.bench.common import JSON, median
from seigr_stt.bench.model import Case, CaseResult, Metric, Quantity, Suite, Target

__all__ = [
    "TargetOutcome",
    "evaluate",
    "failed_cases",
    "format_value",
    "ratios",
    "render",
    "suite_targets",
    "to_json",
]


def suite_targets(suite: Suite) -> tuple[Target, ...]:
    """The targets judged for ``suite``: the fixed ones, and with ``--loop both`` uvloop against
    asyncio for every figure of every twinned case (:func:`seigr_stt.bench.cases.loop_targets`)."""
    return (*TARGETS, *loop_targets(suite.metrics))


# -- statistics and the table ---------------------------------------------------------------------
def format_value(value: float, digits: int = 0) -> str:
    """A value as the table shows it: ``—`` when missing or not finite, else ``digits`` decimals
    (``digits=0``: a whole number with thousands separators, three significant figures below 10)."""
    if value is None or not math.isfinite(value):
        return "—"
    if digits == 0 and abs(value) >= 100:
        return f"{value:,.0f}"
    if digits == 0:
        return f"{value:.3g}" if abs(value) < 10 else f"{value:.0f}"
    return f"{value:,.{digits}f}"


def _ratio_fmt(value: float) -> str:
    if not math.isfinite(value):
        return "—"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def ratios(a: Sequence[float | None], b: Sequence[float | None]) -> list[float]:
    """Per-round ratios a[r] / b[r] over the rounds where both ran."""
    return [x / y for x, y in zip(a, b, strict=False) if x is not None and y]


@dataclass
class TargetOutcome:
    target: Target
    value: float
    ratio: float
    low: float
    high: float
    peer_value: float
    verdict: str
    note: str = ""


def evaluate(suite: Suite, target: Target) -> TargetOutcome | None:
    subject = suite.result(target.metric, target.system)
    if subject is None:
        return None
    series = subject.series(target.quantity)
    values = [v for v in series if v is not None]
    value = median(values)
    if target.peer or target.system_b:
        peer = suite.result(target.metric, target.peer or target.system_b)
        if peer is None or peer.case.skip_reason:
            reason = peer.case.skip_reason if peer is not None else "peer not run"
            return TargetOutcome(
                target, value, math.nan, math.nan, math.nan, math.nan, "n/a", reason
            )
        rs = ratios(series, peer.series(target.quantity))
        peer_value = median(peer.finite(target.quantity))
    elif target.reference:
        rs = [v / target.reference for v in values]
        peer_value = target.reference
    else:
        rs = values
        peer_value = math.nan
    if not rs:
        return TargetOutcome(target, value, math.nan, math.nan, math.nan, peer_value, "failed")
    ratio = median(rs)
    if target.worst:
        ratio = max(rs) if target.op == "<=" else min(rs)
    met = ratio >= target.threshold if target.op == ">=" else ratio <= target.threshold
    return TargetOutcome(
        target, value, ratio, min(rs), max(rs), peer_value, "met" if met else "NOT met"
    )


def _peer_label(target: Target) -> str:
    if target.peer:
        return target.peer
    if target.system_b:
        return target.system_b.split("[", 1)[-1].rstrip("]")
    return target.reference_name


def _row_ratios(suite: Suite, metric: Metric, quantity: Quantity, case: Case) -> str:
    parts: list[str] = []
    result = suite.result(metric.key, case.name)
    if result is None:
        return ""
    peers: list[str] = []
    for target in suite_targets(suite):
        if (
            target.metric == metric.key
            and target.quantity == quantity.key
            and target.system == case.name
            and (target.peer or target.system_b)
        ):
            peers.append(target.peer or target.system_b)
    if case.system in (SEIGR_UDP, SEIGR_WS) and not case.variant:
        peers += [x for x in EXTRA_RATIOS.get(metric.key, ()) if x not in peers]
    for peer_name in peers:
        peer = suite.result(metric.key, peer_name)
        if peer is None or peer_name == case.name:
            continue
        rs = ratios(result.series(quantity.key), peer.series(quantity.key))
        if rs:
            label = peer_name if "[" not in peer_name else peer_name.split("[", 1)[1].rstrip("]")
            parts.append(
                f"{_ratio_fmt(median(rs))}x {label} ({_ratio_fmt(min(rs))}–{_ratio_fmt(max(rs))})"
            )
    return "; ".join(parts)


def _cell(result: CaseResult, quantity: Quantity) -> tuple[str, str]:
    if result.case.skip_reason:
        return "skipped", ""
    values = result.finite(quantity.key)
    if not values:
        return "failed", ""
    spread = (
        f"{format_value(min(values), quantity.digits)}–{format_value(max(values), quantity.digits)}"
    )
    return format_value(median(values), quantity.digits), spread


def _path_table(suite: Suite) -> list[str]:
    """The real-path summary: medians per system, then seigr_stt ÷ each peer (median and
    min–max of per-round ratios). No lines when no real-path metric ran."""
    metrics = [m for m in suite.metrics if m.key in PATH_METRIC_KEYS]
    if not metrics:
        return []
    systems = list(dict.fromkeys(c.name for m in metrics for c in m.cases))
    lines = [
        "## Real path (veth pair, MTU 1500, between two network namespaces)",
        "",
        "Medians of interleaved rounds (↓: lower is better).",
        "",
        "| metric | " + " | ".join(systems) + " |",
        "|---|" + "---:|" * len(systems),
    ]
    rows: list[tuple[Metric, Quantity]] = [(m, q) for m in metrics for q in m.quantities]
    for metric, quantity in rows:
        cells = []
        for name in systems:
            result = suite.result(metric.key, name)
            cells.append(_cell(result, quantity)[0] if result is not None else "")
        arrow = "" if quantity.higher_is_better else " ↓"
        label = f"{quantity.label} ({quantity.unit}){arrow}"
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "seigr_stt ÷ peer: median (min–max) of per-round ratios.",
        "",
        "| metric | " + " | ".join(PATH_PEERS) + " |",
        "|---|" + "---:|" * len(PATH_PEERS),
    ]
    for metric, quantity in rows:
        for subject in (SEIGR_UDP, SEIGR_WS):
            mine = suite.result(metric.key, subject)
            if mine is None or not mine.finite(quantity.key):
                continue
            cells = []
            for peer_name in PATH_PEERS:
                peer = suite.result(metric.key, peer_name)
                rs = ratios(mine.series(quantity.key), peer.series(quantity.key)) if peer else []
                cells.append(
                    f"{_ratio_fmt(median(rs))}× ({_ratio_fmt(min(rs))}–{_ratio_fmt(max(rs))})"
                    if rs
                    else "—"
                )
            arrow = "" if quantity.higher_is_better else " ↓"
            lines.append(f"| {quantity.label}{arrow}, {subject} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def render(suite: Suite) -> str:
    """The Markdown report: environment, results, targets, curves, failures."""
    env = suite.env
    lines = [
        "# seigr_stt benchmark",
        "",
        f"Command: `{suite.command}`  ",
        f"Machine: {env['nproc']} CPUs, {env['cpu']}; Python {env['python']} "
        f"({env['implementation']}), loop {env['loop']}, AEAD {env['aead']}; {env['mode']}  ",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()) + "  ",
        f"Duration: {suite.elapsed_s:.0f} s; load average (1, 5, 15 min) before "
        f"{env['load_before']}, after {env.get('load_after', '?')}  ",
        f"Real path: {env.get('path', 'not asked for')}",
        "",
        *_path_table(suite),
        "## Results",
        "",
        "Medians of interleaved rounds, with min–max over the rounds; ratios are medians (min–max) "
        "of per-round ratios.",
        "",
        "| metric | system | median | min–max | unit | rounds | vs peer |",
        "|---|---|---:|---:|---|---:|---|",
    ]
    for metric in suite.metrics:
        if metric.plot:
            continue
        for quantity in metric.quantities:
            for case in metric.cases:
                result = suite.result(metric.key, case.name)
                if result is None:
                    continue
                mid, spread = _cell(result, quantity)
                n = len(result.finite(quantity.key))
                lines.append(
                    f"| {metric.key}: {quantity.label} | {case.name} | {mid} | {spread} | "
                    f"{quantity.unit} | {n} | {_row_ratios(suite, metric, quantity, case)} |"
                )
    lines += [
        "",
        "## Targets (docs/performance.md; P…: the performance issue's, on the real path)",
        "",
        "| # | target | seigr_stt | peer | peer value | ratio (min–max) | verdict |",
        "|---|---|---:|---|---:|---|---|",
    ]
    wanted = {m.key for m in suite.metrics}
    for target in suite_targets(suite):
        if target.metric not in wanted:
            continue
        outcome = evaluate(suite, target)
        if outcome is None:
            continue
        quantity = next(
            q
            for m in suite.metrics
            if m.key == target.metric
            for q in m.quantities
            if q.key == target.quantity
        )
        relative = bool(target.peer or target.system_b or target.reference)
        ratio = (
            f"{_ratio_fmt(outcome.ratio)} ({_ratio_fmt(outcome.low)}–{_ratio_fmt(outcome.high)}) "
            f"{target.op} {target.threshold:g}"
            if relative
            else f"{target.op} {target.threshold:g} {quantity.unit}"
        )
        verdict = outcome.verdict + (f" ({outcome.note})" if outcome.note else "")
        lines.append(
            f"| {target.number} | {target.text} | {format_value(outcome.value, quantity.digits)} "
            f"{quantity.unit} | {_peer_label(target) or '—'} | "
            f"{format_value(outcome.peer_value, quantity.digits)} | {ratio} | {verdict} |"
        )
    for metric in suite.metrics:
        if not metric.plot:
            continue
        variants = list(dict.fromkeys(c.variant for c in metric.cases))
        systems = list(dict.fromkeys(c.system for c in metric.cases))
        quantity = metric.quantities[0]
        lines += [
            "",
            f"## {metric.title} ({quantity.unit}, median of {metric.rounds} rounds)",
            "",
            "| "
            + ("loss" if metric.plot == "loss" else "size")
            + " | "
            + " | ".join(systems)
            + " |",
            "|---|" + "---:|" * len(systems),
        ]
        for variant in variants:
            cells = []
            for system in systems:
                result = suite.result(metric.key, f"{system} [{variant}]")
                cells.append(_cell(result, quantity)[0] if result is not None else "")
            lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    failures = [(key, e) for key, result in suite.results.items() for e in result.errors]
    skipped = sorted(
        {
            f"{r.case.system}: {r.case.skip_reason}"
            for r in suite.results.values()
            if r.case.skip_reason
        }
    )
    if failures or skipped:
        lines += ["", "## Failures and skips", ""]
        lines += [f"- {metric} / {name}: {error}" for (metric, name), error in failures]
        lines += [f"- skipped {s}" for s in skipped]
    return "\n".join(lines) + "\n"


def to_json(suite: Suite) -> JSON:
    return {
        "command": suite.command,
        "environment": suite.env,
        "elapsed_s": suite.elapsed_s,
        "metrics": [
            {
                "key": m.key,
                "title": m.title,
                "rounds": m.rounds,
                "cases": [
                    {
                        "name": c.name,
                        "system": c.system,
                        "variant": c.variant,
                        "params": {k: v for k, v in c.params.items() if k != "shared"},
                        "pin": c.pin,
                        "relay": c.relay,
                        "skipped": c.skip_reason,
                        "values": suite.results[(m.key, c.name)].values,
                        "errors": suite.results[(m.key, c.name)].errors,
                        "raw": suite.results[(m.key, c.name)].raw,
                    }
                    for c in m.cases
                ],
            }
            for m in suite.metrics
        ],
        "targets": [
            {
                "number": o.target.number,
                "text": o.target.text,
                "value": o.value,
                "ratio": o.ratio,
                "min": o.low,
                "max": o.high,
                "verdict": o.verdict,
            }
            for t in suite_targets(suite)
            if any(m.key == t.metric for m in suite.metrics)
            for o in [evaluate(suite, t)]
            if o is not None
        ],
    }


def failed_cases(suite: Suite) -> Iterable[str]:
    return (f"{k[0]}/{k[1]}" for k, r in suite.results.items() if r.errors)
