"""Tests of NewReno (RFC 9002 §7, appendix B) and the token-bucket pacer (``congestion.py``)."""

from __future__ import annotations

import math

import pytest

from seigr_stt.constants import (
    INITIAL_WINDOW_PACKETS,
    LOSS_REDUCTION_FACTOR,
    MINIMUM_WINDOW_PACKETS,
    PACING_BURST_PACKETS,
    PACING_GAIN,
)
from seigr_stt.core.congestion import NewReno, Pacer

MTU = 1200


def test_constants_are_the_expected_values() -> None:
    # The literal windows below (12000, 6000, 2400, ...) rely on these.
    assert INITIAL_WINDOW_PACKETS == 10
    assert MINIMUM_WINDOW_PACKETS == 2
    assert LOSS_REDUCTION_FACTOR == 0.5
    assert PACING_GAIN == 1.25
    assert PACING_BURST_PACKETS == 16


# -- NewReno -----------------------------------------------------------------------------------


def test_initial_window() -> None:
    cc = NewReno(MTU)
    assert cc.cwnd == 12000
    assert cc.minimum == 2400
    assert math.isinf(cc.ssthresh)
    assert cc.recovery_start is None
    assert cc.can_send(11999)
    assert not cc.can_send(12000)


def test_slow_start_grows_by_acked_bytes() -> None:
    cc = NewReno(MTU)
    cc.on_acked(1200, 0.0, False)
    assert cc.cwnd == 13200
    cc.on_acked(500, 0.1, False)
    assert cc.cwnd == 13700
    for _ in range(10):
        cc.on_acked(1200, 0.2, False)
    assert cc.cwnd == 25700


def test_app_limited_acks_do_not_grow() -> None:
    cc = NewReno(MTU)
    cc.on_acked(1200, 0.0, True)
    assert cc.cwnd == 12000
    cc.on_lost(0.0, 1.0, False)
    cc.on_acked(6000, 2.0, True)
    assert cc.cwnd == 6000


def _in_avoidance() -> NewReno:
    cc = NewReno(MTU)
    cc.on_lost(0.5, 1.0, False)  # cwnd = ssthresh = 6000, recovery since t=1
    assert cc.cwnd == 6000
    assert cc.ssthresh == 6000
    assert cc.recovery_start == 1.0
    return cc


def test_loss_halves_window() -> None:
    cc = NewReno(MTU)
    cc.on_acked(1000, 0.0, False)  # 13000
    cc.on_lost(0.5, 1.0, False)
    assert cc.cwnd == 6500
    assert cc.ssthresh == 6500


def test_congestion_avoidance_one_datagram_per_window() -> None:
    cc = _in_avoidance()
    for _ in range(4):
        cc.on_acked(1200, 1.5, False)  # sent after recovery started
    assert cc.cwnd == 6000  # 4800 acked < one window
    cc.on_acked(1200, 1.5, False)  # 6000 acked: one window
    assert cc.cwnd == 7200
    # The count starts again from the remainder: another 7200 bytes for the next datagram.
    for _ in range(5):
        cc.on_acked(1200, 1.6, False)
    assert cc.cwnd == 7200
    cc.on_acked(1500, 1.6, False)  # 7500 >= 7200
    assert cc.cwnd == 8400
    cc.on_acked(8100, 1.7, False)  # remainder 300 + 8100 = 8400
    assert cc.cwnd == 9600


def test_one_reduction_per_recovery_period() -> None:
    cc = _in_avoidance()
    cc.on_lost(0.9, 1.2, False)  # sent before recovery started: same congestion event
    assert cc.cwnd == 6000
    assert cc.recovery_start == 1.0
    cc.on_lost(1.0, 1.3, False)  # sent exactly at the start: still the same event
    assert cc.cwnd == 6000
    cc.on_lost(1.1, 2.0, False)  # sent after: a new event
    assert cc.cwnd == 3000
    assert cc.ssthresh == 3000
    assert cc.recovery_start == 2.0


def test_acks_of_records_sent_before_recovery_do_not_grow() -> None:
    cc = _in_avoidance()
    cc.on_acked(1200, 0.9, False)
    cc.on_acked(1200, 1.0, False)
    assert cc.cwnd == 6000
    cc.on_acked(6000, 1.01, False)
    assert cc.cwnd == 7200


def test_loss_resets_avoidance_count() -> None:
    cc = _in_avoidance()
    cc.on_acked(5000, 1.5, False)  # 5000 of 6000 counted
    cc.on_lost(1.6, 2.0, False)  # cwnd 3000, count reset
    cc.on_acked(2999, 2.5, False)
    assert cc.cwnd == 3000
    cc.on_acked(1, 2.5, False)
    assert cc.cwnd == 4200


def test_minimum_window_floor() -> None:
    cc = _in_avoidance()
    cc.on_lost(1.5, 2.0, False)  # 3000
    cc.on_lost(2.5, 3.0, False)  # 1500 -> floor 2400
    assert cc.cwnd == 2400
    assert cc.ssthresh == 2400
    cc.on_lost(3.5, 4.0, False)
    assert cc.cwnd == 2400


def test_persistent_congestion_collapses_to_minimum() -> None:
    cc = NewReno(MTU)
    cc.on_acked(12000, 0.0, False)  # 24000
    cc.on_lost(0.5, 1.0, True)
    assert cc.cwnd == 2400
    # RFC 9002 appendix B.8: the congestion event still halves ssthresh (24000 -> 12000), the
    # window restarts from the minimum in slow start and no recovery period remains.
    assert cc.ssthresh == 12000
    assert cc.recovery_start is None
    cc.on_acked(1200, 0.9, False)
    assert cc.cwnd == 3600  # slow start: by the bytes acknowledged
    cc.on_acked(1200, 1.5, False)
    assert cc.cwnd == 4800


def test_persistent_congestion_during_recovery() -> None:
    cc = _in_avoidance()  # 6000, recovery since t=1
    cc.on_lost(0.9, 1.5, True)  # same congestion event: ssthresh not halved again
    assert cc.cwnd == 2400
    assert cc.ssthresh == 6000
    cc.on_acked(1200, 1.6, False)
    assert cc.cwnd == 3600


def test_window_regrows_to_avoidance_after_persistent_congestion() -> None:
    cc = NewReno(MTU)
    cc.on_lost(0.5, 1.0, True)  # ssthresh 6000, cwnd 2400
    for _ in range(3):
        cc.on_acked(1200, 1.5, False)  # slow start: 3600, 4800, 6000
    assert cc.cwnd == 6000
    cc.on_acked(1200, 1.5, False)  # now at ssthresh: avoidance counts
    assert cc.cwnd == 6000


# -- Pacer -------------------------------------------------------------------------------------

CWND = 12000
SRTT = 0.125
RATE = 1.25 * CWND / SRTT  # 120 000 bytes per second; the times below are exact binary fractions


def test_pacer_burst_allowance() -> None:
    pacer = Pacer(MTU)
    assert pacer.burst == 16 * 1200
    pacer.refill(0.0, CWND, SRTT)  # first call only starts the clock
    for _ in range(15):
        pacer.on_sent(1200)
        assert pacer.can_send()
    assert pacer.next_send_at(0.0, CWND, SRTT) is None
    pacer.on_sent(1200)  # 16 datagrams at once
    assert not pacer.can_send()
    # Empty: one byte of credit needed at RATE bytes per second.
    assert pacer.next_send_at(0.0, CWND, SRTT) == pytest.approx(1 / RATE)


def test_pacer_refill_rate() -> None:
    pacer = Pacer(MTU)
    pacer.on_sent(16 * 1200)  # empty
    pacer.refill(1.0, CWND, SRTT)  # the first refill only starts the clock
    assert not pacer.can_send()
    pacer.refill(1.015625, CWND, SRTT)  # 1/64 s * 120 000 B/s = 1875 bytes
    assert pacer.can_send()
    pacer.on_sent(1875)
    assert not pacer.can_send()
    pacer.on_sent(1875)  # overdraw: 1875 bytes in debt
    assert pacer.next_send_at(1.015625, CWND, SRTT) == pytest.approx(1.015625 + 1876 / RATE)
    pacer.refill(1.03125, CWND, SRTT)  # +1875: exactly even, still not positive
    assert not pacer.can_send()
    assert pacer.next_send_at(1.03125, CWND, SRTT) == pytest.approx(1.03125 + 1 / RATE)
    pacer.refill(1.0390625, CWND, SRTT)  # +937.5
    assert pacer.can_send()
    assert pacer.next_send_at(1.0390625, CWND, SRTT) is None


def test_pacer_deadline_counts_from_the_last_refill() -> None:
    pacer = Pacer(MTU)
    pacer.refill(1.0, CWND, SRTT)
    pacer.on_sent(16 * 1200 + 600)  # 600 bytes in debt after the refill at 1.0
    pacer.refill(1.0 + 300 / RATE, CWND, SRTT)  # 300 refilled: 300 in debt at that time
    refilled_at = 1.0 + 300 / RATE
    # Asked with an earlier time (the last send), the deadline still lies after the refill,
    # where the bucket really is positive again; it never falls due before it.
    expected = refilled_at + 301 / RATE
    assert pacer.next_send_at(1.0, CWND, SRTT) == pytest.approx(expected)
    assert pacer.next_send_at(refilled_at, CWND, SRTT) == pytest.approx(expected)
    deadline = pacer.next_send_at(1.0, CWND, SRTT)
    assert deadline is not None
    pacer.refill(deadline, CWND, SRTT)
    assert pacer.can_send()


def test_pacer_rate_follows_cwnd_and_srtt() -> None:
    pacer = Pacer(MTU)
    pacer.on_sent(16 * 1200)
    # Twice the window, half the RTT: four times the rate.
    assert pacer.next_send_at(0.0, 2 * CWND, SRTT / 2) == pytest.approx(1 / (4 * RATE))
    # A zero smoothed RTT is floored at 100 µs instead of dividing by zero.
    assert pacer.next_send_at(0.0, CWND, 0.0) == pytest.approx(1e-4 / (1.25 * CWND))


def test_pacer_tokens_capped_at_burst() -> None:
    pacer = Pacer(MTU)
    pacer.refill(0.0, CWND, SRTT)
    pacer.refill(100.0, CWND, SRTT)  # a long idle period
    pacer.on_sent(16 * 1200)
    assert not pacer.can_send()


def test_pacer_clock_going_backwards_adds_nothing() -> None:
    pacer = Pacer(MTU)
    pacer.on_sent(16 * 1200)
    pacer.refill(5.0, CWND, SRTT)
    pacer.refill(4.0, CWND, SRTT)
    assert not pacer.can_send()
    pacer.refill(4.0078125, CWND, SRTT)  # +937.5, measured from the last refill (4.0), not 5.0
    assert pacer.can_send()


# -- undoing the cut of a spurious loss (the session calls undo() for reordering) ------------
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
