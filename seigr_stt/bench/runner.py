"""The suite: which cases run, interleaving of rounds, medians, ratios, targets and the table.

Every case is a server, a client and sometimes an impairing relay, each in a fresh subprocess
(``python -m seigr_stt.bench.worker``) on a fresh event loop, bounded by a timeout; smoke mode runs
them in this process, still on a fresh event loop per case. Rounds are interleaved: round 1 of
every case of a metric, then round 2, ... so slow drifts of a shared machine hit every system
alike. Ratios are taken per round (seigr_stt's value over the peer's value of the same round) and
reported as their median and min–max.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import IO, Any

from seigr_stt import generate_seed
from seigr_stt.bench import quic
from seigr_stt.bench.common import JSON, median, run_loop
from seigr_stt.bench.worker import MARK, run_case_inprocess

__all__ = [
    "Case",
    "CaseResult",
    "Metric",
    "Quantity",
    "Suite",
    "Target",
    "build_suite",
    "environment",
    "render",
    "run_suite",
]

SEIGR_UDP = "seigr_stt UDP"
SEIGR_WS = "seigr_stt WebSocket"
RAW = "raw UDP + ChaCha20-Poly1305"
WEBSOCKETS = "websockets"
AIOQUIC = "aioquic"

#: py-libp2p 0.8 (TCP, Noise, yamux) bulk MB/s from docs/performance.md: not run here (its
#: stack is not a dependency), so targets against it compare with this recorded figure.
LIBP2P_BULK_MBPS = 100.0


@dataclass(frozen=True)
class Quantity:
    key: str
    label: str
    unit: str
    higher_is_better: bool = True
    digits: int = 0


@dataclass(frozen=True)
class Case:
    metric: str
    system: str
    server: str
    client: str
    params: JSON
    variant: str = ""
    pin: tuple[int, ...] | None = None
    relay: JSON | None = None
    timeout_s: float = 60.0

    @property
    def name(self) -> str:
        return f"{self.system} [{self.variant}]" if self.variant else self.system

    @property
    def skip_reason(self) -> str:
        if self.server == "aioquic" and not quic.AVAILABLE:
            return quic.REASON
        return ""


@dataclass(frozen=True)
class Metric:
    key: str
    title: str
    quantities: tuple[Quantity, ...]
    cases: tuple[Case, ...]
    rounds: int
    plot: str = ""  # "loss" or "size": the cases are points of a curve


@dataclass(frozen=True)
class Target:
    number: str
    text: str
    metric: str
    quantity: str
    system: str
    op: str  # ">=" or "<="
    threshold: float
    peer: str = ""  # a system of the same metric: the value is a per-round ratio
    reference: float = 0.0  # else a fixed figure to divide by (recorded, not run here)
    reference_name: str = ""
    system_b: str = ""  # or a second case of the same system (rotation: with vs without)
    worst: bool = False  # judge by the worst round, not the median


@dataclass
class CaseResult:
    case: Case
    values: list[dict[str, float] | None] = field(default_factory=list)
    raw: list[JSON | None] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def series(self, quantity: str) -> list[float | None]:
        return [
            None if v is None or not math.isfinite(v.get(quantity, math.nan)) else v[quantity]
            for v in self.values
        ]

    def finite(self, quantity: str) -> list[float]:
        return [v for v in self.series(quantity) if v is not None]


@dataclass
class Suite:
    metrics: list[Metric]
    results: dict[tuple[str, str], CaseResult]  # (metric, case name)
    env: JSON
    command: str
    elapsed_s: float = 0.0

    def result(self, metric: str, name: str) -> CaseResult | None:
        return self.results.get((metric, name))


# -- the cases ----------------------------------------------------------------------------------
def build_suite(smoke: bool, rounds: int, only: Sequence[str] | None = None) -> list[Metric]:
    """Every metric with its cases; ``smoke`` makes every case tiny and one round."""
    shared = generate_seed().hex()

    def p(**kw: Any) -> JSON:
        return {"shared": shared, **kw}

    s = smoke
    dur = 0.05 if s else 2.0
    bulk_dur = 0.1 if s else 3.0
    hs = {"count": 2 if s else 300, "duration_s": 1.0 if s else 3.0}
    rtt: JSON = {"size": 64, "warmup": 1 if s else 200, "count": 5 if s else 3000}
    rtt["duration_s"] = 1.0 if s else 4.0
    big = 1 << 40
    plot_rounds = 1 if s else min(rounds, 3)
    rounds = 1 if s else rounds

    def seigr(metric: str, transport: str, client: str, **kw: Any) -> Case:
        system = SEIGR_UDP if transport == "udp" else SEIGR_WS
        timeout = kw.pop("timeout_s", 60.0)
        variant = kw.pop("variant", "")
        pin = kw.pop("pin", None)
        relay = kw.pop("relay", None)
        mode = kw.pop("mode", "sink")
        params = p(transport=transport, mode=mode, **kw)
        return Case(
            metric, system, "seigr", f"seigr:{client}", params, variant, pin, relay, timeout
        )

    def other(metric: str, system: str, server: str, client: str, **kw: Any) -> Case:
        timeout = kw.pop("timeout_s", 60.0)
        variant = kw.pop("variant", "")
        pin = kw.pop("pin", None)
        relay = kw.pop("relay", None)
        mode = kw.pop("mode", "sink")
        params = p(mode=mode, **kw)
        return Case(
            metric, system, server, f"{server}:{client}", params, variant, pin, relay, timeout
        )

    mbps = Quantity("mbps", "throughput", "MB/s", digits=1)
    p50 = Quantity("p50_us", "RTT p50", "µs", higher_is_better=False)
    p99 = Quantity("p99_us", "RTT p99", "µs", higher_is_better=False)
    delivered = Quantity("delivered_pct", "delivered", "%", digits=1)
    msg = {"count": big, "duration_s": dur}

    metrics: list[Metric] = []
    metrics.append(
        Metric(
            "handshakes",
            "Handshakes / connection setups per second (sequential connects)",
            (Quantity("rate", "handshakes", "/s"),),
            (
                seigr("handshakes", "udp", "handshakes", **hs),
                seigr("handshakes", "ws", "handshakes", **hs),
                other("handshakes", AIOQUIC, "aioquic", "handshakes", **hs),
                other("handshakes", WEBSOCKETS, "websockets", "handshakes", **hs),
            ),
            rounds,
        )
    )
    metrics.append(
        Metric(
            "msg64",
            "64 B one-way messages per second (reliable; raw UDP: datagrams the receiver got)",
            (Quantity("rate", "64 B messages", "/s"),),
            (
                seigr("msg64", "udp", "messages", size=64, **msg),
                seigr("msg64", "ws", "messages", size=64, **msg),
                other("msg64", WEBSOCKETS, "websockets", "messages", size=64, **msg),
                other("msg64", RAW, "raw", "blast", size=64, **msg),
            ),
            rounds,
        )
    )
    metrics.append(
        Metric(
            "dgram1000",
            "1000 B unreliable datagrams per second delivered",
            (Quantity("rate", "1000 B datagrams", "/s"), delivered),
            (
                seigr("dgram1000", "udp", "datagrams", size=1000, **msg),
                other("dgram1000", AIOQUIC, "aioquic", "datagrams", size=1000, **msg),
                other("dgram1000", RAW, "raw", "blast", size=1000, **msg),
            ),
            rounds,
        )
    )
    bulk = {"chunk": 65536, "bytes": big, "duration_s": bulk_dur}
    metrics.append(
        Metric(
            "bulk_udp",
            "Bulk stream over UDP (64 KiB writes; raw UDP: 1200 B datagrams delivered)",
            (mbps,),
            (
                seigr("bulk_udp", "udp", "bulk", **bulk),
                other("bulk_udp", AIOQUIC, "aioquic", "bulk", **bulk),
                other("bulk_udp", RAW, "raw", "blast", size=1200, count=big, duration_s=bulk_dur),
            ),
            rounds,
        )
    )
    metrics.append(
        Metric(
            "bulk_ws",
            "Bulk stream over WebSocket (websockets: 16 KiB messages, no encryption)",
            (mbps,),
            (
                seigr("bulk_ws", "ws", "bulk", **bulk),
                other(
                    "bulk_ws",
                    WEBSOCKETS,
                    "websockets",
                    "messages",
                    size=16384,
                    count=big,
                    duration_s=bulk_dur,
                ),
            ),
            rounds,
        )
    )
    for key, pin, title in (
        ("rtt", None, "Round-trip time of 64 B echoes (each peer free on 2 CPUs)"),
        ("rtt_pinned", (0,), "Round-trip time of 64 B echoes, both peers pinned to one CPU"),
    ):
        metrics.append(
            Metric(
                key,
                title,
                (p50, p99),
                (
                    seigr(key, "udp", "rtt", mode="echo", pin=pin, **rtt),
                    seigr(key, "ws", "rtt", mode="echo", pin=pin, **rtt),
                    other(key, RAW, "raw", "rtt", mode="echo", pin=pin, **rtt),
                    other(key, AIOQUIC, "aioquic", "rtt", mode="echo", pin=pin, **rtt),
                    other(key, WEBSOCKETS, "websockets", "rtt", mode="echo", pin=pin, **rtt),
                ),
                rounds,
            )
        )
    sessions = 20 if s else 10_000
    metrics.append(
        Metric(
            "scale",
            f"{sessions:,} concurrent sessions on one server node (8 client nodes connecting)",
            (
                Quantity("kib_per_session", "memory per idle session", "KiB", False, 2),
                Quantity("last_vs_first", "last/first 1,000 handshake speed", "x", digits=2),
                Quantity("sessions", "sessions established", ""),
                Quantity("rate", "handshakes while filling", "/s"),
            ),
            (
                seigr(
                    "scale",
                    "udp",
                    "scale",
                    sessions=sessions,
                    nodes=2 if s else 8,
                    hold_s=0.2 if s else 1.5,
                    window=5 if s else 1000,
                    passive=True,
                    timeout_s=600.0,
                ),
            ),
            1 if s else min(rounds, 3),
        )
    )
    rot = {**bulk, "duration_s": 0.5 if s else 5.0, "check": True}
    rotate_s = 0.15 if s else 1.0
    metrics.append(
        Metric(
            "rotation",
            f"Bulk stream over UDP with rotate_key() every {rotate_s:g} s vs without",
            (
                mbps,
                Quantity("lost_bytes", "bytes lost or corrupted", "B", False),
                Quantity("rotations", "rotations done", ""),
            ),
            (
                seigr("rotation", "udp", "bulk", variant="no rotation", **rot),
                seigr("rotation", "udp", "bulk", variant="rotating", rotate_s=rotate_s, **rot),
            ),
            rounds,
        )
    )
    losses = (0.05,) if s else (0.0, 0.01, 0.02, 0.05, 0.10)
    loss_cases: list[Case] = []
    for loss in losses:
        relay = {"loss": loss, "seed": 7}
        variant = f"loss {loss:.0%}"
        loss_bulk = {**bulk, "finish_s": 60.0, "timeout_s": 120.0}
        loss_cases.append(seigr("loss", "udp", "bulk", variant=variant, relay=relay, **loss_bulk))
        loss_cases.append(
            other("loss", AIOQUIC, "aioquic", "bulk", variant=variant, relay=relay, **loss_bulk)
        )
    metrics.append(
        Metric(
            "loss",
            "Bulk stream over UDP through seigr_stt.testing.UDPRelay losing datagrams both ways",
            (mbps,),
            tuple(loss_cases),
            plot_rounds,
            plot="loss",
        )
    )
    sizes = (64, 65536) if s else (64, 256, 1024, 4096, 16384, 65536, 262144, 1048576)
    size_cases: list[Case] = []
    for size in sizes:
        variant = f"{size} B"
        size_msg = {"size": size, "count": big, "duration_s": 0.05 if s else 1.5}
        size_cases.append(seigr("size", "udp", "messages", variant=variant, **size_msg))
        size_cases.append(seigr("size", "ws", "messages", variant=variant, **size_msg))
        size_cases.append(
            other("size", WEBSOCKETS, "websockets", "messages", variant=variant, **size_msg)
        )
    metrics.append(
        Metric(
            "size",
            "One-way reliable message throughput against message size",
            (mbps, Quantity("rate", "messages", "/s")),
            tuple(size_cases),
            plot_rounds,
            plot="size",
        )
    )
    if only:
        unknown = set(only) - {m.key for m in metrics}
        if unknown:
            raise ValueError(f"unknown metric(s): {', '.join(sorted(unknown))}")
        metrics = [m for m in metrics if m.key in only]
    return metrics


METRIC_KEYS = (
    "handshakes",
    "msg64",
    "dgram1000",
    "bulk_udp",
    "bulk_ws",
    "rtt",
    "rtt_pinned",
    "scale",
    "rotation",
    "loss",
    "size",
)

TARGETS = (
    Target("1a", "handshakes >= 8x aioquic", "handshakes", "rate", SEIGR_UDP, ">=", 8, AIOQUIC),
    Target(
        "1b",
        "handshakes >= 1.5x websockets",
        "handshakes",
        "rate",
        SEIGR_UDP,
        ">=",
        1.5,
        WEBSOCKETS,
    ),
    Target("2", "64 B msgs >= 1.2x websockets", "msg64", "rate", SEIGR_UDP, ">=", 1.2, WEBSOCKETS),
    Target("3a", "bulk UDP >= 4x aioquic", "bulk_udp", "mbps", SEIGR_UDP, ">=", 4, AIOQUIC),
    Target(
        "3b",
        "bulk UDP >= py-libp2p TCP (moonshot)",
        "bulk_udp",
        "mbps",
        SEIGR_UDP,
        ">=",
        1,
        reference=LIBP2P_BULK_MBPS,
        reference_name="py-libp2p (recorded)",
    ),
    Target(
        "4",
        "bulk WebSocket >= 2x py-libp2p",
        "bulk_ws",
        "mbps",
        SEIGR_WS,
        ">=",
        2,
        reference=LIBP2P_BULK_MBPS,
        reference_name="py-libp2p (recorded)",
    ),
    Target("5", "1000 B datagrams >= 4x aioquic", "dgram1000", "rate", SEIGR_UDP, ">=", 4, AIOQUIC),
    Target(
        "6a", "RTT p50 (1 CPU) <= 1.5x raw UDP", "rtt_pinned", "p50_us", SEIGR_UDP, "<=", 1.5, RAW
    ),
    Target(
        "6b",
        "RTT p50 (1 CPU) <= 0.5x aioquic",
        "rtt_pinned",
        "p50_us",
        SEIGR_UDP,
        "<=",
        0.5,
        AIOQUIC,
    ),
    Target(
        "7a", "memory per idle session <= 8 KiB", "scale", "kib_per_session", SEIGR_UDP, "<=", 8
    ),
    Target(
        "7b",
        "last 1,000 handshakes as fast as the first (>= 0.9x)",
        "scale",
        "last_vs_first",
        SEIGR_UDP,
        ">=",
        0.9,
    ),
    Target(
        "8a",
        "rotation every 1 s costs <= 5% throughput",
        "rotation",
        "mbps",
        SEIGR_UDP + " [rotating]",
        ">=",
        0.95,
        system_b=SEIGR_UDP + " [no rotation]",
    ),
    Target(
        "8b",
        "rotation loses nothing (worst round)",
        "rotation",
        "lost_bytes",
        SEIGR_UDP + " [rotating]",
        "<=",
        0,
        worst=True,
    ),
)

#: Ratios shown next to peers in the results table (besides those of the targets).
EXTRA_RATIOS = {
    "msg64": (RAW,),
    "dgram1000": (RAW,),
    "bulk_udp": (RAW,),
    "bulk_ws": (WEBSOCKETS,),
    "handshakes": (),
    "rtt": (RAW, AIOQUIC),
    "rtt_pinned": (),
}


# -- measures ------------------------------------------------------------------------------------
def measure(case: Case, raw: JSON) -> dict[str, float]:
    """The quantities of one run, from what its server and client reported."""
    server, client = raw["server"], raw["client"]
    kind = case.client.split(":", 1)[1]
    if kind == "handshakes":
        return {"rate": float(client["rate"])}
    if kind == "rtt":
        return {"p50_us": float(client["p50_us"]), "p99_us": float(client["p99_us"])}
    if kind == "scale":
        return {
            "kib_per_session": float(server["kib_per_session"]),
            "last_vs_first": float(client["last_vs_first"]),
            "sessions": float(server["sessions"]),
            "rate": float(client["rate"]),
        }
    if kind == "bulk":
        got = server["stream"]
        values = {"mbps": float(got["mbps"]), "lost_bytes": float(client["bytes"] - got["bytes"])}
        if case.params.get("check") and client.get("crc") != got.get("crc"):
            values["lost_bytes"] = max(values["lost_bytes"], 1.0)  # same length, other bytes
        values["rotations"] = float(client.get("rotations", 0))
        if not client.get("finished", False):
            raise RuntimeError("the server never confirmed the end of the stream")
        return values
    got = (
        server["datagrams"] if kind == "datagrams" and case.server != "raw" else server["messages"]
    )
    if case.server != "raw" and kind != "datagrams" and not client.get("finished", False):
        raise RuntimeError("the server never confirmed the end of the run")
    sent = max(int(client.get("sent", 0)), 1)
    return {
        "rate": float(got["rate"]),
        "mbps": float(got["mbps"]),
        "delivered_pct": 100.0 * min(got["count"] / sent, 1.0),
    }


# -- running one case ----------------------------------------------------------------------------
class _Proc:
    """One worker subprocess and its marked stdout lines."""

    def __init__(self, proc: asyncio.subprocess.Process, label: str) -> None:
        self.proc = proc
        self.label = label
        self.stderr = b""
        assert proc.stderr is not None
        self._stderr_task = asyncio.ensure_future(self._collect(proc.stderr))

    async def _collect(self, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(65536):
            self.stderr = (self.stderr + chunk)[-4000:]

    async def expect(self, kind: str, timeout: float) -> JSON:
        assert self.proc.stdout is not None
        try:
            async with asyncio.timeout(timeout):
                while line := await self.proc.stdout.readline():
                    text = line.decode(errors="replace")
                    if not text.startswith(MARK):
                        continue
                    message = json.loads(text[len(MARK) :])
                    if "error" in message:
                        raise RuntimeError(f"{self.label}: {message['error']['error']}")
                    if kind in message:
                        value: JSON = message[kind]
                        return value
        except TimeoutError:
            raise RuntimeError(f"{self.label}: no {kind} within {timeout:g} s") from None
        await asyncio.sleep(0.05)
        tail = self.stderr.decode(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"{self.label} exited without {kind}: {' | '.join(tail)}")

    async def tell_stop(self) -> None:
        if self.proc.stdin is not None and self.proc.returncode is None:
            with contextlib.suppress(OSError):
                self.proc.stdin.write(b"stop\n")
                await self.proc.stdin.drain()

    async def end(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), 5.0)
        if self.proc.returncode is None:
            self.proc.kill()  # our own child, by its handle
            await self.proc.wait()
        self._stderr_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._stderr_task


async def _spawn(spec: JSON, label: str) -> _Proc:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "seigr_stt.bench.worker",
        json.dumps(spec),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    return _Proc(proc, label)


async def _run_subprocess(case: Case, loop: str) -> JSON:
    base: JSON = {"loop": loop, "pin": list(case.pin) if case.pin else None}
    timeout = case.timeout_s
    procs: list[_Proc] = []
    try:
        server = await _spawn(
            {**base, "role": "server", "server": case.server, "params": case.params}, "server"
        )
        procs.append(server)
        info = await server.expect("ready", 30.0)
        relay: _Proc | None = None
        if case.relay is not None:
            relay_params = {**case.relay, "target": info["udp"]}
            relay = await _spawn(
                {**base, "pin": None, "role": "server", "server": "relay", "params": relay_params},
                "relay",
            )
            procs.append(relay)
            info = {**info, "udp": (await relay.expect("ready", 30.0))["udp"]}
        client = await _spawn(
            {**base, "role": "client", "client": case.client, "params": case.params, "info": info},
            "client",
        )
        procs.append(client)
        client_result = await client.expect("result", timeout)
        if relay is not None:
            await relay.tell_stop()
        await server.tell_stop()
        server_result = await server.expect("result", 30.0)
        return {"server": server_result, "client": client_result}
    finally:
        for proc in procs:
            await proc.end()


def run_case(case: Case, loop: str, inprocess: bool) -> JSON:
    """One run of one case: fresh event loop(s), bounded by the case's timeout."""
    if inprocess:
        spec: JSON = {
            "server": case.server,
            "client": case.client,
            "params": case.params,
            "relay": case.relay,
            "timeout_s": case.timeout_s,
        }
        return run_loop(run_case_inprocess(spec), loop)
    return run_loop(_run_subprocess(case, loop), "asyncio")


# -- the suite -----------------------------------------------------------------------------------
def _cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover - not available
        return "?"


def environment(loop: str, inprocess: bool) -> JSON:
    from seigr_stt.core import crypto

    return {
        "nproc": os.cpu_count(),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "loop": loop,
        "aead": crypto.AEAD_BACKEND,
        "mode": "in-process (smoke)" if inprocess else "one subprocess per peer",
        "load_before": _load(),
        "versions": {
            name: _version(name)
            for name in ("seigr-stt", "websockets", "aioquic", "cryptography", "uvloop")
        },
    }


def run_suite(
    metrics: Sequence[Metric],
    *,
    loop: str,
    inprocess: bool,
    command: str,
    log: IO[str] | None = None,
) -> Suite:
    """Run every metric's cases, rounds interleaved (A B C A B C ...)."""
    suite = Suite(list(metrics), {}, environment(loop, inprocess), command)
    started = time.perf_counter()
    total = sum(m.rounds * len(m.cases) for m in metrics)
    done = 0
    for metric in metrics:
        for case in metric.cases:
            suite.results[(metric.key, case.name)] = CaseResult(case)
        for round_index in range(metric.rounds):
            for case in metric.cases:
                done += 1
                result = suite.results[(metric.key, case.name)]
                if case.skip_reason:
                    continue
                t0 = time.perf_counter()
                try:
                    raw = run_case(case, loop, inprocess)
                    values = measure(case, raw)
                except Exception as exc:
                    result.values.append(None)
                    result.raw.append(None)
                    result.errors.append(f"round {round_index + 1}: {exc}")
                    note = f"FAILED: {exc}"
                else:
                    result.values.append(values)
                    result.raw.append(raw)
                    q = metric.quantities[0]
                    note = f"{_fmt(values.get(q.key, math.nan), q.digits)} {q.unit}"
                if log is not None:
                    log.write(
                        f"[{done}/{total}] {metric.key} round {round_index + 1}: "
                        f"{case.name}: {note} ({time.perf_counter() - t0:.1f} s)\n"
                    )
                    log.flush()
    suite.elapsed_s = time.perf_counter() - started
    suite.env["load_after"] = _load()
    return suite


# -- statistics and the table ---------------------------------------------------------------------
def _fmt(value: float, digits: int = 0) -> str:
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
    for target in TARGETS:
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
    spread = f"{_fmt(min(values), quantity.digits)}–{_fmt(max(values), quantity.digits)}"
    return _fmt(median(values), quantity.digits), spread


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
        f"{env['load_before']}, after {env.get('load_after', '?')}",
        "",
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
        "## Targets (docs/performance.md)",
        "",
        "| # | target | seigr_stt | peer | peer value | ratio (min–max) | verdict |",
        "|---|---|---:|---|---:|---|---|",
    ]
    wanted = {m.key for m in suite.metrics}
    for target in TARGETS:
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
            f"| {target.number} | {target.text} | {_fmt(outcome.value, quantity.digits)} "
            f"{quantity.unit} | {_peer_label(target) or '—'} | "
            f"{_fmt(outcome.peer_value, quantity.digits)} | {ratio} | {verdict} |"
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
            for t in TARGETS
            if any(m.key == t.metric for m in suite.metrics)
            for o in [evaluate(suite, t)]
            if o is not None
        ],
    }


def failed_cases(suite: Suite) -> Iterable[str]:
    return (f"{k[0]}/{k[1]}" for k, r in suite.results.items() if r.errors)


CaseFilter = Callable[[Case], bool]
