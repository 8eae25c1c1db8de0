"""The ``stt`` command line (also ``python -m seigr_stt``); see ``docs/cli.md``.

Commands: ``keygen``, ``node``, ``connect``, ``send``, ``send-file``, ``ping``, ``stats``,
``bench`` and ``demo``. Logging is configured here only (``--log-level``); the library installs
no handlers. Seeds come from files written by ``stt keygen`` (``--node-seed`` /
``--shared-seed``) or from the ``STT_NODE_SEED`` / ``STT_SHARED_SEED`` environment variables
and are never printed or logged.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from seigr_stt import __version__
from seigr_stt.cli.client import client_command
from seigr_stt.cli.commands import (
    cmd_bench,
    cmd_demo,
    cmd_keygen,
    connect_main,
    ping_main,
    send_main,
)
from seigr_stt.cli.errors import EXIT_CODES, EXIT_INTERRUPTED, CLIError
from seigr_stt.cli.filetransfer import send_file_main
from seigr_stt.cli.serve import cmd_node
from seigr_stt.cli.stats import cmd_stats

__all__ = ["main"]


SEED_HELP = """\
seeds:
  --node-seed FILE / --shared-seed FILE read files written by `stt keygen` (hex or base64);
  without them the STT_NODE_SEED / STT_SHARED_SEED environment variables (hex or base64
  text) are used. The shared seed is required; without a node seed a random identity is
  used. Seeds are never printed or logged.
"""


DEFAULT_UDP_PORT = 9000
DEFAULT_WS_PORT = 9001

# -- send-file stream header (docs/cli.md) -----------------------------------------------------


def _configure_logging(level_name: str) -> None:
    level = getattr(logging, level_name.upper())
    logging.basicConfig(
        level=min(level, logging.WARNING),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("seigr_stt").setLevel(level)


# -- the parser ----------------------------------------------------------------------------------
def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} is not within 0..65535")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} is not positive")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{value:g} is not positive")
    return value


def _common(default_level: str) -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default=default_level,
        help=f"log level of the seigr_stt loggers, on standard error (default {default_level})",
    )
    return common


def _seed_options() -> argparse.ArgumentParser:
    seeds = argparse.ArgumentParser(add_help=False)
    seeds.add_argument("--node-seed", metavar="FILE", help="this node's seed file (identity)")
    seeds.add_argument(
        "--shared-seed", metavar="FILE", help="the group's shared seed file (required)"
    )
    return seeds


def _target_options() -> argparse.ArgumentParser:
    target = argparse.ArgumentParser(add_help=False)
    target.add_argument("host", nargs="?", metavar="HOST", help="the node's UDP host")
    target.add_argument("port", nargs="?", type=_port, metavar="PORT", help="the node's UDP port")
    target.add_argument("--ws", metavar="URL", help="connect over WebSocket (ws://host:port/stt)")
    target.add_argument(
        "--timeout",
        type=_positive_float,
        default=5.0,
        help="seconds to wait for the handshake and for answers (default 5)",
    )
    target.add_argument("--bind", metavar="HOST", help="local address of this client's socket")
    return target


class _Formatter(argparse.RawDescriptionHelpFormatter):
    pass


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stt",
        description="seigr_stt: encrypted P2P nodes over UDP and WebSocket",
        epilog="Run `stt COMMAND --help` for a command's options.\n\n" + EXIT_CODES,
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"seigr_stt {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    quiet = _common("warning")
    client = [quiet, _seed_options(), _target_options()]

    def add(
        name: str, help_text: str, parents: list[argparse.ArgumentParser], epilog: str = ""
    ) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            parents=parents,
            epilog=(epilog + "\n" if epilog else "") + EXIT_CODES,
            formatter_class=_Formatter,
        )

    keygen = add("keygen", "write a new random seed file (mode 0600)", [quiet])
    keygen.add_argument("output", help="file to write, or - for standard output")
    keygen.add_argument("--format", choices=("hex", "base64"), default="hex")
    keygen.add_argument("--force", action="store_true", help="overwrite an existing file")
    keygen.set_defaults(func=cmd_keygen)

    node = add(
        "node",
        "run a node over UDP and WebSocket until SIGINT/SIGTERM",
        [_common("info"), _seed_options()],
        "On start it prints `node NODE_ID` and\n"
        "`listening udp HOST:PORT [ws URL] [metrics URL]` on standard output.\n\n" + SEED_HELP,
    )
    node.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    node.add_argument(
        "--port", type=_port, default=DEFAULT_UDP_PORT, help="UDP port (default 9000; 0: any)"
    )
    node.add_argument(
        "--ws-port",
        type=_port,
        default=DEFAULT_WS_PORT,
        help="WebSocket port (default 9001; 0: any)",
    )
    node.add_argument("--no-ws", action="store_true", help="serve UDP only")
    node.add_argument(
        "--server",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="accept peers' handshakes (default: yes)",
    )
    node.add_argument(
        "--metrics-port",
        type=_port,
        help="serve Prometheus metrics on http://METRICS_HOST:PORT/metrics (needs the metrics "
        "extra)",
    )
    node.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        help="address of the metrics server (default 127.0.0.1)",
    )
    node.add_argument("--echo", action="store_true", help="send every message back to its sender")
    node.add_argument(
        "--receive-dir", type=Path, metavar="DIR", help="store files sent with `stt send-file` here"
    )
    node.set_defaults(func=cmd_node)

    connect = add(
        "connect",
        "handshake with a node, print the session, then close",
        client,
        "examples:\n  stt connect 127.0.0.1 9000 --shared-seed shared.seed\n"
        "  stt connect --ws ws://127.0.0.1:9001/stt --shared-seed shared.seed\n\n" + SEED_HELP,
    )
    connect.add_argument(
        "--rotate", action="store_true", help="also rotate the session's keys once"
    )
    connect.set_defaults(func=client_command(connect_main))

    send = add(
        "send",
        "send one message to a node",
        client,
        "example:\n  stt send 127.0.0.1 9000 hello --shared-seed shared.seed --wait-reply\n\n"
        + SEED_HELP,
    )
    send.add_argument("message", metavar="MESSAGE", help="the message text, or - for stdin")
    send.add_argument(
        "--stream", type=_non_negative_int, default=0, help="message channel (default 0)"
    )
    send.add_argument(
        "--wait-reply", action="store_true", help="wait for one message back and print it"
    )
    send.set_defaults(func=client_command(send_main))

    send_file = add(
        "send-file",
        "send a file over a byte stream, with a progress bar",
        client,
        "The node must run with --receive-dir. Both sides print the file's sha256.\n\n" + SEED_HELP,
    )
    send_file.add_argument("path", type=Path, metavar="PATH", help="the file to send")
    send_file.add_argument(
        "--chunk-size",
        type=_positive_int,
        default=64 * 1024,
        help="bytes per write (default 65536)",
    )
    send_file.add_argument("--name", help="name to store the file under (default: its name)")
    send_file.add_argument("--no-progress", action="store_true", help="no progress bar")
    send_file.set_defaults(func=client_command(send_file_main))

    ping = add(
        "ping",
        "measure round-trip times to a node running with --echo",
        client,
        "Each ping is a message the node echoes back; prints min/avg/p50/max.\n\n" + SEED_HELP,
    )
    ping.add_argument("--count", "-c", type=_positive_int, default=5, help="pings (default 5)")
    ping.add_argument(
        "--interval",
        type=float,
        default=0.2,
        help="seconds between pings (default 0.2)",
    )
    ping.add_argument("--stream", type=_non_negative_int, default=0, help="message channel")
    ping.set_defaults(func=client_command(ping_main))

    stats = add(
        "stats",
        "print a running node's statistics from its metrics endpoint",
        [quiet],
        "HOST PORT are those of `stt node --metrics-port PORT` (http://HOST:PORT/metrics).",
    )
    stats.add_argument("host", nargs="?", metavar="HOST", help="the metrics server's host")
    stats.add_argument("port", nargs="?", type=_port, metavar="PORT", help="the metrics port")
    stats.add_argument("--url", help="the full metrics URL instead of HOST PORT")
    stats.add_argument("--raw", action="store_true", help="print the Prometheus text as is")
    stats.add_argument(
        "--timeout", type=_positive_float, default=5.0, help="seconds to wait (default 5)"
    )
    stats.set_defaults(func=cmd_stats)

    # Parsed by main() itself so that every argument reaches the benchmarks.
    sub.add_parser("bench", help="run the benchmarks (arguments are passed on)", add_help=False)

    demo = add(
        "demo",
        "two nodes in one process: the whole lifecycle over UDP and WebSocket",
        [quiet],
    )
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 failure, 2 usage, 3 handshake timeout)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["bench"]:
        return cmd_bench(arguments[1:])
    args = build_parser().parse_args(arguments)
    try:
        if args.command != "keygen":  # keygen logs nothing: leave the process's logging be
            _configure_logging(args.log_level)
        code: int = args.func(args)
        return code
    except CLIError as exc:
        sys.stderr.write(f"stt {args.command}: {exc}\n")
        return exc.code
    except KeyboardInterrupt:
        sys.stderr.write("stt: interrupted\n")
        return EXIT_INTERRUPTED
