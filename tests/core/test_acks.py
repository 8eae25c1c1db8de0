"""When a session acknowledges (§14.1), on the simulated network with time injected: a PING is
acknowledged at once, in the record that carries its PONG; a lone message waits for the delayed
ACK; every second ack-eliciting record is acknowledged at once (bulk). The tracker's own rules
are in ``test_recovery.py``."""

from __future__ import annotations

import pytest

from seigr_stt.config import NodeConfig
from seigr_stt.constants import MAX_ACK_DELAY_S
from seigr_stt.core.frames import Ping
from seigr_stt.core.recovery import AckTracker
from tests.core.net import DATA, make_pair

QUIET = NodeConfig(keepalive_s=3.0, ping_interval_s=None)


def test_expedite_brings_the_ack_forward_and_never_postpones_it() -> None:
    tracker = AckTracker()
    tracker.on_received(0, True, 1.0)
    assert tracker.ack_due_at == pytest.approx(1.0 + MAX_ACK_DELAY_S)
    tracker.expedite(1.0)
    assert tracker.ack_due_at == 1.0
    tracker.expedite(2.0)  # later than what is owed: no change
    assert tracker.ack_due_at == 1.0
    tracker.build(1.0)
    assert tracker.ack_due_at is None


def test_a_ping_is_acknowledged_at_once_with_its_pong() -> None:
    pair = make_pair(config=QUIET)
    net = pair.net
    net.run(1.0)
    t0 = net.now
    pair.a.endpoint.session(pair.sid).ping(net.now)
    [ping] = net.flush_node(pair.a)
    assert pair.sa.recovery.bytes_in_flight > 0
    net.run(0.0)  # delivered: b answers in the same instant, not after MAX_ACK_DELAY_S
    answers = [p for p in net.sent_by(pair.b, DATA) if p.sent_at >= t0]
    assert [p.sent_at for p in answers] == [t0]
    assert not pair.sb.acks.ack_needed
    net.run(0.0)
    assert pair.sa.recovery.bytes_in_flight == 0  # the answer acknowledged the PING's record
    assert ping.sent_at == t0


def test_a_lone_message_waits_for_the_delayed_ack_and_a_second_one_does_not() -> None:
    pair = make_pair(config=QUIET)
    net = pair.net
    net.run(1.0)
    t0 = net.now
    pair.send(pair.a, b"one")
    net.run(0.0)
    assert pair.sb.acks.ack_due_at == pytest.approx(t0 + MAX_ACK_DELAY_S)
    assert [p for p in net.sent_by(pair.b, DATA) if p.sent_at >= t0] == []
    net.run(MAX_ACK_DELAY_S / 2)
    t1 = net.now
    pair.send(pair.a, b"two")  # the second ack-eliciting record: acknowledged at once
    net.run(0.0)
    assert [p.sent_at for p in net.sent_by(pair.b, DATA) if p.sent_at >= t0] == [t1]
    assert pair.sa.recovery.bytes_in_flight == 0


def test_a_probe_ping_keeps_the_delayed_ack() -> None:
    # PING(0) (a PTO or path-MTU probe, a heartbeat) gets no PONG and no early ACK (§6, §14.2).
    pair = make_pair(config=QUIET)
    net = pair.net
    net.run(1.0)
    t0 = net.now
    session = pair.a.endpoint.session(pair.sid)
    session.packetizer.pending.append(Ping(0))
    session._changed()  # as the probe timer or the heartbeat queue it
    assert len(net.flush_node(pair.a)) == 1
    net.run(0.0)
    assert pair.sb.acks.ack_due_at == pytest.approx(t0 + MAX_ACK_DELAY_S)
    assert [p for p in net.sent_by(pair.b, DATA) if p.sent_at >= t0] == []
