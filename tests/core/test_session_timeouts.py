"""The timeouts of a session and of its endpoint on the simulated network, with time injected
(``docs/protocol.md`` §8): acknowledgement delay and keepalive, dead peer, idle timeout, key
rotation by time and count, key expiry, tombstones, and ``get_timer`` as the earliest of them
all. The deadline bookkeeping itself is tested in ``test_timers.py``; handshake retransmission
in ``test_handshakes.py``."""

from __future__ import annotations

import itertools

import pytest

from seigr_stt.config import NodeConfig
from seigr_stt.constants import (
    CLOSE_ATTEMPTS,
    CLOSE_DEAD_PEER,
    CLOSE_IDLE_TIMEOUT,
    CLOSE_KEY_EXPIRED,
    CLOSE_RETRANSMIT_S,
    DEAD_PEER_MIN_PTOS,
    DEAD_PEER_PTO_DIVISOR,
    DEAD_PEER_TIMEOUT_S,
    KEY_GRACE_MIN_S,
    MAX_ACK_DELAY_S,
    PING_INTERVAL_S,
    REJECT_AFTER_TIME_S,
    STT_SESSION_STATE_ACTIVE,
)
from seigr_stt.core.events import (
    KeyRotated,
    MessageReceived,
    SessionClosed,
)
from seigr_stt.core.record import parse_header
from seigr_stt.core.timers import RESPONDER_HEARTBEAT_FACTOR
from seigr_stt.exceptions import ConfigError
from tests.core.net import (
    DATA,
    Net,
    Pair,
    authentic_record,
    endpoint_snapshot,
    handshake_table,
    make_pair,
)


def test_an_only_receiving_side_answers_with_one_delayed_ack() -> None:
    pair = make_pair(config=NodeConfig(keepalive_s=3.0, ping_interval_s=None))
    net = pair.net
    pair.send(pair.a, b"first")
    net.run(0.5)
    t_last = net.now
    pair.send(pair.a, b"second")  # one ack-eliciting record: b owes an ACK within the delay
    net.run(60.0)
    b_records = [p for p in net.sent_by(pair.b, DATA)]
    after = [p.sent_at for p in b_records if p.sent_at >= t_last]
    # The ACK is the answer (it resets a's dead-peer timer): no keepalive follows it.
    assert after == [pytest.approx(t_last + MAX_ACK_DELAY_S)]
    assert [e.data for e in pair.b.events_of(MessageReceived)] == [b"first", b"second"]
    assert pair.sa.all_acknowledged
    assert pair.sa.is_active
    assert pair.sb.is_active


def test_keepalive_shorter_than_the_ack_delay_answers_first() -> None:
    pair = make_pair(
        config_a=NodeConfig(ping_interval_s=None),
        config_b=NodeConfig(keepalive_s=0.01, ping_interval_s=None),
    )
    net = pair.net
    net.run(1.0)
    t_last = net.now
    pair.send(pair.a, b"only")
    net.run(60.0)
    after = [p.sent_at for p in net.sent_by(pair.b, DATA) if p.sent_at >= t_last]
    assert after == [pytest.approx(t_last + 0.01)]  # the keepalive, carrying the ACK
    assert pair.sa.all_acknowledged


def test_no_keepalive_for_a_keepalive() -> None:
    pair = make_pair(config=NodeConfig(ping_interval_s=None))  # the heartbeat has its own test
    net = pair.net
    pair.send(pair.a, b"x")
    net.run(50.0)
    a_records = len(net.sent_by(pair.a, DATA))
    b_records = len(net.sent_by(pair.b, DATA))
    net.run(60.0)  # nothing eliciting in flight: silence, no ping-pong of empty records
    assert len(net.sent_by(pair.a, DATA)) == a_records
    assert len(net.sent_by(pair.b, DATA)) == b_records


def test_dead_peer(pair: Pair) -> None:
    net = pair.net
    net.kill(pair.b)
    sa = pair.sa
    start = net.now
    pair.send(pair.a, b"anyone there?")
    net.run(DEAD_PEER_TIMEOUT_S - 0.01)
    assert sa.is_active
    net.run(1.0)
    [(t, closed)] = pair.a.timed_events_of(SessionClosed)
    assert t == pytest.approx(start + DEAD_PEER_TIMEOUT_S)
    assert (closed.code, closed.by_peer) == (CLOSE_DEAD_PEER, False)
    assert pair.sid not in pair.a.endpoint.sessions
    assert sa.keys.erased


def test_a_live_peer_after_a_7_s_outage_is_not_declared_dead(pair: Pair) -> None:
    """§13.1 #12: with RFC 9002's backoff alone the probes after 0.1, 0.3, ... 6.3 s are lost
    and the next comes at 12.7 s, after the 10 s dead-peer timer. Capped at a quarter of the
    timeout, a probe goes out at about 8 s, after the outage, and is answered."""
    net = pair.net
    end = net.now + 7.0
    net.filters.append(lambda packet: packet.sent_at < end)  # nothing gets through, both ways
    pair.send(pair.a, b"through the outage")
    net.run(3 * DEAD_PEER_TIMEOUT_S)
    assert pair.sa.is_active
    assert pair.a.events_of(SessionClosed) == []
    assert [m.data for m in pair.b.events_of(MessageReceived)][-1] == b"through the outage"


def test_a_long_round_trip_waits_for_the_minimum_of_probes_before_dead_peer() -> None:
    """With a 0.8 s round trip only four backed-off probes fit into 10 s: the dead-peer timer
    waits for the sixth probe timeout in a row, so a peer that answers the fifth or sixth is
    kept, and a vanished one is closed at the sixth."""
    pair = make_pair()
    net = pair.net
    net.delay_s = (0.4, 0.4)
    for _ in range(5):  # RTT samples at the new delay
        pair.send(pair.a, b"sample")
        net.run(2.0)
    base = pair.sa.recovery.rtt.pto_s()
    assert base > 1.0
    net.kill(pair.b)
    start = net.now
    pair.send(pair.a, b"anyone there?")
    net.run(DEAD_PEER_TIMEOUT_S)
    assert pair.sa.is_active  # 10 s passed, but fewer than the minimum of probes
    assert 0 < pair.sa.recovery.pto_count < DEAD_PEER_MIN_PTOS
    net.run(4 * DEAD_PEER_TIMEOUT_S)
    [(t, closed)] = pair.a.timed_events_of(SessionClosed)
    assert closed.code == CLOSE_DEAD_PEER
    probes = [p for p in net.sent_by(pair.a, DATA) if p.sent_at > start]
    assert len(probes) >= DEAD_PEER_MIN_PTOS
    # Six probe timeouts of at most max(cap, base) each, the last one after a heartbeat PING
    # (15 s after the last answer) restarted the probe clock: well within twice the timeout.
    cap = DEAD_PEER_TIMEOUT_S / DEAD_PEER_PTO_DIVISOR
    assert max(cap, base) == cap
    assert start + DEAD_PEER_TIMEOUT_S < t <= start + 2 * DEAD_PEER_TIMEOUT_S


def test_an_answer_resets_the_dead_peer_timer(pair: Pair) -> None:
    net = pair.net
    for _ in range(10):
        pair.send(pair.a, b"ping-like")
        net.run(DEAD_PEER_TIMEOUT_S - 1)
    assert pair.sa.is_active
    assert pair.a.events_of(SessionClosed) == []


def test_idle_timeout() -> None:
    pair = make_pair(config_a=NodeConfig(session_idle_timeout_s=30.0))
    net = pair.net
    pair.send(pair.b, b"last words")
    start = net.now
    net.run(29.9)
    assert pair.sa.is_active
    net.run(1.0)
    [(t, closed)] = pair.a.timed_events_of(SessionClosed)
    assert t == pytest.approx(start + 30.0)
    assert (closed.code, closed.by_peer) == (CLOSE_IDLE_TIMEOUT, False)
    [closed_b] = pair.b.events_of(SessionClosed)
    assert (closed_b.code, closed_b.by_peer) == (CLOSE_IDLE_TIMEOUT, True)


def test_idle_timeout_disabled(pair: Pair) -> None:
    pair = make_pair(config=NodeConfig(session_idle_timeout_s=None, rekey_after_s=60.0))
    for _ in range(10):
        pair.net.run(100.0)
    assert pair.sa.is_active
    assert pair.sb.is_active
    assert pair.sa.key_version == pair.sb.key_version >= 16


def record_epochs(net: Net, pair: Pair, sender: str) -> list[tuple[float, int]]:
    node = pair.a if sender == "A" else pair.b
    return [(p.sent_at, parse_header(p.data).epoch) for p in net.sent_by(node, DATA)]


def test_rotation_by_time() -> None:
    pair = make_pair(config=NodeConfig(rekey_after_s=5.0))
    net = pair.net
    start = net.now
    for _ in range(20):
        pair.send(pair.a, b"tick")
        net.run(1.0)
    epochs = record_epochs(net, pair, "A")
    first_rotated = min(t for t, e in epochs if e == 1)
    assert first_rotated == pytest.approx(start + 5.0)
    assert pair.sa.key_version == pair.sb.key_version == 4
    assert [e.key_version for e in pair.a.events_of(KeyRotated)] == [1, 2, 3, 4]
    assert [e.key_version for e in pair.b.events_of(KeyRotated)] == [1, 2, 3, 4]
    assert pair.sa.keys.session_key == pair.sb.keys.session_key


def test_rotation_by_time_when_idle(pair: Pair) -> None:
    pair = make_pair(config=NodeConfig(rekey_after_s=5.0))
    pair.net.run(12.0)
    assert pair.sa.key_version == pair.sb.key_version == 2


def test_rotation_by_message_count() -> None:
    pair = make_pair(config=NodeConfig(rekey_after_messages=10))
    net = pair.net
    for _ in range(40):
        pair.send(pair.a, b"counted")
        net.run(0.1)
    epochs = [e for _, e in record_epochs(net, pair, "A")]
    assert epochs == sorted(epochs)
    assert epochs[10] >= 1  # the eleventh record of an epoch already uses the next one
    per_epoch = [len(list(group)) for _, group in itertools.groupby(epochs)]
    assert max(per_epoch) <= 11  # ten records plus the one that carries the rotation
    assert pair.sa.key_version == pair.sb.key_version >= 3
    assert pair.sa.keys.session_key == pair.sb.keys.session_key


def test_keys_expire_when_rotation_cannot_complete() -> None:
    # Without a heartbeat nothing is sent while idle, so the dead peer goes unnoticed until
    # the keys expire (with one, the dead-peer timer closes the session first).
    # The hash rotation alone (a DH ratchet's INIT must be acknowledged, so with the automatic
    # ratchet on the dead-peer timer would close the session first: test_ratchet.py).
    config = NodeConfig(session_idle_timeout_s=None, ping_interval_s=None, ratchet_interval_s=None)
    pair = make_pair(config_a=config)
    net = pair.net
    start = pair.sa.created_at
    net.kill(pair.b)
    net.run(REJECT_AFTER_TIME_S - 1.0 - (net.now - start))
    assert pair.sa.is_active
    assert pair.sa.key_version == 1  # rotated its sending side at 120 s; never confirmed
    records_before = len(net.sent_by(pair.a, DATA))
    net.run(2.0)
    # At 180 s the session starts closing (CLOSE, retransmitted) and ends when no answer comes.
    first_close = net.sent_by(pair.a, DATA)[records_before]
    assert first_close.sent_at == pytest.approx(start + REJECT_AFTER_TIME_S)
    [(t, closed)] = pair.a.timed_events_of(SessionClosed)
    assert t == pytest.approx(start + REJECT_AFTER_TIME_S + CLOSE_ATTEMPTS * CLOSE_RETRANSMIT_S)
    assert closed.code == CLOSE_KEY_EXPIRED


def test_rotation_cannot_be_disabled_or_set_beyond_key_expiry() -> None:
    limit = REJECT_AFTER_TIME_S - 10
    for bad in (None, limit + 0.001, REJECT_AFTER_TIME_S, 1e9):
        with pytest.raises(ConfigError, match="rekey_after_s"):
            NodeConfig(rekey_after_s=bad)  # type: ignore[arg-type]
    assert NodeConfig(rekey_after_s=limit).rekey_after_s == limit


def test_the_latest_rotation_allowed_completes_before_the_keys_expire() -> None:
    limit = REJECT_AFTER_TIME_S - 10
    # (Without the automatic DH ratchet, which would rotate first, at 120 s.)
    config = NodeConfig(session_idle_timeout_s=None, rekey_after_s=limit, ratchet_interval_s=None)
    pair = make_pair(config=config)
    start = pair.sa.created_at
    pair.net.run(2 * REJECT_AFTER_TIME_S + 10 - (pair.net.now - start))
    assert pair.a.events_of(SessionClosed) == []
    assert pair.sa.is_active
    assert pair.sb.is_active
    rotated = [t - start for t, _ in pair.a.timed_events_of(KeyRotated)]
    assert rotated[:2] == [pytest.approx(limit, abs=0.5), pytest.approx(2 * limit, abs=1.0)]
    assert pair.sa.key_version == pair.sb.key_version == 2


def test_previous_key_erased_after_grace(pair: Pair) -> None:
    net = pair.net
    early = authentic_record(pair.sa, b"")
    late = authentic_record(pair.sa, b"")
    pair.a.endpoint.session(pair.sid).request_rotation(net.now)
    net.flush()
    net.run(0.0)
    assert pair.sb.keys.recv_epoch == 1
    promoted_at = net.now
    assert pair.sb.keys.get_timer() == pytest.approx(promoted_at + KEY_GRACE_MIN_S)
    net.run(KEY_GRACE_MIN_S - 0.1)
    assert net.inject(pair.b, early, "A") == []
    assert pair.b.endpoint.drops == {}
    assert pair.sb.counters.packets_received >= 2
    fingerprint = pair.sb.keys.fingerprint()
    net.run(0.2)
    assert pair.sb.keys.get_timer() is None  # the previous key is gone
    assert pair.sb.keys.fingerprint() != fingerprint
    assert net.inject(pair.b, late, "A") == []
    assert pair.b.endpoint.drops == {"epoch": 1}


def test_tombstones_expire(pair: Pair) -> None:
    net = pair.net
    straggler = authentic_record(pair.sa, b"")
    pair.b.endpoint.session(pair.sid).close(0, "", net.now)
    net.flush()
    net.run(1.0)
    closed_at = net.now - 1.0
    assert pair.b.endpoint.get_timer() == pytest.approx(closed_at + 60.0)
    net.run(58.0)
    net.inject(pair.b, straggler, "A")
    assert pair.b.endpoint.drops == {"tombstone": 1}
    net.run(2.0)
    assert pair.b.endpoint.snapshot().tombstones == 0
    assert pair.b.endpoint.get_timer() is None
    net.inject(pair.b, straggler, "A")
    assert pair.b.endpoint.drops == {"tombstone": 1, "unknown_session": 1}


def component_deadlines(net: Net) -> dict[str, float | None]:
    """Each node's earliest deadline, computed from its parts: its sessions, its handshake table
    and the tombstones of the sessions it closed (each kept ``tombstone_s`` after the close)."""
    out: dict[str, float | None] = {}
    for node in net.nodes:
        ep = node.endpoint
        candidates = [s.get_timer() for s in ep.sessions.values()]
        candidates += [min(r, d) for _, r, d in handshake_table(ep, "initiating").values()]
        candidates += list(handshake_table(ep, "half_open").values())
        candidates += [min(r, d) for r, d in handshake_table(ep, "confirming").values()]
        candidates += [
            t + ep.config.tombstone_s
            for t, closed in node.timed_events_of(SessionClosed)
            if ep.recently_closed(closed.session_id)
        ]
        present = [t for t in candidates if t is not None]
        out[node.name] = min(present) if present else None
    return out


@pytest.mark.parametrize("seed", range(4))
def test_get_timer_is_the_earliest_deadline_and_early_calls_are_harmless(seed: int) -> None:
    net = Net(seed=seed, delay_s=(0.0, 0.02), loss=0.1)
    config = NodeConfig(keepalive_s=2.0, rekey_after_s=3.0, session_idle_timeout_s=20.0)
    a, b = net.add_node("A", config=config), net.add_node("B", config=config)
    net.connect(a, b)
    for step in range(300):
        r = net.random.random()
        live = [s for s in a.endpoint.sessions if s in b.endpoint.sessions]
        if live and r < 0.3:
            node = a if r < 0.15 else b
            sid = live[0]
            if node.endpoint.sessions[sid].is_active:
                node.endpoint.session(sid).send_message(0, b"x" * step, net.now)
        elif live and r < 0.33:
            node = a if r < 0.315 else b
            if node.endpoint.sessions[live[0]].is_active:
                node.endpoint.session(live[0]).request_rotation(net.now)
        elif r < 0.34 and len(live) < 3:
            net.connect(b, a)
        net.flush()
        expected = component_deadlines(net)
        for node in net.nodes:
            deadline = node.endpoint.get_timer()
            assert deadline == expected[node.name]
            if deadline is not None and deadline > net.now:
                before = endpoint_snapshot(node.endpoint)
                node.endpoint.handle_timer(net.now)
                assert net.flush_node(node) == []
                assert endpoint_snapshot(node.endpoint) == before
        net.run(net.random.uniform(0.0, 1.5))


def test_persistent_keepalive_sends_while_idle() -> None:
    config = NodeConfig(
        persistent_keepalive_s=5.0, session_idle_timeout_s=None, ping_interval_s=None
    )
    pair = make_pair(config=config)
    before = len(pair.net.sent_by(pair.a))
    pair.net.run(26.0)
    sent = len(pair.net.sent_by(pair.a)) - before
    assert 5 <= sent <= 6  # one empty record about every 5 s of silence
    assert pair.sa.state == STT_SESSION_STATE_ACTIVE


def test_without_heartbeat_or_persistent_keepalive_an_idle_session_stays_silent() -> None:
    pair = make_pair(config=NodeConfig(session_idle_timeout_s=None, ping_interval_s=None))
    before = len(pair.net.sent_by(pair.a))
    pair.net.run(26.0)
    assert len(pair.net.sent_by(pair.a)) == before


def test_an_idle_session_exchanges_one_heartbeat_and_its_ack_per_interval() -> None:
    pair = make_pair(config=NodeConfig(session_idle_timeout_s=None))
    net = pair.net
    before = {node.name: len(net.sent_by(node)) for node in (pair.a, pair.b)}
    net.run(5 * PING_INTERVAL_S + 0.5)
    sent = {node.name: len(net.sent_by(node)) - before[node.name] for node in (pair.a, pair.b)}
    # The initiator's PING and the ACK answering it keep the responder's (longer) heartbeat
    # quiet: one PING and one ACK per interval in all.
    assert sent == {"A": 5, "B": 5}
    assert pair.sa.is_active
    assert pair.sb.is_active


def test_a_peer_gone_while_idle_is_found_within_ping_interval_and_dead_peer_timeout() -> None:
    pair = make_pair(config=NodeConfig(session_idle_timeout_s=None))
    net = pair.net
    start = max(pair.sa.timers.last_received_at or 0.0, pair.sa.created_at)
    net.kill(pair.b)
    net.run(30.0)
    [(t, closed)] = pair.a.timed_events_of(SessionClosed)
    assert (closed.code, closed.by_peer) == (CLOSE_DEAD_PEER, False)
    assert t == pytest.approx(start + PING_INTERVAL_S + DEAD_PEER_TIMEOUT_S, abs=0.1)


def test_the_responder_finds_a_vanished_initiator_too() -> None:
    pair = make_pair(config=NodeConfig(session_idle_timeout_s=None))
    net = pair.net
    start = max(pair.sb.timers.last_received_at or 0.0, pair.sb.created_at)
    net.kill(pair.a)
    net.run(40.0)
    [(t, closed)] = pair.b.timed_events_of(SessionClosed)
    assert (closed.code, closed.by_peer) == (CLOSE_DEAD_PEER, False)
    limit = start + RESPONDER_HEARTBEAT_FACTOR * PING_INTERVAL_S + DEAD_PEER_TIMEOUT_S
    assert t == pytest.approx(limit, abs=0.1)
    assert t - start < 35.0
