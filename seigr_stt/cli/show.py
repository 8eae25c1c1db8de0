"""``stt show``: a running node's peers and figures, read from its control socket (like
``wg show``).

The node side is :mod:`seigr_stt.cli.control`. Figures are printed in human units (KiB, MiB;
"2 minutes, 3 seconds ago"); ``--json`` prints the snapshot as the node sent it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from seigr_stt.cli.console import say
from seigr_stt.cli.control import (
    default_socket_dir,
    default_socket_path,
    find_sockets,
    read_snapshot,
)
from seigr_stt.cli.errors import EXIT_OK, EXIT_USAGE, CLIError

__all__ = ["cmd_show", "format_age", "format_bytes", "format_duration", "format_snapshot"]

_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB")


def format_bytes(count: float) -> str:
    """``count`` bytes in binary units, as ``wg show`` writes them: ``512 B``, ``1.50 KiB``."""
    if count < 1024:
        return f"{int(count)} B"
    value = float(count)
    for unit in _UNITS:
        value /= 1024
        if value < 1024 or unit == _UNITS[-1]:
            return f"{value:.2f} {unit}"
    raise AssertionError("unreachable")


def format_duration(seconds: float) -> str:
    """A duration in words, largest units first: ``1 hour, 2 minutes, 3 seconds``."""
    total = int(seconds)
    if total < 1:
        return "less than a second" if seconds > 0 else "0 seconds"
    parts = []
    for name, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        amount, total = divmod(total, size)
        if amount:
            parts.append(f"{amount} {name}{'' if amount == 1 else 's'}")
    return ", ".join(parts)


def format_age(seconds: float | None) -> str:
    """How long ago: ``3 seconds ago``; ``never`` for None."""
    return "never" if seconds is None else f"{format_duration(seconds)} ago"


def _rtt(seconds: float | None) -> str:
    if seconds is None:
        return "not measured"
    ms = seconds * 1000
    return f"{ms:.3f} ms" if ms < 100 else f"{ms:.1f} ms"


def format_snapshot(snapshot: dict[str, Any]) -> list[str]:
    """The lines ``stt show`` prints for one node's snapshot (see :func:`node_snapshot`)."""
    sessions = snapshot["sessions"]
    handshakes = snapshot["handshakes"]
    counted = [f"{handshakes.get('started', 0)} initiated"]
    counted += [f"{handshakes[key]} {key}" for key in ("accepted", "rejected") if key in handshakes]
    counted.append(f"{handshakes.get('failed', 0)} failed")
    counted.append(f"{handshakes.get('in_flight', 0)} in flight")
    drops = snapshot["drops"]
    drop_text = ", ".join(f"{reason} {count}" for reason, count in sorted(drops.items()))
    lines = [
        f"node: {snapshot['node_id']}" + ("" if snapshot["running"] else " (stopped)"),
        f"  listening udp: {snapshot['udp'] or '-'}",
        f"  websocket: {snapshot['websocket'] or '-'}",
        f"  server mode: {'yes' if snapshot['server_mode'] else 'no'}",
        f"  uptime: {format_duration(snapshot['uptime_s'])}",
        f"  sessions: {sessions['active']} active, {sessions['handshake']} handshaking, "
        f"{sessions['closing']} closing ({sessions['total']} created, {sessions['closed']} "
        "closed)",
        f"  handshakes: {', '.join(counted)}",
        f"  transfer: {format_bytes(snapshot['bytes_received'])} received, "
        f"{format_bytes(snapshot['bytes_sent'])} sent",
        f"  drops: {snapshot['drops_total']}" + (f" ({drop_text})" if drop_text else ""),
    ]
    for peer in snapshot["peers"]:
        rotation = format_age(peer["latest_rotation_age_s"])
        if peer["latest_rotation_age_s"] is not None:
            rotation += f" (key version {peer['key_version']})"
        lines += [
            "",
            f"peer: {peer['peer']}",
            f"  session: {peer['session']} over {peer['transport']} ({peer['state']})",
            f"  endpoint: {peer['endpoint'] or '-'}",
            f"  latest handshake: {format_age(peer['established_age_s'])}",
            f"  latest key rotation: {rotation}",
            f"  latest activity: {format_age(peer['latest_activity_age_s'])}",
            f"  rtt: {_rtt(peer['rtt_s'])}",
            f"  transfer: {format_bytes(peer['bytes_received'])} received, "
            f"{format_bytes(peer['bytes_sent'])} sent",
        ]
    return lines


def cmd_show(args: argparse.Namespace) -> int:
    """``stt show``: print a running node's figures (``--json``: as JSON).

    The node is the one whose control socket is ``--socket PATH``, else the default socket of
    UDP port ``PORT``; without either, every node with a default socket is shown (``--json``:
    a list). Raises :class:`CLIError`: exit 2 with both ``PORT`` and ``--socket``; exit 1 when
    no node answers.
    """
    if args.socket is not None and args.port is not None:
        raise CLIError("give PORT or --socket PATH, not both", EXIT_USAGE)
    if args.socket is not None:
        paths, single = [Path(args.socket)], True
    elif args.port is not None:
        paths, single = [default_socket_path(args.port)], True
    else:
        paths, single = find_sockets(), False
        if not paths:
            directory, prefix = default_socket_dir()
            raise CLIError(
                f"no running stt node found (no {directory}/{prefix}PORT.sock); start one with "
                "`stt node`, or give --socket PATH"
            )
    snapshots = []
    for path in paths:
        try:
            snapshots.append(read_snapshot(path, args.timeout))
        except CLIError:
            if single:
                raise
    if not snapshots:
        raise CLIError(f"no running stt node answers in {paths[0].parent}")
    if args.json:
        say(json.dumps(snapshots[0] if single else snapshots, indent=2))
        return EXIT_OK
    for number, snapshot in enumerate(snapshots):
        if number:
            say("")
        for line in format_snapshot(snapshot):
            say(line)
    return EXIT_OK
