"""``Inbox`` and ``InboxIterator``: FIFO order, closing, and cancellation that takes nothing.

In memory, on the test's event loop; the network tests of the same guarantees are in
tests/aio/test_session_receive.py.
"""

from __future__ import annotations

import asyncio

import pytest

from seigr_stt.aio.inbox import Inbox, InboxClosed, InboxIterator


async def test_fifo_then_closed() -> None:
    inbox: Inbox[int] = Inbox()
    for i in range(3):
        inbox.put(i)
    inbox.close()
    assert inbox.closed
    assert len(inbox) == 3
    assert repr(inbox) == "Inbox(items=3, closed=True)"
    assert [await inbox.get() for _ in range(3)] == [0, 1, 2]
    with pytest.raises(InboxClosed):
        await inbox.get()


async def test_take_where_keeps_the_order_of_both_parts() -> None:
    inbox: Inbox[str] = Inbox()
    for item in ("a1", "b1", "a2", "b2"):
        inbox.put(item)
    assert inbox.take_where(lambda s: s.startswith("a")) == ["a1", "a2"]
    assert inbox.take_where(lambda s: s.startswith("c")) == []
    assert [await inbox.get(), await inbox.get()] == ["b1", "b2"]


async def test_a_reader_woken_then_cancelled_passes_the_item_on() -> None:
    inbox: Inbox[str] = Inbox()
    first = asyncio.create_task(inbox.get())
    second = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)  # both wait
    inbox.put("one")  # wakes the first reader ...
    first.cancel()  # ... which is cancelled before it runs
    assert await asyncio.wait_for(second, 1.0) == "one"
    assert first.cancelled()
    assert len(inbox) == 0


async def test_a_waiting_reader_cancelled_takes_nothing() -> None:
    inbox: Inbox[str] = Inbox()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(inbox.get(), 0.01)
    inbox.put("kept")
    assert await inbox.get() == "kept"


async def test_close_wakes_every_reader() -> None:
    inbox: Inbox[int] = Inbox()
    readers = [asyncio.create_task(inbox.get()) for _ in range(3)]
    await asyncio.sleep(0)
    inbox.close()
    for reader in readers:
        with pytest.raises(InboxClosed):
            await reader


async def test_the_iterator_survives_a_timed_out_anext() -> None:
    inbox: Inbox[int] = Inbox()
    taken: list[int] = []

    def take(item: int) -> str:
        taken.append(item)
        return f"item {item}"

    iterator = InboxIterator(inbox, take)
    assert aiter(iterator) is iterator
    assert repr(iterator) == "InboxIterator(Inbox(items=0, closed=False))"
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(anext(iterator), 0.01)
    inbox.put(7)
    inbox.put(8)
    inbox.close()
    assert [x async for x in iterator] == ["item 7", "item 8"]
    assert taken == [7, 8]
    with pytest.raises(StopAsyncIteration):
        await anext(iterator)
