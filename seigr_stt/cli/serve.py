"""``stt node``: run a node until SIGINT/SIGTERM, printing or echoing what it receives.

Besides the library's node this adds what the command promises (docs/cli.md, "stt node"): the
``node`` and ``listening`` lines, messages printed or echoed (``--echo``), files received over
byte streams (:class:`~seigr_stt.cli.filetransfer.FileReceiver`), and the optional Prometheus
exporter (``--metrics-port``, imported only when asked for), the ``--config`` file
(:mod:`~seigr_stt.cli.nodefile`) and the control socket ``stt show`` reads
(:mod:`~seigr_stt.cli.control`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import importlib
import logging
import signal
import socket
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seigr_stt import STTNode, generate_seed
from seigr_stt.cli.console import configure_logging, run, say
from seigr_stt.cli.control import ControlServer, default_socket_path, node_snapshot
from seigr_stt.cli.errors import EXIT_OK, EXIT_USAGE, CLIError
from seigr_stt.cli.filetransfer import FileReceiver
from seigr_stt.cli.nodefile import apply_node_file
from seigr_stt.cli.seeds import Seeds, read_seeds
from seigr_stt.config import NodeConfig
from seigr_stt.exceptions import ConfigError, STTError

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


def _port_in_use(host: str, port: int, kind: socket.SocketKind) -> bool:
    """Whether binding ``host:port`` (UDP or TCP, as the node does) fails as taken."""
    if port == 0:
        return False
    try:
        family, _, _, _, address = socket.getaddrinfo(host, port, type=kind)[0]
    except OSError:
        return False
    with socket.socket(family, kind) as probe:
        if kind == socket.SOCK_STREAM:  # as asyncio's servers do
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def _start_error(args: argparse.Namespace, exc: BaseException) -> CLIError:
    """Why the node could not start, in words naming the address (which port is taken)."""
    cause = exc if isinstance(exc, OSError) else exc.__cause__
    if isinstance(cause, OSError) and cause.errno == errno.EADDRINUSE:
        busy = []
        if _port_in_use(args.host, args.port, socket.SOCK_DGRAM):
            busy.append(f"UDP port {args.port} on {args.host} (--port)")
        if not args.no_ws and _port_in_use(args.host, args.ws_port, socket.SOCK_STREAM):
            busy.append(f"WebSocket (TCP) port {args.ws_port} on {args.host} (--ws-port)")
        if busy:
            return CLIError(
                f"cannot start the node: {' and '.join(busy)} already in use; choose another "
                "port, or 0 for any free one"
            )
    if isinstance(cause, OSError) and not isinstance(exc, OSError):
        return CLIError(f"cannot start the node: {exc}")
    detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    ws = "" if args.no_ws else f", WebSocket {args.host}:{args.ws_port}"
    return CLIError(f"cannot start the node on UDP {args.host}:{args.port}{ws}: {detail}")


async def _node_main(args: argparse.Namespace, seeds: Seeds, config: NodeConfig) -> int:
    """Start the node (metrics exporter, control socket), print its addresses, serve until
    signalled."""
    if seeds.node is None:
        _log.warning("no node seed: using a random identity (its node id changes at each start)")
    try:
        node = STTNode(
            seeds.node or generate_seed(),
            seeds.shared,
            args.host,
            args.port,
            ws_port=None if args.no_ws else args.ws_port,
            config=config,
            logger=logging.getLogger("seigr_stt.node"),
            allowed_peers=seeds.allowed_peers,
        )
    except ConfigError as exc:
        raise CLIError(str(exc), EXIT_USAGE) from None
    if seeds.allowed_peers is not None:
        _log.info("pinned: sessions only with %d node id(s)", len(seeds.allowed_peers))
    runner = _NodeRunner(node, args)
    node.on("session_established", runner.on_established)
    node.on("key_rotated", runner.on_key_rotated)
    metrics: MetricsServer | None = None
    control: ControlServer | None = None
    if args.metrics_port is not None:
        try:
            serve_metrics = importlib.import_module("seigr_stt.metrics").serve_metrics
        except ImportError:
            raise CLIError(
                "--metrics-port needs prometheus-client: "
                "pip install -e '.[metrics]' from a checkout"
            ) from None
    try:
        await node.start(server_mode=args.server)
    except (OSError, STTError) as exc:
        raise _start_error(args, exc) from None
    started_at = time.time()
    try:
        assert node.udp_address is not None
        if args.control_socket != "none":
            path = (
                Path(args.control_socket)
                if args.control_socket
                else default_socket_path(node.udp_address[1])
            )
            control = ControlServer(path, lambda: node_snapshot(node, started_at))
            await control.open()
        if args.metrics_port is not None:
            # per-session series feed `stt stats`' session table (the library's default is off)
            try:
                metrics = serve_metrics(
                    node, args.metrics_port, host=args.metrics_host, per_session=True
                )
            except OSError as exc:
                raise CLIError(
                    f"cannot serve metrics on {args.metrics_host}:{args.metrics_port} "
                    f"(--metrics-port): {exc.strerror or exc}"
                ) from None
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, stop.set)
        line = f"listening udp {_fmt_addr(node.udp_address)}"
        if node.ws_url:
            line += f" ws {node.ws_url}"
        if metrics is not None:
            line += f" metrics {metrics.url}"
        say(f"node {node.node_id.hex()}")
        say(line)
        ticket = node.ticket()
        if not ticket.is_empty:  # a wildcard bind without relays has no address to hand out
            say(f"ticket {ticket}")
        if control is not None:
            say(f"control {control.path}")
        runner.spawn(runner.pump())
        await stop.wait()
        _log.info("stopping")
    finally:
        if control is not None:
            await control.close()
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

    Options come from the command line, else from ``--config`` FILE, else the defaults
    (:func:`~seigr_stt.cli.nodefile.apply_node_file`). Raises :class:`CLIError`: exit 2 for a bad
    config file, a ``--receive-dir`` that cannot be created or a missing seed; exit 1 when the
    node cannot start (the message names the port that is taken), its control socket cannot be
    opened, or ``--metrics-port`` is given without prometheus-client.
    """
    config = apply_node_file(args)
    if args.log_level is not None:
        configure_logging(args.log_level)
    if args.receive_dir is not None:
        try:
            args.receive_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CLIError(
                f"--receive-dir {args.receive_dir}: {exc.strerror}", EXIT_USAGE
            ) from None
    seeds = read_seeds(args)
    return run(_node_main(args, seeds, config))
