"""Message channels (``docs/protocol.md`` §16.1, §16.3): length-prefixed messages on
unidirectional streams, their credit, and the early credit that keeps a large message from
stalling, capped per session."""

from __future__ import annotations

import pytest

from seigr_stt.config import NodeConfig, SessionConfig
from seigr_stt.constants import STT_SESSION_STATE_ACTIVE
from seigr_stt.core.channels import MessageChannels, MessageParser, message_header
from seigr_stt.core.events import Event, MessageReceived
from seigr_stt.core.flow import StreamTable, channel_stream_id
from seigr_stt.core.frames import MaxData, MaxStreamData, Stream, encode_varint
from seigr_stt.core.stats import SessionCounters
from seigr_stt.exceptions import PeerViolation
from tests.core.net import make_pair

SID = b"\x00" * 8
WINDOW = 4096
CONFIG = SessionConfig(stream_window=WINDOW, session_window=4 * WINDOW, max_message_size=3 * WINDOW)
PEER_CHANNEL_0 = channel_stream_id(0, 1)  # the peer's channel 0, as the initiator receives it


class Receiver:
    """The receiving side of one session's message channels (the initiator's)."""

    def __init__(self, config: SessionConfig = CONFIG) -> None:
        self.events: list[Event] = []
        counters = SessionCounters()
        self.streams = StreamTable(SID, 0, config, self.events, counters)
        self.channels = MessageChannels(SID, config, self.streams, self.events, counters)
        self.offsets: dict[int, int] = {}

    def feed(self, channel: int, data: bytes) -> None:
        """The peer's next bytes on ``channel``, in order."""
        stream_id = channel_stream_id(channel, 1)
        offset = self.offsets.get(stream_id, 0)
        received = self.streams.receive(Stream(stream_id, offset, False, data))
        assert received is not None
        stream, new = received
        self.channels.deliver(stream_id, stream, new)
        self.offsets[stream_id] = offset + len(data)

    def messages(self) -> list[MessageReceived]:
        return [e for e in self.events if isinstance(e, MessageReceived)]


def framed(data: bytes) -> bytes:
    return message_header(data) + data


# -- parsing ---------------------------------------------------------------------------------
def test_the_parser_pops_whole_messages_only() -> None:
    parser = MessageParser()
    assert parser.pop_messages(100) == []
    parser.buffer += framed(b"one") + framed(b"") + framed(b"three")[:4]
    assert parser.pop_messages(100) == [(b"one", 4), (b"", 1)]  # "three" is incomplete
    assert parser.pop_messages(100) == []
    assert parser.head_length() == (1, 5)
    parser.buffer += b"ee" + framed(b"x" * 70)[:1]  # half of a two-byte prefix
    assert parser.pop_messages(100) == [(b"three", 6)]
    assert parser.buffer == framed(b"x" * 70)[:1]
    parser.buffer += framed(b"x" * 70)[1:]
    assert parser.pop_messages(100) == [(b"x" * 70, 72)]
    assert parser.buffer == bytearray()


def test_the_parser_refuses_an_announced_length_beyond_the_maximum() -> None:
    parser = MessageParser()
    parser.buffer += encode_varint(101)  # the length alone is enough to refuse
    with pytest.raises(PeerViolation, match="larger than max_message_size"):
        parser.pop_messages(100)


def test_a_one_byte_prefix_is_checked_against_a_small_maximum_too() -> None:
    parser = MessageParser()
    parser.buffer += framed(b"x" * 11)
    with pytest.raises(PeerViolation, match="larger than max_message_size"):
        parser.pop_messages(10)


def test_messages_before_an_oversized_one_are_popped_first() -> None:
    parser = MessageParser()
    parser.buffer += framed(b"ok") + framed(b"fine") + encode_varint(101)
    assert parser.pop_messages(100) == [(b"ok", 3), (b"fine", 5)]
    with pytest.raises(PeerViolation, match="larger than max_message_size"):
        parser.pop_messages(100)


def test_non_minimal_length_prefixes_are_accepted() -> None:
    """§16.1: a sender writes the shortest prefix; a receiver takes any QUIC varint length
    (conformance C-16), each message charged with the bytes it really used."""
    receiver = Receiver()
    prefixes = [b"\x40\x0c", b"\x80\x00\x00\x0c", b"\xc0" + bytes(6) + b"\x0c", b"\x0c"]
    for prefix in prefixes:
        receiver.feed(0, prefix + b"twelve bytes")
    taken = receiver.messages()
    assert [m.data for m in taken] == [b"twelve bytes"] * 4
    assert [m.credit for m in taken] == [len(p) + 12 for p in prefixes]


def test_a_two_byte_prefix_for_a_1000_byte_message() -> None:
    assert message_header(bytes(1000)) == encode_varint(1000)
    assert len(message_header(bytes(1000))) == 2
    assert len(message_header(b"x" * 63)) == 1


# -- delivery and credit ---------------------------------------------------------------------
def test_each_message_carries_the_credit_it_used() -> None:
    receiver = Receiver()
    receiver.feed(0, framed(b"hello") + framed(b"x" * 300)[:100])
    [first] = receiver.messages()
    assert first == MessageReceived(SID, 0, b"hello", 6)
    receiver.feed(0, framed(b"x" * 300)[100:])
    second = receiver.messages()[1]
    assert (second.data, second.credit) == (b"x" * 300, 302)
    assert receiver.streams.counters.messages_received == 2


def test_credit_returns_when_the_application_takes_messages() -> None:
    receiver = Receiver()
    for _ in range(4):
        receiver.feed(0, framed(bytes(1022)))  # 1024 bytes each: the stream window is used up
    assert list(receiver.streams.credit_frames()) == []
    for event in receiver.messages():
        receiver.channels.consume(event.channel, event.credit)
    assert list(receiver.streams.credit_frames()) == [MaxStreamData(PEER_CHANNEL_0, 2 * WINDOW)]


def test_messages_taken_together_return_their_credit_in_one_step() -> None:
    one, batched = Receiver(), Receiver()
    for receiver in (one, batched):
        for _ in range(4):
            receiver.feed(0, framed(bytes(1022)))
    for event in one.messages():
        one.channels.consume(event.channel, event.credit)
    events = batched.messages()
    batched.channels.consume(0, sum(e.credit for e in events), len(events))
    assert list(batched.streams.credit_frames()) == list(one.streams.credit_frames())
    assert batched.streams.recv[PEER_CHANNEL_0].consumed == 4 * 1024


def test_taking_messages_frees_their_early_credit_even_when_they_carried_none() -> None:
    receiver = Receiver()
    big = framed(bytes(2 * WINDOW))
    receiver.feed(0, big[:WINDOW])
    for start in range(WINDOW, len(big), 1000):
        receiver.feed(0, big[start : start + 1000])
    receiver.feed(0, framed(b"small"))
    first, second = receiver.messages()
    stream = receiver.streams.recv[PEER_CHANNEL_0]
    consumed = stream.consumed
    assert receiver.channels.held_early > 0  # the big message's early credit, until it is taken
    receiver.channels.consume(0, 0, 1)  # taken, with nothing left to return (credit 0)
    assert receiver.channels.held_early == 0
    assert stream.consumed == consumed
    receiver.channels.consume(0, first.credit + second.credit, 1)
    assert stream.consumed == len(big) + len(framed(b"small"))  # every byte exactly once
    assert not receiver.channels.parsers[PEER_CHANNEL_0].delivered_early


def test_a_message_larger_than_the_window_gets_its_credit_early() -> None:
    receiver = Receiver()
    big = bytes(2 * WINDOW)
    receiver.feed(0, framed(big)[:WINDOW])  # the whole window, and the message is not complete
    stream = receiver.streams.recv[PEER_CHANNEL_0]
    assert stream.credit > WINDOW  # returned early, or it could never complete
    assert receiver.channels.precredited == WINDOW
    assert receiver.channels.parsers[PEER_CHANNEL_0].precredited == WINDOW
    rest = framed(big)[WINDOW:]
    for start in range(0, len(rest), 1000):  # within the credit as it is returned
        receiver.feed(0, rest[start : start + 1000])
    [event] = receiver.messages()
    assert event.data == big
    assert 0 < event.credit < len(framed(big)) - WINDOW  # only what was not returned early
    assert receiver.channels.precredited == 0
    receiver.channels.consume(0, event.credit)
    assert stream.consumed == len(framed(big))  # every byte's credit returned exactly once


def test_early_credit_waits_for_the_messages_before_it() -> None:
    receiver = Receiver()
    receiver.feed(0, framed(bytes(1000)))  # taken by nobody yet
    receiver.feed(0, framed(bytes(2 * WINDOW))[: WINDOW - 1002])
    assert receiver.channels.precredited == 0  # the first message still holds its credit
    [first] = receiver.messages()
    receiver.channels.consume(0, first.credit)
    assert receiver.channels.precredited > 0  # now the big one leads


def test_early_credit_is_capped_at_one_maximum_message_per_session() -> None:
    config = SessionConfig(
        stream_window=WINDOW, session_window=16 * WINDOW, max_message_size=WINDOW + WINDOW // 2
    )
    receiver = Receiver(config)
    for channel in range(4):
        receiver.feed(channel, framed(bytes(WINDOW + 100))[:WINDOW])
    assert receiver.channels.precredited <= config.max_message_size
    assert receiver.channels.precredited == WINDOW  # one channel got it, the others wait


def test_a_blocked_session_window_frees_the_head_messages() -> None:
    config = SessionConfig(stream_window=2 * WINDOW, session_window=2 * WINDOW)
    receiver = Receiver(config)
    # Two messages that each fit their stream's credit but not the session's together.
    receiver.feed(0, framed(bytes(WINDOW + 500))[:WINDOW])
    receiver.feed(1, framed(bytes(WINDOW + 500))[:WINDOW])
    assert receiver.streams.max_data.used == config.session_window  # all of it
    assert MaxData(receiver.streams.max_data.value) in list(receiver.streams.credit_frames())
    assert receiver.streams.max_data.value > 2 * WINDOW  # more session credit, or both stall


# -- sessions --------------------------------------------------------------------------------
def test_incomplete_messages_on_many_channels_cannot_exhaust_the_session_window() -> None:
    # Five messages of 90 % of a stream window: each fits its stream's window, together they
    # exceed the session window. Sent at once, none completes before the session window is
    # spent; the receiver must return session credit for the incomplete messages or all stall.
    config = NodeConfig(stream_window=64 * 1024, session_window=256 * 1024)
    pair = make_pair(config=config)
    payloads = [bytes([ch]) * (9 * config.stream_window // 10) for ch in range(5)]
    assert sum(map(len, payloads)) > config.session_window
    for ch, payload in enumerate(payloads):
        pair.sa.send_message(ch, payload, pair.net.now)
    pair.net.flush_node(pair.a)
    pair.net.run(60.0)
    got = {e.channel: e.data for e in pair.b.events_of(MessageReceived)}
    assert got == dict(enumerate(payloads))
    assert pair.sa.state == STT_SESSION_STATE_ACTIVE


def test_early_credit_for_incomplete_messages_is_capped_per_session() -> None:
    # Messages larger than a stream window get their credit back before they complete (or they
    # could never complete). Across many channels of an application that reads nothing, that
    # early credit stops at one maximum message, so the memory a peer can pin stays bounded.
    config = NodeConfig(
        max_message_size=128 * 1024, stream_window=64 * 1024, session_window=256 * 1024
    )
    pair = make_pair(config=config)
    pair.b.auto_consume = False
    for ch in range(8):
        pair.sa.send_message(ch, bytes(96 * 1024), pair.net.now)  # 1.5 stream windows each
    pair.net.flush_node(pair.a)
    pair.net.run(30.0)
    held = sum(len(parser.buffer) for parser in pair.sb.channels.parsers.values())
    delivered = sum(len(e.data) for e in pair.b.events_of(MessageReceived))
    # At most the session window, a stream window per channel with an incomplete message and
    # one maximum message (MessageChannels), never all of the 768 KiB sent.
    bound = config.session_window + 8 * config.stream_window + config.max_message_size
    assert held + delivered <= bound
    assert held + delivered >= config.session_window  # and the window itself was used
    assert pair.sb.channels.precredited <= config.max_message_size
    assert pair.sb.state == STT_SESSION_STATE_ACTIVE
