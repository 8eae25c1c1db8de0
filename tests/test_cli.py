"""The ``stt`` command line, run as users run it."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from seigr_stt.cli import main
from seigr_stt.core.identity import parse_seed


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "seigr_stt", *args],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def test_demo_shows_the_whole_lifecycle() -> None:
    result = run("demo")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for step in (
        "1. handshake over UDP",
        "2. data both ways over UDP",
        "3. handshake over WebSocket",
        "4. data both ways over WebSocket",
        "5. key rotation",
        "6. statistics",
        "7. close",
        "both nodes stopped",
    ):
        assert step in out
    assert "received b'hello over udp'" in out
    assert "received b'hello over websocket'" in out
    assert out.count("(intact: True)") == 2
    assert out.count("key version 0 -> 1 (server 1; keys equal: True)") == 2
    assert "udp session state CLOSED" in out
    assert "websocket session state CLOSED" in out
    assert "server drops: 0" in out


def test_keygen_writes_a_private_valid_seed(tmp_path: Path) -> None:
    target = tmp_path / "node.seed"
    assert main(["keygen", str(target)]) == 0
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    seed = parse_seed(target.read_text().strip())
    assert len(seed) == 32
    assert main(["keygen", str(target)]) == 1  # refuses to overwrite
    assert main(["keygen", str(target), "--force", "--format", "base64"]) == 0
    assert parse_seed(target.read_text().strip()) != seed


def test_keygen_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keygen", "-"]) == 0
    assert len(bytes.fromhex(capsys.readouterr().out.strip())) == 32


def test_usage_errors_exit_2() -> None:
    result = run("no-such-command")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr
    assert run("--help").returncode == 0
    assert run("demo", "--help").returncode == 0
