"""The pyzmq + CURVE peer of the benchmark (seigr_stt.bench.zmqcurve): a sink and a sender on
blocking PAIR sockets over loopback TCP, counted like every other peer."""

from __future__ import annotations

import sys

import pytest

from seigr_stt.bench import worker
from seigr_stt.bench.cases import PYZMQ
from seigr_stt.bench.model import Case
from seigr_stt.bench.orchestrate import measure


def _spec(duration: float) -> dict[str, object]:
    return {
        "server": "zmq",
        "client": "zmq:messages",
        "params": {"size": 64, "count": 5000, "duration_s": duration, "mode": "sink"},
        "timeout_s": 30.0,
    }


async def test_every_message_sent_over_curve_is_counted_by_the_sink() -> None:
    pytest.importorskip("zmq")
    out = await worker.run_case_inprocess(_spec(0.2))
    client, server = out["client"], out["server"]
    assert client["finished"] is True  # the sink answered the end marker: nothing in flight
    assert 0 < client["sent"] <= 5000
    assert server["messages"]["count"] == client["sent"]
    assert server["messages"]["bytes"] == 64 * client["sent"]
    case = Case("path_msgs", PYZMQ, "zmq", "zmq:messages", {}, "", None, None, 30.0, False)
    values = measure(case, out)
    assert values["delivered_pct"] == 100.0
    assert values["rate"] == server["messages"]["rate"] > 0


async def test_without_pyzmq_the_case_fails_with_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "zmq", None)  # import zmq now raises ImportError
    with pytest.raises(worker.CaseFailed, match="pyzmq is not installed"):
        await worker.run_case_inprocess(_spec(0.1))
