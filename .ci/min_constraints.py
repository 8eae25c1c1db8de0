"""Print pip constraints pinning every ``>=`` lower bound of pyproject.toml to that version.

``make test-min`` installs the package with these constraints (the runtime dependencies and the
``speed``, ``cli`` and ``metrics`` extras at their floors; test tools at their newest), so the
declared floors are what the suite actually runs against.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

#: Extras whose floors are pinned (``dev``/``docs``/``bench`` are tools, not what users run).
EXTRAS = ("speed", "cli", "metrics")
_FLOOR = re.compile(r"^\s*([A-Za-z0-9_.-]+)\s*>=\s*([0-9][0-9A-Za-z.]*)\s*(?:,[^;]*)?(;.*)?$")


def floors(pyproject: Path) -> list[str]:
    """``name==floor[; marker]`` for each requirement with a ``>=`` bound."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    requirements = list(project["dependencies"])
    for extra in EXTRAS:
        requirements += project["optional-dependencies"][extra]
    pins: dict[str, str] = {}
    for requirement in requirements:
        match = _FLOOR.match(requirement)
        if match is None:
            continue
        name, version, marker = match.groups()
        pins[name.lower()] = f"{name}=={version}" + (f"{marker}" if marker else "")
    return sorted(pins.values())


if __name__ == "__main__":
    root = Path(__file__).resolve().parent.parent
    sys.stdout.write("".join(f"{line}\n" for line in floors(root / "pyproject.toml")))
