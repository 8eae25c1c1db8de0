"""The ``stt`` command line (also ``python -m seigr_stt``); see ``docs/cli.md``.

Commands: ``keygen``, ``node``, ``connect``, ``send``, ``send-file``, ``ping``, ``stats``,
``bench`` and ``demo``. Logging is configured here only (``--log-level``); the library installs
no handlers. Seeds come from files written by ``stt keygen`` (``--node-seed`` /
``--shared-seed``) or from the ``STT_NODE_SEED`` / ``STT_SHARED_SEED`` environment variables
and are never printed or logged.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import importlib
import logging
import os
import signal
import statistics
import struct
import sys
import time
from collections.abc import AsyncIterator, Coroutine, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlsplit

from seigr_stt import __version__, generate_seed
from seigr_stt.aio.node import STTNode
from seigr_stt.cli.client import client_command, client_session, target_text
from seigr_stt.cli.console import run, say
from seigr_stt.cli.errors import (
    EXIT_CODES,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    CLIError,
)
from seigr_stt.cli.seeds import Seeds, read_seeds
from seigr_stt.exceptions import (
    MessageTooLarge,
    STTError,
)

if TYPE_CHECKING:
    from seigr_stt.aio.session import NodeEvent, ReceivedPacket, STTSession
    from seigr_stt.aio.streams import STTStream
    from seigr_stt.metrics import MetricsServer

__all__ = ["main"]


SEED_HELP = """\
seeds:
  --node-seed FILE / --shared-seed FILE read files written by `stt keygen` (hex or base64);
  without them the STT_NODE_SEED / STT_SHARED_SEED environment variables (hex or base64
  text) are used. The shared seed is required; without a node seed a random identity is
  used. Seeds are never printed or logged.
"""

_log = logging.getLogger("seigr_stt.cli")

DEFAULT_UDP_PORT = 9000
DEFAULT_WS_PORT = 9001

# -- send-file stream header (docs/cli.md) -----------------------------------------------------
FILE_MAGIC = b"STTF"
FILE_VERSION = 1
FILE_NAME_MAX = 1024
_FILE_HEAD = struct.Struct("!4sBH")  # magic, version, name length
_FILE_SIZE = struct.Struct("!Q")
FILE_STORED = 0
FILE_REFUSED = 1
FILE_BAD_HEADER = 2
FILE_SIZE_MISMATCH = 3
FILE_WRITE_ERROR = 4
_FILE_STATUS = {
    FILE_STORED: "stored",
    FILE_REFUSED: "refused: the node runs without --receive-dir",
    FILE_BAD_HEADER: "refused: bad header",
    FILE_SIZE_MISMATCH: "failed: the node received a different number of bytes",
    FILE_WRITE_ERROR: "failed: the node could not write the file",
}
_FILE_REPLY = struct.Struct("!B32s")  # status, sha256 of the bytes received


def encode_file_header(name: str, size: int) -> bytes:
    """The header ``stt send-file`` writes before the file's bytes."""
    raw = name.encode()
    if not 0 < len(raw) <= FILE_NAME_MAX:
        raise ValueError(f"file name must be 1..{FILE_NAME_MAX} bytes of UTF-8")
    return _FILE_HEAD.pack(FILE_MAGIC, FILE_VERSION, len(raw)) + raw + _FILE_SIZE.pack(size)


def _configure_logging(level_name: str) -> None:
    level = getattr(logging, level_name.upper())
    logging.basicConfig(
        level=min(level, logging.WARNING),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("seigr_stt").setLevel(level)


def _fmt_addr(addr: tuple[str, int]) -> str:
    host, port = addr
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _ms(seconds: float | None) -> str:
    return "not measured" if seconds is None else f"{seconds * 1000:.3f} ms"


async def _measure_rtt(node: STTNode, session: STTSession, wait: float) -> float | None:
    """The session's smoothed RTT, sending a PING first when none was sampled yet."""
    if session.rtt is None and session.is_active():
        with contextlib.suppress(STTError, TimeoutError):
            await session.ping(timeout=wait)
    return session.rtt


# -- keygen, demo, bench -------------------------------------------------------------------------
def _cmd_demo(args: argparse.Namespace) -> int:
    from seigr_stt.demo import run_demo

    async def demo() -> int:
        await run_demo()
        return EXIT_OK

    return run(demo())


def _cmd_keygen(args: argparse.Namespace) -> int:
    seed = generate_seed()
    text = seed.hex() if args.format == "hex" else base64.b64encode(seed).decode()
    if args.output == "-":
        sys.stdout.write(text + "\n")
        return EXIT_OK
    path = Path(args.output)
    if path.exists() and not args.force:
        sys.stderr.write(f"stt keygen: {path} exists (use --force to overwrite)\n")
        return EXIT_FAILURE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text + "\n")
    os.chmod(path, 0o600)
    sys.stderr.write(f"wrote a new seed to {path} (mode 0600)\n")
    return EXIT_OK


BENCH_HELP = """\
usage: stt bench [ARGS ...]

Run the benchmarks (seigr_stt.bench); every argument is passed on to them,
so `stt bench --help` shows their options.
"""


def _cmd_bench(argv: list[str]) -> int:
    try:
        bench = importlib.import_module("seigr_stt.bench")
    except ImportError as exc:
        if exc.name not in ("seigr_stt.bench", "seigr_stt"):
            raise
        bench = None
    run = getattr(bench, "main", None)
    if run is None:
        if any(arg in ("-h", "--help") for arg in argv):
            sys.stdout.write(BENCH_HELP + "\n" + EXIT_CODES)
            return EXIT_OK
        sys.stderr.write(
            "stt bench: the benchmarks (seigr_stt.bench) are not part of this installation\n"
        )
        return EXIT_FAILURE
    code = run(argv)
    return int(code or 0)


# -- node ----------------------------------------------------------------------------------------
def _unique_path(directory: Path, name: str) -> Path:
    base = Path(name.replace("\x00", "_").replace("\\", "_")).name.strip()
    if base in ("", ".", ".."):
        base = "received"
    path = directory / base
    n = 1
    while path.exists():
        path = directory / f"{base}.{n}"
        n += 1
    return path


class _NodeRunner:
    """What ``stt node`` does besides the library: echo, print messages, receive files."""

    def __init__(self, node: STTNode, args: argparse.Namespace) -> None:
        self.node = node
        self.echo: bool = args.echo
        self.receive_dir: Path | None = args.receive_dir
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
            self.spawn(self.receive_file(session, stream))

    async def _reply(self, stream: STTStream, status: int, digest: bytes = bytes(32)) -> None:
        with contextlib.suppress(STTError):
            await stream.write(_FILE_REPLY.pack(status, digest))
            await stream.close()

    async def receive_file(self, session: STTSession, stream: STTStream) -> None:
        """One ``stt send-file`` transfer (the header is described in docs/cli.md)."""
        log = session.log
        try:
            magic, version, name_len = _FILE_HEAD.unpack(await stream.readexactly(_FILE_HEAD.size))
            if magic != FILE_MAGIC or version != FILE_VERSION or not 0 < name_len <= FILE_NAME_MAX:
                log.warning("stream %d: not an stt send-file header", stream.stream_id)
                await self._reply(stream, FILE_BAD_HEADER)
                return
            name = (await stream.readexactly(name_len)).decode("utf-8", "replace")
            (size,) = _FILE_SIZE.unpack(await stream.readexactly(_FILE_SIZE.size))
        except (asyncio.IncompleteReadError, STTError) as exc:
            log.warning("stream %d ended inside the send-file header: %s", stream.stream_id, exc)
            return
        if self.receive_dir is None:
            log.warning("refused file %r (%d bytes): no --receive-dir", name, size)
            await self._reply(stream, FILE_REFUSED)
            return
        digest = hashlib.sha256()
        got = 0
        # One part file per transfer; the final name is chosen when the file is complete.
        part = self.receive_dir / f".stt-{session.session_id.hex()[:8]}-{stream.stream_id}.part"
        log.info("receiving file %r (%d bytes) on stream %d", name, size, stream.stream_id)
        try:
            with part.open("wb") as handle:
                async for chunk in stream:
                    got += len(chunk)
                    if got > size:
                        break
                    digest.update(chunk)
                    handle.write(chunk)
            if got == size:
                path = _unique_path(self.receive_dir, name)
                part.replace(path)  # no await since _unique_path: the name is still free
        except OSError as exc:
            log.error("cannot store file %r: %s", name, exc.strerror or exc)
            _discard(part)
            await self._reply(stream, FILE_WRITE_ERROR)
            return
        except STTError as exc:
            log.warning("file %r not complete: %s", name, exc)
            _discard(part)
            return
        if got != size:
            _discard(part)
            log.warning("file %r: announced %d bytes, received %d", name, size, got)
            await self._reply(stream, FILE_SIZE_MISMATCH, digest.digest())
            return
        say(
            f"received file {name} ({size} bytes) from {session.session_id.hex()[:8]} "
            f"sha256 {digest.hexdigest()} -> {path}"
        )
        await self._reply(stream, FILE_STORED, digest.digest())


def _discard(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


async def _node_main(args: argparse.Namespace, seeds: Seeds) -> int:
    if seeds.node is None:
        _log.warning("no node seed: using a random identity (its node id changes at each start)")
    node = STTNode(
        seeds.node or generate_seed(),
        seeds.shared,
        args.host,
        args.port,
        ws_port=None if args.no_ws else args.ws_port,
        logger=logging.getLogger("seigr_stt.node"),
    )
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
            metrics = serve_metrics(node, args.metrics_port, host=args.metrics_host)
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


def _cmd_node(args: argparse.Namespace) -> int:
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


# -- connect, send, send-file, ping --------------------------------------------------------------
async def _connect_main(args: argparse.Namespace, seeds: Seeds) -> int:
    async with client_session(args, seeds) as (node, session, elapsed):
        rtt = await _measure_rtt(node, session, min(args.timeout, 2.0))
        say(f"session    {session.session_id.hex()} over {session.transport_type}")
        say(f"peer       {session.peer_node_id.hex()}")
        say(f"key        version {session.key_version}")
        if args.rotate:
            before = session.key_version
            await session.rotate_key(timeout=args.timeout)
            say(f"rotated    key version {before} -> {session.key_version}")
        say(f"handshake  {_ms(elapsed)}")
        say(f"rtt        {_ms(rtt)}")
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


async def _send_main(args: argparse.Namespace, seeds: Seeds) -> int:
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


async def _ping_main(args: argparse.Namespace, seeds: Seeds) -> int:
    async with client_session(args, seeds) as (node, session, _), _inbox(node) as inbox:
        sid = session.session_id
        say(f"PING {target_text(args)}: session {sid.hex()[:8]} over {session.transport_type}")
        times: list[float] = []
        for seq in range(args.count):
            if seq:
                await asyncio.sleep(args.interval)
            payload = b"stt-ping " + struct.pack("!Id", seq, time.time())
            started = time.perf_counter()
            await session.send(payload, args.stream)
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
        rtt = await _measure_rtt(node, session, 0.5)
    sent = args.count
    loss = 100.0 * (sent - len(times)) / sent
    say(f"--- {target_text(args)} ping statistics ---")
    say(f"{sent} sent, {len(times)} received, {loss:.0f}% loss")
    if not times:
        raise CLIError("no replies (does the node run with --echo?)")
    ms = [t * 1000 for t in times]
    say(
        f"rtt min/avg/p50/max = {min(ms):.3f}/{statistics.fmean(ms):.3f}/"
        f"{statistics.median(ms):.3f}/{max(ms):.3f} ms"
    )
    say(f"session smoothed rtt {_ms(rtt)}")
    return EXIT_OK


class _Progress:
    """A rich progress bar on standard error, or a few plain lines when rich is missing."""

    def __init__(self, name: str, total: int, enabled: bool) -> None:
        self._total = total
        self._done = 0
        self._next_mark = 25
        self._bar: Any = None
        self._task: Any = None
        self._enabled = enabled
        self._name = name
        if not enabled:
            return
        try:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )
        except ImportError:
            return
        self._bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self._task = self._bar.add_task(name, total=total)

    def __enter__(self) -> _Progress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def advance(self, n: int) -> None:
        self._done += n
        if self._bar is not None:
            self._bar.update(self._task, advance=n)
        elif self._enabled and self._total:
            percent = 100 * self._done // self._total
            if percent >= self._next_mark:
                say(f"{self._name}: {self._done}/{self._total} bytes ({percent}%)", sys.stderr)
                self._next_mark = (percent // 25 + 1) * 25


def _open_file(path: Path) -> tuple[IO[bytes], int]:
    handle = path.open("rb")
    return handle, os.fstat(handle.fileno()).st_size


async def _send_file_main(args: argparse.Namespace, seeds: Seeds) -> int:
    path: Path = args.path
    try:
        handle, size = await asyncio.to_thread(_open_file, path)
    except OSError as exc:
        raise CLIError(f"{path}: {exc.strerror}", EXIT_USAGE) from None
    name = args.name or path.name
    try:
        header = encode_file_header(name, size)
    except ValueError as exc:
        handle.close()
        raise CLIError(str(exc), EXIT_USAGE) from None
    digest = hashlib.sha256()
    with handle:
        async with client_session(args, seeds) as (_, session, _):
            stream = await session.open_stream()
            say(
                f"sending {name} ({size} bytes) on stream {stream.stream_id} "
                f"(session {session.session_id.hex()[:8]} over {session.transport_type})"
            )
            reply_task = asyncio.create_task(stream.readexactly(_FILE_REPLY.size))

            async def write_all() -> None:
                await stream.write(header)
                with _Progress(name, size, not args.no_progress) as progress:
                    while chunk := handle.read(args.chunk_size):
                        digest.update(chunk)
                        await stream.write(chunk)
                        await stream.drain()
                        progress.advance(len(chunk))
                await stream.close()

            writer = asyncio.create_task(write_all())
            try:
                await asyncio.wait({writer, reply_task}, return_when=asyncio.FIRST_COMPLETED)
                if not writer.done():  # the node answered before taking everything: refused
                    writer.cancel()
                    with contextlib.suppress(asyncio.CancelledError, STTError):
                        await writer
                    stream.reset(FILE_REFUSED)
                else:
                    await writer
                async with asyncio.timeout(args.timeout):
                    reply = await reply_task
            except TimeoutError:
                raise CLIError(f"no answer from the node within {args.timeout:g} s") from None
            except asyncio.IncompleteReadError:
                raise CLIError("the node closed the stream without an answer") from None
            finally:
                for task in (writer, reply_task):
                    task.cancel()
    status, remote = _FILE_REPLY.unpack(reply)
    if status != FILE_STORED:
        raise CLIError(f"the node {_FILE_STATUS.get(status, f'answered status {status}')}")
    say(f"sha256 {digest.hexdigest()}")
    if remote != digest.digest():
        raise CLIError(f"the node stored a file with another sha256: {remote.hex()}")
    say(f"stored by the node (sha256 matches, {size} bytes)")
    return EXIT_OK


# -- stats ---------------------------------------------------------------------------------------
def _fetch(url: str, timeout: float) -> str:
    import urllib.error
    import urllib.request

    if urlsplit(url).scheme not in ("http", "https"):
        raise CLIError("--url must start with http:// or https://", EXIT_USAGE)
    # Straight to the node: metrics ports are local, so proxy variables are not used.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            body: bytes = response.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CLIError(
            f"cannot read {url}: {reason} (does the node run with --metrics-port?)"
        ) from None
    return body.decode("utf-8", "replace")


def parse_metrics(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Prometheus text → {sample name: [(labels, value), ...]} (needs prometheus-client)."""
    from prometheus_client.parser import text_string_to_metric_families

    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return samples


def _summary(samples: dict[str, list[tuple[dict[str, str], float]]]) -> list[str]:
    def one(name: str) -> int:
        values = samples.get(name)
        return int(values[0][1]) if values else 0

    def labelled(name: str, label: str) -> dict[str, float]:
        return {labels[label]: value for labels, value in samples.get(name, [])}

    info = samples["stt_node_info"][0][0]
    state = labelled("stt_sessions", "state")
    drops = labelled("stt_drops_total", "reason")
    drop_text = ", ".join(f"{k} {int(v)}" for k, v in sorted(drops.items()) if v) or "none"
    lines = [
        f"node       {info['node_id']}… version {info.get('version', '?')}"
        + ("" if one("stt_node_running") else " (stopped)"),
        f"udp        {info['udp'] or '-'}",
        f"websocket  {info['websocket'] or '-'}",
        f"server     {info['server_mode']}",
        "sessions   "
        + " ".join(f"{s} {int(state.get(s, 0))}" for s in ("active", "handshake", "closing"))
        + f" (created {one('stt_sessions_created_total')}, "
        f"closed {one('stt_sessions_closed_total')})",
        f"handshakes started {one('stt_handshakes_started_total')}, "
        f"failed {one('stt_handshakes_failed_total')}, "
        f"in flight {one('stt_handshakes_in_flight')}",
        f"packets    sent {one('stt_packets_sent_total')}, "
        f"received {one('stt_packets_received_total')}",
        f"bytes      sent {one('stt_bytes_sent_total')}, "
        f"received {one('stt_bytes_received_total')}",
        f"drops      {int(sum(drops.values()))} ({drop_text})",
    ]
    per: dict[tuple[str, str, str], dict[str, float]] = {}
    for name, values in samples.items():
        if not name.startswith("stt_session_"):
            continue
        for labels, value in values:
            key = (labels["session"], labels["peer"], labels["transport"])
            per.setdefault(key, {})[name.removeprefix("stt_session_")] = value
    if per:
        head = ("SESSION", "PEER", "TRANSPORT", "KEY", "RTT", "SENT", "RECEIVED", "LOST")
        rows = [head]
        for (sid, peer, transport), v in sorted(per.items()):
            rtt = v.get("rtt_seconds")
            rows.append(
                (
                    sid,
                    peer,
                    transport,
                    str(int(v.get("key_version", 0))),
                    "-" if rtt is None else f"{rtt * 1000:.2f}ms",
                    str(int(v.get("bytes_sent_total", 0))),
                    str(int(v.get("bytes_received_total", 0))),
                    str(int(v.get("packets_lost_total", 0))),
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
        lines.append("")
        lines.extend(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in rows
        )
    else:
        lines.append("no live sessions")
    return lines


def _cmd_stats(args: argparse.Namespace) -> int:
    if args.url:
        if args.host is not None:
            raise CLIError("give HOST PORT or --url URL, not both", EXIT_USAGE)
        url: str = args.url
    elif args.host is not None and args.port is not None:
        host = f"[{args.host}]" if ":" in args.host else args.host
        url = f"http://{host}:{args.port}/metrics"
    else:
        raise CLIError(
            "give the metrics HOST and PORT (stt node --metrics-port), or --url", EXIT_USAGE
        )
    text = _fetch(url, args.timeout)
    if args.raw:
        sys.stdout.write(text)
        return EXIT_OK
    try:
        samples = parse_metrics(text)
    except ImportError:
        raise CLIError(
            "reading metrics needs prometheus-client: pip install 'seigr-stt[metrics]' "
            "(or use --raw)"
        ) from None
    except ValueError as exc:
        raise CLIError(f"{url} did not answer Prometheus text: {exc}") from None
    if "stt_node_info" not in samples:
        raise CLIError(f"{url} is not an stt node's exporter (no stt_node_info)")
    for line in _summary(samples):
        say(line)
    return EXIT_OK


# -- the parser ----------------------------------------------------------------------------------
def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} is not within 0..65535")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} is not positive")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{value:g} is not positive")
    return value


def _common(default_level: str) -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default=default_level,
        help=f"log level of the seigr_stt loggers, on standard error (default {default_level})",
    )
    return common


def _seed_options() -> argparse.ArgumentParser:
    seeds = argparse.ArgumentParser(add_help=False)
    seeds.add_argument("--node-seed", metavar="FILE", help="this node's seed file (identity)")
    seeds.add_argument(
        "--shared-seed", metavar="FILE", help="the group's shared seed file (required)"
    )
    return seeds


def _target_options() -> argparse.ArgumentParser:
    target = argparse.ArgumentParser(add_help=False)
    target.add_argument("host", nargs="?", metavar="HOST", help="the node's UDP host")
    target.add_argument("port", nargs="?", type=_port, metavar="PORT", help="the node's UDP port")
    target.add_argument("--ws", metavar="URL", help="connect over WebSocket (ws://host:port/stt)")
    target.add_argument(
        "--timeout",
        type=_positive_float,
        default=5.0,
        help="seconds to wait for the handshake and for answers (default 5)",
    )
    target.add_argument("--bind", metavar="HOST", help="local address of this client's socket")
    return target


class _Formatter(argparse.RawDescriptionHelpFormatter):
    pass


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stt",
        description="seigr_stt: encrypted P2P nodes over UDP and WebSocket",
        epilog="Run `stt COMMAND --help` for a command's options.\n\n" + EXIT_CODES,
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"seigr_stt {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    quiet = _common("warning")
    client = [quiet, _seed_options(), _target_options()]

    def add(
        name: str, help_text: str, parents: list[argparse.ArgumentParser], epilog: str = ""
    ) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            parents=parents,
            epilog=(epilog + "\n" if epilog else "") + EXIT_CODES,
            formatter_class=_Formatter,
        )

    keygen = add("keygen", "write a new random seed file (mode 0600)", [quiet])
    keygen.add_argument("output", help="file to write, or - for standard output")
    keygen.add_argument("--format", choices=("hex", "base64"), default="hex")
    keygen.add_argument("--force", action="store_true", help="overwrite an existing file")
    keygen.set_defaults(func=_cmd_keygen)

    node = add(
        "node",
        "run a node over UDP and WebSocket until SIGINT/SIGTERM",
        [_common("info"), _seed_options()],
        "On start it prints `node NODE_ID` and\n"
        "`listening udp HOST:PORT [ws URL] [metrics URL]` on standard output.\n\n" + SEED_HELP,
    )
    node.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    node.add_argument(
        "--port", type=_port, default=DEFAULT_UDP_PORT, help="UDP port (default 9000; 0: any)"
    )
    node.add_argument(
        "--ws-port",
        type=_port,
        default=DEFAULT_WS_PORT,
        help="WebSocket port (default 9001; 0: any)",
    )
    node.add_argument("--no-ws", action="store_true", help="serve UDP only")
    node.add_argument(
        "--server",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="accept peers' handshakes (default: yes)",
    )
    node.add_argument(
        "--metrics-port",
        type=_port,
        help="serve Prometheus metrics on http://METRICS_HOST:PORT/metrics (needs the metrics "
        "extra)",
    )
    node.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        help="address of the metrics server (default 127.0.0.1)",
    )
    node.add_argument("--echo", action="store_true", help="send every message back to its sender")
    node.add_argument(
        "--receive-dir", type=Path, metavar="DIR", help="store files sent with `stt send-file` here"
    )
    node.set_defaults(func=_cmd_node)

    connect = add(
        "connect",
        "handshake with a node, print the session, then close",
        client,
        "examples:\n  stt connect 127.0.0.1 9000 --shared-seed shared.seed\n"
        "  stt connect --ws ws://127.0.0.1:9001/stt --shared-seed shared.seed\n\n" + SEED_HELP,
    )
    connect.add_argument(
        "--rotate", action="store_true", help="also rotate the session's keys once"
    )
    connect.set_defaults(func=client_command(_connect_main))

    send = add(
        "send",
        "send one message to a node",
        client,
        "example:\n  stt send 127.0.0.1 9000 hello --shared-seed shared.seed --wait-reply\n\n"
        + SEED_HELP,
    )
    send.add_argument("message", metavar="MESSAGE", help="the message text, or - for stdin")
    send.add_argument(
        "--stream", type=_non_negative_int, default=0, help="message channel (default 0)"
    )
    send.add_argument(
        "--wait-reply", action="store_true", help="wait for one message back and print it"
    )
    send.set_defaults(func=client_command(_send_main))

    send_file = add(
        "send-file",
        "send a file over a byte stream, with a progress bar",
        client,
        "The node must run with --receive-dir. Both sides print the file's sha256.\n\n" + SEED_HELP,
    )
    send_file.add_argument("path", type=Path, metavar="PATH", help="the file to send")
    send_file.add_argument(
        "--chunk-size",
        type=_positive_int,
        default=64 * 1024,
        help="bytes per write (default 65536)",
    )
    send_file.add_argument("--name", help="name to store the file under (default: its name)")
    send_file.add_argument("--no-progress", action="store_true", help="no progress bar")
    send_file.set_defaults(func=client_command(_send_file_main))

    ping = add(
        "ping",
        "measure round-trip times to a node running with --echo",
        client,
        "Each ping is a message the node echoes back; prints min/avg/p50/max.\n\n" + SEED_HELP,
    )
    ping.add_argument("--count", "-c", type=_positive_int, default=5, help="pings (default 5)")
    ping.add_argument(
        "--interval",
        type=float,
        default=0.2,
        help="seconds between pings (default 0.2)",
    )
    ping.add_argument("--stream", type=_non_negative_int, default=0, help="message channel")
    ping.set_defaults(func=client_command(_ping_main))

    stats = add(
        "stats",
        "print a running node's statistics from its metrics endpoint",
        [quiet],
        "HOST PORT are those of `stt node --metrics-port PORT` (http://HOST:PORT/metrics).",
    )
    stats.add_argument("host", nargs="?", metavar="HOST", help="the metrics server's host")
    stats.add_argument("port", nargs="?", type=_port, metavar="PORT", help="the metrics port")
    stats.add_argument("--url", help="the full metrics URL instead of HOST PORT")
    stats.add_argument("--raw", action="store_true", help="print the Prometheus text as is")
    stats.add_argument(
        "--timeout", type=_positive_float, default=5.0, help="seconds to wait (default 5)"
    )
    stats.set_defaults(func=_cmd_stats)

    # Parsed by main() itself so that every argument reaches the benchmarks.
    sub.add_parser("bench", help="run the benchmarks (arguments are passed on)", add_help=False)

    demo = add(
        "demo",
        "two nodes in one process: the whole lifecycle over UDP and WebSocket",
        [quiet],
    )
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 failure, 2 usage, 3 handshake timeout)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["bench"]:
        return _cmd_bench(arguments[1:])
    args = build_parser().parse_args(arguments)
    try:
        if args.command != "keygen":  # keygen logs nothing: leave the process's logging be
            _configure_logging(args.log_level)
        code: int = args.func(args)
        return code
    except CLIError as exc:
        sys.stderr.write(f"stt {args.command}: {exc}\n")
        return exc.code
    except KeyboardInterrupt:
        sys.stderr.write("stt: interrupted\n")
        return EXIT_INTERRUPTED
