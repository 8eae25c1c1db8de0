"""What a command shares with its process: the event loop it runs on and its output lines."""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import sys
from collections.abc import Callable, Coroutine
from typing import IO, Any

__all__ = ["configure_logging", "prefix", "printable", "run", "say", "set_command", "warn"]

_command = "stt"


def set_command(name: str | None) -> None:
    """Name the running command, for the prefix of :func:`warn` and of error lines."""
    global _command
    _command = f"stt {name}" if name else "stt"


def prefix() -> str:
    """``stt COMMAND``: what every error and warning line of the CLI starts with."""
    return _command


def warn(text: str) -> None:
    """Write ``stt COMMAND: warning: TEXT`` on standard error (errors are ``stt COMMAND:
    TEXT``, written by :func:`seigr_stt.cli.main`)."""
    say(f"{_command}: warning: {text}", sys.stderr)


def configure_logging(level_name: str) -> None:
    """Log the ``seigr_stt`` loggers at ``level_name`` (and other libraries at WARNING and above)
    on standard error. Called again, only the levels change."""
    level = getattr(logging, level_name.upper())
    logging.basicConfig(
        level=min(level, logging.WARNING),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger().setLevel(min(level, logging.WARNING))
    logging.getLogger("seigr_stt").setLevel(level)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when installed (``STT_NO_UVLOOP=1`` turns it off), else asyncio's."""
    if os.environ.get("STT_NO_UVLOOP"):
        return None
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run(coro: Coroutine[Any, Any, int]) -> int:
    """Run a command's coroutine on a new event loop (uvloop's when available); its exit code.

    Must be called outside any running event loop; exceptions of ``coro`` propagate.
    """
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(coro)


def say(text: str, file: IO[str] | None = None) -> None:
    """Write ``text`` and a newline to ``file`` (standard output by default) and flush at once.

    Flushed so that a script reading the output (e.g. the bound ports of ``stt node``) sees each
    line when it is written.
    """
    stream = file or sys.stdout
    stream.write(text + "\n")
    stream.flush()


def _escape(char: str) -> str:
    code = ord(char)
    if char == "\\":
        return "\\\\"
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable(text: str) -> str:
    """``text`` safe to show on a terminal: every non-printable character escaped.

    Characters that :meth:`str.isprintable` rejects (C0 and C1 controls such as ESC, newline,
    DEL; Unicode format characters such as bidirectional overrides; line and paragraph
    separators) become ``\\xNN``, ``\\uNNNN`` or ``\\UNNNNNNNN``, and a backslash becomes
    ``\\\\``, so the result is unambiguous and holds no terminal escape sequence. Printable text
    (including non-ASCII letters) is kept as it is.
    """
    return "".join(c if c.isprintable() and c != "\\" else _escape(c) for c in text)
