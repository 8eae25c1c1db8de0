"""Path-MTU probing for one session, in the manner of RFC 8899 (``docs/protocol.md`` §12.1).

Records start at the size every path of the transport carries (``base``). While bulk data waits,
the session sends a *probe*: a PING padded to the next size of the ladder
(:data:`~seigr_stt.constants.PMTU_PROBE_SIZES` up to the configured ceiling), sent with Don't
Fragment. An acknowledged probe raises the record size; :data:`PMTU_MAX_PROBES` lost probes at
one size stop probing (a lost probe is not a congestion signal). When records of the probed size
stop arriving (``PMTU_BLACK_HOLE_PTOS`` probe timeouts in a row), records fall back to the base
size and probing resumes after a pause. Nothing here reads a clock.
"""

from __future__ import annotations

import functools

from seigr_stt.constants import (
    PMTU_BLACK_HOLE_PTOS,
    PMTU_MAX_PROBES,
    PMTU_PROBE_AFTER_RECORDS,
    PMTU_PROBE_SIZES,
    PMTU_REPROBE_AFTER_S,
)

__all__ = ["PathMtuProber"]


@functools.lru_cache(maxsize=64)
def _ladder(base: int, probe_max: int) -> tuple[int, ...]:
    """The probe sizes above ``base`` up to ``probe_max``, smallest first."""
    return tuple(s for s in PMTU_PROBE_SIZES if base < s <= probe_max)


class PathMtuProber:
    """The record size of one session and its probes. ``record_size`` is the size records use
    now; :meth:`probe_size` says when to probe and at what size."""

    __slots__ = ("_failures", "_next", "_resume_at", "_sizes", "base", "probe_counter", "size")

    def __init__(self, base: int, probe_max: int) -> None:
        self.base = base  # what every path carries; probes go above
        self.size = base
        # The sizes to try in turn (one tuple shared by every session of a link) and the index
        # of the next: a per-session list cost ~190 bytes (docs/performance.md, memory).
        self._sizes = _ladder(base, probe_max)
        self._next = 0
        self.probe_counter: int | None = None  # the record counter of the probe in flight
        self._failures = 0  # consecutive lost probes at the current size
        self._resume_at = 0.0

    def __repr__(self) -> str:
        return f"PathMtuProber(size={self.size}, next={list(self._sizes[self._next :][:1])})"

    def probe_size(self, send_buffered: int, now: float) -> int | None:
        """The size to pad a probe to now, or None. Probes go out only when bulk data waits:
        larger records pay off there, and idle or chatty sessions send no padding at all."""
        if (
            self._next < len(self._sizes)
            and self.probe_counter is None
            and send_buffered > PMTU_PROBE_AFTER_RECORDS * self.size
            and now >= self._resume_at
        ):
            return self._sizes[self._next]
        return None

    def on_probe_sent(self, counter: int) -> None:
        """The probe went out as record ``counter``."""
        self.probe_counter = counter

    def on_acked(self, counter: int, size: int) -> bool:
        """Record ``counter`` of ``size`` bytes was acknowledged; returns True if it was the
        probe (then :attr:`size` may have grown: the path carried it)."""
        if counter != self.probe_counter:
            return False
        self.probe_counter = None
        self._failures = 0
        if self._next < len(self._sizes):
            self._next += 1
        self.size = max(self.size, size)
        return True

    def on_lost(self, counter: int) -> bool:
        """Record ``counter`` was declared lost; returns True if it was the probe (which is not
        a congestion signal). After ``PMTU_MAX_PROBES`` lost probes at one size, probing stops."""
        if counter != self.probe_counter:
            return False
        self.probe_counter = None
        self._failures += 1
        if self._failures >= PMTU_MAX_PROBES:
            self._next = len(self._sizes)
        return True

    def on_probe_timeout(self, pto_count: int, now: float) -> bool:
        """A probe timeout fired (the ``pto_count``-th in a row); returns True if records fell
        back to the base size (a route change, a black hole, or heavy loss)."""
        if pto_count < PMTU_BLACK_HOLE_PTOS or self.size <= self.base:
            return False
        # Fall back to the size every path carries and probe again after a pause; a real black
        # hole then fails its probes and probing stops.
        self.size = self.base
        self._next = 0
        self.probe_counter = None
        self._failures = 0
        self._resume_at = now + PMTU_REPROBE_AFTER_S
        return True
