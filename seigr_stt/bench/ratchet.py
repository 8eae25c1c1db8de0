"""Cost of one DH ratchet (docs/protocol.md §7.1) against one hash rotation, in the sans-I/O core.

``python -m seigr_stt.bench.ratchet`` runs ``--count`` ratchets one after another on an idle
session between two endpoints of :class:`seigr_stt.testing.Net` (0.5 ms one way, real randomness,
no loss), then as many hash rotations on a fresh pair. Each cycle is one request, the records
until both sides have confirmed the new key version, and a settling period (the last
acknowledgements) outside the timed part. It reports, per cycle:

* CPU microseconds (``time.process_time``) from the request until both sides confirmed: both
  endpoints plus the simulator, so the difference between the two kinds is what a ratchet adds;
* the same for the ratchet's cryptography alone (two X25519 key generations, two X25519
  agreements, six MIX computations: both directions' keys and the exporter, on both sides);
* bytes on the wire (every datagram of the cycle, acknowledgements included) and records, and
  the frames themselves: RATCHET_INIT and RATCHET_REPLY of 34 bytes each while the base epoch is
  below 64 (35 up to 16,383).

Nothing here is a test: the times depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

from seigr_stt.config import NodeConfig
from seigr_stt.constants import KEY_BYTES
from seigr_stt.core import crypto
from seigr_stt.core.frames import RatchetInit, RatchetReply, frame_size
from seigr_stt.core.ratchet import mix_key
from seigr_stt.testing import Net

__all__ = ["Cycle", "Figures", "crypto_us", "cycles", "main", "run"]

_SETTLE_S = 0.5  # simulated time after each cycle for the last acknowledgements


@dataclass(frozen=True)
class Cycle:
    """Averages over ``count`` cycles of one kind (``ratchet`` or ``rotation``)."""

    kind: str
    count: int
    cpu_us: float
    wire_bytes: float
    records: float


@dataclass(frozen=True)
class Figures:
    """One run: both kinds of cycle and the ratchet's cryptography alone."""

    ratchet: Cycle
    rotation: Cycle
    crypto_us: float
    frame_bytes: int


def cycles(kind: str, count: int, *, seed: int = 0) -> Cycle:
    """Run ``count`` ratchets (``kind="ratchet"``) or hash rotations (``"rotation"``)."""
    if kind not in ("ratchet", "rotation"):
        raise ValueError("kind is 'ratchet' or 'rotation'")
    config = NodeConfig(ratchet_interval_s=None, session_idle_timeout_s=None)
    net = Net(seed=seed)
    a = net.add_node("A", config=config, rng=os.urandom)
    b = net.add_node("B", config=config, rng=os.urandom)
    sid = net.establish(a, b)
    net.delay_s = (0.0005, 0.0005)
    net.run(1.0)
    sa, sb = a.session(sid), b.session(sid)
    cpu = 0.0
    wire = 0
    records = 0
    for _ in range(count):
        target = sa.key_version + 1
        mark = len(net.log)
        started = time.process_time()
        if kind == "ratchet":
            sa.request_ratchet(net.now)
        else:
            sa.request_rotation(net.now)
        net.flush_node(a)
        while sa.confirmed_key_version < target or sb.confirmed_key_version < target:
            deadline = net.next_deadline()
            if deadline is None:  # pragma: no cover - the session would have to stall
                raise RuntimeError("the rotation stalled")
            net.run_until(deadline)
        cpu += time.process_time() - started
        net.run(_SETTLE_S)
        launched = net.log[mark:]
        wire += sum(len(p.data) for p in launched)
        records += len(launched)
    if kind == "ratchet" and (sa.ratchet.count, sb.ratchet.count) != (count, count):
        raise RuntimeError("a ratchet did not complete")  # pragma: no cover
    return Cycle(kind, count, cpu / count * 1e6, wire / count, records / count)


def crypto_us(count: int) -> float:
    """CPU microseconds of one ratchet's cryptography on both sides, averaged over ``count``."""
    chain = bytes(KEY_BYTES)
    started = time.process_time()
    for _ in range(count):
        secrets = []
        privates = [bytearray(os.urandom(KEY_BYTES)) for _ in range(2)]
        publics = [crypto.public_key_of(p) for p in privates]
        for private, public in zip(privates, reversed(publics), strict=True):
            secret = bytearray(KEY_BYTES)
            crypto.dh_into(private, public, secret)
            crypto.wipe(private)
            secrets.append(secret)
        for secret in secrets:
            for _ in range(3):  # send key, next receive key, exporter
                mix_key(chain, secret)
            crypto.wipe(secret)
    return (time.process_time() - started) / count * 1e6


def run(count: int, *, seed: int = 0) -> Figures:
    """Both kinds of cycle, ``count`` each, and the cryptography alone."""
    public = bytes(KEY_BYTES)
    frames = frame_size(RatchetInit(0, public)) + frame_size(RatchetReply(0, public))
    return Figures(
        cycles("ratchet", count, seed=seed),
        cycles("rotation", count, seed=seed),
        crypto_us(count),
        frames,
    )


def report(figures: Figures) -> str:
    """A Markdown table of the figures."""
    lines = [
        "| per cycle | DH ratchet | hash rotation | difference |",
        "|---|---:|---:|---:|",
    ]
    r, h = figures.ratchet, figures.rotation
    for name, x, y in (
        ("CPU µs (both endpoints + simulator)", r.cpu_us, h.cpu_us),
        ("bytes on the wire (all datagrams)", r.wire_bytes, h.wire_bytes),
        ("datagrams", r.records, h.records),
    ):
        lines.append(f"| {name} | {x:.1f} | {y:.1f} | {x - y:+.1f} |")
    lines.append("")
    lines.append(f"ratchet cryptography alone (both sides): {figures.crypto_us:.1f} µs")
    lines.append(f"RATCHET_INIT + RATCHET_REPLY frames: {figures.frame_bytes} bytes")
    lines.append(f"({r.count} cycles of each kind)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: see the module docstring."""
    parser = argparse.ArgumentParser(
        prog="python -m seigr_stt.bench.ratchet",
        description="Cost of one DH ratchet against one hash rotation (in memory).",
    )
    parser.add_argument("--count", type=int, default=1000, help="cycles of each kind (1000)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(report(run(args.count, seed=args.seed)))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
