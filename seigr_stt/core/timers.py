"""Deadlines: a session's named timers moved by events (§8), and a heap of many owners' deadlines.

:class:`SessionTimers` keeps each deadline of a session that depends on *when things happened*
(idle, keepalive, persistent keepalive, dead peer, close retransmission, drain) as a named
``*_at`` value, set by a hook named after the event that moves it, in the manner of
wireguard-go's timers ("after an authenticated packet is received"). Each formula is written
once, in its hook; :meth:`SessionTimers.due` and the session's ``get_timer`` only compare.

:class:`DeadlineHeap` holds one deadline per key (a session id, a handshake index) and finds the
earliest in O(log n); the endpoint and the in-memory simulator use it.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

from seigr_stt.config import SessionConfig
from seigr_stt.constants import CLOSE_RETRANSMIT_S

__all__ = ["DeadlineHeap", "SessionTimers"]

K = TypeVar("K", bound=Hashable)

_CLOSE_DRAIN_MIN_S = 2.0
#: The responder waits this much longer than ping_interval_s before its own heartbeat, so that
#: the initiator's PING (and the ACK that answers it) keeps both quiet: one PING per interval.
RESPONDER_HEARTBEAT_FACTOR = 1.5


class SessionTimers:
    """The event-driven deadlines of one session; ``None`` means not armed."""

    __slots__ = (
        "_config",
        "_ping_interval_s",
        "close_retry_at",
        "created_at",
        "dead_peer_at",
        "drain_at",
        "heartbeat_at",
        "idle_at",
        "keepalive_at",
        "last_received_at",
        "last_sent_at",
        "persistent_at",
    )

    def __init__(self, config: SessionConfig, now: float, *, initiator: bool = True) -> None:
        self._config = config
        ping = config.ping_interval_s
        self._ping_interval_s = (
            None if ping is None else ping if initiator else ping * RESPONDER_HEARTBEAT_FACTOR
        )
        self.created_at = now
        self.last_sent_at: float | None = None
        self.last_received_at: float | None = None
        idle = config.session_idle_timeout_s
        #: No application data either way for ``session_idle_timeout_s``: close (§8).
        self.idle_at: float | None = now + idle if idle is not None else None
        #: We received an ack-eliciting record and sent nothing since: send an empty record.
        self.keepalive_at: float | None = None
        persistent = config.persistent_keepalive_s
        #: Nothing sent for ``persistent_keepalive_s``: send an empty record (NAT mappings).
        self.persistent_at: float | None = now + persistent if persistent is not None else None
        #: An ack-eliciting record sent and nothing received since, for dead_peer_timeout_s.
        self.dead_peer_at: float | None = None
        ping = self._ping_interval_s
        #: Nothing received for ``ping_interval_s`` (1.5x on the responder): send a PING the
        #: peer must acknowledge.
        self.heartbeat_at: float | None = now + ping if ping is not None else None
        #: Closing: when to retransmit CLOSE, and when a draining close stops waiting.
        self.close_retry_at: float | None = None
        self.drain_at: float | None = None

    def __repr__(self) -> str:
        armed = ", ".join(
            f"{name}={getattr(self, name):.3f}"
            for name in ("idle_at", "keepalive_at", "persistent_at", "heartbeat_at", "dead_peer_at")
            if getattr(self, name) is not None
        )
        return f"SessionTimers({armed})"

    # -- hooks, named after the event that moves the deadlines --------------------------------
    def on_authenticated_received(self, now: float) -> None:
        """After an authenticated record is received."""
        self.last_received_at = now
        self.dead_peer_at = None  # the peer answered
        ping = self._ping_interval_s
        if ping is not None:
            self.heartbeat_at = now + ping

    def on_ack_eliciting_received(self, now: float) -> None:
        """After a received record that the peer expects an answer to (it is acknowledged)."""
        self.keepalive_at = now + self._config.keepalive_s

    def on_record_sent(self, now: float, ack_eliciting: bool) -> None:
        """After a record is sent."""
        self.last_sent_at = now
        self.keepalive_at = None  # anything we send is the answer a keepalive would be
        persistent = self._config.persistent_keepalive_s
        if persistent is not None:
            self.persistent_at = now + persistent
        if ack_eliciting and self.dead_peer_at is None:
            self.dead_peer_at = now + self._config.dead_peer_timeout_s

    def on_heartbeat_sent(self, now: float) -> None:
        """A heartbeat PING was queued: the next one after another interval of silence."""
        ping = self._ping_interval_s
        self.heartbeat_at = now + ping if ping is not None else None

    def on_application_data(self, now: float) -> None:
        """After application data is sent or received (datagrams, messages, stream bytes)."""
        idle = self._config.session_idle_timeout_s
        if idle is not None:
            self.idle_at = now + idle

    def on_close_sent(self, now: float, rtt_s: float) -> None:
        """After a CLOSE is queued: retransmit it unless the peer answers first (§9)."""
        self.drain_at = None
        self.close_retry_at = now + max(CLOSE_RETRANSMIT_S, 2 * rtt_s)

    def on_drain_started(self, now: float, pto_s: float) -> None:
        """A draining close waits for the data written so far, at most max(2 s, 4 x PTO)."""
        self.drain_at = now + max(_CLOSE_DRAIN_MIN_S, 4 * pto_s)

    def on_closing(self) -> None:
        """The session is closing: only the close deadlines remain armed."""
        self.idle_at = self.keepalive_at = self.persistent_at = self.dead_peer_at = None
        self.heartbeat_at = None

    def on_closed(self) -> None:
        """The session is closed: nothing remains armed."""
        self.on_closing()
        self.close_retry_at = self.drain_at = None

    # -- reading ------------------------------------------------------------------------------
    @property
    def last_active_at(self) -> float | None:
        """The later of the last record sent and received, or None."""
        times = [t for t in (self.last_sent_at, self.last_received_at) if t is not None]
        return max(times) if times else None

    def armed(self) -> Iterator[float]:
        """Every armed deadline."""
        for at in (
            self.idle_at,
            self.keepalive_at,
            self.persistent_at,
            self.heartbeat_at,
            self.dead_peer_at,
            self.close_retry_at,
            self.drain_at,
        ):
            if at is not None:
                yield at

    @staticmethod
    def due(at: float | None, now: float) -> bool:
        """Whether a deadline is armed and reached."""
        return at is not None and now >= at


class DeadlineHeap(Generic[K]):
    """One deadline per key, earliest first. Setting a key's deadline replaces its old one;
    stale heap entries are skipped lazily and compacted when they outnumber the live ones."""

    __slots__ = ("_deadlines", "_heap", "_seq")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, K]] = []
        self._deadlines: dict[K, float] = {}
        self._seq = 0

    def __len__(self) -> int:
        return len(self._deadlines)

    def __contains__(self, key: object) -> bool:
        return key in self._deadlines

    @property
    def heap_size(self) -> int:
        """Entries held, live and stale (for tests and debugging): after any :meth:`set`, at
        most ``4 * len(self) + 64``, however often deadlines moved."""
        return len(self._heap)

    def get(self, key: K) -> float | None:
        """The deadline of ``key``, or None."""
        return self._deadlines.get(key)

    def set(self, key: K, deadline: float | None) -> None:
        """Arm ``key`` at ``deadline`` (None disarms it)."""
        if deadline is None:
            self._deadlines.pop(key, None)
            return
        if self._deadlines.get(key) == deadline:
            return
        self._deadlines[key] = deadline
        self._seq += 1
        heapq.heappush(self._heap, (deadline, self._seq, key))
        if len(self._heap) > 4 * len(self._deadlines) + 64:
            self._heap = [e for e in self._heap if self._deadlines.get(e[2]) == e[0]]
            heapq.heapify(self._heap)

    def discard(self, key: K) -> None:
        """Disarm ``key``."""
        self._deadlines.pop(key, None)

    def earliest(self) -> float | None:
        """The earliest armed deadline, or None."""
        heap = self._heap
        while heap and self._deadlines.get(heap[0][2]) != heap[0][0]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def pop_due(self, now: float) -> Iterator[K]:
        """Disarm and yield every key whose deadline is at or before ``now``, earliest first."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            deadline, _, key = heapq.heappop(heap)
            if self._deadlines.get(key) == deadline:
                del self._deadlines[key]
                yield key
