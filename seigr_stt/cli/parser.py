"""The ``stt`` argument parser: every command's options, help text and argument types.

:func:`build_parser` wires each command to the function that runs it (``args.func``); ``stt
bench`` is only listed here, since :func:`seigr_stt.cli.main` passes its arguments on unparsed.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from seigr_stt import __version__
from seigr_stt.cli.client import client_command
from seigr_stt.cli.commands import cmd_demo, connect_main, ping_main, send_main
from seigr_stt.cli.errors import EXIT_CODES, exit_codes
from seigr_stt.cli.filetransfer import send_file_main
from seigr_stt.cli.keys import cmd_id, cmd_keygen
from seigr_stt.cli.pinning import parse_node_id
from seigr_stt.cli.relay import cmd_relay
from seigr_stt.cli.serve import cmd_node
from seigr_stt.cli.show import cmd_show
from seigr_stt.cli.stats import cmd_stats

__all__ = ["DEFAULT_UDP_PORT", "DEFAULT_WS_PORT", "build_parser", "number"]

SEED_HELP = """\
seeds:
  --node-seed FILE / --shared-seed FILE read files written by `stt keygen` (hex or base64);
  without them the STT_NODE_SEED / STT_SHARED_SEED environment variables (hex or base64
  text) are used. The shared seed is required; without a node seed a random identity is
  used. Seeds are never printed or logged.

pinning:
  --allow-peer NODE_ID (repeatable) and --allowed-peers FILE (one id per line) restrict the
  node to those peers: a refused peer's handshake fails. `stt id SEEDFILE` prints a node id.
"""

DEFAULT_UDP_PORT = 9000
DEFAULT_WS_PORT = 9001

N = TypeVar("N", int, float)


def number(
    kind: Callable[[str], N],
    *,
    name: str = "number",
    minimum: N | None = None,
    maximum: N | None = None,
    positive: bool = False,
) -> Callable[[str], N]:
    """An argparse ``type=``: ``kind(text)`` checked against inclusive bounds.

    ``minimum`` and ``maximum`` are inclusive; ``positive`` requires a value above 0 (for
    floats, where no inclusive minimum says that). NaN fails every bound. A value that is out of
    bounds or cannot be parsed raises :class:`argparse.ArgumentTypeError`, which argparse prints
    after ``argument OPTION:`` with exit code 2. The messages (a float is shown with ``:g``):

    - ``invalid NAME 'TEXT'`` when ``kind`` cannot parse the text;
    - ``VALUE is not positive`` when ``positive`` and the value is not above 0;
    - ``NAME VALUE is not within MINIMUM..MAXIMUM`` outside both bounds;
    - ``VALUE is negative`` (``VALUE is less than MINIMUM`` unless the minimum is 0) below a
      minimum alone;
    - ``VALUE is greater than MAXIMUM`` above a maximum alone.
    """

    def parse(text: str) -> N:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {name} {text!r}") from None
        shown = f"{value:g}" if isinstance(value, float) else str(value)
        if positive and not value > 0:
            raise argparse.ArgumentTypeError(f"{shown} is not positive")
        if minimum is not None and maximum is not None:
            if not minimum <= value <= maximum:
                raise argparse.ArgumentTypeError(
                    f"{name} {shown} is not within {minimum}..{maximum}"
                )
        elif minimum is not None and not value >= minimum:
            below = "is negative" if minimum == 0 else f"is less than {minimum}"
            raise argparse.ArgumentTypeError(f"{shown} {below}")
        elif maximum is not None and not value <= maximum:
            raise argparse.ArgumentTypeError(f"{shown} is greater than {maximum}")
        return value

    return parse


_port = number(int, name="port", minimum=0, maximum=65535)
_positive_int = number(int, positive=True)
_non_negative_int = number(int, minimum=0)
_positive_float = number(float, positive=True)


def _common(default_level: str, *, from_config: bool = False) -> argparse.ArgumentParser:
    """``--log-level``; with ``from_config`` its default is None (``stt node`` applies the
    config file's ``log_level``, then ``default_level``)."""
    common = argparse.ArgumentParser(add_help=False)
    also = " or the config file's log_level" if from_config else ""
    common.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default=None if from_config else default_level,
        help=f"log level of the seigr_stt loggers, on standard error (default {default_level}"
        f"{also})",
    )
    return common


def _seed_options() -> argparse.ArgumentParser:
    seeds = argparse.ArgumentParser(add_help=False)
    seeds.add_argument("--node-seed", metavar="FILE", help="this node's seed file (identity)")
    seeds.add_argument(
        "--shared-seed", metavar="FILE", help="the group's shared seed file (required)"
    )
    return seeds


def _node_id(text: str) -> bytes:
    """An argparse ``type=`` for a node id (64 hex digits); the error names the bad value."""
    try:
        return parse_node_id(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _pin_options() -> argparse.ArgumentParser:
    pins = argparse.ArgumentParser(add_help=False)
    pins.add_argument(
        "--allow-peer",
        action="append",
        type=_node_id,
        metavar="NODE_ID",
        help="accept sessions only with this node id (64 hex digits, as `stt id` prints it); "
        "repeatable",
    )
    pins.add_argument(
        "--allowed-peers",
        metavar="FILE",
        help="accept sessions only with the node ids in FILE (one per line, # comments); "
        "adds to --allow-peer",
    )
    return pins


def _target_options() -> argparse.ArgumentParser:
    target = argparse.ArgumentParser(add_help=False)
    target.add_argument(
        "host",
        nargs="?",
        metavar="HOST",
        help="the node's UDP host, or its ticket (stt..., from `stt node` or node.ticket())",
    )
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
    """The ``stt`` parser: each command's namespace has ``func(args) -> exit code`` and ``command``.

    ``bench`` has no ``func``: :func:`seigr_stt.cli.main` runs it before parsing. A fresh parser
    each call; parsing exits with code 2 on bad arguments, as argparse does.
    """
    parser = argparse.ArgumentParser(
        prog="stt",
        description="seigr_stt: encrypted P2P nodes over UDP and WebSocket",
        epilog="Run `stt COMMAND --help` for a command's options.\n\n" + EXIT_CODES,
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"seigr_stt {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    quiet = _common("warning")
    client_parents = [quiet, _seed_options(), _pin_options(), _target_options()]

    def add(
        name: str,
        help_text: str,
        parents: list[argparse.ArgumentParser],
        epilog: str = "",
        *,
        client: bool = False,
    ) -> argparse.ArgumentParser:
        """A command; a ``client`` one reaches a node (usage shows HOST PORT or --ws URL, and
        its exit codes include 3, the handshake timeout)."""
        return sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            parents=parents,
            epilog=(epilog.rstrip("\n") + "\n\n" if epilog else "") + exit_codes(client),
            formatter_class=_Formatter,
            usage=f"stt {name} [options] (HOST PORT | --ws URL | TICKET)"
            + {"send": " MESSAGE", "send-file": " PATH"}.get(name, "")
            if client
            else None,
        )

    keygen = add("keygen", "write a new random seed file (mode 0600)", [quiet])
    keygen.add_argument("output", help="file to write, or - for standard output")
    keygen.add_argument(
        "--format",
        choices=("hex", "base64"),
        default="hex",
        help="how the 32 random bytes are written: hex (default) or base64; both are read back",
    )
    keygen.add_argument("--force", action="store_true", help="overwrite an existing file")
    keygen.set_defaults(func=cmd_keygen)

    node_id = add(
        "id",
        "print the node id of a node seed (what peers pin with --allow-peer)",
        [],
        "examples:\n  stt id node.seed\n  stt keygen - | stt id -\n\n"
        "Starts no node and opens no socket. Without SEEDFILE the STT_NODE_SEED environment\n"
        "variable is read. The seed itself is never printed.",
    )
    node_id.add_argument(
        "seedfile",
        nargs="?",
        metavar="SEEDFILE",
        help="a seed file written by `stt keygen`, or - for standard input",
    )
    node_id.set_defaults(func=cmd_id)

    node = add(
        "node",
        "run a node over UDP and WebSocket until SIGINT/SIGTERM",
        [_common("info", from_config=True), _seed_options(), _pin_options()],
        "examples:\n  stt node --node-seed node.seed --shared-seed shared.seed --echo\n"
        "  stt node --config node.toml --port 9100   # the file, with another port\n\n"
        "On start it prints `node NODE_ID` and\n"
        "`listening udp HOST:PORT [ws URL] [metrics URL]` on standard output, and opens the\n"
        "control socket that `stt show` reads.\n\n"
        "config file:\n"
        "  --config FILE (TOML) sets these options (as top-level keys: host, port, ws_port,\n"
        "  ws = false, node_seed, shared_seed, ...) and every NodeConfig field in the tables\n"
        "  [session], [endpoint] and [transport]; an option on the command line wins.\n"
        "  See docs/cli.md for the format.\n\n" + SEED_HELP,
    )
    node.add_argument(
        "--config",
        metavar="FILE",
        help="read options and NodeConfig fields from this TOML file (command-line options win)",
    )
    node.add_argument("--host", help="address to bind (default 127.0.0.1)")
    node.add_argument("--port", type=_port, help="UDP port (default 9000; 0: any)")
    node.add_argument("--ws-port", type=_port, help="WebSocket port (default 9001; 0: any)")
    node.add_argument("--no-ws", action="store_true", default=None, help="serve UDP only")
    node.add_argument(
        "--server",
        action=argparse.BooleanOptionalAction,
        help="accept peers' handshakes (default: yes)",
    )
    node.add_argument(
        "--metrics-port",
        type=_port,
        help="serve Prometheus metrics on http://METRICS_HOST:PORT/metrics (needs the metrics "
        "extra)",
    )
    node.add_argument("--metrics-host", help="address of the metrics server (default 127.0.0.1)")
    node.add_argument(
        "--control-socket",
        metavar="PATH",
        help="the Unix socket `stt show` reads (default: $XDG_RUNTIME_DIR/stt-PORT.sock, "
        "else /tmp/stt-UID-PORT.sock; `none`: no socket)",
    )
    node.add_argument(
        "--echo",
        action="store_true",
        default=None,
        help="send every message back to its sender",
    )
    node.add_argument(
        "--receive-dir", metavar="DIR", help="store files sent with `stt send-file` here"
    )
    node.set_defaults(func=cmd_node)

    relay = add(
        "relay",
        "run a relay that forwards sealed records between nodes by node id",
        [_common("info")],
        "examples:\n  stt relay --host 0.0.0.0\n"
        "  stt relay --host 127.0.0.1 --no-udp --ws-port 8080   # behind a TLS proxy\n\n"
        "It prints `relay URL...`: the URLs nodes pass in relays=[...] (docs/relay.md).\n"
        "It needs no seed and holds no session key.\n",
    )
    relay.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    relay.add_argument("--udp-port", type=_port, default=9400, help="UDP port (default 9400)")
    relay.add_argument("--ws-port", type=_port, default=9401, help="WebSocket port (default 9401)")
    relay.add_argument("--no-udp", action="store_true", help="serve WebSocket only")
    relay.add_argument("--no-ws", action="store_true", help="serve UDP only")
    relay.add_argument(
        "--max-registrations", type=int, default=65536, help="registrations held (default 65536)"
    )
    relay.add_argument(
        "--max-per-source",
        type=int,
        default=64,
        help="registrations one source host may hold (default 64)",
    )
    relay.add_argument(
        "--forward-rate",
        type=float,
        default=64 * 1024 * 1024,
        help="bytes a second one registration may send (default 64 MiB/s)",
    )
    relay.set_defaults(func=cmd_relay)

    connect = add(
        "connect",
        "handshake with a node, print the session, then close",
        client_parents,
        "examples:\n  stt connect 127.0.0.1 9000 --shared-seed shared.seed\n"
        "  stt connect --ws ws://127.0.0.1:9001/stt --shared-seed shared.seed\n"
        "  stt connect sttaeaq... --shared-seed shared.seed   # a node's ticket\n\n" + SEED_HELP,
        client=True,
    )
    connect.add_argument(
        "--rotate", action="store_true", help="also rotate the session's keys once"
    )
    connect.set_defaults(func=client_command(connect_main))

    send = add(
        "send",
        "send one message to a node",
        client_parents,
        "example:\n  stt send 127.0.0.1 9000 hello --shared-seed shared.seed --wait-reply\n\n"
        + SEED_HELP,
        client=True,
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
        client_parents,
        "The node must run with --receive-dir. Both sides print the file's sha256.\n\n" + SEED_HELP,
        client=True,
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
        client_parents,
        "Each ping is a message the node echoes back; prints min/avg/p50/max.\n\n" + SEED_HELP,
        client=True,
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

    show = add(
        "show",
        "show a running node's peers, endpoints, handshakes and transfer (like `wg show`)",
        [],
        "examples:\n  stt show               # every node of this user\n"
        "  stt show 9000          # the node on UDP port 9000\n"
        "  stt show --socket /run/stt/node.sock --json\n\n"
        "Reads the control socket that `stt node` opens (--control-socket); needs no metrics.",
    )
    show.add_argument(
        "port",
        nargs="?",
        type=_port,
        metavar="PORT",
        help="the node's UDP port, which names its default control socket",
    )
    show.add_argument("--socket", metavar="PATH", help="the node's control socket")
    show.add_argument("--json", action="store_true", help="print the figures as JSON")
    show.add_argument(
        "--timeout", type=_positive_float, default=5.0, help="seconds to wait (default 5)"
    )
    show.set_defaults(func=cmd_show)

    stats = add(
        "stats",
        "print a running node's statistics from its metrics endpoint",
        [quiet],
        "HOST PORT are those of `stt node --metrics-port PORT` (http://HOST:PORT/metrics).",
    )
    stats.usage = "stt stats [options] (HOST PORT | --url URL)"
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
