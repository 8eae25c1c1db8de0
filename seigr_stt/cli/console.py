"""What a command shares with its process: the event loop it runs on and its output lines."""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
from collections.abc import Callable, Coroutine
from typing import IO, Any

__all__ = ["run", "say"]


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
