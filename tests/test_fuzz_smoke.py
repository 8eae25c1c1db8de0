"""A short run of the fuzz target kept in ``fuzz/run.py`` (the full run is one command there)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

RUN_PY = Path(__file__).resolve().parents[1] / "fuzz" / "run.py"


def load_fuzzer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("seigr_stt_fuzz_run", RUN_PY)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("target", ["parsers", "endpoint", "node"])
def test_fuzz_smoke(target: str) -> None:
    fuzzer = load_fuzzer()
    (report,) = fuzzer.run(3000, 7, [target], 60.0, quiet=True)
    assert report.failures == []
    assert report.inputs >= (3000 * 4 if target == "parsers" else 2500)
    assert sum(v for k, v in report.outcomes.items() if "drop" in k or "refused" in k) > 0


def test_fuzz_smoke_frames_under_valid_keys() -> None:
    fuzzer = load_fuzzer()
    (report,) = fuzzer.run(3000, 7, ["frames"], 60.0, quiet=True)
    assert report.failures == []
    assert report.inputs == 3000
    outcomes = report.outcomes
    closes = sum(v for k, v in outcomes.items() if k.startswith("closed: protocol violation"))
    assert outcomes["accepted"] > 2000
    assert closes > 10  # each followed by a new session


def test_fuzz_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    fuzzer = load_fuzzer()
    assert fuzzer.main(["--packets", "300", "--seed", "3", "--targets", "parsers"]) == 0
    out = capsys.readouterr().out
    assert "[parsers] 1,200 inputs" in out
    assert "failures: 0" in out
