"""The ``stt send-file`` protocol, both directions: header, statuses, sender and receiver.

One transfer is one byte stream (its format is in docs/cli.md, "The send-file stream format"):
the sender writes a header and the file's bytes then finishes its side; the receiver answers a
status and the sha256 of what it received. :func:`send_file_main` is the ``stt send-file``
command; :class:`FileReceiver` is what ``stt node`` runs on each incoming stream.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import re
import struct
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from seigr_stt.cli.client import client_session
from seigr_stt.cli.console import printable, say
from seigr_stt.cli.errors import EXIT_OK, EXIT_USAGE, CLIError
from seigr_stt.cli.seeds import Seeds
from seigr_stt.exceptions import STTError

if TYPE_CHECKING:
    from seigr_stt.aio.session import STTSession
    from seigr_stt.aio.streams import STTStream

__all__ = [
    "FILE_BAD_HEADER",
    "FILE_MAGIC",
    "FILE_NAME_MAX",
    "FILE_REFUSED",
    "FILE_SIZE_MISMATCH",
    "FILE_STORED",
    "FILE_VERSION",
    "FILE_WRITE_ERROR",
    "FileReceiver",
    "Progress",
    "encode_file_header",
    "safe_file_name",
    "send_file_main",
]

# -- the stream header and the receiver's answer (docs/cli.md) ---------------------------------
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


# -- sender ------------------------------------------------------------------------------------
class Progress:
    """A rich progress bar on standard error when it is a terminal; otherwise (redirected, or
    rich missing) a plain line at each quarter. The finished bar shows the elapsed time."""

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
        console = Console(stderr=True)
        if not console.is_terminal:  # a log file gets plain lines, not box-drawing characters
            return
        self._bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(elapsed_when_finished=True),
            console=console,
        )
        self._task = self._bar.add_task(name, total=total)

    def __enter__(self) -> Progress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def advance(self, n: int) -> None:
        """Count ``n`` more bytes sent; without rich, print a line at each quarter reached."""
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


async def send_file_main(args: argparse.Namespace, seeds: Seeds) -> int:
    """``stt send-file``: send ``args.path`` over one byte stream and check the node's answer.

    A body for :func:`~seigr_stt.cli.client.client_command`. Exits 0 only when the node answers
    "stored" with the sha256 of what was sent; raises :class:`CLIError` with exit 2 for a file that
    cannot be opened or a name that does not fit the header, exit 1 for a refusal, a mismatch or
    no answer within ``--timeout``.
    """
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
                f"sending {printable(name)} ({size} bytes) on stream {stream.stream_id} "
                f"(session {session.session_id.hex()[:8]} over {session.transport_type})"
            )
            reply_task = asyncio.create_task(stream.readexactly(_FILE_REPLY.size))

            async def write_all() -> None:
                await stream.write(header)
                with Progress(name, size, not args.no_progress) as progress:
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


# -- receiver ----------------------------------------------------------------------------------
# C0 controls, DEL, C1 controls, and the Unicode line and paragraph separators.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def safe_file_name(name: str) -> str:
    """The file name a received file is stored under, from the name its sender announced.

    Every control character (C0, DEL, C1; also U+2028/U+2029) and backslash becomes ``_``; then
    only the base name is kept, stripped of surrounding white space, so no name leaves the receive
    directory (``../x`` and ``/etc/x`` give ``x``). An empty name, ``.`` or ``..`` gives
    ``received``; a name that looks like a transfer's part file (``.stt-….part``) gets a ``_``
    prefix. The result is never empty and contains no ``/``.
    """
    base = Path(_CONTROL.sub("_", name).replace("\\", "_")).name.strip()
    if base in ("", ".", ".."):
        return "received"
    if base.startswith(".stt-") and base.endswith(".part"):
        return "_" + base
    return base


def _unique_path(directory: Path, name: str) -> Path:
    """A free path in ``directory`` for :func:`safe_file_name` of ``name`` (``.1``, ``.2``, …)."""
    base = safe_file_name(name)
    path = directory / base
    n = 1
    while path.exists():
        path = directory / f"{base}.{n}"
        n += 1
    return path


class FileReceiver:
    """Receives ``stt send-file`` transfers into ``receive_dir``; refuses them when it is None.

    ``receive_dir`` must exist. Each transfer is stored under a free name derived from the name
    the sender announced (:func:`safe_file_name`), and printed on standard output with its sha256;
    the announced name is printed escaped (:func:`~seigr_stt.cli.console.printable`), so a peer
    cannot write terminal escape sequences to the operator's terminal.
    """

    def __init__(self, receive_dir: Path | None) -> None:
        self.receive_dir = receive_dir

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
            with _create_private(part) as handle:
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
            f"received file {printable(name)} ({size} bytes) from {session.session_id.hex()[:8]} "
            f"sha256 {digest.hexdigest()} -> {printable(str(path))}"
        )
        await self._reply(stream, FILE_STORED, digest.digest())


def _create_private(path: Path) -> IO[bytes]:
    """``path`` opened for writing, mode 0600 (narrowed further by the umask), never through a
    symbolic link: a received file is readable by the node's user only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600 & os.fstat(fd).st_mode)  # a file that existed keeps no wider mode
        return os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        raise


def _discard(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)
