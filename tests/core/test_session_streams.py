"""Reliable delivery on streams (§14–§16), end to end over the seeded lossy network.

Messages travel on per-channel unidirectional streams, byte streams are bidirectional; every
STREAM frame is acknowledged and retransmitted when lost, flow control bounds what a receiver
buffers, and NewReno paces the sender. These tests drive two real endpoints through
:class:`seigr_stt.testing.Net` with seeded loss, reordering and duplication, and check the
properties an application relies on: every message and byte arrives exactly once, intact and in
order; a receiver that does not read stops the sender at its window; limits and resets behave;
and a peer that breaks the rules is closed with CLOSE_PROTOCOL_ERROR.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from seigr_stt.config import NodeConfig
from seigr_stt.constants import (
    CLOSE_NORMAL,
    CLOSE_PROTOCOL_ERROR,
    INITIAL_WINDOW_PACKETS,
    LOSS_REDUCTION_FACTOR,
    MAX_STREAMS_DEFAULT,
    SESSION_INITIAL_WINDOW_BYTES,
    STREAM_CODE_UNIDIRECTIONAL,
    STREAM_INITIAL_WINDOW_BYTES,
    STT_SESSION_STATE_ACTIVE,
)
from seigr_stt.core.events import (
    MessageReceived,
    SessionClosed,
    StreamDataReceived,
    StreamOpened,
    StreamReset,
)
from seigr_stt.core.flow import KIND_MESSAGES, channel_stream_id
from seigr_stt.core.frames import (
    Ack,
    Frame,
    MaxData,
    MaxStreamData,
    Ping,
    Pong,
    ResetStream,
    StopSending,
    Stream,
    parse_frames,
    serialize_frames,
)
from seigr_stt.core.record import open_record, parse_header
from seigr_stt.core.session import Session
from seigr_stt.exceptions import ConfigError, SessionClosedError, StreamError
from seigr_stt.testing import Net, Node, Packet
from tests.core.net import DATA, Pair, authentic_record
from tests.profiles import scaled

MiB = 1024 * 1024
#: Small windows (both peers) for the tests about window behaviour: the same proportions as the
#: 1 MiB / 4 MiB defaults, a sixteenth of the bytes to move.
SMALL = NodeConfig(stream_window=64 * 1024, session_window=256 * 1024)


# -- helpers ---------------------------------------------------------------------------------
def lossy_pair(
    seed: int,
    *,
    loss: float = 0.1,
    delay_s: tuple[float, float] = (0.005, 0.030),
    duplicate: float = 0.05,
    config: NodeConfig | None = None,
    consume_b: bool = True,
) -> Pair:
    """An established pair on a net that turns lossy once the handshake is done (the delay is on
    from the start, so the handshake's RTT sample is the path's)."""
    net = Net(seed=seed, delay_s=delay_s)
    a = net.add_node("A", config=config)
    b = net.add_node("B", config=config, auto_consume=consume_b)
    sid = net.establish(a, b)
    net.run(0.1)
    net.loss, net.duplicate = loss, duplicate
    return Pair(net, a, b, sid)


def run_until(net: Net, done: Callable[[], bool], *, limit_s: float = 300.0) -> None:
    """Run the net in small steps until ``done()``; fail after ``limit_s`` simulated seconds."""
    deadline = net.now + limit_s
    while not done():
        assert net.now < deadline, "the transfer did not complete"
        net.run(0.25)


def quiesce(pair: Pair) -> None:
    """Stop impairing and run until every byte both sides wrote is acknowledged."""
    net = pair.net
    net.loss = net.duplicate = 0.0
    run_until(net, lambda: pair.sa.all_acknowledged and pair.sb.all_acknowledged)
    net.run(1.0)


def payload(size: int, tag: int | str) -> bytes:
    """``size`` reproducible, non-repeating bytes."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{tag}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def messages_of(node: Node, channel: int | None = None) -> list[bytes]:
    return [
        e.data for e in node.events_of(MessageReceived) if channel is None or e.channel == channel
    ]


def stream_data(node: Node) -> dict[int, bytes]:
    """Every byte stream's received bytes, concatenated in event order."""
    out: dict[int, bytearray] = {}
    for event in node.events_of(StreamDataReceived):
        out.setdefault(event.stream_id, bytearray()).extend(event.data)
    return {sid: bytes(data) for sid, data in out.items()}


def fins(node: Node) -> list[int]:
    return [e.stream_id for e in node.events_of(StreamDataReceived) if e.fin]


def no_violations(*nodes: Node) -> None:
    for node in nodes:
        assert node.events_of(SessionClosed) == []
        for session in node.endpoint.sessions.values():
            assert session.counters.receive_errors == 0
            assert session.counters.auth_failures == 0


def forge(pair: Pair, *frames: Frame) -> None:
    """Deliver to ``a`` a record from ``b`` sealed with b's real keys (an insider's forgery)."""
    pair.net.inject(pair.a, authentic_record(pair.sb, serialize_frames(list(frames))), "B")


def closed_for(node: Node) -> SessionClosed:
    [closed] = node.events_of(SessionClosed)
    return closed


def violation(pair: Pair) -> SessionClosed:
    """How ``a`` closed after a forgery: it sends CLOSE at once and is closed once b answers."""
    assert pair.sa.close_code == CLOSE_PROTOCOL_ERROR
    assert pair.sa.counters.receive_errors == 1
    pair.net.run(1.0)
    closed_b = closed_for(pair.b)
    assert (closed_b.code, closed_b.by_peer) == (CLOSE_PROTOCOL_ERROR, True)
    closed = closed_for(pair.a)
    assert (closed.code, closed.by_peer) == (CLOSE_PROTOCOL_ERROR, False)
    return closed


# -- messages of every size at 10% loss ------------------------------------------------------
@pytest.mark.parametrize("seed", [1])
def test_messages_of_every_size_arrive_intact_at_ten_percent_loss(seed: int) -> None:
    # Windows a quarter of the defaults (both peers alike), so that a quarter of the bytes
    # exercises the same: a message above the stream window, more than the session window.
    config = NodeConfig(stream_window=256 * 1024, session_window=MiB)
    pair = lossy_pair(seed, config=config)
    sizes = [0, 1, 2, 63, 64, 1189, 1190, 16 * 1024, config.stream_window + 1, 3 * MiB // 4]
    sent = {0: [payload(n, f"{seed}:0:{n}") for n in sizes]}
    sent[5] = [payload(n, f"{seed}:5:{n}") for n in reversed(sizes[:8])]
    for i in range(len(sizes)):
        for channel, datas in sent.items():
            if i < len(datas):
                pair.a.endpoint.session(pair.sid).send_message(channel, datas[i], pair.net.now)
        pair.net.flush()
    total = sum(len(d) for d in sent[0] + sent[5])
    assert total > config.session_window  # MAX_DATA must flow back
    run_until(pair.net, lambda: len(messages_of(pair.b)) == len(sizes) + 8)
    for channel, datas in sent.items():
        assert [digest(d) for d in messages_of(pair.b, channel)] == [digest(d) for d in datas]
    quiesce(pair)
    assert len(messages_of(pair.b)) == len(sizes) + 8  # exactly once
    sa, sb = pair.sa, pair.sb
    assert sa.counters.packets_lost > 25  # ~900 records at 10 % loss
    assert sa.counters.retransmitted_bytes > 25_000
    assert sb.counters.replays_dropped > 12  # the duplicates were refused
    assert sb.counters.messages_received == sa.counters.messages_sent == len(sizes) + 8
    no_violations(pair.a, pair.b)


# -- acknowledgement and retransmission ------------------------------------------------------
def test_acks_retire_what_they_acknowledge_and_nothing_is_resent_without_loss() -> None:
    # No loss and no reordering (reordering deeper than 3 records is taken for loss, RFC 9002).
    pair = lossy_pair(3, loss=0.0, delay_s=(0.015, 0.015), duplicate=0.0)
    data = payload(200_000, "clean")
    pair.a.endpoint.session(pair.sid).send_message(0, data, pair.net.now)
    pair.net.flush()
    assert pair.sa.recovery.bytes_in_flight > 0
    assert pair.sa.send_buffered == len(data) + 4  # a 4-byte varint length prefix
    quiesce(pair)
    sa = pair.sa
    assert messages_of(pair.b) == [data]
    assert sa.recovery.bytes_in_flight == 0
    assert not sa.recovery.has_in_flight
    assert sa.recovery.get_timer() is None  # nothing to detect the loss of, no probe armed
    assert sa.send_buffered == 0
    assert (sa.counters.packets_lost, sa.counters.retransmitted_bytes) == (0, 0)
    assert sa.rtt_s is not None
    assert 0.03 <= sa.rtt_s <= 0.03 + 0.025  # two one-way delays, at most one ack delay


def test_lost_records_are_detected_and_their_data_retransmitted() -> None:
    pair = lossy_pair(4, loss=0.1, duplicate=0.0)
    data = payload(500_000, "lossy")
    pair.a.endpoint.session(pair.sid).send_message(2, data, pair.net.now)
    pair.net.flush()
    run_until(pair.net, lambda: bool(messages_of(pair.b)))
    quiesce(pair)
    sa = pair.sa
    assert messages_of(pair.b, 2) == [data]
    lost = [p for p in pair.net.sent_by(pair.a, DATA) if p.fate == "lost"]
    assert len(lost) > 20
    # Every record the network lost was declared lost (none of them was acknowledged), and
    # at least their stream bytes were sent again.
    assert sa.counters.packets_lost >= len(lost)
    assert sa.counters.retransmitted_bytes >= len(lost) * 1000
    assert sa.recovery.bytes_in_flight == 0


def frames_in(packet: Packet, receiver: Session) -> list[Frame]:
    """Decrypt a record with the keys its receiver holds (no state changes) and parse it."""
    header = parse_header(packet.data)
    selected = receiver.keys.select_receive_key(header.epoch, receiver.created_at)
    assert selected is not None
    return parse_frames(open_record(selected[1], packet.data, header.counter))


def test_acks_name_what_arrived_and_a_probe_ping_gets_no_pong() -> None:
    pair = lossy_pair(29, loss=0.0, delay_s=(0.01, 0.01), duplicate=0.0)
    net = pair.net
    counters = []
    for token in (0, 7):
        record = authentic_record(pair.sb, serialize_frames([Ping(token)]))
        counters.append(parse_header(record).counter)
        before = len(net.log)
        net.inject(pair.a, record, "B")
        net.run(0.1)
        replies = [frames_in(p, pair.sb) for p in net.log[before:] if p.sender == "A"]
        # One reply: an ACK naming the PING's record, after the ack delay for a lone PING (a
        # probe, token 0), at once with the PONG for a PING that asks for one.
        [frames] = replies
        acks = [f for f in frames if isinstance(f, Ack)]
        assert len(acks) == 1
        assert any(low <= counters[-1] <= high for low, high in acks[0].ranges)
        assert [f for f in frames if isinstance(f, Pong)] == ([] if token == 0 else [Pong(7)])
    # The second ACK names both records in one range.
    assert acks[0].ranges[0][0] <= counters[0]


def test_probe_timeout_recovers_a_lost_tail() -> None:
    pair = lossy_pair(5, loss=0.0, duplicate=0.0)
    net = pair.net
    net.drop(lambda p: p.sender == "A" and p.type == DATA, times=1)  # the only record
    pair.send(pair.a, b"tail")
    net.run(0.05)
    assert messages_of(pair.b) == []
    net.run(2.0)  # no later ACK to infer the loss from: the probe timeout finds it
    assert messages_of(pair.b) == [b"tail"]
    assert pair.sa.all_acknowledged


# -- flow control ----------------------------------------------------------------------------
def test_a_receiver_that_does_not_read_stops_a_byte_stream_at_its_window() -> None:
    pair = lossy_pair(6, loss=0.05, duplicate=0.02, consume_b=False, config=SMALL)
    net, sa, sb = pair.net, pair.sa, pair.sb
    window = SMALL.stream_window
    data = payload(3 * window, "window")
    stream_id = pair.a.endpoint.session(pair.sid).open_stream(net.now)
    pair.a.endpoint.session(pair.sid).write_stream(stream_id, data, True, net.now)
    net.flush()
    run_until(net, lambda: len(stream_data(pair.b).get(stream_id, b"")) >= window)
    for _ in range(20):  # long after: still stopped at the window, nothing broken
        net.run(1.0)
        received = stream_data(pair.b)[stream_id]
        assert len(received) == window
        assert sb.streams.recv[stream_id].highest <= window
        assert sa.recovery.bytes_in_flight <= sa.packetizer.cc.cwnd + sa.max_record_size
        assert sa.send_buffered == len(data) - window  # the rest waits
        assert sa.stream_buffered(stream_id) == sa.send_buffered
    assert sa.streams.send[stream_id].blocked_by_credit()
    assert received == data[:window]
    no_violations(pair.a, pair.b)
    # Reading resumes the transfer.
    pair.b.auto_consume = True
    pair.b.endpoint.session(pair.sid).consume_stream(stream_id, len(received))
    net.flush()
    run_until(net, lambda: stream_id in fins(pair.b))
    assert stream_data(pair.b)[stream_id] == data
    no_violations(pair.a, pair.b)


def test_a_receiver_that_does_not_take_messages_stops_the_channel_at_its_window() -> None:
    pair = lossy_pair(7, loss=0.05, duplicate=0.02, consume_b=False, config=SMALL)
    net = pair.net
    window = SMALL.stream_window
    datas = [payload(1000, i) for i in range(160)]  # 2.4 windows on one channel
    for data in datas:
        pair.a.endpoint.session(pair.sid).send_message(4, data, net.now)
    net.flush()
    wire = 1000 + 2  # each message with its 2-byte length prefix
    fits = window // wire
    run_until(net, lambda: len(messages_of(pair.b)) >= fits)
    net.run(20.0)
    assert messages_of(pair.b) == datas[:fits]  # what the window held, and not one more
    stream = pair.sb.streams.recv[channel_stream_id(4, 0)]
    assert stream.highest <= window
    no_violations(pair.a, pair.b)
    # The application takes every message it was given: the rest follows.
    pair.b.auto_consume = True
    for event in pair.b.events_of(MessageReceived):
        pair.b.endpoint.session(pair.sid).consume_message(event.channel, event.credit)
    net.flush()
    run_until(net, lambda: len(messages_of(pair.b)) == len(datas))
    assert messages_of(pair.b) == datas
    no_violations(pair.a, pair.b)


def test_large_messages_a_receiver_does_not_take_stop_at_the_window() -> None:
    # A message larger than what is left of the window gets its credit early only once the
    # application took every message before it: a receiver that takes nothing holds one window.
    pair = lossy_pair(28, loss=0.02, delay_s=(0.01, 0.01), duplicate=0.0, consume_b=False)
    net = pair.net
    datas = [payload(700_000, i) for i in range(3)] + [payload(3 * MiB, "big")]
    for data in datas:
        pair.a.endpoint.session(pair.sid).send_message(0, data, net.now)
    net.flush()
    run_until(net, lambda: len(messages_of(pair.b)) == 1)
    net.run(10.0)
    assert messages_of(pair.b) == datas[:1]
    stream = pair.sb.streams.recv[channel_stream_id(0, 0)]
    assert stream.highest <= stream.consumed + STREAM_INITIAL_WINDOW_BYTES
    assert stream.credit <= STREAM_INITIAL_WINDOW_BYTES
    # Taking the first message lets the second (which now leads) complete, and no more.
    [first] = pair.b.events_of(MessageReceived)
    pair.b.endpoint.session(pair.sid).consume_message(0, first.credit)
    net.flush()
    run_until(net, lambda: len(messages_of(pair.b)) == 2)
    net.run(10.0)
    assert messages_of(pair.b) == datas[:2]
    # Taking everything lets the rest through, including a message three windows long.
    pair.b.auto_consume = True
    for event in pair.b.events_of(MessageReceived)[1:]:
        pair.b.endpoint.session(pair.sid).consume_message(0, event.credit)
    net.flush()
    run_until(net, lambda: len(messages_of(pair.b)) == len(datas))
    assert [digest(d) for d in messages_of(pair.b)] == [digest(d) for d in datas]
    no_violations(pair.a, pair.b)


def test_lost_credit_updates_are_sent_again() -> None:
    pair = lossy_pair(30, loss=0.0, delay_s=(0.01, 0.01), duplicate=0.0)
    net = pair.net
    lost: dict[type, int] = {MaxData: 0, MaxStreamData: 0}

    def carries_first_credit(packet: Packet) -> bool:
        if packet.sender != "B" or packet.type != DATA:
            return False
        kinds = {type(f) for f in frames_in(packet, pair.sa)} & set(lost)
        fresh = [k for k in kinds if not lost[k]]
        for kind in fresh:
            lost[kind] += 1
        return bool(fresh)

    net.filters.append(carries_first_credit)
    datas = [payload(MiB, i) for i in range(6)]  # beyond the stream and the session windows
    for data in datas:
        pair.a.endpoint.session(pair.sid).send_message(0, data, net.now)
    net.flush()
    run_until(net, lambda: len(messages_of(pair.b)) == len(datas))
    assert lost == {MaxData: 1, MaxStreamData: 1}  # the first of each was lost, and resent
    assert [digest(d) for d in messages_of(pair.b)] == [digest(d) for d in datas]
    assert pair.sb.counters.packets_lost >= 1
    no_violations(pair.a, pair.b)


def test_the_session_window_bounds_all_streams_together() -> None:
    pair = lossy_pair(8, loss=0.02, duplicate=0.0, consume_b=False, config=SMALL)
    net = pair.net
    session_window = SMALL.session_window
    streams = [pair.a.endpoint.session(pair.sid).open_stream(net.now) for _ in range(6)]
    datas = {s: payload(SMALL.stream_window, s) for s in streams}  # 1.5 session windows
    for stream_id, data in datas.items():
        pair.a.endpoint.session(pair.sid).write_stream(stream_id, data, True, net.now)
    net.flush()

    def total() -> int:
        return sum(len(d) for d in stream_data(pair.b).values())

    run_until(net, lambda: total() >= session_window)
    net.run(10.0)
    assert total() == session_window
    assert pair.sa.streams.sent_data <= session_window
    no_violations(pair.a, pair.b)
    pair.b.auto_consume = True
    for stream_id, data in stream_data(pair.b).items():
        pair.b.endpoint.session(pair.sid).consume_stream(stream_id, len(data))
    net.flush()
    run_until(net, lambda: sorted(fins(pair.b)) == streams)
    assert stream_data(pair.b) == datas


# -- stream limits ---------------------------------------------------------------------------
def test_max_streams_limits_open_streams_and_finished_streams_raise_it_again() -> None:
    pair = lossy_pair(9, loss=0.05, duplicate=0.0)
    net, ep = pair.net, pair.a.endpoint
    opened = [ep.session(pair.sid).open_stream(net.now) for _ in range(MAX_STREAMS_DEFAULT)]
    assert len(set(opened)) == MAX_STREAMS_DEFAULT
    assert all(s & 3 == 0 for s in opened)  # client-initiated, bidirectional
    with pytest.raises(StreamError, match="allows 256 streams"):
        ep.session(pair.sid).open_stream(net.now)
    assert pair.sa.is_active
    # Finish 10 streams in both directions; the peer answers each with its own FIN.
    answered: set[int] = set()

    def answered_and_raised() -> bool:
        for event in pair.b.events_of(StreamDataReceived):
            if event.fin and event.stream_id not in answered:
                answered.add(event.stream_id)
                pair.b.endpoint.session(pair.sid).write_stream(
                    event.stream_id, b"ok", True, net.now
                )
        net.flush()
        return pair.sa.streams.peer_max_streams >= MAX_STREAMS_DEFAULT + 10

    for stream_id in opened[:10]:
        ep.session(pair.sid).write_stream(stream_id, b"done", True, net.now)
    net.flush()
    run_until(net, answered_and_raised)
    more = [ep.session(pair.sid).open_stream(net.now) for _ in range(10)]
    assert more == [(MAX_STREAMS_DEFAULT + i) << 2 for i in range(10)]
    with pytest.raises(StreamError):
        ep.session(pair.sid).open_stream(net.now)
    assert len(pair.b.events_of(StreamOpened)) == 10  # empty streams open lazily, with data
    # Both sides forgot the finished streams (bounded memory).
    for stream_id in opened[:10]:
        assert stream_id not in pair.sa.streams.send
        assert stream_id not in pair.sb.streams.recv
    no_violations(pair.a, pair.b)


def test_a_peer_opening_streams_beyond_the_limit_is_closed() -> None:
    pair = lossy_pair(10, loss=0.0, duplicate=0.0)
    beyond = (MAX_STREAMS_DEFAULT << 2) | 1  # b's stream with index 256
    forge(pair, Stream(beyond, 0, False, b"x"))
    assert violation(pair).reason == "stream limit exceeded"


def test_two_hundred_concurrent_byte_streams_in_both_directions() -> None:
    pair = lossy_pair(11, loss=0.05, duplicate=0.02)
    net = pair.net
    streams = [pair.a.endpoint.session(pair.sid).open_stream(net.now) for _ in range(200)]
    requests = {s: payload(2000 + 37 * i, f"req{s}") for i, s in enumerate(streams)}
    for stream_id, data in requests.items():
        pair.a.endpoint.session(pair.sid).write_stream(stream_id, data[:700], False, net.now)
    net.flush()
    for stream_id, data in requests.items():  # the rest later: streams interleave
        pair.a.endpoint.session(pair.sid).write_stream(stream_id, data[700:], True, net.now)
    net.flush()
    replies = {s: payload(len(requests[s]) // 2, f"rep{s}") for s in streams}
    done: set[int] = set()

    def reply() -> bool:
        for stream_id in fins(pair.b):
            if stream_id not in done:
                done.add(stream_id)
                pair.b.endpoint.session(pair.sid).write_stream(
                    stream_id, replies[stream_id], True, net.now
                )
        net.flush()
        return len(fins(pair.a)) == 200

    run_until(net, reply)
    assert stream_data(pair.b) == requests
    assert stream_data(pair.a) == replies
    assert sorted(fins(pair.b)) == sorted(fins(pair.a)) == streams  # each FIN exactly once
    assert [e.stream_id for e in pair.b.events_of(StreamOpened)] == streams
    quiesce(pair)
    assert pair.sa.streams.send == {} and pair.sb.streams.send == {}  # noqa: PT018 - every stream forgotten
    no_violations(pair.a, pair.b)


# -- resets ----------------------------------------------------------------------------------
def open_with_data(pair: Pair, data: bytes, *, fin: bool = False) -> int:
    stream_id = pair.a.endpoint.session(pair.sid).open_stream(pair.net.now)
    pair.a.endpoint.session(pair.sid).write_stream(stream_id, data, fin, pair.net.now)
    pair.net.flush()
    run_until(pair.net, lambda: len(stream_data(pair.b).get(stream_id, b"")) == len(data))
    return stream_id


def test_reset_stream_reaches_the_receiver() -> None:
    pair = lossy_pair(12, loss=0.0, duplicate=0.0)
    net = pair.net
    stream_id = open_with_data(pair, b"partial")
    # b finishes its half, so a's reset aborts only a's sending half: a RESET_STREAM alone.
    pair.b.endpoint.session(pair.sid).write_stream(stream_id, b"b-side", True, net.now)
    net.flush()
    run_until(net, lambda: stream_id in fins(pair.a))
    net.drop(lambda p: p.sender == "A" and p.type == DATA)  # the first RESET_STREAM is lost
    pair.a.endpoint.session(pair.sid).reset_stream(stream_id, 77, net.now)
    net.flush()
    run_until(net, lambda: bool(pair.b.events_of(StreamReset)))
    assert pair.b.events_of(StreamReset) == [StreamReset(pair.sid, stream_id, 77, False)]
    assert pair.a.events_of(StreamReset) == []
    with pytest.raises(StreamError, match=r"reset|no open"):  # reset, or reset and forgotten
        pair.a.endpoint.session(pair.sid).write_stream(stream_id, b"more", False, net.now)
    quiesce(pair)
    assert stream_id not in pair.sa.streams.send
    assert stream_id not in pair.sb.streams.recv
    assert pair.sa.counters.packets_lost >= 1
    no_violations(pair.a, pair.b)


def test_stop_sending_makes_the_sender_reset() -> None:
    pair = lossy_pair(13, loss=0.0, duplicate=0.0)
    net = pair.net
    stream_id = open_with_data(pair, b"x" * 5000)
    # b's own half is finished: its reset sends only STOP_SENDING for the half it receives.
    pair.b.endpoint.session(pair.sid).write_stream(stream_id, b"", True, net.now)
    net.flush()
    net.run(0.5)
    pair.b.endpoint.session(pair.sid).reset_stream(stream_id, 9, net.now)
    net.flush()
    net.run(0.5)
    assert pair.a.events_of(StreamReset) == [StreamReset(pair.sid, stream_id, 9, True)]
    assert pair.b.events_of(StreamReset) == []  # a's RESET_STREAM answers b's own request
    with pytest.raises(StreamError, match=r"reset|no open"):  # reset, and then forgotten
        pair.a.endpoint.session(pair.sid).write_stream(stream_id, b"more", False, net.now)
    quiesce(pair)
    assert stream_id not in pair.sa.streams.send
    assert stream_id not in pair.sb.streams.send
    no_violations(pair.a, pair.b)


def test_reset_in_both_directions_tells_each_side_once() -> None:
    pair = lossy_pair(14, loss=0.1, duplicate=0.05)
    net = pair.net
    stream_id = open_with_data(pair, payload(50_000, "both"))
    pair.a.endpoint.session(pair.sid).reset_stream(stream_id, 5, net.now)
    net.flush()
    quiesce(pair)
    # b learns both: a stopped sending (RESET_STREAM) and wants b to stop (STOP_SENDING).
    assert sorted(e.sending for e in pair.b.events_of(StreamReset)) == [False, True]
    assert {e.code for e in pair.b.events_of(StreamReset)} == {5}
    assert pair.a.events_of(StreamReset) == []
    with pytest.raises(StreamError):
        pair.b.endpoint.session(pair.sid).write_stream(stream_id, b"late", False, net.now)
    no_violations(pair.a, pair.b)


def test_stop_sending_alone_leaves_the_receiving_half_open() -> None:
    pair = lossy_pair(31, loss=0.0, duplicate=0.0)
    net = pair.net
    stream_id = open_with_data(pair, b"request")
    forge(pair, StopSending(stream_id, 4))  # b stops a's half, keeps its own open
    assert pair.a.events_of(StreamReset) == [StreamReset(pair.sid, stream_id, 4, True)]
    with pytest.raises(StreamError, match="was reset"):
        pair.a.endpoint.session(pair.sid).write_stream(stream_id, b"more", False, net.now)
    forge(pair, Stream(stream_id, 0, True, b"answer"))  # b's half still reaches a
    assert stream_data(pair.a) == {stream_id: b"answer"}
    assert stream_id not in pair.sa.streams.send  # both halves done: forgotten
    assert pair.sa.is_active


def test_writes_after_fin_and_bad_codes_are_refused() -> None:
    pair = lossy_pair(32, loss=0.0, duplicate=0.0)
    ep, now = pair.a.endpoint, pair.net.now
    stream_id = ep.session(pair.sid).open_stream(now)
    ep.session(pair.sid).write_stream(stream_id, b"all", True, now)
    with pytest.raises(StreamError, match="already closed for writing"):
        ep.session(pair.sid).write_stream(stream_id, b"more", False, now)
    for code in (-1, 1 << 62):
        with pytest.raises(ConfigError, match=r"reset code must be within 0\.\.2\*\*62-1"):
            ep.session(pair.sid).reset_stream(stream_id, code, now)
        with pytest.raises(ConfigError, match=r"close code must be within 0\.\.2\*\*62-1"):
            ep.session(pair.sid).close(code, "", now)
    assert pair.sa.is_active


def test_a_reset_declares_the_final_size_and_returns_the_unread_credit() -> None:
    pair = lossy_pair(33, loss=0.0, duplicate=0.0)
    stream_id = 1  # b's first byte stream
    forge(pair, Stream(stream_id, 0, False, b"abc"))
    forge(pair, ResetStream(stream_id, 8, 5000))  # 4997 bytes a will never see
    assert pair.a.events_of(StreamReset) == [StreamReset(pair.sid, stream_id, 8, False)]
    recv = pair.sa.streams.recv[stream_id]
    assert (recv.final_size, recv.consumed) == (5000, 5000)
    assert pair.sa.streams.max_data.used == 5000  # counted against the session window as sent
    forge(pair, ResetStream(stream_id, 8, 5000))  # a retransmission: ignored
    assert len(pair.a.events_of(StreamReset)) == 1


@pytest.mark.parametrize(
    ("frames", "reason"),
    [
        ([Stream(1, 0, False, b"abc"), ResetStream(1, 0, 2)], "reset below the data"),
        ([ResetStream(channel_stream_id(0, 1), 0, 0)], "reset of a message channel"),
        ([Stream(channel_stream_id(0, 1), 0, True, b"\x01m")], "FIN on a message channel"),
        ([Stream(channel_stream_id(3, 1), 0, True, b"")], "FIN on a message channel"),
        ([StopSending(channel_stream_id(0, 0), 0)], "stop-sending on a message channel"),
        ([StopSending(4 << 2, 0)], "stop-sending for a stream we never opened"),
    ],
)
def test_resets_and_fins_that_break_the_rules_close_with_protocol_error(
    frames: list[Frame], reason: str
) -> None:
    pair = lossy_pair(34, loss=0.0, duplicate=0.0)
    for frame in frames:
        forge(pair, frame)
    assert violation(pair).reason.startswith(reason)


def test_resetting_a_message_channel_is_refused() -> None:
    pair = lossy_pair(15, loss=0.0, duplicate=0.0)
    pair.send(pair.a, b"m")
    with pytest.raises(StreamError):
        pair.a.endpoint.session(pair.sid).reset_stream(channel_stream_id(0, 0), 1, pair.net.now)
    with pytest.raises(StreamError):
        pair.a.endpoint.session(pair.sid).write_stream(
            channel_stream_id(0, 0), b"x", False, pair.net.now
        )
    with pytest.raises(StreamError):
        pair.a.endpoint.session(pair.sid).write_stream(
            4 << 2, b"x", False, pair.net.now
        )  # not opened


# -- close with drain ------------------------------------------------------------------------
@pytest.mark.parametrize("drain", [True, False])
def test_close_with_drain_delivers_written_data_before_close(drain: bool) -> None:
    # Random loss but no reordering: reordering deeper than three records is taken for loss
    # (RFC 9002 packet threshold) and keeps the window small, which the drain deadline caps.
    pair = lossy_pair(16, loss=0.03, delay_s=(0.0175, 0.0175), duplicate=0.0)
    net = pair.net
    data = payload(150_000, "drain")
    stream_id = pair.a.endpoint.session(pair.sid).open_stream(net.now)
    pair.a.endpoint.session(pair.sid).write_stream(stream_id, data, True, net.now)
    pair.a.endpoint.session(pair.sid).send_message(1, b"last message", net.now)
    net.flush()
    pair.a.endpoint.session(pair.sid).close(42, "done", net.now, drain=drain)
    net.flush()
    net.run(30.0)
    closed_b = closed_for(pair.b)
    assert (closed_b.code, closed_b.reason, closed_b.by_peer) == (42, "done", True)
    assert closed_for(pair.a).code == 42
    if drain:
        assert stream_data(pair.b)[stream_id] == data
        assert messages_of(pair.b) == [b"last message"]
        # Everything arrived before the CLOSE.
        kinds = [
            type(e) for _, e in pair.b.events if isinstance(e, StreamDataReceived | SessionClosed)
        ]
        assert kinds[-1] is SessionClosed
        assert pair.b.events_of(StreamDataReceived)[-1].fin
    else:
        assert len(stream_data(pair.b).get(stream_id, b"")) < len(data)


def test_drain_gives_up_at_its_deadline_when_the_peer_does_not_read() -> None:
    pair = lossy_pair(17, loss=0.0, delay_s=(0.01, 0.01), duplicate=0.0, consume_b=False)
    net = pair.net
    stream_id = pair.a.endpoint.session(pair.sid).open_stream(net.now)
    pair.a.endpoint.session(pair.sid).write_stream(
        stream_id, payload(2 * MiB, "stuck"), True, net.now
    )
    net.flush()
    net.run(2.0)
    start = net.now
    pair.a.endpoint.session(pair.sid).close(CLOSE_NORMAL, "", net.now, drain=True)
    net.flush()
    net.run(30.0)
    (t, closed) = pair.b.timed_events_of(SessionClosed)[0]
    assert closed.by_peer
    assert 2.0 <= t - start <= 3.0  # the drain deadline: max(2 s, 4 x PTO)
    assert len(stream_data(pair.b)[stream_id]) == STREAM_INITIAL_WINDOW_BYTES


# -- peers that break the rules --------------------------------------------------------------
def test_data_beyond_the_stream_credit_closes_with_protocol_error() -> None:
    pair = lossy_pair(18, loss=0.0, duplicate=0.0)
    b_channel = channel_stream_id(0, 1)
    forge(pair, Stream(b_channel, 0, False, b"\x01a"))  # within credit: a message
    assert messages_of(pair.a) == [b"a"]
    forge(pair, Stream(b_channel, STREAM_INITIAL_WINDOW_BYTES - 1, False, b"xy"))
    closed = violation(pair)
    assert closed.reason == "stream data beyond the granted credit"


def test_data_beyond_the_session_credit_closes_with_protocol_error() -> None:
    pair = lossy_pair(19, loss=0.0, duplicate=0.0)
    # Every channel stays within its own credit, together they exceed the session's.
    per_channel = STREAM_INITIAL_WINDOW_BYTES
    channels = SESSION_INITIAL_WINDOW_BYTES // per_channel
    for channel in range(channels):
        forge(pair, Stream(channel_stream_id(channel, 1), per_channel - 1, False, b"z"))
    assert pair.sa.is_active
    forge(pair, Stream(channel_stream_id(channels, 1), 0, False, b"\x00"))
    assert violation(pair).reason == "session flow control credit exceeded"


def test_a_reset_beyond_the_credit_closes_with_protocol_error() -> None:
    pair = lossy_pair(20, loss=0.0, duplicate=0.0)
    stream_id = (0 << 2) | 1  # b's first byte stream
    forge(pair, ResetStream(stream_id, 3, STREAM_INITIAL_WINDOW_BYTES + 1))
    assert violation(pair).reason == "reset beyond the granted credit"


def test_a_reset_beyond_the_session_credit_closes_with_protocol_error() -> None:
    """A final size counts against the session window as data does: resetting streams is no
    way around it (formerly §13.1 #4)."""
    pair = lossy_pair(19, loss=0.0, duplicate=0.0)
    per_channel = STREAM_INITIAL_WINDOW_BYTES
    channels = SESSION_INITIAL_WINDOW_BYTES // per_channel
    for channel in range(channels):
        forge(pair, Stream(channel_stream_id(channel, 1), per_channel - 1, False, b"z"))
    assert pair.sa.is_active
    forge(pair, ResetStream((0 << 2) | 1, 3, 1))  # b's first byte stream, one byte
    assert violation(pair).reason == "session flow control credit exceeded"


@pytest.mark.parametrize(
    ("data", "fin", "reason"),
    [
        (b"ab", True, "stream final size changed"),
        (b"abcd", True, "stream data beyond its final size"),
        (b"abcd", False, "stream data beyond its final size"),
    ],
)
def test_a_changed_final_size_closes_with_protocol_error(
    data: bytes, fin: bool, reason: str
) -> None:
    pair = lossy_pair(21, loss=0.0, duplicate=0.0)
    stream_id = 1  # b's first byte stream
    forge(pair, Stream(stream_id, 0, True, b"abc"))
    assert stream_data(pair.a) == {stream_id: b"abc"}
    assert fins(pair.a) == [stream_id]
    forge(pair, Stream(stream_id, 0, True, b"abc"))  # a retransmission: fine
    assert pair.sa.is_active
    forge(pair, Stream(stream_id, 0, fin, data))
    assert violation(pair).reason == reason


def test_an_ack_of_a_record_never_sent_closes_with_protocol_error() -> None:
    pair = lossy_pair(22, loss=0.0, duplicate=0.0)
    pair.send(pair.a, b"hello")
    pair.net.run(1.0)
    next_counter = pair.sa.keys.send_counter
    forge(pair, Ack(0, ((0, next_counter - 1),)))  # every counter a sent: fine
    assert pair.sa.is_active
    forge(pair, Ack(0, ((next_counter, next_counter),)))
    assert violation(pair).reason == "acknowledgement of a record never sent"


def test_data_on_a_message_channel_of_our_own_side_closes_with_protocol_error() -> None:
    pair = lossy_pair(23, loss=0.0, duplicate=0.0)
    own = channel_stream_id(0, 0)  # a's own sending direction
    assert own & KIND_MESSAGES
    forge(pair, Stream(own, 0, False, b"\x01x"))
    assert violation(pair).reason == "data on our own message channel"


# -- key rotation during a lossy transfer ----------------------------------------------------
def test_rotation_every_100_ms_during_a_lossy_transfer_loses_nothing() -> None:
    pair = lossy_pair(24, loss=0.05, duplicate=0.02)
    net = pair.net
    data = payload(2 * MiB, "rotating")
    stream_id = pair.a.endpoint.session(pair.sid).open_stream(net.now)
    pair.a.endpoint.session(pair.sid).write_stream(stream_id, data, True, net.now)
    datas = [payload(300, i) for i in range(500)]
    for i, message in enumerate(datas):
        net.schedule(
            net.now + i * 0.01,
            functools.partial(
                pair.b.endpoint.session(pair.sid).send_message, 1, message, net.now + i * 0.01
            ),
        )
    net.flush()
    rotations = 0

    def rotate() -> None:
        nonlocal rotations
        for node in (pair.a, pair.b):
            if node.session(pair.sid).is_active:
                node.endpoint.session(pair.sid).request_rotation(net.now)
        rotations += 1
        if rotations < 100:
            net.schedule(net.now + 0.1, rotate)

    net.schedule(net.now + 0.1, rotate)
    run_until(net, lambda: stream_id in fins(pair.b) and len(messages_of(pair.a)) == len(datas))
    assert stream_data(pair.b)[stream_id] == data
    assert messages_of(pair.a) == datas
    quiesce(pair)
    for session in (pair.sa, pair.sb):
        assert session.counters.auth_failures == 0
        assert session.counters.epoch_drops == 0
    assert pair.sa.key_version == pair.sb.key_version >= 5
    assert pair.sa.counters.packets_lost > 10
    no_violations(pair.a, pair.b)


# -- congestion control ----------------------------------------------------------------------
def test_congestion_window_grows_in_slow_start_and_halves_on_loss() -> None:
    pair = lossy_pair(25, loss=0.0, delay_s=(0.02, 0.02), duplicate=0.0)
    net, sa = pair.net, pair.sa
    initial = INITIAL_WINDOW_PACKETS * sa.max_record_size
    assert sa.packetizer.cc.cwnd == initial
    assert sa.packetizer.cc.ssthresh == float("inf")
    pair.a.endpoint.session(pair.sid).send_message(0, payload(4 * MiB, "cc"), net.now)
    net.flush()
    samples: list[int] = []
    for _ in range(200):  # 200 ms: five round trips of slow start
        net.run(0.001)
        samples.append(sa.packetizer.cc.cwnd)
    assert samples == sorted(samples)  # only growth, no loss yet
    assert samples[-1] >= 8 * initial
    assert sa.packetizer.cc.ssthresh == float("inf")
    # Lose two records in a row: one congestion event, one reduction.
    net.drop(lambda p: p.sender == "A" and p.type == DATA, times=2)
    before = sa.packetizer.cc.cwnd
    while sa.packetizer.cc.ssthresh == float("inf"):
        before = sa.packetizer.cc.cwnd
        net.run(0.001)
    after = sa.packetizer.cc.cwnd
    assert after == sa.packetizer.cc.ssthresh
    assert after < before
    assert after >= int(before * LOSS_REDUCTION_FACTOR)
    assert sa.counters.packets_lost >= 1
    # Congestion avoidance from here: about one record per round trip, not doubling.
    net.run(0.4)  # ten round trips
    assert after < sa.packetizer.cc.cwnd <= after + 12 * sa.max_record_size


def test_the_rate_limit_of_the_path_is_found_and_used() -> None:
    net = Net(seed=26, delay_s=(0.01, 0.01), rate_bytes_per_s=2_000_000, queue_s=0.05)
    a, b = net.add_node("A"), net.add_node("B")
    sid = net.establish(a, b)
    data = payload(4 * MiB, "rate")
    stream_id = a.endpoint.session(sid).open_stream(net.now)
    a.endpoint.session(sid).write_stream(stream_id, data, True, net.now)
    net.flush()
    start = net.now
    run_until(net, lambda: stream_id in fins(b))
    elapsed = net.now - start
    assert stream_data(b)[stream_id] == data
    overflowed = [p for p in net.log if p.fate == "overflow"]
    assert overflowed  # slow start overran the bottleneck's queue
    assert a.session(sid).counters.packets_lost >= len(overflowed) // 2
    assert len(data) / 2_000_000 < elapsed < 3 * len(data) / 2_000_000  # used most of the link


# -- property: any seeded impairment, exactly once and in order ------------------------------
@settings(
    max_examples=scaled(0.15),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@example(
    seed=57637,
    loss=0.1875,
    duplicate=0.03125,
    max_delay_s=0.0625,
    sizes=[0, 0, 0, 10448, 0, 0, 0, 10439],
)
@given(
    seed=st.integers(min_value=0, max_value=2**32),
    loss=st.floats(min_value=0.0, max_value=0.3),
    duplicate=st.floats(min_value=0.0, max_value=0.3),
    max_delay_s=st.floats(min_value=0.0, max_value=0.08),
    sizes=st.lists(st.integers(min_value=0, max_value=20_000), min_size=5, max_size=60),
)
def test_no_impairment_loses_or_duplicates_a_message(
    seed: int, loss: float, duplicate: float, max_delay_s: float, sizes: list[int]
) -> None:
    # The property is exactly-once, in-order delivery. At up to 30 % loss each way even six
    # probe round trips can be lost in a row (p ≈ 0.51⁶ ≈ 2 % per stall at 30 %), which the
    # dead-peer timer rightly takes for a vanished peer; that policy has its own tests (and the
    # example above its own regression test below): widened here.
    exactly_once(seed, loss, duplicate, max_delay_s, sizes, NodeConfig(dead_peer_timeout_s=120.0))


def test_the_default_dead_peer_timer_keeps_a_live_peer_behind_19_percent_loss() -> None:
    """protocol.md §13.1 #12, fixed: this seeded run lost five backed-off probe round trips in a
    row and closed a live session with CLOSE_DEAD_PEER under the default 10 s timer, before the
    probe interval was capped and six probe timeouts in a row were required (§8)."""
    exactly_once(57637, 0.1875, 0.03125, 0.0625, [0, 0, 0, 10448, 0, 0, 0, 10439], NodeConfig())


def exactly_once(
    seed: int,
    loss: float,
    duplicate: float,
    max_delay_s: float,
    sizes: list[int],
    config: NodeConfig,
) -> None:
    """Messages of ``sizes`` both ways across the impaired net arrive exactly once, in order,
    and both sessions stay active."""
    pair = lossy_pair(
        seed, loss=loss, delay_s=(0.0, max_delay_s), duplicate=duplicate, config=config
    )
    net = pair.net
    sent: dict[tuple[str, int], list[bytes]] = {}
    for i, size in enumerate(sizes):
        frm = pair.a if i % 3 else pair.b
        channel = i % 2
        data = payload(size, f"{seed}:{i}")
        frm.endpoint.session(pair.sid).send_message(channel, data, net.now)
        sent.setdefault((frm.name, channel), []).append(data)
        if i % 4 == 0:
            net.flush()
            net.run(0.003)
    net.flush()
    run_until(net, lambda: pair.sa.all_acknowledged and pair.sb.all_acknowledged, limit_s=600)
    for (name, channel), datas in sent.items():
        receiver = pair.b if name == "A" else pair.a
        assert messages_of(receiver, channel) == datas
    assert len(messages_of(pair.a)) + len(messages_of(pair.b)) == len(sizes)
    for session in (pair.sa, pair.sb):
        assert session.state == STT_SESSION_STATE_ACTIVE
        assert session.counters.auth_failures == 0
        assert session.counters.epoch_drops == 0
        assert session.counters.receive_errors == 0


# -- the simulator's own contract -----------------------------------------------------------
def test_closed_session_refuses_stream_calls() -> None:
    pair = lossy_pair(27, loss=0.0, duplicate=0.0)
    sa: Session = pair.sa
    pair.a.endpoint.session(pair.sid).close(0, "", pair.net.now)
    with pytest.raises(SessionClosedError):
        sa.open_stream(pair.net.now)
    with pytest.raises(SessionClosedError):
        sa.write_stream(0, b"x", False, pair.net.now)
    sa.reset_stream(0, 1, pair.net.now)  # closing: a no-op


@pytest.mark.parametrize("seed", [41, 42])
def test_a_unidirectional_stream_carries_one_way_and_is_released_on_both_sides(
    seed: int,
) -> None:
    pair = lossy_pair(seed, loss=0.1, duplicate=0.05)
    net = pair.net
    data = payload(50_000, f"uni{seed}")
    session_a = pair.a.endpoint.session(pair.sid)
    stream_id = session_a.open_stream(net.now, unidirectional=True)
    session_a.write_stream(stream_id, data, True, net.now)
    net.flush()
    run_until(net, lambda: stream_id in fins(pair.b))
    assert stream_data(pair.b) == {stream_id: data}
    assert [e.stream_id for e in pair.b.events_of(StreamOpened)] == [stream_id]
    # b learns at once that only a sends: its own half is stopped with the reserved code.
    assert pair.b.events_of(StreamReset) == [
        StreamReset(pair.sid, stream_id, STREAM_CODE_UNIDIRECTIONAL, True)
    ]
    with pytest.raises(StreamError):
        pair.b.endpoint.session(pair.sid).write_stream(stream_id, b"back", False, net.now)
    assert pair.a.events_of(StreamReset) == []  # a asked; b's RESET_STREAM only answers it
    quiesce(pair)
    assert stream_id not in pair.sa.streams.send
    assert stream_id not in pair.sb.streams.send
    no_violations(pair.a, pair.b)


def test_stop_sending_alone_announces_a_unidirectional_stream() -> None:
    pair = lossy_pair(43, loss=0.0, duplicate=0.0)
    net = pair.net
    stream_id = pair.a.endpoint.session(pair.sid).open_stream(net.now, unidirectional=True)
    net.flush()
    net.run(0.5)
    # Nothing written yet: the STOP_SENDING alone opened the stream on b (§16.2).
    assert [e.stream_id for e in pair.b.events_of(StreamOpened)] == [stream_id]
    assert [e.sending for e in pair.b.events_of(StreamReset)] == [True]
    assert stream_id in pair.sb.streams.recv
    no_violations(pair.a, pair.b)
