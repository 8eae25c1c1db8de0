"""The control socket of ``stt node``: what ``stt show`` reads, as ``wg show`` reads WireGuard.

``stt node`` listens on a Unix socket (mode 0600: only its user may connect). The protocol is
one JSON document: a client connects, the node writes :func:`node_snapshot` as one line of JSON
(UTF-8) and closes the connection; the client sends nothing. The snapshot holds figures only,
never a key or a seed. No Prometheus is needed.

The default path is ``$XDG_RUNTIME_DIR/stt-PORT.sock`` (PORT: the node's bound UDP port), or
``/tmp/stt-UID-PORT.sock`` without ``XDG_RUNTIME_DIR`` (:func:`default_socket_path`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seigr_stt import __version__
from seigr_stt.cli.errors import EXIT_FAILURE, CLIError
from seigr_stt.constants import SessionState

if TYPE_CHECKING:
    from seigr_stt import STTNode

__all__ = [
    "ControlServer",
    "default_socket_dir",
    "default_socket_path",
    "find_sockets",
    "node_snapshot",
    "read_snapshot",
]


def default_socket_dir() -> tuple[Path, str]:
    """Where default control sockets live and their name prefix: ``($XDG_RUNTIME_DIR,
    "stt-")`` when that variable names a directory, else ``(/tmp, "stt-UID-")``."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir():
        return Path(runtime), "stt-"
    return Path("/tmp"), f"stt-{os.getuid()}-"


def default_socket_path(port: int) -> Path:
    """The control socket of the node whose UDP port is ``port`` (see the module docstring)."""
    directory, prefix = default_socket_dir()
    return directory / f"{prefix}{port}.sock"


def find_sockets() -> list[Path]:
    """Every default-named control socket of this user in :func:`default_socket_dir`, by port
    (sockets of other users, which anyone could plant in /tmp, are left out)."""
    directory, prefix = default_socket_dir()
    found = []
    for path in directory.glob(f"{prefix}*.sock"):
        port = path.name.removeprefix(prefix).removesuffix(".sock")
        with contextlib.suppress(OSError):
            info = path.lstat()
            if port.isdigit() and stat.S_ISSOCK(info.st_mode) and info.st_uid == os.getuid():
                found.append((int(port), path))
    return [path for _, path in sorted(found)]


def _addr(address: tuple[str, int] | tuple[Any, ...] | None) -> str | None:
    if not address:
        return None
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def _state_name(value: int) -> str:
    try:
        return SessionState(value).name.lower()
    except ValueError:
        return str(value)


def node_snapshot(node: STTNode, started_at: float) -> dict[str, Any]:
    """What ``stt show`` prints for ``node``, as JSON-ready values (built on the node's loop).

    From ``node.get_stats()`` and each live session's ``get_statistics()``; times are Unix
    seconds (``*_at``) and ages in seconds (``*_age_s``) measured now, RTT in seconds, byte
    counts as integers. ``started_at`` is when the command started the node (Unix seconds).
    """
    now = time.time()
    stats = node.get_stats()
    udp = stats["transports"]["udp"]
    peers = []
    manager = node.session_manager
    sessions = [
        session
        for state in (SessionState.HANDSHAKE, SessionState.ACTIVE, SessionState.CLOSING)
        for session in manager.get_sessions_by_state(state)
    ]
    for session in sessions:
        figures = session.get_statistics()
        rotated = figures["last_key_rotation"] if figures["key_version"] else None
        peers.append(
            {
                "peer": figures["peer_node_id"],
                "session": figures["session_id"],
                "transport": figures["transport"],
                "endpoint": _addr(session.peer_addr),
                "state": _state_name(figures["state"]),
                "established_at": figures["created_at"],
                "established_age_s": max(now - figures["created_at"], 0.0),
                "key_version": figures["key_version"],
                "latest_rotation_at": rotated,
                "latest_rotation_age_s": None if rotated is None else max(now - rotated, 0.0),
                "latest_activity_age_s": max(now - figures["last_active"], 0.0),
                "rtt_s": figures["rtt"],
                "bytes_sent": figures["bytes_sent"],
                "bytes_received": figures["bytes_received"],
                "messages_sent": figures["messages_sent"],
                "messages_received": figures["messages_received"],
                "packets_lost": figures["packets_lost"],
            }
        )
    peers.sort(key=lambda peer: peer["established_at"])
    return {
        "node_id": stats["node_id"],
        "version": __version__,
        "running": stats["running"],
        "server_mode": stats["server_mode"],
        "udp": _addr(udp["address"]),
        "websocket": stats["transports"]["websocket"]["url"],
        "started_at": started_at,
        "uptime_s": max(now - started_at, 0.0),
        "sessions": stats["sessions"],
        "handshakes": stats["handshakes"],
        "bytes_sent": stats["bytes_sent"],
        "bytes_received": stats["bytes_received"],
        "packets_sent": stats["packets_sent"],
        "packets_received": stats["packets_received"],
        "drops_total": stats["drops_total"],
        "drops": {reason: count for reason, count in stats["drops"].items() if count},
        "peers": peers,
    }


class ControlServer:
    """``stt node``'s control socket: each connection gets ``snapshot()`` as JSON, then EOF.

    :meth:`open` binds ``path`` with mode 0600 (a stale socket left by a node that died is
    replaced; a live one, or any other file, is an error); :meth:`close` stops serving and
    removes the socket file.
    """

    def __init__(self, path: Path, snapshot: Callable[[], dict[str, Any]]) -> None:
        self.path = path
        self._snapshot = snapshot
        self._server: asyncio.AbstractServer | None = None

    async def open(self) -> None:
        """Listen on :attr:`path`. Raises :class:`CLIError` (exit 1) naming the path when it is
        taken by a running node or by a file that is not a socket, or cannot be bound."""
        self._clear_stale()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            old = os.umask(0o177)  # no moment with a wider mode
            try:
                sock.bind(str(self.path))
            finally:
                os.umask(old)
            os.chmod(self.path, 0o600)
            self._server = await asyncio.start_unix_server(self._serve, sock=sock)
        except OSError as exc:
            sock.close()
            raise CLIError(
                f"cannot open the control socket {self.path}: {exc.strerror or exc} "
                "(--control-socket PATH chooses another, none turns it off)",
                EXIT_FAILURE,
            ) from None

    def _clear_stale(self) -> None:
        try:
            mode = self.path.lstat().st_mode
        except FileNotFoundError:
            return
        except OSError as exc:
            raise CLIError(f"control socket {self.path}: {exc.strerror}") from None
        if not stat.S_ISSOCK(mode):
            raise CLIError(
                f"control socket {self.path} exists and is not a socket; remove it or choose "
                "another with --control-socket"
            )
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(str(self.path))
            except OSError:  # nobody listens: left by a node that died
                try:
                    self.path.unlink(missing_ok=True)
                except OSError as exc:
                    raise CLIError(
                        f"cannot replace the stale control socket {self.path}: {exc.strerror}; "
                        "choose another with --control-socket"
                    ) from None
                return
        raise CLIError(
            f"another node already serves the control socket {self.path}; choose another with "
            "--control-socket"
        )

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(json.dumps(self._snapshot(), default=str).encode() + b"\n")
            await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def close(self) -> None:
        """Stop listening and remove the socket file (idempotent)."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
            with contextlib.suppress(OSError):
                self.path.unlink()


def read_snapshot(path: Path, timeout: float) -> dict[str, Any]:
    """The snapshot a node's control socket at ``path`` answers (blocking, at most ``timeout``).

    Raises :class:`CLIError` (exit 1) naming ``path`` when nothing listens there, the answer does
    not come in time, or it is not an stt node's snapshot.
    """
    chunks = []
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    except FileNotFoundError:
        raise CLIError(f"no control socket {path} (is `stt node` running?)") from None
    except ConnectionRefusedError:
        raise CLIError(f"nothing listens on {path} (the node has stopped)") from None
    except TimeoutError:
        raise CLIError(f"no answer from {path} within {timeout:g} s") from None
    except OSError as exc:
        raise CLIError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        snapshot = json.loads(b"".join(chunks))
    except ValueError:
        snapshot = None
    if not isinstance(snapshot, dict) or "node_id" not in snapshot:
        raise CLIError(f"{path} did not answer as an stt node's control socket")
    return snapshot
