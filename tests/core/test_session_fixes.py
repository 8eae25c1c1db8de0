"""Regressions found by simulation while writing docs/protocol.md §16, and the keepalive option."""

from __future__ import annotations

from seigr_stt.config import NodeConfig
from seigr_stt.constants import CLOSE_PROTOCOL_ERROR, STT_SESSION_STATE_ACTIVE
from seigr_stt.core.events import MessageReceived, SessionClosed, StreamReset
from seigr_stt.core.frames import ResetStream, StopSending, serialize_frames
from seigr_stt.core.flow import channel_stream_id
from tests.core.net import authentic_record, make_pair


def test_incomplete_messages_on_many_channels_cannot_exhaust_the_session_window() -> None:
    # Five 900 KiB messages: each fits its stream's 1 MiB window, together they exceed the
    # 4 MiB session window. Sent at once, none completes before the session window is spent;
    # the receiver must return session credit for the incomplete messages or all five stall.
    pair = make_pair()
    payloads = [bytes([ch]) * (900 * 1024) for ch in range(5)]
    for ch, payload in enumerate(payloads):
        pair.a.endpoint.session(pair.sid).send_message(ch, payload, pair.net.now)
    pair.net.flush_node(pair.a)
    pair.net.run(60.0)
    got = {e.channel: e.data for e in pair.b.events_of(MessageReceived)}
    assert got == dict(enumerate(payloads))
    assert pair.sa.state == STT_SESSION_STATE_ACTIVE


def test_resetting_a_partly_sent_stream_keeps_the_session() -> None:
    # The RESET_STREAM final size is what was sent, not what was written: a peer that granted
    # credit for less must not see a flow-control violation.
    pair = make_pair()
    stream_id = pair.a.endpoint.session(pair.sid).open_stream(pair.net.now)
    pair.a.endpoint.session(pair.sid).write_stream(stream_id, bytes(2 * 1024 * 1024), False, pair.net.now)
    pair.net.flush_node(pair.a)  # a first window's worth goes out; the rest waits for credit
    pair.a.endpoint.session(pair.sid).reset_stream(stream_id, 7, pair.net.now)
    pair.net.flush_node(pair.a)
    pair.net.run(10.0)
    assert pair.sa.state == STT_SESSION_STATE_ACTIVE
    assert pair.sb.state == STT_SESSION_STATE_ACTIVE
    resets = [e for e in pair.b.events_of(StreamReset) if e.stream_id == stream_id]
    # reset() aborts both directions: RESET_STREAM (no more data) and STOP_SENDING (stop writing)
    assert sorted((e.code, e.sending) for e in resets) == [(7, False), (7, True)]
    assert pair.sa.send_buffered == 0


def test_reset_of_a_message_channel_is_a_protocol_violation() -> None:
    pair = make_pair()
    channel = channel_stream_id(3, 0)  # a's channel 3, as b receives it
    frames = serialize_frames([ResetStream(channel, 1, 0)])
    pair.net.inject(pair.b, authentic_record(pair.sa, frames), "A")
    pair.net.run(5.0)
    closed = pair.b.events_of(SessionClosed)
    assert [(e.code, e.by_peer) for e in closed] == [(CLOSE_PROTOCOL_ERROR, False)]


def test_stop_sending_on_a_message_channel_is_a_protocol_violation() -> None:
    pair = make_pair()
    pair.send(pair.a, b"hello")
    pair.net.run(1.0)
    ours = channel_stream_id(0, 0)  # a's own channel 0
    frames = serialize_frames([StopSending(ours, 9)])
    pair.net.inject(pair.a, authentic_record(pair.sb, frames), "B")
    pair.net.run(5.0)
    closed = pair.a.events_of(SessionClosed)
    assert [(e.code, e.by_peer) for e in closed] == [(CLOSE_PROTOCOL_ERROR, False)]


def test_persistent_keepalive_sends_while_idle() -> None:
    config = NodeConfig(persistent_keepalive_s=5.0, session_idle_timeout_s=None)
    pair = make_pair(config=config)
    before = len(pair.net.sent_by(pair.a))
    pair.net.run(26.0)
    sent = len(pair.net.sent_by(pair.a)) - before
    assert 5 <= sent <= 6  # one empty record about every 5 s of silence
    assert pair.sa.state == STT_SESSION_STATE_ACTIVE


def test_without_persistent_keepalive_an_idle_session_stays_silent() -> None:
    pair = make_pair(config=NodeConfig(session_idle_timeout_s=None))
    before = len(pair.net.sent_by(pair.a))
    pair.net.run(26.0)
    assert len(pair.net.sent_by(pair.a)) == before


def test_early_credit_for_incomplete_messages_is_capped_per_session() -> None:
    # Messages larger than a stream window get their credit back before they complete (or they
    # could never complete). Across many channels of an application that reads nothing, that
    # early credit stops at one maximum message, so the memory a peer can pin stays bounded.
    config = NodeConfig(max_message_size=2 * 1024 * 1024)
    pair = make_pair(config=config)
    pair.b.auto_consume = False
    for ch in range(8):
        pair.a.endpoint.session(pair.sid).send_message(ch, bytes(1536 * 1024), pair.net.now)
    pair.net.flush_node(pair.a)
    pair.net.run(30.0)
    held = sum(len(parser.buffer) for parser in pair.sb.channels.parsers.values())
    delivered = sum(len(e.data) for e in pair.b.events_of(MessageReceived))
    # At most the 4 MiB session window plus one maximum message, never the 12 MiB sent.
    assert held + delivered <= 4 * 1024 * 1024 + config.max_message_size + 64 * 1024
    assert pair.sb.channels.precredited <= config.max_message_size
    assert pair.sb.state == STT_SESSION_STATE_ACTIVE
