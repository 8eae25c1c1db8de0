"""A hostile member: records sealed with its genuine keys, crafted to cost the peer CPU or memory
(security audit 2026-12, F1, F2, F7, F10, F11). Each test bounds work or bytes, never time."""

from __future__ import annotations

import pytest

from seigr_stt.config import NodeConfig
from seigr_stt.constants import (
    CLOSE_PROTOCOL_ERROR,
    MAX_FRAMES_PER_RECORD,
    REASSEMBLY_MIN_FRAGMENTS,
    SessionState,
)
from seigr_stt.core import flow as flow_module
from seigr_stt.core.events import MessageReceived
from seigr_stt.core.flow import StreamTable, channel_stream_id
from seigr_stt.core.frames import (
    Ack,
    Frame,
    MaxData,
    Ping,
    Pong,
    Stream,
    parse_frames,
    serialize_frames,
)
from seigr_stt.core.handshake import InitiatorHandshake, ResponderHandshake
from seigr_stt.core.identity import NodeIdentity, SharedSecrets
from seigr_stt.core.record import open_record, parse_header
from seigr_stt.core.session import Session
from seigr_stt.testing import SHARED_SEED, Packet, make_seed, seeded_rng
from tests.core.net import DATA, FINAL, INIT, RESPONSE, Net, Pair, authentic_record, make_pair

SMALL = NodeConfig(stream_window=64 * 1024, session_window=256 * 1024)
B_CHANNEL_0 = channel_stream_id(0, 1)  # the responder's message channel 0, as A receives it


def send_from_b(pair: Pair, frames: list[Frame]) -> list[Packet]:
    """One record of ``frames`` from B to A, sealed with B's genuine keys; A's answers."""
    record = authentic_record(pair.sb, serialize_frames(frames))
    return pair.net.inject(pair.a, record, "B")


def closed_with(pair: Pair, code: int) -> bool:
    """A closed the session (or is closing it) with ``code``."""
    return pair.sa.state != SessionState.ACTIVE and pair.sa.close_code == code


def frames_of(session: Session, packets: list[Packet]) -> list[Frame]:
    """The frames of the records ``packets`` carry, opened with ``session``'s receive key."""
    frames: list[Frame] = []
    for packet in packets:
        if packet.type != DATA:
            continue
        header = parse_header(packet.data)
        selected = session.keys.select_receive_key(header.epoch, 0.0)
        assert selected is not None
        frames += parse_frames(open_record(selected[1], packet.data, header.counter))
    return frames


# -- F1, F2: reassembly ----------------------------------------------------------------------
def test_overlapping_chunks_are_stored_once_and_never_beyond_the_window() -> None:
    pair = make_pair(config=SMALL)
    chunk = 1160
    for first in range(1, 4001, 250):  # 4,000 chunks of 1,160 bytes, one at every offset
        frames: list[Frame] = [
            Stream(B_CHANNEL_0, offset, False, bytes(chunk)) for offset in range(first, first + 250)
        ]
        send_from_b(pair, frames)
    stream = pair.sa.streams.recv[B_CHANNEL_0]
    assert pair.sa.state == SessionState.ACTIVE
    assert stream.buffered_ahead == 4000 + chunk - 1  # the union of the chunks, each byte once
    assert stream.held_bytes <= SMALL.stream_window  # the attacker sent 4.6 MB for this
    assert stream.fragments == 1


def test_scattered_chunks_beyond_the_fragment_cap_close_the_session() -> None:
    pair = make_pair(config=SMALL)
    cap = max(REASSEMBLY_MIN_FRAGMENTS, SMALL.stream_window // 1024)
    offsets = range(1, 2 * (cap + 1), 2)  # cap + 1 one-byte chunks with a gap before each
    send_from_b(pair, [Stream(B_CHANNEL_0, offset, False, b"x") for offset in offsets])
    assert closed_with(pair, CLOSE_PROTOCOL_ERROR)
    assert pair.sa.close_reason == "too many out-of-order fragments"


def test_the_fragment_cap_leaves_room_for_loss_in_a_window() -> None:
    # A record lost in every other slot of a full window: the receiver holds a fragment per
    # record that arrived, and the cap allows it.
    pair = make_pair(config=SMALL)
    record = 1100
    offsets = range(record, SMALL.stream_window - record, 2 * record)
    for offset in offsets:
        send_from_b(pair, [Stream(B_CHANNEL_0, offset, False, bytes(record))])
    assert pair.sa.state == SessionState.ACTIVE
    assert pair.sa.streams.recv[B_CHANNEL_0].fragments == len(offsets)


# -- F7: per-frame work ------------------------------------------------------------------------
def test_a_record_of_max_data_frames_does_not_visit_every_stream(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pair = make_pair(config=SMALL)
    # One STREAM frame naming B's stream 255 makes A hold 256 streams with a send half each.
    send_from_b(pair, [Stream((255 << 2) | 1, 0, False, b"x")])
    assert len(pair.sa.streams.send) == 256
    calls = [0]
    real = StreamTable.schedule

    def counting(self: StreamTable, stream_id: int) -> None:
        calls[0] += 1
        real(self, stream_id)

    monkeypatch.setattr(flow_module.StreamTable, "schedule", counting)
    base = pair.sa.streams.peer_max_data
    frames: list[Frame] = [MaxData(base + i) for i in range(1, MAX_FRAMES_PER_RECORD)]
    send_from_b(pair, frames)
    assert pair.sa.streams.peer_max_data == base + MAX_FRAMES_PER_RECORD - 1
    assert calls[0] == 0  # no stream waited for session credit: nothing to requeue


def test_a_record_of_pings_gets_one_pong_with_the_latest_token() -> None:
    pair = make_pair()
    answers = send_from_b(pair, [Ping(token) for token in range(1, MAX_FRAMES_PER_RECORD + 1)])
    pongs = [f for f in frames_of(pair.sb, answers) if isinstance(f, Pong)]
    assert pongs == [Pong(MAX_FRAMES_PER_RECORD)]


@pytest.mark.parametrize(
    "frames",
    [
        [Ping(1)] * (MAX_FRAMES_PER_RECORD + 1),
        [Ack(0, ((0, 0),)), Ack(0, ((0, 0),))],
    ],
    ids=["too-many-frames", "two-acks"],
)
def test_records_beyond_the_per_record_limits_close_the_session(frames: list[Frame]) -> None:
    pair = make_pair()
    send_from_b(pair, frames)
    assert closed_with(pair, CLOSE_PROTOCOL_ERROR)


# -- F10: session ids ----------------------------------------------------------------------
def test_two_sessions_of_a_member_cannot_share_an_id() -> None:

    net = Net(seed=3)
    v = net.add_node("V")
    m = net.add_node("M", accept_incoming=False)
    net.kill(m)  # M is played by hand below
    secrets = SharedSecrets.from_seed(SHARED_SEED)
    m_identity = NodeIdentity.from_seed(make_seed("M"))
    rng = seeded_rng("m")
    net.connect(v, m)  # V's INIT to M, with V's index L1
    [v_init] = [p for p in net.log if p.type == INIT and p.sender == "V"]
    l1 = v_init.data[4:8]
    # M initiates to V with V's own index L1 as its index; V answers with its index LA.
    m_init = InitiatorHandshake(m_identity, secrets, l1, capabilities=0, timestamp_ns=1, rng=rng)
    [response] = [p for p in net.inject(v, m_init.init_packet(), "M") if p.type == RESPONSE]
    la = response.data[4:8]
    final = m_init.receive_response(response.data)
    net.inject(v, final, "M")
    assert l1 + la in v.endpoint.sessions
    # M now answers V's INIT with LA as its responder index: the same id L1 || LA.
    m_response = ResponderHandshake(m_identity, secrets, la, v_init.data, capabilities=0, rng=rng)
    answers = net.inject(v, m_response.response_packet, "M")
    assert [p for p in answers if p.type == FINAL] == []
    assert v.endpoint.drops["session_id_in_use"] == 1
    assert len(v.endpoint.sessions) == 1
    assert not v.endpoint.sessions[l1 + la].initiator  # the first session, untouched


# -- F11: early credit ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("count", "size", "max_message"),
    [(3, 400 * 1024, 512 * 1024), (8, 128 * 1024, 128 * 1024)],
    ids=["3x400KiB", "8x128KiB-at-the-maximum"],
)
def test_many_large_messages_at_once_all_arrive(count: int, size: int, max_message: int) -> None:
    # Messages far beyond the stream window on several channels at once, the receiving
    # application taking everything: early credit, one channel at a time, never stalls.
    config = NodeConfig(
        stream_window=64 * 1024, session_window=256 * 1024, max_message_size=max_message
    )
    pair = make_pair(config=config)
    payloads = [bytes([i]) * size for i in range(count)]
    for channel, payload in enumerate(payloads):
        pair.sa.send_message(channel, payload, pair.net.now)
    pair.net.flush()
    pair.net.run(30.0)
    got = {e.channel: e.data for e in pair.b.events_of(MessageReceived)}
    assert got == dict(enumerate(payloads))


def test_an_application_that_takes_nothing_holds_at_most_the_windows_and_one_message() -> None:
    config = NodeConfig(
        stream_window=64 * 1024, session_window=256 * 1024, max_message_size=192 * 1024
    )
    pair = make_pair(config=config)
    pair.b.auto_consume = False
    for i in range(40):  # 40 messages of 160 KiB on 8 channels: 6.4 MB offered
        pair.sa.send_message(i % 8, bytes(160 * 1024), pair.net.now)
    pair.net.flush()
    pair.net.run(30.0)
    delivered = sum(len(e.data) for e in pair.b.events_of(MessageReceived))
    partial = sum(len(p.buffer) for p in pair.sb.channels.parsers.values())
    ahead = sum(s.held_bytes for s in pair.sb.streams.recv.values())
    # The session window, a stream window per channel with an incomplete message (8 here) and
    # one maximum message (MessageChannels): not the 6.4 MB offered.
    bound = config.session_window + 8 * config.stream_window + config.max_message_size
    assert delivered + partial + ahead <= bound
    assert pair.sb.channels.held_early + pair.sb.channels.precredited <= config.max_message_size
