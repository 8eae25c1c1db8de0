"""The process side of a command (:mod:`seigr_stt.cli.console`): the event loop, warnings."""

from __future__ import annotations

import asyncio
import importlib.util

import pytest

from seigr_stt.cli import console


async def _loop_module() -> int:
    return 1 if type(asyncio.get_running_loop()).__module__.startswith("uvloop") else 0


@pytest.mark.skipif(importlib.util.find_spec("uvloop") is None, reason="uvloop not installed")
def test_commands_run_on_uvloop_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STT_NO_UVLOOP", raising=False)
    assert console.run(_loop_module()) == 1
    monkeypatch.setenv("STT_NO_UVLOOP", "1")
    assert console.run(_loop_module()) == 0


def test_warnings_and_errors_share_the_command_prefix(capsys: pytest.CaptureFixture[str]) -> None:
    console.set_command("node")
    try:
        assert console.prefix() == "stt node"
        console.warn("something odd")
    finally:
        console.set_command(None)
    assert capsys.readouterr().err == "stt node: warning: something odd\n"
    assert console.prefix() == "stt"
