"""``stt node``: run a node until SIGINT/SIGTERM, printing or echoing what it receives.

Besides the library's node this adds what the command promises (docs/cli.md, "stt node"): the
``node`` and ``listening`` lines, messages printed or echoed (``--echo``), files received over
byte streams (:class:`~seigr_stt.cli.filetransfer.FileReceiver`), and the optional Prometheus
exporter (``--metrics-port``, imported only when asked for).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import signal
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from seigr_stt import STTNode, generate_seed
from seigr_stt.cli.console import run, say
from seigr_stt.cli.errors import EXIT_OK, EXIT_USAGE, CLIError
from seigr_stt.cli.filetransfer import FileReceiver
from seigr_stt.cli.seeds import Seeds, read_seeds
from seigr_stt.exceptions import STTError

if TYPE_CHECKING:
    from seigr_stt.aio.session import NodeEvent, ReceivedPacket, STTSession
    from seigr_stt.metrics import MetricsServer

__all__ = ["cmd_node"]

# The CLI's logger (docs/deployment.md, "Logging"), named as before the cli package was split.
_log = logging.getLogger("seigr_stt.cli")


def _fmt_addr(addr: tuple[str, int]) -> str:
    host, port = addr
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _NodeRunner:
    """What ``stt node`` does besides the library: echo, print messages, receive files."""

    def __init__(self, node: STTNode, args: argparse.Namespace) -> None:
        self.node = node
        self.echo: bool = args.echo
        self.files = FileReceiver(args.receive_dir)
        self.tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.error("task failed", exc_info=task.exception())

    def on_established(self, event: NodeEvent) -> None:
        self.spawn(self.serve_streams(event.session))

    @staticmethod
    def on_key_rotated(event: NodeEvent) -> None:
        event.session.log.info("key rotated to version %s", event.key_version)

    async def pump(self) -> None:
        async for packet in self.node.receive():
            if self.echo:
                await self._echo(packet)
            else:
                preview = packet.data[:64]
                more = "…" if len(packet.data) > 64 else ""
                say(
                    f"message from {packet.session_id.hex()[:8]} on channel {packet.stream_id} "
                    f"({len(packet.data)} bytes): {preview!r}{more}"
                )

    async def _echo(self, packet: ReceivedPacket) -> None:
        session = self.node.session_manager.get_session(packet.session_id)
        if session is None:
            return
        try:
            await session.send(packet.data, packet.stream_id)
        except STTError as exc:
            session.log.info("echo not sent: %s", exc)

    async def serve_streams(self, session: STTSession) -> None:
        async for stream in session.incoming_streams():
            self.spawn(self.files.receive_file(session, stream))


async def _node_main(args: argparse.Namespace, seeds: Seeds) -> int:
    """Start the node (and the metrics exporter), print its addresses, serve until signalled."""
    if seeds.node is None:
        _log.warning("no node seed: using a random identity (its node id changes at each start)")
    node = STTNode(
        seeds.node or generate_seed(),
        seeds.shared,
        args.host,
        args.port,
        ws_port=None if args.no_ws else args.ws_port,
        logger=logging.getLogger("seigr_stt.node"),
        allowed_peers=seeds.allowed_peers,
    )
    if seeds.allowed_peers is not None:
        _log.info("pinned: sessions only with %d node id(s)", len(seeds.allowed_peers))
    runner = _NodeRunner(node, args)
    node.on("session_established", runner.on_established)
    node.on("key_rotated", runner.on_key_rotated)
    metrics: MetricsServer | None = None
    if args.metrics_port is not None:
        try:
            serve_metrics = importlib.import_module("seigr_stt.metrics").serve_metrics
        except ImportError:
            raise CLIError(
                "--metrics-port needs prometheus-client: pip install 'seigr-stt[metrics]'"
            ) from None
    await node.start(server_mode=args.server)
    try:
        if args.metrics_port is not None:
            # per-session series feed `stt stats`' session table (the library's default is off)
            metrics = serve_metrics(
                node, args.metrics_port, host=args.metrics_host, per_session=True
            )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, stop.set)
        assert node.udp_address is not None
        line = f"listening udp {_fmt_addr(node.udp_address)}"
        if node.ws_url:
            line += f" ws {node.ws_url}"
        if metrics is not None:
            line += f" metrics {metrics.url}"
        say(f"node {node.node_id.hex()}")
        say(line)
        runner.spawn(runner.pump())
        await stop.wait()
        _log.info("stopping")
    finally:
        if metrics is not None:
            await asyncio.to_thread(metrics.close)
        await node.stop()
        for task in list(runner.tasks):
            task.cancel()
        await asyncio.gather(*runner.tasks, return_exceptions=True)
    say("stopped")
    return EXIT_OK


def cmd_node(args: argparse.Namespace) -> int:
    """``stt node``: run a node until SIGINT or SIGTERM, then stop it and exit 0.

    Raises :class:`CLIError`: exit 2 for a port out of range, a ``--receive-dir`` that cannot be
    created or a missing seed; exit 1 when the node cannot start (e.g. its port is taken) or
    ``--metrics-port`` is given without prometheus-client.
    """
    for name in ("port", "ws_port", "metrics_port"):
        value = getattr(args, name)
        if value is not None and not 0 <= value <= 65535:
            raise CLIError(f"--{name.replace('_', '-')} must be within 0..65535", EXIT_USAGE)
    if args.receive_dir is not None:
        try:
            args.receive_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CLIError(
                f"--receive-dir {args.receive_dir}: {exc.strerror}", EXIT_USAGE
            ) from None
    seeds = read_seeds(args)
    try:
        return run(_node_main(args, seeds))
    except OSError as exc:
        raise CLIError(f"cannot start the node: {exc.strerror or exc}") from None
