"""The ``stt`` command line (also ``python -m seigr_stt``)."""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from seigr_stt import __version__, generate_seed

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def _cmd_demo(args: argparse.Namespace) -> int:
    from seigr_stt.demo import run_demo

    asyncio.run(run_demo())
    return EXIT_OK


def _cmd_keygen(args: argparse.Namespace) -> int:
    seed = generate_seed()
    text = seed.hex() if args.format == "hex" else base64.b64encode(seed).decode()
    if args.output == "-":
        sys.stdout.write(text + "\n")
        return EXIT_OK
    path = Path(args.output)
    if path.exists() and not args.force:
        sys.stderr.write(f"stt keygen: {path} exists (use --force to overwrite)\n")
        return EXIT_FAILURE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text + "\n")
    os.chmod(path, 0o600)
    sys.stderr.write(f"wrote a new seed to {path} (mode 0600)\n")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stt", description="seigr_stt: encrypted P2P nodes")
    parser.add_argument("--version", action="version", version=f"seigr_stt {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo", help="two nodes in one process: the whole lifecycle over UDP and WebSocket"
    )
    demo.set_defaults(func=_cmd_demo)
    keygen = sub.add_parser("keygen", help="write a new random seed file (mode 0600)")
    keygen.add_argument("output", help="file to write, or - for standard output")
    keygen.add_argument("--format", choices=("hex", "base64"), default="hex")
    keygen.add_argument("--force", action="store_true", help="overwrite an existing file")
    keygen.set_defaults(func=_cmd_keygen)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 failure, 2 usage)."""
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code
