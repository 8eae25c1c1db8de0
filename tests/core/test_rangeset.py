"""RangeSet against a plain set of ints (hypothesis model test), and its edge cases."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from seigr_stt.core.rangeset import RangeSet

SPAN = 200
bounds = st.tuples(st.integers(0, SPAN), st.integers(0, SPAN)).map(sorted)


def as_set(ranges: RangeSet) -> set[int]:
    return {value for start, stop in ranges for value in range(start, stop)}


class RangeSetModel(RuleBasedStateMachine):
    """Every operation agrees with the same operation on ``set[int]``; the ranges stay sorted,
    disjoint and non-adjacent."""

    def __init__(self) -> None:
        super().__init__()
        self.ranges = RangeSet()
        self.model: set[int] = set()

    @rule(span=bounds)
    def add(self, span: list[int]) -> None:
        start, stop = span
        self.ranges.add(start, stop)
        self.model |= set(range(start, stop))

    @rule(span=bounds)
    def subtract(self, span: list[int]) -> None:
        start, stop = span
        self.ranges.subtract(start, stop)
        self.model -= set(range(start, stop))

    @rule()
    def shift(self) -> None:
        if self.ranges:
            start, stop = self.ranges.shift()
            assert set(range(start, stop)) <= self.model
            assert all(v >= stop or v < start for v in self.model - set(range(start, stop)))
            assert min(self.model) == start
            self.model -= set(range(start, stop))
        else:
            with pytest.raises(IndexError):
                self.ranges.shift()

    @rule(value=st.integers(0, SPAN))
    def trim_below(self, value: int) -> None:
        self.ranges.trim_below(value)
        self.model = {v for v in self.model if v >= value}

    @rule(value=st.integers(-1, SPAN + 1))
    def contains(self, value: int) -> None:
        assert (value in self.ranges) == (value in self.model)

    @rule(span=bounds)
    def overlapping_and_gaps(self, span: list[int]) -> None:
        start, stop = span
        inside = {v for a, b in self.ranges.overlapping(start, stop) for v in range(a, b)}
        outside = {v for a, b in self.ranges.gaps(start, stop) for v in range(a, b)}
        window = set(range(start, stop))
        assert inside == self.model & window
        assert outside == window - self.model

    @invariant()
    def agrees(self) -> None:
        assert as_set(self.ranges) == self.model
        assert self.ranges.total() == len(self.model)
        pairs = list(self.ranges)
        for (_, stop), (start, _) in itertools.pairwise(pairs):
            assert stop < start  # disjoint and not adjacent
        assert all(a < b for a, b in pairs)
        assert list(reversed(self.ranges)) == pairs[::-1]
        if pairs:
            assert self.ranges.bounds() == (pairs[0][0], pairs[-1][1])


TestRangeSetModel = RangeSetModel.TestCase


@given(st.lists(bounds, max_size=30))
def test_construction_equals_successive_adds(spans: list[list[int]]) -> None:
    built = RangeSet((a, b) for a, b in spans)
    added = RangeSet()
    for a, b in spans:
        added.add(a, b)
    assert built == added
    assert as_set(built) == {v for a, b in spans for v in range(a, b)}


def test_adjacent_ranges_merge_and_empty_ranges_are_ignored() -> None:
    ranges = RangeSet()
    ranges.add(0, 3)
    ranges.add(5, 5)
    ranges.add(3, 5)
    assert list(ranges) == [(0, 5)]
    ranges.subtract(2, 2)
    assert list(ranges) == [(0, 5)]


def test_subtract_splits_a_straddling_range() -> None:
    ranges = RangeSet([(0, 10)])
    ranges.subtract(3, 6)
    assert list(ranges) == [(0, 3), (6, 10)]
    assert ranges[1] == (6, 10)
    assert ranges.pop_last() == (6, 10)
    assert repr(ranges) == "RangeSet([0, 3))"


def test_an_empty_set_has_no_bounds_and_equality_is_by_content() -> None:
    with pytest.raises(IndexError):
        RangeSet().bounds()
    assert RangeSet([(1, 2)]) == RangeSet([(1, 2)])
    assert RangeSet([(1, 2)]) != RangeSet([(1, 3)])
    assert RangeSet().__eq__(object()) is NotImplemented
    cleared = RangeSet([(1, 2)])
    cleared.clear()
    assert not cleared
