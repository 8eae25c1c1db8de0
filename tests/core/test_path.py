"""Path validation (§5.3): a session follows its peer to a new address only once the peer
answered a challenge from there, and never sends an unvalidated address more than three times
what it received from it."""

from __future__ import annotations

import itertools

import pytest

from seigr_stt.config import NodeConfig
from seigr_stt.constants import (
    PATH_AMPLIFICATION_FACTOR,
    PATH_CHALLENGE_ATTEMPTS,
    PATH_CHALLENGE_MIN_INTERVAL_S,
)
from seigr_stt.core.events import MessageReceived, PeerAddressChanged
from seigr_stt.core.link import Link, TransportKind
from seigr_stt.core.path import CHALLENGE_RECORD_BYTES, PathValidator
from seigr_stt.testing import Node
from tests.core.net import Pair, make_pair, seeded_rng

T0 = 100.0


def validator() -> PathValidator:
    return PathValidator(seeded_rng("path"))


# -- the validator alone --------------------------------------------------------------------------
def test_a_challenge_token_is_above_every_ping_token_and_not_guessable() -> None:
    v = validator()
    first = v.on_record("X", 100, newest=True, now=T0, last_token=41)
    assert first is not None
    assert first > 41
    assert v.candidate == "X"
    assert v.challenge_due(T0) == ("X", first)
    w = PathValidator(seeded_rng("other"))
    second = w.on_record("X", 100, newest=True, now=T0, last_token=41)
    assert second is not None
    assert second > 41
    assert second != first


def test_only_the_newest_record_starts_a_validation() -> None:
    v = validator()
    assert v.on_record("OLD", 100, newest=False, now=T0, last_token=0) is None
    assert v.candidate is None
    assert v.challenge_due(T0) is None


def test_more_records_from_the_candidate_raise_its_budget_without_a_new_token() -> None:
    v = validator()
    token = v.on_record("X", 10, newest=True, now=T0, last_token=0)
    # 3 x 10 bytes cannot pay for one challenge record...
    assert PATH_AMPLIFICATION_FACTOR * 10 < CHALLENGE_RECORD_BYTES
    assert v.challenge_due(T0) is None
    # ...until the candidate sent more.
    assert v.on_record("X", 10, newest=True, now=T0, last_token=0) is None
    assert v.challenge_due(T0) == ("X", token)


def test_the_candidate_never_gets_more_than_three_times_what_it_sent() -> None:
    v = validator()
    v.on_record("X", CHALLENGE_RECORD_BYTES, newest=True, now=T0, last_token=0)
    sent = 0
    now = T0
    while (due := v.challenge_due(now)) is not None:
        assert due[0] == "X"
        sent += CHALLENGE_RECORD_BYTES
        v.on_challenge_sent(CHALLENGE_RECORD_BYTES, now, pto_s=0.1)
        now += 10.0
    assert 0 < sent <= PATH_AMPLIFICATION_FACTOR * CHALLENGE_RECORD_BYTES


def test_challenges_are_spaced_and_limited_then_the_candidate_is_forgotten() -> None:
    v = validator()
    v.on_record("X", 10_000, newest=True, now=T0, last_token=0)
    now = T0
    times = []
    for _ in range(PATH_CHALLENGE_ATTEMPTS):
        deadline = v.get_timer()
        assert deadline is not None
        now = deadline
        assert v.challenge_due(now) is not None
        v.on_challenge_sent(CHALLENGE_RECORD_BYTES, now, pto_s=0.01)
        times.append(now)
        assert v.challenge_due(now) is None  # not again at once
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps == pytest.approx([PATH_CHALLENGE_MIN_INTERVAL_S] * (PATH_CHALLENGE_ATTEMPTS - 1))
    deadline = v.get_timer()
    assert deadline is not None
    v.handle_timer(deadline)
    assert v.candidate is None
    assert v.get_timer() is None


def test_only_the_exact_token_from_the_candidate_validates() -> None:
    v = validator()
    token = v.on_record("X", 1000, newest=True, now=T0, last_token=5)
    assert token is not None
    assert v.on_pong(token, "Y") is None  # right token, wrong address
    assert v.on_pong(token + 1, "X") is None  # a later PING's token is not the challenge's
    assert v.on_pong(token - 1, "X") is None
    assert v.candidate == "X"
    assert v.on_pong(token, "X") == "X"
    assert v.candidate is None
    assert v.validated == 1


def test_a_newer_address_replaces_the_candidate() -> None:
    v = validator()
    first = v.on_record("X", 1000, newest=True, now=T0, last_token=0)
    second = v.on_record("Y", 1000, newest=True, now=T0, last_token=first or 0)
    assert v.candidate == "Y"
    assert first is not None
    assert second is not None
    assert second > first
    assert v.on_pong(first, "X") is None


def test_a_session_made_without_randomness_refuses_to_validate() -> None:
    v = PathValidator(lambda n: (_ for _ in ()).throw(ValueError("no rng")))
    with pytest.raises(ValueError, match="no rng"):
        v.on_record("X", 1000, newest=True, now=T0, last_token=0)


# -- in a session ---------------------------------------------------------------------------------
def test_a_roaming_peer_is_followed_after_one_round_trip(pair: Pair) -> None:
    net = pair.net
    net.delay_s = (0.01, 0.01)
    net.move(pair.b, "B-new")
    pair.send(pair.b, b"from a new port")
    net.run(0.015)  # the record arrived; the challenge to B-new did not yet come back
    assert messages(pair.a) == [b"from a new port"]
    assert pair.sa.addr == "B"
    assert pair.sa.path.candidate == "B-new"
    sent = pair.send(pair.a, b"before validation")
    assert {p.dst for p in sent} == {"B"}
    net.run(0.5)
    assert pair.a.events_of(PeerAddressChanged) == [PeerAddressChanged(pair.sid, "B", "B-new")]
    assert (pair.sa.addr, pair.sa.path.validated) == ("B-new", 1)
    sent = pair.send(pair.a, b"after validation")
    assert {p.dst for p in sent} == {"B-new"}


def test_a_genuine_record_replayed_from_elsewhere_does_not_redirect(pair: Pair) -> None:
    """An on-path attacker copies a record before the real one arrives and sends it from its own
    address: it authenticates, but the attacker cannot answer a challenge it never receives in
    a form it can read, so the session stays and the attacker gets at most 3x what it sent."""
    net = pair.net
    net.drop(lambda p: p.sender == "B")
    [stolen] = pair.send(pair.b, b"intercepted")
    assert net.inject(pair.a, stolen.data, "EVIL") != []  # the ACK goes to B, a challenge to EVIL
    net.run(5.0)
    assert pair.sa.addr == "B"
    assert pair.a.events_of(PeerAddressChanged) == []
    to_evil = [p for p in net.sent_by(pair.a) if p.dst == "EVIL"]
    assert to_evil, "a challenge went to the candidate"
    assert all(len(p.data) == CHALLENGE_RECORD_BYTES for p in to_evil)  # only challenges
    assert sum(len(p.data) for p in to_evil) <= PATH_AMPLIFICATION_FACTOR * len(stolen.data)
    assert pair.sa.path.candidate is None  # given up
    # The session keeps working on its real path.
    pair.send(pair.a, b"still here")
    net.run(0.5)
    assert b"still here" in messages(pair.b)


def messages(node: Node) -> list[bytes]:
    return [e.data for e in node.events_of(MessageReceived)]


def grow_window(pair: Pair) -> int:
    """Send A -> B until A's congestion window grew; returns it."""
    start = pair.sa.packetizer.cc.cwnd
    for _ in range(20):
        pair.send(pair.a, bytes(20_000))
        pair.net.run(0.2)
    assert pair.sa.packetizer.cc.cwnd > start
    return pair.sa.packetizer.cc.cwnd


@pytest.mark.parametrize(
    ("new_addr", "same_host"), [(("B", 2), True), ("C", False)], ids=["port", "host"]
)
def test_a_new_host_starts_congestion_control_over_a_new_port_does_not(
    pair: Pair, new_addr: object, same_host: bool
) -> None:
    grown = grow_window(pair)
    pair.net.move(pair.b, new_addr)
    pair.send(pair.b, b"moved")
    pair.net.run(0.5)
    assert pair.sa.addr == new_addr
    cwnd = pair.sa.packetizer.cc.cwnd
    if same_host:
        assert cwnd >= grown  # a NAT rebinding keeps the path (RFC 9000 §9.3)
    else:
        assert cwnd < grown  # a new path starts over (RFC 9000 §9.4)
        assert pair.sa.pmtu is pair.sa.packetizer.pmtu


def test_a_record_over_another_kind_of_link_is_dropped_unopened() -> None:
    """Without migration a session is bound to its link: its records over another transport (a
    WebSocket connection replaying UDP records, or the reverse) are not even decrypted (§5.3)."""
    pair = make_pair(config=NodeConfig(migration=False))
    pair.net.drop(lambda p: p.sender == "B")
    [record] = pair.send(pair.b, b"over UDP")
    other = Link(TransportKind.WEBSOCKET, 65_000, peer="127.0.0.1:1", source="127.0.0.1")
    pair.a.endpoint.receive_datagram(record.data, "ws-connection", pair.net.now, other)
    assert pair.a.endpoint.drops == {"wrong_link": 1}
    assert pair.sa.counters.auth_failures == 0
    assert pair.sa.path.candidate is None
    pair.net.deliver_held(record)  # the genuine copy, on the session's link, still counts
    assert messages(pair.a) == [b"over UDP"]


def test_with_migration_a_record_over_another_link_moves_nothing(pair: Pair) -> None:
    """With migration (the default, §18) the record is opened (it is genuine), but a worse
    kind of path while the session's own still carries records starts no validation; once
    the own path has been silent, it would be challenged, which a replaying stranger cannot
    answer."""
    pair.net.drop(lambda p: p.sender == "B", times=2)
    [record] = pair.send(pair.b, b"over UDP")
    other = Link(TransportKind.WEBSOCKET, 65_000, peer="127.0.0.1:1", source="127.0.0.1")
    pair.a.endpoint.receive_datagram(record.data, "ws-connection", pair.net.now, other)
    pair.net.flush_node(pair.a)
    assert pair.a.endpoint.drops == {}
    assert messages(pair.a) == [b"over UDP"]
    assert pair.sa.path.candidate is None
    pair.net.run(5.0)  # A's own path silent for many PTOs
    [late] = pair.send(pair.b, b"later")
    pair.a.endpoint.receive_datagram(late.data, "ws-connection", pair.net.now, other)
    assert pair.sa.path.candidate == "ws-connection"
    pair.net.run(2.0)
    assert pair.sa.addr == "B"
    assert pair.sa.transport == "udp"
    assert pair.sa.path.candidate is None
