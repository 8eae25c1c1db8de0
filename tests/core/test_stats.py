"""What the core counts (``docs/protocol.md`` §11): drop reasons, live counters, and the frozen
snapshots readers take (taking one changes nothing; a later change does not reach it)."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest

from seigr_stt.constants import STT_SESSION_STATE_ACTIVE
from seigr_stt.core.stats import (
    HANDSHAKE_SECONDS_BOUNDS,
    DropReason,
    EndpointCounters,
    EndpointSnapshot,
    Histogram,
    SessionCounters,
    SessionSnapshot,
)
from tests.core.net import Pair, authentic_record, endpoint_snapshot


def test_drop_reasons_are_unique_strings() -> None:
    values = [str(reason) for reason in DropReason]
    assert len(values) == len(set(values))
    assert str(DropReason.MAC1) == DropReason.MAC1.value == "mac1"  # a StrEnum
    assert DropReason("tombstone") is DropReason.TOMBSTONE
    assert {"mac1", "auth", "replay", "epoch", "tombstone", "reflection"} <= set(values)


def test_a_counter_of_drop_reasons_is_read_by_plain_strings() -> None:
    counters = EndpointCounters()
    counters.drops[DropReason.MAC1] += 2
    assert counters.drops["mac1"] == 2
    assert counters.drops == Counter({"mac1": 2})


def test_an_endpoint_snapshot_is_a_frozen_copy_with_every_reason() -> None:
    counters = EndpointCounters(sessions_created=3, packets_received=10)
    counters.drops[DropReason.AUTH] += 4
    snap = EndpointSnapshot.of(counters, sessions=2, handshakes_in_flight=1, tombstones=1)
    assert set(snap.counters.drops) == set(DropReason)
    assert snap.counters.drops[DropReason.AUTH] == 4
    assert snap.counters.drops[DropReason.MAC1] == 0
    assert snap.drops_total == 4
    assert (snap.sessions, snap.handshakes_in_flight, snap.tombstones) == (2, 1, 1)
    assert (snap.counters.sessions_created, snap.counters.packets_received) == (3, 10)
    counters.drops[DropReason.AUTH] += 1
    counters.sessions_created += 1
    assert snap.counters.drops[DropReason.AUTH] == 4  # a copy: later drops do not reach it
    assert snap.counters.sessions_created == 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.sessions = 9  # type: ignore[misc]


def test_an_endpoint_snapshot_agrees_with_the_endpoint(pair: Pair) -> None:
    ep = pair.a.endpoint
    before = endpoint_snapshot(ep)
    snap = ep.snapshot()
    assert endpoint_snapshot(ep) == before  # taking it changed nothing
    assert (snap.sessions, snap.handshakes_in_flight, snap.tombstones) == (1, 0, 0)
    assert snap.counters.sessions_created == ep.counters.sessions_created == 1
    assert snap.counters.packets_sent == ep.counters.packets_sent
    assert snap.counters.bytes_received == ep.counters.bytes_received
    assert snap.drops_total == 0
    forged = authentic_record(pair.sb, b"")
    pair.net.inject(pair.a, forged[:-1] + bytes([forged[-1] ^ 1]), "B")
    assert snap.counters.drops[DropReason.AUTH] == 0
    assert ep.snapshot().counters.drops[DropReason.AUTH] == 1


def test_a_session_snapshot_is_frozen_and_its_counters_a_copy(pair: Pair) -> None:
    session = pair.sa
    pair.send(pair.a, b"hello")
    pair.net.run(1.0)
    snap = session.snapshot()
    assert isinstance(snap, SessionSnapshot)
    assert (snap.session_id, snap.peer_node_id) == (pair.sid, session.peer_node_id)
    assert snap.state == STT_SESSION_STATE_ACTIVE
    assert snap.initiator
    assert (snap.key_version, snap.confirmed_key_version) == (0, 0)
    assert snap.rtt_s == session.rtt_s is not None
    assert snap.cwnd == session.packetizer.cc.cwnd
    assert snap.max_record_size == session.max_record_size == 1232
    assert snap.send_buffered == 0
    assert (snap.close_code, snap.close_reason) == (None, "")
    assert snap.counters.messages_sent == 1
    assert snap.counters == session.counters
    assert snap.counters is not session.counters
    pair.send(pair.a, b"again")
    assert snap.counters.messages_sent == 1  # later traffic does not reach it
    assert session.snapshot().counters.messages_sent == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.cwnd = 1  # type: ignore[misc]


def test_session_counters_start_at_zero() -> None:
    counters = SessionCounters()
    assert all(getattr(counters, name) == 0 for name in SessionCounters.__slots__)


def test_a_histogram_counts_each_value_in_its_bucket() -> None:
    histogram = Histogram((0.01, 0.1))
    for value in (0.005, 0.01, 0.05, 3.0):
        histogram.observe(value)
    assert histogram.counts == [2, 1, 1]  # <= 0.01, <= 0.1, above
    assert histogram.count == 4
    assert histogram.total == pytest.approx(3.065)
    copy = histogram.copy()
    histogram.observe(0.0)
    assert copy.counts == [2, 1, 1]


def test_handshakes_are_timed_on_both_sides_and_snapshots_copy_the_times(pair: Pair) -> None:
    """The pair's one handshake: one initiator and one responder duration, on the net's clock."""
    initiator = pair.a.endpoint.counters.initiator_handshake_s
    responder = pair.b.endpoint.counters.responder_handshake_s
    assert (initiator.count, responder.count) == (1, 1)
    assert pair.a.endpoint.counters.responder_handshake_s.count == 0
    assert initiator.total >= 0
    assert responder.total >= 0
    snap = pair.a.endpoint.snapshot()
    initiator.observe(1.0)
    assert snap.counters.initiator_handshake_s.count == 1
    assert tuple(sorted(HANDSHAKE_SECONDS_BOUNDS)) == HANDSHAKE_SECONDS_BOUNDS
