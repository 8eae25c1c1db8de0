"""The benchmark suite: seigr_stt over UDP and WebSocket next to its baselines, in one run.

``python -m seigr_stt.bench`` (also ``make bench`` and ``stt bench``) runs every workload of
docs/performance.md's targets, seigr_stt and its peers interleaved round by round, each peer in a
fresh subprocess on a fresh event loop (uvloop when installed), and prints a Markdown table of
medians, min–max and ratios with each target's verdict. ``--smoke`` runs every workload once with
tiny sizes in this process (a few seconds; the test suite runs it). See bench/README.md.

Where it may create network namespaces (root on Linux), the suite first runs the real-path metrics
(bulk, RTT, handshakes) across a veth pair with MTU 1500 between two namespaces it creates and
deletes itself (:mod:`seigr_stt.bench.netns`); elsewhere it says why it skips them and runs the
loopback metrics only.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    from seigr_stt.bench.cases import METRIC_KEYS

    parser = argparse.ArgumentParser(
        prog="stt bench",
        description="Benchmark seigr_stt against raw UDP + AEAD, websockets and aioquic.",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="every workload once, tiny, in this process: checks the suite runs (no timings)",
    )
    parser.add_argument(
        "--rounds", type=int, default=5, help="interleaved rounds per case (default 5)"
    )
    parser.add_argument(
        "--only",
        default="",
        metavar="METRIC,...",
        help="run only these metrics: " + ",".join(METRIC_KEYS),
    )
    parser.add_argument("--json", metavar="PATH", help="also write every measurement as JSON")
    parser.add_argument(
        "--plots",
        metavar="DIR",
        help="write the curves and the real-path figures as PNG files here",
    )
    parser.add_argument(
        "--loop",
        choices=("auto", "uvloop", "asyncio", "both"),
        default="auto",
        help="event loop of the workloads (auto: uvloop when installed; both: every seigr_stt "
        "case on uvloop and again on asyncio in the same rounds, judged against each other)",
    )
    parser.add_argument(
        "--real-path",
        choices=("auto", "on", "off"),
        default="auto",
        help="bulk, RTT and handshakes across a veth pair (MTU 1500) between two network "
        "namespaces made for the run: auto = when they can be made here (root on Linux) and "
        "not with --smoke/--inprocess; on = always (tiny with --smoke), off = never",
    )
    parser.add_argument(
        "--inprocess",
        action="store_true",
        help="run both peers in this process on one loop (the default with --smoke)",
    )
    return parser


def _real_path_skipped(mode: str, smoke: bool, inprocess: bool) -> str:
    """Why the real-path metrics are not run, or ``""`` when they are."""
    from seigr_stt.bench.netns import probe

    if mode == "off":
        return "--real-path off"
    if mode == "auto" and (smoke or inprocess):
        return "--smoke and --inprocess run in one process (--real-path on runs it, tiny)"
    return probe()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the suite; print the table. Returns 0, or 1 when a case failed (or the real path was
    asked for and cannot run here), 2 on bad usage, 130 on Ctrl-C."""
    from seigr_stt.bench.cases import build_suite, with_asyncio_twins
    from seigr_stt.bench.common import loop_name
    from seigr_stt.bench.orchestrate import run_suite
    from seigr_stt.bench.plots import write_plots
    from seigr_stt.bench.report import failed_cases, render, to_json

    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    args = parser.parse_args(args_list)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    only = [m.strip() for m in args.only.split(",") if m.strip()] or None
    skip_path = _real_path_skipped(args.real_path, args.smoke, args.inprocess)
    if skip_path and args.real_path == "on":
        sys.stderr.write(f"stt bench: the real path cannot run here: {skip_path}\n")
        return 1
    try:
        metrics = build_suite(args.smoke, args.rounds, only, real_path=not skip_path)
    except ValueError as exc:
        parser.error(str(exc))
    if skip_path and args.real_path == "auto":
        sys.stderr.write(
            "stt bench: real path (veth pair, MTU 1500, two network namespaces) skipped: "
            f"{skip_path}; loopback only\n"
        )
    if not metrics:
        sys.stderr.write("stt bench: nothing to run (the metrics asked for are skipped)\n")
        return 1
    both = args.loop == "both"
    try:
        loop = loop_name("uvloop" if both else args.loop)
    except ImportError:
        sys.stderr.write("stt bench: uvloop is not installed (pip install 'seigr-stt[speed]')\n")
        return 1
    if both:
        metrics = with_asyncio_twins(metrics)
    command = shlex.join(["python", "-m", "seigr_stt.bench", *args_list])
    try:
        suite = run_suite(
            metrics,
            loop=loop,
            inprocess=args.smoke or args.inprocess,
            command=command,
            log=sys.stderr,
        )
    except KeyboardInterrupt:  # the workers and the namespaces are gone by now
        sys.stderr.write("stt bench: interrupted\n")
        return 130
    if skip_path:
        suite.env["path"] = f"not run: {skip_path}"
    if both:
        suite.env["loop"] = "uvloop, and asyncio for the seigr_stt cases' [asyncio] twins"
    sys.stdout.write(render(suite))
    if args.json:
        Path(args.json).write_text(json.dumps(to_json(suite), indent=1, default=str) + "\n")
    if args.plots:
        for message in write_plots(suite, Path(args.plots)):
            sys.stderr.write(message + "\n")
    failed = list(failed_cases(suite))
    if failed:
        sys.stderr.write("failed cases: " + ", ".join(failed) + "\n")
        return 1
    return 0
