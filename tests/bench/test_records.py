"""The per-record benchmark tool moves the bytes intact and accounts for every record."""

from __future__ import annotations

import pytest

from seigr_stt.bench import records


def test_transfer_counts_records_and_splits_time() -> None:
    figures = records.run(0.2, profile=True)
    payload = records.MTU1500_RECORD_SIZE - 20 - 16 - 64  # header, tag, frame and ACK room
    assert figures.sender.records_sent >= 200_000 // records.MTU1500_RECORD_SIZE
    assert figures.sender.records_sent <= 200_000 // payload + 20
    assert figures.receiver.records_received == figures.sender.records_sent  # no loss
    assert figures.sender_us > 0
    assert figures.receiver_us > 0
    for side in (figures.sender, figures.receiver):
        assert set(side.parts) == set(records.PARTS)
        assert sum(side.parts.values()) == pytest.approx(side.seconds)


def test_lossy_transfer_still_delivers() -> None:
    figures = records.run(0.1, loss=0.05, seed=3)
    # Retransmissions: more records sent than received.
    assert figures.sender.records_sent > figures.receiver.records_received


def test_main_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert records.main(["--mb", "0.05", "--profile"]) == 0
    out = capsys.readouterr().out
    assert "| seal/open |" in out
    assert "**total**" in out
