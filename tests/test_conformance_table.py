"""``docs/protocol.md`` §20: every test the conformance table names exists in the suite.

The table is numbered C-1, C-2, ... without gaps, and each ``path::name`` (or ``::name`` after a
path in the same cell, or a whole test file) it names is a test function in that file.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "protocol.md"


def _section() -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index("### §20.2 A minimal conforming peer")
    return text[start : text.index("\n---", start)]


def _rows() -> list[tuple[str, str]]:
    rows = []
    for line in _section().splitlines():
        match = re.match(r"\| (C-\d+) \|.*\| ([^|]+) \|$", line)
        if match:
            rows.append((match.group(1), match.group(2)))
    return rows


def test_the_items_are_numbered_without_gaps() -> None:
    numbers = [int(item[2:]) for item, _ in _rows()]
    assert numbers == list(range(1, len(numbers) + 1))
    assert len(numbers) >= 30


def test_every_named_test_exists() -> None:
    named = 0
    for item, cell in _rows():
        path: str | None = None
        for ref in re.findall(r"`([^`]+)`", cell):
            file, _, name = ref.partition("::")
            if file:
                path = file
            assert path is not None, (item, ref)
            source = (ROOT / path).read_text(encoding="utf-8")
            if name:
                assert re.search(rf"^(async )?def {re.escape(name)}\(", source, re.M), (item, ref)
            else:
                assert re.search(r"^(async )?def test_", source, re.M), (item, ref)
            named += 1
        assert path is not None, f"{item} names no test"
    assert named >= 40
