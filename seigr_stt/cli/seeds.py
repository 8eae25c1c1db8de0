"""The seeds a command runs with: seed files or environment variables, never shown.

Seeds come from files written by ``stt keygen`` (``--node-seed`` / ``--shared-seed``) or from the
``STT_NODE_SEED`` / ``STT_SHARED_SEED`` environment variables (hex or base64 text). No message,
log line or repr made here contains a seed.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from seigr_stt.cli.errors import EXIT_USAGE, CLIError
from seigr_stt.core.identity import parse_seed
from seigr_stt.exceptions import WeakSeedError

__all__ = ["Seeds", "read_seeds"]


def _read_seed(path: str | None, env: str, what: str, flag: str) -> bytes | None:
    """The seed in file ``path``, else in variable ``env``; None when neither is given."""
    if path is not None:
        file = Path(path)
        try:
            text = file.read_text()
            mode = file.stat().st_mode
        except (OSError, UnicodeDecodeError) as exc:
            detail = exc.strerror if isinstance(exc, OSError) else "not a text file"
            raise CLIError(f"{flag} {path}: {detail}", EXIT_USAGE) from None
        if os.name == "posix" and mode & 0o077:
            sys.stderr.write(f"stt: warning: {path} is readable by others; run chmod 600 {path}\n")
        source = f"{flag} {path}"
    else:
        env_text = os.environ.get(env)
        if not env_text:
            return None
        text = env_text
        source = env
    try:
        return parse_seed(text.strip(), what)
    except WeakSeedError as exc:  # its text never contains the seed
        raise CLIError(f"{source}: {exc}", EXIT_USAGE) from None


@dataclass(frozen=True, slots=True)
class Seeds:
    """A command's seeds: ``node`` is None when none was given (a random identity is used)."""

    node: bytes | None
    shared: bytes

    def __repr__(self) -> str:
        return "Seeds(...)"


def read_seeds(args: argparse.Namespace) -> Seeds:
    """The seeds named by ``args.node_seed`` / ``args.shared_seed``, else by the environment.

    Raises :class:`CLIError` (exit 2) when there is no shared seed, when a seed file cannot be
    read, or when a seed is too short or too weak. Warns on standard error about a seed file
    that others can read.
    """
    shared = _read_seed(args.shared_seed, "STT_SHARED_SEED", "shared_seed", "--shared-seed")
    if shared is None:
        raise CLIError(
            "no shared seed: pass --shared-seed FILE (written by `stt keygen`) or set "
            "STT_SHARED_SEED",
            EXIT_USAGE,
        )
    node = _read_seed(args.node_seed, "STT_NODE_SEED", "node_seed", "--node-seed")
    return Seeds(node, shared)
