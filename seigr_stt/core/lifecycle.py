"""What the application asks of a session, and how a session ends (§7, §9, §16).

:class:`SessionLifecycle` is the half of :class:`~seigr_stt.core.session.Session` that faces the
application: the commands (messages, byte streams, datagrams, pings, key rotation), each checking
its arguments, changing the session through its components and reporting the change with
``on_change``; and the close state machine (§9): a close that may first drain what was written,
CLOSE retransmitted until the peer answers, a close by the peer answered once, an abort when the
transport is gone, and the erasure of every key at the end. The other half, in
:mod:`seigr_stt.core.session`, faces the network: the receive order, the frame handlers, the
records to send and the timers.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from seigr_stt.config import SessionConfig
from seigr_stt.constants import (
    CLOSE_REASON_MAX_BYTES,
    INITIAL_RTT_S,
    CloseCode,
    SessionState,
)
from seigr_stt.core.channels import MessageChannels, message_header
from seigr_stt.core.events import Event, HandshakeAborted, KeyRotated, SessionClosed
from seigr_stt.core.flow import MAX_CHANNEL, StreamTable
from seigr_stt.core.frames import VARINT_MAX, Close, Datagram, Ping, varint_size
from seigr_stt.core.keys import KeySchedule, RotationPolicy
from seigr_stt.core.link import Link
from seigr_stt.core.packetizer import RecordBuilder
from seigr_stt.core.pmtu import PathMtuProber
from seigr_stt.core.ratchet import DhRatchet
from seigr_stt.core.record import max_frames_size
from seigr_stt.core.recovery import AckTracker, LossRecovery
from seigr_stt.core.stats import SessionCounters, SessionSnapshot
from seigr_stt.core.timers import SessionTimers
from seigr_stt.exceptions import ConfigError, MessageTooLarge, SessionClosedError

__all__ = ["STATE_TRANSITIONS", "SessionLifecycle"]

#: Which state may follow which (h11-style): anything else is a bug, caught by an assertion.
STATE_TRANSITIONS: dict[SessionState, frozenset[SessionState]] = {
    SessionState.HANDSHAKE: frozenset({SessionState.ACTIVE, SessionState.CLOSED}),
    SessionState.ACTIVE: frozenset({SessionState.CLOSING, SessionState.CLOSED}),
    SessionState.CLOSING: frozenset({SessionState.CLOSED}),
    SessionState.CLOSED: frozenset(),
}


class SessionLifecycle:
    """The application-facing half of a session; see the module docstring. Its attributes are
    set by :class:`~seigr_stt.core.session.Session`."""

    __slots__ = (
        "_close_after_flush",
        "_close_attempts",
        "_ping_token",
        "close_code",
        "close_reason",
        "closed_by_peer",
        "handle",
        "state",
    )

    session_id: bytes
    peer_node_id: bytes
    initiator: bool
    handle: int | None
    addr: Hashable
    link: Link
    config: SessionConfig
    created_at: float
    state: SessionState
    events: list[Event]
    counters: SessionCounters
    close_code: int | None
    close_reason: str
    closed_by_peer: bool
    keys: KeySchedule
    rotation: RotationPolicy
    ratchet: DhRatchet
    recovery: LossRecovery
    acks: AckTracker
    timers: SessionTimers
    pmtu: PathMtuProber
    streams: StreamTable
    channels: MessageChannels
    packetizer: RecordBuilder
    _on_change: Callable[[Any], None] | None  # called with the Session
    _close_attempts: int
    _close_after_flush: bool
    _ping_token: int

    # -- state ----------------------------------------------------------------------------------
    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(self)

    def _takes_no_input(self) -> bool:
        """Closed, or closed by the peer with our answer still to go out."""
        return self.state == SessionState.CLOSED or self._close_after_flush

    @property
    def rtt_s(self) -> float | None:
        """Smoothed RTT from acknowledgements (§14), once sampled."""
        rtt = self.recovery.rtt
        return rtt.smoothed_s if rtt.has_sample else None

    def _rtt(self) -> float:
        rtt = self.rtt_s
        return rtt if rtt is not None else INITIAL_RTT_S

    def _set_state(self, state: SessionState) -> None:
        assert state in STATE_TRANSITIONS[self.state], f"{self.state.name} -> {state.name}"
        self.state = state

    @property
    def max_datagram_size(self) -> int:
        """Largest payload :meth:`send_datagram` accepts on this session's transport."""
        room = max_frames_size(self.pmtu.base) - 1
        return room - varint_size(room)

    @property
    def send_buffered(self) -> int:
        """Bytes of application data held until the peer acknowledges them (backpressure)."""
        return self.streams.send_buffered

    def stream_buffered(self, stream_id: int) -> int:
        """Unacknowledged bytes of one byte stream (0 once it is gone)."""
        return self.streams.stream_buffered(stream_id)

    @property
    def all_acknowledged(self) -> bool:
        """Every byte written on every stream was acknowledged."""
        return self.streams.all_acknowledged

    def snapshot(self) -> SessionSnapshot:
        """The session's figures now, frozen (reading changes nothing)."""
        c = self.counters
        return SessionSnapshot(
            session_id=self.session_id,
            peer_node_id=self.peer_node_id,
            state=int(self.state),
            initiator=self.initiator,
            key_version=self.keys.send_epoch,
            confirmed_key_version=self.rotation.confirmed_version,
            created_at=self.created_at,
            last_sent_at=self.timers.last_sent_at,
            last_received_at=self.timers.last_received_at,
            rtt_s=self.rtt_s,
            cwnd=self.packetizer.cc.cwnd,
            bytes_in_flight=self.recovery.bytes_in_flight,
            send_buffered=self.streams.send_buffered,
            max_record_size=self.pmtu.size,
            close_code=self.close_code,
            close_reason=self.close_reason,
            counters=SessionCounters(**{f: getattr(c, f) for f in c.__slots__}),
        )

    # -- commands -----------------------------------------------------------------------------
    def _require_active(self) -> None:
        if self.state != SessionState.ACTIVE:
            raise SessionClosedError(
                f"session {self.session_id.hex()} is not active (state {self.state.name})",
                self.close_code,
                self.close_reason,
            )

    def send_message(self, channel: int, data: bytes, now: float) -> None:
        """Queue one application message on ``channel``; it is delivered reliably, in order per
        channel, exactly once. Raises SessionClosedError, MessageTooLarge (the session stays
        usable) or ConfigError for a channel outside 0..MAX_CHANNEL."""
        self._require_active()
        size = len(data)
        if size > self.config.max_message_size:
            raise MessageTooLarge(
                f"message of {size} bytes exceeds max_message_size ({self.config.max_message_size})"
            )
        if not 0 <= channel <= MAX_CHANNEL:
            raise ConfigError(f"stream_id must be within 0..{MAX_CHANNEL}")
        self.streams.write_message(channel, message_header(data), data)
        self.counters.messages_sent += 1
        self.timers.on_application_data(now)
        self._changed()

    def consume_message(self, channel: int, credit: int, count: int = 1) -> None:
        """The application took ``count`` messages of channel ``channel`` whose events carried
        ``credit`` together: return that much flow-control credit to the peer."""
        self.channels.consume(channel, credit, count)
        self._changed()

    def open_stream(self, now: float, unidirectional: bool = False) -> int:
        """Open a byte stream; returns its id. Raises StreamError when the peer's limit on
        concurrent streams is reached. ``unidirectional``: only we send on it (§16.4)."""
        self._require_active()
        stream_id = self.streams.open_stream(unidirectional)
        self.timers.on_application_data(now)
        self._changed()
        return stream_id

    def write_stream(self, stream_id: int, data: bytes, fin: bool, now: float) -> None:
        """Append ``data`` to byte stream ``stream_id`` (and finish it when ``fin``)."""
        self._require_active()
        self.streams.write(stream_id, bytes(data), fin)
        self.timers.on_application_data(now)
        self._changed()

    def reset_stream(self, stream_id: int, code: int, now: float) -> None:
        """Abort byte stream ``stream_id`` in both directions with ``code`` (a no-op unless the
        session is active). Raises StreamError for a stream that is not open."""
        if self.state != SessionState.ACTIVE:
            return
        if not 0 <= code <= VARINT_MAX:
            raise ConfigError("reset code must be within 0..2**62-1")
        self.streams.reset(stream_id, code)
        self._changed()

    def accept_stream(self, stream_id: int) -> None:
        """The application took the peer's byte stream ``stream_id`` (announced by
        :class:`StreamOpened`): once it is finished too, the peer may open another (§16.2)."""
        self.streams.accept(stream_id)
        self._changed()

    def consume_stream(self, stream_id: int, n: int) -> None:
        """The application read ``n`` bytes of byte stream ``stream_id``."""
        self.streams.consume_stream(stream_id, n)
        self._changed()

    def send_datagram(self, data: bytes, now: float) -> None:
        """Queue an unreliable datagram of at most :attr:`max_datagram_size` bytes."""
        self._require_active()
        if len(data) > self.max_datagram_size:
            raise MessageTooLarge(
                f"datagram of {len(data)} bytes exceeds max_datagram_size "
                f"({self.max_datagram_size})"
            )
        self.packetizer.pending.append(Datagram(bytes(data)))
        self.counters.datagrams_sent += 1
        self.timers.on_application_data(now)
        self._changed()

    def ping(self, now: float) -> int:
        """Send a PING now; returns its token. The peer acknowledges it (an RTT sample) and
        answers with a PONG, reported as :class:`PongReceived` with the same token."""
        self._require_active()
        self._ping_token += 1
        self.packetizer.pending.append(Ping(self._ping_token))
        self._changed()
        return self._ping_token

    def confirm_again(self) -> None:
        """Responder: the initiator retransmitted FINAL, so our confirmation record was lost;
        send another."""
        if self.state == SessionState.ACTIVE:
            self.packetizer.want_record = True
            self._changed()

    # -- key rotation (§7) --------------------------------------------------------------------
    def request_rotation(self, now: float) -> int:
        """Ask for one key rotation; returns the ``key_version`` that will satisfy it.

        The rotation happens at once if both sides are on one epoch and the minimum interval has
        passed, otherwise as soon as they are. A :class:`KeyRotated` event with a version >= the
        returned one tells when the peer has confirmed it.
        """
        self._require_active()
        target = self.rotation.request(self.keys)
        self._maybe_rotate(now)
        self._changed()
        return target

    def request_ratchet(self, now: float) -> int:
        """Ask for one DH ratchet (§7.1); returns the :attr:`DhRatchet.completed` value that
        satisfies it (a :class:`KeyRotated` event with ``fresh_dh`` then reports it).

        Fresh X25519 keys are exchanged inside the session and mixed into the next epoch, so no
        state of this session from before the call can derive the keys after it. Raises
        SessionClosedError unless active.
        """
        self._require_active()
        target = self.ratchet.request()
        self._maybe_rotate(now)
        self._changed()
        return target

    @property
    def ratchets_completed(self) -> int:
        """The :attr:`DhRatchet.completed` value: compare with :meth:`request_ratchet`'s."""
        return self.ratchet.completed

    def _maybe_rotate(self, now: float) -> None:
        if self.state != SessionState.ACTIVE:
            return
        self.ratchet.poll(self.keys, now)  # a DH ratchet first: it holds hash rotations (§7.1)
        if not self.rotation.may_act(self.keys, now):
            return
        if self.rotation.maybe_rotate(self.keys, now, self._rotation_interval()):
            self.packetizer.want_record = True

    def _rotation_interval(self) -> float:
        """Least time between rotations: the configured minimum, and at least 3 x PTO so a
        record delayed behind two rotations still finds its key (RFC 9001 §6.5)."""
        return max(self.config.key_rotation_min_interval_s, 3 * self.recovery.rtt.pto_s())

    def _report_confirmed(self) -> None:
        version = self.rotation.newly_confirmed(self.keys)
        if version is not None:
            fresh_dh = self.ratchet.on_confirmed(version)
            self.events.append(KeyRotated(self.session_id, version, fresh_dh))

    # -- close (§9) ---------------------------------------------------------------------------
    def close(self, code: int, reason: str, now: float, *, drain: bool = False) -> None:
        """Start closing with CLOSE(code, reason); no error if already closing.

        With ``drain``, data already written is delivered first (for at most
        max(2 s, 4 x PTO)); the CLOSE is retransmitted until the peer answers or
        :data:`CLOSE_ATTEMPTS` are used; :class:`SessionClosed` follows either way.
        """
        if not 0 <= code <= VARINT_MAX:
            raise ConfigError("close code must be within 0..2**62-1")
        if self.state in (SessionState.CLOSING, SessionState.CLOSED):
            return
        encoded = reason.encode()
        if len(encoded) > CLOSE_REASON_MAX_BYTES:
            reason = encoded[:CLOSE_REASON_MAX_BYTES].decode(errors="ignore")
        self.close_code = code
        self.close_reason = reason
        if self.state == SessionState.HANDSHAKE:
            self._finish_close()
        else:
            self._set_state(SessionState.CLOSING)
            self.streams.grant_credit = False
            if drain and not self.all_acknowledged:
                self.timers.on_drain_started(now, self.recovery.rtt.pto_s())
            else:
                self._send_close(now)
        self._changed()

    def _send_close(self, now: float) -> None:
        self.packetizer.pending.append(
            Close(self.close_code or CloseCode.NORMAL, self.close_reason)
        )
        self._close_attempts = 1
        self.timers.on_close_sent(now, self._rtt())

    def _maybe_finish_drain(self, now: float) -> None:
        drain_at = self.timers.drain_at
        if drain_at is not None and (self.all_acknowledged or now >= drain_at):
            self._send_close(now)

    def _handle_close(self, frame: Close, now: float) -> None:
        if self.state == SessionState.CLOSING and self.timers.drain_at is None:
            if any(isinstance(f, Close) for f in self.packetizer.pending):
                # Our CLOSE was queued in this very record's processing (the drain just ended)
                # and has not left: it goes out in the next flush and answers the peer's, or
                # the peer would retransmit its CLOSE until its attempts run out.
                self._close_after_flush = True
            else:
                self._finish_close()
            return
        self.close_code = frame.code
        self.close_reason = frame.reason
        self.closed_by_peer = True
        self.packetizer.pending.clear()
        self.packetizer.reliable.clear()
        self.streams.stop_sending_frames()
        self.timers.drain_at = None
        self.packetizer.pending.append(Close(CloseCode.NORMAL, ""))
        if self.state == SessionState.ACTIVE:
            self._set_state(SessionState.CLOSING)
        self._close_after_flush = True

    def abort(self, code: int, reason: str, *, report_handshake: bool = True) -> None:
        """Close at once without telling the peer (its transport is gone); erases the keys.

        ``report_handshake`` False: a session still in its handshake ends without a
        :class:`HandshakeAborted` event (the caller reports the failure itself)."""
        if self.state == SessionState.CLOSED:
            return
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason
        if not report_handshake:
            self.handle = None
        self._finish_close()
        self._changed()

    def _protocol_violation(self, now: float, detail: str) -> None:
        if self.state in (SessionState.HANDSHAKE, SessionState.ACTIVE):
            self.counters.receive_errors += 1
            self.close(CloseCode.PROTOCOL_ERROR, detail[:CLOSE_REASON_MAX_BYTES], now)

    def _finish_close(self) -> None:
        if self.state == SessionState.CLOSED:
            return
        was_handshake = self.state == SessionState.HANDSHAKE
        self._set_state(SessionState.CLOSED)
        self._close_after_flush = False
        self.packetizer.pending.clear()
        self.packetizer.reliable.clear()
        self.packetizer.want_record = False
        self.streams.clear()
        self.channels.clear()
        self.recovery.forget_all()
        self.timers.on_closed()
        self.keys.erase()
        self.ratchet.erase()
        if was_handshake and self.handle is not None:
            self.events.append(
                HandshakeAborted(self.handle, self.close_reason or "closed", timeout=False)
            )
        self.events.append(
            SessionClosed(
                self.session_id,
                self.close_code if self.close_code is not None else CloseCode.NORMAL,
                self.close_reason,
                self.closed_by_peer,
            )
        )
