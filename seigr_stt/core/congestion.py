"""Congestion control: NewReno as RFC 9002 §7 describes it, with a token-bucket pacer (§15).

The window counts bytes of ack-eliciting records in flight. Slow start doubles it per round trip,
congestion avoidance adds one datagram per window acknowledged, a loss halves it once per round
trip (a recovery period starts at the loss), persistent congestion collapses it to the minimum.
The pacer spreads a window over the smoothed RTT (with gain 1.25) so a burst does not overflow
the path's or the receiver's buffers. Nothing here reads a clock.
"""

from __future__ import annotations

from seigr_stt.constants import (
    INITIAL_WINDOW_PACKETS,
    LOSS_REDUCTION_FACTOR,
    MINIMUM_WINDOW_PACKETS,
    PACING_BURST_PACKETS,
    PACING_GAIN,
)

__all__ = ["NewReno", "Pacer"]


class NewReno:
    """The congestion window of one session, in bytes."""

    __slots__ = (
        "_acked_in_avoidance",
        "_before_loss",
        "cwnd",
        "max_datagram",
        "recovery_start",
        "ssthresh",
    )

    def __init__(self, max_datagram: int) -> None:
        self.max_datagram = max_datagram
        self.cwnd = INITIAL_WINDOW_PACKETS * max_datagram
        self.ssthresh: float = float("inf")
        self._before_loss: tuple[int, float] | None = None
        self.recovery_start: float | None = None
        self._acked_in_avoidance = 0

    @property
    def minimum(self) -> int:
        """The smallest window: ``MINIMUM_WINDOW_PACKETS`` records."""
        return MINIMUM_WINDOW_PACKETS * self.max_datagram

    def can_send(self, bytes_in_flight: int) -> bool:
        """Whether a record may go out with ``bytes_in_flight`` in flight."""
        return bytes_in_flight < self.cwnd

    def on_acked(self, size: int, time_sent: float, app_limited: bool) -> None:
        """One record of ``size`` bytes sent at ``time_sent`` was acknowledged."""
        if self.recovery_start is not None and time_sent <= self.recovery_start:
            return
        if app_limited:
            return
        if self.cwnd < self.ssthresh:
            self.cwnd += size
            return
        self._acked_in_avoidance += size
        if self._acked_in_avoidance >= self.cwnd:
            self._acked_in_avoidance -= self.cwnd
            self.cwnd += self.max_datagram

    def on_lost(self, largest_lost_sent: float, now: float, persistent: bool) -> None:
        """Records were declared lost; the newest of them was sent at ``largest_lost_sent``."""
        if self.recovery_start is None or largest_lost_sent > self.recovery_start:
            self._before_loss = (self.cwnd, self.ssthresh)
            self.recovery_start = now
            self.cwnd = max(int(self.cwnd * LOSS_REDUCTION_FACTOR), self.minimum)
            self.ssthresh = self.cwnd
            self._acked_in_avoidance = 0
        if persistent:
            # RFC 9002 B.8: after the congestion event, collapse to the minimum and leave
            # recovery, so the window slow-starts back up to the halved ssthresh.
            self.cwnd = self.minimum
            self.recovery_start = None
            self._before_loss = None

    def undo(self) -> None:
        """The last reduction came from a loss that was not one (reordering, RFC 9002 §6.1.1
        and RFC 8985's spirit): restore the window it cut. No-op after persistent congestion
        or when no reduction is on record."""
        if self._before_loss is not None:
            cwnd, ssthresh = self._before_loss
            self.cwnd = max(self.cwnd, cwnd)
            self.ssthresh = ssthresh
            self._before_loss = None


class Pacer:
    """A token bucket refilled at ``PACING_GAIN * cwnd / srtt`` bytes per second."""

    __slots__ = ("_last", "_tokens", "burst")

    def __init__(self, max_datagram: int) -> None:
        self.burst = PACING_BURST_PACKETS * max_datagram
        self._tokens = float(self.burst)
        self._last: float | None = None

    def _rate(self, cwnd: int, srtt_s: float) -> float:
        return PACING_GAIN * cwnd / max(srtt_s, 1e-4)

    def refill(self, now: float, cwnd: int, srtt_s: float) -> None:
        """Add the tokens earned since the last refill (at most a burst)."""
        if self._last is not None:
            elapsed = max(now - self._last, 0.0)
            self._tokens = min(self.burst, self._tokens + elapsed * self._rate(cwnd, srtt_s))
        self._last = now

    def can_send(self) -> bool:
        """Whether the bucket holds a token."""
        return self._tokens > 0

    def on_sent(self, size: int) -> None:
        """A record of ``size`` bytes went out: spend its tokens."""
        self._tokens -= size

    def next_send_at(self, now: float, cwnd: int, srtt_s: float) -> float | None:
        """When a token will be available again, or None if one is available now."""
        if self._tokens > 0:
            return None
        # The tokens are counted as of the last refill: a deadline from an earlier ``now`` (the
        # time of the last send, say) would be due before the bucket refills, and spin the timer.
        start = now if self._last is None else max(now, self._last)
        return start + (-self._tokens + 1) / self._rate(cwnd, srtt_s)
