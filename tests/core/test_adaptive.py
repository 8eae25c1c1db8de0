"""Adapting to reordering: spurious losses raise the packet threshold and undo the window cut."""

from __future__ import annotations

from seigr_stt.constants import PACKET_THRESHOLD, PACKET_THRESHOLD_MAX
from seigr_stt.core.congestion import NewReno
from seigr_stt.core.recovery import LossRecovery, SentRecord


def _sent(recovery: LossRecovery, counters: range, at: float = 0.0) -> None:
    for counter in counters:
        recovery.on_sent(SentRecord(counter, at, 1000, True, True, []))


def test_a_loss_acknowledged_later_raises_the_packet_threshold() -> None:
    recovery = LossRecovery()
    _sent(recovery, range(10))
    _, lost, _ = recovery.on_ack(9, 0.0, [(5, 9)], now=0.01)
    assert [r.counter for r in lost] == [0, 1, 2, 3, 4]  # 3 or more newer records acknowledged
    assert recovery.packet_threshold == PACKET_THRESHOLD
    # Record 0 arrives after all: it was reordered by 10 records, not lost.
    acked, lost, _ = recovery.on_ack(9, 0.0, [(5, 9), (0, 0)], now=0.02)
    assert acked == []
    assert lost == []
    assert recovery.spurious_losses == 1
    assert recovery.packet_threshold == 10
    # Now a record 5 behind the newest acknowledged one is not declared lost any more.
    _sent(recovery, range(10, 20), at=0.02)
    _, lost, _ = recovery.on_ack(19, 0.0, [(15, 19)], now=0.021)
    assert [r.counter for r in lost] == []


def test_the_packet_threshold_is_capped() -> None:
    recovery = LossRecovery()
    _sent(recovery, range(200))
    recovery.on_ack(199, 0.0, [(199, 199)], now=0.01)  # 0..196 declared lost
    # Only the newest LOST_REMEMBERED losses are remembered (133..196): record 133 coming back
    # was reordered by 67 records, more than the cap.
    recovery.on_ack(199, 0.0, [(199, 199), (133, 133)], now=0.02)
    assert recovery.spurious_losses == 1
    assert recovery.packet_threshold == PACKET_THRESHOLD_MAX
    recovery.on_ack(199, 0.0, [(199, 199), (0, 0)], now=0.03)  # forgotten: not counted
    assert recovery.spurious_losses == 1


def test_undo_restores_the_window_a_spurious_loss_cut() -> None:
    cc = NewReno(1200)
    cc.cwnd = 48_000
    cc.on_lost(largest_lost_sent=1.0, now=2.0, persistent=False)
    assert cc.cwnd == 24_000
    cc.undo()
    assert cc.cwnd == 48_000
    assert cc.ssthresh == float("inf")
    cc.undo()  # nothing left to undo
    assert cc.cwnd == 48_000


def test_undo_does_nothing_after_persistent_congestion() -> None:
    cc = NewReno(1200)
    cc.cwnd = 48_000
    cc.on_lost(largest_lost_sent=1.0, now=2.0, persistent=True)
    assert cc.cwnd == cc.minimum
    cc.undo()
    assert cc.cwnd == cc.minimum
