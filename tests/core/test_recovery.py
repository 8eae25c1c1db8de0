"""Tests of acknowledgements, RTT estimation and loss detection (RFC 9002 §5, §6; ``recovery.py``).

Expected RTT values are worked out by hand from the RFC 9002 §5.3 formulas and written as
literals, so a change of coefficient or of the order of the ack-delay rules shows up.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seigr_stt.constants import (
    ACK_DELAY_EXPONENT,
    ACK_RANGES_MAX,
    GRANULARITY_S,
    INITIAL_RTT_S,
    MAX_ACK_DELAY_S,
    PACKET_THRESHOLD,
    PACKET_THRESHOLD_MAX,
)
from seigr_stt.core.recovery import AckTracker, Delivery, LossRecovery, RttEstimator, SentRecord
from tests.profiles import scaled

# -- RttEstimator ------------------------------------------------------------------------------


def test_constants_are_rfc9002_values() -> None:
    # The hand-computed expectations below rely on these.
    assert INITIAL_RTT_S == 0.1
    assert MAX_ACK_DELAY_S == 0.025
    assert GRANULARITY_S == 0.001
    assert ACK_DELAY_EXPONENT == 3


def test_rtt_before_any_sample() -> None:
    rtt = RttEstimator()
    assert not rtt.has_sample
    assert rtt.smoothed_s == 0.1
    assert rtt.rttvar_s == 0.05
    # 0.1 + max(4 * 0.05, 0.001) + 0.025
    assert rtt.pto_s() == pytest.approx(0.325)


def test_rtt_first_sample_ignores_ack_delay() -> None:
    rtt = RttEstimator()
    rtt.update(0.2, 0.01)
    assert rtt.has_sample
    assert rtt.latest_s == 0.2
    assert rtt.min_s == 0.2
    assert rtt.smoothed_s == 0.2
    assert rtt.rttvar_s == 0.1


def test_rtt_later_samples_follow_the_ewma() -> None:
    rtt = RttEstimator()
    rtt.update(0.2, 0.0)  # smoothed 0.2, rttvar 0.1, min 0.2
    rtt.update(0.3, 0.0)
    # rttvar = 0.75 * 0.1 + 0.25 * |0.2 - 0.3| = 0.1
    # smoothed = 0.875 * 0.2 + 0.125 * 0.3 = 0.2125
    assert rtt.latest_s == 0.3
    assert rtt.min_s == 0.2
    assert rtt.rttvar_s == pytest.approx(0.1)
    assert rtt.smoothed_s == pytest.approx(0.2125)
    rtt.update(0.3, 0.02)
    # 0.3 >= 0.2 + 0.02: adjusted = 0.28
    # rttvar = 0.75 * 0.1 + 0.25 * |0.2125 - 0.28| = 0.075 + 0.016875 = 0.091875
    # smoothed = 0.875 * 0.2125 + 0.125 * 0.28 = 0.1859375 + 0.035 = 0.2209375
    assert rtt.rttvar_s == pytest.approx(0.091875)
    assert rtt.smoothed_s == pytest.approx(0.2209375)
    assert rtt.latest_s == 0.3  # the raw sample, not the adjusted one


def test_rtt_min_tracks_raw_samples() -> None:
    rtt = RttEstimator()
    rtt.update(0.2, 0.0)
    rtt.update(0.15, 0.1)  # a lower sample lowers min_rtt, ack delay or not
    assert rtt.min_s == 0.15
    rtt.update(0.5, 0.0)
    assert rtt.min_s == 0.15


def test_rtt_ack_delay_not_subtracted_below_min_rtt() -> None:
    rtt = RttEstimator()
    rtt.update(0.2, 0.0)  # smoothed 0.2, rttvar 0.1, min 0.2
    rtt.update(0.21, 0.02)  # 0.21 < 0.2 + 0.02: adjusted stays 0.21
    # rttvar = 0.75 * 0.1 + 0.25 * 0.01 = 0.0775; smoothed = 0.175 + 0.02625 = 0.20125
    assert rtt.rttvar_s == pytest.approx(0.0775)
    assert rtt.smoothed_s == pytest.approx(0.20125)


def test_rtt_ack_delay_capped_at_max_ack_delay() -> None:
    rtt = RttEstimator()
    rtt.update(0.2, 0.0)  # smoothed 0.2, rttvar 0.1, min 0.2
    rtt.update(0.4, 0.1)  # delay capped to 0.025: adjusted = 0.375
    # rttvar = 0.075 + 0.25 * 0.175 = 0.11875; smoothed = 0.175 + 0.046875 = 0.221875
    assert rtt.rttvar_s == pytest.approx(0.11875)
    assert rtt.smoothed_s == pytest.approx(0.221875)


def test_rtt_ack_delay_is_capped_before_the_min_rtt_check() -> None:
    # RFC 9002 §5.3: ack_delay = min(ack_delay, max_ack_delay) first, then
    # "if latest_rtt >= min_rtt + ack_delay: adjusted_rtt = latest_rtt - ack_delay".
    # 0.25 - 0.1 < min_rtt, but 0.25 >= 0.2 + 0.025: the capped delay is subtracted.
    rtt = RttEstimator()
    rtt.update(0.2, 0.0)
    rtt.update(0.25, 0.1)  # adjusted = 0.225
    # rttvar = 0.075 + 0.25 * 0.025 = 0.08125; smoothed = 0.175 + 0.028125 = 0.203125
    assert rtt.rttvar_s == pytest.approx(0.08125)
    assert rtt.smoothed_s == pytest.approx(0.203125)


def test_rtt_negative_sample_clamped() -> None:
    rtt = RttEstimator()
    rtt.update(-1.0, 0.0)
    assert rtt.latest_s == 0.0
    assert rtt.smoothed_s == 0.0


def test_pto_formula() -> None:
    rtt = RttEstimator()
    rtt.update(0.2, 0.0)
    # 0.2 + max(4 * 0.1, 0.001) + 0.025
    assert rtt.pto_s() == pytest.approx(0.625)
    tiny = RttEstimator()
    tiny.update(0.0002, 0.0)  # rttvar 0.0001: 4 * rttvar < granularity
    assert tiny.pto_s() == pytest.approx(0.0002 + 0.001 + 0.025)


# -- AckTracker --------------------------------------------------------------------------------


def _tracker(*counters: int) -> AckTracker:
    tracker = AckTracker()
    for c in counters:
        tracker.on_received(c, False, 0.0)
    return tracker


def test_ack_in_order_is_one_range() -> None:
    assert _tracker(0, 1, 2, 3, 4).inclusive_ranges() == [(0, 4)]
    assert _tracker(7).inclusive_ranges() == [(7, 7)]


def test_ack_gaps_give_ranges_newest_first() -> None:
    assert _tracker(0, 1, 2, 5, 6, 9).inclusive_ranges() == [(9, 9), (5, 6), (0, 2)]


def test_ack_filling_gaps_merges() -> None:
    tracker = _tracker(0, 1, 2, 5, 6, 9)
    tracker.on_received(4, False, 0.0)  # extends [5, 6] down
    assert tracker.inclusive_ranges() == [(9, 9), (4, 6), (0, 2)]
    tracker.on_received(3, False, 0.0)  # joins [0, 2] and [3, 6]
    assert tracker.inclusive_ranges() == [(9, 9), (0, 6)]
    tracker.on_received(8, False, 0.0)  # extends the newest range down
    assert tracker.inclusive_ranges() == [(8, 9), (0, 6)]
    tracker.on_received(7, False, 0.0)
    assert tracker.inclusive_ranges() == [(0, 9)]


def test_ack_old_counters_inserted_in_place() -> None:
    tracker = _tracker(10, 5)
    assert tracker.inclusive_ranges() == [(10, 10), (5, 5)]
    tracker.on_received(6, False, 0.0)  # extends an older range up
    assert tracker.inclusive_ranges() == [(10, 10), (5, 6)]
    tracker.on_received(2, False, 0.0)  # older than everything
    assert tracker.inclusive_ranges() == [(10, 10), (5, 6), (2, 2)]
    tracker.on_received(8, False, 0.0)  # between two ranges
    assert tracker.inclusive_ranges() == [(10, 10), (8, 8), (5, 6), (2, 2)]


def test_ack_duplicates_change_nothing() -> None:
    tracker = _tracker(0, 1, 2, 5, 6, 9)
    before = tracker.inclusive_ranges()
    for c in (0, 1, 2, 5, 6, 9, 9, 0):
        tracker.on_received(c, False, 0.0)
    assert tracker.inclusive_ranges() == before


def test_ack_ranges_capped_newest_kept() -> None:
    n = ACK_RANGES_MAX + 5
    tracker = _tracker(*range(0, 2 * n, 2))
    assert len(tracker.ranges) == ACK_RANGES_MAX
    kept = tracker.inclusive_ranges()
    assert kept[0] == (2 * (n - 1), 2 * (n - 1))
    assert kept[-1] == (2 * (n - ACK_RANGES_MAX), 2 * (n - ACK_RANGES_MAX))
    tracker.on_received(1, False, 0.0)  # older than any kept range: dropped again
    assert len(tracker.ranges) == ACK_RANGES_MAX
    assert 1 not in tracker.ranges


def test_ack_single_eliciting_record_delayed() -> None:
    tracker = AckTracker()
    assert not tracker.ack_needed
    tracker.on_received(0, True, 1.0)
    assert tracker.ack_needed
    assert tracker.ack_due_at == pytest.approx(1.0 + MAX_ACK_DELAY_S)


def test_ack_second_eliciting_record_immediate() -> None:
    tracker = AckTracker()
    tracker.on_received(0, True, 1.0)
    tracker.on_received(1, True, 1.01)
    assert tracker.ack_due_at == 1.01


def test_ack_the_first_record_is_in_order_whatever_its_counter() -> None:
    """§14.2: with no counter received yet there is no gap; the first ack-eliciting record,
    counter 0 or not, is acknowledged within the delay, not at once (conformance C-6)."""
    for first in (0, 1, 7):
        tracker = AckTracker()
        tracker.on_received(first, True, 1.0)
        assert tracker.ack_due_at == pytest.approx(1.0 + MAX_ACK_DELAY_S)


def test_ack_non_eliciting_records_do_not_set_timer() -> None:
    tracker = AckTracker()
    tracker.on_received(0, False, 1.0)
    tracker.on_received(1, False, 1.0)
    tracker.on_received(5, False, 1.0)  # reordered, still not eliciting
    assert tracker.ack_due_at is None
    assert not tracker.ack_needed
    tracker.on_received(6, True, 2.0)
    assert tracker.ack_due_at == pytest.approx(2.0 + MAX_ACK_DELAY_S)
    tracker.on_received(7, False, 2.01)  # neither pushes back nor advances the deadline
    assert tracker.ack_due_at == pytest.approx(2.0 + MAX_ACK_DELAY_S)


def test_ack_reordering_immediate() -> None:
    gap = AckTracker()
    gap.on_received(0, False, 1.0)
    gap.on_received(2, True, 1.5)  # a gap: counter 1 is missing
    assert gap.ack_due_at == 1.5
    old = AckTracker()
    old.on_received(5, False, 1.0)
    old.on_received(3, True, 1.5)  # an older counter
    assert old.ack_due_at == 1.5


def test_ack_build_resets_and_encodes_delay() -> None:
    tracker = AckTracker()
    tracker.on_received(0, True, 0.0)
    tracker.on_received(1, True, 0.0)
    tracker.on_received(4, False, 0.0)
    largest, delay, ranges = tracker.build(0.0125)
    assert largest == 4
    assert delay == 1562  # 12_500 µs >> 3
    assert ranges == [(4, 4), (0, 1)]
    assert tracker.ack_due_at is None
    assert not tracker.ack_needed
    # The eliciting count was reset: one new eliciting record is delayed again, not immediate.
    tracker.on_received(5, True, 1.0)
    assert tracker.ack_due_at == pytest.approx(1.0 + MAX_ACK_DELAY_S)


def test_ack_delay_measured_from_largest_arrival() -> None:
    tracker = AckTracker()
    tracker.on_received(5, True, 1.0)
    tracker.on_received(3, True, 2.0)  # older: does not move the largest's arrival time
    _, delay, _ = tracker.build(3.0)
    assert delay == 2_000_000 >> 3
    tracker.on_received(6, True, 4.0)
    _, delay, _ = tracker.build(3.5)  # clock went backwards: no negative delay
    assert delay == 0


def _check_ranges(ranges: list[tuple[int, int]]) -> None:
    for low, high in ranges:
        assert low <= high
    for (low, _), (_, high) in itertools.pairwise(ranges):
        assert high + 1 < low  # newest first, disjoint, never adjacent


@settings(deadline=None)
@given(st.lists(st.integers(0, 60), max_size=120))
def test_ack_ranges_property(counters: list[int]) -> None:
    # At most 31 runs exist in 0..60, so the cap is never reached.
    tracker = AckTracker()
    for c in counters:
        tracker.on_received(c, False, 0.0)
        _check_ranges(tracker.inclusive_ranges())
    assert len(tracker.ranges) < ACK_RANGES_MAX
    covered = {c for low, high in tracker.inclusive_ranges() for c in range(low, high + 1)}
    assert covered == set(counters)


@settings(max_examples=scaled(0.5), deadline=None)
@given(st.permutations(range(120)), st.sets(st.integers(0, 119)), st.lists(st.integers(0, 119)))
def test_ack_ranges_property_with_cap(
    order: list[int], dropped: set[int], duplicates: list[int]
) -> None:
    tracker = AckTracker()
    received = [c for c in order if c not in dropped] + duplicates
    for c in received:
        tracker.on_received(c, False, 0.0)
        _check_ranges(tracker.inclusive_ranges())
        assert len(tracker.ranges) <= ACK_RANGES_MAX
    covered = {c for low, high in tracker.inclusive_ranges() for c in range(low, high + 1)}
    assert covered <= set(received)
    if received:
        assert tracker.largest == max(received)


# -- LossRecovery ------------------------------------------------------------------------------


def _rec(
    counter: int,
    t: float,
    size: int = 1000,
    eliciting: bool = True,
    in_flight: bool = True,
    frames: list[object] | None = None,
) -> SentRecord:
    deliveries: list[Delivery] = [(frame, _no_handler) for frame in frames or [f"f{counter}"]]
    return SentRecord(counter, t, size, eliciting, in_flight, deliveries)


def _no_handler(frame: object, acked: bool) -> None:
    """Recovery never calls the handlers itself: the session does, for what on_ack returns."""
    raise AssertionError("LossRecovery must not call delivery handlers")


def _counters(records: list[SentRecord]) -> list[int]:
    return sorted(r.counter for r in records)


def test_loss_ack_removes_records_and_bytes() -> None:
    lr = LossRecovery()
    for c in range(4):
        lr.on_sent(_rec(c, 0.0, size=100 + c))
    assert lr.bytes_in_flight == 100 + 101 + 102 + 103
    assert lr.has_in_flight
    acked, lost, persistent = lr.on_ack(3, 0.0, [(2, 3), (0, 0)], 0.05)
    assert _counters(acked) == [0, 2, 3]
    assert lost == []
    assert not persistent
    assert lr.bytes_in_flight == 101
    assert lr.largest_acked == 3
    # Acking again is a no-op.
    assert lr.on_ack(3, 0.0, [(2, 3), (0, 0)], 0.06) == ([], [], False)
    assert lr.bytes_in_flight == 101


def test_loss_records_not_in_flight_not_tracked() -> None:
    lr = LossRecovery()
    lr.on_sent(_rec(0, 0.0, eliciting=False, in_flight=False))
    assert lr.bytes_in_flight == 0
    assert not lr.has_in_flight
    assert lr.time_of_last_eliciting is None
    assert lr.get_timer() is None
    assert lr.on_ack(0, 0.0, [(0, 0)], 0.1) == ([], [], False)


def test_loss_non_eliciting_in_flight_arms_no_pto() -> None:
    lr = LossRecovery()
    lr.on_sent(_rec(0, 0.0, eliciting=False))
    assert lr.bytes_in_flight == 1000
    assert not lr.has_in_flight
    assert lr.get_timer() is None
    assert lr.on_timeout(100.0) == ([], False)


def test_loss_rtt_sampled_from_newly_acked_largest() -> None:
    lr = LossRecovery()
    lr.on_sent(_rec(0, 1.0))
    lr.on_sent(_rec(1, 1.1))
    lr.on_ack(1, 0.0, [(1, 1)], 1.3)
    assert lr.rtt.has_sample
    assert lr.rtt.latest_s == pytest.approx(0.2)
    # Largest (1) not newly acknowledged: no sample from record 0.
    lr.on_ack(1, 0.0, [(0, 1)], 2.0)
    assert lr.rtt.latest_s == pytest.approx(0.2)


def test_loss_rtt_not_sampled_when_largest_unknown() -> None:
    lr = LossRecovery()
    lr.on_sent(_rec(0, 1.0))
    lr.on_sent(_rec(1, 1.1, eliciting=False, in_flight=False))  # not tracked
    acked, _, _ = lr.on_ack(1, 0.0, [(0, 1)], 1.5)
    assert _counters(acked) == [0]
    assert not lr.rtt.has_sample


def test_loss_rtt_not_sampled_without_eliciting_records() -> None:
    lr = LossRecovery()
    lr.on_sent(_rec(0, 1.0, eliciting=False))
    lr.on_sent(_rec(1, 1.1, eliciting=False))
    acked, _, _ = lr.on_ack(1, 0.0, [(0, 1)], 1.5)
    assert _counters(acked) == [0, 1]
    assert not lr.rtt.has_sample


def test_loss_rtt_sampled_when_another_newly_acked_record_elicits() -> None:
    # RFC 9002 §5.1: the largest is newly acknowledged and at least one newly acknowledged
    # record was ack-eliciting; the sample is taken from the largest's send time.
    lr = LossRecovery()
    lr.on_sent(_rec(0, 1.0))
    lr.on_sent(_rec(1, 1.2, eliciting=False))
    lr.on_ack(1, 0.005, [(0, 1)], 1.5)
    assert lr.rtt.has_sample
    assert lr.rtt.latest_s == pytest.approx(0.3)


def test_loss_rtt_uses_ack_delay() -> None:
    lr = LossRecovery()
    lr.on_sent(_rec(0, 0.0))
    lr.on_ack(0, 0.0, [(0, 0)], 0.2)  # smoothed 0.2, rttvar 0.1, min 0.2
    lr.on_sent(_rec(1, 1.0))
    lr.on_ack(1, 0.02, [(1, 1)], 1.3)  # 0.3 - 0.02 = 0.28 adjusted
    assert lr.rtt.smoothed_s == pytest.approx(0.875 * 0.2 + 0.125 * 0.28)


def test_loss_packet_threshold() -> None:
    lr = LossRecovery()
    for c in range(5):
        lr.on_sent(_rec(c, 0.0))
    # Counter 3 acked: 0 is 3 below it (lost), 1 and 2 are not yet.
    acked, lost, _ = lr.on_ack(3, 0.0, [(3, 3)], 0.01)
    assert _counters(acked) == [3]
    assert _counters(lost) == [0]
    assert lr.bytes_in_flight == 3000
    assert lr.loss_time is not None  # 1 and 2 wait for the time threshold
    acked, lost, _ = lr.on_ack(4, 0.0, [(4, 4)], 0.02)
    assert _counters(lost) == [1]
    assert lr.bytes_in_flight == 1000


def test_loss_time_threshold_then_timeout() -> None:
    lr = LossRecovery()
    lr.on_sent(_rec(0, 0.0))
    lr.on_sent(_rec(1, 0.01))
    _, lost, _ = lr.on_ack(1, 0.0, [(1, 1)], 0.11)  # sample 0.1
    assert lost == []
    # delay = 9/8 * max(latest 0.1, smoothed 0.1) = 0.1125 after record 0's send time
    assert lr.loss_time == pytest.approx(0.1125)
    assert lr.get_timer() == lr.loss_time
    assert lr.on_timeout(0.11) == ([], False)
    assert lr.pto_count == 0
    deadline = lr.loss_time
    assert deadline is not None
    lost, probe = lr.on_timeout(deadline)
    assert _counters(lost) == [0]
    assert not probe
    assert lr.loss_time is None
    assert lr.bytes_in_flight == 0
    assert lr.get_timer() is None


def test_loss_time_threshold_declared_on_ack() -> None:
    lr = LossRecovery()
    lr.on_sent(_rec(0, 0.0))
    lr.on_sent(_rec(1, 0.5))
    # Sample 0.1 from record 1; record 0 was sent 0.6 s ago > 0.1125: lost at once.
    _, lost, _ = lr.on_ack(1, 0.0, [(1, 1)], 0.6)
    assert _counters(lost) == [0]
    assert lr.loss_time is None


def test_loss_time_uses_granularity_floor() -> None:
    lr = LossRecovery()
    lr.on_sent(_rec(0, 0.0))
    lr.on_sent(_rec(1, 0.0))
    lr.on_ack(1, 0.0, [(1, 1)], 0.0)  # a zero RTT sample
    assert lr.loss_time == pytest.approx(GRANULARITY_S)


def test_loss_pto_deadline_and_backoff() -> None:
    lr = LossRecovery()
    lr.on_sent(_rec(0, 1.0))
    lr.on_sent(_rec(1, 2.0, eliciting=False))  # not eliciting: does not move the PTO base
    pto = lr.rtt.pto_s()
    assert pto == pytest.approx(0.325)
    assert lr.time_of_last_eliciting == 1.0
    assert lr.get_timer() == pytest.approx(1.0 + pto)
    assert lr.on_timeout(1.0 + pto - 0.001) == ([], False)
    assert lr.pto_count == 0
    assert lr.on_timeout(1.0 + pto) == ([], True)
    assert lr.pto_count == 1
    assert lr.get_timer() == pytest.approx(1.0 + 2 * pto)
    assert lr.on_timeout(1.0 + 2 * pto) == ([], True)
    assert lr.get_timer() == pytest.approx(1.0 + 4 * pto)
    lr.pto_count = 30  # the backoff is capped at 2**10
    assert lr.get_timer() == pytest.approx(1.0 + 1024 * pto)
    # An ack resets the backoff.
    lr.on_sent(_rec(2, 3.0))
    lr.on_ack(2, 0.0, [(2, 2)], 3.1)
    assert lr.pto_count == 0


def test_the_backed_off_pto_is_capped_but_never_below_the_base() -> None:
    lr = LossRecovery()
    lr.on_sent(_rec(0, 1.0))
    pto = lr.rtt.pto_s()
    lr.max_pto_s = 2.5  # dead_peer_timeout_s / DEAD_PEER_PTO_DIVISOR with the defaults
    lr.pto_count = 2
    assert lr.get_timer() == pytest.approx(1.0 + 4 * pto)  # below the cap: RFC 9002's backoff
    lr.pto_count = 5
    assert lr.get_timer() == pytest.approx(1.0 + 2.5)  # 32 x 0.325 s, capped
    lr.max_pto_s = pto / 2  # a cap below one base PTO does not shorten the base PTO
    assert lr.get_timer() == pytest.approx(1.0 + pto)


def test_loss_ack_for_unsent_counters_ignored() -> None:
    lr = LossRecovery()
    for c in range(6):
        lr.on_sent(_rec(c, 0.0))
    assert lr.on_ack(1000, 0.0, [(900, 1000)], 0.01) == ([], [], False)
    assert lr.largest_acked is None
    assert lr.bytes_in_flight == 6000
    assert not lr.rtt.has_sample


def test_loss_future_largest_does_not_declare_losses() -> None:
    # A peer naming a counter from the future next to a real one must not make us declare the
    # records in between lost, now or for records sent later.
    lr = LossRecovery()
    for c in range(6):
        lr.on_sent(_rec(c, 0.0))
    acked, lost, _ = lr.on_ack(1000, 0.0, [(1000, 1000), (0, 0)], 0.01)
    assert _counters(acked) == [0]
    assert lost == []
    assert lr.bytes_in_flight == 5000
    assert lr.largest_acked is not None
    assert lr.largest_acked < 6
    lr.on_sent(_rec(6, 0.02))
    _, lost, _ = lr.on_ack(1, 0.0, [(1, 1)], 0.03)
    assert lost == []


def test_loss_huge_ack_range() -> None:
    lr = LossRecovery()
    for c in range(3):
        lr.on_sent(_rec(c, 0.0))
    acked, _, _ = lr.on_ack(2, 0.0, [(0, 10**12)], 0.1)
    assert _counters(acked) == [0, 1, 2]
    assert lr.bytes_in_flight == 0


def test_loss_old_ack_does_not_lower_largest() -> None:
    lr = LossRecovery()
    for c in range(3):
        lr.on_sent(_rec(c, 0.0))
    lr.on_ack(2, 0.0, [(2, 2)], 0.01)
    lr.on_ack(1, 0.0, [(1, 1)], 0.02)
    assert lr.largest_acked == 2


def _with_sample() -> LossRecovery:
    lr = LossRecovery()
    lr.on_sent(_rec(0, 0.0))
    lr.on_ack(0, 0.0, [(0, 0)], 0.1)  # smoothed 0.1, rttvar 0.05
    return lr


def test_loss_persistent_congestion() -> None:
    lr = _with_sample()
    lr.on_sent(_rec(1, 1.0))
    lr.on_sent(_rec(2, 2.5))
    for c in (3, 4, 5):
        lr.on_sent(_rec(c, 2.6))
    _, lost, persistent = lr.on_ack(5, 0.0, [(5, 5)], 2.7)
    # Second sample 0.1: rttvar 0.0375, PTO = 0.1 + 0.15 + 0.025 = 0.275; 3 PTO = 0.825 < 1.5.
    assert lr.rtt.pto_s() == pytest.approx(0.275)
    assert _counters(lost) == [1, 2]
    assert persistent


def test_loss_no_persistent_congestion_when_span_short() -> None:
    lr = _with_sample()
    lr.on_sent(_rec(1, 2.0))
    lr.on_sent(_rec(2, 2.5))  # span 0.5 < 0.825
    for c in (3, 4, 5):
        lr.on_sent(_rec(c, 2.6))
    _, lost, persistent = lr.on_ack(5, 0.0, [(5, 5)], 2.7)
    assert _counters(lost) == [1, 2]
    assert not persistent


def test_loss_persistent_congestion_counts_only_eliciting() -> None:
    lr = _with_sample()
    lr.on_sent(_rec(1, 1.0, eliciting=False))
    lr.on_sent(_rec(2, 2.5))
    for c in (3, 4, 5):
        lr.on_sent(_rec(c, 2.6))
    _, lost, persistent = lr.on_ack(5, 0.0, [(5, 5)], 2.7)
    assert _counters(lost) == [1, 2]
    assert not persistent


def test_loss_persistent_congestion_needs_rtt_sample() -> None:
    lr = LossRecovery()
    lr.on_sent(_rec(1, 0.0))
    lr.on_sent(_rec(2, 5.0))
    lr.on_sent(_rec(5, 5.0, eliciting=False))
    _, lost, persistent = lr.on_ack(5, 0.0, [(5, 5)], 5.1)
    assert not lr.rtt.has_sample
    assert _counters(lost) == [1, 2]
    assert not persistent


def test_loss_forget_all() -> None:
    lr = LossRecovery()
    lr.on_sent(_rec(0, 0.0))
    lr.on_sent(_rec(1, 0.0))
    lr.on_sent(_rec(2, 0.0))
    lr.on_ack(2, 0.0, [(2, 2)], 0.01)
    assert lr.loss_time is not None
    records = lr.forget_all()
    assert _counters(records) == [0, 1]
    assert lr.bytes_in_flight == 0
    assert lr.loss_time is None
    assert not lr.has_in_flight
    assert lr.get_timer() is None
    assert lr.on_ack(1, 0.0, [(0, 1)], 0.02) == ([], [], False)


# -- adapting to reordering: spurious losses raise the packet threshold ---------------------
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
