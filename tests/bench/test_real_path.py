"""A tiny real-path run (seigr_stt.bench.orchestrate.run_suite with a ``path_*`` metric): the
server in one network namespace and the client in the other, across a veth pair with MTU 1500
that exists only during the run. Needs root on Linux (skipped elsewhere); a 256 KiB stream each
for seigr_stt over UDP and websockets over TLS, a few seconds in all."""

from __future__ import annotations

import dataclasses

import pytest

from seigr_stt.bench import netns
from seigr_stt.bench.cases import SEIGR_UDP, WEBSOCKETS_TLS, build_suite
from seigr_stt.bench.orchestrate import run_suite

REASON = netns.unavailable_reason()


@pytest.mark.skipif(bool(REASON), reason=f"no network namespaces here: {REASON}")
def test_a_tiny_bulk_run_crosses_the_veth_path_and_leaves_nothing() -> None:
    (metric,) = build_suite(True, 1, ["path_bulk"], real_path=True)
    cases = tuple(c for c in metric.cases if c.name in (SEIGR_UDP, WEBSOCKETS_TLS))
    suite = run_suite(
        [dataclasses.replace(metric, cases=cases)],
        loop="asyncio",
        inprocess=True,  # real-path cases run in subprocesses all the same
        command="test",
    )
    path = str(suite.env["path"])
    assert path.startswith("veth pair, MTU 1500, between network namespaces"), path
    for case in cases:
        result = suite.results[(metric.key, case.name)]
        assert result.errors == [], result.errors
        assert result.finite("mbps")[0] > 0
        (raw,) = result.raw
        assert raw is not None
        assert raw["client"]["finished"] is True
    seigr = suite.results[(metric.key, SEIGR_UDP)].raw[0]
    assert seigr is not None
    assert seigr["server"]["stream"]["bytes"] == 256 * 1024  # all of it, across the path
    made = suite.env["path_namespaces"]
    assert len(made) == 2
    assert not set(made) & set(netns.list_namespaces())  # the run's namespaces are gone
