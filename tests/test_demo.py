"""The demo as a library call: figures it returns are the real ones."""

from __future__ import annotations

from seigr_stt.demo import run_demo


async def test_run_demo_figures() -> None:
    lines: list[str] = []
    figures = await run_demo(lines.append)
    assert figures == {"rotations": 2, "drops": 0, "closed": 2}
    assert lines[-1] == "both nodes stopped"
