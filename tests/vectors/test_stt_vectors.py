"""The protocol 1.1 regression vectors of ``stt_1_1.json``, byte for byte.

The file is written by ``python -m tests.core.appendix_b --json`` from the inputs of
``docs/protocol.md`` Appendix B: the handshake, the first records, one hash rotation and one DH
ratchet. This test recomputes every value with the code and compares it with the file, so that a
change of any derivation or record shows here as well as in the appendix.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seigr_stt.constants import PROTOCOL_VERSION, PROTOCOL_VERSION_NAME
from tests.core.appendix_b import (
    DEFAULT_INPUTS,
    JSON,
    RATCHET_NAMES,
    ROTATION_NAMES,
    compute,
    vectors_json,
)

STORED = json.loads(Path(JSON).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def computed() -> dict[str, bytes]:
    return compute(DEFAULT_INPUTS)


def test_the_file_is_what_the_generator_writes(computed: dict[str, bytes]) -> None:
    assert Path(JSON).read_text(encoding="utf-8") == vectors_json(computed)


@pytest.mark.parametrize("name", sorted(k for k in STORED if k not in {"source", "protocol"}))
def test_value(name: str, computed: dict[str, bytes]) -> None:
    if name == "timestamp t":
        assert STORED[name] == DEFAULT_INPUTS.timestamp_ns
    elif name == "capabilities":
        assert STORED[name] == DEFAULT_INPUTS.capabilities
    else:
        assert STORED[name] == computed[name].hex()


def test_the_file_covers_handshake_rotation_and_ratchet() -> None:
    assert STORED["protocol"] == PROTOCOL_VERSION_NAME
    for name in ("INIT", "RESPONSE", "FINAL", *ROTATION_NAMES, *RATCHET_NAMES):
        assert STORED[name][:2] == f"{PROTOCOL_VERSION:02x}", name  # version byte
    assert STORED["session_key epoch 0"] != STORED["session_key epoch 1"]
    assert STORED["session_key epoch 1"] != STORED["session_key epoch 2"]
