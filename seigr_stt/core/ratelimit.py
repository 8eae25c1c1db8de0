"""Token buckets: how many handshakes a source, or all unproven sources together, may cost
per second (§10).

Sans-I/O like the rest of the core: time comes in as ``now``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

__all__ = ["TokenBucket", "TokenBuckets"]


def _refill(held: float, last: float, now: float, rate: float, burst: int) -> tuple[float, float]:
    """Tokens held at ``now`` (and the new stamp). A clock that steps back refills nothing and
    keeps the later stamp."""
    stamp = max(now, last)
    return min(float(burst), held + (stamp - last) * rate), stamp


class TokenBucket:
    """One token bucket: ``rate`` tokens a second, at most ``burst`` held; starts full."""

    __slots__ = ("_stamp", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: int, now: float = 0.0) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._stamp = now

    def __repr__(self) -> str:
        return f"TokenBucket(rate={self.rate}, burst={self.burst}, tokens={self._tokens:.1f})"

    def available(self, now: float) -> bool:
        """Whether a token could be spent at ``now`` (nothing is spent)."""
        self._tokens, self._stamp = _refill(self._tokens, self._stamp, now, self.rate, self.burst)
        return self._tokens >= 1.0

    def take(self, now: float) -> bool:
        """Spend one token; False (nothing spent) when the bucket is empty."""
        if not self.available(now):
            return False
        self._tokens -= 1.0
        return True


class TokenBuckets:
    """Per-source token buckets: ``rate`` tokens a second, at most ``burst`` held.

    The table keeps the ``max_sources`` most recently seen sources (LRU); a source forgotten
    comes back with a full bucket, so the table bounds memory, not the total rate of a sender
    with more sources than that. A source's bucket starts full.
    """

    __slots__ = ("_buckets", "burst", "max_sources", "rate")

    def __init__(self, rate: float, burst: int, max_sources: int) -> None:
        self.rate = rate
        self.burst = burst
        self.max_sources = max_sources
        self._buckets: OrderedDict[Hashable, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, source: Hashable, now: float) -> bool:
        """Spend one token of ``source``'s bucket; False (nothing spent) when it is empty."""
        entry = self._buckets.get(source)
        if entry is None:
            tokens, stamp = float(self.burst), now
            if len(self._buckets) >= self.max_sources:
                self._buckets.popitem(last=False)
        else:
            tokens, stamp = _refill(*entry, now, self.rate, self.burst)
            self._buckets.move_to_end(source)
        allowed = tokens >= 1.0
        self._buckets[source] = (tokens - 1.0 if allowed else tokens, stamp)
        return allowed
