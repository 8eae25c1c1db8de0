"""The case catalogue (seigr_stt.bench.cases): the full suite's metrics, cases and targets."""

from __future__ import annotations

from seigr_stt.bench.cases import (
    EXTRA_RATIOS,
    LOOPBACK_METRIC_KEYS,
    METRIC_KEYS,
    PATH_METRIC_KEYS,
    TARGETS,
    WEBSOCKETS_TLS,
    build_suite,
)


def test_full_suite_interleaves_five_rounds_of_every_case() -> None:
    assert [m.key for m in build_suite(False, 5)] == list(LOOPBACK_METRIC_KEYS)
    metrics = build_suite(False, 5, real_path=True)
    assert [m.key for m in metrics] == list(METRIC_KEYS)
    assert all(m.rounds == 5 for m in metrics if not m.plot and m.key != "scale")
    names = {(m.key, c.name) for m in metrics for c in m.cases}
    assert len(names) == sum(len(m.cases) for m in metrics)  # every case is told apart


def test_every_target_and_extra_ratio_names_a_case_and_quantity_of_the_suite() -> None:
    metrics = {m.key: m for m in build_suite(False, 5, real_path=True)}
    for target in TARGETS:
        metric = metrics[target.metric]
        names = {c.name for c in metric.cases}
        assert target.quantity in {q.key for q in metric.quantities}, target.number
        assert target.system in names, target.number
        for other in (target.peer, target.system_b):
            assert not other or other in names, target.number
    for key, peers in EXTRA_RATIOS.items():
        assert set(peers) <= {c.name for c in metrics[key].cases}, key


def test_real_path_metrics_run_every_case_across_namespaces_with_websockets_over_tls() -> None:
    metrics = build_suite(False, 5, real_path=True)
    for metric in metrics:
        across = metric.key in PATH_METRIC_KEYS
        assert all(case.netns == across for case in metric.cases), metric.key
        assert all(case.relay is None and case.pin is None for case in metric.cases if across)
    path = {m.key: m for m in metrics if m.key in PATH_METRIC_KEYS}
    assert set(path) == set(PATH_METRIC_KEYS)
    for metric in path.values():
        tls = [c for c in metric.cases if c.system == WEBSOCKETS_TLS]
        assert len(tls) == 1, metric.key
        assert tls[0].params["tls"] is True, metric.key


def test_only_may_name_a_real_path_metric_that_is_not_built() -> None:
    assert build_suite(True, 1, ["path_rtt"]) == []
    assert [m.key for m in build_suite(True, 1, ["path_rtt"], real_path=True)] == ["path_rtt"]


def test_a_websocket_case_keeps_its_session_on_websocket() -> None:
    from seigr_stt.bench.seigr import _config

    # Both nodes reach each other's UDP address: with migration the session would leave the
    # WebSocket it is meant to measure (protocol.md §18).
    assert _config({"transport": "ws"}).migration is False
    assert _config({"transport": "udp"}).migration is True
