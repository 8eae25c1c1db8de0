"""Shared pieces of the benchmark workloads: types, markers, clocks, memory, statistics and the
round-trip measuring loop of every RTT client."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import resource
import statistics
import time
import zlib
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = [
    "DONE",
    "END",
    "JSON",
    "ClientFn",
    "Ready",
    "Receiver",
    "RelayFn",
    "RoundTrip",
    "ServerFn",
    "cancel_all",
    "chunk_for",
    "loop_name",
    "measure_rtt",
    "median",
    "p50_p99",
    "poll_until",
    "rss_bytes",
    "run_loop",
    "settled_rss",
]

JSON = dict[str, Any]
"""Parameters, addresses and results: plain JSON-able dictionaries (they cross processes)."""

Ready = Callable[[JSON], None]
ServerFn = Callable[[JSON, Ready, asyncio.Event], Coroutine[Any, Any, JSON]]
"""``server(params, ready, stop)``: bind, call ``ready(address)``, serve until ``stop`` is set,
return what the server measured."""
ClientFn = Callable[[JSON, JSON], Coroutine[Any, Any, JSON]]
"""``client(params, address)``: run the workload against the server, return what it measured."""
RelayFn = ServerFn

#: First byte of the message that ends a one-way run, and the server's answer to it.
END = b"\xffEND"
DONE = b"DONE"

T = TypeVar("T")


def chunk_for(index: int, size: int) -> bytes:
    """Chunk ``index`` of a bulk transfer: its index then filler, so loss, duplication or
    reordering of chunks changes the CRC of the stream."""
    head = index.to_bytes(8, "big")
    return head + bytes(size - len(head)) if size > len(head) else head[:size]


@dataclass
class Receiver:
    """Counts what a sink received and when: rates are measured on the receiving side, from the
    first to the last arrival."""

    count: int = 0
    nbytes: int = 0
    first: float | None = None
    last: float = 0.0
    crc: int = 0
    check: bool = False
    first_len: int = 0

    def add(self, data: bytes, n: int = 1) -> None:
        now = time.perf_counter()
        if self.first is None:
            self.first = now
            self.first_len = len(data)
        self.last = now
        self.count += n
        self.nbytes += len(data)
        if self.check:
            self.crc = zlib.crc32(data, self.crc)

    def result(self) -> JSON:
        elapsed = self.last - self.first if self.first is not None else 0.0
        # The first arrival starts the clock, so it is not counted in the rate.
        first_len = self.first_len
        return {
            "count": self.count,
            "bytes": self.nbytes,
            "elapsed_s": elapsed,
            "rate": (self.count - 1) / elapsed if elapsed > 0 else 0.0,
            "mbps": (self.nbytes - first_len) / elapsed / 1e6 if elapsed > 0 else 0.0,
            "crc": self.crc,
        }


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def p50_p99(samples: Sequence[float]) -> tuple[float, float]:
    """The 50th and 99th percentiles, interpolated linearly between the closest ranks
    (``statistics.quantiles(method="inclusive")``); NaN for no samples."""
    if len(samples) < 2:  # statistics.quantiles() needs two
        only = samples[0] if samples else float("nan")
        return only, only
    return statistics.median(samples), statistics.quantiles(samples, n=100, method="inclusive")[98]


RoundTrip = Callable[[], Awaitable[bool]]
"""Sends one message and waits for its echo; False when the echo was lost."""


async def measure_rtt(params: JSON, round_trip: RoundTrip) -> JSON:
    """``warmup + count`` sequential round trips, the first ``warmup`` untimed, stopping early
    once ``duration_s`` has passed (checked after each echo that came back); ``p50_us`` and
    ``p99_us`` of the timed ones in µs. An echo that did not come back (``round_trip()`` returned
    False) counts in ``lost`` and is not timed."""
    warmup, count, duration = int(params["warmup"]), int(params["count"]), params["duration_s"]
    samples: list[float] = []
    lost = 0
    start = time.perf_counter()
    for i in range(warmup + count):
        t0 = time.perf_counter_ns()
        if not await round_trip():
            lost += 1
            continue
        if i >= warmup:
            samples.append((time.perf_counter_ns() - t0) / 1000)
        if time.perf_counter() - start > duration:
            break
    p50, p99 = p50_p99(samples)
    return {"samples": len(samples), "lost": lost, "p50_us": p50, "p99_us": p99}


def rss_bytes() -> int:
    """Resident set size of this process now (Linux /proc), else the peak from getrusage."""
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):  # pragma: no cover - not Linux
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


async def settled_rss() -> int:
    """RSS after a full garbage collection and a turn of the loop."""
    await asyncio.sleep(0.05)
    gc.collect()
    return rss_bytes()


def loop_name(requested: str) -> str:
    """``"uvloop"`` when requested (or ``auto``) and importable, else ``"asyncio"``."""
    if requested == "asyncio" or os.name == "nt":
        return "asyncio"
    try:
        import uvloop  # noqa: F401
    except ImportError:
        if requested == "uvloop":
            raise
        return "asyncio"
    return "uvloop"


def run_loop(main: Coroutine[Any, Any, T], loop: str) -> T:
    """Run ``main`` in a fresh event loop of the given kind."""
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


async def poll_until(done: Callable[[], bool], interval: float = 0.0005) -> None:
    """Wait until ``done()`` is true, checking every ``interval`` seconds: for send buffers
    that offer no event to wait on (asyncio's datagram transport, aioquic's stream buffers)."""
    while not done():  # noqa: ASYNC110 - there is no event to wait on
        await asyncio.sleep(interval)


async def cancel_all(tasks: Sequence[asyncio.Task[Any]]) -> None:
    """Cancel tasks and wait for them to end (no warnings about pending tasks)."""
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(BaseException):
            await task
