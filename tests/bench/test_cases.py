"""The case catalogue (seigr_stt.bench.cases): the full suite's metrics, cases and targets."""

from __future__ import annotations

from seigr_stt.bench.cases import EXTRA_RATIOS, METRIC_KEYS, TARGETS, build_suite


def test_full_suite_interleaves_five_rounds_of_every_case() -> None:
    metrics = build_suite(False, 5)
    assert [m.key for m in metrics] == list(METRIC_KEYS)
    assert all(m.rounds == 5 for m in metrics if not m.plot and m.key != "scale")
    names = {(m.key, c.name) for m in metrics for c in m.cases}
    assert len(names) == sum(len(m.cases) for m in metrics)  # every case is told apart


def test_every_target_and_extra_ratio_names_a_case_and_quantity_of_the_suite() -> None:
    metrics = {m.key: m for m in build_suite(False, 5)}
    for target in TARGETS:
        metric = metrics[target.metric]
        names = {c.name for c in metric.cases}
        assert target.quantity in {q.key for q in metric.quantities}, target.number
        assert target.system in names, target.number
        for other in (target.peer, target.system_b):
            assert not other or other in names, target.number
    for key, peers in EXTRA_RATIOS.items():
        assert set(peers) <= {c.name for c in metrics[key].cases}, key
