"""Per-source token buckets: how many handshakes one source may cost per second (§10).

Sans-I/O like the rest of the core: time comes in as ``now``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

__all__ = ["TokenBuckets"]


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
            held, last = entry
            # A clock that steps back refills nothing (and keeps the later stamp).
            stamp = max(now, last)
            tokens = min(float(self.burst), held + (stamp - last) * self.rate)
            self._buckets.move_to_end(source)
        allowed = tokens >= 1.0
        self._buckets[source] = (tokens - 1.0 if allowed else tokens, stamp)
        return allowed
