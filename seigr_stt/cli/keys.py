"""``stt keygen`` and ``stt id``: a new random seed, written atomically; a seed's node id.

``stt id`` derives the node id (what peers pin) from a node seed, as ``wg pubkey`` does for a
WireGuard key: no node is started and no socket is opened.

The seed file is never written in place. The new seed goes into a fresh temporary file in the
target's directory (``O_CREAT | O_EXCL | O_NOFOLLOW``, mode 0600), is flushed to disk, and only
then takes the target's name (``os.replace`` with ``--force``, a hard link without it, so an
existing file is never overwritten by accident). A process that had the old file open keeps
reading the old seed, the old file's mode and owner do not carry over, and a symbolic link is
refused rather than followed.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import errno
import os
import secrets
import sys
from pathlib import Path

from seigr_stt import generate_seed
from seigr_stt.cli.console import say
from seigr_stt.cli.errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, CLIError
from seigr_stt.cli.seeds import parse_seed_text, read_node_seed
from seigr_stt.core.identity import NodeIdentity

__all__ = ["cmd_id", "cmd_keygen", "write_private_file"]

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # not on Windows; there a link is refused by lstat
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_TEMP_ATTEMPTS = 16
# What link() answers on a file system without hard links (e.g. FAT, some FUSE mounts).
_NO_HARD_LINKS = frozenset(
    getattr(errno, name)
    for name in ("EPERM", "ENOTSUP", "EOPNOTSUPP", "ENOSYS")
    if hasattr(errno, name)
)


def _create_temp(directory: Path, name: str) -> tuple[int, Path]:
    """A new file ``.NAME.RANDOM.tmp`` in ``directory``, opened for writing, mode exactly 0600."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC
    for _ in range(_TEMP_ATTEMPTS):
        temp = directory / f".{name}.{secrets.token_hex(6)}.tmp"
        try:
            fd = os.open(temp, flags, 0o600)
        except FileExistsError:
            continue
        try:
            if hasattr(os, "fchmod"):
                os.fchmod(fd, 0o600)  # the umask may have removed bits; it never adds any
        except OSError:
            os.close(fd)
            _unlink(temp)
            raise
        return fd, temp
    raise FileExistsError(f"no free temporary name in {directory}")


def _unlink(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def _sync_directory(directory: Path) -> None:
    """Make the rename durable (POSIX); best effort where a directory cannot be opened."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | _CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _link_new(temp: Path, path: Path) -> None:
    """Give ``temp`` the name ``path`` unless that exists (FileExistsError), atomically.

    A hard link fails atomically when ``path`` exists. On a file system without hard links the
    existence check and the rename are two steps: a file made in between would be replaced.
    """
    try:
        os.link(temp, path)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise
        if path.exists() or path.is_symlink():
            raise FileExistsError(path) from None
        os.replace(temp, path)


def write_private_file(path: Path, data: bytes, *, force: bool) -> None:
    """Write ``data`` to ``path`` atomically, as a new file of mode 0600.

    The data goes to a temporary file in the same directory, created with ``O_CREAT | O_EXCL |
    O_NOFOLLOW`` and mode 0600, and ``fsync``-ed; then it takes the name ``path``: with
    ``force`` by ``os.replace`` (an existing file is replaced, never written into), without it by
    a hard link that fails when ``path`` exists. Whatever happens, the temporary file is gone
    when this returns or raises, and ``path`` holds either its old content or all of ``data``.

    Raises :class:`CLIError`: exit 2 when ``path`` is a symbolic link (never followed) or its
    directory cannot be written; exit 1 when ``path`` exists and ``force`` is false, or writing
    fails.
    """
    if path.is_symlink():
        raise CLIError(
            f"{path} is a symbolic link; refusing to write a seed through it "
            "(give the real path, or remove the link)",
            EXIT_USAGE,
        )
    if not force and path.exists():
        raise CLIError(f"{path} exists (use --force to overwrite)", EXIT_FAILURE)
    directory = path.parent
    try:
        fd, temp = _create_temp(directory, path.name)
    except OSError as exc:
        raise CLIError(
            f"cannot create a file in {directory}: {exc.strerror or exc}", EXIT_USAGE
        ) from None
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        if force:
            os.replace(temp, path)
        else:
            _link_new(temp, path)
    except FileExistsError:
        raise CLIError(f"{path} exists (use --force to overwrite)", EXIT_FAILURE) from None
    except OSError as exc:
        raise CLIError(f"cannot write {path}: {exc.strerror or exc}", EXIT_FAILURE) from None
    finally:
        _unlink(temp)  # after os.replace the name is already gone; after os.link it is a 2nd link
    _sync_directory(directory)


def cmd_keygen(args: argparse.Namespace) -> int:
    """``stt keygen``: write a new random seed to ``args.output`` (``-``: standard output).

    The file is written by :func:`write_private_file`: atomically, as a new file of mode 0600.
    An existing file is kept (exit 1) unless ``args.force``; a symbolic link is refused (exit 2).
    The seed is written only to the file (or to standard output when asked), never elsewhere.
    """
    seed = generate_seed()
    text = seed.hex() if args.format == "hex" else base64.b64encode(seed).decode()
    if args.output == "-":
        sys.stdout.write(text + "\n")
        return EXIT_OK
    path = Path(args.output)
    write_private_file(path, (text + "\n").encode(), force=args.force)
    sys.stderr.write(f"wrote a new seed to {path} (mode 0600)\n")
    return EXIT_OK


def cmd_id(args: argparse.Namespace) -> int:
    """``stt id [SEEDFILE]``: print the node id (64 hex digits) of a node seed; exit 0.

    The seed is read from ``args.seedfile`` (``-``: standard input), else from ``STT_NODE_SEED``.
    Nothing but the id is printed: no node is started, no socket opened, and the seed never
    shown. Raises :class:`CLIError` (exit 2) when there is no seed, the file cannot be read, or
    the seed is weak.
    """
    if args.seedfile == "-":
        seed: bytes | None = parse_seed_text(sys.stdin.read(), "standard input", "node_seed")
    else:
        seed = read_node_seed(args.seedfile)
    if seed is None:
        raise CLIError(
            "no node seed: give SEEDFILE (written by `stt keygen`), - for standard input, or set "
            "STT_NODE_SEED",
            EXIT_USAGE,
        )
    say(NodeIdentity.from_seed(seed).node_id.hex())
    return EXIT_OK
