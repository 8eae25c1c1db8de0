"""The anti-replay sliding window of the record layer (``docs/protocol.md`` §5.4).

An RFC 6479 block bitmap, laid out like the replay filters of the Linux kernel's WireGuard and of
wireguard-go: a ring of ``REPLAY_WINDOW_BLOCKS`` blocks of ``REPLAY_WINDOW_BLOCK_BITS`` bits each.
Counter ``c`` lives in block ``(c >> 6) % 128`` at bit ``c & 63``. The ring is held sparsely, as a
dict of its non-zero blocks: an idle session's window (a handful of records per key epoch) costs
one or two entries instead of a 128-slot list (docs/performance.md, memory per idle session).
One block of the ring is the block the highest counter is in and is still filling, so the window
proper spans the ``REPLAY_WINDOW_PACKETS`` (8128) counters ending at the highest one: a counter
``c`` with ``highest - c >= REPLAY_WINDOW_PACKETS`` is too old and is refused without looking at
the bitmap.

Sans-I/O and single-threaded: the caller that shares one window between tasks or threads
serialises the calls itself.

Caller's contract, per received data record:

1. ``check(counter)`` before decrypting, to drop certain replays cheaply. It changes nothing.
2. Decrypt and authenticate the record.
3. ``accept(counter)`` only if the record authenticated; deliver the record only if it returns
   ``True``. ``check`` alone is never enough: two copies of one record may both pass ``check``
   before either is accepted.
"""

from __future__ import annotations

from typing import Final

from seigr_stt.constants import (
    REJECT_AFTER_MESSAGES,
    REPLAY_WINDOW_BLOCK_BITS,
    REPLAY_WINDOW_BLOCKS,
    REPLAY_WINDOW_PACKETS,
)

__all__ = ["ReplayWindow"]

# Both sizes are powers of two, so "% size" is "& (size - 1)" and "// 64" is ">> 6".
assert REPLAY_WINDOW_BLOCK_BITS & (REPLAY_WINDOW_BLOCK_BITS - 1) == 0
assert REPLAY_WINDOW_BLOCKS & (REPLAY_WINDOW_BLOCKS - 1) == 0

_BLOCK_SHIFT: Final = REPLAY_WINDOW_BLOCK_BITS.bit_length() - 1  # 6
_BIT_MASK: Final = REPLAY_WINDOW_BLOCK_BITS - 1  # 63
_RING_MASK: Final = REPLAY_WINDOW_BLOCKS - 1  # 127
_RING_BLOCKS: Final = REPLAY_WINDOW_BLOCKS
_WINDOW: Final = REPLAY_WINDOW_PACKETS
_LIMIT: Final = REJECT_AFTER_MESSAGES


class ReplayWindow:
    """Which record counters of one receiving key have been seen (``docs/protocol.md`` §5.4).

    A counter is acceptable if it is in ``[0, REJECT_AFTER_MESSAGES)``, has not been accepted
    before, and either is greater than the highest accepted counter or lies less than
    ``REPLAY_WINDOW_PACKETS`` below it. Counter 0 is an ordinary counter. Use one window per
    receiving key; a new key gets a new (or ``reset``) window.
    """

    __slots__ = ("_last", "_ring", "_started")

    _last: int
    _ring: dict[int, int]  # ring position -> block; absent means all zero
    _started: bool

    def __init__(self) -> None:
        """Create an empty window: every counter below the limit is acceptable."""
        self.reset()

    def reset(self) -> None:
        """Forget every counter seen: the window becomes as new."""
        # While nothing has been accepted, ``_last == 0`` over an all-zero ring behaves exactly like
        # "no highest yet": nothing is too old and every bit is clear.
        self._last = 0
        self._ring = {}
        self._started = False

    @property
    def highest(self) -> int | None:
        """The greatest counter accepted so far, or ``None`` before the first ``accept``."""
        return self._last if self._started else None

    def check(self, counter: int) -> bool:
        """Tell whether ``counter`` may be new, without changing the window.

        Call it before decrypting a record, with the record's counter. ``False`` means the record
        is certainly a replay, too old for the window, or at or over ``REJECT_AFTER_MESSAGES``
        (or negative): drop it without decrypting. ``True`` means only "not known yet"; the
        record must still authenticate and then pass ``accept``.
        """
        if not 0 <= counter < _LIMIT:
            return False
        last = self._last
        if counter > last:
            return True
        if last - counter >= _WINDOW:
            return False
        block = self._ring.get((counter >> _BLOCK_SHIFT) & _RING_MASK, 0)
        return not (block >> (counter & _BIT_MASK)) & 1

    def accept(self, counter: int) -> bool:
        """Record ``counter`` as seen, sliding the window forward if it is the new highest.

        Call it only after the record carrying ``counter`` authenticated, and deliver the record
        only if it returns ``True``. ``False`` means a duplicate, too old for the window, or at or
        over ``REJECT_AFTER_MESSAGES`` (or negative); the window is then left unchanged.
        """
        if not 0 <= counter < _LIMIT:
            return False
        last = self._last
        ring = self._ring
        index = counter >> _BLOCK_SHIFT
        if counter > last:
            current = last >> _BLOCK_SHIFT
            diff = index - current
            if diff >= _RING_BLOCKS:
                # The jump passes over the whole ring: nothing seen before is in the new window.
                ring.clear()
            elif ring:
                # Clear the blocks the window moves onto; they still hold counters 8192 older.
                pop = ring.pop
                for i in range(current + 1, index + 1):
                    pop(i & _RING_MASK, None)
            self._last = counter
        elif last - counter >= _WINDOW:
            return False
        index &= _RING_MASK
        bit = 1 << (counter & _BIT_MASK)
        block = ring.get(index, 0)
        if block & bit:
            return False
        ring[index] = block | bit
        self._started = True
        return True

    def snapshot(self) -> tuple[int | None, tuple[int, ...]]:
        """``(highest, bitmap blocks)``: equal snapshots mean equal windows."""
        ring = self._ring
        return self.highest, tuple(ring.get(i, 0) for i in range(_RING_BLOCKS))

    def __repr__(self) -> str:
        """Show the highest accepted counter only, never the bitmap."""
        return f"ReplayWindow(highest={self.highest!r})"
