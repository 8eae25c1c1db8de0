"""Acknowledgements, RTT estimation and loss detection in the manner of RFC 9002 (§14).

The record counter is the packet number: unique per direction, increasing, never reused. The
receiver acknowledges counters in ranges (:class:`AckTracker`); the sender keeps what each
ack-eliciting record carried (:class:`LossRecovery`), declares a record lost by packet threshold
(3) or time threshold (9/8 RTT), arms a probe timeout otherwise, and hands lost frames back to
the session for retransmission. Nothing here reads a clock.

Over a reliable transport (``reliable``, §14.8) the receiver acknowledges at most
``RELIABLE_ACK_INTERVAL_S`` after the first record it owes an ACK for (credit frames carry one
sooner), and the sender keeps its sent records only so that a session moving to an unreliable
path can resend what was never acknowledged: no record is declared lost and no timer is armed
until ``reliable`` turns False.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from seigr_stt.constants import (
    ACK_DELAY_EXPONENT,
    ACK_ELICITING_THRESHOLD,
    ACK_RANGES_MAX,
    GRANULARITY_S,
    INITIAL_RTT_S,
    LOST_REMEMBERED,
    MAX_ACK_DELAY_S,
    PACKET_THRESHOLD,
    PACKET_THRESHOLD_MAX,
    PERSISTENT_CONGESTION_THRESHOLD,
    RELIABLE_ACK_INTERVAL_S,
    TIME_THRESHOLD,
)
from seigr_stt.core.rangeset import RangeSet

__all__ = ["AckTracker", "Delivery", "LossRecovery", "RttEstimator", "SentRecord"]


class RttEstimator:
    """RFC 9002 §5: latest, smoothed and variance of the round-trip time, and the minimum."""

    __slots__ = ("has_sample", "latest_s", "min_s", "rttvar_s", "smoothed_s")

    def __init__(self) -> None:
        self.has_sample = False
        self.latest_s = 0.0
        self.min_s = 0.0
        self.smoothed_s = INITIAL_RTT_S
        self.rttvar_s = INITIAL_RTT_S / 2

    def update(self, sample_s: float, ack_delay_s: float) -> None:
        """Take one RTT sample (from the largest newly acknowledged ack-eliciting record)."""
        sample_s = max(sample_s, 0.0)
        self.latest_s = sample_s
        if not self.has_sample:
            self.has_sample = True
            self.min_s = sample_s
            self.smoothed_s = sample_s
            self.rttvar_s = sample_s / 2
            return
        self.min_s = min(self.min_s, sample_s)
        ack_delay_s = min(ack_delay_s, MAX_ACK_DELAY_S)
        adjusted = sample_s
        if sample_s - ack_delay_s >= self.min_s:
            adjusted = sample_s - ack_delay_s
        self.rttvar_s = 0.75 * self.rttvar_s + 0.25 * abs(self.smoothed_s - adjusted)
        self.smoothed_s = 0.875 * self.smoothed_s + 0.125 * adjusted

    def pto_s(self) -> float:
        """The probe timeout before backoff (RFC 9002 §6.2.1)."""
        return self.smoothed_s + max(4 * self.rttvar_s, GRANULARITY_S) + MAX_ACK_DELAY_S


class AckTracker:
    """Which counters we received, and when an ACK is owed (receiver side).

    The counters are a :class:`RangeSet`; at most :data:`ACK_RANGES_MAX` ranges are kept (the
    oldest go first: they were acknowledged many times already).
    """

    __slots__ = (
        "_eliciting_unacked",
        "_largest",
        "_largest_time",
        "ack_due_at",
        "ranges",
        "reliable",
    )

    def __init__(self) -> None:
        self.ranges = RangeSet()
        self._largest: int | None = None  # the top of ``ranges`` (dropping old ranges keeps it)
        self._largest_time = 0.0
        self._eliciting_unacked = 0
        self.ack_due_at: float | None = None
        #: The records arrive over a reliable transport: no immediate ACK, at most one per
        #: ``RELIABLE_ACK_INTERVAL_S`` of its own (§14.8).
        self.reliable = False

    @property
    def largest(self) -> int | None:
        """The largest counter received, or None."""
        return self._largest

    def on_received(self, counter: int, ack_eliciting: bool, now: float) -> None:
        """Record an authenticated record's counter."""
        ranges = self.ranges
        largest = self._largest
        out_of_order = largest is not None and counter != largest + 1
        if largest is None or counter > largest:
            self._largest_time = now
            self._largest = counter
        ranges.add(counter, counter + 1)
        while len(ranges) > ACK_RANGES_MAX:
            ranges.shift()
        if ack_eliciting:
            self._eliciting_unacked += 1
            if self.reliable:
                if self.ack_due_at is None:
                    self.ack_due_at = now + RELIABLE_ACK_INTERVAL_S
            elif out_of_order or self._eliciting_unacked >= ACK_ELICITING_THRESHOLD:
                self.ack_due_at = now
            elif self.ack_due_at is None:
                self.ack_due_at = now + MAX_ACK_DELAY_S

    def expedite(self, due_at: float) -> None:
        """The record just recorded asks for an ACK by ``due_at`` (a PING with a token: now,
        with its PONG), earlier than the delayed ACK of other data. Call after
        :meth:`on_received` of that record."""
        if self.ack_due_at is None or due_at < self.ack_due_at:
            self.ack_due_at = due_at

    @property
    def ack_needed(self) -> bool:
        """Whether an ACK is owed (now or at ``ack_due_at``)."""
        return self.ack_due_at is not None

    def inclusive_ranges(self) -> list[tuple[int, int]]:
        """The counters received as ``(low, high)`` inclusive pairs, newest first (the ACK
        frame's order, §14.1)."""
        return [(start, stop - 1) for start, stop in reversed(self.ranges)]

    def build(self, now: float) -> tuple[int, int, list[tuple[int, int]]]:
        """Return ``(largest, ack_delay_encoded, ranges)`` for an ACK frame and reset the timer.

        ``ranges`` are ``(low, high)`` inclusive, newest first, as the ACK frame carries them.
        """
        self.ack_due_at = None
        self._eliciting_unacked = 0
        delay_us = max(int((now - self._largest_time) * 1_000_000), 0)
        ranges = self.inclusive_ranges()
        return ranges[0][1], delay_us >> ACK_DELAY_EXPONENT, ranges


#: A frame that must survive loss, with the handler told ``acked`` True (the record carrying it
#: was acknowledged) or False (declared lost) exactly once.
Delivery = tuple[Any, Callable[[Any, bool], None]]


@dataclass(slots=True)
class SentRecord:
    """What one sent record carried, kept until it is acknowledged or declared lost."""

    counter: int
    time_sent: float
    size: int
    ack_eliciting: bool
    in_flight: bool
    frames: list[Delivery] = field(default_factory=list)


class LossRecovery:
    """Sender side: sent records, bytes in flight, loss detection and the probe timeout."""

    __slots__ = (
        "_counters",
        "_eliciting_in_flight",
        "_lost_recently",
        "_sent",
        "bytes_in_flight",
        "largest_acked",
        "loss_time",
        "max_pto_s",
        "packet_threshold",
        "pto_count",
        "reliable",
        "rtt",
        "spurious_losses",
        "time_of_last_eliciting",
    )

    def __init__(self) -> None:
        # A plain dict keeps insertion order, which is ascending counter order (on_sent refuses
        # any other), and pops faster than an OrderedDict.
        self._sent: dict[int, SentRecord] = {}
        self._counters: list[int] = []  # the counters of _sent, ascending (bisect)
        self.bytes_in_flight = 0
        self._eliciting_in_flight = 0
        # counter -> largest acked, oldest first (a dict keeps insertion order; an OrderedDict
        # costs twice as much per idle session). None until the first loss: most sessions never
        # lose a record (docs/performance.md, memory per idle session).
        self._lost_recently: dict[int, int] | None = None
        self.packet_threshold = PACKET_THRESHOLD
        self.spurious_losses = 0
        self.largest_acked: int | None = None
        self.loss_time: float | None = None
        self.pto_count = 0
        #: The backed-off probe timeout never exceeds this (nor falls below the base PTO for it);
        #: None: RFC 9002's backoff alone.
        self.max_pto_s: float | None = None
        self.rtt = RttEstimator()
        self.time_of_last_eliciting: float | None = None
        #: The path is reliable (§14.8): records are kept until acknowledged, never lost.
        self.reliable = False

    def set_reliable(self, reliable: bool) -> None:
        """The session's path is (or is no longer) a reliable transport. Turning it off resumes
        loss detection over every record still unacknowledged: what a dead reliable link never
        delivered is declared lost (by the probe timeout and the thresholds) and resent."""
        self.reliable = reliable
        self.loss_time = None
        self.pto_count = 0

    @property
    def has_in_flight(self) -> bool:
        """Whether an ack-eliciting record awaits acknowledgement."""
        return self._eliciting_in_flight > 0

    def _forget(self, record: SentRecord) -> None:
        self.bytes_in_flight -= record.size
        if record.ack_eliciting:
            self._eliciting_in_flight -= 1

    def on_sent(self, record: SentRecord) -> None:
        """Track a sent record until it is acknowledged or declared lost."""
        if record.in_flight:
            if self._counters and record.counter <= self._counters[-1]:
                raise ValueError("records are sent with increasing counters")
            self._sent[record.counter] = record
            self._counters.append(record.counter)
            self.bytes_in_flight += record.size
            if record.ack_eliciting:
                self._eliciting_in_flight += 1
            if record.ack_eliciting:
                self.time_of_last_eliciting = record.time_sent

    def on_ack(
        self, largest: int, ack_delay_s: float, ranges: list[tuple[int, int]], now: float
    ) -> tuple[list[SentRecord], list[SentRecord], bool]:
        """Process an ACK; returns ``(newly acked, lost, persistent congestion)``.

        Counters we never sent (or already forgot) are ignored, so a peer cannot make us
        "acknowledge" data it never received by naming counters from the future.
        """
        # Each range finds the records in flight it covers by bisection: the cost is
        # O(ranges x log(in flight)) plus the records acknowledged, whatever the ranges' span or
        # the holes between them (a peer cannot make one ACK walk every record in flight).
        ordered = sorted(ranges)
        counters = self._counters
        pop = self._sent.pop
        acked: list[SentRecord] = []
        for low, high in reversed(ordered):  # from the top: deleting keeps lower indexes valid
            start = bisect_left(counters, low)
            stop = bisect_right(counters, high)
            if start < stop:
                acked.extend(map(pop, counters[start:stop]))
                del counters[start:stop]
        if self._lost_recently:
            self._detect_spurious(ordered, self._lost_recently)
        if not acked:
            return [], [], False
        # One pass: bytes and ack-eliciting records leaving flight, and the newest record.
        newest = None
        size = eliciting = 0
        for record in acked:
            size += record.size
            if record.ack_eliciting:
                eliciting += 1
            if newest is None or record.counter > newest.counter:
                newest = record
        assert newest is not None
        self.bytes_in_flight -= size
        self._eliciting_in_flight -= eliciting
        # The newest record really acknowledged, not ``largest``: a counter we never sent must
        # not make every record below it look lost (packet threshold), now or later.
        if self.largest_acked is None or newest.counter > self.largest_acked:
            self.largest_acked = newest.counter
        if newest.counter == largest and eliciting:
            self.rtt.update(now - newest.time_sent, ack_delay_s)
        self.pto_count = 0
        if self.reliable:
            return acked, [], False  # nothing is lost on a reliable path
        lost, persistent = self._detect_lost(now)
        return acked, lost, persistent

    def _detect_lost(self, now: float) -> tuple[list[SentRecord], bool]:
        self.loss_time = None
        if self.largest_acked is None:
            return [], False
        rtt = self.rtt
        delay = max(TIME_THRESHOLD * max(rtt.latest_s, rtt.smoothed_s), GRANULARITY_S)
        lost: list[SentRecord] = []
        for counter, record in self._sent.items():  # ascending; stop at the largest acked
            if counter > self.largest_acked:
                break
            # ``time_sent + delay <= now``, not ``time_sent <= now - delay``: the deadline armed
            # below is ``time_sent + delay``, and the two roundings can differ, which would leave
            # the timer due at ``now`` with nothing declared lost (a timer that never advances).
            candidate = record.time_sent + delay
            if candidate <= now or self.largest_acked >= counter + self.packet_threshold:
                lost.append(record)
            elif self.loss_time is None or candidate < self.loss_time:
                self.loss_time = candidate
        if not lost:
            return lost, False
        counters = self._counters
        if counters[len(lost) - 1] == lost[-1].counter:
            del counters[: len(lost)]  # the usual case: the oldest records in flight
        else:  # pragma: no cover - both thresholds grow with the counter, so lost is a prefix
            for record in lost:
                del counters[bisect_left(counters, record.counter)]
        lost_recently = self._lost_recently
        if lost_recently is None:
            lost_recently = self._lost_recently = {}
        for record in lost:
            del self._sent[record.counter]
            self._forget(record)
            lost_recently[record.counter] = self.largest_acked
        while len(lost_recently) > LOST_REMEMBERED:
            del lost_recently[next(iter(lost_recently))]
        persistent = False
        eliciting = [r for r in lost if r.ack_eliciting]
        if len(eliciting) >= 2 and self.rtt.has_sample:
            span = eliciting[-1].time_sent - eliciting[0].time_sent
            persistent = span > self.rtt.pto_s() * PERSISTENT_CONGESTION_THRESHOLD
        return lost, persistent

    def _detect_spurious(
        self, ordered: list[tuple[int, int]], lost_recently: dict[int, int]
    ) -> None:
        """A record declared lost was acknowledged after all: the path reorders. Raise the packet
        threshold to the reordering distance seen, as RFC 9002 §6.1.1 allows, so reordering
        alone stops triggering retransmissions and window reductions."""
        acked = RangeSet((low, high + 1) for low, high in ordered)
        for counter in [c for c in lost_recently if c in acked]:
            largest_then = lost_recently.pop(counter)
            self.spurious_losses += 1
            distance = largest_then - counter + 1
            self.packet_threshold = min(max(self.packet_threshold, distance), PACKET_THRESHOLD_MAX)

    def get_timer(self) -> float | None:
        """The loss-detection deadline: time-threshold loss, else the probe timeout (none
        on a reliable path)."""
        if self.reliable:
            return None
        if self.loss_time is not None:
            return self.loss_time
        if self.time_of_last_eliciting is None or not self.has_in_flight:
            return None
        base = self.rtt.pto_s()
        pto = base * (1 << min(self.pto_count, 10))
        cap = self.max_pto_s
        if cap is not None and pto > cap:
            pto = max(cap, base)
        return self.time_of_last_eliciting + pto

    def on_timeout(self, now: float) -> tuple[list[SentRecord], bool]:
        """Handle the loss-detection timer; returns ``(lost, probe_needed)``."""
        if self.reliable:
            return [], False
        if self.loss_time is not None and now >= self.loss_time:
            lost, _ = self._detect_lost(now)
            return lost, False
        deadline = self.get_timer()
        if deadline is None or now < deadline:
            return [], False
        self.pto_count += 1
        return [], True

    def forget_all(self) -> list[SentRecord]:
        """Drop every record in flight (session closing): returns them."""
        records = list(self._sent.values())
        self._sent.clear()
        self._counters.clear()
        self.bytes_in_flight = 0
        self._eliciting_in_flight = 0
        self.loss_time = None
        return records
