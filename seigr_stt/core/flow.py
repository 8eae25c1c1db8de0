"""Streams of one session and their flow control (``docs/protocol.md`` §16).

A :class:`StreamTable` owns every stream of a session: their ids and kinds (§16.1), the limits on
how many the peer may open (§16.2), the per-stream and session credit both ways (§16.3), resets
and stop-sending (§16.4), and the order in which streams with data to send take turns. It is
driven by the session, which hands it the frames it received and asks it for frames to send;
each frame it hands out comes with a delivery handler the packetizer calls back with ``acked``
True or False once the record carrying it is acknowledged or declared lost.

Credit we grant is a :class:`Limit`: its ``value`` grows as the application consumes, ``sent`` is
the value last put in a frame, and a lost credit frame resets ``sent`` so that the current value
goes out again (never a stale one).

Violations by the peer raise :class:`~seigr_stt.exceptions.PeerViolation`; the session closes
with ``CLOSE_PROTOCOL_ERROR``.
"""

from __future__ import annotations

from collections.abc import Iterator

from seigr_stt.config import SessionConfig
from seigr_stt.constants import (
    MAX_STREAMS_DEFAULT,
    REASSEMBLY_BYTES_PER_FRAGMENT,
    REASSEMBLY_MIN_FRAGMENTS,
    STREAM_CODE_UNIDIRECTIONAL,
    STREAM_INDEX_SHIFT,
    STREAM_KIND_BIT,
    STREAM_SIDE_BIT,
)
from seigr_stt.core.events import Event, StreamOpened, StreamReleased, StreamReset
from seigr_stt.core.frames import (
    VARINT_MAX,
    Frame,
    MaxData,
    MaxStreamData,
    MaxStreams,
    ResetStream,
    StopSending,
    Stream,
)
from seigr_stt.core.stats import SessionCounters
from seigr_stt.core.streams import ReceiveStream, SendStream
from seigr_stt.exceptions import PeerViolation, StreamError

__all__ = [
    "KIND_BYTES",
    "KIND_MESSAGES",
    "MAX_CHANNEL",
    "Limit",
    "StreamTable",
    "channel_stream_id",
    "is_message_channel",
]

KIND_BYTES = 0  # a bidirectional byte stream (open_stream)
KIND_MESSAGES = STREAM_KIND_BIT  # a unidirectional message channel (send_message)
MAX_CHANNEL = VARINT_MAX >> STREAM_INDEX_SHIFT  # channel numbers fit a stream id


def channel_stream_id(channel: int, side: int) -> int:
    """The stream id carrying message channel ``channel`` from the peer on ``side`` (§16.1)."""
    return (channel << STREAM_INDEX_SHIFT) | KIND_MESSAGES | side


def is_message_channel(stream_id: int) -> bool:
    """Whether ``stream_id`` names a message channel (not a byte stream)."""
    return bool(stream_id & STREAM_KIND_BIT)


class Limit:
    """A credit limit we grant the peer: ``value`` now, ``used`` so far, ``sent`` in the last
    frame that announced it (0 after that frame was lost: announce again)."""

    __slots__ = ("sent", "used", "value")

    def __init__(self, value: int) -> None:
        self.value = value
        self.used = 0
        self.sent = value  # the initial value is known to the peer (§16.3)

    def __repr__(self) -> str:
        return f"Limit(value={self.value}, used={self.used}, sent={self.sent})"

    @property
    def due(self) -> bool:
        """Whether the peer has not been told the current value."""
        return self.value > self.sent


class StreamTable:
    """Every stream of one session; see the module docstring."""

    # Slots, and dicts as sets (an empty dict is 64 bytes, an empty set 216): every idle session
    # holds one table (docs/performance.md, memory per idle session).
    __slots__ = (
        "_blocked_on_session",
        "_order",
        "_peer_marks",
        "_peer_streams_closed",
        "_session_fragments_max",
        "_stream_fragments_max",
        "channels_received",
        "config",
        "consumed",
        "control",
        "counters",
        "credit_due",
        "events",
        "fragments",
        "grant_credit",
        "max_data",
        "max_streams",
        "next_stream_index",
        "peer_max_data",
        "peer_max_streams",
        "peer_side",
        "peer_streams_opened",
        "recv",
        "send",
        "send_buffered",
        "sent_data",
        "session_id",
        "side",
        "unsent",
    )

    def __init__(
        self,
        session_id: bytes,
        side: int,
        config: SessionConfig,
        events: list[Event],
        counters: SessionCounters,
    ) -> None:
        self.session_id = session_id
        self.side = side
        self.peer_side = 1 - side
        self.config = config
        self.events = events
        self.counters = counters
        self.send: dict[int, SendStream] = {}
        self.recv: dict[int, ReceiveStream] = {}
        self.channels_received = 0  # message channels the peer opened
        # Out-of-order fragments held, and the most allowed per stream and per session.
        self.fragments = 0
        self._stream_fragments_max = max(
            REASSEMBLY_MIN_FRAGMENTS, config.stream_window // REASSEMBLY_BYTES_PER_FRAGMENT
        )
        self._session_fragments_max = max(
            REASSEMBLY_MIN_FRAGMENTS, config.session_window // REASSEMBLY_BYTES_PER_FRAGMENT
        )
        # What the peer allows us (§16.2, §16.3).
        self.peer_max_data = config.session_window
        self.sent_data = 0  # sum over streams of the highest offset sent
        self.peer_max_streams = MAX_STREAMS_DEFAULT
        self.next_stream_index = 0
        # What we allow the peer.
        self.max_data = Limit(config.session_window)  # used: sum of highest offsets received
        self.max_streams = Limit(MAX_STREAMS_DEFAULT)
        self.consumed = 0
        self.peer_streams_opened = 0
        self._peer_streams_closed = 0  # released by the core and accepted by the application
        #: Peer streams the application took that are still live (True), and peer streams the
        #: core released before the application took them (False): one dict, not two (64 bytes
        #: each per idle session, docs/performance.md).
        self._peer_marks: dict[int, bool] = {}
        # Sending: streams with data, in turn; credit and control frames waiting.
        # Lists, not deques: short queues, and an empty deque costs ~600 bytes per session.
        self._order: list[int] = []
        #: Streams within their own credit but not the session's (None: none since the last
        #: MAX_DATA; made on first use, as most sessions never run out of session credit).
        self._blocked_on_session: dict[int, None] | None = None
        self.credit_due: dict[int, None] = {}  # receive streams whose credit must be announced
        #: RESET_STREAM and STOP_SENDING frames to send (None until the first: most sessions
        #: never reset a stream).
        self.control: list[ResetStream | StopSending] | None = None
        self.send_buffered = 0  # sum of the send streams' buffered bytes
        #: Bytes written and never sent yet, over every send stream (what a reliable link's
        #: sender weighs before it starts a record that data would not fill, §15.4).
        self.unsent = 0
        #: Announce credit (False once the session is closing: data it receives is ignored).
        self.grant_credit = True

    # -- state --------------------------------------------------------------------------------
    @property
    def has_stream_data(self) -> bool:
        """Whether some stream waits for its turn to send."""
        return bool(self._order)

    @property
    def has_control(self) -> bool:
        """Whether control or credit frames wait to be sent."""
        return bool(self.control) or (
            self.grant_credit and bool(self.credit_due or self.max_data.due or self.max_streams.due)
        )

    @property
    def all_acknowledged(self) -> bool:
        """Every byte written on every stream was acknowledged."""
        return all(s.buffered == 0 and (s.fin_acked or not s.fin) for s in self.send.values())

    def stream_buffered(self, stream_id: int) -> int:
        """Unacknowledged bytes of one send stream (0 if it is gone)."""
        stream = self.send.get(stream_id)
        return stream.buffered if stream is not None else 0

    # -- opening ------------------------------------------------------------------------------
    def receive_stream_for(self, stream_id: int) -> ReceiveStream | None:
        """The receive half for an incoming frame, opening it when allowed (§16.2).

        Returns None for frames of a stream that is already finished (a late retransmission);
        raises :class:`PeerViolation` for a stream the peer may not use.
        """
        existing = self.recv.get(stream_id)
        if existing is not None:
            return existing
        side = stream_id & STREAM_SIDE_BIT
        index = stream_id >> STREAM_INDEX_SHIFT
        if is_message_channel(stream_id):
            if side != self.peer_side:
                raise PeerViolation("data on our own message channel")
            if self.channels_received >= self.config.max_channels:
                raise PeerViolation("too many message channels")
            self.channels_received += 1
            stream = self.recv[stream_id] = ReceiveStream(self.config.stream_window)
            return stream
        if side == self.side:
            if index < self.next_stream_index:
                return None  # ours, already finished
            raise PeerViolation("data on a stream we never opened")
        if index < self.peer_streams_opened:
            return None  # the peer's, already finished
        if index >= self.max_streams.value:
            raise PeerViolation("stream limit exceeded")
        for i in range(self.peer_streams_opened, index + 1):
            sid = (i << STREAM_INDEX_SHIFT) | KIND_BYTES | self.peer_side
            self.recv[sid] = ReceiveStream(self.config.stream_window)
            self.send[sid] = SendStream(self.config.stream_window)
            self.counters.streams_opened += 1
            self.events.append(StreamOpened(self.session_id, sid))
        self.peer_streams_opened = index + 1
        return self.recv[stream_id]

    def open_stream(self, unidirectional: bool = False) -> int:
        """Open a byte stream; returns its id. Raises StreamError at the peer's limit on
        concurrent streams. ``unidirectional``: only we send on it; its receiving half is
        stopped at once with ``STREAM_CODE_UNIDIRECTIONAL`` (a STOP_SENDING that also tells the
        peer of the stream, §16.4)."""
        if self.next_stream_index >= self.peer_max_streams:
            raise StreamError(
                f"the peer allows {self.peer_max_streams} streams; wait for one to finish"
            )
        stream_id = (self.next_stream_index << STREAM_INDEX_SHIFT) | KIND_BYTES | self.side
        self.next_stream_index += 1
        self.send[stream_id] = SendStream(self.config.stream_window)
        self.recv[stream_id] = ReceiveStream(self.config.stream_window)
        self.counters.streams_opened += 1
        if unidirectional:
            self._stop_receiving(stream_id, STREAM_CODE_UNIDIRECTIONAL)
        return stream_id

    # -- receiving ----------------------------------------------------------------------------
    def receive(self, frame: Stream) -> tuple[ReceiveStream, bytes] | None:
        """Take a STREAM frame: ``(its stream, newly contiguous bytes)``, or None when the
        stream is already finished. Raises :class:`PeerViolation` beyond any credit, and for a
        FIN on a message channel (never finished, §16.4)."""
        if frame.fin and is_message_channel(frame.stream_id):
            raise PeerViolation("FIN on a message channel")
        stream = self.receive_stream_for(frame.stream_id)
        if stream is None:
            return None
        before = stream.fragments
        data, growth = stream.receive(frame.offset, frame.data, frame.fin)
        self.max_data.used += growth
        if self.max_data.used > self.max_data.value:
            raise PeerViolation("session flow control credit exceeded")
        self.fragments += stream.fragments - before
        if stream.fragments > self._stream_fragments_max or (
            self.fragments > self._session_fragments_max
        ):
            raise PeerViolation("too many out-of-order fragments")
        return stream, data

    def fin_to_report(self, stream_id: int, stream: ReceiveStream) -> bool:
        """Whether the end of byte stream ``stream_id`` is to be reported now (once)."""
        if stream.finished and not stream.fin_reported:
            stream.fin_reported = True
            return True
        return False

    def consume(
        self, stream_id: int, stream: ReceiveStream, n: int, *, urgent: bool = False
    ) -> None:
        """The application is done with ``n`` bytes of ``stream``: grant more credit, after half
        a window, or at once when ``urgent`` and the peer has used all it was granted (early
        credit, §16.3: waiting for half a window could wait forever)."""
        if stream.consume(n, urgent=urgent) is not None:
            self.credit_due[stream_id] = None
        self.consumed += n
        window = self.config.session_window
        target = self.consumed + window
        limit = self.max_data
        if target > limit.value and (
            target - limit.value >= window // 2 or (urgent and limit.used >= limit.value)
        ):
            limit.value = target

    def announce_if_blocked(self, extension: int = 0) -> None:
        """The peer used all the session credit it was granted: announce what was consumed
        since, however little. When nothing was, and incomplete messages hold the window,
        extend the session credit by one stream window at a time, up to ``extension`` beyond
        the window (§16.3: their streams' own credit stops all but the one served early)."""
        limit = self.max_data
        if limit.used < limit.value:
            return
        target = self.consumed + self.config.session_window
        if target > limit.value:
            limit.value = target
        elif limit.value < target + extension:
            limit.value = min(limit.value + self.config.stream_window, target + extension)

    def consume_stream(self, stream_id: int, n: int) -> None:
        """The application read ``n`` bytes of byte stream ``stream_id``."""
        stream = self.recv.get(stream_id)
        if stream is not None and n > 0:
            self.consume(stream_id, stream, n)

    def on_reset(self, frame: ResetStream) -> None:
        """The peer abandoned its sending half (RESET_STREAM, §16.4)."""
        if is_message_channel(frame.stream_id):
            # Message channels are never reset (§16.1): a message is sent whole or the session
            # closes. Honouring one would also let a peer open channels past max_channels.
            raise PeerViolation("reset of a message channel")
        stream = self.receive_stream_for(frame.stream_id)
        if stream is None or stream.reset_code is not None:
            return
        if frame.final_size < stream.highest or (
            stream.final_size is not None and stream.final_size != frame.final_size
        ):
            raise PeerViolation("reset below the data already received")
        if frame.final_size > stream.credit:
            raise PeerViolation("reset beyond the granted credit")
        growth = frame.final_size - stream.highest
        if self.max_data.used + growth > self.max_data.value:
            # The final size counts against the session window as data would (§16.5).
            raise PeerViolation("session flow control credit exceeded")
        self.max_data.used += growth
        stream.highest = frame.final_size
        stream.final_size = frame.final_size
        stream.reset_code = frame.code
        self.fragments -= stream.fragments
        stream.discard_held()
        unread = frame.final_size - stream.consumed
        if unread > 0:
            self.consume(frame.stream_id, stream, unread)
        self.events.append(StreamReset(self.session_id, frame.stream_id, frame.code, False))
        stream.fin_reported = True
        self.maybe_forget(frame.stream_id)

    def on_stop_sending(self, frame: StopSending) -> None:
        """The peer asked us to stop sending (STOP_SENDING, §16.4): reset our half."""
        if is_message_channel(frame.stream_id):
            raise PeerViolation("stop-sending on a message channel")
        if frame.stream_id & STREAM_SIDE_BIT == self.peer_side:
            # It opens a peer byte stream as STREAM and RESET_STREAM do (§16.2): how the opener
            # of a unidirectional stream tells us of it before its first byte.
            self.receive_stream_for(frame.stream_id)
        stream = self.send.get(frame.stream_id)
        if stream is None:
            if (frame.stream_id & STREAM_SIDE_BIT) == self.side and (
                frame.stream_id >> STREAM_INDEX_SHIFT
            ) >= self.next_stream_index:
                raise PeerViolation("stop-sending for a stream we never opened")
            return
        if stream.reset_code is None and not stream.done:
            self._reset_send(frame.stream_id, stream, frame.code)
            self.events.append(StreamReset(self.session_id, frame.stream_id, frame.code, True))
            self.maybe_forget(frame.stream_id)  # its receiving half may be done already

    def on_max_data(self, frame: MaxData) -> None:
        """More session credit from the peer."""
        if frame.maximum > self.peer_max_data:
            self.peer_max_data = frame.maximum
            # Only the streams that waited for session credit get a turn again: O(those), not
            # O(every stream) per frame (a record full of MAX_DATA must stay cheap).
            blocked, self._blocked_on_session = self._blocked_on_session, None
            for stream_id in blocked or ():
                self.schedule(stream_id)

    def on_max_stream_data(self, frame: MaxStreamData) -> None:
        """More credit for one of our streams."""
        stream = self.send.get(frame.stream_id)
        if stream is not None and frame.maximum > stream.credit:
            stream.credit = frame.maximum
            self.schedule(frame.stream_id)

    def on_max_streams(self, frame: MaxStreams) -> None:
        """The peer allows more concurrent byte streams."""
        self.peer_max_streams = max(self.peer_max_streams, frame.maximum)

    # -- sending ------------------------------------------------------------------------------
    def write(self, stream_id: int, data: bytes, fin: bool) -> None:
        """Append to byte stream ``stream_id`` (finish it when ``fin``). Raises StreamError."""
        stream = self.send.get(stream_id)
        if stream is None or is_message_channel(stream_id):
            raise StreamError(f"no open byte stream {stream_id}")
        if stream.reset_code is not None:
            raise StreamError(f"stream {stream_id} was reset (code {stream.reset_code})")
        if stream.fin:
            raise StreamError(f"stream {stream_id} is already closed for writing")
        stream.write(data)
        self.send_buffered += len(data)
        self.unsent += len(data)
        if fin:
            stream.finish()
        self.schedule(stream_id)

    def write_message(self, channel: int, header: bytes, data: bytes) -> None:
        """Append one length-prefixed message to our message channel ``channel`` (§16.1)."""
        stream_id = channel_stream_id(channel, self.side)
        stream = self.send.get(stream_id)
        if stream is None:
            stream = self.send[stream_id] = SendStream(self.config.stream_window)
        stream.write(data, header)
        size = len(header) + len(data)
        self.send_buffered += size
        self.unsent += size
        self.schedule(stream_id)

    def reset(self, stream_id: int, code: int) -> None:
        """Abort byte stream ``stream_id`` in both directions with ``code``."""
        stream = self.send.get(stream_id)
        if stream is None or is_message_channel(stream_id):
            raise StreamError(f"no open byte stream {stream_id}")
        if stream.reset_code is None and not stream.done:
            self._reset_send(stream_id, stream, code)
        self._stop_receiving(stream_id, code)
        self.maybe_forget(stream_id)

    def _stop_receiving(self, stream_id: int, code: int) -> None:
        """Stop our receiving half of a byte stream: STOP_SENDING(code) to the peer, and what
        arrives later is discarded (still checked against credit)."""
        recv = self.recv.get(stream_id)
        if recv is not None and recv.reset_code is None and not recv.finished:
            self._queue_control(StopSending(stream_id, code))
            recv.reset_code = code
            self.fragments -= recv.fragments
            recv.discard_held()
            recv.fin_reported = True

    def _reset_send(self, stream_id: int, stream: SendStream, code: int) -> None:
        # The final size is what the peer may have received: the highest offset sent, not what
        # the application wrote (unsent bytes never count against the peer's credit).
        final = stream.sent_high
        self.send_buffered -= stream.buffered
        self.unsent -= stream.written - stream.sent_high
        stream.reset(code)
        self._queue_control(ResetStream(stream_id, code, final))

    def _queue_control(self, frame: ResetStream | StopSending) -> None:
        if self.control is None:
            self.control = []
        self.control.append(frame)

    def schedule(self, stream_id: int) -> None:
        """Give ``stream_id`` a turn to send, if it has something it may send."""
        stream = self.send.get(stream_id)
        if stream is not None and not stream.queued and stream.has_pending():
            stream.queued = True
            self._order.append(stream_id)

    def next_stream_frame(self, room: int) -> Stream | None:
        """The next STREAM frame with at most ``room`` bytes of data, taking streams in turn
        within stream and session credit; None when no stream can send now."""
        order = self._order
        while order:
            stream_id = order.pop(0)
            stream = self.send.get(stream_id)
            if stream is None:
                continue
            stream.queued = False
            high = stream.sent_high
            chunk = stream.next_chunk(room, high + self.peer_max_data - self.sent_data)
            if chunk is None:
                if stream.has_pending():  # within its own credit: the session's is missing
                    if self._blocked_on_session is None:
                        self._blocked_on_session = {}
                    self._blocked_on_session[stream_id] = None
                continue
            offset, data, fin = chunk
            end = offset + len(data)
            if end > high:
                self.sent_data += end - high
                self.unsent -= end - high
                stream.sent_high = end
            self.schedule(stream_id)
            return Stream(stream_id, offset, fin, data)
        return None

    def credit_frames(self) -> Iterator[Frame]:
        """Credit frames due: each value is marked sent as it is handed out."""
        if not self.grant_credit:
            return
        if self.max_data.due:
            self.max_data.sent = self.max_data.value
            yield MaxData(self.max_data.value)
        if self.max_streams.due:
            self.max_streams.sent = self.max_streams.value
            yield MaxStreams(self.max_streams.value)
        while self.credit_due:
            stream_id = self.credit_due.popitem()[0]
            stream = self.recv.get(stream_id)
            if stream is not None and stream.final_size is None:
                yield MaxStreamData(stream_id, stream.credit)

    # -- delivery handlers (the packetizer calls them once per frame sent) ----------------------
    def on_stream_delivery(self, frame: Frame, acked: bool) -> None:
        """A STREAM frame we sent was acknowledged, or its record was lost."""
        assert isinstance(frame, Stream)
        stream = self.send.get(frame.stream_id)
        if stream is None:
            return
        if acked:
            before = stream.buffered
            stream.on_acked(frame.offset, len(frame.data), frame.fin)
            self.send_buffered -= before - stream.buffered
            self.maybe_forget(frame.stream_id)
        else:
            stream.on_lost(frame.offset, len(frame.data), frame.fin)
            self.counters.retransmitted_bytes += len(frame.data)
            self.schedule(frame.stream_id)

    def on_credit_delivery(self, frame: Frame, acked: bool) -> None:
        """A credit frame was acknowledged, or lost: then announce the current value again."""
        if acked:
            return
        if isinstance(frame, MaxData):
            self.max_data.sent = 0
        elif isinstance(frame, MaxStreams):
            self.max_streams.sent = 0
        elif isinstance(frame, MaxStreamData):
            stream = self.recv.get(frame.stream_id)
            if stream is not None and stream.final_size is None:
                self.credit_due[frame.stream_id] = None

    def on_control_delivery(self, frame: Frame, acked: bool) -> None:
        """A RESET_STREAM or STOP_SENDING was lost: send it again."""
        if not acked:
            assert isinstance(frame, ResetStream | StopSending)
            self._queue_control(frame)

    # -- forgetting ---------------------------------------------------------------------------
    def maybe_forget(self, stream_id: int) -> None:
        """Drop a byte stream's state once both halves are done (bounded memory)."""
        if is_message_channel(stream_id):
            return
        send = self.send.get(stream_id)
        recv = self.recv.get(stream_id)
        if send is None or recv is None:
            return
        recv_done = recv.reset_code is not None or (recv.finished and recv.fin_reported)
        if send.done and recv_done:
            del self.send[stream_id]
            del self.recv[stream_id]
            self.fragments -= recv.fragments
            self.credit_due.pop(stream_id, None)
            if self._blocked_on_session is not None:
                self._blocked_on_session.pop(stream_id, None)
            self.events.append(StreamReleased(self.session_id, stream_id))
            if stream_id & STREAM_SIDE_BIT == self.peer_side:
                if self._peer_marks.get(stream_id):  # accepted: done with it
                    del self._peer_marks[stream_id]
                    self._peer_stream_done()
                else:
                    self._peer_marks[stream_id] = False

    def accept(self, stream_id: int) -> None:
        """The application took the peer's stream ``stream_id`` (``incoming_streams``). The peer
        may open another only once one it opened is both accepted and finished: streams an
        application does not take hold back the peer (§16.2)."""
        mark = self._peer_marks.get(stream_id)
        if mark is False:  # released before it was taken: done with it now
            del self._peer_marks[stream_id]
            self._peer_stream_done()
        elif stream_id in self.recv and stream_id & STREAM_SIDE_BIT == self.peer_side:
            self._peer_marks[stream_id] = True

    def _peer_stream_done(self) -> None:
        self._peer_streams_closed += 1
        self.max_streams.value = self._peer_streams_closed + MAX_STREAMS_DEFAULT

    def stop_sending_frames(self) -> None:
        """Send nothing more: the session is closing without draining."""
        self.control = None
        self.grant_credit = False
        for stream_id in self._order:
            stream = self.send.get(stream_id)
            if stream is not None:
                stream.queued = False
        self._order.clear()
        self._blocked_on_session = None

    def clear(self) -> None:
        """Forget every stream (the session closed)."""
        self.stop_sending_frames()
        self.send.clear()
        self.recv.clear()
        self.fragments = 0
        self.send_buffered = 0
        self.unsent = 0
