"""The asyncio seam: one :class:`Driver` per node drives the sans-I/O endpoint.

The driver owns the :class:`~seigr_stt.core.endpoint.Endpoint`, the core's clock, the one
drain point (:meth:`Driver.transmit`) and the one timer. Every entry ends in a drain: a batch of
UDP datagrams, a WebSocket message and the timer call :meth:`Driver.transmit` at once; an
application call changes a core session (``driver.session(sid).send_message(...)``) and then
calls :meth:`Driver.transmit_soon`: the first call of a loop turn drains at once (a lone call
adds no latency) and later calls of the turn share one drain at its end (and their records).

A drain sends what the core produced, routes each core event to the handle that owns it (by
session id, to a :class:`SessionHandle`; by handshake handle, to the node), wakes the tasks
waiting for progress (acknowledgements, credit) and re-arms the timer. Handles know the driver,
never the node.

The clock: the core runs on ``time.monotonic()`` (sub-microsecond on Linux), not on
``loop.time()``, which ticks in 1 ms steps on uvloop and would quantise every RTT, PTO and pacing
figure. Only the one wake-up uses the loop's clock: a core deadline is converted to loop time when
the timer is armed (``loop.call_at``), and the timer hands the core at least the deadline it asked
for.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

from seigr_stt.aio.udp import UDPTransport
from seigr_stt.aio.websocket import WSLink
from seigr_stt.constants import RELAY_PACKET_TYPE_FIRST, RELAY_PACKET_TYPE_LAST
from seigr_stt.core.endpoint import Endpoint
from seigr_stt.core.events import Event, HandshakeAborted, SessionEstablished
from seigr_stt.core.link import Link, RelayAddress
from seigr_stt.core.session import Session
from seigr_stt.exceptions import ProtocolError
from seigr_stt.logs import HANDSHAKE_RETRY, RefusalLog, format_addr

__all__ = [
    "SEND_HIGH_WATER_BYTES",
    "YIELD_EVERY_SENDS",
    "Driver",
    "RelayPath",
    "SessionHandle",
    "high_water",
]

#: Senders wait while a session holds more unacknowledged application bytes than this.
SEND_HIGH_WATER_BYTES = 4 * 1024 * 1024


def high_water(base: int, session: Session) -> int:
    """A writer's backpressure mark for ``session``: ``base``, or its stream window when that
    is larger. On a reliable path the peer acknowledges by riding its ACK on credit, which it
    grants after half a stream window is consumed (§14.8, §16.3): a writer held below that
    waits for the 25 ms ACK timer each time (a 4 MiB window moved 64 MB/s over WebSocket across
    the veth path, 446 MB/s with this mark)."""
    return max(base, session.config.stream_window)


#: A task that only sends yields to the event loop at least this often (sends, not seconds:
#: about 0.5 ms of 64 B messages on the project's machine). Each turn of the loop costs both
#: sides a drain, a wake-up and the records of that turn's end; across the veth path a sender
#: of 64 B messages yielding every 32 sends moved 130,000-160,000 messages/s, every 128 sends
#: 200,000-250,000 (docs/performance.md, "4 Dec 2026, third session").
YIELD_EVERY_SENDS = 128
#: The one timer serves a deadline this close (seconds) when it fires, even if armed earlier
#: (the loop's clock ticks in 1 ms steps on uvloop).
TIMER_SLACK_S = 0.001


class SessionHandle(Protocol):
    """What the driver hands a session's core events to (the asyncio session object)."""

    def handle_event(self, event: Event) -> None:
        """Act on one event of this session; must not raise."""


class RelayPath(Protocol):
    """How the driver reaches a peer through one relay (:class:`~seigr_stt.aio.relay.RelayLink`)."""

    def send_to(self, node_id: bytes, packet: bytes) -> None:
        """Send one STT packet to ``node_id`` through the relay."""

    def receive(self, data: bytes) -> None:
        """One relay packet that came from the relay."""

    async def wait_writable(self) -> None:
        """Return once the link to the relay has room in its send queue."""


class Driver:
    """Drives one endpoint on one event loop; see the module docstring."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        on_established: Callable[[SessionEstablished], None],
        on_aborted: Callable[[HandshakeAborted], None],
        logger: logging.Logger | None = None,
    ) -> None:
        self.endpoint = endpoint
        #: Per-record lines (DEBUG) and the rate-limited refusal lines (docs/logging.md).
        self.logger = logger or logging.getLogger("seigr_stt.node")
        self._records_log = logging.getLogger("seigr_stt.records")
        self._debug = False  # the records logger is enabled for DEBUG (read once per drain)
        self.refusals: RefusalLog | None = None
        self._refusals_seen = 0  # drops + INIT retries already handed to the refusal log
        self._on_established = on_established
        self._on_aborted = on_aborted
        self._handles: dict[bytes, SessionHandle] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.udp: UDPTransport | None = None
        self.udp_link: Link | None = None
        #: The relays this node uses, by URL (§17): records to a RelayAddress go through them.
        self.relays: dict[str, RelayPath] = {}
        #: The relays reached over the node's UDP socket, by their address: the socket's relay
        #: packets (types 0x20..0x2F) from there go to them, not to the endpoint.
        self.udp_relays: dict[tuple[str, int], RelayPath] = {}
        self._clock_offset = 0.0  # Unix time minus the core's clock
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._armed_at = 0.0  # the core time the armed loop timer was set for
        self._in_turn = False  # an application call drained in this loop turn
        self._changed_in_turn = False  # a change since the last drain waits for the turn's end
        self._end_scheduled = False  # _end_turn is queued for the end of this turn
        self._sends_since_yield = 0
        # Credit of the messages the application took in this loop turn, by (session id,
        # channel): [credit, messages]. Returned in one step per channel at the turn's next drain.
        self._credits: dict[tuple[bytes, int], list[int]] = {}
        # Made only when a task waits for progress: a drain with no waiter creates nothing.
        self._progress: asyncio.Event | None = None
        self.stopped = False

    def __repr__(self) -> str:
        return f"Driver(handles={len(self._handles)}, timer_at={self._timer_at})"

    @property
    def timer_at(self) -> float | None:
        """The core deadline the one timer serves (the core's clock, :meth:`now`), or None when
        none is armed."""
        return self._timer_at if self._timer is not None else None

    # -- clocks -------------------------------------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Run on ``loop`` from now on (the core's ``now`` is :func:`time.monotonic`)."""
        self.loop = loop
        self._clock_offset = time.time() - time.monotonic()
        self.refusals = RefusalLog(self.logger, loop)

    def now(self) -> float:
        """The core's clock: :func:`time.monotonic` (not the loop's clock, which may tick in
        milliseconds). Raises ProtocolError before :meth:`start`."""
        if self.loop is None:
            raise ProtocolError("node not started: call `await node.start()` first")
        return time.monotonic()

    def loop_time(self, at: float) -> float:
        """A time of the core's clock as the loop's time (for ``loop.call_at``)."""
        assert self.loop is not None
        return at - time.monotonic() + self.loop.time()

    def unix(self, loop_time: float) -> float:
        """A time of the core's clock as Unix time."""
        return loop_time + self._clock_offset

    @staticmethod
    def unix_now() -> float:
        """Unix time now."""
        return time.time()

    # -- sessions and handles -----------------------------------------------------------------
    def session(self, session_id: bytes) -> Session:
        """The core session ``session_id``; raises SessionNotFound. After changing it, call
        :meth:`transmit_soon`."""
        return self.endpoint.session(session_id)

    def get_session(self, session_id: bytes) -> Session | None:
        """The core session ``session_id``, or None once it is gone."""
        return self.endpoint.get_session(session_id)

    def bind(self, session_id: bytes, handle: SessionHandle) -> None:
        """Route the core events of ``session_id`` to ``handle`` until it closes."""
        self._handles[session_id] = handle

    # -- the drain point ----------------------------------------------------------------------
    def transmit(self) -> None:
        """Send what the core produced, route its events, wake waiters, re-arm the timer."""
        if self.loop is None:
            return
        endpoint = self.endpoint
        now = time.monotonic()
        udp = self.udp
        self._changed_in_turn = False  # this drain takes every change made so far
        if self._credits:
            self._return_credits()
        self._note_refusals()
        debug = self._debug = self._records_log.isEnabledFor(logging.DEBUG)
        # Consecutive UDP datagrams to one address go to the socket together (one system call
        # where the kernel offers segmentation offload); the order of everything is kept.
        run: list[bytes] = []
        run_addr: tuple[str, int] = ("", 0)
        for packet, addr in endpoint.datagrams_to_send(now):
            if debug:
                self._log_record("sent", packet, addr)
            if udp is not None and isinstance(addr, tuple):
                if run and addr != run_addr:
                    udp.send_many(run, run_addr)
                    run = []
                run_addr = addr
                run.append(packet)
                continue
            if run and udp is not None:
                udp.send_many(run, run_addr)
                run = []
            if isinstance(addr, WSLink):
                addr.send(packet)
            elif isinstance(addr, RelayAddress):
                relay = self.relays.get(addr.relay)
                if relay is not None:
                    relay.send_to(addr.node_id, packet)
        if run and udp is not None:
            udp.send_many(run, run_addr)
        for event in endpoint.events_received():
            self._route(event)
        # Wake everything waiting for acknowledgements or credit (backpressure, drain()).
        progress = self._progress
        if progress is not None:
            self._progress = None
            progress.set()
        self._rearm(endpoint.get_timer())

    def _note_refusals(self) -> None:
        # Drops and INIT retries are counted by the core; the refusal log turns their growth
        # into rate-limited lines. Cheap when nothing changed: one sum over the reasons seen.
        counters = self.endpoint.counters
        total = counters.drops.total() + counters.handshake_retransmits
        if total != self._refusals_seen and self.refusals is not None:
            self._refusals_seen = total
            seen = dict(counters.drops)
            seen[HANDSHAKE_RETRY] = counters.handshake_retransmits
            self.refusals.update(seen)

    def _log_record(self, direction: str, packet: bytes, addr: object) -> None:
        transport = (
            "websocket"
            if isinstance(addr, WSLink)
            else "relay"
            if isinstance(addr, RelayAddress)
            else "udp"
        )
        where = format_addr(addr)
        self._records_log.debug(
            "%s %d bytes (type %d) %s %s",
            direction,
            len(packet),
            packet[1] if len(packet) > 1 else -1,
            "to" if direction == "sent" else "from",
            where or transport,
            extra={"stt_transport": transport, "stt_addr": where},
        )

    def transmit_soon(self) -> None:
        """The drain point of application calls. The first call of a loop turn drains at once
        (no added latency); later calls in the same turn share one drain at the end of the
        turn, so many small sends fill records together instead of each sealing its own."""
        if self.loop is None or self.stopped:
            return
        if self._in_turn:
            self._changed_in_turn = True
            return
        self._in_turn = True
        self._schedule_end()
        self.transmit()

    def transmit_later(self) -> None:
        """A change with nothing urgent to send (credit returned below the update threshold):
        drained at the end of the loop turn unless a drain takes it first. It does not use up
        the turn's immediate drain, so a reply sent next in the same turn goes out at once."""
        if self.loop is None or self.stopped:
            return
        self._changed_in_turn = True
        self._schedule_end()

    def owe_credit(self, session_id: bytes, channel: int, credit: int) -> None:
        """The application took a message of ``channel`` whose event carried ``credit`` (§16.3).
        The credit goes back to the session at the loop turn's next drain, summed per channel:
        a reader that takes many messages in one turn costs one flow-control step per channel,
        not one per message."""
        if self.loop is None or self.stopped:
            return
        key = (session_id, channel)
        owed = self._credits.get(key)
        if owed is None:
            self._credits[key] = [credit, 1]
        else:
            owed[0] += credit
            owed[1] += 1
        self._changed_in_turn = True
        self._schedule_end()

    def _return_credits(self) -> None:
        credits = self._credits
        self._credits = {}
        get_session = self.endpoint.get_session
        for (session_id, channel), (credit, count) in credits.items():
            session = get_session(session_id)
            if session is not None:  # a session closed since has no window left to free
                session.consume_message(channel, credit, count)

    def _schedule_end(self) -> None:
        if not self._end_scheduled:
            assert self.loop is not None
            self._end_scheduled = True
            self.loop.call_soon(self._end_turn)

    def _end_turn(self) -> None:
        self._in_turn = False
        self._end_scheduled = False
        if self._changed_in_turn and not self.stopped:
            self.transmit()

    def _rearm(self, deadline: float | None) -> None:
        # No churn: a timer already armed for the same or an earlier time stays (when it fires
        # early it re-arms for the later deadline); only an earlier deadline replaces it.
        self._timer_at = deadline
        timer = self._timer
        if timer is not None:
            if deadline is not None and self._armed_at <= deadline:
                return
            timer.cancel()
            self._timer = None
        if deadline is not None and not self.stopped and self.loop is not None:
            self._armed_at = deadline
            self._timer = self.loop.call_at(self.loop_time(deadline), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        assert self.loop is not None
        deadline = self._timer_at
        if deadline is None:
            return
        now = time.monotonic()
        if deadline > self._armed_at and deadline - now > TIMER_SLACK_S:
            self._rearm(deadline)  # armed for an earlier deadline that has since moved
            return
        # The loop may wake a little early by the core's clock (its own clock is coarser):
        # the core still sees the deadline it asked for.
        self._timer_at = None
        self.endpoint.handle_timer(max(now, deadline))
        self.transmit()

    def _route(self, event: Event) -> None:
        if self._debug:
            sid = getattr(event, "session_id", None)
            self._records_log.debug(
                "[%s] %s", sid.hex()[:8] if isinstance(sid, bytes) else "-", type(event).__name__
            )
        if isinstance(event, SessionEstablished):
            self._on_established(event)
        elif isinstance(event, HandshakeAborted):
            self._on_aborted(event)
        else:
            handle = self._handles.get(event.session_id)
            if handle is not None:
                handle.handle_event(event)

    def unbind(self, session_id: bytes) -> None:
        """Stop routing events of ``session_id`` (it closed)."""
        self._handles.pop(session_id, None)

    # -- entries from the transports ----------------------------------------------------------
    def receive_udp(self, data: bytes, addr: tuple[str, int]) -> None:
        """One datagram of a batch; the UDP transport calls :meth:`transmit` after the batch."""
        assert self.loop is not None
        assert self.udp_link is not None
        if self._debug:
            self._log_record("received", data, addr)
        if len(data) > 1 and data[1] >= RELAY_PACKET_TYPE_FIRST and self.udp_relays:
            relay = self.udp_relays.get(addr)
            if relay is not None and data[1] <= RELAY_PACKET_TYPE_LAST:
                relay.receive(data)
                return
        self.endpoint.receive_datagram(data, addr, time.monotonic(), self.udp_link)

    def receive_relayed(self, data: bytes, addr: RelayAddress, link: Link) -> None:
        """One STT packet a relay delivered from ``addr.node_id`` (drained by the caller)."""
        if self._debug:
            self._log_record("received", data, addr)
        self.endpoint.receive_datagram(data, addr, time.monotonic(), link)

    def receive_websocket(self, data: bytes, link: WSLink) -> None:
        """One WebSocket message: processed and drained at once."""
        assert self.loop is not None
        if self._debug:
            self._log_record("received", data, link)
        self.endpoint.receive_datagram(data, link, time.monotonic(), link.link)
        self.transmit()

    # -- waiting ------------------------------------------------------------------------------
    def link_room(self, link: WSLink) -> None:
        """``link``'s send queue drained after lacking room for a record, or emptied while a
        session held back a partial record: those sessions send again at the end of this loop
        turn, so that what the application writes in the turn (it was woken by the same
        drain) fills their records."""
        self.endpoint.room_available(link.room)
        self.transmit_later()

    async def wait_progress(self) -> None:
        """Wait until the next drain (an acknowledgement, new credit, a timer)."""
        if self._progress is None:
            self._progress = asyncio.Event()
        await self._progress.wait()

    async def after_send(self, session_ids: tuple[bytes, ...] | list[bytes]) -> None:
        """Backpressure after an application send: wait while a target session holds more than
        ``SEND_HIGH_WATER_BYTES`` (or its stream window, :func:`high_water`) unacknowledged, or
        its transport's queue is full. Yields at least every ``YIELD_EVERY_SENDS`` calls, so a
        task sending in a loop cannot starve the loop (readers, timers and ``stop()`` run
        there)."""
        self._sends_since_yield += 1
        if self._sends_since_yield >= YIELD_EVERY_SENDS:
            self._sends_since_yield = 0
            await asyncio.sleep(0)
        endpoint = self.endpoint
        for session_id in session_ids:
            session = endpoint.get_session(session_id)
            if session is None:
                continue
            mark = high_water(SEND_HIGH_WATER_BYTES, session)
            if session.send_buffered > mark:
                await self.wait_below(session_id, mark)
                session = endpoint.get_session(session_id)
                if session is None:
                    continue
            addr = session.addr
            if type(addr) is tuple:
                continue  # UDP: the socket's queue is checked below, once
            if isinstance(addr, WSLink):
                await addr.wait_writable()
            elif isinstance(addr, RelayAddress):
                relay = self.relays.get(addr.relay)
                if relay is not None:
                    await relay.wait_writable()
        if self.udp is not None and self.udp.queued:
            await self.udp.wait_writable()

    async def wait_below(self, session_id: bytes, high_water: int) -> None:
        """Wait while the session holds more than ``high_water`` unacknowledged bytes (or until
        it is gone or the driver stopped)."""
        while not self.stopped:
            session = self.endpoint.get_session(session_id)
            if session is None or session.send_buffered <= high_water:
                return
            await self.wait_progress()

    def stop(self) -> None:
        """Stop draining and cancel the timer (the node stops)."""
        self.stopped = True
        if self.refusals is not None:
            self._note_refusals()
            self.refusals.close()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = None
        if self._progress is not None:
            self._progress.set()
