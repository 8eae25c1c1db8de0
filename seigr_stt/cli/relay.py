"""``stt relay``: run a relay (docs/relay.md) until SIGINT/SIGTERM.

It prints one ``relay`` line with the URLs nodes pass in ``relays=`` and runs until signalled;
figures go to the log at each stop. The relay needs no seed: it holds no key of any group.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from seigr_stt.cli.errors import EXIT_FAILURE, CLIError
from seigr_stt.relay import RelayConfig, RelayServer

__all__ = ["cmd_relay"]


def cmd_relay(args: argparse.Namespace) -> int:
    """Run the relay of ``args`` until SIGINT/SIGTERM; exit code 0, or 1 if it cannot bind."""
    try:
        config = RelayConfig(
            max_registrations=args.max_registrations,
            max_registrations_per_source=args.max_per_source,
            forward_rate_bytes=args.forward_rate,
        )
    except ValueError as exc:
        raise CLIError(str(exc), code=2) from exc
    server = RelayServer(
        args.host,
        None if args.no_udp else args.udp_port,
        None if args.no_ws else args.ws_port,
        config=config,
    )
    return asyncio.run(_serve(server))


async def _serve(server: RelayServer) -> int:
    try:
        await server.start()
    except OSError as exc:
        raise CLIError(f"cannot bind the relay: {exc}", code=EXIT_FAILURE) from exc
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, lambda: loop.create_task(server.stop()))
    urls = " ".join(url for url in (server.udp_url, server.ws_url) if url)
    sys.stdout.write(f"relay {urls}\n")
    sys.stdout.flush()
    await server.serve_forever()
    stats = server.stats()
    sys.stdout.write(
        f"stopped: {stats.registrations_accepted} registrations, "
        f"{stats.packets_forwarded} packets forwarded, drops {dict(stats.drops)}\n"
    )
    return 0
