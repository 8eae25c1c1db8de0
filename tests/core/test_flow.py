"""Streams and their flow control (``docs/protocol.md`` §16): a :class:`StreamTable` on its own,
then the session-level regressions that shaped it. End-to-end transfers over a lossy network are
in ``test_session_streams.py``."""

from __future__ import annotations

import pytest

from seigr_stt.config import SessionConfig
from seigr_stt.constants import (
    CLOSE_PROTOCOL_ERROR,
    MAX_STREAMS_DEFAULT,
    STREAM_CODE_UNIDIRECTIONAL,
    STT_SESSION_STATE_ACTIVE,
)
from seigr_stt.core.events import (
    Event,
    SessionClosed,
    StreamOpened,
    StreamReleased,
    StreamReset,
)
from seigr_stt.core.flow import (
    KIND_MESSAGES,
    MAX_CHANNEL,
    Limit,
    StreamTable,
    channel_stream_id,
    is_message_channel,
)
from seigr_stt.core.frames import (
    MaxData,
    MaxStreamData,
    MaxStreams,
    ResetStream,
    StopSending,
    Stream,
    serialize_frames,
)
from seigr_stt.core.stats import SessionCounters
from seigr_stt.exceptions import PeerViolation, StreamError
from tests.core.net import authentic_record, make_pair

SID = b"\x00" * 8
WINDOW = 4096
SESSION_WINDOW = 3 * WINDOW
CONFIG = SessionConfig(stream_window=WINDOW, session_window=SESSION_WINDOW)


def table(side: int = 0, config: SessionConfig = CONFIG) -> tuple[StreamTable, list[Event]]:
    events: list[Event] = []
    return StreamTable(SID, side, config, events, SessionCounters()), events


def drain(streams: StreamTable, room: int = 1000) -> list[Stream]:
    frames = []
    while (frame := streams.next_stream_frame(room)) is not None:
        frames.append(frame)
    return frames


# -- ids -------------------------------------------------------------------------------------
def test_stream_ids_carry_kind_side_and_index() -> None:
    assert channel_stream_id(0, 0) == KIND_MESSAGES == 2
    assert channel_stream_id(5, 1) == (5 << 2) | 2 | 1
    assert channel_stream_id(MAX_CHANNEL, 1) == (1 << 62) - 1  # the largest varint
    assert is_message_channel(channel_stream_id(3, 0))
    assert not is_message_channel(4)
    initiator, _ = table(side=0)
    responder, _ = table(side=1)
    assert [initiator.open_stream() for _ in range(3)] == [0, 4, 8]
    assert [responder.open_stream() for _ in range(2)] == [1, 5]


def test_limit_announces_only_a_grown_value() -> None:
    limit = Limit(100)
    assert (limit.value, limit.sent, limit.due) == (100, 100, False)  # the peer assumes it
    limit.value = 150
    assert limit.due
    limit.sent = 150
    assert not limit.due
    limit.sent = 0  # the frame that carried it was lost
    assert limit.due
    assert repr(limit) == "Limit(value=150, used=0, sent=0)"


# -- opening ---------------------------------------------------------------------------------
def test_we_open_at_most_what_the_peer_allows() -> None:
    streams, _ = table()
    for _ in range(MAX_STREAMS_DEFAULT):
        streams.open_stream()
    with pytest.raises(StreamError, match=f"allows {MAX_STREAMS_DEFAULT} streams"):
        streams.open_stream()
    streams.on_max_streams(MaxStreams(MAX_STREAMS_DEFAULT + 1))
    streams.open_stream()
    streams.on_max_streams(MaxStreams(3))  # a smaller limit never lowers it
    assert streams.peer_max_streams == MAX_STREAMS_DEFAULT + 1


def test_the_peers_streams_open_in_order_up_to_our_limit() -> None:
    streams, events = table(side=0)
    streams.receive(Stream((2 << 2) | 1, 0, False, b"x"))  # index 2 opens 0, 1 and 2
    assert [e.stream_id for e in events if isinstance(e, StreamOpened)] == [1, 5, 9]
    assert streams.peer_streams_opened == 3
    assert set(streams.send) == set(streams.recv) == {1, 5, 9}
    with pytest.raises(PeerViolation, match="stream limit exceeded"):
        streams.receive(Stream((MAX_STREAMS_DEFAULT << 2) | 1, 0, False, b"x"))
    with pytest.raises(PeerViolation, match="never opened"):
        streams.receive(Stream(0, 0, False, b"x"))  # our index 0, not opened by us
    with pytest.raises(PeerViolation, match="our own message channel"):
        streams.receive(Stream(channel_stream_id(0, 0), 0, False, b"x"))


def test_the_peer_uses_at_most_max_channels() -> None:
    streams, _ = table(config=SessionConfig(max_channels=2))
    streams.receive(Stream(channel_stream_id(0, 1), 0, False, b"a"))
    streams.receive(Stream(channel_stream_id(9, 1), 0, False, b"a"))
    with pytest.raises(PeerViolation, match="too many message channels"):
        streams.receive(Stream(channel_stream_id(4, 1), 0, False, b"a"))


# -- credit ----------------------------------------------------------------------------------
def test_stream_and_session_credit_bound_what_is_sent() -> None:
    streams, _ = table()
    ids = [streams.open_stream() for _ in range(4)]
    for stream_id in ids:
        streams.write(stream_id, bytes(2 * WINDOW), False)
    assert streams.send_buffered == 8 * WINDOW
    frames = drain(streams)
    per_stream = {i: sum(len(f.data) for f in frames if f.stream_id == i) for i in ids}
    assert sum(per_stream.values()) == SESSION_WINDOW == streams.sent_data  # the session's
    assert max(per_stream.values()) <= WINDOW  # and each stream's
    assert [f.stream_id for f in frames[:4]] == ids  # streams take turns
    streams.on_max_data(MaxData(SESSION_WINDOW + 100))
    more = drain(streams)
    assert sum(len(f.data) for f in more) == 100
    streams.on_max_stream_data(MaxStreamData(ids[0], 2 * WINDOW))
    streams.on_max_data(MaxData(10 * WINDOW))
    assert sum(len(f.data) for f in drain(streams)) > 0


def test_received_data_beyond_credit_is_a_violation() -> None:
    streams, _ = table()
    channel = channel_stream_id(0, 1)
    streams.receive(Stream(channel, WINDOW - 1, False, b"z"))  # exactly the window
    assert streams.max_data.used == WINDOW
    with pytest.raises(PeerViolation, match="beyond the granted credit"):
        streams.receive(Stream(channel, WINDOW, False, b"z"))
    for n in (1, 2):  # two more channels: the session window is 3 windows
        streams.receive(Stream(channel_stream_id(n, 1), WINDOW - 1, False, b"z"))
    with pytest.raises(PeerViolation, match="session flow control credit exceeded"):
        streams.receive(Stream(channel_stream_id(3, 1), 0, False, b"z"))


def test_consuming_grants_credit_in_half_window_steps() -> None:
    streams, _ = table(side=0)
    stream_id = 1
    received = streams.receive(Stream(stream_id, 0, False, bytes(WINDOW)))
    assert received is not None
    stream, data = received
    assert len(data) == WINDOW
    streams.consume_stream(stream_id, WINDOW // 2 - 1)
    assert list(streams.credit_frames()) == []
    streams.consume_stream(stream_id, 1)
    assert list(streams.credit_frames()) == [MaxStreamData(stream_id, WINDOW + WINDOW // 2)]
    assert list(streams.credit_frames()) == []  # marked sent
    streams.consume_stream(stream_id, WINDOW // 2)
    streams.consume(stream_id, stream, SESSION_WINDOW)  # enough for the session credit too
    frames = list(streams.credit_frames())
    assert MaxData(streams.consumed + SESSION_WINDOW) in frames
    assert MaxStreamData(stream_id, stream.credit) in frames
    assert streams.max_data.sent == streams.max_data.value


def test_a_lost_credit_frame_makes_the_current_value_go_out_again() -> None:
    streams, _ = table(side=0)
    streams.receive(Stream(1, 0, False, bytes(WINDOW)))
    streams.consume_stream(1, WINDOW // 2)
    [first] = list(streams.credit_frames())
    assert first == MaxStreamData(1, WINDOW + WINDOW // 2)
    streams.consume_stream(1, WINDOW // 2)  # credit grew since
    [grown] = list(streams.credit_frames())
    assert grown == MaxStreamData(1, 2 * WINDOW)
    streams.on_credit_delivery(first, acked=False)  # the old frame was lost
    assert list(streams.credit_frames()) == [MaxStreamData(1, 2 * WINDOW)]  # the current value
    streams.on_credit_delivery(MaxData(5), acked=False)
    assert list(streams.credit_frames()) == [MaxData(streams.max_data.value)]
    streams.on_credit_delivery(MaxStreams(5), acked=False)
    assert list(streams.credit_frames()) == [MaxStreams(MAX_STREAMS_DEFAULT)]
    streams.on_credit_delivery(MaxData(5), acked=True)  # acknowledged: nothing to do
    assert list(streams.credit_frames()) == []


def test_no_credit_is_announced_while_closing() -> None:
    streams, _ = table(side=0)
    streams.receive(Stream(1, 0, False, bytes(WINDOW)))
    streams.consume_stream(1, WINDOW)
    assert streams.has_control
    streams.grant_credit = False
    assert not streams.has_control
    assert list(streams.credit_frames()) == []


# -- sending, acknowledgement and loss -------------------------------------------------------
def test_acknowledged_data_leaves_the_buffer_and_lost_data_is_sent_again() -> None:
    streams, _ = table()
    stream_id = streams.open_stream()
    streams.write(stream_id, bytes(range(256)) * 8, True)
    frames = drain(streams, room=1000)
    assert [len(f.data) for f in frames] == [1000, 1000, 48]
    assert [f.fin for f in frames] == [False, False, True]
    streams.on_stream_delivery(frames[0], acked=True)
    assert streams.send_buffered == 1048
    streams.on_stream_delivery(frames[1], acked=False)
    assert streams.counters.retransmitted_bytes == 1000
    [again] = drain(streams, room=5000)
    assert (again.offset, len(again.data)) == (1000, 1000)
    assert streams.sent_data == 2048  # a retransmission spends no new session credit
    for frame in (again, frames[2]):
        streams.on_stream_delivery(frame, acked=True)
    assert streams.send_buffered == 0
    assert streams.all_acknowledged


def test_a_finished_stream_is_forgotten_and_the_peer_may_open_another() -> None:
    streams, events = table(side=0)
    streams.receive(Stream(1, 0, True, b"request"))
    streams.accept(1)  # the application took it
    assert streams.fin_to_report(1, streams.recv[1])
    assert not streams.fin_to_report(1, streams.recv[1])  # once
    streams.write(1, b"answer", True)
    [frame] = drain(streams)
    streams.maybe_forget(1)
    assert 1 in streams.send  # our half is not acknowledged yet
    streams.on_stream_delivery(frame, acked=True)
    assert 1 not in streams.send
    assert 1 not in streams.recv
    assert StreamReleased(SID, 1) in events
    assert streams.max_streams.value == MAX_STREAMS_DEFAULT + 1
    assert list(streams.credit_frames()) == [MaxStreams(MAX_STREAMS_DEFAULT + 1)]
    assert streams.receive(Stream(1, 0, True, b"request")) is None  # a late copy: ignored


def test_the_peer_opens_more_streams_only_as_the_application_takes_them() -> None:
    # Streams the application never takes hold the peer back, even once they are finished:
    # a peer cannot make an idle application queue streams without end (audit F6).
    streams, _ = table(side=0)
    streams.receive(Stream(1, 0, True, b""))  # the peer opens and finishes stream 0
    assert streams.fin_to_report(1, streams.recv[1])
    streams.write(1, b"", True)
    [frame] = drain(streams)
    streams.on_stream_delivery(frame, acked=True)
    assert 1 not in streams.recv  # released by the core...
    assert streams.max_streams.value == MAX_STREAMS_DEFAULT  # ...but not yet accepted
    streams.accept(1)
    assert streams.max_streams.value == MAX_STREAMS_DEFAULT + 1
    streams.accept(1)  # twice changes nothing
    assert streams.max_streams.value == MAX_STREAMS_DEFAULT + 1


# -- resets ----------------------------------------------------------------------------------
def test_a_reset_declares_what_was_sent_not_what_was_written() -> None:
    streams, _ = table()
    stream_id = streams.open_stream()
    streams.write(stream_id, bytes(3 * WINDOW), False)
    sent = sum(len(f.data) for f in drain(streams))
    assert sent == WINDOW
    streams.reset(stream_id, 7)
    assert list(streams.control or ()) == [
        ResetStream(stream_id, 7, WINDOW),
        StopSending(stream_id, 7),
    ]
    assert streams.send_buffered == 0
    assert stream_id not in streams.send  # both halves are done: forgotten
    with pytest.raises(StreamError, match="no open byte stream"):
        streams.write(stream_id, b"more", False)


def test_a_lost_reset_or_stop_sending_is_sent_again() -> None:
    streams, _ = table()
    stream_id = streams.open_stream()
    streams.reset(stream_id, 3)
    assert streams.control is not None
    reset, stop = streams.control
    streams.control = None  # as if both were sent
    streams.on_control_delivery(reset, acked=True)
    assert list(streams.control or ()) == []
    streams.on_control_delivery(stop, acked=False)
    streams.on_control_delivery(reset, acked=False)
    assert list(streams.control or ()) == [stop, reset]


def test_the_peers_reset_returns_its_unread_credit() -> None:
    streams, events = table(side=0)
    streams.receive(Stream(1, 0, False, b"abc"))
    streams.on_reset(ResetStream(1, 8, 5000 % WINDOW))
    assert list(events)[-1] == StreamReset(SID, 1, 8, False)
    assert streams.max_data.used == 5000 % WINDOW  # counted as received
    assert streams.consumed == 5000 % WINDOW  # and returned
    with pytest.raises(PeerViolation, match="reset of a message channel"):
        streams.on_reset(ResetStream(channel_stream_id(0, 1), 0, 0))
    with pytest.raises(PeerViolation, match="beyond the granted credit"):
        streams.on_reset(ResetStream(5, 0, WINDOW + 1))


def test_stop_sending_resets_our_half_and_tells_the_application() -> None:
    streams, events = table()
    stream_id = streams.open_stream()
    streams.write(stream_id, b"data", False)
    streams.on_stop_sending(StopSending(stream_id, 4))
    assert list(events) == [StreamReset(SID, stream_id, 4, True)]
    assert list(streams.control or ()) == [ResetStream(stream_id, 4, 0)]  # nothing was sent yet
    streams.on_stop_sending(StopSending(stream_id, 4))  # again: nothing more
    assert len(events) == 1
    with pytest.raises(PeerViolation, match="never opened"):
        streams.on_stop_sending(StopSending(8, 0))
    with pytest.raises(PeerViolation, match="stop-sending on a message channel"):
        streams.on_stop_sending(StopSending(channel_stream_id(0, 0), 0))


def test_stop_sending_opens_a_peer_stream_and_a_unidirectional_open_sends_it() -> None:
    opener, _ = table(side=0)
    stream_id = opener.open_stream(unidirectional=True)
    assert list(opener.control or ()) == [StopSending(stream_id, STREAM_CODE_UNIDIRECTIONAL)]
    opener.write(stream_id, b"one way", True)
    receiver, events = table(side=1)
    receiver.on_stop_sending(StopSending(stream_id, STREAM_CODE_UNIDIRECTIONAL))
    assert list(events) == [
        StreamOpened(SID, stream_id),
        StreamReset(SID, stream_id, STREAM_CODE_UNIDIRECTIONAL, True),
    ]
    assert list(receiver.control or ()) == [ResetStream(stream_id, STREAM_CODE_UNIDIRECTIONAL, 0)]
    with pytest.raises(StreamError):
        receiver.write(stream_id, b"back", False)
    [frame] = drain(opener)
    got = receiver.receive(frame)
    assert got is not None
    assert got[1] == b"one way"
    with pytest.raises(PeerViolation, match="stream limit exceeded"):
        receiver.on_stop_sending(StopSending((MAX_STREAMS_DEFAULT << 2) | 0, 0))


# -- sessions --------------------------------------------------------------------------------
def test_resetting_a_partly_sent_stream_keeps_the_session() -> None:
    # The RESET_STREAM final size is what was sent, not what was written: a peer that granted
    # credit for less must not see a flow-control violation.
    pair = make_pair()
    session = pair.sa
    stream_id = session.open_stream(pair.net.now)
    session.write_stream(stream_id, bytes(2 * 1024 * 1024), False, pair.net.now)
    pair.net.flush_node(pair.a)  # a first window's worth goes out; the rest waits for credit
    session.reset_stream(stream_id, 7, pair.net.now)
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
