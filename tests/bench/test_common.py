"""Shared pieces of the workloads (seigr_stt.bench.common): the RTT loop and its percentiles."""

from __future__ import annotations

import math

import pytest

from seigr_stt.bench.common import measure_rtt, p50_p99


@pytest.mark.parametrize(
    ("samples", "p50", "p99"),
    [
        ([4.0, 1.0, 3.0, 2.0], 2.5, 3.97),  # ranks interpolated linearly: (n - 1) * q / 100
        ([float(x) for x in range(100, 0, -1)], 50.5, 99.01),
        ([7.0, 7.0, 9.0], 7.0, 8.96),
        ([5.0], 5.0, 5.0),
    ],
)
def test_p50_p99_interpolate_between_the_closest_ranks(
    samples: list[float], p50: float, p99: float
) -> None:
    assert p50_p99(samples) == pytest.approx((p50, p99))


def test_p50_p99_of_no_samples_are_nan() -> None:
    assert all(math.isnan(v) for v in p50_p99([]))


async def test_measure_rtt_times_count_round_trips_after_the_warmup() -> None:
    calls = 0

    async def round_trip() -> bool:
        nonlocal calls
        calls += 1
        return True

    result = await measure_rtt({"warmup": 3, "count": 10, "duration_s": 60.0}, round_trip)
    assert calls == 13
    assert (result["samples"], result["lost"]) == (10, 0)
    assert result["p50_us"] <= result["p99_us"]


async def test_measure_rtt_counts_lost_echoes_without_timing_them() -> None:
    outcomes = iter([True, False, True, False, True])  # round 0 is the warm-up

    async def round_trip() -> bool:
        return next(outcomes)

    result = await measure_rtt({"warmup": 1, "count": 4, "duration_s": 60.0}, round_trip)
    assert (result["samples"], result["lost"]) == (2, 2)
    assert set(result) == {"samples", "lost", "p50_us", "p99_us"}


async def test_measure_rtt_stops_once_the_duration_has_passed() -> None:
    calls = 0

    async def round_trip() -> bool:
        nonlocal calls
        calls += 1
        return True

    result = await measure_rtt({"warmup": 0, "count": 10, "duration_s": -1.0}, round_trip)
    assert (calls, result["samples"]) == (1, 1)
    assert result["p50_us"] == result["p99_us"]
