"""The core runs on ``time.monotonic()``, not on the loop's clock (issue 13): uvloop's
``loop.time()`` ticks in 1 ms steps and would quantise every RTT; wake-ups still use
``loop.call_at``."""

from __future__ import annotations

import asyncio
import importlib.util
import math
from collections.abc import Callable

import pytest

from seigr_stt import STTNode, generate_seed
from tests.aio.helpers import LOOPBACK, connect
from tests.timing import SECOND


class CoarseClockLoop(asyncio.SelectorEventLoop):
    """A loop whose clock ticks in whole milliseconds, as uvloop's does."""

    def time(self) -> float:
        return math.floor(super().time() * 1000) / 1000


def _quantised(value: float, step: float = 0.001) -> bool:
    return abs(value / step - round(value / step)) < 1e-6


async def _measure() -> list[float]:
    shared = generate_seed()
    async with (
        STTNode(generate_seed(), shared, LOOPBACK, 0, server_mode=True) as server,
        STTNode(generate_seed(), shared, LOOPBACK, 0) as client,
    ):
        session, peer = await connect(client, server, "udp")
        samples = [await session.ping(timeout=5 * SECOND) for _ in range(5)]
        await session.rotate_key(timeout=5 * SECOND)  # a timer-driven exchange still completes
        assert session.rtt is not None
        assert peer.rtt is not None
        return [*samples, session.rtt, peer.rtt]


LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {"coarse-clock": CoarseClockLoop}
if importlib.util.find_spec("uvloop") is not None:
    import uvloop

    LOOPS["uvloop"] = uvloop.new_event_loop


@pytest.mark.parametrize("loop_factory", LOOPS.values(), ids=LOOPS.keys())
def test_rtt_is_not_quantised_by_the_loop_clock(
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        figures = runner.run(_measure())
    assert all(value > 0 for value in figures), figures
    # On a 1 ms loop clock every one of these would be a whole number of milliseconds (most
    # of them 0.0 or 0.001 on loopback).
    assert sum(_quantised(value) for value in figures) <= 1, figures


def test_the_coarse_loop_really_is_coarse() -> None:
    loop = CoarseClockLoop()
    try:
        assert _quantised(loop.time())
    finally:
        loop.close()
