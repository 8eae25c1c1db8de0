"""A session over a reliable transport (WebSocket, §14.8, §15.4), in the simulator: no loss
detection, congestion window or pacing, ACKs at a bounded rate, records up to the link's size;
and what a move to an unreliable path takes back (every record never acknowledged is resent)."""

from __future__ import annotations

import hashlib

from seigr_stt.constants import (
    INITIAL_WINDOW_PACKETS,
    RELIABLE_ACK_INTERVAL_S,
    WEBSOCKET_MAX_RECORD_SIZE,
    PacketType,
)
from seigr_stt.core.events import StreamDataReceived
from seigr_stt.core.link import Link, SendRoom, TransportKind
from seigr_stt.core.record import max_frames_size
from seigr_stt.core.recovery import AckTracker
from seigr_stt.testing import Net, Node

DELAY_S = 0.01  # one way: a constant delay, so the in-memory link keeps order and loses nothing


def reliable_pair(net: Net) -> tuple[Node, Node, bytes]:
    kind = TransportKind.WEBSOCKET
    size = WEBSOCKET_MAX_RECORD_SIZE
    a = net.add_node("a", kind=kind, max_record_size=size)
    b = net.add_node("b", kind=kind, max_record_size=size)
    return a, b, net.establish(a, b)


def received(node: Node, stream_id: int) -> bytes:
    return b"".join(e.data for e in node.events_of(StreamDataReceived) if e.stream_id == stream_id)


def test_a_link_knows_whether_it_is_reliable() -> None:
    assert Link(TransportKind.WEBSOCKET, 65536).reliable
    assert not Link(TransportKind.UDP, 1400).reliable
    assert not Link(TransportKind.RELAY, 1400).reliable  # a relay drops when its queue is full


def test_bulk_over_a_reliable_link_has_no_window_no_loss_timer_and_few_acks() -> None:
    net = Net(delay_s=(DELAY_S, DELAY_S))
    a, b, sid = reliable_pair(net)
    session = a.session(sid)
    assert session.packetizer.reliable_path
    assert b.session(sid).acks.reliable
    cwnd = session.packetizer.cc.cwnd
    stream = session.open_stream(net.now)
    data = hashlib.shake_256(b"reliable").digest(3 * 1024 * 1024)
    sent_before = len(net.sent_by(a, PacketType.DATA))
    b_before = len(net.sent_by(b, PacketType.DATA))
    start = net.now
    session.write_stream(stream, data, True, net.now)
    first = net.flush_node(a)
    # No congestion window: the first flush sends the whole stream credit (1 MiB) at once, in
    # records of the link's size, far beyond the initial window of 10 records.
    assert len(first) > INITIAL_WINDOW_PACKETS
    assert sum(len(p.data) for p in first) >= 1024 * 1024
    assert max(len(p.data) for p in first) > WEBSOCKET_MAX_RECORD_SIZE - 200
    # Nothing but the ACK timer, idle and heartbeat deadlines: no pacing, no loss timer.
    assert session.recovery.get_timer() is None
    assert session.packetizer.pace_at() is None
    while received(b, stream) != data and net.now < start + 10:
        net.run(0.005)
    assert received(b, stream) == data
    elapsed = net.now - start
    assert session.counters.packets_lost == 0
    assert session.counters.retransmitted_bytes == 0
    assert session.packetizer.cc.cwnd == cwnd  # never grown nor cut: not used
    # The receiver's records (its ACKs ride on them) are bounded by the ACK interval plus its
    # flow-control updates (one per half stream window read), not one per two records.
    a_records = len(net.sent_by(a, PacketType.DATA)) - sent_before
    b_records = len(net.sent_by(b, PacketType.DATA)) - b_before
    credit_updates = 2 * len(data) // (512 * 1024)
    assert b_records <= elapsed / RELIABLE_ACK_INTERVAL_S + credit_updates + 2
    assert b_records < a_records
    # Everything was acknowledged in the end: nothing is kept.
    net.run(1.0)
    assert session.recovery.bytes_in_flight == 0
    assert session.send_buffered == 0


def test_the_receiver_acks_after_the_interval_not_every_second_record() -> None:
    acks = AckTracker()
    acks.reliable = True
    for counter in range(10):
        acks.on_received(counter, True, 5.0)
    assert acks.ack_due_at == 5.0 + RELIABLE_ACK_INTERVAL_S
    acks.on_received(12, True, 5.01)  # a gap is no reason for an ACK either
    assert acks.ack_due_at == 5.0 + RELIABLE_ACK_INTERVAL_S
    acks.build(5.03)
    assert acks.ack_due_at is None
    acks.on_received(13, False, 5.04)  # not ack-eliciting: no ACK owed
    assert acks.ack_due_at is None


def _writer_on_a_link(capacity: int) -> tuple[Net, Node, bytes, SendRoom, int]:
    """A reliable pair whose first side sends into a link queue of ``capacity`` bytes, with a
    byte stream open: (net, that side, session id, its queue's room, stream id)."""
    net = Net(delay_s=(DELAY_S, DELAY_S))
    a, _b, sid = reliable_pair(net)
    session = a.session(sid)
    room = SendRoom(capacity)
    session.packetizer.set_reliable(True, room)
    return net, a, sid, room, session.open_stream(net.now)


def test_stream_data_waits_for_room_in_the_links_send_queue() -> None:
    net, a, sid, room, stream = _writer_on_a_link(3 * WEBSOCKET_MAX_RECORD_SIZE)
    session = a.session(sid)
    session.write_stream(stream, bytes(1024 * 1024), False, net.now)
    records = session.flush(net.now)
    assert len(records) == 3  # as many whole records as the queue takes
    room.bytes = WEBSOCKET_MAX_RECORD_SIZE - 1  # the adapter queued them: less than a record
    assert session.flush(net.now) == []
    assert room.held == [sid]  # waiting for room
    room.bytes = 10 * WEBSOCKET_MAX_RECORD_SIZE  # the writer sent them
    a.endpoint.room_available(room)
    assert room.held == []
    assert len(a.endpoint.datagrams_to_send(net.now)) == 10


def test_the_tail_of_a_write_waits_while_the_queue_is_not_empty() -> None:
    """§15.4: 64 KiB writes make one full record each, not a full one and a tail of 49 bytes:
    the tail waits (corked) while the link's queue holds something, and the next write fills
    its record. The last tail leaves as soon as the queue is empty."""
    net, a, sid, room, stream = _writer_on_a_link(16 * WEBSOCKET_MAX_RECORD_SIZE)
    session = a.session(sid)
    full = max_frames_size(WEBSOCKET_MAX_RECORD_SIZE)
    records: list[bytes] = []
    for _ in range(8):
        session.write_stream(stream, bytes(65536), False, net.now)
        built = [record for record, _addr in session.flush(net.now)]
        assert room.corked == [sid]  # a tail is held back
        records += built
        room.bytes = room.capacity - sum(map(len, built))  # the adapter queued them
    assert len(records) == 8  # one per write (without the cork: 16)
    assert all(len(record) > full for record in records)  # every one full
    assert session.flush(net.now) == []  # the tail waits while the queue is not empty
    room.bytes = room.capacity // 2  # the writer sent some: not empty yet
    a.endpoint.room_available(room)
    assert room.corked == [sid]
    room.bytes = room.capacity  # empty
    a.endpoint.room_available(room)
    assert room.corked == []
    (tail,) = a.endpoint.datagrams_to_send(net.now)
    assert len(tail[0]) < 1024  # 8 x 64 KiB - 8 full records of stream data
    assert session.streams.unsent == 0


def test_a_write_into_an_empty_queue_is_not_held_back() -> None:
    """No added latency: with nothing queued, a small write leaves at once."""
    net, a, sid, room, stream = _writer_on_a_link(16 * WEBSOCKET_MAX_RECORD_SIZE)
    session = a.session(sid)
    session.write_stream(stream, b"ping", False, net.now)
    assert len(session.flush(net.now)) == 1
    assert room.corked == []


def test_records_a_dead_reliable_link_never_delivered_are_resent_after_a_move() -> None:
    """The contract a migration relies on: unacknowledged records are kept on a reliable
    link, and once the session's path is unreliable again loss detection finds and resends
    the ones the peer never got."""
    net = Net(delay_s=(DELAY_S, DELAY_S))
    a, b, sid = reliable_pair(net)
    session = a.session(sid)
    stream = session.open_stream(net.now)
    net.run(0.1)
    data = hashlib.shake_256(b"moved").digest(200_000)
    net.filters.append(lambda packet: packet.sender == "a")  # the connection dies
    session.write_stream(stream, data, True, net.now)
    net.flush_node(a)
    net.run(0.5)
    assert received(b, stream) == b""
    assert session.recovery.bytes_in_flight >= len(data)  # kept, with no timer to resend it
    assert session.recovery.get_timer() is None
    net.filters.clear()
    # The move: the new path is not reliable (a migration also starts its window over).
    session.packetizer.set_reliable(False)
    session.packetizer.new_path(session.pmtu)
    assert not session.acks.reliable
    # The probe timeout of the records kept is long past: the session probes at once.
    timer = session.get_timer()
    assert timer is not None
    assert timer <= net.now
    session.handle_timer(net.now)
    net.flush_node(a)
    deadline = net.now + 30
    while received(b, stream) != data and net.now < deadline:
        net.run(0.05)
    assert received(b, stream) == data
    assert session.counters.retransmitted_bytes >= len(data)
