"""A real network path for the benchmarks: two network namespaces joined by a veth pair.

Loopback has a 64 KiB MTU and no link between the peers; a veth pair with MTU 1500 between two
network namespaces is the closest a single machine gets to a real Ethernet path. :func:`veth_path`
creates both namespaces (unique names per run: two runs on one machine do not collide), creates
the veth pair directly inside them (nothing is ever added to the caller's namespace), gives each
end a /30 address and brings the links up; on leaving the ``with`` block (normally, on an
exception, on Ctrl-C, on SIGTERM, or at interpreter exit if the block was never left) it deletes
both namespaces, which deletes the veth pair with them.

Creating namespaces needs root on Linux and the ``ip`` command (iproute2):
:func:`unavailable_reason` says why they cannot be created here, or returns ``""``. The benchmark
workers run inside a namespace through ``ip netns exec NAME python -m seigr_stt.bench.worker ...``
(:meth:`VethPath.exec_prefix`).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any

__all__ = [
    "PREFIX",
    "NetnsError",
    "VethPath",
    "list_namespaces",
    "probe",
    "sweep_stale",
    "unavailable_reason",
    "veth_path",
]

#: Every namespace this module creates is named ``{PREFIX}-{pid}-{random}-{s|c}``.
PREFIX = "sttbench"
_IP_TIMEOUT_S = 10.0


class NetnsError(RuntimeError):
    """The namespaces or the veth pair could not be set up here: the machine's fault (no root,
    no iproute2, a kernel without veth), not the benchmark's. The message says which."""


@dataclass(frozen=True)
class VethPath:
    """Two network namespaces joined by a veth pair: the server side and the client side."""

    server_ns: str
    client_ns: str
    server_if: str
    client_if: str
    server_addr: str
    client_addr: str
    mtu: int

    def namespace(self, side: str) -> str:
        """The namespace of ``side`` (``"server"`` or ``"client"``)."""
        if side not in ("server", "client"):
            raise ValueError(f"side must be 'server' or 'client', not {side!r}")
        return self.server_ns if side == "server" else self.client_ns

    def address(self, side: str) -> str:
        """The IPv4 address of ``side``'s end of the veth pair."""
        return self.server_addr if self.namespace(side) == self.server_ns else self.client_addr

    def exec_prefix(self, side: str) -> list[str]:
        """The argv prefix that runs a command inside ``side``'s namespace."""
        return ["ip", "netns", "exec", self.namespace(side)]

    def describe(self) -> str:
        return (
            f"veth pair, MTU {self.mtu}, between network namespaces {self.server_ns} "
            f"({self.server_addr}) and {self.client_ns} ({self.client_addr})"
        )


def unavailable_reason() -> str:
    """Why network namespaces cannot be created here, or ``""`` when they can (Linux, root,
    ``ip`` on the PATH). Cheap: runs nothing."""
    if not sys.platform.startswith("linux"):
        return f"network namespaces are Linux only (this is {sys.platform})"
    if os.geteuid() != 0:
        return f"creating network namespaces needs root (this run is uid {os.geteuid()})"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not on the PATH"
    return ""


def probe() -> str:
    """Why a path cannot be made here, found by making one and deleting it at once (root without
    CAP_SYS_ADMIN in a container, a kernel without veth: things :func:`unavailable_reason` cannot
    see), or ``""`` when it can. About a tenth of a second."""
    reason = unavailable_reason()
    if reason:
        return reason
    try:
        with veth_path():
            return ""
    except NetnsError as exc:
        return str(exc)


def _ip(*args: str) -> str:
    """Run ``ip ARGS``; its stdout. Raises :class:`NetnsError` with ip's own message."""
    try:
        done = subprocess.run(
            ["ip", *args], capture_output=True, text=True, timeout=_IP_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NetnsError(f"`ip {' '.join(args)}` failed: {exc}") from exc
    if done.returncode != 0:
        raise NetnsError(f"`ip {' '.join(args)}` failed: {done.stderr.strip()}")
    return done.stdout


def list_namespaces() -> list[str]:
    """The names of the network namespaces ``ip netns`` knows (``[]`` when it cannot tell)."""
    try:
        out = _ip("netns", "list")
    except NetnsError:
        return []
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _pids_in(namespace: str) -> list[int]:
    try:
        return [int(x) for x in _ip("netns", "pids", namespace).split()]
    except (NetnsError, ValueError):
        return []


def _delete(namespaces: Sequence[str]) -> list[str]:
    """Delete ``namespaces`` (and so their veth ends); kill what still runs inside them first:
    only processes this benchmark started can be there. Returns the errors, never raises."""
    errors: list[str] = []
    for name in namespaces:
        for pid in _pids_in(name):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        try:
            _ip("netns", "delete", name)
        except NetnsError as exc:
            if name in list_namespaces():
                errors.append(str(exc))
    return errors


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale() -> list[str]:
    """Delete namespaces left by benchmark runs that died without cleaning up (killed with
    SIGKILL): those named ``{PREFIX}-{pid}-...`` whose process no longer exists. A namespace of a
    run still alive is left alone. Returns the names deleted."""
    stale: list[str] = []
    for name in list_namespaces():
        parts = name.split("-")
        owned = len(parts) == 4 and parts[0] == PREFIX and parts[1].isdigit()
        if owned and not _pid_alive(int(parts[1])):
            stale.append(name)
    _delete(stale)
    return stale


def _new_path(mtu: int) -> VethPath:
    """Unique names and a random /30 inside 10.0.0.0/8 (addresses live only inside the two
    namespaces, so they cannot clash with the host's; unique anyway, for readable listings)."""
    token = secrets.token_hex(3)
    pid = os.getpid()
    net = secrets.randbelow(1 << 22) << 2  # a /30 inside 10.0.0.0/8
    base = (10 << 24) | net

    def dotted(value: int) -> str:
        return ".".join(str((value >> shift) & 0xFF) for shift in (24, 16, 8, 0))

    return VethPath(
        server_ns=f"{PREFIX}-{pid}-{token}-s",
        client_ns=f"{PREFIX}-{pid}-{token}-c",
        server_if=f"stb{token}s",  # interface names: at most 15 characters
        client_if=f"stb{token}c",
        server_addr=dotted(base | 1),
        client_addr=dotted(base | 2),
        mtu=mtu,
    )


@contextlib.contextmanager
def _terminate_as_exit() -> Iterator[None]:
    """While inside: SIGTERM raises SystemExit (so ``finally`` blocks run) when its handler is
    still the default and this is the main thread; the previous handler comes back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous is not signal.SIG_DFL:
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> Any:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def veth_path(mtu: int = 1500, *, ip: Callable[..., str] | None = None) -> Iterator[VethPath]:
    """Create two network namespaces joined by a veth pair of ``mtu``; yield the path; delete
    both namespaces on the way out, whatever happens.

    Raises :class:`NetnsError` (nothing left behind) when they cannot be created here: see
    :func:`unavailable_reason`. ``ip`` replaces the ``ip`` runner (for tests of the clean-up).
    """
    reason = unavailable_reason()
    if reason:
        raise NetnsError(reason)
    run = ip or _ip
    sweep_stale()
    path = _new_path(mtu)
    created: list[str] = []

    def cleanup() -> None:
        errors = _delete(list(created))
        created.clear()
        if errors:
            sys.stderr.write("seigr_stt.bench: could not delete: " + "; ".join(errors) + "\n")

    atexit.register(cleanup)
    try:
        with _terminate_as_exit():
            for name in (path.server_ns, path.client_ns):
                created.append(name)  # before: a half-made namespace is deleted too
                run("netns", "add", name)
            run(
                "link", "add", path.server_if, "netns", path.server_ns, "mtu", str(mtu),
                "type", "veth",
                "peer", "name", path.client_if, "netns", path.client_ns, "mtu", str(mtu),
            )  # fmt: skip
            for ns, dev, addr in (
                (path.server_ns, path.server_if, path.server_addr),
                (path.client_ns, path.client_if, path.client_addr),
            ):
                run("-n", ns, "address", "add", f"{addr}/30", "dev", dev)
                run("-n", ns, "link", "set", dev, "up")
                run("-n", ns, "link", "set", "lo", "up")
            yield path
    finally:
        cleanup()
        atexit.unregister(cleanup)
