"""One authenticated session, sans-I/O (``docs/protocol.md`` §5–§9, §14–§16).

The endpoint creates a :class:`Session` when a handshake completes; the session composes the
pieces that do the work (:mod:`~seigr_stt.core.keys`, :mod:`~seigr_stt.core.recovery`,
:mod:`~seigr_stt.core.flow`, :mod:`~seigr_stt.core.channels`, :mod:`~seigr_stt.core.pmtu`,
:mod:`~seigr_stt.core.packetizer`, :mod:`~seigr_stt.core.timers`) and owns the order of things:

* network -> core: :meth:`receive_record` (the header already parsed) authenticates a record and
  hands each frame to its handler in :data:`FRAME_HANDLERS`; it returns a drop reason or None;
* app -> core: :meth:`send_message`, :meth:`send_datagram`, :meth:`open_stream`,
  :meth:`write_stream`, :meth:`reset_stream`, :meth:`consume_message`, :meth:`consume_stream`,
  :meth:`request_rotation`, :meth:`ping`, :meth:`close`, :meth:`abort`. Each of them, and every
  other entry that changes the session, calls the ``on_change`` callback the endpoint gave it;
  after any of them the adapter calls ``Endpoint.datagrams_to_send`` (the endpoint then calls
  :meth:`flush`);
* core -> network: :meth:`flush` returns the records due now;
* time: :meth:`get_timer` returns the next deadline, :meth:`handle_timer` handles it;
* events accumulate in :attr:`events` for the endpoint to collect.

Nothing here reads a clock: every method that depends on time takes ``now``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable
from typing import Any

from seigr_stt.config import SessionConfig
from seigr_stt.constants import (
    ACK_DELAY_EXPONENT,
    AEAD_INTEGRITY_LIMIT,
    CLOSE_ATTEMPTS,
    DEAD_PEER_MIN_PTOS,
    DEAD_PEER_PTO_DIVISOR,
    PATH_DEGRADED_PTO_COUNT,
    PATH_QUIET_PTOS,
    PATH_STANDBY_MAX,
    CloseCode,
    FrameType,
    SessionState,
)
from seigr_stt.core.channels import MessageChannels
from seigr_stt.core.events import (
    DatagramReceived,
    Event,
    PathChanged,
    PathDegraded,
    PathsAnnounced,
    PeerAddressChanged,
    PongReceived,
    SessionEstablished,
    stream_data_received,
)
from seigr_stt.core.flow import MAX_CHANNEL, StreamTable, is_message_channel
from seigr_stt.core.frames import (
    FRAMES,
    Ack,
    Close,
    Datagram,
    Frame,
    MaxData,
    MaxStreamData,
    MaxStreams,
    Paths,
    Ping,
    Pong,
    RatchetInit,
    RatchetReply,
    ResetStream,
    StopSending,
    Stream,
    frame_size,
    is_ack_eliciting,
    parse_frames,
)
from seigr_stt.core.handshake import HandshakeResult
from seigr_stt.core.keys import SLOT_NEXT, KeySchedule, RotationPolicy
from seigr_stt.core.lifecycle import STATE_TRANSITIONS, SessionLifecycle
from seigr_stt.core.link import Link, TransportKind
from seigr_stt.core.packetizer import RecordBuilder
from seigr_stt.core.path import PathProbe, PathValidator
from seigr_stt.core.pmtu import PathMtuProber
from seigr_stt.core.ratchet import DhRatchet
from seigr_stt.core.record import RecordHeader, open_record
from seigr_stt.core.recovery import AckTracker, LossRecovery, RttEstimator, SentRecord
from seigr_stt.core.stats import DropReason, SessionCounters
from seigr_stt.core.timers import SessionTimers
from seigr_stt.exceptions import (
    DecryptError,
    FrameError,
    PeerViolation,
    RecordError,
)

__all__ = ["FRAME_HANDLERS", "MAX_CHANNEL", "STATE_TRANSITIONS", "Session"]


@functools.lru_cache(maxsize=16)
def _pto_cap(dead_peer_timeout_s: float) -> float:
    """The cap of the backed-off probe timeout (§14.5): one float shared by every session of
    a configuration, not one per session."""
    return dead_peer_timeout_s / DEAD_PEER_PTO_DIVISOR


class Session(SessionLifecycle):
    """The protocol state of one session; see the module docstring for the driving contract."""

    # Slots: with this many attributes an instance dict costs ~1.6 KiB per session
    # (docs/performance.md, memory per idle session). "__dict__" is made only if a tool or test
    # sets an attribute of its own (a bench timing a method, a hostile member's leniency).
    __slots__ = (
        "__dict__",
        "_degraded",
        "_on_change",
        "_path_received_at",
        "_record_addr",
        "_record_link",
        "_reprobe_at",
        "acks",
        "addr",
        "channels",
        "config",
        "counters",
        "created_at",
        "events",
        "final_digest",
        "initiator",
        "keys",
        "link",
        "local_index",
        "packetizer",
        "path",
        "peer_capabilities",
        "peer_index",
        "peer_node_id",
        "peer_static",
        "pmtu",
        "ratchet",
        "recovery",
        "rotation",
        "session_id",
        "standby",
        "streams",
        "timers",
    )

    def __init__(
        self,
        result: HandshakeResult,
        addr: Hashable,
        link: Link,
        now: float,
        *,
        config: SessionConfig,
        handle: int | None = None,
        on_change: Callable[[Session], None] | None = None,
        rtt_sample_s: float | None = None,
        rng: Callable[[int], bytes] | None = None,
    ) -> None:
        self.session_id = result.session_id
        self.local_index = result.local_index
        self.peer_index = result.peer_index
        self.peer_node_id = result.peer_node_id
        self.peer_static = result.peer_static
        self.peer_capabilities = result.peer_capabilities
        self.initiator = result.initiator
        self.final_digest: bytes | None = None  # responder: digest of the FINAL it accepted
        self.handle = handle  # the initiator's connect() handle
        self.addr = addr
        self.link = link
        self.config = config
        self.created_at = now
        self._on_change = on_change
        self.events: list[Event] = []  # a list: an empty deque costs ~600 bytes per session
        self.counters = SessionCounters()
        self.close_code: int | None = None
        self.close_reason = ""
        self.closed_by_peer = False
        self._close_attempts = 0
        self._close_after_flush = False  # the peer closed: our answer goes out, then CLOSED
        self._ping_token = 0
        self.keys = KeySchedule(result.send_key, result.recv_key, result.exporter, now)
        self.rotation = RotationPolicy(config.rekey_after_s, config.rekey_after_messages)
        self.recovery = LossRecovery()
        self.recovery.max_pto_s = _pto_cap(config.dead_peer_timeout_s)
        if rtt_sample_s is not None:
            # The handshake's round trip is the first RTT sample (§14.3): timers, the pacer and
            # the rotation interval start from the path's delay, not the 100 ms default.
            self.recovery.rtt.update(rtt_sample_s, 0.0)
        self.acks = AckTracker()
        self.timers = SessionTimers(config, now, initiator=self.initiator)
        self.pmtu = PathMtuProber(link.record_size, link.probe_max)
        self.path = PathValidator(rng if rng is not None else _no_rng)
        self._record_addr: Hashable = addr  # the source of the record being processed
        self._record_link: Link = link  # and the link it came by
        #: Other paths the session knows (§18): ``(address, link)``, best first when probed.
        #: A tuple, replaced on change: the empty one is shared (a list costs 56 bytes each).
        self.standby: tuple[tuple[Hashable, Link], ...] = ()
        self._degraded = False  # PATH_DEGRADED_PTO_COUNT probe timeouts on the current path
        self._path_received_at = now  # the last authenticated record by the current path
        self._reprobe_at: float | None = None  # when better standby paths are probed again
        side = 0 if result.initiator else 1
        self.streams = StreamTable(self.session_id, side, config, self.events, self.counters)
        self.channels = MessageChannels(
            self.session_id, config, self.streams, self.events, self.counters
        )
        self.packetizer = RecordBuilder(
            self.session_id,
            self.keys,
            self.acks,
            self.recovery,
            self.streams,
            self.pmtu,
            self.counters,
            self.timers,
        )
        # A reliable transport (WebSocket) carries no congestion control or loss detection
        # (§14.8); a later move to a link of another kind calls set_reliable again.
        self.packetizer.set_reliable(link.reliable, link.room)
        self.ratchet = DhRatchet(
            rng,
            self.packetizer.reliable,
            now,
            initiator=self.initiator,
            interval_s=config.ratchet_interval_s,
        )
        if self.initiator:
            # Keys are confirmed by the responder's first record (§4.5); until then the
            # endpoint's handshake table retransmits FINAL.
            self.state = SessionState.HANDSHAKE
        else:
            self.state = SessionState.ACTIVE
            self.packetizer.want_record = True  # key confirmation for the initiator (§4.5)
            self.events.append(
                SessionEstablished(self.session_id, self.peer_node_id, addr, False, None)
            )

    def __repr__(self) -> str:
        return (
            f"Session(id={self.session_id.hex()}, state={self.state.name}, "
            f"key_version={self.keys.send_epoch})"
        )

    # -- properties ---------------------------------------------------------------------------
    @property
    def key_version(self) -> int:
        """The send epoch: 0 after the handshake, +1 per rotation."""
        return self.keys.send_epoch

    @property
    def confirmed_key_version(self) -> int:
        """The newest key version the peer has been seen to use too (a KeyRotated event)."""
        return self.rotation.confirmed_version

    @property
    def is_active(self) -> bool:
        """Whether the session can carry data."""
        return self.state == SessionState.ACTIVE

    @property
    def last_sent_at(self) -> float | None:
        """When the last record was sent (``now`` clock), or None."""
        return self.timers.last_sent_at

    @property
    def last_received_at(self) -> float | None:
        """When the last authenticated record arrived (``now`` clock), or None."""
        return self.timers.last_received_at

    @property
    def max_record_size(self) -> int:
        """The largest record sent now (grows with path-MTU probing, §12.1)."""
        return self.pmtu.size

    # -- network -> core ----------------------------------------------------------------------
    def receive_record(
        self,
        packet: bytes,
        header: RecordHeader,
        addr: Hashable,
        now: float,
        link: Link | None = None,
    ) -> DropReason | None:
        """Authenticate and process one record from ``addr`` (by ``link``, default the
        session's); return a drop reason, or None if accepted.

        Order (§5.3): link -> key by epoch -> replay pre-check -> AEAD -> replay window -> key
        promotion -> path validation -> frames. Nothing before the AEAD changes any state. Then
        call ``Endpoint.datagrams_to_send``.
        """
        if self._takes_no_input():
            return DropReason.CLOSED_SESSION
        if link is None:
            link = self.link
        elif (
            link is not self.link
            and not self.config.migration
            and (link.kind != TransportKind.UDP or self.link.kind != TransportKind.UDP)
        ):
            # Without migration a session lives on the transport it was established on: a
            # record of a UDP session replayed over WebSocket (or the reverse) is not the peer
            # moving (audit F4). Dropped before authentication. With migration (§18) such a
            # record only makes its path a candidate, validated as any new address (§5.5).
            return DropReason.WRONG_LINK
        keys = self.keys
        selected = keys.select_receive_key(header.epoch, now)
        if selected is None:
            self.counters.epoch_drops += 1
            return DropReason.EPOCH
        slot, aead = selected
        if not keys.replay.check(header.counter):
            self.counters.replays_dropped += 1
            return DropReason.REPLAY
        try:
            frames_bytes = open_record(aead, packet, header.counter)
        except DecryptError:
            self.counters.auth_failures += 1
            if keys.count_forgery(slot) >= AEAD_INTEGRITY_LIMIT:
                # Past this many forgery attempts a key no longer guarantees integrity
                # (RFC 9001 §6.6); the peer rotates every 120 s, so only a flood gets here.
                self.close(CloseCode.AEAD_LIMIT_REACHED, "AEAD integrity limit reached", now)
            return DropReason.AUTH
        except RecordError:
            self._protocol_violation(now, "invalid record padding")
            return None
        highest = keys.replay.highest
        if not keys.replay.accept(header.counter):  # pragma: no cover - check() just passed
            self.counters.replays_dropped += 1
            return DropReason.REPLAY
        # Authenticated from here on.
        self.counters.packets_received += 1
        self.counters.bytes_received += len(packet)
        self.timers.on_authenticated_received(now)
        # The RTT only sizes the old key's grace period on a promotion (a record of the next
        # epoch): not worked out for every other record.
        rtt_s = self._rtt() if slot == SLOT_NEXT else 0.0
        if keys.after_authenticated(slot, header.echo, now, rtt_s):
            self.packetizer.want_record = True  # carry the new echo back at once
        self._record_addr = addr
        self._record_link = link
        if addr != self.addr:
            # A new address is only a candidate until it answers a challenge (§5.3): the
            # session keeps its path, and a spoofed source gets at most 3x what it sent.
            newest = highest is None or header.counter > highest
            if newest and not self._may_follow(link, now):
                newest = False  # a straggler by a worse path while ours still works (§18)
            token = self.path.on_record(addr, len(packet), newest, now, self._ping_token, link)
            if token is not None:
                self._ping_token = token  # application PINGs continue above the challenge
        else:
            self._path_received_at = now
        if self.state == SessionState.HANDSHAKE:
            self._set_state(SessionState.ACTIVE)
            self.events.append(
                SessionEstablished(self.session_id, self.peer_node_id, self.addr, True, self.handle)
            )
        if keys.send_epoch > self.rotation.confirmed_version:  # else nothing to report
            self._report_confirmed()
        try:
            frames = parse_frames(frames_bytes)
        except FrameError as exc:
            self._protocol_violation(now, str(exc))
            return None
        eliciting = is_ack_eliciting(frames)
        self.acks.on_received(header.counter, eliciting, now)
        if eliciting:
            self.timers.on_ack_eliciting_received(now)
        for frame in frames:
            if self._takes_no_input():
                break
            handler, states = _HANDLERS_BY_CLASS[type(frame)]
            if self.state in states:
                try:
                    handler(self, frame, now)
                except PeerViolation as exc:
                    self._protocol_violation(now, str(exc))
        self._maybe_rotate(now)
        if self.timers.drain_at is not None:
            self._maybe_finish_drain(now)
        self._changed()
        return None

    def _handle_stream(self, frame: Stream, now: float) -> None:
        received = self.streams.receive(frame)
        if received is None:
            return
        stream, data = received
        self.timers.on_application_data(now)
        if is_message_channel(frame.stream_id):
            self.channels.deliver(frame.stream_id, stream, data)
            return
        fin = self.streams.fin_to_report(frame.stream_id, stream)
        if data or fin:
            self.events.append(stream_data_received(self.session_id, frame.stream_id, data, fin))
        self.streams.maybe_forget(frame.stream_id)

    def _handle_datagram(self, frame: Datagram, now: float) -> None:
        self.timers.on_application_data(now)
        self.counters.datagrams_received += 1
        self.events.append(DatagramReceived(self.session_id, frame.data))

    def _handle_ping(self, frame: Ping, now: float) -> None:
        if frame.token:
            # A PING asks for its PONG at once (§6), and the record carrying the PONG carries
            # the owed ACK (§14.2): due now. PING(0), a probe, keeps the usual ACK rule.
            self.acks.expedite(now)
        if self._record_addr != self.addr:
            # From a path being validated: answered there too, so that a peer validating it
            # gets its PONG by that path (§18).
            self.path.on_ping(self._record_addr, frame.token)
        if frame.token > self.packetizer.pong_token:
            # One PONG answers every PING so far: the latest token (§6), sent once.
            self.packetizer.pong_token = frame.token

    def _handle_pong(self, frame: Pong, now: float) -> None:
        validated = self.path.validate(frame.token, self._record_addr)
        if validated is not None:
            addr, link, local = validated
            new_link = link if isinstance(link, Link) else self.link
            if not local or self._degraded or _rank(new_link) > _rank(self.link):
                self._move_to(addr, new_link, now)
            else:
                self._remember(addr, new_link)  # it works; kept for when ours does not
        if self._ping_token and frame.token >= self._ping_token:
            # The peer answers only its latest PING: our own PINGs before it are answered too.
            self.events.append(PongReceived(self.session_id, self._ping_token))
        elif 0 < frame.token < self._ping_token:
            self.events.append(PongReceived(self.session_id, frame.token))

    def _move_to(self, addr: Hashable, link: Link | None = None, now: float = 0.0) -> None:
        """The peer answered a challenge from ``addr`` (by ``link``, default the session's):
        send there from now on. On another host the path is new: congestion control and the
        record size start over (RFC 9000 §9.4). On another link (§18) the RTT starts over too,
        and every record in flight on the old path is sent again on the new one."""
        old, self.addr = self.addr, addr
        old_link = self.link
        new_link = link if link is not None else old_link
        self.link = new_link
        self.path.discard(addr)
        self.standby = tuple((a, lk) for a, lk in self.standby if a != addr)
        if new_link is not old_link or old_link.source_of(old) != new_link.source_of(addr):
            self.pmtu = PathMtuProber(new_link.record_size, new_link.probe_max)
            self.packetizer.new_path(self.pmtu)
        if new_link is not old_link:
            # A reliable path (WebSocket) has no window, pacing or loss detection (§14.8): set
            # for the new one before what was in flight is handed back below.
            self.packetizer.set_reliable(new_link.reliable, new_link.room)
            self.recovery.rtt = RttEstimator()
            self.recovery.pto_count = 0
            for record in self.recovery.forget_all():
                for frame, on_delivery in record.frames:
                    on_delivery(frame, False)
        self._remember(old, old_link)
        self._degraded = False
        self._path_received_at = now
        self._reprobe_at = (
            now + self.config.path_reprobe_interval_s
            if any(_rank(lk) > _rank(new_link) for _, lk in self.standby)
            else None
        )
        self.events.append(PeerAddressChanged(self.session_id, old, addr))
        self.events.append(
            PathChanged(self.session_id, old, addr, str(old_link.kind), str(new_link.kind))
        )

    # -- paths (§18) ----------------------------------------------------------------------------
    @property
    def transport(self) -> str:
        """The kind of the path in use: ``"udp"``, ``"websocket"`` or ``"relay"``."""
        return str(self.link.kind)

    @property
    def degraded(self) -> bool:
        """Whether the current path stopped answering (and other paths are being probed)."""
        return self._degraded

    def _may_follow(self, link: Link, now: float) -> bool:
        """Whether a record by ``link`` may make its path a candidate: always on an equal or
        better kind of path; on a worse one only once ours has been silent for
        ``PATH_QUIET_PTOS`` probe timeouts (or is degraded), so that stragglers of a path the
        peer just left do not pull the session back."""
        if _rank(link) >= _rank(self.link) or self._degraded:
            return True
        return now - self._path_received_at > PATH_QUIET_PTOS * self.recovery.rtt.pto_s()

    def _remember(self, addr: Hashable, link: Link) -> None:
        if addr == self.addr:
            return
        others = [(a, lk) for a, lk in self.standby if a != addr]
        self.standby = ((addr, link), *others)[:PATH_STANDBY_MAX]

    def add_path(self, addr: Hashable, link: Link, now: float, *, probe: bool = True) -> None:
        """Another path to the peer (§18): ``addr`` by ``link`` (a WebSocket the adapter opened,
        a UDP address the peer announced). The session keeps it as a standby path and, with
        ``probe``, validates it now; it moves there once it answers if it is a better kind of
        path (UDP over WebSocket over relay) or the current one is degraded. Then call
        ``Endpoint.datagrams_to_send``. Without ``config.migration`` nothing happens."""
        if not self.config.migration or addr == self.addr or not self.is_active:
            return
        self._remember(addr, link)
        if probe:
            self._probe(addr, link, now)
        if _rank(link) > _rank(self.link) and self._reprobe_at is None:
            self._reprobe_at = now + self.config.path_reprobe_interval_s
        self._changed()

    def probe_path(self, addr: Hashable, link: Link, now: float) -> None:
        """``add_path(addr, link, now, probe=True)``."""
        self.add_path(addr, link, now, probe=True)

    def forget_path(self, addr: Hashable) -> None:
        """``addr`` is no longer usable (its link closed): no longer a standby path nor
        validated. The current path is not touched (``Endpoint.abort_address`` ends it)."""
        self.standby = tuple((a, lk) for a, lk in self.standby if a != addr)
        self.path.discard(addr)

    def announce_paths(
        self, udp: tuple[tuple[str, int], ...], websocket: tuple[str, ...] = ()
    ) -> None:
        """Tell the peer our other addresses (a PATHS frame, sent reliably): UDP ``(ip, port)``
        pairs (IP literals) and WebSocket URLs, at most ``PATHS_MAX_ENTRIES`` in all. Raises
        ValueError for what PATHS cannot carry. Then call ``Endpoint.datagrams_to_send``."""
        frame = Paths(tuple((str(h), int(p)) for h, p in udp), tuple(websocket))
        frame_size(frame)  # ValueError now rather than when the record is sealed
        self.packetizer.reliable.append((frame, self._on_paths_delivery))
        self._changed()

    def _on_paths_delivery(self, frame: Frame, acked: bool) -> None:
        if not acked and self.state == SessionState.ACTIVE:
            self.packetizer.reliable.append((frame, self._on_paths_delivery))

    def _handle_paths(self, frame: Paths, now: float) -> None:
        self.events.append(PathsAnnounced(self.session_id, frame.udp, frame.websocket))

    def _probe(self, addr: Hashable, link: Link, now: float) -> None:
        token = self.path.probe(addr, link, now, self._ping_token)
        if token is not None:
            self._ping_token = token

    def _on_degraded(self, now: float) -> None:
        """The path stopped answering: probe every other path known (§18)."""
        self._degraded = True
        self.events.append(PathDegraded(self.session_id, self.addr, self.transport))
        for addr, link in self.standby:
            self._probe(addr, link, now)

    def _reprobe(self, now: float) -> None:
        """Probe the standby paths better than the current one; again after the interval."""
        better = [(a, lk) for a, lk in self.standby if _rank(lk) > _rank(self.link)]
        for addr, link in better:
            self._probe(addr, link, now)
        self._reprobe_at = now + self.config.path_reprobe_interval_s if better else None

    def _handle_ratchet_init(self, frame: RatchetInit, now: float) -> None:
        self.ratchet.on_init(frame, self.keys, now)

    def _handle_ratchet_reply(self, frame: RatchetReply, now: float) -> None:
        self.ratchet.on_reply(frame, self.keys, self.rotation, now)

    def _handle_max_data(self, frame: MaxData, now: float) -> None:
        self.streams.on_max_data(frame)

    def _handle_max_stream_data(self, frame: MaxStreamData, now: float) -> None:
        self.streams.on_max_stream_data(frame)

    def _handle_max_streams(self, frame: MaxStreams, now: float) -> None:
        self.streams.on_max_streams(frame)

    def _handle_reset_stream(self, frame: ResetStream, now: float) -> None:
        self.streams.on_reset(frame)

    def _handle_stop_sending(self, frame: StopSending, now: float) -> None:
        self.streams.on_stop_sending(frame)

    # -- acknowledgements and loss (§14) ------------------------------------------------------
    def _handle_ack(self, frame: Ack, now: float) -> None:
        largest = frame.ranges[0][1]
        if largest >= self.keys.send_counter:
            raise PeerViolation("acknowledgement of a record never sent")
        delay_s = (frame.delay << ACK_DELAY_EXPONENT) / 1_000_000
        recovery = self.recovery
        cc = self.packetizer.cc
        spurious = recovery.spurious_losses
        acked, lost, persistent = recovery.on_ack(largest, delay_s, list(frame.ranges), now)
        if recovery.spurious_losses > spurious and not lost:
            cc.undo()  # the window was cut for reordering, not loss
        pmtu = self.pmtu
        windowed = not self.packetizer.reliable_path  # no window on a reliable path (§15.4)
        for record in acked:
            if record.counter == pmtu.probe_counter and pmtu.on_acked(record.counter, record.size):
                self.packetizer.set_record_size(pmtu.size)
                continue
            if windowed:
                cc.on_acked(record.size, record.time_sent, False)
            for delivered, on_delivery in record.frames:
                on_delivery(delivered, True)
        if lost:
            self._on_lost(lost, now, persistent)
        if self._degraded and recovery.pto_count == 0:
            self._degraded = False  # the path answers again
        self._maybe_finish_drain(now)

    def _on_lost(self, lost: list[SentRecord], now: float, persistent: bool) -> None:
        # A lost probe suggests the path's MTU is below its size: not a congestion signal.
        lost = [record for record in lost if not self.pmtu.on_lost(record.counter)]
        if not lost:
            return
        self.counters.packets_lost += len(lost)
        for record in lost:
            for frame, on_delivery in record.frames:
                on_delivery(frame, False)
        self.packetizer.cc.on_lost(max(r.time_sent for r in lost), now, persistent)

    # -- core -> network ----------------------------------------------------------------------
    def flush(self, now: float) -> list[tuple[bytes, Hashable]]:
        """Return every ``(record, address)`` due now, in order: queued frames,
        acknowledgements and stream data within the congestion window and pacer, coalesced, to
        :attr:`addr`; a path challenge to a candidate address. The endpoint calls this; an
        adapter calls ``Endpoint.datagrams_to_send``."""
        out: list[tuple[bytes, Hashable]] = []
        if self.state in (SessionState.ACTIVE, SessionState.CLOSING):
            packetizer = self.packetizer
            if packetizer.pending or self.streams.has_stream_data:
                # Rotation by count is due after *sending*; a node that only sends would
                # otherwise wait for a received record or a timer to notice (§7).
                self._maybe_rotate(now)
            if packetizer.has_output(now):
                addr = self.addr
                active = self.state == SessionState.ACTIVE
                out = [(record, addr) for record in packetizer.build(now, active=active)]
            if self.state == SessionState.ACTIVE:
                for probe in self.path.probes_due(now):
                    record = packetizer.seal_probe(_probe_frames(probe), now)
                    self.path.on_probe_sent(probe, len(record), now, self.recovery.rtt.pto_s())
                    out.append((record, probe.addr))
        if self._close_after_flush:
            self._finish_close()
        return out

    # -- timers (§8) --------------------------------------------------------------------------
    def _dead_peer_waits_for_probes(self) -> bool:
        """The dead-peer time has passed, but a live peer behind heavy loss may still answer:
        while fewer than ``DEAD_PEER_MIN_PTOS`` probe timeouts in a row have passed and another
        probe is due, move the dead-peer deadline to that probe's and return True (§8)."""
        recovery = self.recovery
        if recovery.reliable or recovery.pto_count >= DEAD_PEER_MIN_PTOS:
            return False
        next_probe = recovery.get_timer() if self._recovering() else None
        if next_probe is None:
            return False
        self.timers.dead_peer_at = next_probe
        return True

    def _recovering(self) -> bool:
        """Whether loss detection runs: while active and while a close drains. Once CLOSE went
        out, only its own retransmission (§9) repeats it; probes would add nothing."""
        return self.state == SessionState.ACTIVE or self.timers.drain_at is not None

    def get_timer(self) -> float | None:
        """The next deadline of this session (seconds, same clock as ``now``), or None. A
        session still in its handshake has none: the endpoint's handshake table times it."""
        state = self.state
        if state == SessionState.ACTIVE:
            # Asked after every drain: one C-level min() over every deadline, None as +inf,
            # rather than a list built and filtered (same deadlines as the CLOSING branch's).
            timers = self.timers
            keys = self.keys
            rotation = self.rotation
            ack_at = self.acks.ack_due_at
            loss_at = self.recovery.get_timer()
            pace_at = self.packetizer.pace_at()
            path_at = self.path.get_timer()
            # The rotation interval (a PTO computation) matters only to a requested rotation.
            rotate_at = rotation.get_timer(
                keys, self._rotation_interval() if rotation.requested else 0.0
            )
            erase_at = keys.get_timer()
            ratchet_at = self.ratchet.due_at()
            reprobe_at = self._reprobe_at
            return min(
                _INF if reprobe_at is None else reprobe_at,
                _INF if ratchet_at is None else ratchet_at,
                keys.reject_at,
                _INF if ack_at is None else ack_at,
                _INF if loss_at is None else loss_at,
                _INF if pace_at is None else pace_at,
                _INF if timers.idle_at is None else timers.idle_at,
                _INF if timers.keepalive_at is None else timers.keepalive_at,
                _INF if timers.persistent_at is None else timers.persistent_at,
                _INF if timers.heartbeat_at is None else timers.heartbeat_at,
                _INF if timers.dead_peer_at is None else timers.dead_peer_at,
                _INF if timers.close_retry_at is None else timers.close_retry_at,
                _INF if timers.drain_at is None else timers.drain_at,
                _INF if path_at is None else path_at,
                _INF if rotate_at is None else rotate_at,
                _INF if erase_at is None else erase_at,
            )
        if state != SessionState.CLOSING:  # CLOSED, HANDSHAKE
            return None
        timers = self.timers
        loss_at = self.recovery.get_timer() if self._recovering() else None
        deadlines = [
            at
            for at in (
                self.acks.ack_due_at,
                loss_at,
                self.packetizer.pace_at(),
                timers.close_retry_at,
                timers.drain_at,
            )
            if at is not None
        ]
        return min(deadlines, default=None)

    def handle_timer(self, now: float) -> None:
        """Handle every deadline that is due at ``now`` (extra calls are harmless); then call
        ``Endpoint.datagrams_to_send``."""
        if self.state in (SessionState.CLOSED, SessionState.HANDSHAKE):
            return
        timers = self.timers
        lost, probe = self.recovery.on_timeout(now) if self._recovering() else ([], False)
        if lost:
            self._on_lost(lost, now, False)
        if probe:
            self.packetizer.probe = True
            if self.pmtu.on_probe_timeout(self.recovery.pto_count, now):
                self.packetizer.set_record_size(self.pmtu.size)
            self.packetizer.pending.append(Ping(0))  # ack-eliciting, no PONG wanted (§14.3)
            if (
                self.recovery.pto_count >= PATH_DEGRADED_PTO_COUNT
                and not self._degraded
                and self.state == SessionState.ACTIVE
                and self.config.migration
            ):
                self._on_degraded(now)
        if self.state == SessionState.CLOSING:
            if timers.drain_at is not None:
                self._maybe_finish_drain(now)
            elif timers.due(timers.close_retry_at, now):
                if self._close_attempts >= CLOSE_ATTEMPTS:
                    self._finish_close()
                else:
                    self._close_attempts += 1
                    self.packetizer.pending.append(
                        Close(self.close_code or CloseCode.NORMAL, self.close_reason)
                    )
                    timers.on_close_sent(now, self._rtt())
            self._changed()
            return
        self.keys.handle_timer(now)
        self.path.handle_timer(now)
        if self._reprobe_at is not None and now >= self._reprobe_at:
            self._reprobe(now)
        if now >= self.keys.reject_at:
            self.close(CloseCode.KEY_EXPIRED, "keys expired before a rotation completed", now)
        elif timers.due(timers.dead_peer_at, now) and not self._dead_peer_waits_for_probes():
            self.close_code = CloseCode.DEAD_PEER
            self.close_reason = "peer did not answer"
            self._finish_close()
        elif timers.due(timers.idle_at, now):
            self.close(CloseCode.IDLE_TIMEOUT, "idle timeout", now)
        else:
            if timers.due(timers.keepalive_at, now) or timers.due(timers.persistent_at, now):
                self.packetizer.want_record = True  # keepalive; persistent: NAT mappings (§8)
            if timers.due(timers.heartbeat_at, now):
                # Silence for ping_interval_s: a record the peer must acknowledge, so that a
                # vanished peer trips the dead-peer timer even when nothing else is sent (§8).
                self.packetizer.pending.append(Ping(0))
                timers.on_heartbeat_sent(now)
            self._maybe_rotate(now)
        self._changed()


_INF = float("inf")

#: How much a session prefers each kind of path (§18): direct UDP, then WebSocket, then relay.
_RANKS = {TransportKind.UDP: 2, TransportKind.WEBSOCKET: 1, TransportKind.RELAY: 0}


def _rank(link: Link) -> int:
    return _RANKS.get(link.kind, 0)


def _probe_frames(probe: PathProbe) -> list[Frame]:
    """A path-validation record: the answer owed there first, then our challenge."""
    frames: list[Frame] = []
    if probe.pong:
        frames.append(Pong(probe.pong))
    if probe.ping:
        frames.append(Ping(probe.ping))
    return frames


def _no_rng(n: int) -> bytes:
    raise ValueError("this session was made without randomness: it cannot validate a new path")


_ACTIVE = frozenset({SessionState.ACTIVE})
_OPEN = frozenset({SessionState.ACTIVE, SessionState.CLOSING})

#: Each frame type's handler and the states in which it is processed (ignored in the others;
#: frames are processed only once the session is ACTIVE). A CLOSING session ignores received
#: data (§9) but still takes acknowledgements and credit, which its draining close needs.
FRAME_HANDLERS: dict[FrameType, tuple[Callable[[Session, Any, float], None], frozenset[int]]] = {
    FrameType.PING: (Session._handle_ping, _OPEN),
    FrameType.PONG: (Session._handle_pong, _OPEN),
    FrameType.DATAGRAM: (Session._handle_datagram, _ACTIVE),
    FrameType.CLOSE: (Session._handle_close, _OPEN),
    FrameType.ACK: (Session._handle_ack, _OPEN),
    FrameType.STREAM: (Session._handle_stream, _ACTIVE),
    FrameType.RESET_STREAM: (Session._handle_reset_stream, _OPEN),
    FrameType.STOP_SENDING: (Session._handle_stop_sending, _OPEN),
    FrameType.MAX_DATA: (Session._handle_max_data, _OPEN),
    FrameType.MAX_STREAM_DATA: (Session._handle_max_stream_data, _OPEN),
    FrameType.MAX_STREAMS: (Session._handle_max_streams, _OPEN),
    FrameType.RATCHET_INIT: (Session._handle_ratchet_init, _ACTIVE),
    FrameType.RATCHET_REPLY: (Session._handle_ratchet_reply, _ACTIVE),
    FrameType.PATHS: (Session._handle_paths, _ACTIVE),
}
assert FRAME_HANDLERS.keys() == FRAMES.keys(), "every frame type needs a handler"
_HANDLERS_BY_CLASS: dict[type[Frame], tuple[Callable[[Session, Any, float], None], frozenset[int]]]
_HANDLERS_BY_CLASS = {FRAMES[t].cls: entry for t, entry in FRAME_HANDLERS.items()}
