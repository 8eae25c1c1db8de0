"""The seeds a command runs with: seed files or environment variables, never shown.

Seeds come from files written by ``stt keygen`` (``--node-seed`` / ``--shared-seed``) or from the
``STT_NODE_SEED`` / ``STT_SHARED_SEED`` environment variables (hex or base64 text). No message,
log line or repr made here contains a seed. :func:`read_seeds` also reads the command's pinned
node ids (:mod:`seigr_stt.cli.pinning`), which travel with the seeds to the node.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from seigr_stt.cli.console import warn
from seigr_stt.cli.errors import EXIT_USAGE, CLIError
from seigr_stt.cli.pinning import check_not_seeds, read_allowed_peers
from seigr_stt.core.identity import parse_seed
from seigr_stt.exceptions import WeakSeedError

__all__ = ["Seeds", "parse_seed_text", "read_node_seed", "read_seeds"]


def _read_seed(path: str | None, env: str, what: str, flag: str) -> bytes | None:
    """The seed in file ``path``, else in variable ``env``; None when neither is given.

    Messages name the source as ``FLAG PATH`` (``PATH`` alone when ``flag`` is empty) or ``ENV``.
    """
    if path is not None:
        file = Path(path)
        label = f"{flag} {path}" if flag else path
        try:
            text = file.read_text()
            mode = file.stat().st_mode
        except (OSError, UnicodeDecodeError) as exc:
            detail = exc.strerror if isinstance(exc, OSError) else "not a text file"
            raise CLIError(f"{label}: {detail}", EXIT_USAGE) from None
        if os.name == "posix" and mode & 0o077:
            warn(f"{path} is readable by others; run chmod 600 {path}")
        source = label
    else:
        env_text = os.environ.get(env)
        if not env_text:
            return None
        text = env_text
        source = env
    return parse_seed_text(text, source, what)


def parse_seed_text(text: str, source: str, what: str) -> bytes:
    """The seed in ``text`` (hex or base64); :class:`CLIError` (exit 2) naming ``source`` if weak.

    The message is ``SOURCE: `` and the :class:`~seigr_stt.exceptions.WeakSeedError` text, which
    never contains the seed.
    """
    try:
        return parse_seed(text.strip(), what)
    except WeakSeedError as exc:  # its text never contains the seed
        text = str(exc).replace("seigr_stt.generate_seed()", "`stt keygen FILE` to write a new one")
        raise CLIError(f"{source}: {text}", EXIT_USAGE) from None


def read_node_seed(path: str | None) -> bytes | None:
    """The node seed in file ``path``, else in ``STT_NODE_SEED``; None when neither is given.

    Raises :class:`CLIError` (exit 2) when the file cannot be read or the seed is weak; warns on
    standard error about a file that others can read. Messages name ``path``, never the seed.
    """
    return _read_seed(path, "STT_NODE_SEED", "node_seed", "")


@dataclass(frozen=True, slots=True)
class Seeds:
    """A command's seeds, and the peers its node is pinned to.

    ``node`` is None when no node seed was given (a random identity is used); ``allowed_peers``
    is None when no peer was pinned (every holder of the shared seed is accepted), else the node
    ids given to ``STTNode(..., allowed_peers=...)``. The repr shows none of it.
    """

    node: bytes | None
    shared: bytes
    allowed_peers: frozenset[bytes] | None = None

    def __repr__(self) -> str:
        return "Seeds(...)"


def read_seeds(args: argparse.Namespace) -> Seeds:
    """The seeds named by ``args.node_seed`` / ``args.shared_seed``, else by the environment, and
    the pins of ``args.allow_peer`` / ``args.allowed_peers`` (see :mod:`seigr_stt.cli.pinning`).

    Raises :class:`CLIError` (exit 2) when there is no shared seed, when a seed file or the
    allowed-peers file cannot be read, when a seed is too short or too weak, when a pinned id is
    malformed, or when one is a seed of this command. Warns on standard error about a seed file
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
    allowed = read_allowed_peers(args.allow_peer, args.allowed_peers)
    check_not_seeds(allowed, node, shared)
    return Seeds(node, shared, allowed)
