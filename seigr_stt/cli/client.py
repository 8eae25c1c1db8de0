"""Reaching a node as a client: the target options, a session to the node, errors as exit codes.

Shared by the client commands (``connect``, ``send``, ``ping`` and ``send-file``): each is an
async body run by :func:`client_command` inside :func:`client_session`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import socket
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from seigr_stt import STTNode, generate_seed
from seigr_stt.cli.console import printable, run
from seigr_stt.cli.errors import EXIT_HANDSHAKE_TIMEOUT, EXIT_USAGE, CLIError
from seigr_stt.cli.seeds import Seeds, read_seeds
from seigr_stt.constants import CloseCode
from seigr_stt.exceptions import (
    HandshakeError,
    HandshakeTimeout,
    SessionClosedError,
    STTError,
    TicketError,
)
from seigr_stt.ticket import NodeTicket, looks_like_ticket

if TYPE_CHECKING:
    from seigr_stt.aio.session import NodeEvent, STTSession

__all__ = ["client_command", "client_session", "close_text", "target_text"]

_CLOSE_WORDS: dict[int, str] = {
    CloseCode.NORMAL: "normal close",
    CloseCode.GOING_AWAY: "going away",
    CloseCode.PROTOCOL_ERROR: "protocol error",
    CloseCode.IDLE_TIMEOUT: "idle timeout",
    CloseCode.DEAD_PEER: "no answer from the peer",
    CloseCode.KEY_EXPIRED: "keys expired",
    CloseCode.AEAD_LIMIT_REACHED: "key usage limit reached",
    CloseCode.SERVER_FULL: "server full",
}

# session id -> whether the peer closed it, from the client node's "session_closed" events
_closed_by_peer: dict[bytes, bool] = {}


def close_text(session: STTSession) -> str:
    """How ``session`` ended, in words: ``the node closed the session (code 1, going away)``.

    ``the session closed (…)`` when this side closed it (e.g. ``code 4, no answer from the
    peer``); the peer's reason, when it gave one, follows the code's words, escaped.
    """
    by_peer = _closed_by_peer.get(session.session_id, False)
    who = "the node closed the session" if by_peer else "the session closed"
    code = session.close_code
    if code is None:
        return who
    words = _CLOSE_WORDS.get(code)
    detail = f"code {code}" + (f", {words}" if words else "")
    if session.close_reason:
        detail += f": {printable(session.close_reason)}"
    return f"{who} ({detail})"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _ticket(args: argparse.Namespace) -> NodeTicket | None:
    """The ticket given as the target (``stt connect TICKET``), or None."""
    ticket: NodeTicket | None = getattr(args, "ticket", None)
    return ticket


def _bind_host(args: argparse.Namespace) -> str:
    """Where a client node binds its UDP socket: loopback for a loopback target (a ticket's:
    when every address it lists is loopback, and it lists no relay)."""
    if args.bind:
        bind: str = args.bind
        return bind
    ticket = _ticket(args)
    if ticket is not None:
        hosts = [host for host, _ in ticket.addresses]
        hosts += [urlsplit(url).hostname or "" for url in (*ticket.websockets, *ticket.relays)]
        v6 = bool(hosts) and all(":" in host for host in hosts)
        if hosts and all(_is_loopback(host) for host in hosts):
            return "::1" if v6 else "127.0.0.1"
        return "::" if v6 else "0.0.0.0"
    target = (urlsplit(args.ws).hostname or "") if args.ws else args.host
    v6 = ":" in target
    if _is_loopback(target):
        return "::1" if v6 else "127.0.0.1"
    return "::" if v6 else "0.0.0.0"


def target_text(args: argparse.Namespace) -> str:
    """The target as the user gave it: the ``--ws`` URL, ``HOST:PORT`` or the ticket's node."""
    ticket = _ticket(args)
    if ticket is not None:
        return f"node {ticket.node_id.hex()[:16]}… (ticket)"
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

    def closed(event: NodeEvent) -> None:
        _closed_by_peer[event.session.session_id] = event.by_peer

    node.on("session_closed", closed)
    try:
        started = time.perf_counter()
        ticket = _ticket(args)
        if ticket is not None:
            session = await node.connect(ticket, timeout=args.timeout)
        elif args.ws:
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


def _os_text(args: argparse.Namespace, exc: BaseException | None) -> str | None:
    """An OS error reaching the target, in words naming the host or address; None otherwise."""
    if isinstance(exc, socket.gaierror):
        host = (urlsplit(args.ws).hostname or args.ws) if args.ws else args.host
        return f"cannot resolve the host {host!r}: {exc.strerror or exc}"
    if isinstance(exc, OSError):
        return f"cannot reach {target_text(args)}: {exc.strerror or exc}"
    return None


def _read_ticket(args: argparse.Namespace) -> NodeTicket | None:
    """The ticket given as the target, or None when the target is a host (a host name that
    happens to start with ``stt`` followed by a PORT is a host). :class:`CLIError` (usage) for a
    damaged ticket, or a ticket given with PORT or ``--ws``."""
    if not (isinstance(args.host, str) and looks_like_ticket(args.host)):
        return None
    try:
        ticket = NodeTicket.coerce(args.host)
    except TicketError as exc:
        if args.port is not None:
            return None  # a host such as sttgw.example.org
        raise CLIError(f"not a usable ticket: {exc}", EXIT_USAGE) from None
    if args.port is not None or args.ws:
        raise CLIError("give a TICKET alone, without PORT or --ws", EXIT_USAGE)
    return ticket


def _check_target(args: argparse.Namespace) -> None:
    """:class:`CLIError` (usage) unless the target is HOST PORT or a ``--ws`` URL."""
    if args.ws:
        if args.host is not None:
            raise CLIError("give HOST PORT or --ws URL, not both", EXIT_USAGE)
        if not args.ws.startswith(("ws://", "wss://")):
            raise CLIError("--ws URL must start with ws:// or wss://", EXIT_USAGE)
    elif args.host is None or args.port is None:
        raise CLIError("give the node's HOST and PORT, --ws URL, or a TICKET", EXIT_USAGE)


def client_command(
    body: Callable[[argparse.Namespace, Seeds], Coroutine[Any, Any, int]],
) -> Callable[[argparse.Namespace], int]:
    """Validate the target, read the seeds, run ``body`` and map errors to exit codes."""

    def command(args: argparse.Namespace) -> int:
        args.ticket = _read_ticket(args)
        if args.ticket is None:
            _check_target(args)
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
            # it names the peer; a name that does not resolve is said without errno
            cause = exc.__cause__ if isinstance(exc.__cause__, socket.gaierror) else None
            raise CLIError(_os_text(args, cause) or str(exc)) from None
        except SessionClosedError as exc:
            raise CLIError(f"{target_text(args)}: {exc.args[0] if exc.args else exc}") from None
        except BrokenPipeError:
            raise  # our standard output was closed: main() ends quietly
        except OSError as exc:
            raise CLIError(_os_text(args, exc) or f"{target_text(args)}: {exc}") from None
        except STTError as exc:
            raise CLIError(_os_text(args, exc.__cause__) or f"{target_text(args)}: {exc}") from None

    return command
