"""Tests of the anti-replay window (``docs/protocol.md`` §5.4).

The table-driven sequences follow the replay selftests of the Linux kernel's WireGuard and of
wireguard-go, rewritten for this window, whose edge is one counter tighter than theirs: here a
counter exactly ``REPLAY_WINDOW_PACKETS`` below the highest is already too old. The property test
compares the window against a plain set of seen counters.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seigr_stt.constants import (
    REJECT_AFTER_MESSAGES,
    REPLAY_WINDOW_BLOCK_BITS,
    REPLAY_WINDOW_BLOCKS,
    REPLAY_WINDOW_PACKETS,
)
from seigr_stt.core.replay import ReplayWindow
from tests.profiles import scaled

W = REPLAY_WINDOW_PACKETS  # 8128
L = REJECT_AFTER_MESSAGES
BLOCK = REPLAY_WINDOW_BLOCK_BITS  # 64
RING = REPLAY_WINDOW_BLOCKS * REPLAY_WINDOW_BLOCK_BITS  # 8192 counters share one ring slot cycle

Steps = list[tuple[int, bool]]

# One window through all of it, in the order of the wireguard-go selftest.
MAIN: Steps = [
    (0, True),  # counter 0 is an ordinary counter
    (1, True),  # in order
    (1, False),  # duplicate
    (9, True),  # forward by less than a block
    (8, True),  # reordered, inside the window
    (7, True),
    (7, False),
    (W, True),  # forward by 127 blocks: the ring is walked and cleared up to block 127
    (W - 1, True),
    (W - 1, False),
    (W - 2, True),
    (2, True),  # highest - 8126, never seen
    (2, False),
    (1, False),  # highest - 8127, seen before the jump and still inside the window: still seen
    (0, False),  # highest - 8128: too old
    (W + 16, True),  # forward by 16, same block
    (3, False),  # far too old, never seen
    (16, False),  # highest - 8128, never seen: too old
    (17, True),  # highest - 8127, never seen: the oldest counter still accepted
    (17, False),
    (W + 16, False),  # the highest itself again
    (4 * W, True),  # forward by more than the whole ring: everything cleared
    (3 * W + 1, True),  # highest - 8127
    (10, False),
    (3 * W, False),  # highest - 8128
    (3 * W - 1, False),  # highest - 8129
    (3 * W + 2, True),
    (3 * W + 1, False),
    (W + 16, False),  # seen long ago, far too old now
    (0, False),
    (L, False),  # the limit itself
    (L - 1, True),  # the last usable counter; the window jumps to the top
    (L, False),
    (L - 1, False),
    (L - 2, True),
    (L + 1, False),
    (L + 2, False),
    (L - 2, False),
    (L - 3, True),
    (0, False),
    (4 * W, False),
]

# Block boundaries, a jump of exactly one block, and ring slots being reused 8192 counters later.
BLOCKS: Steps = [
    (BLOCK - 1, True),  # 63, the last counter of block 0
    (0, True),
    (BLOCK, True),  # 64: into block 1 by one counter
    (2 * BLOCK - 1, True),  # 127: forward inside block 1
    (3 * BLOCK - 1, True),  # 191: forward by exactly one block
    (2 * BLOCK, True),  # 128: block 2 is fresh
    (BLOCK - 1, False),  # still seen
    (BLOCK - 2, True),  # never seen
    (RING + BLOCK - 1, True),  # 8255, block 128 = slot 0 again: forward by 126 blocks
    (BLOCK - 1, False),  # highest - 8192
    (RING, True),  # slot 0 bit 0: the bit of counter 0 must have been cleared
    (RING + BLOCK - 2, True),  # slot 0 bit 62: the bit of counter 62 must have been cleared
    (2 * BLOCK, False),  # highest - 8127, seen before the jump: still seen
    (2 * BLOCK + 1, True),  # highest - 8126, never seen
    (2 * BLOCK - 1, False),  # highest - 8128: too old
    (3 * BLOCK - 1, False),  # seen before the jump, inside the window: still seen
    (3 * BLOCK - 2, True),
    (RING + 2 * BLOCK - 1, True),  # 8319: forward by exactly one block, into slot 1
    (3 * BLOCK - 1, False),  # highest - 8128: too old
    (3 * BLOCK, True),  # highest - 8127, block 3, cleared by the big slide
    (RING + BLOCK, True),  # slot 1 bit 0: the bit of counter 64 must have been cleared
    (RING - 1, True),  # slot 127, cleared by the big slide, never seen
    (RING - 1, False),
    (2 * RING + 2 * BLOCK - 1, True),  # 16511: forward by exactly 128 blocks, the whole ring
    (RING + 2 * BLOCK - 1, False),  # the old highest, now highest - 8192
    (2 * RING + 2 * BLOCK - 1 - (W - 1), True),  # highest - 8127
    (2 * RING + 2 * BLOCK - 1 - W, False),  # highest - 8128
    (2 * RING + BLOCK, True),  # same ring slot as the old highest, not seen in this cycle
]

# The bulk tests: a window filled to its edge from either end.
BULK_UP_TO_EDGE: Steps = [(i, True) for i in range(1, W)] + [(0, True), (0, False)]
BULK_PAST_EDGE: Steps = [(i, True) for i in range(1, W + 1)] + [(0, False)]
BULK_FROM_TWO: Steps = [(i, True) for i in range(2, W + 1)] + [(1, True), (0, False)]
BULK_DOWN_FROM_EDGE: Steps = [(i, True) for i in range(W - 1, -1, -1)]
BULK_DOWN_PAST_EDGE: Steps = [(i, True) for i in range(W, 0, -1)] + [(0, False)]


def _run(steps: Steps) -> None:
    window = ReplayWindow()
    highest: int | None = None
    for n, (counter, expected) in enumerate(steps, 1):
        for _ in range(3):
            assert window.check(counter) is expected, f"step {n}: check({counter})"
        assert window.accept(counter) is expected, f"step {n}: accept({counter})"
        if expected:
            highest = counter if highest is None else max(highest, counter)
        assert window.highest == highest, f"step {n}: highest after {counter}"
        assert window.check(counter) is False, f"step {n}: check({counter}) after accept"
        assert window.accept(counter) is False, f"step {n}: accept({counter}) twice"


@pytest.mark.parametrize(
    "steps",
    [
        pytest.param(MAIN, id="main"),
        pytest.param(BLOCKS, id="blocks"),
        pytest.param(BULK_UP_TO_EDGE, id="bulk-up-to-edge"),
        pytest.param(BULK_PAST_EDGE, id="bulk-past-edge"),
        pytest.param(BULK_FROM_TWO, id="bulk-from-two"),
        pytest.param(BULK_DOWN_FROM_EDGE, id="bulk-down-from-edge"),
        pytest.param(BULK_DOWN_PAST_EDGE, id="bulk-down-past-edge"),
    ],
)
def test_sequence(steps: Steps) -> None:
    _run(steps)


def test_constants_match_the_rfc6479_layout() -> None:
    assert (BLOCK, REPLAY_WINDOW_BLOCKS, W, RING) == (64, 128, 8128, 8192)
    assert L == 2**64 - 2**13 - 1


def test_new_window_is_empty() -> None:
    window = ReplayWindow()
    assert window.highest is None
    for counter in (0, 1, W, RING, L - 1):
        assert window.check(counter) is True
    assert window.check(L) is False


def test_check_never_changes_state() -> None:
    window = ReplayWindow()
    for _ in range(5):
        for counter in (5, 10**6, L - 1, 0, RING, 2**63):
            assert window.check(counter) is True
    assert window.highest is None
    # Had any check slid the window to 10**6 or further, 5 and 0 would now be too old.
    assert window.accept(5) is True
    assert window.accept(0) is True
    assert window.highest == 5

    assert window.accept(9000) is True
    for _ in range(5):
        assert window.check(20_000) is True
        assert window.check(9000) is False
        assert window.check(5) is False
        assert window.check(1000) is True
    # 1001 is highest - 7999: inside the window only if check(20_000) did not move it.
    assert window.accept(1001) is True
    # check(1000) did not mark 1000 as seen.
    assert window.accept(1000) is True
    assert window.highest == 9000


def test_refused_counter_changes_nothing() -> None:
    window = ReplayWindow()
    assert window.accept(W + 100) is True
    assert window.accept(L) is False  # would otherwise have slid the window past everything
    assert window.accept(2**64) is False
    assert window.highest == W + 100
    assert window.accept(101) is True  # highest - 8127
    assert window.accept(100) is False  # highest - 8128


def test_negative_counter_is_refused() -> None:
    window = ReplayWindow()
    assert window.check(-1) is False
    assert window.accept(-1) is False
    assert window.highest is None
    assert window.accept(0) is True
    assert window.check(-64) is False
    assert window.accept(-64) is False
    assert window.highest == 0


def test_reset_forgets_everything() -> None:
    window = ReplayWindow()
    for counter in (0, 1, 2, 5 * RING, 5 * RING - 1):
        assert window.accept(counter) is True
    window.reset()
    assert window.highest is None
    assert repr(window) == "ReplayWindow(highest=None)"
    # Seen before the reset, or too old for the old window: all new again.
    for counter in (0, 1, 2, 5 * RING - 1, 5 * RING):
        assert window.accept(counter) is True
    assert window.accept(2) is False


def test_repr_shows_highest_only() -> None:
    window = ReplayWindow()
    assert repr(window) == "ReplayWindow(highest=None)"
    window.accept(42)
    window.accept(7)
    assert repr(window) == "ReplayWindow(highest=42)"
    window.accept(0)
    assert repr(window) == "ReplayWindow(highest=42)"


def test_highest_is_zero_after_accepting_zero() -> None:
    window = ReplayWindow()
    assert window.accept(0) is True
    assert window.highest == 0
    assert window.accept(0) is False


# -- Property test against a trivially correct model -------------------------------------------


class _Model:
    """Every seen counter in a set; the window rule written out literally."""

    def __init__(self) -> None:
        self.seen: set[int] = set()
        self.highest: int | None = None

    def acceptable(self, counter: int) -> bool:
        return (
            0 <= counter < L
            and counter not in self.seen
            and (self.highest is None or counter > self.highest - W)
        )

    def accept(self, counter: int) -> bool:
        if not self.acceptable(counter):
            return False
        self.seen.add(counter)
        self.highest = counter if self.highest is None else max(self.highest, counter)
        return True


# Each op: how to pick the counter (relative to the model's highest, or from the history), and
# whether the record authenticates (if not, only check is called, as for a forged record).
_op = st.tuples(
    st.one_of(
        st.tuples(st.just("near"), st.integers(-2 * BLOCK - 2, 2 * BLOCK + 2)),
        st.tuples(st.just("dup"), st.integers(0, 10**6)),
        st.tuples(st.just("edge"), st.integers(-3, 3)),
        st.tuples(
            st.just("blocks"), st.integers(-REPLAY_WINDOW_BLOCKS - 2, 2 * REPLAY_WINDOW_BLOCKS)
        ),
        st.tuples(st.just("jump"), st.integers(-3 * RING, 3 * RING)),
        st.tuples(st.just("alias"), st.integers(-(10**6), 10**6)),
        st.tuples(st.just("limit"), st.integers(-3, 3)),
        st.tuples(st.just("abs"), st.integers(0, 2**64 + 16)),
    ),
    st.sampled_from([True, True, True, False]),
)


def _pick(kind: str, value: int, base: int, history: list[int]) -> int:
    if kind == "near":
        return base + value
    if kind == "dup":
        return history[value % len(history)] if history else 0
    if kind == "edge":
        return base - W + value
    if kind == "blocks":
        return base + value * BLOCK
    if kind == "jump":
        return base + value
    if kind == "alias":
        # One ring cycle after an earlier counter: the same ring slot, maybe with its bits stale.
        earlier = history[abs(value) // 128 % len(history)] if history else 0
        return earlier + RING + value % 9 - 4
    if kind == "limit":
        return L + value
    return value


@settings(max_examples=scaled(2), deadline=None)
@given(st.lists(_op, max_size=300))
def test_matches_reference_model(ops: list[tuple[tuple[str, int], bool]]) -> None:
    window = ReplayWindow()
    model = _Model()
    history: list[int] = []
    for (kind, value), authentic in ops:
        base = model.highest if model.highest is not None else 0
        counter = max(0, _pick(kind, value, base, history))
        history.append(counter)
        expected = model.acceptable(counter)
        assert window.check(counter) is expected, counter
        if authentic:
            assert window.accept(counter) is model.accept(counter), counter
        assert window.highest == model.highest
