"""The package as shipped: what ``import seigr_stt`` loads, and the declared floors."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def floors(pyproject: Path) -> list[str]:
    """``.ci/min_constraints.py``'s pins (the constraints ``make test-min`` installs)."""
    spec = importlib.util.spec_from_file_location(
        "min_constraints", ROOT / ".ci/min_constraints.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    pins: list[str] = module.floors(pyproject)
    return pins


def test_import_loads_no_benchmark_cli_or_optional_code() -> None:
    code = (
        "import sys, seigr_stt\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('seigr_stt'))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout.split()
    assert "seigr_stt.aio.node" in loaded
    for heavy in ("seigr_stt.bench", "seigr_stt.cli", "seigr_stt.metrics", "seigr_stt.demo"):
        assert not any(m == heavy or m.startswith(heavy + ".") for m in loaded), heavy


def test_metadata_license_and_floors() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["license"] == "MIT"
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")
    pins = floors(ROOT / "pyproject.toml")
    # every WebSocket connect fails before websockets 15.0 (create_connection(proxy=...))
    assert "websockets==15" in pins
    assert any(pin.startswith("pynacl==") for pin in pins)
    assert any(pin.startswith("msgpack==") for pin in pins)
