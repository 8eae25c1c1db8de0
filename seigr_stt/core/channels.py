"""Message channels: messages framed on unidirectional streams, and their early credit
(``docs/protocol.md`` §16.1, §16.3).

A message channel carries whole application messages, each prefixed by its length as a QUIC
varint, on one unidirectional stream per channel and direction. :class:`MessageParser` splits a
channel's bytes back into messages; :class:`MessageChannels` delivers them as
:class:`~seigr_stt.core.events.MessageReceived` events and returns the flow-control credit of a
message once the application has taken it. A message that cannot complete within the credit
granted would stall the channel: its credit is returned early (§16.3), within a cap of one
maximum message per session.
"""

from __future__ import annotations

from collections import deque

from seigr_stt.config import SessionConfig
from seigr_stt.constants import STREAM_INDEX_SHIFT
from seigr_stt.core.events import Event, MessageReceived
from seigr_stt.core.flow import StreamTable, channel_stream_id
from seigr_stt.core.frames import encode_varint, peek_varint
from seigr_stt.core.stats import SessionCounters
from seigr_stt.core.streams import ReceiveStream, copy_out
from seigr_stt.exceptions import PeerViolation

__all__ = ["MessageChannels", "MessageParser", "message_header"]


def message_header(data: bytes) -> bytes:
    """The length prefix of one message (§16.1)."""
    return encode_varint(len(data))


class MessageParser:
    """Splits a message channel's byte stream into length-prefixed messages (§16.1)."""

    __slots__ = ("buffer", "delivered_early", "precredited")

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.precredited = 0  # bytes of the partial message whose credit was returned early
        #: For each message delivered and not yet taken by the application, in order: how much
        #: of its credit was returned early.
        self.delivered_early: deque[int] = deque()

    def pop_messages(self, max_size: int) -> list[tuple[bytes, int]]:
        """Pop every complete message at the head of the buffer, in order, in one pass:
        ``[(data, bytes it used on the stream), ...]`` (empty when none is complete).

        Raises :class:`PeerViolation` when the first message's announced length exceeds
        ``max_size``; a later one's stops the pass, and the next call raises.
        """
        buf = self.buffer
        total = len(buf)
        pos = 0
        popped: list[tuple[bytes, int]] = []
        while (decoded := peek_varint(buf, pos)) is not None:
            length, start = decoded
            if length > max_size:
                if popped:
                    break  # the messages before it are delivered first
                raise PeerViolation("message larger than max_message_size")
            end = start + length
            if end > total:
                break
            popped.append((copy_out(buf, start, end), end - pos))
            pos = end
        if pos:
            del buf[:pos]
        return popped

    def head_length(self) -> tuple[int, int] | None:
        """``(prefix size, message length)`` of the incomplete message at the head, once its
        prefix has arrived."""
        decoded = peek_varint(self.buffer)
        if decoded is None:
            return None
        length, size = decoded
        return size, length


class MessageChannels:
    """The receiving side of a session's message channels; the sending side is
    :meth:`StreamTable.write_message` with :func:`message_header`.

    Early credit (§16.3) goes to one channel at a time, and the credit returned early is capped
    at one maximum message per session, counting both the incomplete message being received and
    the complete messages the application has not taken yet. While a channel is served, session
    credit may run beyond the session window by one stream window per channel holding an
    incomplete message (their stream credit stops them there). So an application that stops
    taking messages holds at most ``session_window + n x stream_window + max_message_size``
    bytes of messages (``n`` channels with incomplete messages, at most ``max_channels``), and
    one that takes everything never stalls, however many channels carry messages larger than
    their windows at once.
    """

    # Slots: one per session (docs/performance.md, memory per idle session).
    __slots__ = (
        "_waiting",
        "config",
        "counters",
        "early_stream",
        "events",
        "held_early",
        "parsers",
        "precredited",
        "session_id",
        "streams",
    )

    def __init__(
        self,
        session_id: bytes,
        config: SessionConfig,
        streams: StreamTable,
        events: list[Event],
        counters: SessionCounters,
    ) -> None:
        self.session_id = session_id
        self.config = config
        self.streams = streams
        self.events = events
        self.counters = counters
        self.parsers: dict[int, MessageParser] = {}
        self.precredited = 0  # early credit of the incomplete message being served
        self.held_early = 0  # early credit of complete messages the application has not taken
        self.early_stream: int | None = None  # the channel served early credit now
        #: Channels whose head message waits for its turn, oldest first (a dict as an ordered
        #: set: 64 bytes empty, where a list beside a set would cost 56 + 216).
        self._waiting: dict[int, None] = {}

    def _session_blocked(self) -> bool:
        limit = self.streams.max_data
        return limit.used >= limit.value

    def deliver(self, stream_id: int, stream: ReceiveStream, data: bytes) -> None:
        """Take the newly contiguous ``data`` of channel stream ``stream_id``; every message it
        completes becomes a :class:`MessageReceived` event. Raises :class:`PeerViolation`."""
        if not data:
            return
        parser = self.parsers.get(stream_id)
        if parser is None:
            parser = self.parsers[stream_id] = MessageParser()
        parser.buffer += data
        channel = stream_id >> STREAM_INDEX_SHIFT
        max_size = self.config.max_message_size
        session_id = self.session_id
        events = self.events
        while popped := parser.pop_messages(max_size):
            for message, used in popped:
                early = parser.precredited
                if early:  # part of it was credited early (§16.3)
                    early = min(early, used)
                    parser.precredited -= early
                    self.precredited -= early
                    self.held_early += early
                parser.delivered_early.append(early)
                events.append(MessageReceived(session_id, channel, message, used - early))
            self.counters.messages_received += len(popped)
        if self.early_stream == stream_id and not parser.precredited:
            self.early_stream = None  # its message completed: the next channel's turn
        blocked = self._session_blocked()
        self._credit_partial(stream_id, stream, parser, session_blocked=blocked)
        if blocked:
            # The session window is used up while messages are incomplete: they fit their
            # streams' credit but can only complete with more session credit, which only their
            # own bytes can free. No more data can arrive until credit is returned, so this
            # happens once per window: every channel's head message is looked at (§16.3).
            for other_id, other in self.parsers.items():
                other_stream = self.streams.recv.get(other_id)
                if other_stream is not None and other_id != stream_id:
                    self._credit_partial(other_id, other_stream, other, session_blocked=True)
        self._serve_waiting()
        if blocked:
            # While a channel is served early credit it can complete only if its stream gets
            # session credit, but the other incomplete messages hold the window and the sender
            # shares new credit among them: extend it by what their own stream credit still
            # lets them take (bounded by one stream window each), so the served one progresses.
            serving = self.early_stream is not None
            incomplete = sum(1 for p in self.parsers.values() if p.buffer) if serving else 0
            self.streams.announce_if_blocked(incomplete * self.config.stream_window)

    def consume(self, channel: int, credit: int, count: int = 1) -> None:
        """The application took the next ``count`` messages of ``channel``, whose events carried
        ``credit`` together (every message counts, also one whose event carried 0): return that
        much flow-control credit to the peer (and the early credit they held frees room for
        another channel's)."""
        stream_id = channel_stream_id(channel, self.streams.peer_side)
        parser = self.parsers.get(stream_id)
        if parser is not None:
            early = parser.delivered_early
            for _ in range(min(count, len(early))):
                self.held_early -= early.popleft()
        stream = self.streams.recv.get(stream_id)
        if stream is not None and credit > 0:
            self.streams.consume(stream_id, stream, credit)
        if stream is not None and parser is not None:
            self._credit_partial(
                stream_id, stream, parser, session_blocked=self._session_blocked()
            )  # now at the head, maybe
        self._serve_waiting()

    def _serve_waiting(self) -> None:
        """Give early credit to the channels that waited for their turn, oldest first."""
        waiting = self._waiting
        for _ in range(len(waiting)):
            if self.early_stream is not None:
                return
            stream_id = next(iter(waiting))
            del waiting[stream_id]
            parser = self.parsers.get(stream_id)
            stream = self.streams.recv.get(stream_id)
            if parser is not None and stream is not None:
                self._credit_partial(stream_id, stream, parser, session_blocked=True)

    def _credit_partial(
        self,
        stream_id: int,
        stream: ReceiveStream,
        parser: MessageParser,
        session_blocked: bool = False,
    ) -> None:
        """Return now the credit of a message still incomplete when it could not complete
        otherwise (§16.3): its bytes cannot be consumed until it is whole, so a message beyond
        the credit would stall. Only the message at the head qualifies (the application took
        every message before it), one channel at a time, within the cap of one maximum message
        (see the class docstring); a message refused for now waits for its turn."""
        buf = parser.buffer
        partial = len(buf) - parser.precredited
        if partial <= 0:
            return
        start = stream.delivered - len(buf)  # the stream offset of the incomplete message
        if stream.consumed - parser.precredited < start:
            return  # earlier messages still hold credit: their consumption comes first
        if not parser.precredited:
            head = parser.head_length()
            if head is None:
                return
            size, length = head
            if start + size + length <= stream.credit and not session_blocked:
                return  # it completes within the credit granted
        if self.early_stream not in (None, stream_id) or (
            self.precredited + self.held_early + partial > self.config.max_message_size
        ):
            self._waiting.setdefault(stream_id, None)
            return
        self.early_stream = stream_id
        parser.precredited += partial
        self.precredited += partial
        self.streams.consume(stream_id, stream, partial, urgent=True)

    def clear(self) -> None:
        """Forget every channel (the session closed)."""
        self.parsers.clear()
        self._waiting.clear()
        self.early_stream = None
