"""A set of integers stored as sorted, disjoint half-open ranges ``[start, stop)``.

One structure serves every place the protocol tracks offsets or counters: the records we received
(ACK ranges, §14.1), the bytes of a stream still to send and those acknowledged (§16), out-of-order
stream data waiting for reassembly, and the counters named by an ACK when checking for a spurious
loss. Ranges are kept in two parallel lists of starts and stops, searched with :mod:`bisect`:
finding where a value or range belongs is O(log n); adding or removing a range touches only the
ranges it overlaps (a list insertion or deletion moves pointers in C, never re-scans in Python).
Adjacent ranges are merged, so ``[0, 3)`` and ``[3, 5)`` are one range ``[0, 5)``.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator

__all__ = ["RangeSet"]


class RangeSet:
    """Sorted, disjoint, non-adjacent half-open ranges of ints.

    ``len()`` is the number of ranges (not of integers: see :meth:`total`); iteration yields
    ``(start, stop)`` pairs in ascending order.
    """

    __slots__ = ("_starts", "_stops")

    def __init__(self, ranges: Iterable[tuple[int, int]] = ()) -> None:
        self._starts: list[int] = []
        self._stops: list[int] = []
        for start, stop in ranges:
            self.add(start, stop)

    def __repr__(self) -> str:
        inner = ", ".join(f"[{a}, {b})" for a, b in self)
        return f"RangeSet({inner})"

    def __len__(self) -> int:
        return len(self._starts)

    def __bool__(self) -> bool:
        return bool(self._starts)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return zip(self._starts, self._stops, strict=True)

    def __reversed__(self) -> Iterator[tuple[int, int]]:
        return zip(reversed(self._starts), reversed(self._stops), strict=True)

    def __getitem__(self, index: int) -> tuple[int, int]:
        return self._starts[index], self._stops[index]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RangeSet):
            return NotImplemented
        return self._starts == other._starts and self._stops == other._stops

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __contains__(self, value: int) -> bool:
        """Whether ``value`` is in one of the ranges: O(log n)."""
        i = bisect_right(self._starts, value) - 1
        return i >= 0 and value < self._stops[i]

    def total(self) -> int:
        """How many integers the set holds (O(n))."""
        return sum(self._stops) - sum(self._starts)

    def bounds(self) -> tuple[int, int]:
        """``(lowest start, highest stop)``; raises ``IndexError`` when empty."""
        return self._starts[0], self._stops[-1]

    def add(self, start: int, stop: int) -> None:
        """Add ``[start, stop)``, merging every range it overlaps or touches. Empty is a no-op."""
        if start >= stop:
            return
        starts, stops = self._starts, self._stops
        if not starts or start > stops[-1]:  # the common case: appending past the end
            starts.append(start)
            stops.append(stop)
            return
        if start == stops[-1]:  # as common: extending the last range (a stream's next write)
            stops[-1] = stop
            return
        # Ranges i..j-1 overlap or touch [start, stop): stop_i >= start and start_k <= stop.
        i = bisect_left(stops, start)
        j = bisect_right(starts, stop)
        if i == j:
            starts.insert(i, start)
            stops.insert(i, stop)
            return
        new_start = min(start, starts[i])
        new_stop = max(stop, stops[j - 1])
        starts[i:j] = (new_start,)
        stops[i:j] = (new_stop,)

    def subtract(self, start: int, stop: int) -> None:
        """Remove ``[start, stop)``, splitting a range that straddles either end."""
        if start >= stop or not self._starts:
            return
        starts, stops = self._starts, self._stops
        first = starts[0]
        if stop <= first:
            return  # all below the lowest range (an acknowledgement of data already sent)
        if start <= first and stop < stops[0]:
            starts[0] = stop  # the head of the lowest range (the next chunk to send)
            return
        # Ranges i..j-1 overlap [start, stop): stop_i > start and start_k < stop.
        i = bisect_right(stops, start)
        j = bisect_left(starts, stop)
        if i >= j:
            return
        new_starts: list[int] = []
        new_stops: list[int] = []
        if starts[i] < start:
            new_starts.append(starts[i])
            new_stops.append(start)
        if stops[j - 1] > stop:
            new_starts.append(stop)
            new_stops.append(stops[j - 1])
        starts[i:j] = new_starts
        stops[i:j] = new_stops

    def shift(self) -> tuple[int, int]:
        """Remove and return the lowest range; raises ``IndexError`` when empty."""
        return self._starts.pop(0), self._stops.pop(0)

    def pop_last(self) -> tuple[int, int]:
        """Remove and return the highest range; raises ``IndexError`` when empty."""
        return self._starts.pop(), self._stops.pop()

    def trim_below(self, value: int) -> None:
        """Remove every integer below ``value`` (O(log n) plus the ranges removed)."""
        if self._starts and self._starts[0] < value:
            self.subtract(self._starts[0], value)

    def overlapping(self, start: int, stop: int) -> Iterator[tuple[int, int]]:
        """The ranges that overlap ``[start, stop)``, clipped to it, in ascending order."""
        starts, stops = self._starts, self._stops
        i = bisect_right(stops, start)
        j = bisect_left(starts, stop)
        for k in range(i, j):
            yield max(starts[k], start), min(stops[k], stop)

    def gaps(self, start: int, stop: int) -> Iterator[tuple[int, int]]:
        """The sub-ranges of ``[start, stop)`` that the set does *not* hold, ascending."""
        position = start
        for low, high in self.overlapping(start, stop):
            if low > position:
                yield position, low
            position = high
        if position < stop:
            yield position, stop

    def clear(self) -> None:
        """Remove every range."""
        self._starts.clear()
        self._stops.clear()
