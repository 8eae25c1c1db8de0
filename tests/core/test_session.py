"""One session's data path, close and address handling, driven through two endpoints."""

from __future__ import annotations

import hashlib
import itertools

import pytest

from seigr_stt.config import NodeConfig
from seigr_stt.constants import (
    CLOSE_AEAD_LIMIT_REACHED,
    CLOSE_ATTEMPTS,
    CLOSE_NORMAL,
    CLOSE_PROTOCOL_ERROR,
    CLOSE_REASON_MAX_BYTES,
    CLOSE_RETRANSMIT_S,
    INITIAL_WINDOW_PACKETS,
    STT_SESSION_STATE_CLOSED,
    STT_SESSION_STATE_CLOSING,
)
from seigr_stt.core.events import (
    DatagramReceived,
    HandshakeAborted,
    KeyRotated,
    MessageReceived,
    PeerAddressChanged,
    SessionClosed,
)
from seigr_stt.core.flow import MAX_CHANNEL, channel_stream_id
from seigr_stt.core.frames import (
    Close,
    Datagram,
    Stream,
    encode_varint,
    serialize_frames,
    varint_size,
)
from seigr_stt.core.packetizer import STREAM_FRAME_OVERHEAD
from seigr_stt.core.record import max_frames_size, parse_header
from seigr_stt.exceptions import (
    ConfigError,
    MessageTooLarge,
    SessionClosedError,
    SessionNotFound,
)
from tests.core.net import (
    DATA,
    INIT,
    Net,
    Pair,
    authentic_record,
    dgram,
    endpoint_snapshot,
    handshake_table,
    make_pair,
)

ROOM = (
    max_frames_size(1232) - STREAM_FRAME_OVERHEAD
)  # stream bytes of a record that carries only them
B_CHANNEL_0 = channel_stream_id(0, 1)  # the responder's message channel 0


def wire(message: bytes) -> bytes:
    """A message as its channel's stream carries it: QUIC-varint length, then the bytes."""
    return encode_varint(len(message)) + message


def messages(pair: Pair, node_name: str) -> list[tuple[int, bytes]]:
    node = pair.a if node_name == "A" else pair.b
    return [(e.channel, e.data) for e in node.events_of(MessageReceived)]


def stream_records(size: int) -> int:
    """Records a message of ``size`` bytes fills when nothing else shares them."""
    return max(1, -(-(varint_size(size) + size) // ROOM))


@pytest.mark.parametrize(
    "size",
    # ROOM - 2 fills one record exactly (a 2-byte length prefix), ROOM - 1 spills one byte.
    [0, 1, 63, 64, ROOM - 2, ROOM - 1, 3 * ROOM - 2, 3 * ROOM, 100 * 1024],
)
def test_message_sizes(size: int) -> None:
    pair = make_pair()
    payload = bytes((i * 31 + 7) % 251 for i in range(size))
    sent = pair.send(pair.a, payload, channel=3)
    records = stream_records(size)
    assert stream_records(ROOM - 2) == 1
    assert stream_records(ROOM - 1) == 2
    assert {p.type for p in sent} == {DATA}
    if records <= INITIAL_WINDOW_PACKETS:  # within the initial congestion window: all at once
        assert len(sent) == records
    else:  # the sender stops once the window is full, until acknowledgements come
        window = INITIAL_WINDOW_PACKETS * 1232
        assert sum(len(p.data) for p in sent[:-1]) < window <= sum(len(p.data) for p in sent)
        assert len(sent) < records
    pair.net.run(1.0)
    assert all(len(p.data) <= 1232 for p in pair.net.log)
    assert len(pair.net.sent_by(pair.a, DATA)) >= records
    assert messages(pair, "B") == [(3, payload)]
    assert pair.sb.counters.messages_received == 1
    assert pair.sa.counters.messages_sent == 1
    assert pair.sa.all_acknowledged
    assert pair.sa.send_buffered == 0


def test_many_messages_in_order_per_channel() -> None:
    pair = make_pair()
    expected: dict[int, list[bytes]] = {0: [], 1: [], 9: []}
    for i in range(60):
        channel = (0, 1, 9)[i % 3]
        data = f"msg {i} ".encode() * (i * 37 % 400)
        expected[channel].append(data)
        pair.b.endpoint.session(pair.sid).send_message(channel, data, pair.net.now)
        if i % 7 == 0:
            pair.net.flush()
    pair.net.flush()
    pair.net.run(0.1)
    got = messages(pair, "A")
    for channel, datas in expected.items():
        assert [d for c, d in got if c == channel] == datas
    assert len(got) == 60


def test_small_messages_coalesce_into_one_record(pair: Pair) -> None:
    for i in range(20):
        pair.a.endpoint.session(pair.sid).send_message(i % 2, b"m%d" % i, pair.net.now)
    sent = pair.net.flush_node(pair.a)
    assert [p.type for p in sent] == [DATA]
    pair.net.run(0.0)
    got = messages(pair, "B")
    assert len(got) == 20
    for channel in (0, 1):  # order holds per channel (each is its own stream)
        assert [d for c, d in got if c == channel] == [b"m%d" % i for i in range(channel, 20, 2)]
    assert pair.sb.counters.packets_received == 1
    assert pair.sa.counters.packets_sent == 1


def test_counters_agree_between_peers(pair: Pair) -> None:
    for i in range(10):
        pair.send(pair.a, b"x" * i * 300)
        pair.send(pair.b, b"y" * i)
    pair.net.run(0.5)
    sa, sb = pair.sa.counters, pair.sb.counters
    assert sa.packets_sent == sb.packets_received
    assert sb.packets_sent == sa.packets_received
    assert sa.bytes_sent == sb.bytes_received
    assert sa.messages_sent == sb.messages_received == 10
    assert sa.auth_failures == sb.auth_failures == 0


def test_max_message_size_on_send(pair: Pair) -> None:
    pair = make_pair(config=NodeConfig(max_message_size=1000))
    with pytest.raises(MessageTooLarge, match="max_message_size"):
        pair.a.endpoint.session(pair.sid).send_message(0, bytes(1001), pair.net.now)
    pair.send(pair.a, bytes(1000))
    pair.net.run(0.1)
    assert messages(pair, "B") == [(0, bytes(1000))]


def test_max_message_size_on_receive_closes_with_protocol_error() -> None:
    pair = make_pair(config_a=NodeConfig(max_message_size=1000))
    pair.send(pair.b, bytes(1500))
    pair.net.run(0.5)
    assert messages(pair, "A") == []
    [closed_a] = pair.a.events_of(SessionClosed)
    assert (closed_a.code, closed_a.by_peer) == (CLOSE_PROTOCOL_ERROR, False)
    assert "max_message_size" in closed_a.reason
    [closed_b] = pair.b.events_of(SessionClosed)
    assert (closed_b.code, closed_b.by_peer) == (CLOSE_PROTOCOL_ERROR, True)


def test_invalid_channel(pair: Pair) -> None:
    # A channel is a stream id shifted by two bits: the largest is 2**60 - 1.
    assert MAX_CHANNEL == (1 << 60) - 1
    for channel in (-1, MAX_CHANNEL + 1, (1 << 62) - 1, 1 << 62):
        with pytest.raises(ConfigError, match=r"stream_id must be within 0\.\.") as info:
            pair.a.endpoint.session(pair.sid).send_message(channel, b"x", pair.net.now)
        assert isinstance(info.value, ValueError)  # ConfigError is a ValueError
    assert pair.sa.counters.messages_sent == 0
    pair.send(pair.a, b"ok", channel=MAX_CHANNEL)
    pair.net.run(0.0)
    assert messages(pair, "B") == [(MAX_CHANNEL, b"ok")]


def test_too_many_channels_is_a_protocol_violation() -> None:
    pair = make_pair(config_a=NodeConfig(max_channels=2))
    for channel in range(3):
        pair.send(pair.b, b"c", channel=channel)
    pair.net.run(0.5)
    assert [c for c, _ in messages(pair, "A")] == [0, 1]
    [closed] = pair.a.events_of(SessionClosed)
    assert closed.code == CLOSE_PROTOCOL_ERROR
    assert "channels" in closed.reason


def test_datagrams(pair: Pair) -> None:
    limit = pair.sa.max_datagram_size
    assert limit == 1180
    with pytest.raises(MessageTooLarge, match="max_datagram_size"):
        pair.a.endpoint.session(pair.sid).send_datagram(bytes(limit + 1), pair.net.now)
    assert pair.sa.is_active
    pair.a.endpoint.session(pair.sid).send_datagram(
        bytes(range(256)) * 4 + bytes(limit - 1024), pair.net.now
    )
    pair.a.endpoint.session(pair.sid).send_datagram(b"", pair.net.now)
    pair.a.endpoint.session(pair.sid).ping(
        pair.net.now
    )  # shares the record budget with the datagram
    sent = pair.net.flush_node(pair.a)
    assert all(len(p.data) <= 1232 for p in sent)
    pair.net.run(0.0)
    got = [e.data for e in pair.b.events_of(DatagramReceived)]
    assert got == [bytes(range(256)) * 4 + bytes(limit - 1024), b""]
    assert pair.sa.counters.datagrams_sent == pair.sb.counters.datagrams_received == 2


def test_datagram_limit_follows_the_record_size() -> None:
    pair = make_pair(max_record_size=65536)
    assert pair.sa.max_datagram_size > 60_000
    pair.a.endpoint.session(pair.sid).send_datagram(bytes(pair.sa.max_datagram_size), pair.net.now)
    [packet] = pair.net.flush_node(pair.a)
    assert len(packet.data) <= 65536


def test_ping_measures_rtt() -> None:
    net = Net(delay_s=(0.05, 0.05))
    a, b = net.add_node("A"), net.add_node("B")
    sid = net.establish(a, b)
    net.run(1.0)
    a.endpoint.session(sid).ping(net.now)
    net.flush()
    net.run(1.0)
    rtt = a.session(sid).rtt_s
    assert rtt == pytest.approx(0.1)


def test_close_with_code_and_reason(pair: Pair) -> None:
    net, sid = pair.net, pair.sid
    sa, sb = pair.sa, pair.sb
    pair.a.endpoint.session(sid).close(42, "bye now", net.now)
    assert sa.state == STT_SESSION_STATE_CLOSING
    pair.a.endpoint.session(sid).close(7, "again", net.now)  # no error, no change
    net.flush()
    net.run(0.1)
    assert pair.b.events_of(SessionClosed) == [SessionClosed(sid, 42, "bye now", by_peer=True)]
    assert pair.a.events_of(SessionClosed) == [SessionClosed(sid, 42, "bye now", by_peer=False)]
    assert sa.state == sb.state == STT_SESSION_STATE_CLOSED
    assert sa.keys.erased
    assert sb.keys.erased
    for node in (pair.a, pair.b):
        assert sid not in node.endpoint.sessions
        assert node.endpoint.recently_closed(sid)
        assert node.endpoint.counters.sessions_closed == 1
        with pytest.raises(SessionNotFound):
            node.endpoint.session(sid).send_message(0, b"late", net.now)
    with pytest.raises(SessionClosedError) as info:
        sa.send_message(0, b"late", net.now)
    assert (info.value.code, info.value.reason) == (42, "bye now")
    with pytest.raises(SessionClosedError):
        sb.request_rotation(net.now)


def test_records_for_a_closed_session_are_dropped_as_tombstone(pair: Pair) -> None:
    straggler = authentic_record(pair.sa, b"")
    pair.b.endpoint.session(pair.sid).close(CLOSE_NORMAL, "", pair.net.now)
    pair.net.flush()
    pair.net.run(0.1)
    assert pair.net.inject(pair.b, straggler, "A") == []
    assert pair.b.endpoint.drops["tombstone"] == 1


def test_close_reason_is_truncated_to_its_limit(pair: Pair) -> None:
    pair.a.endpoint.session(pair.sid).close(9, "é" * 100, pair.net.now)
    pair.net.flush()
    pair.net.run(0.1)
    [closed] = pair.b.events_of(SessionClosed)
    assert closed.reason == "é" * (CLOSE_REASON_MAX_BYTES // 2)
    assert len(closed.reason.encode()) <= CLOSE_REASON_MAX_BYTES


def test_lost_close_is_retransmitted(pair: Pair) -> None:
    net = pair.net
    net.drop(lambda p: p.sender == "A" and p.type == DATA)
    start = net.now
    pair.a.endpoint.session(pair.sid).close(5, "going", net.now)
    net.flush()
    net.run(2.0)
    closes = net.sent_by(pair.a, DATA)
    assert [p.fate for p in closes] == ["filtered", "delivered"]
    assert closes[1].sent_at - start == pytest.approx(CLOSE_RETRANSMIT_S)
    assert pair.b.events_of(SessionClosed) == [SessionClosed(pair.sid, 5, "going", True)]
    assert pair.a.events_of(SessionClosed) == [SessionClosed(pair.sid, 5, "going", False)]


def test_closer_gives_up_after_close_attempts_when_the_peer_is_gone(pair: Pair) -> None:
    net = pair.net
    sa = pair.sa
    net.kill(pair.b)
    start = net.now
    pair.a.endpoint.session(pair.sid).close(1, "", net.now)
    net.flush()
    net.run(10.0)
    closes = net.sent_by(pair.a, DATA)
    assert len(closes) == CLOSE_ATTEMPTS
    assert [round(p.sent_at - start, 6) for p in closes] == [
        round(i * CLOSE_RETRANSMIT_S, 6) for i in range(CLOSE_ATTEMPTS)
    ]
    [(t, closed)] = pair.a.timed_events_of(SessionClosed)
    assert t == pytest.approx(start + CLOSE_ATTEMPTS * CLOSE_RETRANSMIT_S)
    assert (closed.code, closed.by_peer) == (1, False)
    assert sa.state == STT_SESSION_STATE_CLOSED
    assert pair.sid not in pair.a.endpoint.sessions


def test_simultaneous_close(pair: Pair) -> None:
    pair.a.endpoint.session(pair.sid).close(11, "a", pair.net.now)
    pair.b.endpoint.session(pair.sid).close(12, "b", pair.net.now)
    pair.net.flush()
    pair.net.run(2.0)
    assert pair.a.events_of(SessionClosed) == [SessionClosed(pair.sid, 11, "a", False)]
    assert pair.b.events_of(SessionClosed) == [SessionClosed(pair.sid, 12, "b", False)]
    assert not pair.a.endpoint.sessions
    assert not pair.b.endpoint.sessions


def test_close_during_handshake_reports_a_refusal(net: Net) -> None:
    a, b = net.add_node("A"), net.add_node("B")
    net.drop(lambda p: p.type == DATA)
    handle = net.connect(a, b)
    net.run(0.0)
    [sid] = a.endpoint.sessions
    a.endpoint.session(sid).close(0, "changed my mind", net.now)
    net.flush()
    assert a.events_of(HandshakeAborted) == [
        HandshakeAborted(handle, "changed my mind", timeout=False)
    ]
    [closed] = a.events_of(SessionClosed)
    assert closed.session_id == sid
    assert net.sent_by(a, DATA) == []  # nothing to tell a peer that never confirmed


def test_address_change_follows_authenticated_records(pair: Pair) -> None:
    net = pair.net
    net.move(pair.b, "B-new")
    pair.send(pair.b, b"from a new port")
    net.run(0.0)
    assert pair.a.events_of(PeerAddressChanged) == [PeerAddressChanged(pair.sid, "B", "B-new")]
    assert pair.sa.addr == "B-new"
    assert messages(pair, "A") == [(0, b"from a new port")]
    sent = pair.send(pair.a, b"reply")
    assert {p.dst for p in sent} == {"B-new"}


def test_unauthenticated_or_replayed_records_never_move_the_session(pair: Pair) -> None:
    net = pair.net
    [delivered] = pair.send(pair.b, b"hello")
    net.drop(lambda p: p.sender == "B")
    [held] = pair.send(pair.b, b"held back")
    net.run(0.0)
    flipped = held.data[:-1] + bytes([held.data[-1] ^ 0x80])
    assert net.inject(pair.a, flipped, "EVIL") == []
    assert net.inject(pair.a, delivered.data, "EVIL") == []  # a replay from elsewhere
    assert pair.sa.addr == "B"
    assert pair.a.events_of(PeerAddressChanged) == []
    assert pair.a.endpoint.drops == {"auth": 1, "replay": 1}
    net.deliver_held(held)
    assert messages(pair, "A") == [(0, b"hello"), (0, b"held back")]
    assert pair.sa.addr == "B"


@pytest.mark.parametrize(
    ("frames", "plaintext", "reason"),
    [
        (b"\xff", None, "unknown frame type"),
        (b"\x03\x00\x00\x03\x01a", None, "unknown frame type"),  # the retired MESSAGE
        (b"\x07\x03\x00\x00\x09ab", None, "exceeds"),  # a stream frame cut short
        (b"", bytes(16), "inner type"),
    ],
)
def test_authenticated_garbage_closes_with_protocol_error(
    pair: Pair, frames: bytes, plaintext: bytes | None, reason: str
) -> None:
    record = authentic_record(pair.sb, frames, plaintext=plaintext)
    sent = pair.net.inject(pair.a, record, "B")
    assert [p.type for p in sent] == [DATA]  # the CLOSE
    assert pair.sa.counters.receive_errors == 1
    pair.net.run(0.5)
    [closed] = pair.b.events_of(SessionClosed)
    assert closed.code == CLOSE_PROTOCOL_ERROR
    assert closed.by_peer
    if reason != "inner type":
        assert reason in closed.reason
    assert pair.sid not in pair.a.endpoint.sessions


def test_requested_rotation_is_confirmed_on_both_sides(pair: Pair) -> None:
    key_before = pair.sa.keys.session_key
    target = pair.a.endpoint.session(pair.sid).request_rotation(pair.net.now)
    assert target == 1
    assert pair.a.endpoint.session(pair.sid).request_rotation(pair.net.now) in (1, 2)
    pair.net.flush()
    pair.net.run(0.5)
    assert pair.a.events_of(KeyRotated)[0] == KeyRotated(pair.sid, 1)
    assert pair.b.events_of(KeyRotated)[0] == KeyRotated(pair.sid, 1)
    assert pair.sa.key_version == pair.sb.key_version >= 1
    assert pair.sa.keys.session_key == pair.sb.keys.session_key != key_before
    pair.send(pair.a, b"after rotation")
    pair.net.run(0.1)
    assert messages(pair, "B") == [(0, b"after rotation")]


def test_a_second_request_while_pending_returns_the_same_target(pair: Pair) -> None:
    net = pair.net
    net.drop(lambda p: p.sender == "B", times=1000)
    assert pair.a.endpoint.session(pair.sid).request_rotation(net.now) == 1
    net.flush()
    assert pair.sa.keys.rotation_pending
    assert pair.a.endpoint.session(pair.sid).request_rotation(net.now) == 2
    assert pair.a.endpoint.session(pair.sid).request_rotation(net.now) == 2
    net.flush()
    net.run(0.5)
    assert pair.sa.key_version == 1  # the second waits for the peer's echo


def test_a_lost_record_of_a_long_message_is_retransmitted(pair: Pair) -> None:
    net = pair.net
    b_records = itertools.count()
    net.drop(lambda p: p.sender == "B" and next(b_records) == 1)  # the middle record
    payload = bytes(range(256)) * (3 * ROOM // 256 + 1)
    payload = payload[: 3 * ROOM - 2]
    sent = pair.send(pair.b, payload)
    assert [p.fate for p in sent] == ["in_flight", "filtered", "in_flight"]
    pair.send(pair.b, b"next")
    net.run(1.0)
    assert messages(pair, "A") == [(0, payload), (0, b"next")]
    counters = pair.sb.counters
    assert counters.packets_lost == 1
    assert counters.retransmitted_bytes == ROOM  # exactly the lost record's stream bytes
    assert pair.sb.all_acknowledged
    assert pair.sa.counters.messages_received == 2


def test_a_lost_single_record_message_arrives_in_order(pair: Pair) -> None:
    net = pair.net
    net.delay_s = (0.01, 0.01)
    pair.send(pair.b, b"m0")
    net.drop(lambda p: p.sender == "B")
    [dropped] = pair.send(pair.b, b"m1")
    assert dropped.fate == "filtered"
    pair.send(pair.b, b"m2")
    net.run(0.025)  # m0 and m2 arrived; the ACK of m2 is on its way back
    assert [d for _, d in messages(pair, "A")] == [b"m0"]  # m2 waits for m1
    net.run(1.0)
    assert [d for _, d in messages(pair, "A")] == [b"m0", b"m1", b"m2"]
    assert pair.sb.counters.packets_lost == 1
    assert pair.sb.counters.retransmitted_bytes == len(wire(b"m1"))


def test_a_lost_first_record_delays_everything_after_it(pair: Pair) -> None:
    net = pair.net
    net.delay_s = (0.01, 0.01)
    net.drop(lambda p: p.sender == "B")
    payload = hashlib.sha256(b"seed").digest() * (3 * ROOM // 32)
    pair.send(pair.b, payload)
    pair.send(pair.b, b"next")
    net.run(0.025)  # everything but the first record arrived, and was acknowledged
    assert messages(pair, "A") == []
    assert pair.sb.counters.packets_lost == 1  # three later records acknowledged: lost
    net.run(1.0)
    assert messages(pair, "A") == [(0, payload), (0, b"next")]
    assert pair.sb.counters.packets_lost == 1


def test_a_late_copy_after_the_retransmission_is_not_delivered_twice(pair: Pair) -> None:
    net = pair.net
    net.drop(lambda p: p.sender == "B")
    [late] = pair.send(pair.b, b"m0")
    pair.send(pair.b, b"m1")
    net.run(1.0)
    assert [d for _, d in messages(pair, "A")] == [b"m0", b"m1"]
    # Its counter was never seen: authenticated, and acknowledged at once (out of order).
    assert [p.type for p in net.deliver_held(late)] == [DATA]
    assert pair.a.endpoint.drops == {}
    net.run(1.0)
    assert [d for _, d in messages(pair, "A")] == [b"m0", b"m1"]


def test_stream_frames_out_of_order_deliver_each_message_once_in_order(pair: Pair) -> None:
    data = wire(b"first") + wire(b"") + wire(b"third message")
    cut1, cut2 = 4, 9
    pieces = [
        Stream(B_CHANNEL_0, cut2, False, data[cut2:]),
        Stream(B_CHANNEL_0, cut1, False, data[cut1:cut2]),
        Stream(B_CHANNEL_0, 0, False, data[: cut2 - 1]),  # overlaps the piece before
        Stream(B_CHANNEL_0, 0, False, data),  # a full duplicate
    ]
    delivered: list[list[bytes]] = []
    for piece in pieces:
        pair.net.inject(pair.a, authentic_record(pair.sb, serialize_frames([piece])), "B")
        delivered.append([d for _, d in messages(pair, "A")])
    whole = [b"first", b"", b"third message"]
    assert delivered == [[], [], whole, whole]
    assert pair.sa.counters.messages_received == 3
    assert pair.sa.is_active


def test_repr_hides_keys(pair: Pair) -> None:
    text = repr(pair.sa)
    assert pair.sid.hex() in text
    send = pair.sa.keys._send  # white-box on purpose: the secret must not reach the repr
    assert send is not None
    assert send.key.hex() not in text


def test_frames_after_a_close_in_the_same_record_are_ignored(pair: Pair) -> None:
    frames = serialize_frames([Close(6, "done"), Datagram(b"too late")])
    pair.net.inject(pair.a, authentic_record(pair.sb, frames), "B")
    assert pair.a.events_of(DatagramReceived) == []
    assert pair.a.events_of(SessionClosed) == [SessionClosed(pair.sid, 6, "done", True)]


def test_data_arriving_while_closing_is_not_delivered(pair: Pair) -> None:
    pair.a.endpoint.session(pair.sid).close(0, "", pair.net.now)
    frames = serialize_frames([Datagram(b"dgram"), Stream(B_CHANNEL_0, 0, False, wire(b"m"))])
    pair.net.inject(pair.a, authentic_record(pair.sb, frames), "B")
    assert pair.a.events_of(DatagramReceived) == []
    assert pair.a.events_of(MessageReceived) == []
    assert pair.sa.state == STT_SESSION_STATE_CLOSING


def test_protocol_violation_while_closing_does_not_close_twice(pair: Pair) -> None:
    pair.a.endpoint.session(pair.sid).close(8, "mine", pair.net.now)
    pair.net.inject(pair.a, authentic_record(pair.sb, b"\xff"), "B")
    assert pair.sa.close_code == 8
    assert pair.sa.counters.receive_errors == 0


def test_a_closed_session_has_no_timer_and_ignores_timers(pair: Pair) -> None:
    sa = pair.sa
    pair.a.endpoint.session(pair.sid).abort(0, "")
    assert sa.get_timer() is None
    sa.handle_timer(pair.net.now + 1000)
    assert sa.flush(pair.net.now + 1000) == []
    assert sa.receive_record(b"", parse_header(authentic_record(pair.sb, b"")), "B", 0.0) == (
        "closed_session"
    )


def test_early_timer_calls_in_handshake_and_closing_states(net: Net) -> None:
    a, b = net.add_node("A"), net.add_node("B")
    net.drop(lambda p: p.type == DATA, times=1)
    net.connect(a, b)
    net.run(0.0)
    [session] = a.endpoint.sessions.values()
    # In its handshake the session has no deadline of its own: the endpoint's handshake table
    # retransmits FINAL and gives up; calling the session's timer early does nothing.
    assert session.get_timer() is None
    [(retry_at, _)] = handshake_table(a.endpoint, "confirming").values()
    assert a.endpoint.get_timer() == retry_at
    before = endpoint_snapshot(a.endpoint)
    session.handle_timer(retry_at - 0.5)
    assert session.flush(retry_at - 0.5) == []
    a.endpoint.handle_timer(retry_at - 0.5)
    assert a.endpoint.datagrams_to_send(retry_at - 0.5) == []
    assert endpoint_snapshot(a.endpoint) == before
    net.run(2.0)
    assert session.is_active
    session.close(0, "", net.now)
    session.flush(net.now)
    deadline = session.get_timer()
    assert deadline is not None
    session.handle_timer(deadline - 0.1)
    assert session.flush(deadline - 0.1) == []
    assert session.state == STT_SESSION_STATE_CLOSING


def test_the_handshake_round_trip_seeds_both_sides_rtt() -> None:
    net = Net(seed=5, delay_s=(0.02, 0.02))  # 40 ms round trips from the first packet on
    a, b = net.add_node("A"), net.add_node("B")
    sid = net.establish(a, b)
    # INIT -> RESPONSE for the initiator, RESPONSE -> FINAL for the responder: no ACK needed.
    assert a.session(sid).rtt_s == pytest.approx(0.04)
    assert b.session(sid).rtt_s == pytest.approx(0.04)


def test_a_resent_handshake_packet_gives_no_rtt_sample() -> None:
    # Karn's rule: with the first INIT lost, which INIT the RESPONSE answers is unknown.
    net = Net(seed=6, delay_s=(0.02, 0.02))
    a, b = net.add_node("A"), net.add_node("B")
    net.drop(lambda p: p.type == INIT)
    sid = net.establish(a, b)
    assert a.session(sid).rtt_s is None
    assert b.session(sid).rtt_s == pytest.approx(0.04)  # its RESPONSE went out once


# -- the AEAD integrity limit (RFC 9001 §6.6) ----------------------------------------------------
def forgery(pair: Pair, counter: int) -> bytes:
    """A record of the session, from b, with a valid header and a bad tag."""
    record = authentic_record(pair.sb, dgram(b"forged"), counter=counter)
    return record[:-1] + bytes([record[-1] ^ 1])


def test_too_many_forgeries_under_one_key_close_the_session(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("seigr_stt.core.session.AEAD_INTEGRITY_LIMIT", 3)
    net = pair.net
    base = 1 << 30  # counters never used, so the replay check lets every forgery reach the AEAD
    for i in range(2):
        net.inject(pair.a, forgery(pair, base + i), "B")
    assert pair.sa.is_active
    assert pair.a.endpoint.drops == {"auth": 2}
    # A rotation brings a new key: its count starts over.
    pair.a.endpoint.session(pair.sid).request_rotation(net.now)
    pair.send(pair.a, b"in the new epoch")
    net.run(0.5)
    assert pair.sa.keys.recv_epoch == pair.sb.keys.send_epoch == 1
    for i in range(2):
        net.inject(pair.a, forgery(pair, base + 10 + i), "B")
    assert pair.sa.is_active
    session = pair.sa
    net.inject(pair.a, forgery(pair, base + 20), "B")  # the third under this key
    net.run(1.0)
    [closed] = pair.a.events_of(SessionClosed)
    assert (closed.code, closed.by_peer) == (CLOSE_AEAD_LIMIT_REACHED, False)
    assert session.counters.auth_failures == 5
    [peer_closed] = pair.b.events_of(SessionClosed)
    assert (peer_closed.code, peer_closed.by_peer) == (CLOSE_AEAD_LIMIT_REACHED, True)
