"""Building records: frames, an ACK and stream data sealed into records (§5, §14, §15).

:class:`RecordBuilder` is the only place a session seals records. Each call to :meth:`build`
fills records up to the current record size with, in order: an ACK when one is owed (or rides
along for free), queued one-shot frames (PING, PONG, DATAGRAM, CLOSE), control and credit frames,
then stream data in turn while the congestion window and the pacer allow. Every frame that must
survive loss is recorded with its delivery handler; recovery calls it back with ``acked``.

Over a reliable transport (:meth:`RecordBuilder.set_reliable`, §14.8, §15.4) neither the congestion
window nor the pacer holds anything back: records are filled to the record size (the transport's
message limit) with whatever flow control allows while the transport's send queue has room for
a whole record (:class:`~seigr_stt.core.link.SendRoom`), and an ACK rides only on records that carry
other frames than stream data (credit, control, PONG, CLOSE) or goes when it is due.
"""

from __future__ import annotations

from collections.abc import Callable

from seigr_stt.constants import MAX_FRAMES_PER_RECORD, PACING_BURST_PACKETS
from seigr_stt.core.congestion import NewReno, Pacer
from seigr_stt.core.flow import StreamTable
from seigr_stt.core.frames import (
    ACK_ELICITING,
    Ack,
    Frame,
    Ping,
    Pong,
    frame_size,
    serialize_frames,
    write_frame,
)
from seigr_stt.core.keys import KeySchedule
from seigr_stt.core.link import SendRoom
from seigr_stt.core.pmtu import PathMtuProber
from seigr_stt.core.record import max_frames_size, pack_header, seal_frames, seal_record
from seigr_stt.core.recovery import AckTracker, Delivery, LossRecovery, SentRecord
from seigr_stt.core.stats import SessionCounters
from seigr_stt.core.timers import SessionTimers

__all__ = ["STREAM_FRAME_OVERHEAD", "RecordBuilder"]

STREAM_FRAME_OVERHEAD = 1 + 8 + 8 + 1 + 4  # type, id, offset, flags, length (upper bounds)
_MIN_CHUNK = 64  # do not start a stream frame with less room than this in a record

Handler = Callable[[Frame, bool], None]


class RecordBuilder:
    """Seals the records of one session; see the module docstring."""

    # Slots: one builder per session (docs/performance.md, memory per idle session).
    __slots__ = (
        "acks",
        "cc",
        "counters",
        "keys",
        "pacer",
        "pending",
        "pmtu",
        "pong_token",
        "probe",
        "recovery",
        "reliable",
        "reliable_path",
        "room",
        "session_id",
        "streams",
        "timers",
        "want_record",
    )

    def __init__(
        self,
        session_id: bytes,
        keys: KeySchedule,
        acks: AckTracker,
        recovery: LossRecovery,
        streams: StreamTable,
        pmtu: PathMtuProber,
        counters: SessionCounters,
        timers: SessionTimers,
    ) -> None:
        self.session_id = session_id
        self.keys = keys
        self.acks = acks
        self.recovery = recovery
        self.streams = streams
        self.pmtu = pmtu
        self.counters = counters
        self.timers = timers
        self.cc = NewReno(pmtu.size)
        self.pacer = Pacer(pmtu.size)
        #: Frames sent once, never retransmitted: PING, DATAGRAM, CLOSE, oldest first (a list:
        #: an empty deque costs ~600 bytes per session; records take from it in slices).
        self.pending: list[Frame] = []
        #: Frames with their own delivery handler, which sends them again if lost (the DH
        #: ratchet's INIT and REPLY, §7.1); rarely more than one.
        self.reliable: list[tuple[Frame, Handler]] = []
        #: The latest PING token to answer (0: none): one PONG answers every PING before it.
        self.pong_token = 0
        #: Send a record even with nothing to say (key confirmation, a new epoch, keepalive).
        self.want_record = False
        #: A probe timeout fired: send one ack-eliciting record whatever the window (§14.3).
        self.probe = False
        #: The session's path is a reliable transport (§14.8): see :meth:`set_reliable`.
        self.reliable_path = False
        #: The free space of a reliable link's send queue (None: not limited).
        self.room: SendRoom | None = None

    def set_reliable(self, reliable: bool, room: SendRoom | None = None) -> None:
        """The session's path is (``reliable``) or is no longer a reliable transport: a property
        of the link (``Link.reliable``), set when the session is made and again whenever it
        moves to a link of another kind. Reliable: no congestion window, pacing or loss
        detection, and rare ACKs; the sent records are still kept until acknowledged, so that
        after a move to an unreliable path what was never acknowledged is resent there. Moving
        that way, the caller also starts the new path's window (:meth:`new_path`). ``room`` is
        the link's send-queue space (``Link.room``): stream data waits while it lacks a record.
        """
        self.reliable_path = reliable
        self.room = room if reliable else None
        self.acks.reliable = reliable
        self.recovery.set_reliable(reliable)

    @property
    def record_size(self) -> int:
        """The largest record sent now (grows with path-MTU probing)."""
        return self.pmtu.size

    def set_record_size(self, size: int) -> None:
        """Records of ``size`` bytes from now on (the congestion window counts in them)."""
        self.cc.max_datagram = size
        self.pacer.burst = PACING_BURST_PACKETS * size

    def has_output(self, now: float) -> bool:
        """Whether :meth:`build` has something to send at ``now``."""
        ack_due = self.acks.ack_due_at
        return bool(
            self.pending
            or self.reliable
            or self.pong_token
            or self.want_record
            or self.probe
            or self.streams.has_control
            or self.streams.has_stream_data
            or (ack_due is not None and ack_due <= now)
        )

    def pace_at(self) -> float | None:
        """When the pacer lets waiting stream data go, if it is what holds it back."""
        if (
            self.reliable_path
            or not self.streams.has_stream_data
            or not self.cc.can_send(self.recovery.bytes_in_flight)
        ):
            return None
        return self.pacer.next_send_at(
            now=self.timers.last_sent_at or self.timers.created_at,
            cwnd=self.cc.cwnd,
            srtt_s=self.recovery.rtt.smoothed_s,
        )

    def new_path(self, pmtu: PathMtuProber) -> None:
        """The session moved to another host: the record size and the congestion window start
        over on the new path (RFC 9000 §9.4)."""
        self.pmtu = pmtu
        self.cc = NewReno(pmtu.size)
        self.pacer = Pacer(pmtu.size)

    def seal_probe(self, frame: Frame | list[Frame], now: float) -> bytes:
        """A record of ``frame`` (or of these frames) alone, outside loss recovery and
        congestion control: a path challenge to an address the session does not use yet (its
        loss is no congestion signal on the session's path)."""
        aead, epoch, echo, counter = self.keys.next_send()
        header = pack_header(epoch, echo, self.session_id, counter)
        frames = frame if isinstance(frame, list) else [frame]
        record = seal_record(aead, header, counter, serialize_frames(frames))
        self.counters.packets_sent += 1
        self.counters.bytes_sent += len(record)
        return record

    # -- building -----------------------------------------------------------------------------
    def build(self, now: float, *, active: bool) -> list[bytes]:
        """Every record due now. ``active`` is False while closing: no path-MTU probe then."""
        records: list[bytes] = []
        cc = self.cc
        recovery = self.recovery
        streams = self.streams
        limit = max_frames_size(self.pmtu.size)
        reliable = self.reliable_path
        if not reliable:
            self.pacer.refill(now, cc.cwnd, recovery.rtt.smoothed_s)
        built = 0  # bytes of the records built here (not in the link's queue yet)
        probe_size = self.pmtu.probe_size(streams.send_buffered, now) if active else None
        if probe_size is not None:
            records.append(self._seal([(Ping(0), None)], now, pad_to=probe_size))
        while True:
            frames: list[tuple[Frame, Handler | None]] = []
            size = 0
            ack_due = self.acks.ack_due_at
            if ack_due is not None and (
                ack_due <= now
                or self.pending
                or self.reliable
                or self.pong_token
                or streams.has_control
                or (streams.has_stream_data and not reliable)
                or self.want_record
            ):
                ack = self._ack_frame(now)
                frames.append((ack, None))
                size += frame_size(ack)
            size = self._fill_queues(frames, size, limit)
            if reliable:
                room = self.room
                may_send = room is None or room.bytes - built >= self.pmtu.size
            else:
                may_send = self.probe or (
                    cc.can_send(recovery.bytes_in_flight) and self.pacer.can_send()
                )
            if streams.has_stream_data:
                if not may_send:
                    if reliable:
                        self._wait_for_room()
                elif not (reliable and self._cork(built, size, limit)):
                    size = self._fill_streams(frames, size, limit)
            if not frames and not self.want_record:
                break
            record = self._seal(frames, now)
            records.append(record)
            built += len(record)
            self.want_record = False
            self.probe = False
            if not frames:
                break
            if (
                size + STREAM_FRAME_OVERHEAD + _MIN_CHUNK <= limit
                and len(frames) < MAX_FRAMES_PER_RECORD
                and not (self.pending or self.reliable or streams.has_control)
            ):
                # The record had room left: everything that could go out went out.
                break
        return records

    def _cork(self, built: int, size: int, limit: int) -> bool:
        """Over a reliable link: hold back a record the unsent stream data would not fill while
        the link's queue is not empty (what this build made counts as queued). The tail of a
        write waits for the next write instead of making a message of its own; it would leave
        only after the queue anyway, and it leaves when the queue is empty (§15.4)."""
        room = self.room
        if room is None or (built == 0 and room.empty):
            return False
        if self.streams.unsent + size + STREAM_FRAME_OVERHEAD >= limit:
            return False
        if self.session_id not in room.corked:
            room.corked.append(self.session_id)  # the endpoint flushes it again (room_available)
        return True

    def _wait_for_room(self) -> None:
        room = self.room
        if room is not None and self.session_id not in room.held:
            room.held.append(self.session_id)  # the endpoint flushes it again (room_available)

    def _ack_frame(self, now: float) -> Ack:
        _, delay, ranges = self.acks.build(now)
        return Ack(delay, tuple(ranges))

    def _fill_queues(
        self, frames: list[tuple[Frame, Handler | None]], size: int, limit: int
    ) -> int:
        streams = self.streams
        if not (self.pong_token or self.pending or self.reliable or streams.has_control):
            return size  # the bulk case: no generator of credit frames made per record
        if self.pong_token:
            pong = Pong(self.pong_token)
            if size + frame_size(pong) <= limit:
                frames.append((pong, None))
                size += frame_size(pong)
                self.pong_token = 0
        pending = self.pending
        if pending:
            taken = 0
            room = MAX_FRAMES_PER_RECORD - len(frames)
            full = False
            for frame in pending:
                if taken == room:
                    break
                fsize = frame_size(frame)
                if size + fsize > limit:
                    full = True
                    break
                frames.append((frame, None))
                size += fsize
                taken += 1
            del pending[:taken]
            if full:
                return size
        reliable = self.reliable
        while reliable and len(frames) < MAX_FRAMES_PER_RECORD:
            fsize = frame_size(reliable[0][0])
            if size + fsize > limit:
                return size
            frames.append(reliable.pop(0))
            size += fsize
        control = streams.control
        while control and len(frames) < MAX_FRAMES_PER_RECORD:
            fsize = frame_size(control[0])
            if size + fsize > limit:
                return size
            frames.append((control.pop(0), streams.on_control_delivery))
            size += fsize
        for frame in streams.credit_frames():
            fsize = frame_size(frame)
            if size + fsize > limit or len(frames) >= MAX_FRAMES_PER_RECORD:
                streams.on_credit_delivery(frame, False)  # not sent: keep it due
                return size
            frames.append((frame, streams.on_credit_delivery))
            size += fsize
        return size

    def _fill_streams(
        self, frames: list[tuple[Frame, Handler | None]], size: int, limit: int
    ) -> int:
        streams = self.streams
        handler = streams.on_stream_delivery
        while (
            size + STREAM_FRAME_OVERHEAD + _MIN_CHUNK <= limit
            and len(frames) < MAX_FRAMES_PER_RECORD
        ):
            frame = streams.next_stream_frame(limit - size - STREAM_FRAME_OVERHEAD)
            if frame is None:
                break
            frames.append((frame, handler))
            size += frame_size(frame)
        return size

    def _seal(
        self, frames: list[tuple[Frame, Handler | None]], now: float, pad_to: int = 0
    ) -> bytes:
        aead, epoch, echo, counter = self.keys.next_send()
        header = pack_header(epoch, echo, self.session_id, counter)
        # Every frame is written into one buffer, which becomes the plaintext in place; one pass
        # also finds whether the record is ack-eliciting and what must survive its loss.
        body = bytearray()
        eliciting = False
        deliveries: list[Delivery] = []
        for frame, handler in frames:
            write_frame(body, frame)
            if handler is not None:
                deliveries.append((frame, handler))
                eliciting = True
            elif not eliciting and type(frame) in ACK_ELICITING:
                eliciting = True
        record = seal_frames(aead, header, counter, body, pad_to)
        if pad_to:
            self.pmtu.on_probe_sent(counter)  # a path-MTU probe (§12.1)
        counters = self.counters
        counters.packets_sent += 1
        counters.bytes_sent += len(record)
        self.timers.on_record_sent(now, eliciting)
        if eliciting:
            self.recovery.on_sent(SentRecord(counter, now, len(record), True, True, deliveries))
            if not self.reliable_path:
                self.pacer.on_sent(len(record))
        return record
