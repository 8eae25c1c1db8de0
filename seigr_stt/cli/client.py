"""Reaching a node as a client: the target options, a session to the node, errors as exit codes.

Shared by the client commands (``connect``, ``send``, ``ping`` and ``send-file``): each is an
async body run by :func:`client_command` inside :func:`client_session`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from seigr_stt import STTNode, generate_seed
from seigr_stt.cli.console import run
from seigr_stt.cli.errors import EXIT_HANDSHAKE_TIMEOUT, EXIT_USAGE, CLIError
from seigr_stt.cli.seeds import Seeds, read_seeds
from seigr_stt.exceptions import HandshakeError, HandshakeTimeout, STTError

if TYPE_CHECKING:
    from seigr_stt.aio.session import STTSession

__all__ = ["client_command", "client_session", "target_text"]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bind_host(args: argparse.Namespace) -> str:
    """Where a client node binds its UDP socket: loopback for a loopback target."""
    if args.bind:
        bind: str = args.bind
        return bind
    target = (urlsplit(args.ws).hostname or "") if args.ws else args.host
    v6 = ":" in target
    if _is_loopback(target):
        return "::1" if v6 else "127.0.0.1"
    return "::" if v6 else "0.0.0.0"


def target_text(args: argparse.Namespace) -> str:
    """The target as the user gave it: the ``--ws`` URL or ``HOST:PORT``."""
    return str(args.ws) if args.ws else f"{args.host}:{args.port}"


@contextlib.asynccontextmanager
async def client_session(
    args: argparse.Namespace, seeds: Seeds
) -> AsyncIterator[tuple[STTNode, STTSession, float]]:
    """A started client node and a session to the target; yields (node, session, handshake s).

    The node is pinned to ``seeds.allowed_peers`` (when given): a target with another node id
    fails the handshake with a :class:`~seigr_stt.exceptions.HandshakeError`. On exit the session
    is closed (its data delivered first) and the node stopped.
    """
    node = STTNode(
        seeds.node or generate_seed(),
        seeds.shared,
        _bind_host(args),
        0,
        allowed_peers=seeds.allowed_peers,
    )
    await node.start()
    try:
        started = time.perf_counter()
        if args.ws:
            session = await node.connect_websocket(args.ws, timeout=args.timeout)
        else:
            session = await node.connect_udp(args.host, args.port, timeout=args.timeout)
        elapsed = time.perf_counter() - started
        try:
            yield node, session, elapsed
        finally:
            with contextlib.suppress(STTError, TimeoutError):
                async with asyncio.timeout(args.timeout):
                    await session.close()
    finally:
        await node.stop()


def client_command(
    body: Callable[[argparse.Namespace, Seeds], Coroutine[Any, Any, int]],
) -> Callable[[argparse.Namespace], int]:
    """Validate the target, read the seeds, run ``body`` and map errors to exit codes."""

    def command(args: argparse.Namespace) -> int:
        if args.ws:
            if args.host is not None:
                raise CLIError("give HOST PORT or --ws URL, not both", EXIT_USAGE)
            if not args.ws.startswith(("ws://", "wss://")):
                raise CLIError("--ws URL must start with ws:// or wss://", EXIT_USAGE)
        elif args.host is None or args.port is None:
            raise CLIError("give the node's HOST and PORT, or --ws URL", EXIT_USAGE)
        if args.timeout <= 0:
            raise CLIError("--timeout must be positive", EXIT_USAGE)
        seeds = read_seeds(args)
        try:
            return run(body(args, seeds))
        except HandshakeTimeout:
            raise CLIError(
                f"handshake with {target_text(args)} timed out after {args.timeout:g} s: the "
                "node is unreachable, not in server mode, does not share our shared seed, or "
                "does not allow our node id",
                EXIT_HANDSHAKE_TIMEOUT,
            ) from None
        except HandshakeError as exc:
            raise CLIError(str(exc)) from None
        except (STTError, OSError) as exc:
            raise CLIError(f"{type(exc).__name__}: {exc}") from None

    return command
