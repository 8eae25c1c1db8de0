"""The README quick start is short (at most 20 lines) and actually works."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.timing import SECOND

README = Path(__file__).resolve().parents[1] / "README.md"
MAX_LINES = 20


def quick_start() -> str:
    """The first ```python block of README.md."""
    match = re.search(r"^```python\n(.*?)^```$", README.read_text(), re.DOTALL | re.MULTILINE)
    assert match is not None, "README.md has no ```python block"
    return match.group(1)


def test_quick_start_is_at_most_20_lines() -> None:
    lines = quick_start().splitlines()
    assert len(lines) <= MAX_LINES, f"the quick start has {len(lines)} lines"


def test_quick_start_echoes(tmp_path: Path) -> None:
    script = tmp_path / "quick_start.py"
    script.write_text(quick_start())
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60 * SECOND,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr
    # b'hello', the 8-byte session id in hex, key version 0
    assert re.fullmatch(r"b'hello' [0-9a-f]{16} 0\n", result.stdout), result.stdout
