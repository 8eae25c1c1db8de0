"""The commands that are neither a node, a file transfer nor key handling: demo, bench, connect,
send and ping.

``demo`` and ``bench`` run without a network peer; ``connect``, ``send`` and ``ping``
are async bodies for :func:`~seigr_stt.cli.client.client_command`. The demo and the benchmarks
(``seigr_stt.bench``) are imported only when their command runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import signal
import statistics
import struct
import sys
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from seigr_stt import STTNode
from seigr_stt.cli.client import client_session, close_text, target_text
from seigr_stt.cli.console import configure_logging, prefix, run, say
from seigr_stt.cli.errors import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    CLIError,
    exit_codes,
)
from seigr_stt.cli.seeds import Seeds
from seigr_stt.exceptions import MessageTooLarge, SessionClosedError, STTError

if TYPE_CHECKING:
    from seigr_stt.aio.session import ReceivedPacket, STTSession

__all__ = ["cmd_bench", "cmd_demo", "connect_main", "ping_main", "send_main"]


# -- demo, bench ---------------------------------------------------------------------------------
def cmd_demo(args: argparse.Namespace) -> int:
    """``stt demo``: run :func:`seigr_stt.demo.run_demo` (two nodes in this process); exit 0."""
    from seigr_stt.demo import run_demo

    async def demo() -> int:
        await run_demo()
        return EXIT_OK

    return run(demo())


BENCH_HELP = """\
usage: stt bench [--log-level LEVEL] [ARGS ...]

Run the benchmarks (seigr_stt.bench); every argument is passed on to them,
so `stt bench --help` shows their options.
"""

BENCH_LOG_HELP = """
stt bench also takes:
  --log-level {debug,info,warning,error}
                        log level of the seigr_stt loggers, on standard error
                        (default warning)
"""


def _log_level(argv: list[str]) -> tuple[str, list[str]]:
    """``--log-level LEVEL`` (or ``=LEVEL``) taken out of ``argv``: (level, the rest)."""
    level, rest = "warning", []
    arguments = iter(argv)
    for arg in arguments:
        if arg == "--log-level":
            level = next(arguments, "")
        elif arg.startswith("--log-level="):
            level = arg.partition("=")[2]
        else:
            rest.append(arg)
    if level not in ("debug", "info", "warning", "error"):
        raise CLIError(
            f"--log-level must be one of debug, info, warning, error, not {level!r}", EXIT_USAGE
        )
    return level, rest


def cmd_bench(argv: list[str]) -> int:
    """``stt bench``: run ``seigr_stt.bench.main(argv)`` and return its exit code.

    ``argv`` is every argument after ``bench``, unparsed, except ``--log-level LEVEL``, which
    configures logging as for the other commands. The benchmarks are imported only here; without
    them ``--help`` prints :data:`BENCH_HELP` (exit 0) and anything else exits 1.
    """
    level, argv = _log_level(argv)
    asks_help = any(arg in ("-h", "--help") for arg in argv)
    try:
        bench = importlib.import_module("seigr_stt.bench")
    except ImportError as exc:
        if exc.name not in ("seigr_stt.bench", "seigr_stt"):
            raise
        bench = None
    run = getattr(bench, "main", None)
    if run is None:
        if asks_help:
            sys.stdout.write(BENCH_HELP + "\n" + exit_codes(False))
            return EXIT_OK
        raise CLIError("the benchmarks (seigr_stt.bench) are not part of this installation")
    configure_logging(level)
    try:
        code = run(argv)
    except SystemExit as done:  # their --help
        if asks_help and not done.code:
            sys.stdout.write(BENCH_LOG_HELP + "\n" + exit_codes(False))
        raise
    return int(code or 0)


# -- connect, send, ping -------------------------------------------------------------------------
def _ms(seconds: float | None) -> str:
    return "not measured" if seconds is None else f"{seconds * 1000:.3f} ms"


async def _measure_rtt(node: STTNode, session: STTSession, wait: float) -> float | None:
    """The session's smoothed RTT, sending a PING first when none was sampled yet."""
    if session.rtt is None and session.is_active():
        with contextlib.suppress(STTError, TimeoutError):
            await session.ping(timeout=wait)
    return session.rtt


async def connect_main(args: argparse.Namespace, seeds: Seeds) -> int:
    """``stt connect``: handshake, print the session (``--rotate``: rotate its keys once), close.

    A body for :func:`~seigr_stt.cli.client.client_command`, which maps errors to exit codes.
    """
    async with client_session(args, seeds) as (node, session, elapsed):
        rtt = await _measure_rtt(node, session, min(args.timeout, 2.0))
        say(f"session    {session.session_id.hex()} over {session.transport_type}")
        say(f"peer       {session.peer_node_id.hex()}")
        say(f"key        version {session.key_version}")
        say(f"handshake  {_ms(elapsed)}")
        say(f"rtt        {_ms(rtt)}")
        if args.rotate:
            before = session.key_version
            await session.rotate_key(timeout=args.timeout)
            say(f"rotated    key version {before} -> {session.key_version}")
    say("closed")
    return EXIT_OK


async def _next_from(
    queue: asyncio.Queue[ReceivedPacket], session_id: bytes, timeout: float
) -> ReceivedPacket | None:
    try:
        async with asyncio.timeout(timeout):
            while True:
                packet = await queue.get()
                if packet.session_id == session_id:
                    return packet
    except TimeoutError:
        return None


@contextlib.asynccontextmanager
async def _inbox(node: STTNode) -> AsyncIterator[asyncio.Queue[ReceivedPacket]]:
    queue: asyncio.Queue[ReceivedPacket] = asyncio.Queue()

    async def pump() -> None:
        async for packet in node.receive():
            queue.put_nowait(packet)

    task = asyncio.create_task(pump())
    try:
        yield queue
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _show(data: bytes) -> str:
    try:
        text = data.decode()
    except UnicodeDecodeError:
        return repr(data)
    return text if text.isprintable() else repr(text)


async def send_main(args: argparse.Namespace, seeds: Seeds) -> int:
    """``stt send``: send one message (``-``: stdin); ``--wait-reply`` prints one back.

    A body for :func:`~seigr_stt.cli.client.client_command`. Raises :class:`CLIError`: exit 2
    for a message above the node's maximum, exit 1 when no reply comes within ``--timeout``.
    """
    data = sys.stdin.buffer.read() if args.message == "-" else args.message.encode()
    async with client_session(args, seeds) as (node, session, _), _inbox(node) as inbox:
        try:
            await session.send(data, args.stream)
        except MessageTooLarge as exc:
            raise CLIError(f"{exc}; use `stt send-file` for large data", EXIT_USAGE) from None
        say(
            f"sent {len(data)} bytes on channel {args.stream} "
            f"(session {session.session_id.hex()[:8]} over {session.transport_type})"
        )
        if args.wait_reply:
            reply = await _next_from(inbox, session.session_id, args.timeout)
            if reply is None:
                raise CLIError(
                    f"no reply within {args.timeout:g} s (does the node run with --echo?)"
                )
            say(
                f"reply on channel {reply.stream_id} ({len(reply.data)} bytes): {_show(reply.data)}"
            )
    return EXIT_OK


async def ping_main(args: argparse.Namespace, seeds: Seeds) -> int:
    """``stt ping``: ``--count`` messages echoed by a node with ``--echo``; print RTT statistics.

    A body for :func:`~seigr_stt.cli.client.client_command`. The summary is printed however the
    pings end: all sent, Ctrl-C (SIGINT; exit 130), or the session closed (its code and words on
    standard error first; exit 1). Raises :class:`CLIError` (exit 1) when no reply came at all;
    some lost replies only show in the loss figure.
    """
    times: list[float] = []
    sent = 0
    ended: str | None = None
    interrupted = False
    async with client_session(args, seeds) as (node, session, _), _inbox(node) as inbox:
        sid = session.session_id
        say(f"PING {target_text(args)}: session {sid.hex()[:8]} over {session.transport_type}")

        async def pings() -> None:
            nonlocal sent
            for seq in range(args.count):
                if seq:
                    await asyncio.sleep(args.interval)
                payload = b"stt-ping " + struct.pack("!Id", seq, time.time())
                started = time.perf_counter()
                await session.send(payload, args.stream)
                sent += 1
                deadline = started + args.timeout
                reply = None
                while reply is None or reply.data != payload:
                    remaining = deadline - time.perf_counter()
                    reply = await _next_from(inbox, sid, remaining) if remaining > 0 else None
                    if reply is None:
                        break
                if reply is None:
                    say(f"seq={seq} no reply within {args.timeout:g} s")
                    continue
                elapsed = time.perf_counter() - started
                times.append(elapsed)
                say(f"reply seq={seq} time={elapsed * 1000:.3f} ms")

        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGINT, stop.set)
        work = asyncio.create_task(pings())
        waits = {
            work,
            asyncio.create_task(stop.wait()),
            asyncio.create_task(session.wait_closed()),
        }
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signal.SIGINT)
            for task in waits:
                task.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
        failure = work.exception() if work.done() and not work.cancelled() else None
        if failure is not None and not isinstance(failure, SessionClosedError):
            raise failure
        interrupted = stop.is_set()
        if not session.is_active():
            ended = close_text(session)
        rtt = None if ended else await _measure_rtt(node, session, 0.5)
    if ended is not None:
        say(f"{prefix()}: {ended}", sys.stderr)
    loss = 100.0 * (sent - len(times)) / sent if sent else 0.0
    say(f"--- {target_text(args)} ping statistics ---")
    say(f"{sent} sent, {len(times)} received, {loss:.0f}% loss")
    if times:
        ms = [t * 1000 for t in times]
        say(
            f"rtt min/avg/p50/max = {min(ms):.3f}/{statistics.fmean(ms):.3f}/"
            f"{statistics.median(ms):.3f}/{max(ms):.3f} ms"
        )
    if rtt is not None:
        say(f"session smoothed rtt {_ms(rtt)}")
    if interrupted:
        return EXIT_INTERRUPTED
    if ended is not None:
        return EXIT_FAILURE
    if not times:
        raise CLIError("no replies (does the node run with --echo?)")
    return EXIT_OK
