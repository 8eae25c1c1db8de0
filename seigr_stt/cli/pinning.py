"""Pinning peers from the command line: ``--allow-peer NODE_ID`` and ``--allowed-peers FILE``.

Every command that runs a node (``node``, ``connect``, ``send``, ``send-file``, ``ping``) takes
both options; together they give the node ids passed as ``STTNode(..., allowed_peers=...)``. A
node id is 64 hex digits, as ``stt node`` and ``stt id SEEDFILE`` print it. A message about a
malformed id names the bad value, unless that value decodes as a seed: then it is not shown.
"""

from __future__ import annotations

import hmac
import string
from collections.abc import Iterable
from pathlib import Path

from seigr_stt.cli.errors import EXIT_USAGE, CLIError
from seigr_stt.constants import NODE_ID_BYTES
from seigr_stt.core.identity import parse_seed
from seigr_stt.exceptions import WeakSeedError

__all__ = ["check_not_seeds", "parse_node_id", "read_allowed_peers"]

_HEX_DIGITS = 2 * NODE_ID_BYTES


def _looks_like_seed(value: str) -> bool:
    try:
        parse_seed(value)
    except WeakSeedError:
        return False
    return True


def parse_node_id(text: str) -> bytes:
    """The node id written as ``text``: 64 hex digits, white space around them ignored.

    Raises ``ValueError`` whose message names ``text`` (``invalid node id 'TEXT': expected 64
    hex digits …``), except when ``text`` decodes as a seed: a seed is never repeated.
    """
    value = text.strip()
    if len(value) == _HEX_DIGITS and all(c in string.hexdigits for c in value):
        return bytes.fromhex(value)
    if _looks_like_seed(value):
        raise ValueError(
            f"a value of {len(value)} characters that decodes as a seed, not a node id "
            "(`stt id SEEDFILE` prints a seed's node id)"
        )
    raise ValueError(
        f"invalid node id {value!r}: expected {_HEX_DIGITS} hex digits "
        "(`stt id SEEDFILE` prints a seed's node id)"
    )


def _read_file(path: str) -> set[bytes]:
    """The ids in ``path``: one per line; ``#`` starts a comment; blank lines are skipped."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        detail = exc.strerror if isinstance(exc, OSError) else "not a text file"
        raise CLIError(f"--allowed-peers {path}: {detail}", EXIT_USAGE) from None
    ids: set[bytes] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        try:
            ids.add(parse_node_id(entry))
        except ValueError as exc:
            raise CLIError(f"--allowed-peers {path} line {number}: {exc}", EXIT_USAGE) from None
    if not ids:
        raise CLIError(
            f"--allowed-peers {path} lists no node id (it would refuse every peer)", EXIT_USAGE
        )
    return ids


def read_allowed_peers(
    allow_peer: Iterable[bytes] | None, allowed_peers_file: str | None
) -> frozenset[bytes] | None:
    """The pinned node ids: those of ``--allow-peer`` and those in ``--allowed-peers FILE``.

    None when neither option is given (every holder of the shared seed is accepted). Raises
    :class:`CLIError` (exit 2) when the file cannot be read, has a line that is not a node id
    (the message names the file, the line number and the value), or lists no id at all.
    """
    if allow_peer is None and allowed_peers_file is None:
        return None
    ids = set(allow_peer or ())
    if allowed_peers_file is not None:
        ids |= _read_file(allowed_peers_file)
    return frozenset(ids)


def check_not_seeds(allowed: frozenset[bytes] | None, *seeds: bytes | None) -> None:
    """Raise :class:`CLIError` (exit 2) when a pinned id is one of ``seeds``, without showing it.

    A seed written as hex looks like a node id; pinning it is always a mistake (no peer has a
    seed as its id), and a sign that a seed was pasted where it does not belong.
    """
    if not allowed:
        return
    for seed in seeds:
        if seed is not None and any(hmac.compare_digest(seed, pin) for pin in allowed):
            raise CLIError(
                "a pinned node id is one of this command's seeds, not a node id (`stt id "
                "SEEDFILE` prints a seed's node id); a seed typed on a command line should be "
                "replaced",
                EXIT_USAGE,
            )
