"""The core is sans-I/O (architecture habit 1): no module under ``seigr_stt/core`` imports a
clock, a socket, an event loop, threads or an unseeded source of randomness."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import seigr_stt.core

FORBIDDEN = frozenset({"asyncio", "socket", "time", "random", "threading", "os", "selectors"})
CORE_DIR = Path(seigr_stt.core.__file__).parent
CORE_MODULES = sorted(CORE_DIR.rglob("*.py"))  # subpackages too (core/noise/)


def forbidden_imports(source: str) -> set[str]:
    """Top-level package names of every forbidden import in ``source``, wherever it occurs."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "__import__"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names = [node.args[0].value]
        found.update(name.split(".")[0] for name in names if name.split(".")[0] in FORBIDDEN)
    return found


def _module_name(path: Path) -> str:
    """``session`` for ``core/session.py``, ``noise/cipher`` for ``core/noise/cipher.py``."""
    return path.relative_to(CORE_DIR).with_suffix("").as_posix()


def test_the_core_package_has_modules() -> None:
    names = {_module_name(path) for path in CORE_MODULES}
    assert {"endpoint", "session", "keys", "handshake", "record", "frames"} <= names
    assert {"noise/cipher", "noise/patterns", "noise/handshake_state"} <= names


@pytest.mark.parametrize("path", CORE_MODULES, ids=lambda p: p.relative_to(CORE_DIR).as_posix())
def test_core_module_imports_no_io(path: Path) -> None:
    assert forbidden_imports(path.read_text(encoding="utf-8")) == set()


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import time", {"time"}),
        ("import os.path", {"os"}),
        ("from asyncio import sleep", {"asyncio"}),
        ("from socket import socket as s", {"socket"}),
        ("import json, random", {"random"}),
        ("def f():\n    import threading\n", {"threading"}),
        ("import selectors as sel", {"selectors"}),
        ("m = __import__('time')", {"time"}),
        ("import timeit, osmosis\nfrom . import time", set()),
    ],
)
def test_the_checker_finds_what_it_should(source: str, expected: set[str]) -> None:
    assert forbidden_imports(source) == expected
