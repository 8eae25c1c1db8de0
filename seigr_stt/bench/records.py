"""Per-record CPU cost of the sans-I/O core at MTU 1500: two endpoints, bulk, in memory.

``python -m seigr_stt.bench.records`` moves ``--mb`` megabytes on one byte stream from endpoint A
to endpoint B over :class:`seigr_stt.testing.Net` (no sockets, simulated time), with records
pinned at 1452 bytes: what path-MTU probing settles on across a 1500-byte Ethernet path (IPv4 +
UDP headers leave 1472). The time spent inside each endpoint (every ``receive_datagram``,
``datagrams_to_send``, ``events_received`` and ``handle_timer`` call, and the application's
``write_stream``/``consume_stream``) is measured with ``perf_counter``, turned into CPU time by
the process's CPU/wall ratio over the run (so a loaded machine inflates it less), and divided by
the data records A sent and B received: microseconds of Python per record, sender and receiver,
without the simulator's own cost.

``--profile`` runs the same transfer a second time under :mod:`cProfile` and splits each side's
time into the parts of the record path (seal/open, frame build/parse, ACK processing, congestion
and pacing, stream send, reassembly, session and endpoint glue): a function's own time goes to
its module's part; the time of helpers used by several parts (range sets, builtins, the C AEAD
call) goes to the parts of their callers, in proportion. The profiled figures are scaled to the
unprofiled total, so the parts add up to the measured cost. Nothing here is a test: the figures
depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
import zlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from seigr_stt.config import NodeConfig
from seigr_stt.core.endpoint import Endpoint
from seigr_stt.core.events import StreamDataReceived, StreamOpened
from seigr_stt.testing import Net

__all__ = ["PARTS", "Figures", "main", "run"]

#: The record size across an MTU-1500 path (1500 - 20 IPv4 - 8 UDP = 1472, probed to 1452).
MTU1500_RECORD_SIZE = 1452
_CHUNK = 65536
_HIGH_WATER = 1 << 20  # the application writes while less than this is buffered (backpressure)

#: The parts of the record path, in report order.
PARTS = (
    "seal/open",
    "frames",
    "ack",
    "cc/pacing",
    "stream send",
    "reassembly",
    "session/endpoint",
)

# Which part a function's own time belongs to: by (file suffix, function name), then by file
# suffix alone. Anything else (builtins, range sets, replay window...) inherits its callers' parts.
_BY_FUNCTION: dict[tuple[str, str], str] = {
    ("core/session.py", "_handle_ack"): "ack",
    ("core/session.py", "_on_lost"): "ack",
    ("core/session.py", "_handle_stream"): "reassembly",
    ("core/packetizer.py", "pace_at"): "cc/pacing",
    ("core/packetizer.py", "_ack_frame"): "ack",
    ("core/flow.py", "receive"): "reassembly",
    ("core/flow.py", "receive_stream_for"): "reassembly",
    ("core/flow.py", "fin_to_report"): "reassembly",
    ("core/flow.py", "consume"): "reassembly",
    ("core/flow.py", "consume_stream"): "reassembly",
    ("core/flow.py", "maybe_forget"): "reassembly",
    ("core/flow.py", "announce_if_blocked"): "reassembly",
    ("core/flow.py", "credit_frames"): "frames",
    ("core/flow.py", "on_max_data"): "stream send",
    ("core/flow.py", "on_max_stream_data"): "stream send",
    ("core/streams.py", "receive"): "reassembly",
    ("core/streams.py", "consume"): "reassembly",
    ("core/streams.py", "_store"): "reassembly",
    ("core/streams.py", "_pop_contiguous"): "reassembly",
}
_BY_FILE: dict[str, str] = {
    "core/crypto.py": "seal/open",
    "core/record.py": "seal/open",
    "core/frames.py": "frames",
    "core/packetizer.py": "frames",
    "core/recovery.py": "ack",
    "core/congestion.py": "cc/pacing",
    "core/flow.py": "stream send",
    "core/streams.py": "stream send",
    "core/channels.py": "reassembly",
    "core/session.py": "session/endpoint",
    "core/lifecycle.py": "session/endpoint",
    "core/endpoint.py": "session/endpoint",
    "core/keys.py": "session/endpoint",
    "core/timers.py": "session/endpoint",
    "core/pmtu.py": "session/endpoint",
    "core/path.py": "session/endpoint",
    "core/events.py": "session/endpoint",
    "core/stats.py": "session/endpoint",
}
_HARNESS = ("testing/sim.py", "bench/records.py", "cProfile", "<string>")


@dataclass(frozen=True, slots=True)
class Side:
    """One endpoint's cost: seconds inside it, the data records it sent and received, and the
    profiled split of its time (seconds per part, scaled to ``seconds``; empty unless profiled)."""

    seconds: float
    records_sent: int
    records_received: int
    parts: dict[str, float]

    def us_per(self, records: int) -> float:
        """Microseconds per record for ``records`` records."""
        return self.seconds / max(records, 1) * 1e6


@dataclass(frozen=True, slots=True)
class Figures:
    """One transfer: bytes moved and each side's cost. ``sender_us`` is the sender's time per
    data record it sent; ``receiver_us`` the receiver's time per data record it received."""

    bytes_moved: int
    record_size: int
    sender: Side
    receiver: Side
    drains: int

    @property
    def sender_us(self) -> float:
        """Sender microseconds per record sent."""
        return self.sender.us_per(self.sender.records_sent)

    @property
    def receiver_us(self) -> float:
        """Receiver microseconds per record received."""
        return self.receiver.us_per(self.receiver.records_received)


class _Clock:
    """Accumulates the time spent in the wrapped methods of one endpoint."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def wrap(
        self, method: Callable[..., Any], profiler: cProfile.Profile | None = None
    ) -> Callable[..., Any]:
        """``method`` timed into :attr:`seconds` (and profiled by ``profiler`` if given)."""
        perf = time.perf_counter
        enable: Callable[[], None] = _nothing
        disable: Callable[[], None] = _nothing
        if profiler is not None:
            enable, disable = profiler.enable, profiler.disable

        def timed(*args: Any, **kwargs: Any) -> Any:
            enable()
            start = perf()
            try:
                return method(*args, **kwargs)
            finally:
                self.seconds += perf() - start
                disable()

        return timed


def _nothing() -> None:
    return None


# Endpoint.get_timer is left out: the simulator polls it several times per step where an
# adapter reads it once per drain (a heap peek), and counting the polls would bill the harness.
_TIMED = ("receive_datagram", "datagrams_to_send", "events_received", "handle_timer")


def _instrument(endpoint: Endpoint, clock: _Clock, profiler: cProfile.Profile | None) -> None:
    for name in _TIMED:
        setattr(endpoint, name, clock.wrap(getattr(endpoint, name), profiler))


def _transfer(
    total: int,
    *,
    record_size: int,
    delay_s: float,
    loss: float,
    seed: int,
    profile: tuple[str, cProfile.Profile] | None = None,
) -> Figures:
    net = Net(seed=seed, delay_s=(delay_s, delay_s), loss=loss)
    config = NodeConfig()
    a = net.add_node("A", max_record_size=record_size, config=config)
    b = net.add_node("B", max_record_size=record_size, config=config)
    sid = net.establish(a, b)
    clock_a, clock_b = _Clock(), _Clock()
    profiled, profiler = profile if profile is not None else ("", None)
    _instrument(a.endpoint, clock_a, profiler if profiled == "A" else None)
    _instrument(b.endpoint, clock_b, profiler if profiled == "B" else None)
    sent_before = a.endpoint.session(sid).counters.packets_sent
    received_before = b.endpoint.session(sid).counters.packets_received
    acks_before = a.endpoint.session(sid).counters.packets_received
    b_sent_before = b.endpoint.session(sid).counters.packets_sent
    sender = a.endpoint.session(sid)
    receiver = b.endpoint.session(sid)
    stream_id = sender.open_stream(net.now)
    write = clock_a.wrap(sender.write_stream, profiler if profiled == "A" else None)
    # The simulator hands credit back as an application that keeps up would: timed as B's.
    receiver.consume_stream = clock_b.wrap(  # type: ignore[method-assign]
        receiver.consume_stream, profiler if profiled == "B" else None
    )
    written = received = crc_out = crc_in = 0
    drains = 0
    wall_start, cpu_start = time.perf_counter(), time.process_time()
    while received < total:
        if written < total and sender.send_buffered < _HIGH_WATER:
            while written < total and sender.send_buffered < _HIGH_WATER:
                n = min(_CHUNK, total - written)
                chunk = written.to_bytes(8, "big") * (n // 8) + bytes(n % 8)
                crc_out = zlib.crc32(chunk, crc_out)
                write(stream_id, chunk, written + n >= total, net.now)
                written += n
            net.flush_node(a)
        t = net.next_deadline()
        if t is None:
            raise AssertionError("the transfer stalled")
        net.run_until(t)
        drains += 1
        for _, event in b.events:
            if isinstance(event, StreamDataReceived) and event.stream_id == stream_id:
                crc_in = zlib.crc32(event.data, crc_in)
                received += len(event.data)
            elif isinstance(event, StreamOpened):
                pass
        b.events.clear()
        a.events.clear()
    wall, cpu = time.perf_counter() - wall_start, time.process_time() - cpu_start
    if crc_in != crc_out or received != total:
        raise AssertionError("the bytes received differ from the bytes sent")
    # Wall time inside each endpoint, as CPU time: on a loaded machine the process is descheduled
    # evenly across the run, so the process's CPU time over its wall time scales both sides.
    cpu_per_wall = min(cpu / wall, 1.0) if wall > 0 else 1.0
    return Figures(
        bytes_moved=total,
        record_size=record_size,
        sender=Side(
            clock_a.seconds * cpu_per_wall,
            sender.counters.packets_sent - sent_before,
            sender.counters.packets_received - acks_before,
            {},
        ),
        receiver=Side(
            clock_b.seconds * cpu_per_wall,
            receiver.counters.packets_sent - b_sent_before,
            receiver.counters.packets_received - received_before,
            {},
        ),
        drains=drains,
    )


def _part_of(func: tuple[str, int, str]) -> str | None:
    filename, _, name = func
    filename = filename.replace("\\", "/")
    for (suffix, fname), part in _BY_FUNCTION.items():
        if name == fname and filename.endswith(suffix):
            return part
    for suffix, part in _BY_FILE.items():
        if filename.endswith(suffix):
            return part
    return None


def _is_harness(func: tuple[str, int, str]) -> bool:
    filename = func[0].replace("\\", "/")
    return any(marker in filename for marker in _HARNESS) or func[2] == "timed"


def _split(stats: pstats.Stats) -> dict[str, float]:
    """Own time per part of :data:`PARTS` (and "harness": the wrappers' own time)."""
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    memo: dict[Any, dict[str, float]] = {}

    def shares(func: Any, depth: int = 0) -> dict[str, float]:
        # The parts a helper's time goes to: its callers' parts, weighted by the time each
        # caller spent in it (pstats keeps the per-edge own time).
        if func in memo:
            return memo[func]
        part = _part_of(func)
        if part is not None:
            result = {part: 1.0}
        elif _is_harness(func) or depth > 20:
            result = {"harness": 1.0}
        else:
            memo[func] = {"harness": 1.0}  # cycles
            callers = raw[func][4]
            total = sum(edge[2] for edge in callers.values()) or 0.0
            result = defaultdict(float)
            for caller, edge in callers.items():
                weight = edge[2] / total if total else 1.0 / len(callers)
                for p, w in shares(caller, depth + 1).items():
                    result[p] += weight * w
            result = dict(result) or {"harness": 1.0}
        memo[func] = result
        return result

    out: dict[str, float] = defaultdict(float)
    for func, (_, _, tottime, _, _) in raw.items():
        for part, weight in shares(func).items():
            out[part] += tottime * weight
    return dict(out)


def run(
    megabytes: float,
    *,
    record_size: int = MTU1500_RECORD_SIZE,
    delay_s: float = 0.0005,
    loss: float = 0.0,
    seed: int = 0,
    profile: bool = False,
) -> Figures:
    """Move ``megabytes`` from A to B and return the per-record figures (see the module
    docstring). With ``profile``, a second transfer under cProfile splits each side's time into
    :data:`PARTS`."""
    total = int(megabytes * 1_000_000)
    settings: dict[str, Any] = {
        "record_size": record_size,
        "delay_s": delay_s,
        "loss": loss,
        "seed": seed,
    }
    figures = _transfer(total, **settings)
    if not profile:
        return figures
    sides = []
    for side_name in ("A", "B"):
        profiler = cProfile.Profile()
        _transfer(total, profile=(side_name, profiler), **settings)
        parts = _split(pstats.Stats(profiler))
        parts.pop("harness", None)
        measured = figures.sender if side_name == "A" else figures.receiver
        scale = measured.seconds / (sum(parts.values()) or 1.0)
        sides.append({p: parts.get(p, 0.0) * scale for p in PARTS})
    return Figures(
        figures.bytes_moved,
        figures.record_size,
        Side(
            figures.sender.seconds,
            figures.sender.records_sent,
            figures.sender.records_received,
            sides[0],
        ),
        Side(
            figures.receiver.seconds,
            figures.receiver.records_sent,
            figures.receiver.records_received,
            sides[1],
        ),
        figures.drains,
    )


def report(figures: Figures) -> str:
    """The figures as a Markdown table (µs per record, sender and receiver)."""
    s, r = figures.sender, figures.receiver
    lines = [
        f"{figures.bytes_moved / 1e6:.0f} MB, records of {figures.record_size} B: "
        f"A sent {s.records_sent} records (took {s.records_received} ACK records), "
        f"B received {r.records_received} (sent {r.records_sent} ACK records); "
        f"{figures.drains} simulator steps",
        "",
        "| part | sender µs/record | receiver µs/record |",
        "|---|---:|---:|",
    ]
    if s.parts:
        for part in PARTS:
            lines.append(
                f"| {part} | {s.parts[part] / s.records_sent * 1e6:.2f} | "
                f"{r.parts[part] / r.records_received * 1e6:.2f} |"
            )
    lines.append(f"| **total** | **{figures.sender_us:.2f}** | **{figures.receiver_us:.2f}** |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: see the module docstring."""
    parser = argparse.ArgumentParser(
        prog="python -m seigr_stt.bench.records",
        description="Per-record CPU cost of the sans-I/O core at MTU 1500 (in memory).",
    )
    parser.add_argument("--mb", type=float, default=50.0, help="megabytes to move (default 50)")
    parser.add_argument("--record-size", type=int, default=MTU1500_RECORD_SIZE)
    parser.add_argument("--delay-ms", type=float, default=0.5, help="one-way delay (0.5)")
    parser.add_argument("--loss", type=float, default=0.0, help="random loss rate (0)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", action="store_true", help="split the time into parts")
    parser.add_argument("--repeat", type=int, default=1, help="best of N runs (default 1)")
    args = parser.parse_args(argv)
    best: Figures | None = None
    for _ in range(args.repeat):
        figures = run(
            args.mb,
            record_size=args.record_size,
            delay_s=args.delay_ms / 1000,
            loss=args.loss,
            seed=args.seed,
            profile=args.profile,
        )
        if best is None or figures.sender_us + figures.receiver_us < (
            best.sender_us + best.receiver_us
        ):
            best = figures
    assert best is not None
    print(report(best))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
