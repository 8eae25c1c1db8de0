"""One authenticated session, sans-I/O (``docs/protocol.md`` §5–§9).

The endpoint creates a :class:`Session` when a handshake completes and then drives it:

* network -> core: :meth:`receive_record` (the header already parsed), returns a drop reason or
  ``None``;
* app -> core: :meth:`send_message`, :meth:`send_datagram`, :meth:`request_rotation`,
  :meth:`close`, :meth:`ping`;
* core -> network: :meth:`flush` returns the packets to send (frames coalesced into records);
* time: :meth:`get_timer` returns the next deadline, :meth:`handle_timer` handles it;
* events accumulate in :attr:`events` for the endpoint to collect.

Nothing here reads a clock: every method that depends on time takes ``now``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass

from seigr_stt.config import NodeConfig
from seigr_stt.constants import (
    CLOSE_ATTEMPTS,
    CLOSE_DEAD_PEER,
    CLOSE_IDLE_TIMEOUT,
    CLOSE_KEY_EXPIRED,
    CLOSE_NORMAL,
    CLOSE_PROTOCOL_ERROR,
    CLOSE_REASON_MAX_BYTES,
    CLOSE_RETRANSMIT_S,
    DEAD_PEER_TIMEOUT_S,
    HANDSHAKE_RETRY_INITIAL_S,
    HANDSHAKE_RETRY_MAX_S,
    REJECT_AFTER_TIME_S,
    RTT_INITIAL_S,
    STT_SESSION_STATE_ACTIVE,
    STT_SESSION_STATE_CLOSED,
    STT_SESSION_STATE_CLOSING,
    STT_SESSION_STATE_HANDSHAKE,
)
from seigr_stt.core import crypto
from seigr_stt.core.events import (
    DatagramReceived,
    Event,
    HandshakeFailedEvent,
    KeyRotated,
    MessageReceived,
    PeerAddressChanged,
    SessionClosed,
    SessionEstablished,
)
from seigr_stt.core.frames import (
    MESSAGE_FIRST,
    MESSAGE_LAST,
    Close,
    Datagram,
    Frame,
    FrameError,
    Message,
    Ping,
    Pong,
    frame_size,
    parse_frames,
    serialize_frames,
    varint_size,
)
from seigr_stt.core.handshake import HandshakeResult
from seigr_stt.core.keys import KeySchedule
from seigr_stt.core.record import (
    RecordError,
    RecordHeader,
    max_frames_size,
    open_record,
    pack_header,
    seal_record,
)
from seigr_stt.exceptions import MessageTooLarge, SessionClosedError

__all__ = ["PING_INTERVAL_S", "Session", "SessionCounters"]

PING_INTERVAL_S = 1.0
_FRAGMENT_OVERHEAD = 1 + 8 + 8 + 1 + 4  # type, channel, seq, flags, length (upper bounds)


@dataclass(slots=True)
class SessionCounters:
    """Traffic counters of one session (the keys of ``get_statistics()``)."""

    bytes_sent: int = 0
    bytes_received: int = 0
    packets_sent: int = 0
    packets_received: int = 0
    messages_sent: int = 0
    messages_received: int = 0
    datagrams_sent: int = 0
    datagrams_received: int = 0
    send_errors: int = 0
    receive_errors: int = 0
    replays_dropped: int = 0
    auth_failures: int = 0
    epoch_drops: int = 0
    messages_lost: int = 0


class _Reassembly:
    __slots__ = ("expected_seq", "parts", "size")

    def __init__(self) -> None:
        self.expected_seq = 0
        self.parts: list[bytes] | None = None
        self.size = 0


class Session:
    """The protocol state of one session; see the module docstring for the driving contract."""

    def __init__(
        self,
        result: HandshakeResult,
        addr: Hashable,
        now: float,
        *,
        config: NodeConfig,
        max_record_size: int,
        handle: int | None = None,
        final_packet: bytes | None = None,
        handshake_deadline: float | None = None,
    ) -> None:
        self.session_id = result.session_id
        self.local_index = result.local_index
        self.peer_index = result.peer_index
        self.final_digest: bytes | None = None  # responder: digest of the FINAL it accepted
        self.peer_node_id = result.peer_node_id
        self.peer_static = result.peer_static
        self.peer_capabilities = result.peer_capabilities
        self.initiator = result.initiator
        self.handle = handle
        self.addr = addr
        self.config = config
        self.max_record_size = max_record_size
        self.keys = KeySchedule(result.send_key, result.recv_key, result.exporter, now)
        self.counters = SessionCounters()
        self.events: deque[Event] = deque()
        self.created_at = now
        self.last_received_at: float | None = None
        self.last_sent_at: float | None = None
        self.last_data_at = now
        self._last_eliciting_received_at: float | None = None
        self._first_unanswered_at: float | None = None
        self._pending: list[Frame] = []
        self._out: list[bytes] = []
        self._want_record = False
        self._tx_seq: dict[int, int] = {}
        self._rx: dict[int, _Reassembly] = {}
        self.rtt_s: float | None = None
        self._ping_token = 0
        self._ping_sent_at: float | None = None
        self._last_ping_at: float | None = None
        self._rotation_requested = False
        self._rotation_target = 0
        self._confirmed_version = 0
        self.close_code: int | None = None
        self.close_reason = ""
        self.closed_by_peer = False
        self._close_attempts = 0
        self._close_retry_at: float | None = None
        # Initiator: FINAL is retransmitted until the responder's first record confirms the keys.
        self._final_packet = final_packet
        self._handshake_deadline = handshake_deadline
        self._final_retry_s = HANDSHAKE_RETRY_INITIAL_S
        self._final_retry_at: float | None = None
        if self.initiator:
            self.state = STT_SESSION_STATE_HANDSHAKE
            self._final_retry_at = now + self._final_retry_s
        else:
            self.state = STT_SESSION_STATE_ACTIVE
            self._want_record = True  # key confirmation for the initiator (§4.5)
            self.events.append(
                SessionEstablished(self.session_id, self.peer_node_id, addr, False, None)
            )

    def __repr__(self) -> str:
        return (
            f"Session(id={self.session_id.hex()}, state={self.state}, "
            f"key_version={self.keys.send_epoch})"
        )

    # -- properties ---------------------------------------------------------------------------
    @property
    def key_version(self) -> int:
        return self.keys.send_epoch

    @property
    def is_active(self) -> bool:
        return self.state == STT_SESSION_STATE_ACTIVE

    @property
    def max_datagram_size(self) -> int:
        """Largest payload :meth:`send_datagram` accepts on this session's transport."""
        room = max_frames_size(self.max_record_size) - 1
        return room - varint_size(room)

    @property
    def has_output(self) -> bool:
        return bool(self._out or self._pending or self._want_record)

    # -- network -> core ----------------------------------------------------------------------
    def receive_record(
        self, packet: bytes, header: RecordHeader, addr: Hashable, now: float
    ) -> str | None:
        """Authenticate and process one record; return a drop reason, or None if accepted.

        Order (§5.3): key by epoch -> replay pre-check -> AEAD -> replay window -> key promotion
        -> address update -> frames. Nothing before the AEAD changes any state.
        """
        if self.state == STT_SESSION_STATE_CLOSED:
            return "closed_session"
        selected = self.keys.select_receive_key(header.epoch, now)
        if selected is None:
            self.counters.epoch_drops += 1
            return "epoch"
        slot, key = selected
        if not self.keys.replay.check(header.counter):
            self.counters.replays_dropped += 1
            return "replay"
        try:
            frames_bytes = open_record(key, packet, header.counter)
        except crypto.DecryptError:
            self.counters.auth_failures += 1
            return "auth"
        except RecordError:
            self._protocol_violation(now, "invalid record padding")
            return None
        if not self.keys.replay.accept(header.counter):  # pragma: no cover - check() just passed
            self.counters.replays_dropped += 1
            return "replay"
        # Authenticated from here on.
        self.counters.packets_received += 1
        self.counters.bytes_received += len(packet)
        self.last_received_at = now
        self._first_unanswered_at = None
        promoted = self.keys.after_authenticated(slot, header.echo, now, self._rtt())
        if promoted:
            self._want_record = True  # carry the new echo back at once
        if addr != self.addr:
            old, self.addr = self.addr, addr
            self.events.append(PeerAddressChanged(self.session_id, old, addr))
        if self.state == STT_SESSION_STATE_HANDSHAKE:
            self.state = STT_SESSION_STATE_ACTIVE
            self._final_packet = None
            self._final_retry_at = None
            self.events.append(
                SessionEstablished(self.session_id, self.peer_node_id, self.addr, True, self.handle)
            )
        self._check_rotation_confirmed()
        try:
            frames = parse_frames(frames_bytes)
        except FrameError as exc:
            self._protocol_violation(now, str(exc))
            return None
        if frames:
            self._last_eliciting_received_at = now
        for frame in frames:
            if self.state == STT_SESSION_STATE_CLOSED:
                break
            self._handle_frame(frame, now)
        self._maybe_rotate(now)
        return None

    def _handle_frame(self, frame: Frame, now: float) -> None:
        if isinstance(frame, Message):
            self._handle_message(frame, now)
        elif isinstance(frame, Datagram):
            if self.state == STT_SESSION_STATE_ACTIVE:
                self.last_data_at = now
                self.counters.datagrams_received += 1
                self.events.append(DatagramReceived(self.session_id, frame.data))
        elif isinstance(frame, Ping):
            self._pending.append(Pong(frame.token))
        elif isinstance(frame, Pong):
            if frame.token == self._ping_token and self._ping_sent_at is not None:
                sample = max(now - self._ping_sent_at, 0.0)
                self.rtt_s = sample if self.rtt_s is None else 0.875 * self.rtt_s + 0.125 * sample
                self._ping_sent_at = None
        elif isinstance(frame, Close):
            self._handle_close(frame, now)
        else:
            # A frame this session does not take (yet): an authenticated violation, never an
            # exception escaping receive_datagram.
            self._protocol_violation(now, f"unexpected {type(frame).__name__} frame")

    def _handle_message(self, frame: Message, now: float) -> None:
        if self.state != STT_SESSION_STATE_ACTIVE:
            return
        self.last_data_at = now
        rx = self._rx.get(frame.channel)
        if rx is None:
            if len(self._rx) >= self.config.max_channels:
                self._protocol_violation(now, "too many message channels")
                return
            rx = self._rx[frame.channel] = _Reassembly()
        if frame.seq != rx.expected_seq:
            # A fragment went missing (no retransmission on this path yet): count the loss and
            # resynchronise at the next first fragment. Nothing partial is ever delivered.
            if frame.seq < rx.expected_seq:
                return
            # Every fragment belongs to a message, so a gap loses at least one (the partial one,
            # or whole messages in between); how many more, the fragment numbers cannot tell.
            self.counters.messages_lost += 1
            rx.parts = None
            rx.size = 0
        rx.expected_seq = frame.seq + 1
        if frame.flags & MESSAGE_FIRST:
            if rx.parts is not None:
                self.counters.messages_lost += 1
            rx.parts = []
            rx.size = 0
        if rx.parts is None:
            return
        rx.size += len(frame.data)
        if rx.size > self.config.max_message_size:
            self._protocol_violation(now, "message larger than max_message_size")
            return
        rx.parts.append(frame.data)
        if frame.flags & MESSAGE_LAST:
            data = rx.parts[0] if len(rx.parts) == 1 else b"".join(rx.parts)
            rx.parts = None
            rx.size = 0
            self.counters.messages_received += 1
            self.events.append(MessageReceived(self.session_id, frame.channel, data))

    def _handle_close(self, frame: Close, now: float) -> None:
        if self.state == STT_SESSION_STATE_CLOSING:
            self._finish_close()
            return
        self.close_code = frame.code
        self.close_reason = frame.reason
        self.closed_by_peer = True
        self._pending.clear()
        self._pending.append(Close(CLOSE_NORMAL, ""))
        self._out.extend(self._build_records(now))
        self._finish_close()

    # -- app -> core --------------------------------------------------------------------------
    def _require_active(self) -> None:
        if self.state != STT_SESSION_STATE_ACTIVE:
            raise SessionClosedError(
                f"session {self.session_id.hex()} is not active (state {self.state})",
                self.close_code,
                self.close_reason,
            )

    def send_message(self, channel: int, data: bytes, now: float) -> None:
        """Queue one application message on ``channel``; call :meth:`flush` (via the endpoint)
        to send it. Raises SessionClosedError or MessageTooLarge (the session stays usable)."""
        self._require_active()
        if len(data) > self.config.max_message_size:
            raise MessageTooLarge(
                f"message of {len(data)} bytes exceeds max_message_size "
                f"({self.config.max_message_size})"
            )
        if not 0 <= channel < 1 << 62:
            raise ValueError("stream_id must be within 0..2**62-1")
        room = max_frames_size(self.max_record_size) - _FRAGMENT_OVERHEAD
        seq = self._tx_seq.get(channel, 0)
        view = memoryview(data)
        total = len(data)
        offset = 0
        first = True
        while True:
            chunk = bytes(view[offset : offset + room])
            offset += len(chunk)
            flags = (MESSAGE_FIRST if first else 0) | (MESSAGE_LAST if offset >= total else 0)
            self._pending.append(Message(channel, seq, flags, chunk))
            seq += 1
            first = False
            if offset >= total:
                break
        self._tx_seq[channel] = seq
        self.counters.messages_sent += 1
        self.last_data_at = now
        self._maybe_ping(now)

    def send_datagram(self, data: bytes, now: float) -> None:
        """Queue an unreliable datagram of at most :attr:`max_datagram_size` bytes."""
        self._require_active()
        if len(data) > self.max_datagram_size:
            raise MessageTooLarge(
                f"datagram of {len(data)} bytes exceeds max_datagram_size "
                f"({self.max_datagram_size})"
            )
        self._pending.append(Datagram(bytes(data)))
        self.counters.datagrams_sent += 1
        self.last_data_at = now

    def confirm_again(self) -> None:
        """Responder: the initiator retransmitted FINAL, so our confirmation record was lost;
        send another."""
        if self.state == STT_SESSION_STATE_ACTIVE:
            self._want_record = True

    def ping(self, now: float) -> None:
        """Send a PING now (RTT sample, liveness)."""
        self._require_active()
        self._send_ping(now)

    def request_rotation(self, now: float) -> int:
        """Ask for one key rotation; returns the ``key_version`` that will satisfy it.

        The rotation happens at once if both sides are on one epoch and the minimum interval has
        passed, otherwise as soon as they are. A :class:`KeyRotated` event with a version >= the
        returned one tells when the peer has confirmed it.
        """
        self._require_active()
        if self._rotation_requested and self._rotation_target > self.keys.send_epoch:
            return self._rotation_target  # a rotation still to come serves this request too
        # (A request whose target was reached by following the peer must not satisfy this one.)
        self._rotation_requested = True
        self._rotation_target = self.keys.send_epoch + 1
        self._maybe_rotate(now)
        return self._rotation_target

    def close(self, code: int, reason: str, now: float) -> None:
        """Start closing: send CLOSE(code, reason) and retransmit it until the peer answers or
        :data:`CLOSE_ATTEMPTS` are used; :class:`SessionClosed` follows either way."""
        if self.state in (STT_SESSION_STATE_CLOSING, STT_SESSION_STATE_CLOSED):
            return
        encoded = reason.encode()
        if len(encoded) > CLOSE_REASON_MAX_BYTES:
            reason = encoded[:CLOSE_REASON_MAX_BYTES].decode(errors="ignore")
        self.close_code = code
        self.close_reason = reason
        if self.state == STT_SESSION_STATE_HANDSHAKE:
            self._finish_close()
            return
        self.state = STT_SESSION_STATE_CLOSING
        self._pending.append(Close(code, reason))
        self._close_attempts = 1
        self._close_retry_at = now + max(CLOSE_RETRANSMIT_S, 2 * self._rtt())

    def abort(self, code: int, reason: str) -> None:
        """Close at once without telling the peer (its transport is gone); erases the keys."""
        if self.state == STT_SESSION_STATE_CLOSED:
            return
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason
        self._finish_close()

    def _protocol_violation(self, now: float, detail: str) -> None:
        if self.state in (STT_SESSION_STATE_HANDSHAKE, STT_SESSION_STATE_ACTIVE):
            self.counters.receive_errors += 1
            self.close(CLOSE_PROTOCOL_ERROR, detail[:CLOSE_REASON_MAX_BYTES], now)

    def _finish_close(self) -> None:
        if self.state == STT_SESSION_STATE_CLOSED:
            return
        was_handshake = self.state == STT_SESSION_STATE_HANDSHAKE
        self.state = STT_SESSION_STATE_CLOSED
        self._pending.clear()
        self._want_record = False
        self._close_retry_at = None
        self._final_packet = None
        self._final_retry_at = None
        self.keys.erase()
        if was_handshake and self.handle is not None:
            self.events.append(
                HandshakeFailedEvent(self.handle, self.close_reason or "closed", timeout=False)
            )
        self.events.append(
            SessionClosed(
                self.session_id,
                self.close_code if self.close_code is not None else CLOSE_NORMAL,
                self.close_reason,
                self.closed_by_peer,
            )
        )

    # -- rotation -----------------------------------------------------------------------------
    def _maybe_rotate(self, now: float) -> None:
        if self.state != STT_SESSION_STATE_ACTIVE:
            return
        if not self._rotation_requested:
            due_by_time = (
                self.config.rekey_after_s is not None
                and now >= self.keys.epoch_started_at + self.config.rekey_after_s
            )
            due_by_count = self.keys.sent_in_epoch >= self.config.rekey_after_messages
            if due_by_time or due_by_count:
                self._rotation_requested = True
                self._rotation_target = self.keys.send_epoch + 1
        if self._rotation_requested and self.keys.can_rotate(
            now, self.config.key_rotation_min_interval_s
        ):
            if self.keys.send_epoch < self._rotation_target:
                self.keys.rotate(now)
                self._want_record = True
            self._rotation_requested = False

    def _check_rotation_confirmed(self) -> None:
        version = self.keys.send_epoch
        if version > self._confirmed_version and not self.keys.rotation_pending:
            self._confirmed_version = version
            self.events.append(KeyRotated(self.session_id, version))

    # -- core -> network ----------------------------------------------------------------------
    def _maybe_ping(self, now: float) -> None:
        if self._ping_sent_at is None and (
            self._last_ping_at is None or now - self._last_ping_at >= PING_INTERVAL_S
        ):
            self._send_ping(now)

    def _send_ping(self, now: float) -> None:
        self._ping_token += 1
        self._ping_sent_at = now
        self._last_ping_at = now
        self._pending.append(Ping(self._ping_token))

    def flush(self, now: float) -> list[bytes]:
        """Return every packet due now (records coalescing all queued frames, retransmitted
        handshake packets). The caller sends them to :attr:`addr` in order."""
        if self._pending:
            # Rotation by count is due after *sending*; a node that only sends would otherwise
            # wait for a received record or a timer to notice (§7).
            self._maybe_rotate(now)
        if self._pending or self._want_record:
            if self.state in (STT_SESSION_STATE_ACTIVE, STT_SESSION_STATE_CLOSING):
                self._out.extend(self._build_records(now))
            self._want_record = False
        out, self._out = self._out, []
        return out

    def _build_records(self, now: float) -> list[bytes]:
        limit = max_frames_size(self.max_record_size)
        records: list[bytes] = []
        batch: list[Frame] = []
        size = 0
        eliciting = False
        pending, self._pending = self._pending, []
        for frame in pending:
            fsize = frame_size(frame)
            if batch and size + fsize > limit:
                records.append(self._seal(batch, now, eliciting))
                batch, size, eliciting = [], 0, False
            batch.append(frame)
            size += fsize
            eliciting = eliciting or not isinstance(frame, Pong)
        if batch or not records:
            records.append(self._seal(batch, now, eliciting))
        return records

    def _seal(self, frames: list[Frame], now: float, eliciting: bool) -> bytes:
        key, epoch, echo, counter = self.keys.next_send()
        header = pack_header(epoch, echo, self.session_id, counter)
        record = seal_record(key, header, counter, serialize_frames(frames))
        self.counters.packets_sent += 1
        self.counters.bytes_sent += len(record)
        self.last_sent_at = now
        if eliciting and self._first_unanswered_at is None:
            self._first_unanswered_at = now
        return record

    # -- timers -------------------------------------------------------------------------------
    def _rtt(self) -> float:
        return self.rtt_s if self.rtt_s is not None else RTT_INITIAL_S

    def get_timer(self) -> float | None:
        """The next deadline of this session (seconds, same clock as ``now``), or None."""
        if self.state == STT_SESSION_STATE_CLOSED:
            return None
        if self.state == STT_SESSION_STATE_HANDSHAKE:
            candidates = [self._final_retry_at, self._handshake_deadline]
            return min((t for t in candidates if t is not None), default=None)
        if self.state == STT_SESSION_STATE_CLOSING:
            return self._close_retry_at
        deadlines: list[float] = []
        if self._first_unanswered_at is not None:
            deadlines.append(self._first_unanswered_at + DEAD_PEER_TIMEOUT_S)
        if self._last_eliciting_received_at is not None and (
            self.last_sent_at is None or self.last_sent_at < self._last_eliciting_received_at
        ):
            deadlines.append(self._last_eliciting_received_at + self.config.keepalive_s)
        if self.config.session_idle_timeout_s is not None:
            deadlines.append(self.last_data_at + self.config.session_idle_timeout_s)
        if self._rotation_requested:
            # While the peer has not confirmed the last rotation, its record (not a timer)
            # unblocks the next one: a deadline here would be in the past and spin the caller.
            if not self.keys.rotation_pending:
                deadlines.append(
                    self.keys.last_rotation_at + self.config.key_rotation_min_interval_s
                )
        elif self.config.rekey_after_s is not None:
            deadlines.append(self.keys.epoch_started_at + self.config.rekey_after_s)
        deadlines.append(self.keys.keys_started_at + REJECT_AFTER_TIME_S)
        erase_at = self.keys.get_timer()
        if erase_at is not None:
            deadlines.append(erase_at)
        return min(deadlines)

    def handle_timer(self, now: float) -> None:
        """Handle every deadline that is due at ``now`` (extra calls are harmless)."""
        if self.state == STT_SESSION_STATE_CLOSED:
            return
        if self.state == STT_SESSION_STATE_HANDSHAKE:
            if self._handshake_deadline is not None and now >= self._handshake_deadline:
                self.close_reason = "no confirmation from the responder"
                self.close_code = CLOSE_NORMAL
                self._finish_close_timeout()
            elif self._final_retry_at is not None and now >= self._final_retry_at:
                assert self._final_packet is not None
                self._out.append(self._final_packet)
                self._final_retry_s = min(self._final_retry_s * 2, HANDSHAKE_RETRY_MAX_S)
                self._final_retry_at = now + self._final_retry_s
            return
        if self.state == STT_SESSION_STATE_CLOSING:
            if self._close_retry_at is not None and now >= self._close_retry_at:
                if self._close_attempts >= CLOSE_ATTEMPTS:
                    self._finish_close()
                else:
                    self._close_attempts += 1
                    self._pending.append(Close(self.close_code or CLOSE_NORMAL, self.close_reason))
                    self._close_retry_at = now + max(CLOSE_RETRANSMIT_S, 2 * self._rtt())
            return
        self.keys.handle_timer(now)
        if now >= self.keys.keys_started_at + REJECT_AFTER_TIME_S:  # as in get_timer()
            self.close(CLOSE_KEY_EXPIRED, "keys expired before a rotation completed", now)
            return
        if self._first_unanswered_at is not None and (
            now >= self._first_unanswered_at + DEAD_PEER_TIMEOUT_S
        ):
            self.close_code = CLOSE_DEAD_PEER
            self.close_reason = "peer did not answer"
            self._finish_close()
            return
        idle = self.config.session_idle_timeout_s
        if idle is not None and now >= self.last_data_at + idle:
            self.close(CLOSE_IDLE_TIMEOUT, "idle timeout", now)
            return
        if (
            self._last_eliciting_received_at is not None
            and (self.last_sent_at is None or self.last_sent_at < self._last_eliciting_received_at)
            and now >= self._last_eliciting_received_at + self.config.keepalive_s
        ):
            self._want_record = True
        self._maybe_rotate(now)

    def _finish_close_timeout(self) -> None:
        handle = self.handle
        self.handle = None  # report a timeout, not a refusal
        self._finish_close()
        if handle is not None:
            self.events.appendleft(HandshakeFailedEvent(handle, self.close_reason, timeout=True))
