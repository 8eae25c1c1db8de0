"""Stream send and receive buffers with offsets and flow control (§16).

A :class:`SendStream` keeps the bytes the application wrote from the lowest unacknowledged offset
on, the ranges still to be (re)sent, and the peer's credit. A :class:`ReceiveStream` reassembles
chunks at offsets into an ordered byte sequence, refuses data beyond the credit it granted, and
grants more as the application consumes. Both are pure data structures: the session decides when
frames go out.
"""

from __future__ import annotations

from bisect import insort

__all__ = ["FlowControlError", "ReceiveStream", "SendStream"]


class FlowControlError(Exception):
    """The peer sent beyond the credit we granted, or changed a stream's final size."""


def _add_range(ranges: list[list[int]], start: int, end: int) -> None:
    """Insert [start, end) into sorted, disjoint ``ranges``, merging neighbours."""
    if start >= end:
        return
    insort(ranges, [start, end])
    merged: list[list[int]] = []
    for low, high in ranges:
        if merged and low <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], high)
        else:
            merged.append([low, high])
    ranges[:] = merged


def _remove_range(ranges: list[list[int]], start: int, end: int) -> None:
    out: list[list[int]] = []
    for low, high in ranges:
        if high <= start or low >= end:
            out.append([low, high])
            continue
        if low < start:
            out.append([low, start])
        if high > end:
            out.append([end, high])
    ranges[:] = out


class SendStream:
    """The sending half of a stream."""

    __slots__ = (
        "_acked",
        "_base",
        "_buffer",
        "_pending",
        "credit",
        "fin",
        "fin_acked",
        "fin_sent",
        "reset_code",
        "written",
    )

    def __init__(self, credit: int) -> None:
        self._buffer = bytearray()  # bytes from offset _base on
        self._base = 0
        self._pending: list[list[int]] = []  # ranges to send, sorted
        self._acked: list[list[int]] = []  # acknowledged ranges above _base
        self.written = 0  # total bytes written = next write offset
        self.credit = credit  # highest offset the peer allows
        self.fin = False
        self.fin_sent = False
        self.fin_acked = False
        self.reset_code: int | None = None

    @property
    def buffered(self) -> int:
        """Bytes kept (unacknowledged) — what backpressure measures."""
        return len(self._buffer)

    @property
    def done(self) -> bool:
        """Everything including FIN was acknowledged (or the stream was reset)."""
        return self.reset_code is not None or (self.fin_acked and not self._buffer)

    def write(self, data: bytes) -> None:
        if self.fin or self.reset_code is not None:
            raise ValueError("stream already finished")
        if data:
            start = self.written
            end = start + len(data)
            pending = self._pending
            if pending and pending[-1][1] == start:
                pending[-1][1] = end  # the common case: appending to the unsent tail
            else:
                _add_range(pending, start, end)
            self._buffer += data
            self.written = end

    def finish(self) -> None:
        """No more data: a FIN goes with (or after) the last byte."""
        self.fin = True

    def has_pending(self) -> bool:
        if self.reset_code is not None:
            return False
        if self._pending and self._pending[0][0] < self.credit:
            return True
        return self.fin and not self.fin_sent and not self._pending

    def blocked_by_credit(self) -> bool:
        return bool(self._pending) and self._pending[0][0] >= self.credit

    def next_chunk(
        self, max_bytes: int, limit: int | None = None
    ) -> tuple[int, bytes, bool] | None:
        """Take up to ``max_bytes`` of the lowest pending range within credit (and below offset
        ``limit`` when given, e.g. the session-level credit): ``(offset, data, fin)``; None if
        nothing can be sent."""
        if self.reset_code is not None:
            return None
        if self._pending:
            start, end = self._pending[0]
            credit = self.credit if limit is None else min(self.credit, max(limit, start))
            if start >= self.credit:
                return None
            end = min(end, start + max_bytes, credit)
            if end <= start:
                return None
            _remove_range(self._pending, start, end)
            data = bytes(self._buffer[start - self._base : end - self._base])
            fin = self.fin and end == self.written and not self._pending
            if fin:
                self.fin_sent = True
            return start, data, fin
        if self.fin and not self.fin_sent:
            self.fin_sent = True
            return self.written, b"", True
        return None

    def on_acked(self, offset: int, length: int, fin: bool) -> None:
        if fin:
            self.fin_acked = True
        if length:
            _add_range(self._acked, max(offset, self._base), offset + length)
            # A copy of a range re-queued as lost arrived: do not resend it, and never keep a
            # pending range below the new base (its bytes are gone from the buffer).
            _remove_range(self._pending, offset, offset + length)
        if self._acked and self._acked[0][0] <= self._base:
            new_base = self._acked[0][1]
            del self._acked[0]
            del self._buffer[: new_base - self._base]
            self._base = new_base

    def on_lost(self, offset: int, length: int, fin: bool) -> None:
        """A frame carrying [offset, offset+length) was lost: resend what is not yet acked."""
        if self.reset_code is not None:
            return
        start = max(offset, self._base)
        end = offset + length
        if start < end:
            _add_range(self._pending, start, end)
            for low, high in self._acked:
                _remove_range(self._pending, low, high)
        if fin and not self.fin_acked:
            self.fin_sent = False

    def reset(self, code: int) -> None:
        self.reset_code = code
        self._buffer.clear()
        self._pending.clear()
        self._acked.clear()


class ReceiveStream:
    """The receiving half of a stream."""

    __slots__ = (
        "_chunks",
        "consumed",
        "credit",
        "delivered",
        "final_size",
        "highest",
        "reset_code",
        "window",
    )

    def __init__(self, window: int) -> None:
        self._chunks: dict[int, bytes] = {}  # out-of-order data by offset
        self.delivered = 0  # bytes handed to the application, in order
        self.consumed = 0  # bytes the application said it is done with
        self.window = window
        self.credit = window  # highest offset we allow
        self.highest = 0  # highest offset received
        self.final_size: int | None = None
        self.reset_code: int | None = None

    @property
    def finished(self) -> bool:
        """Every byte up to the FIN has been delivered."""
        return self.final_size is not None and self.delivered >= self.final_size

    def receive(self, offset: int, data: bytes, fin: bool) -> tuple[bytes, int]:
        """Accept a chunk; returns ``(newly contiguous bytes, new highest offset growth)``.

        Raises :class:`FlowControlError` for data beyond the credit or a changed final size.
        """
        end = offset + len(data)
        if end > self.credit:
            raise FlowControlError("stream data beyond the granted credit")
        if self.final_size is not None and end > self.final_size:
            raise FlowControlError("stream data beyond its final size")
        if fin:
            if self.final_size is not None and self.final_size != end:
                raise FlowControlError("stream final size changed")
            if end < self.highest:
                raise FlowControlError("stream final size below data already received")
            self.final_size = end
        growth = max(end - self.highest, 0)
        self.highest = max(self.highest, end)
        if end <= self.delivered or self.reset_code is not None:
            return b"", growth
        if offset < self.delivered:
            data = data[self.delivered - offset :]
            offset = self.delivered
        if offset > self.delivered:
            known = self._chunks.get(offset)
            if known is None or len(known) < len(data):
                self._chunks[offset] = data
            return b"", growth
        parts = [data]
        self.delivered += len(data)
        while self._chunks:
            nxt = self._chunks.pop(self.delivered, None)
            if nxt is None:
                # Drop chunks now fully below the delivered offset; trim overlapping ones.
                stale = [o for o in self._chunks if o < self.delivered]
                if not stale:
                    break
                for o in stale:
                    chunk = self._chunks.pop(o)
                    if o + len(chunk) > self.delivered:
                        trimmed = chunk[self.delivered - o :]
                        known = self._chunks.get(self.delivered)
                        if known is None or len(known) < len(trimmed):
                            self._chunks[self.delivered] = trimmed
                continue
            parts.append(nxt)
            self.delivered += len(nxt)
        return (parts[0] if len(parts) == 1 else b"".join(parts)), growth

    def consume(self, n: int) -> int | None:
        """The application is done with ``n`` more bytes; returns a new credit to announce
        (when at least half a window was consumed since the last one), else None."""
        self.consumed += n
        if self.final_size is not None:
            return None
        target = self.consumed + self.window
        if target - self.credit >= self.window // 2:
            self.credit = target
            return target
        return None
