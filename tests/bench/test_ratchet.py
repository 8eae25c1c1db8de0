"""The ratchet cost tool completes every cycle and counts what went on the wire."""

from __future__ import annotations

import pytest

from seigr_stt.bench import ratchet


def test_a_ratchet_costs_more_than_a_hash_rotation_on_the_wire() -> None:
    figures = ratchet.run(5)
    assert figures.ratchet.count == figures.rotation.count == 5
    # INIT and REPLY each ride a record of their own on an idle session: two more datagrams,
    # carrying at least the two 34-byte frames.
    assert figures.frame_bytes == 68
    assert figures.ratchet.records == figures.rotation.records + 2
    assert figures.ratchet.wire_bytes >= figures.rotation.wire_bytes + figures.frame_bytes
    assert figures.ratchet.cpu_us > 0
    assert figures.rotation.cpu_us > 0
    assert figures.crypto_us > 0


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="kind"):
        ratchet.cycles("handshake", 1)


def test_main_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert ratchet.main(["--count", "2"]) == 0
    out = capsys.readouterr().out
    assert "| CPU µs (both endpoints + simulator) |" in out
    assert "68 bytes" in out
