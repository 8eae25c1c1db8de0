"""The runtime never imports the benchmark code: importing every module of seigr_stt outside
seigr_stt/bench/ leaves seigr_stt.bench out of sys.modules (``stt bench`` imports it lazily)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import seigr_stt

PACKAGE = Path(seigr_stt.__file__).parent

CHECK = """
import importlib, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
bench = sorted(m for m in sys.modules if m == "seigr_stt.bench" or m.startswith("seigr_stt.bench."))
print("imported: " + " ".join(bench))
"""


def _runtime_modules() -> list[str]:
    """Every module of the package except the benchmarks and ``__main__`` (it runs the CLI)."""
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[:2] == ("seigr_stt", "bench") or parts[-1] == "__main__":
            continue
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def _bench_modules_after_importing(modules: list[str]) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", CHECK, *modules],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return done.stdout.strip().removeprefix("imported:").split()


def test_no_runtime_module_imports_the_benchmarks() -> None:
    modules = _runtime_modules()
    assert {"seigr_stt", "seigr_stt.cli", "seigr_stt.aio.node", "seigr_stt.testing"} <= set(modules)
    assert _bench_modules_after_importing(modules) == []


def test_the_check_sees_a_benchmark_import() -> None:
    assert "seigr_stt.bench.cases" in _bench_modules_after_importing(["seigr_stt.bench.cases"])
