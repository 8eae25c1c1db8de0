"""Building records (``docs/protocol.md`` §5, §14, §15): what a :class:`RecordBuilder` puts in a
record and in which order, and the delivery callbacks that bring lost frames back (a lost credit
frame announces the *current* value; a lost RESET_STREAM goes out again; one-shot frames never
do)."""

from __future__ import annotations

import pytest

from seigr_stt.config import SessionConfig
from seigr_stt.constants import INITIAL_WINDOW_PACKETS
from seigr_stt.core import crypto
from seigr_stt.core.events import Event
from seigr_stt.core.flow import StreamTable
from seigr_stt.core.frames import (
    Ack,
    Close,
    Datagram,
    Frame,
    MaxData,
    MaxStreamData,
    Ping,
    Pong,
    ResetStream,
    StopSending,
    Stream,
    parse_frames,
)
from seigr_stt.core.keys import KeySchedule
from seigr_stt.core.packetizer import RecordBuilder
from seigr_stt.core.pmtu import PathMtuProber
from seigr_stt.core.record import max_frames_size, open_record, parse_header
from seigr_stt.core.recovery import AckTracker, LossRecovery, SentRecord
from seigr_stt.core.stats import SessionCounters
from seigr_stt.core.timers import SessionTimers

SID = b"\x01" * 8
SEND_KEY = bytes(range(32))
T0 = 1000.0
WINDOW = 64 * 1024
CONFIG = SessionConfig(stream_window=WINDOW, session_window=4 * WINDOW)


class Builder:
    """A RecordBuilder with its collaborators, and the receiving end of what it seals."""

    def __init__(self, record_size: int = 1232) -> None:
        self.keys = KeySchedule(SEND_KEY, bytes(32), bytes(32), T0)
        self.acks = AckTracker()
        self.recovery = LossRecovery()
        self.counters = SessionCounters()
        self.events: list[Event] = []
        self.streams = StreamTable(SID, 0, CONFIG, self.events, self.counters)
        self.pmtu = PathMtuProber(record_size, 0)
        self.timers = SessionTimers(CONFIG, T0)
        self.builder = RecordBuilder(
            SID,
            self.keys,
            self.acks,
            self.recovery,
            self.streams,
            self.pmtu,
            self.counters,
            self.timers,
        )
        self._open = crypto.make_aead(SEND_KEY)
        self.sent: dict[int, SentRecord] = {}

    def build(self, now: float = T0) -> list[list[Frame]]:
        """Every record due now, opened: the frames of each."""
        out = []
        for record in self.builder.build(now, active=True):
            assert len(record) <= self.pmtu.size
            header = parse_header(record)
            out.append(parse_frames(open_record(self._open, record, header.counter)))
        return out

    def settle(self, acked: list[int], lost: list[int], now: float = T0) -> None:
        """Tell the sender that records ``acked`` arrived and ``lost`` did not, as the session
        does: through recovery, then each frame's delivery handler."""
        ranges = [(c, c) for c in sorted(acked, reverse=True)]
        got, declared, _ = self.recovery.on_ack(max(acked), 0.0, ranges, now)
        assert sorted(r.counter for r in got) == sorted(acked)
        assert sorted(r.counter for r in declared) == sorted(lost)
        for record in got:
            for frame, handler in record.frames:
                handler(frame, True)
        for record in declared:
            for frame, handler in record.frames:
                handler(frame, False)

    def pings(self, n: int) -> None:
        """``n`` more ack-eliciting records (so that an older one can be declared lost)."""
        for i in range(n):
            self.builder.pending.append(Ping(100 + i))
            assert len(self.build()) == 1


def kinds(frames: list[Frame]) -> list[str]:
    return [type(f).__name__ for f in frames]


# -- what goes in a record -------------------------------------------------------------------
def test_frame_order_within_a_record() -> None:
    b = Builder()
    b.acks.on_received(0, True, T0)
    b.acks.on_received(1, True, T0)  # two eliciting records: an ACK is due now
    stream_id = b.streams.open_stream()
    b.streams.write(stream_id, b"payload", False)
    other = b.streams.open_stream()
    b.streams.reset(other, 9)  # RESET_STREAM and STOP_SENDING
    b.streams.max_data.value += 1  # a credit update is due
    for frame in (Ping(1), Pong(2), Datagram(b"d"), Close(0, "bye")):
        b.builder.pending.append(frame)
    [frames] = b.build()
    assert kinds(frames) == [
        "Ack",
        "Ping",
        "Pong",
        "Datagram",
        "Close",
        "ResetStream",
        "StopSending",
        "MaxData",
        "Stream",
    ]
    assert frames[0] == Ack(0, ((0, 1),))
    assert frames[-1] == Stream(stream_id, 0, False, b"payload")
    assert b.acks.ack_due_at is None


def test_nothing_to_say_builds_nothing_unless_a_record_is_wanted() -> None:
    b = Builder()
    assert not b.builder.has_output(T0)
    assert b.build() == []
    b.builder.want_record = True  # key confirmation, a new epoch, a keepalive
    assert b.builder.has_output(T0)
    assert b.build() == [[]]
    assert not b.builder.want_record
    assert b.recovery.bytes_in_flight == 0  # an empty record is not ack-eliciting


def test_a_delayed_ack_rides_along_with_anything_sent_earlier() -> None:
    b = Builder()
    b.acks.on_received(0, True, T0)  # one eliciting record: the ACK may wait 25 ms
    assert b.acks.ack_due_at is not None
    assert not b.builder.has_output(T0)
    assert b.build() == []
    b.builder.pending.append(Ping(1))
    [frames] = b.build()
    assert kinds(frames) == ["Ack", "Ping"]


def test_stream_data_fills_records_up_to_the_record_size() -> None:
    b = Builder()
    stream_id = b.streams.open_stream()
    b.streams.write(stream_id, bytes(5000), True)
    records = b.build()
    data = [f for frames in records for f in frames if isinstance(f, Stream)]
    assert sum(len(f.data) for f in data) == 5000
    assert data[-1].fin
    assert len(records) == 5
    room = max_frames_size(1232)
    assert all(len(f.data) > room - 40 for f in data[:-1])  # full records
    assert b.counters.packets_sent == 5
    assert b.timers.last_sent_at == T0


def test_the_congestion_window_holds_stream_data_back_but_not_a_probe() -> None:
    b = Builder()
    stream_id = b.streams.open_stream()
    b.streams.write(stream_id, bytes(WINDOW), False)
    records = []
    for step in range(100):  # time enough for the pacer: the window is the limit here
        records += b.build(T0 + step * 0.01)
    cwnd = b.builder.cc.cwnd
    assert cwnd == INITIAL_WINDOW_PACKETS * 1232
    in_flight = b.recovery.bytes_in_flight
    assert in_flight == b.counters.bytes_sent
    # Records go out while the bytes in flight are below the window, the last one may cross it.
    assert in_flight - 1232 < cwnd <= in_flight
    assert len(records) in (INITIAL_WINDOW_PACKETS, INITIAL_WINDOW_PACKETS + 1)
    assert b.build(T0 + 2.0) == []  # nothing more until acknowledgements come
    b.builder.probe = True  # a probe timeout: one record whatever the window (§14.3)
    [probe] = b.build()
    assert any(isinstance(f, Stream) for f in probe)
    assert not b.builder.probe


# -- delivery callbacks ----------------------------------------------------------------------
def test_a_lost_credit_frame_sends_the_current_value_not_the_stale_one() -> None:
    b = Builder()
    b.streams.max_data.value += 1000
    [first] = b.build()
    assert first == [MaxData(4 * WINDOW + 1000)]
    b.pings(3)
    b.streams.max_data.value += 500  # the application consumed more since: already due
    b.streams.max_data.sent = b.streams.max_data.value  # (pretend it was announced too)
    b.settle(acked=[1, 2, 3], lost=[0])  # the record with the first value is lost
    [again] = b.build()
    assert again == [MaxData(4 * WINDOW + 1500)]  # the current value, once


def test_a_lost_stream_credit_frame_is_announced_again_unless_the_stream_finished() -> None:
    b = Builder()
    stream_id = 1  # the peer's first byte stream
    b.streams.receive(Stream(stream_id, 0, False, bytes(WINDOW)))
    b.streams.consume_stream(stream_id, WINDOW)
    [first] = b.build()
    assert MaxStreamData(stream_id, 2 * WINDOW) in first
    b.pings(3)
    b.settle(acked=[1, 2, 3], lost=[0])
    [again] = b.build()
    assert MaxStreamData(stream_id, 2 * WINDOW) in again
    # Once the peer's half is finished, a lost announcement is not repeated.
    b.pings(3)
    b.streams.receive(Stream(stream_id, WINDOW, True, b""))
    b.settle(acked=[5, 6, 7], lost=[4])
    assert all(not isinstance(f, MaxStreamData) for frames in b.build() for f in frames)


def test_a_lost_reset_stream_is_sent_again() -> None:
    b = Builder()
    stream_id = b.streams.open_stream()
    b.streams.write(stream_id, b"abc", False)
    [with_data] = b.build()
    b.streams.reset(stream_id, 4)
    [reset] = b.build()
    assert kinds(reset) == ["ResetStream", "StopSending"]
    assert reset[0] == ResetStream(stream_id, 4, 3)
    b.pings(3)
    b.settle(acked=[0, 2, 3, 4], lost=[1])
    [again] = b.build()
    assert again == [ResetStream(stream_id, 4, 3), StopSending(stream_id, 4)]
    assert with_data[0] == Stream(stream_id, 0, False, b"abc")


def test_a_lost_stream_frame_is_sent_again_and_an_acknowledged_one_is_released() -> None:
    b = Builder()
    stream_id = b.streams.open_stream()
    b.streams.write(stream_id, b"x" * 3000, True)
    records = b.build()
    assert len(records) == 3
    b.pings(3)
    b.settle(acked=[0, 2, 3, 4, 5], lost=[1])
    first = records[0][0]
    assert isinstance(first, Stream)
    assert b.streams.send_buffered == 3000 - len(first.data)  # from the first gap on
    [again] = b.build()
    assert again == records[1]  # the same bytes at the same offset
    b.settle(acked=[6], lost=[])
    assert b.streams.send_buffered == 0
    assert b.streams.all_acknowledged


@pytest.mark.parametrize("frame", [Ping(1), Datagram(b"d"), Close(0, "")])
def test_one_shot_frames_are_never_sent_again(frame: Frame) -> None:
    b = Builder()
    b.builder.pending.append(frame)
    [first] = b.build()
    assert first == [frame]
    b.pings(3)
    b.settle(acked=[1, 2, 3], lost=[0])
    assert b.build() == []


def test_a_pong_is_not_ack_eliciting_and_never_sent_again() -> None:
    b = Builder()
    b.builder.pending.append(Pong(7))
    assert b.build() == [[Pong(7)]]
    assert b.recovery.bytes_in_flight == 0  # its record is not tracked
    b.pings(3)
    b.settle(acked=[1, 2, 3], lost=[])
    assert b.build() == []


def test_an_ack_only_record_is_not_tracked() -> None:
    b = Builder()
    b.acks.on_received(0, True, T0)
    b.acks.on_received(1, True, T0)
    [frames] = b.build()
    assert kinds(frames) == ["Ack"]
    assert b.recovery.bytes_in_flight == 0
    assert b.recovery.get_timer() is None
    assert b.timers.dead_peer_at is None  # nothing the peer must answer
