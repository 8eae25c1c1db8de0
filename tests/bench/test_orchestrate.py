"""Running the suite (seigr_stt.bench.orchestrate): the quantities measured from what a case's
server and client reported."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Coroutine
from typing import Any

import pytest

from seigr_stt.bench import orchestrate
from seigr_stt.bench.cases import RAW, SEIGR_UDP
from seigr_stt.bench.common import JSON
from seigr_stt.bench.model import Case
from seigr_stt.bench.netns import VethPath
from seigr_stt.bench.orchestrate import _sides, measure


def _case(server: str, client: str, **params: object) -> Case:
    return Case("metric", SEIGR_UDP, server, client, dict(params))


def test_rtt_is_the_client_percentiles() -> None:
    raw: JSON = {"server": {}, "client": {"samples": 3, "p50_us": 120, "p99_us": 480}}
    assert measure(_case("seigr", "seigr:rtt"), raw) == {"p50_us": 120.0, "p99_us": 480.0}


def test_bulk_counts_bytes_lost_and_a_crc_mismatch_as_a_loss() -> None:
    stream: JSON = {"mbps": 12.5, "bytes": 1000, "crc": 1}
    client: JSON = {"bytes": 1000, "crc": 2, "rotations": 3, "finished": True}
    raw: JSON = {"server": {"stream": stream}, "client": client}
    values = measure(_case("seigr", "seigr:bulk", check=True), raw)
    assert values == {"mbps": 12.5, "lost_bytes": 1.0, "rotations": 3.0}
    raw["client"] = {**client, "bytes": 1500, "crc": 1}
    assert measure(_case("seigr", "seigr:bulk", check=True), raw)["lost_bytes"] == 500.0
    raw["client"] = {**client, "finished": False}
    with pytest.raises(RuntimeError, match="never confirmed"):
        measure(_case("seigr", "seigr:bulk"), raw)


def test_one_way_rates_are_the_receivers_and_raw_udp_needs_no_confirmation() -> None:
    got: JSON = {"rate": 900.0, "mbps": 0.5, "count": 450}
    raw: JSON = {"server": {"messages": got}, "client": {"sent": 500}}
    blast = Case("msg64", RAW, "raw", "raw:blast", {})
    assert measure(blast, raw) == {"rate": 900.0, "mbps": 0.5, "delivered_pct": 90.0}
    with pytest.raises(RuntimeError, match="never confirmed"):
        measure(_case("seigr", "seigr:messages"), raw)


def test_a_real_path_case_puts_its_server_and_client_each_in_its_namespace() -> None:
    path = VethPath("ns-s", "ns-c", "if-s", "if-c", "10.1.2.1", "10.1.2.2", 1500)
    case = Case("path_rtt", SEIGR_UDP, "seigr", "seigr:rtt", {"size": 64}, netns=True)
    server, client, server_prefix, client_prefix = _sides(case, path)
    assert (server, client) == ({"size": 64, "host": "10.1.2.1"}, {"size": 64, "host": "10.1.2.2"})
    assert server_prefix == ["ip", "netns", "exec", "ns-s"]
    assert client_prefix == ["ip", "netns", "exec", "ns-c"]
    with pytest.raises(RuntimeError, match="needs the veth path"):
        _sides(case, None)
    with pytest.raises(ValueError, match="relay"):
        _sides(dataclasses.replace(case, relay={"loss": 0.1}), path)
    loopback = dataclasses.replace(case, netns=False)
    assert _sides(loopback, path) == ({"size": 64}, {"size": 64}, [], [])


@pytest.mark.parametrize(("inprocess", "netns"), [(True, False), (False, False), (False, True)])
def test_a_case_that_names_its_loop_runs_on_it_whatever_the_runs_loop(
    monkeypatch: pytest.MonkeyPatch, inprocess: bool, netns: bool
) -> None:
    """``--loop both``: the asyncio twin runs on asyncio in a uvloop run, in process, or in its
    subprocesses (the loop goes into their spec; the parent waits on asyncio), across the veth
    path too."""
    ran_on: list[str] = []  # the loop run_loop was given
    workers_on: list[str] = []  # the loop handed to the subprocesses

    async def fake_subprocess(case: Case, loop: str, path: VethPath | None = None) -> JSON:
        workers_on.append(loop)
        return {}

    def fake_run_loop(main: Coroutine[Any, Any, JSON], loop: str) -> JSON:
        ran_on.append(loop)
        if getattr(main, "cr_code", None) is fake_subprocess.__code__:
            return asyncio.run(main)
        main.close()  # run_case_inprocess: not run here
        return {}

    monkeypatch.setattr(orchestrate, "run_loop", fake_run_loop)
    monkeypatch.setattr(orchestrate, "_run_subprocess", fake_subprocess)
    case = Case("m", SEIGR_UDP, "seigr", "seigr:rtt", {}, netns=netns)
    for own, expected in (("", "uvloop"), ("asyncio", "asyncio"), ("uvloop", "uvloop")):
        ran_on.clear()
        workers_on.clear()
        orchestrate.run_case(dataclasses.replace(case, loop=own), "uvloop", inprocess)
        if inprocess and not netns:
            assert (ran_on, workers_on) == ([expected], [])
        else:
            assert (ran_on, workers_on) == (["asyncio"], [expected])
