"""The ``stt`` command line (also ``python -m seigr_stt``); see ``docs/cli.md``.

Commands: ``keygen``, ``id``, ``node``, ``connect``, ``send``, ``send-file``, ``ping``, ``show``,
``stats``, ``bench`` and ``demo``. Logging is configured by the CLI only (``--log-level``); the
library installs no handlers. Seeds come from files written by ``stt keygen`` (``--node-seed`` /
``--shared-seed``) or from the ``STT_NODE_SEED`` / ``STT_SHARED_SEED`` environment variables
and are never printed or logged.

This module runs the command line (:func:`main`) and names its exit codes. One job per module
of the package:

- ``errors``: the exit codes, their help footer and ``CLIError``;
- ``parser``: the argparse tree and its argument types;
- ``seeds``: seed files and environment variables;
- ``console``: the event loop, logging, and the output, warning and error lines every command
  uses (all prefixed ``stt COMMAND:``);
- ``client``: a client session to a node, for the client commands;
- ``keys``: ``keygen`` (the atomic seed file writer) and ``id``;
- ``commands``: ``demo``, ``bench``, ``connect``, ``send``, ``ping``;
- ``serve``: ``stt node``;
- ``nodefile``: ``stt node --config FILE`` (TOML);
- ``control``: the node's control socket, and the snapshot it answers;
- ``show``: ``stt show``, which reads it;
- ``filetransfer``: the ``send-file`` protocol, sender and receiver;
- ``stats``: ``stt stats``.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence

from seigr_stt.cli.commands import cmd_bench
from seigr_stt.cli.console import configure_logging, prefix, set_command
from seigr_stt.cli.errors import (
    EXIT_FAILURE,
    EXIT_HANDSHAKE_TIMEOUT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    CLIError,
)
from seigr_stt.cli.parser import build_parser

__all__ = [
    "EXIT_FAILURE",
    "EXIT_HANDSHAKE_TIMEOUT",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "main",
]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 failure, 2 usage, 3 handshake timeout).

    ``argv`` defaults to ``sys.argv[1:]``. A command's :class:`~seigr_stt.cli.errors.CLIError`
    is printed as ``stt COMMAND: MESSAGE`` on standard error and its code returned; Ctrl-C
    returns 130; output cut short by a closed pipe (``stt show | head``) ends quietly with 1.
    As argparse does, ``--help`` and ``--version`` (exit 0) and bad arguments
    (exit 2) raise :class:`SystemExit` instead of returning. Configures logging (not for
    ``keygen`` and ``id``).
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        return _run(arguments)
    except CLIError as exc:
        sys.stderr.write(f"{prefix()}: {exc}\n")
        return exc.code
    except KeyboardInterrupt:
        sys.stderr.write(f"{prefix()}: interrupted\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of our output went away (`stt show | head`): stop quietly, and keep the
        # interpreter's final flush from failing again on the closed pipe.
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILURE
    finally:
        set_command(None)


def _run(arguments: list[str]) -> int:
    if arguments[:1] == ["bench"]:
        set_command("bench")
        return cmd_bench(arguments[1:])
    args = build_parser().parse_args(arguments)
    set_command(args.command)
    # keygen and id log nothing: leave logging be; stt node may take its level from --config
    if args.command not in ("keygen", "id") and getattr(args, "log_level", None):
        configure_logging(args.log_level)
    code: int = args.func(args)
    return code
