"""One authenticated session, sans-I/O (``docs/protocol.md`` §5–§9, §14–§16).

The endpoint creates a :class:`Session` when a handshake completes and then drives it:

* network -> core: :meth:`receive_record` (the header already parsed), returns a drop reason or
  ``None``;
* app -> core: :meth:`send_message`, :meth:`send_datagram`, :meth:`open_stream`,
  :meth:`write_stream`, :meth:`consume_message`, :meth:`consume_stream`,
  :meth:`request_rotation`, :meth:`close`, :meth:`ping`;
* core -> network: :meth:`flush` returns the packets to send (frames coalesced into records,
  within the congestion window and the pacer);
* time: :meth:`get_timer` returns the next deadline, :meth:`handle_timer` handles it;
* events accumulate in :attr:`events` for the endpoint to collect.

Application data travels on streams (§16): messages (``send_message``) on one unidirectional
*message channel* stream per channel and direction, each message prefixed by its length; byte
streams (``open_stream``) are bidirectional. Every stream frame is acknowledged and retransmitted
when lost (§14). Nothing here reads a clock: every method that depends on time takes ``now``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass

from seigr_stt.config import NodeConfig
from seigr_stt.constants import (
    ACK_DELAY_EXPONENT,
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
    MAX_STREAMS_DEFAULT,
    PACING_BURST_PACKETS,
    PMTU_BLACK_HOLE_PTOS,
    PMTU_MAX_PROBES,
    PMTU_PROBE_AFTER_RECORDS,
    PMTU_PROBE_SIZES,
    PMTU_REPROBE_AFTER_S,
    REJECT_AFTER_TIME_S,
    RTT_INITIAL_S,
    SESSION_INITIAL_WINDOW_BYTES,
    STREAM_INITIAL_WINDOW_BYTES,
    STT_SESSION_STATE_ACTIVE,
    STT_SESSION_STATE_CLOSED,
    STT_SESSION_STATE_CLOSING,
    STT_SESSION_STATE_HANDSHAKE,
)
from seigr_stt.core import crypto
from seigr_stt.core.congestion import NewReno, Pacer
from seigr_stt.core.events import (
    DatagramReceived,
    Event,
    HandshakeFailedEvent,
    KeyRotated,
    MessageReceived,
    PeerAddressChanged,
    PongReceived,
    SessionClosed,
    SessionEstablished,
    StreamDataReceived,
    StreamOpened,
    StreamReset,
)
from seigr_stt.core.frames import (
    VARINT_MAX,
    Ack,
    Close,
    Datagram,
    Frame,
    FrameError,
    MaxData,
    MaxStreamData,
    MaxStreams,
    Ping,
    Pong,
    ResetStream,
    StopSending,
    Stream,
    encode_varint,
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
from seigr_stt.core.recovery import AckTracker, LossRecovery, SentRecord
from seigr_stt.core.streams import FlowControlError, ReceiveStream, SendStream
from seigr_stt.exceptions import MessageTooLarge, SessionClosedError, StreamError

__all__ = [
    "KIND_BYTES",
    "KIND_MESSAGES",
    "MAX_CHANNEL",
    "Session",
    "SessionCounters",
    "channel_stream_id",
]

KIND_BYTES = 0  # bit 1 of a stream id: a bidirectional byte stream (open_stream)
KIND_MESSAGES = 2  # bit 1 set: a unidirectional message channel (send_message)
MAX_CHANNEL = VARINT_MAX >> 2  # channel numbers fit a stream id
_STREAM_OVERHEAD = 1 + 8 + 8 + 1 + 4  # type, id, offset, flags, length (upper bounds)
_MIN_CHUNK = 64  # do not start a stream frame with less room than this in a record
_CLOSE_DRAIN_MIN_S = 2.0


def channel_stream_id(channel: int, side: int) -> int:
    """The stream id carrying message channel ``channel`` from the peer on ``side`` (§16.1)."""
    return (channel << 2) | KIND_MESSAGES | side


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
    packets_lost: int = 0
    retransmitted_bytes: int = 0
    streams_opened: int = 0


class _MessageParser:
    """Splits a message channel's byte stream into length-prefixed messages (§16.1)."""

    __slots__ = ("buffer", "precredited")

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.precredited = 0  # bytes of the partial message whose credit was returned early

    def next_message(self, max_size: int) -> tuple[bytes, int] | None:
        """Pop one complete message: ``(data, bytes it used on the stream)``.

        Raises :class:`FrameError` when the announced length exceeds ``max_size``.
        """
        buf = self.buffer
        if not buf:
            return None
        size = 1 << (buf[0] >> 6)
        if len(buf) < size:
            return None
        length = int.from_bytes(buf[:size], "big") & ((1 << (8 * size - 2)) - 1)
        if length > max_size:
            raise FrameError("message larger than max_message_size")
        end = size + length
        if len(buf) < end:
            return None
        data = bytes(buf[size:end])
        del buf[:end]
        return data, end


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
        probe_max: int = 0,
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
        self.base_record_size = max_record_size  # what every path carries; probes go above
        self._probe_ladder = [s for s in PMTU_PROBE_SIZES if max_record_size < s <= probe_max]
        self._probe_counter: int | None = None
        self._probe_failures = 0  # consecutive lost probes at the current size
        self._probe_sizes = tuple(self._probe_ladder)
        self._probe_resume_at = 0.0
        self.keys = KeySchedule(result.send_key, result.recv_key, result.exporter, now)
        self.counters = SessionCounters()
        self.events: deque[Event] = deque()
        self.created_at = now
        self.last_received_at: float | None = None
        self.last_sent_at: float | None = None
        self.last_data_at = now
        self._last_eliciting_received_at: float | None = None
        self._first_unanswered_at: float | None = None
        self._pending: list[Frame] = []  # frames sent once (PONG, DATAGRAM, CLOSE, PING)
        self._control: list[Frame] = []  # frames retransmitted when lost (credit, resets)
        self._out: list[bytes] = []
        self._want_record = False
        self._probe = False
        # reliability (§14) and congestion control (§15)
        self.recovery = LossRecovery()
        self.acks = AckTracker()
        self.cc = NewReno(max_record_size)
        self.pacer = Pacer(max_record_size)
        # streams and flow control (§16)
        self._side = 0 if result.initiator else 1
        self._peer_side = 1 - self._side
        self._send: dict[int, SendStream] = {}
        self._recv: dict[int, ReceiveStream] = {}
        self._parsers: dict[int, _MessageParser] = {}
        self._order: deque[int] = deque()
        self._queued: set[int] = set()
        self._sent_high: dict[int, int] = {}
        self._fin_reported: set[int] = set()
        self._peer_max_data = SESSION_INITIAL_WINDOW_BYTES
        self._sent_data = 0
        self._send_bytes = 0  # sum of the send streams' buffered bytes, kept up to date
        self._precredited = 0  # credit returned early for incomplete messages, all channels
        self._local_max_data = SESSION_INITIAL_WINDOW_BYTES
        self._recv_data = 0
        self._consumed = 0
        self._next_stream_index = 0
        self._peer_max_streams = MAX_STREAMS_DEFAULT
        self._local_max_streams = MAX_STREAMS_DEFAULT
        self._peer_streams_opened = 0
        self._peer_streams_closed = 0
        # rotation and close
        self._ping_token = 0
        self._rotation_requested = False
        self._rotation_target = 0
        self._confirmed_version = 0
        self.close_code: int | None = None
        self.close_reason = ""
        self.closed_by_peer = False
        self._close_attempts = 0
        self._close_retry_at: float | None = None
        self._drain_deadline: float | None = None
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
    def rtt_s(self) -> float | None:
        """Smoothed RTT from acknowledgements (§14), once sampled."""
        rtt = self.recovery.rtt
        return rtt.smoothed_s if rtt.has_sample else None

    @property
    def max_datagram_size(self) -> int:
        """Largest payload :meth:`send_datagram` accepts on this session's transport."""
        room = max_frames_size(self.base_record_size) - 1
        return room - varint_size(room)

    @property
    def has_output(self) -> bool:
        return bool(self._out or self._pending or self._want_record or self._control)

    @property
    def send_buffered(self) -> int:
        """Bytes of application data held until the peer acknowledges them (backpressure)."""
        return self._send_bytes

    def stream_buffered(self, stream_id: int) -> int:
        stream = self._send.get(stream_id)
        return stream.buffered if stream is not None else 0

    @property
    def all_acknowledged(self) -> bool:
        """Every byte written on every stream was acknowledged."""
        return all(s.buffered == 0 and (s.fin_acked or not s.fin) for s in self._send.values())

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
        highest = self.keys.replay.highest
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
        if addr != self.addr and (highest is None or header.counter > highest):
            # Only the newest authenticated record moves the session (a delayed record from
            # the old address must not move it back).
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
        eliciting = any(not isinstance(f, Ack | Pong) for f in frames)
        self.acks.on_received(header.counter, eliciting, now)
        if eliciting:
            self._last_eliciting_received_at = now
        for frame in frames:
            if self.state == STT_SESSION_STATE_CLOSED:
                break
            self._handle_frame(frame, now)
        self._maybe_rotate(now)
        self._maybe_finish_drain(now)
        return None

    def _handle_frame(self, frame: Frame, now: float) -> None:
        if isinstance(frame, Stream):
            self._handle_stream(frame, now)
        elif isinstance(frame, Ack):
            self._handle_ack(frame, now)
        elif isinstance(frame, Datagram):
            if self.state == STT_SESSION_STATE_ACTIVE:
                self.last_data_at = now
                self.counters.datagrams_received += 1
                self.events.append(DatagramReceived(self.session_id, frame.data))
        elif isinstance(frame, MaxData):
            if frame.maximum > self._peer_max_data:
                self._peer_max_data = frame.maximum
                self._requeue_all()
        elif isinstance(frame, MaxStreamData):
            self._handle_max_stream_data(frame, now)
        elif isinstance(frame, MaxStreams):
            self._peer_max_streams = max(self._peer_max_streams, frame.maximum)
        elif isinstance(frame, ResetStream):
            self._handle_reset(frame, now)
        elif isinstance(frame, StopSending):
            self._handle_stop_sending(frame, now)
        elif isinstance(frame, Ping):
            if frame.token:
                self._pending.append(Pong(frame.token))
        elif isinstance(frame, Pong):
            if 0 < frame.token <= self._ping_token:
                self.events.append(PongReceived(self.session_id, frame.token))
        else:
            self._handle_close(frame, now)

    # -- streams: receive ---------------------------------------------------------------------
    def _receive_stream_for(self, stream_id: int, now: float) -> ReceiveStream | None:
        """The receive half for an incoming frame, opening it when allowed (§16.2).

        Returns None for frames of a stream that is already finished (a late retransmission);
        closes the session on a protocol violation (and returns None).
        """
        existing = self._recv.get(stream_id)
        if existing is not None:
            return existing
        kind = stream_id & 2
        side = stream_id & 1
        index = stream_id >> 2
        if kind == KIND_MESSAGES:
            if side != self._peer_side:
                self._protocol_violation(now, "data on our own message channel")
                return None
            if len(self._parsers) >= self.config.max_channels:
                self._protocol_violation(now, "too many message channels")
                return None
            stream = self._recv[stream_id] = ReceiveStream(STREAM_INITIAL_WINDOW_BYTES)
            self._parsers[stream_id] = _MessageParser()
            return stream
        if side == self._side:
            if index < self._next_stream_index:
                return None  # ours, already finished
            self._protocol_violation(now, "data on a stream we never opened")
            return None
        if index < self._peer_streams_opened:
            return None  # the peer's, already finished
        if index >= self._local_max_streams:
            self._protocol_violation(now, "stream limit exceeded")
            return None
        for i in range(self._peer_streams_opened, index + 1):
            sid = (i << 2) | KIND_BYTES | self._peer_side
            self._recv[sid] = ReceiveStream(STREAM_INITIAL_WINDOW_BYTES)
            self._send[sid] = SendStream(STREAM_INITIAL_WINDOW_BYTES)
            self.counters.streams_opened += 1
            self.events.append(StreamOpened(self.session_id, sid))
        self._peer_streams_opened = index + 1
        return self._recv[stream_id]

    def _handle_stream(self, frame: Stream, now: float) -> None:
        if self.state != STT_SESSION_STATE_ACTIVE:
            return  # CLOSING ignores received data, as it ignores DATAGRAM frames (§9)
        stream = self._receive_stream_for(frame.stream_id, now)
        if stream is None:
            return
        try:
            data, growth = stream.receive(frame.offset, frame.data, frame.fin)
        except FlowControlError as exc:
            self._protocol_violation(now, str(exc))
            return
        self._recv_data += growth
        if self._recv_data > self._local_max_data:
            self._protocol_violation(now, "session flow control credit exceeded")
            return
        self.last_data_at = now
        parser = self._parsers.get(frame.stream_id)
        if parser is not None:
            self._deliver_messages(frame.stream_id, stream, parser, data, now)
            return
        fin = stream.finished and frame.stream_id not in self._fin_reported
        if fin:
            self._fin_reported.add(frame.stream_id)
        if data or fin:
            self.events.append(StreamDataReceived(self.session_id, frame.stream_id, data, fin))
        self._maybe_forget_stream(frame.stream_id)

    def _deliver_messages(
        self, stream_id: int, stream: ReceiveStream, parser: _MessageParser, data: bytes, now: float
    ) -> None:
        if not data:
            return
        parser.buffer += data
        channel = stream_id >> 2
        while True:
            try:
                popped = parser.next_message(self.config.max_message_size)
            except FrameError as exc:
                self._protocol_violation(now, str(exc))
                return
            if popped is None:
                break
            message, used = popped
            early = min(parser.precredited, used)
            parser.precredited -= early
            self._precredited -= early
            self.counters.messages_received += 1
            self.events.append(MessageReceived(self.session_id, channel, message, used - early))
        self._credit_partial(stream_id, stream, parser)
        if self._recv_data >= self._local_max_data:
            # The session window is used up while messages are incomplete: they fit their
            # streams' credit but can only complete with more session credit, which only their
            # own bytes can free. Return it for every channel's head message (§16.3).
            for other_id, other in self._parsers.items():
                other_stream = self._recv.get(other_id)
                if other_stream is not None:
                    self._credit_partial(other_id, other_stream, other, session_blocked=True)

    def _credit_partial(
        self,
        stream_id: int,
        stream: ReceiveStream,
        parser: _MessageParser,
        session_blocked: bool = False,
    ) -> None:
        """Return now the credit of a message still incomplete when it could not complete
        otherwise (§16.3): its bytes cannot be consumed until it is whole, so a message beyond
        the credit would stall. Only the message at the head qualifies (the application took
        every message before it): a receiver that stops taking messages holds at most a window
        of them plus one message, and the sender stops. Consumption returns the rest."""
        buf = parser.buffer
        partial = len(buf) - parser.precredited
        if partial <= 0:
            return
        start = stream.delivered - len(buf)  # the stream offset of the incomplete message
        if stream.consumed - parser.precredited < start:
            return  # earlier messages still hold credit: their consumption comes first
        if not parser.precredited:
            size = 1 << (buf[0] >> 6)
            if len(buf) < size:
                return
            length = int.from_bytes(buf[:size], "big") & ((1 << (8 * size - 2)) - 1)
            if start + size + length <= stream.credit and not session_blocked:
                return  # it completes within the credit granted
        if self._precredited + partial > self.config.max_message_size:
            # Early credit across all channels is capped at one maximum message: a peer cannot
            # make an idle application hold more than the windows plus that (§16.3).
            return
        parser.precredited += partial
        self._precredited += partial
        self._consume(stream_id, stream, partial)

    def consume_message(self, channel: int, credit: int) -> None:
        """The application took a message of channel ``channel`` whose event carried
        ``credit``: return that much flow-control credit to the peer."""
        stream_id = channel_stream_id(channel, self._peer_side)
        stream = self._recv.get(stream_id)
        if stream is not None and credit > 0:
            self._consume(stream_id, stream, credit)
            parser = self._parsers.get(stream_id)
            if parser is not None:
                self._credit_partial(stream_id, stream, parser)  # now at the head, maybe

    def consume_stream(self, stream_id: int, n: int) -> None:
        """The application read ``n`` bytes of byte stream ``stream_id``."""
        stream = self._recv.get(stream_id)
        if stream is not None and n > 0:
            self._consume(stream_id, stream, n)

    def _consume(self, stream_id: int, stream: ReceiveStream, n: int) -> None:
        credit = stream.consume(n)
        if credit is not None and self.state == STT_SESSION_STATE_ACTIVE:
            self._control.append(MaxStreamData(stream_id, credit))
        self._consumed += n
        target = self._consumed + SESSION_INITIAL_WINDOW_BYTES
        if target - self._local_max_data >= SESSION_INITIAL_WINDOW_BYTES // 2:
            self._local_max_data = target
            if self.state == STT_SESSION_STATE_ACTIVE:
                self._control.append(MaxData(target))

    def _handle_reset(self, frame: ResetStream, now: float) -> None:
        if frame.stream_id & 2:
            # Message channels are never reset (§16.1): a message is sent whole or the session
            # closes. Honouring one would also let a peer open channels past max_channels.
            self._protocol_violation(now, "reset of a message channel")
            return
        stream = self._receive_stream_for(frame.stream_id, now)
        if stream is None or stream.reset_code is not None:
            return
        if frame.final_size < stream.highest or (
            stream.final_size is not None and stream.final_size != frame.final_size
        ):
            self._protocol_violation(now, "reset below the data already received")
            return
        growth = frame.final_size - stream.highest
        if frame.final_size > stream.credit:
            self._protocol_violation(now, "reset beyond the granted credit")
            return
        stream.highest = frame.final_size
        stream.final_size = frame.final_size
        stream.reset_code = frame.code
        self._recv_data += growth
        unread = frame.final_size - stream.consumed
        if unread > 0:
            self._consume(frame.stream_id, stream, unread)
        self._parsers.pop(frame.stream_id, None)
        self.events.append(StreamReset(self.session_id, frame.stream_id, frame.code, False))
        self._fin_reported.add(frame.stream_id)
        self._maybe_forget_stream(frame.stream_id)

    def _handle_stop_sending(self, frame: StopSending, now: float) -> None:
        if frame.stream_id & 2:
            self._protocol_violation(now, "stop-sending on a message channel")
            return
        stream = self._send.get(frame.stream_id)
        if stream is None:
            if (frame.stream_id & 1) == self._side and (
                frame.stream_id >> 2
            ) >= self._next_stream_index:
                self._protocol_violation(now, "stop-sending for a stream we never opened")
            return
        if stream.reset_code is None and not stream.done:
            self._reset_send(frame.stream_id, stream, frame.code)
            self.events.append(StreamReset(self.session_id, frame.stream_id, frame.code, True))
            self._maybe_forget_stream(frame.stream_id)  # its receiving half may be done already

    def _handle_max_stream_data(self, frame: MaxStreamData, now: float) -> None:
        stream = self._send.get(frame.stream_id)
        if stream is None:
            return
        if frame.maximum > stream.credit:
            stream.credit = frame.maximum
            self._schedule(frame.stream_id)

    # -- acknowledgements and loss (§14) ------------------------------------------------------
    def _handle_ack(self, frame: Ack, now: float) -> None:
        largest = frame.ranges[0][1]
        if largest >= self.keys.send_counter:
            self._protocol_violation(now, "acknowledgement of a record never sent")
            return
        delay_s = (frame.delay << ACK_DELAY_EXPONENT) / 1_000_000
        spurious = self.recovery.spurious_losses
        acked, lost, persistent = self.recovery.on_ack(largest, delay_s, list(frame.ranges), now)
        if self.recovery.spurious_losses > spurious and not lost:
            self.cc.undo()  # the window was cut for reordering, not loss
        for record in acked:
            if record.counter == self._probe_counter:
                self._probe_succeeded(record.size)
                continue
            self.cc.on_acked(record.size, record.time_sent, app_limited=False)
            for f in record.frames:
                if isinstance(f, Stream):
                    stream = self._send.get(f.stream_id)
                    if stream is not None:
                        before = stream.buffered
                        stream.on_acked(f.offset, len(f.data), f.fin)
                        self._send_bytes -= before - stream.buffered
                        self._maybe_forget_stream(f.stream_id)
        if lost:
            self._on_lost(lost, now, persistent)
        self._maybe_finish_drain(now)

    def _probe_succeeded(self, size: int) -> None:
        """The path carried a probe of ``size`` bytes: use that size, then try the next."""
        self._probe_counter = None
        self._probe_failures = 0
        if self._probe_ladder:
            self._probe_ladder.pop(0)
        if size > self.max_record_size:
            self._set_record_size(size)

    def _set_record_size(self, size: int) -> None:
        self.max_record_size = size
        self.cc.max_datagram = size
        self.pacer.burst = PACING_BURST_PACKETS * size

    def _on_lost(self, lost: list[SentRecord], now: float, persistent: bool) -> None:
        if self._probe_counter is not None and any(r.counter == self._probe_counter for r in lost):
            # A lost probe suggests the path's MTU is below its size; after PMTU_MAX_PROBES
            # losses at one size, stop probing. It is not a congestion signal (RFC 8899 §3).
            probe = self._probe_counter
            self._probe_counter = None
            self._probe_failures += 1
            if self._probe_failures >= PMTU_MAX_PROBES:
                self._probe_ladder.clear()
            lost = [r for r in lost if r.counter != probe]
            if not lost:
                return
        self.counters.packets_lost += len(lost)
        for record in lost:
            for f in record.frames:
                if isinstance(f, Stream):
                    stream = self._send.get(f.stream_id)
                    if stream is not None:
                        stream.on_lost(f.offset, len(f.data), f.fin)
                        self.counters.retransmitted_bytes += len(f.data)
                        self._schedule(f.stream_id)
                elif isinstance(f, MaxData):
                    self._control.append(MaxData(self._local_max_data))
                elif isinstance(f, MaxStreamData):
                    recv = self._recv.get(f.stream_id)
                    if recv is not None and recv.final_size is None:
                        self._control.append(MaxStreamData(f.stream_id, recv.credit))
                elif isinstance(f, MaxStreams):
                    self._control.append(MaxStreams(self._local_max_streams))
                elif isinstance(f, ResetStream | StopSending):
                    self._control.append(f)
        newest = max(r.time_sent for r in lost)
        self.cc.on_lost(newest, now, persistent)

    # -- streams: send ------------------------------------------------------------------------
    def _schedule(self, stream_id: int) -> None:
        if stream_id not in self._queued:
            stream = self._send.get(stream_id)
            if stream is not None and stream.has_pending():
                self._queued.add(stream_id)
                self._order.append(stream_id)

    def _requeue_all(self) -> None:
        for stream_id in self._send:
            self._schedule(stream_id)

    def _require_active(self) -> None:
        if self.state != STT_SESSION_STATE_ACTIVE:
            raise SessionClosedError(
                f"session {self.session_id.hex()} is not active (state {self.state})",
                self.close_code,
                self.close_reason,
            )

    def send_message(self, channel: int, data: bytes, now: float) -> None:
        """Queue one application message on ``channel``; it is delivered reliably, in order per
        channel, exactly once. Raises SessionClosedError, MessageTooLarge (the session stays
        usable) or ValueError for a channel outside 0..MAX_CHANNEL."""
        self._require_active()
        if len(data) > self.config.max_message_size:
            raise MessageTooLarge(
                f"message of {len(data)} bytes exceeds max_message_size "
                f"({self.config.max_message_size})"
            )
        if not 0 <= channel <= MAX_CHANNEL:
            raise ValueError(f"stream_id must be within 0..{MAX_CHANNEL}")
        stream_id = channel_stream_id(channel, self._side)
        stream = self._send.get(stream_id)
        if stream is None:
            stream = self._send[stream_id] = SendStream(STREAM_INITIAL_WINDOW_BYTES)
        header = encode_varint(len(data))
        stream.write(header)
        stream.write(data)
        self._send_bytes += len(header) + len(data)
        self._schedule(stream_id)
        self.counters.messages_sent += 1
        self.last_data_at = now

    def open_stream(self, now: float) -> int:
        """Open a bidirectional byte stream; returns its id. Raises StreamError when the peer's
        limit on concurrent streams is reached."""
        self._require_active()
        if self._next_stream_index >= self._peer_max_streams:
            raise StreamError(
                f"the peer allows {self._peer_max_streams} streams; wait for one to finish"
            )
        stream_id = (self._next_stream_index << 2) | KIND_BYTES | self._side
        self._next_stream_index += 1
        self._send[stream_id] = SendStream(STREAM_INITIAL_WINDOW_BYTES)
        self._recv[stream_id] = ReceiveStream(STREAM_INITIAL_WINDOW_BYTES)
        self.counters.streams_opened += 1
        self.last_data_at = now
        return stream_id

    def _send_stream(self, stream_id: int) -> SendStream:
        stream = self._send.get(stream_id)
        if stream is None or stream_id & 2:
            raise StreamError(f"no open byte stream {stream_id}")
        return stream

    def write_stream(self, stream_id: int, data: bytes, fin: bool, now: float) -> None:
        """Append ``data`` to byte stream ``stream_id`` (and finish it when ``fin``)."""
        self._require_active()
        stream = self._send_stream(stream_id)
        if stream.reset_code is not None:
            raise StreamError(f"stream {stream_id} was reset (code {stream.reset_code})")
        if stream.fin:
            raise StreamError(f"stream {stream_id} is already closed for writing")
        stream.write(bytes(data))
        self._send_bytes += len(data)
        if fin:
            stream.finish()
        self._schedule(stream_id)
        self.last_data_at = now

    def reset_stream(self, stream_id: int, code: int, now: float) -> None:
        """Abort byte stream ``stream_id`` in both directions with ``code``."""
        if self.state != STT_SESSION_STATE_ACTIVE:
            return
        if not 0 <= code <= VARINT_MAX:
            raise ValueError("reset code out of range")
        stream = self._send_stream(stream_id)
        if stream.reset_code is None and not stream.done:
            self._reset_send(stream_id, stream, code)
        recv = self._recv.get(stream_id)
        if recv is not None and recv.reset_code is None and not recv.finished:
            self._control.append(StopSending(stream_id, code))
            recv.reset_code = code
            self._fin_reported.add(stream_id)
        self._maybe_forget_stream(stream_id)

    def _reset_send(self, stream_id: int, stream: SendStream, code: int) -> None:
        # The final size is what the peer may have received: the highest offset sent, not what
        # the application wrote (unsent bytes never count against the peer's credit).
        final = self._sent_high.get(stream_id, 0)
        self._send_bytes -= stream.buffered
        stream.reset(code)
        self._control.append(ResetStream(stream_id, code, final))

    def _maybe_forget_stream(self, stream_id: int) -> None:
        """Drop a byte stream's state once both halves are done (bounded memory)."""
        if stream_id & 2:
            return
        send = self._send.get(stream_id)
        recv = self._recv.get(stream_id)
        if send is None or recv is None:
            return
        recv_done = recv.reset_code is not None or (
            recv.finished and stream_id in self._fin_reported
        )
        if send.done and recv_done:
            del self._send[stream_id]
            del self._recv[stream_id]
            self._sent_high.pop(stream_id, None)
            self._fin_reported.discard(stream_id)
            if stream_id & 1 == self._peer_side:
                self._peer_streams_closed += 1
                self._local_max_streams = self._peer_streams_closed + MAX_STREAMS_DEFAULT
                if self.state == STT_SESSION_STATE_ACTIVE:
                    self._control = [f for f in self._control if not isinstance(f, MaxStreams)]
                    self._control.append(MaxStreams(self._local_max_streams))

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

    def ping(self, now: float) -> int:
        """Send a PING now; returns its token. The peer acknowledges it (an RTT sample) and
        answers with a PONG, reported as :class:`PongReceived` with the same token."""
        self._require_active()
        self._ping_token += 1
        self._pending.append(Ping(self._ping_token))
        return self._ping_token

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

    # -- close --------------------------------------------------------------------------------
    def close(self, code: int, reason: str, now: float, *, drain: bool = False) -> None:
        """Start closing with CLOSE(code, reason).

        With ``drain``, data already written is delivered first (for at most
        max(2 s, 4 x PTO)); the CLOSE is retransmitted until the peer answers or
        :data:`CLOSE_ATTEMPTS` are used; :class:`SessionClosed` follows either way.
        """
        if not 0 <= code <= VARINT_MAX:
            raise ValueError("close code must be within 0..2**62-1")
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
        if drain and not self.all_acknowledged:
            self._drain_deadline = now + max(_CLOSE_DRAIN_MIN_S, 4 * self.recovery.rtt.pto_s())
            return
        self._send_close(now)

    def _send_close(self, now: float) -> None:
        self._drain_deadline = None
        self._pending.append(Close(self.close_code or CLOSE_NORMAL, self.close_reason))
        self._close_attempts = 1
        self._close_retry_at = now + max(CLOSE_RETRANSMIT_S, 2 * self._rtt())

    def _maybe_finish_drain(self, now: float) -> None:
        if self._drain_deadline is not None and (
            self.all_acknowledged or now >= self._drain_deadline
        ):
            self._send_close(now)

    def _handle_close(self, frame: Close, now: float) -> None:
        if self.state == STT_SESSION_STATE_CLOSING and self._drain_deadline is None:
            if any(isinstance(f, Close) for f in self._pending):
                # Our CLOSE was queued in this very record's processing (the drain just ended)
                # and has not left: send it, it answers the peer's, or the peer would retransmit
                # its CLOSE until its attempts run out.
                self._out.extend(self._build_records(now))
            self._finish_close()
            return
        self.close_code = frame.code
        self.close_reason = frame.reason
        self.closed_by_peer = True
        self._pending.clear()
        self._control.clear()
        self._order.clear()
        self._queued.clear()
        self._drain_deadline = None
        self._pending.append(Close(CLOSE_NORMAL, ""))
        self._out.extend(self._build_records(now))
        self._finish_close()

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
        self._control.clear()
        self._order.clear()
        self._queued.clear()
        self._send.clear()
        self._send_bytes = 0
        self._recv.clear()
        self._parsers.clear()
        self.recovery.forget_all()
        self._want_record = False
        self._close_retry_at = None
        self._drain_deadline = None
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
            due_by_time = now >= self.keys.epoch_started_at + self.config.rekey_after_s
            due_by_count = self.keys.sent_in_epoch >= self.config.rekey_after_messages
            if due_by_time or due_by_count:
                self._rotation_requested = True
                self._rotation_target = self.keys.send_epoch + 1
        if self._rotation_requested and self.keys.can_rotate(now, self._rotation_interval()):
            if self.keys.send_epoch < self._rotation_target:
                self.keys.rotate(now)
                self._want_record = True
            self._rotation_requested = False

    def _rotation_interval(self) -> float:
        """Least time between rotations: the configured minimum, and at least 3 x PTO so a
        record delayed behind two rotations still finds its key (RFC 9001 §6.5)."""
        return max(self.config.key_rotation_min_interval_s, 3 * self.recovery.rtt.pto_s())

    def _check_rotation_confirmed(self) -> None:
        version = self.keys.send_epoch
        if version > self._confirmed_version and not self.keys.rotation_pending:
            self._confirmed_version = version
            self.events.append(KeyRotated(self.session_id, version))

    # -- core -> network ----------------------------------------------------------------------
    def flush(self, now: float) -> list[bytes]:
        """Return every packet due now: records coalescing queued frames, acknowledgements and
        stream data within the congestion window and pacer, and retransmitted handshake
        packets. The caller sends them to :attr:`addr` in order."""
        if self.state in (STT_SESSION_STATE_ACTIVE, STT_SESSION_STATE_CLOSING):
            if self._pending or self._order:
                # Rotation by count is due after *sending*; a node that only sends would
                # otherwise wait for a received record or a timer to notice (§7).
                self._maybe_rotate(now)
            ack_due = self.acks.ack_due_at
            if (
                self._pending
                or self._control
                or self._order
                or self._want_record
                or self._probe
                or (ack_due is not None and ack_due <= now)
            ):
                self._out.extend(self._build_records(now))
        out, self._out = self._out, []
        return out

    def _ack_frame(self, now: float) -> Ack:
        _, delay, ranges = self.acks.build(now)
        return Ack(delay, tuple((low, high) for low, high in ranges))

    def _build_records(self, now: float) -> list[bytes]:
        limit = max_frames_size(self.max_record_size)
        records: list[bytes] = []
        cc = self.cc
        recovery = self.recovery
        self.pacer.refill(now, cc.cwnd, recovery.rtt.smoothed_s)
        if (
            self._probe_ladder
            and self._probe_counter is None
            and self.state == STT_SESSION_STATE_ACTIVE
            and self.send_buffered > PMTU_PROBE_AFTER_RECORDS * self.max_record_size
            and now >= self._probe_resume_at
        ):
            # Probe only when bulk data waits: larger records pay off there, and idle or
            # chatty sessions send no padding at all.
            records.append(self._seal([Ping(0)], now, pad_to=self._probe_ladder[0]))
        while True:
            frames: list[Frame] = []
            size = 0
            ack_due = self.acks.ack_due_at
            if ack_due is not None and (
                ack_due <= now or self._pending or self._control or self._order or self._want_record
            ):
                ack = self._ack_frame(now)
                frames.append(ack)
                size += frame_size(ack)
            for queue in (self._pending, self._control):
                while queue:
                    fsize = frame_size(queue[0])
                    if size + fsize > limit:
                        break
                    frames.append(queue.pop(0))
                    size += fsize
            may_send = self._probe or (
                cc.can_send(recovery.bytes_in_flight) and self.pacer.can_send()
            )
            if self._order and may_send and self.state != STT_SESSION_STATE_CLOSED:
                size = self._fill_streams(frames, size, limit)
            if not frames and not self._want_record:
                break
            records.append(self._seal(frames, now))
            self._want_record = False
            self._probe = False
            if not frames:
                break
            if size + _STREAM_OVERHEAD + _MIN_CHUNK <= limit and not (
                self._pending or self._control
            ):
                # The record had room left: everything that could go out went out.
                break
        return records

    def _fill_streams(self, frames: list[Frame], size: int, limit: int) -> int:
        order = self._order
        while order and size + _STREAM_OVERHEAD + _MIN_CHUNK <= limit:
            stream_id = order.popleft()
            self._queued.discard(stream_id)
            stream = self._send.get(stream_id)
            if stream is None:
                continue
            high = self._sent_high.get(stream_id, 0)
            session_room = self._peer_max_data - self._sent_data
            chunk = stream.next_chunk(limit - size - _STREAM_OVERHEAD, high + session_room)
            if chunk is None:
                if stream.has_pending() and not stream.blocked_by_credit() and session_room > 0:
                    self._schedule(stream_id)  # pragma: no cover - defensive
                continue
            offset, data, fin = chunk
            end = offset + len(data)
            if end > high:
                self._sent_data += end - high
                self._sent_high[stream_id] = end
            frame = Stream(stream_id, offset, fin, data)
            frames.append(frame)
            size += frame_size(frame)
            self._schedule(stream_id)
        return size

    def _seal(self, frames: list[Frame], now: float, pad_to: int = 0) -> bytes:
        key, epoch, echo, counter = self.keys.next_send()
        header = pack_header(epoch, echo, self.session_id, counter)
        record = seal_record(key, header, counter, serialize_frames(frames), pad_to)
        if pad_to:
            self._probe_counter = counter  # a path-MTU probe (§12.1)
        self.counters.packets_sent += 1
        self.counters.bytes_sent += len(record)
        self.last_sent_at = now
        eliciting = any(not isinstance(f, Ack | Pong) for f in frames)
        if eliciting:
            if self._first_unanswered_at is None:
                self._first_unanswered_at = now
            retransmittable = [
                f
                for f in frames
                if isinstance(
                    f, Stream | MaxData | MaxStreamData | MaxStreams | ResetStream | StopSending
                )
            ]
            self.recovery.on_sent(
                SentRecord(counter, now, len(record), True, True, retransmittable)
            )
            self.pacer.on_sent(len(record))
        return record

    # -- timers -------------------------------------------------------------------------------
    def _rtt(self) -> float:
        rtt = self.rtt_s
        return rtt if rtt is not None else RTT_INITIAL_S

    def get_timer(self) -> float | None:
        """The next deadline of this session (seconds, same clock as ``now``), or None."""
        if self.state == STT_SESSION_STATE_CLOSED:
            return None
        if self.state == STT_SESSION_STATE_HANDSHAKE:
            candidates = [self._final_retry_at, self._handshake_deadline]
            return min((t for t in candidates if t is not None), default=None)
        deadlines: list[float] = []
        if self.acks.ack_due_at is not None:
            deadlines.append(self.acks.ack_due_at)
        loss_at = self.recovery.get_timer()
        if loss_at is not None:
            deadlines.append(loss_at)
        if self._order and self.cc.can_send(self.recovery.bytes_in_flight):
            pace_at = self.pacer.next_send_at(
                now=self.last_sent_at or self.created_at,
                cwnd=self.cc.cwnd,
                srtt_s=self.recovery.rtt.smoothed_s,
            )
            if pace_at is not None:
                deadlines.append(pace_at)
        if self.state == STT_SESSION_STATE_CLOSING:
            for t in (self._close_retry_at, self._drain_deadline):
                if t is not None:
                    deadlines.append(t)
            return min(deadlines, default=None)
        if self._first_unanswered_at is not None:
            deadlines.append(self._first_unanswered_at + DEAD_PEER_TIMEOUT_S)
        if self._last_eliciting_received_at is not None and (
            self.last_sent_at is None or self.last_sent_at < self._last_eliciting_received_at
        ):
            deadlines.append(self._last_eliciting_received_at + self.config.keepalive_s)
        if self.config.session_idle_timeout_s is not None:
            deadlines.append(self.last_data_at + self.config.session_idle_timeout_s)
        persistent = self.config.persistent_keepalive_s
        if persistent is not None:
            deadlines.append((self.last_sent_at or self.created_at) + persistent)
        if self._rotation_requested:
            # While the peer has not confirmed the last rotation, its record (not a timer)
            # unblocks the next one: a deadline here would be in the past and spin the caller.
            if not self.keys.rotation_pending:
                deadlines.append(self.keys.last_rotation_at + self._rotation_interval())
        else:
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
        lost, probe = self.recovery.on_timeout(now)
        if lost:
            self._on_lost(lost, now, False)
        if probe:
            self._probe = True
            if (
                self.recovery.pto_count >= PMTU_BLACK_HOLE_PTOS
                and self.max_record_size > self.base_record_size
            ):
                # Records of the probed size stopped arriving (a route change, a black hole, or
                # heavy loss): fall back to the size every path carries, and probe again after
                # a pause; a real black hole then fails its probes and probing stops.
                self._set_record_size(self.base_record_size)
                self._probe_ladder = [s for s in PMTU_PROBE_SIZES if s in self._probe_sizes]
                self._probe_counter = None
                self._probe_failures = 0
                self._probe_resume_at = now + PMTU_REPROBE_AFTER_S
            self._pending.append(Ping(0))  # ack-eliciting, no PONG wanted (§14.3)
        if self.state == STT_SESSION_STATE_CLOSING:
            if self._drain_deadline is not None:
                self._maybe_finish_drain(now)
            elif self._close_retry_at is not None and now >= self._close_retry_at:
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
        persistent = self.config.persistent_keepalive_s
        if persistent is not None and now >= (self.last_sent_at or self.created_at) + persistent:
            self._want_record = True  # persistent keepalive: keep NAT mappings open (§8)
        self._maybe_rotate(now)

    def _finish_close_timeout(self) -> None:
        handle = self.handle
        self.handle = None  # report a timeout, not a refusal
        self._finish_close()
        if handle is not None:
            self.events.appendleft(HandshakeFailedEvent(handle, self.close_reason, timeout=True))
