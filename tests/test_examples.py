"""Every example in examples/ runs to completion and prints what it promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.timing import SECOND

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

EXPECTED = {
    "session_lifecycle.py": [
        "1. Creating session...",
        "State: 1 (ACTIVE)",
        "Key version: 0 → 1",
        "Total sessions: 1",
        "State: 3 (CLOSED)",
    ],
    "key_rotation.py": ["-> version 3", "in order: True", "keys equal: True"],
    "echo_udp.py": ["sent 'hello', echoed 'hello' via udp", "sent 'stt', echoed 'stt' via udp"],
    "echo_websocket.py": ["echoed 'hello' via websocket", "echoed 'stt' via websocket"],
    "relay.py": [
        "B registered, the relay sees it at ('127.0.0.1',",
        "B received 'hello through the relay'",
        "the session moved from the relay to udp",
        "sealed packets",
    ],
    "ticket.py": [
        "B's ticket: stt",
        "A reached B by ticket over ",
        "proved node id matches: True",
        "B received 'hello by ticket'",
        "a ticket naming another node at B's address: refused",
    ],
    "serve_connect.py": [
        "echoed 'hello' via udp",
        "echoed 'hello' via websocket",
        "answer to question 3",
        "session 3 closed by the server, code 0",
        "3 sessions, reconnected after each close",
    ],
    "behind_nat.py": [
        "without a punch: timed out (1 filtered)",
        "after the punch: 'through two NATs'",
        "UDP blocked: timed out (1 dropped)",
        "WebSocket through the firewall: websocket",
        "symmetric NATs: session established: False",
    ],
}


def test_every_example_is_covered() -> None:
    scripts = [p.name for p in EXAMPLES.glob("*.py") if p.name != "__init__.py"]
    assert sorted(scripts) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs(name: str) -> None:
    args = [sys.executable, str(EXAMPLES / name)]
    if name == "key_rotation.py":
        args += ["--interval", "0.1", "--rotations", "3"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=60 * SECOND, check=False)
    assert result.returncode == 0, result.stderr
    for line in EXPECTED[name]:
        assert line in result.stdout, (line, result.stdout)
