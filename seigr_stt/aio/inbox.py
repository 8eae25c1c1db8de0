"""Queues the application reads from, and iterators over them that survive cancellation.

An :class:`Inbox` is a FIFO filled from the event loop (a drain delivering messages, datagrams,
peer-opened streams) and emptied by readers; :meth:`Inbox.close` says nothing more will come, and
readers drain what is left before they end. Taking an item is atomic: between the moment a
reader takes an item and the moment it has it there is no ``await``, so a reader cancelled while
it waits (``asyncio.wait_for(anext(it), 0.5)`` timing out, a task cancelled) loses nothing: the
item stays for the next reader.

:class:`InboxIterator` is the iterator object ``node.receive()``, ``async for packet in
session``, ``session.datagrams()`` and ``session.incoming_streams()`` return. Unlike an async
generator, a cancelled ``__anext__`` does not end it: the next ``anext()`` waits again.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from collections.abc import Callable
from typing import Generic, Self, TypeVar

from seigr_stt.exceptions import ConfigError

__all__ = ["Inbox", "InboxClosed", "InboxIterator", "check_wait_timeout"]

T = TypeVar("T")
Item = TypeVar("Item")


def check_wait_timeout(timeout: object) -> float | None:
    """A ``recv(timeout=...)`` argument: None (wait as long as it takes) or a positive, finite
    number of seconds. Raises TypeError for a non-number, ConfigError for any other value."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(f"timeout must be a number of seconds, not {type(timeout).__name__}")
    if not 0 < timeout < math.inf:
        raise ConfigError(f"timeout must be a positive, finite number of seconds, not {timeout!r}")
    return float(timeout)


class InboxClosed(Exception):
    """Raised by :meth:`Inbox.get` once the inbox is closed and empty (internal: the public
    calls turn it into the end of an iteration or a typed error)."""


class Inbox(Generic[T]):
    """A FIFO with cancellation-safe :meth:`get`; see the module docstring."""

    __slots__ = ("_closed", "_items", "_waiters")

    def __init__(self) -> None:
        self._items: deque[T] = deque()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closed = False

    def __repr__(self) -> str:
        return f"Inbox(items={len(self._items)}, closed={self._closed})"

    def __len__(self) -> int:
        return len(self._items)

    def qsize(self) -> int:
        """Items waiting (as :meth:`asyncio.Queue.qsize`)."""
        return len(self._items)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called (items may still be waiting)."""
        return self._closed

    def put(self, item: T) -> None:
        """Append ``item`` and wake one waiting reader. Items put after :meth:`close` are still
        kept (the owner decides what may arrive late)."""
        self._items.append(item)
        self._wake_one()

    def close(self) -> None:
        """Nothing more will be put: readers take what is left, then :meth:`get` raises
        :class:`InboxClosed`. Idempotent."""
        self._closed = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def take_where(self, predicate: Callable[[T], bool]) -> list[T]:
        """Remove and return, in order, every waiting item for which ``predicate`` is true."""
        taken = [item for item in self._items if predicate(item)]
        if taken:
            self._items = deque(item for item in self._items if not predicate(item))
        return taken

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def get(self) -> T:
        """The next item, waiting for one; :class:`InboxClosed` once closed and empty.

        Cancellation-safe: a reader cancelled while waiting takes nothing, and a wake-up it was
        given passes to the next reader.
        """
        while not self._items:
            if self._closed:
                raise InboxClosed
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    # Woken for an item, then cancelled before taking it: pass the turn on.
                    self._wake_one()
                else:
                    # Still queued as a waiter (unless close() took it): forget it.
                    with contextlib.suppress(ValueError):
                        self._waiters.remove(waiter)
                raise
        return self._items.popleft()


class InboxIterator(Generic[Item, T]):
    """An async iterator over an :class:`Inbox` that survives cancellation.

    ``take(item)`` turns a taken item into what the iteration yields (and does the bookkeeping
    of taking it, such as returning flow-control credit); it runs synchronously right after the
    item leaves the inbox. The iteration ends (``StopAsyncIteration``) once the inbox is closed
    and empty; a cancelled or timed-out ``__anext__`` leaves the iterator usable.
    """

    __slots__ = ("_inbox", "_take")

    def __init__(self, inbox: Inbox[Item], take: Callable[[Item], T]) -> None:
        self._inbox = inbox
        self._take = take

    def __repr__(self) -> str:
        return f"InboxIterator({self._inbox!r})"

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> T:
        try:
            item = await self._inbox.get()
        except InboxClosed:
            raise StopAsyncIteration from None
        return self._take(item)
