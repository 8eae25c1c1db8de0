"""The case catalogue (seigr_stt.bench.cases): the full suite's metrics, cases and targets."""

from __future__ import annotations

from seigr_stt.bench.cases import (
    ASYNCIO_TWIN,
    EXTRA_RATIOS,
    LOOP_PARITY,
    LOOPBACK_METRIC_KEYS,
    METRIC_KEYS,
    PATH_METRIC_KEYS,
    SEIGR_WS,
    TARGETS,
    WEBSOCKETS_TLS,
    build_suite,
    loop_targets,
    with_asyncio_twins,
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


def test_loop_both_twins_every_seigr_case_on_asyncio_right_after_it() -> None:
    metrics = build_suite(False, 3, ["msg64", "rtt"])
    twinned = with_asyncio_twins(metrics)
    for before, after in zip(metrics, twinned, strict=True):
        expected: list[tuple[str, str]] = []
        for case in before.cases:
            if case.server == "seigr":
                expected += [(case.name, "uvloop"), (f"{case.name} [{ASYNCIO_TWIN}]", "asyncio")]
            else:
                expected.append((case.name, ""))  # the peers keep the run's loop
        assert [(c.name, c.loop) for c in after.cases] == expected, before.key
        assert len({c.name for c in after.cases}) == len(after.cases)
    rtt = next(m for m in twinned if m.key == "rtt")
    assert any(c.loop == "asyncio" and c.system == SEIGR_WS for c in rtt.cases)


def test_loop_targets_judge_each_figure_of_each_twinned_case() -> None:
    twinned = with_asyncio_twins(build_suite(False, 3, ["msg64", "rtt", "rotation"]))
    targets = loop_targets(twinned)
    by_metric = {m.key: m for m in twinned}
    pairs = set()
    for target in targets:
        metric = by_metric[target.metric]
        names = {c.name for c in metric.cases}
        assert target.number == "P6"
        assert target.system in names
        assert target.system_b in names
        assert target.system_b.endswith(f"{ASYNCIO_TWIN}]")
        quantity = next(q for q in metric.quantities if q.key == target.quantity)
        if quantity.higher_is_better:
            assert (target.op, target.threshold) == (">=", LOOP_PARITY)
        else:  # an RTT: uvloop's at most 1/0.95 of asyncio's
            assert target.op == "<="
            assert abs(target.threshold - 1 / LOOP_PARITY) < 1e-3
        pairs.add((target.metric, target.system, target.quantity))
    expected = {
        (m.key, c.name, q.key)
        for m in twinned
        for c in m.cases
        if c.loop == "uvloop"
        for q in m.quantities
    }
    assert pairs == expected
    assert len(targets) == len(expected)
    assert ("rotation", "seigr_stt UDP [rotating]", "mbps") in pairs  # variants keep theirs
    assert loop_targets(build_suite(False, 3, ["msg64"])) == ()  # no twins, no targets
