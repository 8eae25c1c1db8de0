"""The table of handshakes in flight (``docs/protocol.md`` §4, §8, §10): the order in which an
INIT is admitted, INIT retransmission with backoff, FINAL retransmission until the responder's
first record confirms the keys, and what a confirmation that never comes does.

Most tests drive a :class:`HandshakeTable` directly (time and randomness injected, packets
collected); the last ones run two endpoints on the in-memory network.
"""

from __future__ import annotations

import itertools
from collections import Counter, deque
from collections.abc import Hashable
from dataclasses import dataclass, field

import pytest

from seigr_stt.config import NodeConfig
from seigr_stt.constants import (
    CLOSE_NORMAL,
    HANDSHAKE_ATTEMPT_MAX_S,
    HANDSHAKE_RETRY_INITIAL_S,
    HANDSHAKE_RETRY_JITTER_S,
    HANDSHAKE_RETRY_MAX_S,
    PROTOCOL_VERSION,
    RESPONDER_HALF_OPEN_TIMEOUT_S,
    PacketType,
)
from seigr_stt.core import crypto
from seigr_stt.core.events import Event, HandshakeAborted, SessionClosed, SessionEstablished
from seigr_stt.core.handshake import InitiatorHandshake
from seigr_stt.core.handshakes import (
    CONNECTION_CLOSED,
    Completed,
    HandshakeTable,
    versions_packet,
)
from seigr_stt.core.identity import NodeIdentity, SharedSecrets
from seigr_stt.core.link import Link, TransportKind
from seigr_stt.core.noise import handshake_state
from seigr_stt.core.stats import EndpointCounters
from tests.core.net import (
    DATA,
    FINAL,
    INIT,
    SHARED_SEED,
    Net,
    handshake_table,
    make_seed,
    seeded_rng,
)

SECRETS = SharedSecrets.from_seed(SHARED_SEED)
UDP = Link(TransportKind.UDP, 1232)
T0 = 1000.0
J = HANDSHAKE_RETRY_JITTER_S


@dataclass
class Side:
    """A :class:`HandshakeTable` with what it sent and the events it produced."""

    table: HandshakeTable
    counters: EndpointCounters
    sent: list[tuple[bytes, Hashable]] = field(default_factory=list)
    events: deque[Event] = field(default_factory=deque)

    def take_sent(self) -> list[tuple[bytes, Hashable]]:
        out, self.sent[:] = list(self.sent), []
        return out

    def feed_init(self, init: bytes, addr: Hashable, now: float, session_count: int = 0) -> None:
        """An INIT from ``addr``, through the table's checks in the endpoint's order."""
        parsed = self.table.check_packet(init)
        if parsed is not None:
            _, sender, _ = parsed
            self.table.receive_init(
                init,
                sender,
                addr,
                UDP,
                now,
                session_count=session_count,
                new_index=lambda: self.table.new_index(lambda _: False),
            )

    def run_timers(self, until: float) -> list[tuple[float, bytes]]:
        """Handle every deadline up to ``until``; returns (time, packet) of what was sent."""
        out: list[tuple[float, bytes]] = []
        while (at := self.table.get_timer()) is not None and at <= until:
            list(self.table.handle_timer(at))
            out += [(at, packet) for packet, _ in self.take_sent()]
        return out


def side(name: str, config: NodeConfig | None = None) -> Side:
    counters = EndpointCounters()
    sent: list[tuple[bytes, Hashable]] = []
    events: deque[Event] = deque()
    table = HandshakeTable(
        NodeIdentity.from_seed(make_seed(name)),
        SECRETS,
        config or NodeConfig(),
        seeded_rng(name),
        counters,
        lambda packet, addr: sent.append((packet, addr)),
        events,
    )
    return Side(table, counters, sent, events)


_timestamps = itertools.count(1)


def fresh_init(name: str = "peer", cookie: bytes | None = None) -> bytes:
    """An INIT from a new initiator (a new ephemeral key, index and timestamp each time)."""
    n = next(_timestamps)
    handshake = InitiatorHandshake(
        NodeIdentity.from_seed(make_seed(name)),
        SECRETS,
        n.to_bytes(4, "big"),
        capabilities=0,
        timestamp_ns=n,
        rng=seeded_rng(f"{name}:{n}"),
    )
    return handshake.init_packet(cookie)


def proven_init(responder: Side, addr: Hashable, now: float = T0) -> bytes:
    """A fresh INIT carrying the cookie ``responder`` gives ``addr`` (mac2 proves the source)."""
    return fresh_init(cookie=responder.table.cookies.cookie_for(UDP.cookie_input(addr), now))


@pytest.fixture
def dh_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the X25519 operations of the Noise layer."""
    calls: list[int] = []
    real = crypto.dh  # what the Noise layer imported

    def counting(private: bytes, public: bytes) -> bytes:
        calls.append(1)
        return real(private, public)

    monkeypatch.setattr(handshake_state, "dh", counting)
    return calls


def types_sent(s: Side) -> list[int]:
    return [packet[1] for packet, _ in s.take_sent()]


# -- admission of an INIT, cheapest check first (§10) ----------------------------------------
def test_mac1_comes_before_everything_else(dh_calls: list[int]) -> None:
    responder = side("r", NodeConfig(handshake_burst_per_source=1))
    responder.table.accept_incoming = False
    bad = bytearray(fresh_init())
    bad[-20] ^= 1
    responder.feed_init(bytes(bad), ("10.0.0.1", 1), T0)
    assert responder.counters.drops == Counter({"mac1": 1})  # not "handshake_state"
    assert len(responder.table.buckets) == 0  # no token looked at
    assert types_sent(responder) == []
    assert dh_calls == []


def test_a_node_that_accepts_no_incoming_refuses_after_mac1(dh_calls: list[int]) -> None:
    responder = side("r")
    responder.table.accept_incoming = False
    responder.feed_init(fresh_init(), ("10.0.0.1", 1), T0)
    assert responder.counters.drops == Counter({"handshake_state": 1})
    assert len(responder.table.buckets) == 0
    assert dh_calls == []


def test_a_retransmitted_init_is_answered_even_when_the_table_is_full(
    dh_calls: list[int],
) -> None:
    responder = side("r", NodeConfig(handshake_half_open_max=1, handshake_load_threshold=1))
    init = fresh_init()
    responder.feed_init(init, ("10.0.0.1", 1), T0)
    [(response, _)] = responder.take_sent()
    dh_before = len(dh_calls)
    responder.feed_init(init, ("10.0.0.1", 1), T0 + 0.5)  # our RESPONSE was lost
    assert responder.take_sent() == [(response, ("10.0.0.1", 1))]  # the same bytes, no cookie
    assert len(dh_calls) == dh_before  # no second Diffie-Hellman
    assert responder.counters.init_retransmits_answered == 1
    assert responder.table.half_open == 1
    assert not responder.counters.drops


def test_reflection_is_refused_before_the_half_open_limit() -> None:
    node = side("n", NodeConfig(handshake_half_open_max=1, handshake_load_threshold=1))
    node.table.connect(
        b"\x00\x00\x00\x07", "X", UDP, T0, timestamp_ns=1, timeout_s=10, capabilities=0
    )
    [(own_init, _)] = node.take_sent()
    node.feed_init(fresh_init(), ("10.0.0.1", 1), T0)  # fills the half-open table
    node.take_sent()
    node.feed_init(own_init, "X", T0)  # our own INIT sent back to us
    assert node.counters.drops == Counter({"reflection": 1})


def test_the_half_open_limit_comes_before_the_cookie(dh_calls: list[int]) -> None:
    responder = side("r", NodeConfig(handshake_half_open_max=1, handshake_load_threshold=1))
    responder.feed_init(fresh_init(), ("10.0.0.1", 1), T0)
    responder.take_sent()
    dh_before = len(dh_calls)
    responder.feed_init(fresh_init(), ("10.0.0.2", 1), T0)
    assert responder.counters.drops == Counter({"half_open_full": 1})
    assert types_sent(responder) == []  # not even a cookie reply
    assert len(responder.table.buckets) == 0  # no source proven, none charged
    assert len(dh_calls) == dh_before


def test_the_cookie_comes_before_the_token_bucket(dh_calls: list[int]) -> None:
    config = NodeConfig(
        handshake_half_open_max=8, handshake_load_threshold=1, handshake_burst_per_source=1
    )
    responder = side("r", config)
    proven = proven_init(responder, ("10.0.0.1", 1))
    responder.feed_init(proven, ("10.0.0.1", 1), T0)  # spends 10.0.0.1's only token
    responder.take_sent()
    dh_before = len(dh_calls)
    responder.feed_init(fresh_init(), ("10.0.0.1", 2), T0)  # under load, without a cookie
    assert responder.counters.drops == Counter({"cookie_required": 1})  # not "rate_limited"
    assert types_sent(responder) == [PacketType.COOKIE_REPLY]
    assert len(dh_calls) == dh_before


def test_the_token_bucket_comes_before_the_session_limit_and_its_refusal(
    dh_calls: list[int],
) -> None:
    config = NodeConfig(max_sessions=5, handshake_burst_per_source=1)
    responder = side("r", config)
    responder.feed_init(
        proven_init(responder, ("10.0.0.1", 1)), ("10.0.0.1", 1), T0, session_count=5
    )
    assert responder.counters.drops == Counter({"session_limit": 1})
    assert len(responder.table.buckets) == 1  # the bucket was checked (a token spent) first
    responder.feed_init(
        proven_init(responder, ("10.0.0.1", 2)), ("10.0.0.1", 2), T0, session_count=5
    )
    assert responder.counters.drops == Counter({"session_limit": 1, "rate_limited": 1})
    # The first got a refusing RESPONSE (its DH is the price of telling a member "full"), and
    # no state; the second, beyond its source's budget, nothing at all.
    assert types_sent(responder) == [PacketType.HANDSHAKE_RESPONSE]
    assert len(dh_calls) == 2  # ee and es of the one refusal
    assert responder.table.half_open == 0


def test_an_admitted_init_costs_diffie_hellman_and_gets_a_response(
    dh_calls: list[int],
) -> None:
    responder = side("r")
    responder.feed_init(fresh_init(), ("10.0.0.1", 1), T0)
    assert types_sent(responder) == [PacketType.HANDSHAKE_RESPONSE]
    assert len(dh_calls) >= 2  # ee and es at least
    assert responder.table.half_open == 1
    assert len(responder.table) == 1
    assert not responder.counters.drops


# -- the initiator's retransmissions ---------------------------------------------------------
def test_init_is_retransmitted_with_backoff_and_jitter_until_the_deadline() -> None:
    initiator = side("i")
    handle = initiator.table.connect(
        b"\x00\x00\x00\x07", "nowhere", UDP, T0, timestamp_ns=1, timeout_s=30.0, capabilities=0
    )
    [(first, addr)] = initiator.take_sent()
    assert addr == "nowhere"
    assert initiator.table.initiating == 1
    assert initiator.counters.handshakes_started == 1
    resent = initiator.run_timers(T0 + 100.0)
    assert {packet for _, packet in resent} == {first}  # the same INIT every time
    times = [T0] + [t for t, _ in resent]
    intervals = [b - a for a, b in itertools.pairwise(times)]
    bases = [min(HANDSHAKE_RETRY_INITIAL_S * 2**i, HANDSHAKE_RETRY_MAX_S) for i in range(99)]
    for interval, base in zip(intervals, bases, strict=False):
        assert base <= interval <= base + J
    assert times[-1] < T0 + 30.0
    assert list(initiator.events) == [HandshakeAborted(handle, "no valid answer", timeout=True)]
    assert initiator.counters.handshakes_failed == 1
    assert len(initiator.table) == 0
    assert initiator.table.get_timer() is None


# -- versions (§19) ------------------------------------------------------------------------
def test_versions_without_our_version_fails_the_handshake_at_once() -> None:
    """A responder speaking only 1.0 (code point 1), or only a later version, names it: the
    connect fails at once with a clear reason, counted, instead of timing out."""
    initiator = side("i")
    handle = initiator.table.connect(
        b"\x00\x00\x00\x07", "peer", UDP, T0, timestamp_ns=1, timeout_s=30.0, capabilities=0
    )
    [(init, _)] = initiator.take_sent()
    key = initiator.table.secrets.mac1_key
    index = init[4:8]
    ignored = [
        versions_packet(index, key, bytes([PROTOCOL_VERSION, 1])),  # lists ours: not a refusal
        versions_packet(b"\x09\x09\x09\x09", key, b"\x01"),  # another index
        versions_packet(index, bytes(32), b"\x01"),  # not a member's (mac1)
        versions_packet(index, key, b"\x01")[:-1],  # malformed
    ]
    for packet in ignored:
        initiator.table.receive_other_version(packet, "peer")
    assert initiator.table.initiating == 1
    assert initiator.counters.drops["version"] == len(ignored)
    assert initiator.counters.version_mismatches == 0
    initiator.table.receive_other_version(versions_packet(index, key, b"\x01\x07"), "peer")
    reason = "protocol version mismatch: the peer speaks 1.0, version code 7, this node speaks 1.1"
    assert list(initiator.events) == [HandshakeAborted(handle, reason, timeout=False)]
    assert initiator.counters.version_mismatches == 1
    assert initiator.counters.handshakes_failed == 1
    assert initiator.table.initiating == 0
    assert initiator.table.get_timer() is None  # no retransmission left


def test_a_cookie_reply_makes_the_next_init_carry_mac2() -> None:
    responder = side("r", NodeConfig(handshake_half_open_max=8, handshake_load_threshold=1))
    responder.feed_init(fresh_init(), ("10.0.0.9", 1), T0)  # under load from now on
    responder.take_sent()
    initiator = side("i")
    initiator.table.connect(
        b"\x00\x00\x00\x07", "R", UDP, T0, timestamp_ns=1, timeout_s=30.0, capabilities=0
    )
    [(init, _)] = initiator.take_sent()
    responder.feed_init(init, ("10.0.0.1", 4000), T0)
    [(reply, _)] = responder.take_sent()
    assert reply[1] == PacketType.COOKIE_REPLY
    initiator.table.receive_cookie_reply(reply)
    [(_, retry)] = initiator.run_timers(T0 + HANDSHAKE_RETRY_INITIAL_S + J)
    assert retry[:-16] == init[:-16]
    assert retry[-16:] != bytes(16)
    responder.feed_init(retry, ("10.0.0.1", 4000), T0 + 1.5)
    assert types_sent(responder) == [PacketType.HANDSHAKE_RESPONSE]


def completed_exchange(
    initiator: Side, responder: Side, timeout_s: float = 20.0
) -> tuple[int, Completed, bytes]:
    """INIT, RESPONSE and FINAL between two tables; returns (handle, completed, FINAL)."""
    handle = initiator.table.connect(
        b"\x00\x00\x00\x07", "R", UDP, T0, timestamp_ns=1, timeout_s=timeout_s, capabilities=0
    )
    [(init, _)] = initiator.take_sent()
    responder.feed_init(init, "I", T0)
    [(response, _)] = responder.take_sent()
    parsed = initiator.table.check_packet(response)
    assert parsed is not None
    completed = initiator.table.receive_response(response, parsed[2], 0, T0)
    assert completed is not None
    [(final, addr)] = initiator.take_sent()
    assert (final[1], addr) == (PacketType.HANDSHAKE_FINAL, "R")
    assert initiator.table.initiating == 0
    initiator.table.confirming(completed, T0)
    return handle, completed, final


def test_final_is_retransmitted_until_the_keys_are_confirmed() -> None:
    initiator, responder = side("i"), side("r")
    handle, completed, final = completed_exchange(initiator, responder)
    assert completed.handle == handle
    sid = completed.result.session_id
    assert initiator.table.confirming_count == 1
    assert initiator.table.get_timer() == T0 + HANDSHAKE_RETRY_INITIAL_S
    resent = initiator.run_timers(T0 + 3.5)
    assert resent == [(T0 + 1.0, final), (T0 + 3.0, final)]  # no jitter, doubling
    initiator.table.confirmed(sid)  # the responder's first record arrived
    assert initiator.table.confirming_count == 0
    assert initiator.table.get_timer() is None
    assert initiator.run_timers(T0 + 100.0) == []
    assert list(initiator.events) == []
    initiator.table.confirmed(sid)  # idempotent


def test_an_unconfirmed_session_is_given_up_at_the_deadline() -> None:
    initiator, responder = side("i"), side("r")
    handle, completed, final = completed_exchange(initiator, responder, timeout_s=20.0)
    sid = completed.result.session_id
    resent: list[float] = []
    given_up: list[tuple[bytes, str]] = []
    while (at := initiator.table.get_timer()) is not None:
        given_up += initiator.table.handle_timer(at)
        resent += [at for packet, _ in initiator.take_sent() if packet == final]
    intervals = [b - a for a, b in itertools.pairwise([T0, *resent])]
    assert intervals == pytest.approx([1.0, 2.0, 4.0, 5.0, 5.0])
    reason = "no confirmation from the responder"
    assert given_up == [(sid, reason)]  # the endpoint aborts this session
    assert list(initiator.events) == [HandshakeAborted(handle, reason, timeout=True)]
    assert initiator.counters.handshakes_failed == 1
    assert initiator.table.confirming_count == 0


def test_cancel_forgets_an_initiating_and_a_confirming_handshake() -> None:
    initiator, responder = side("i"), side("r")
    handle, _, _ = completed_exchange(initiator, responder)
    other = initiator.table.connect(
        b"\x00\x00\x00\x09", "S", UDP, T0, timestamp_ns=2, timeout_s=20.0, capabilities=0
    )
    initiator.take_sent()
    assert (initiator.table.initiating, initiator.table.confirming_count) == (1, 1)
    initiator.table.cancel(handle)
    assert (initiator.table.initiating, initiator.table.confirming_count) == (1, 0)
    initiator.table.cancel(other)
    assert len(initiator.table) == 0
    assert initiator.table.get_timer() is None
    assert initiator.run_timers(T0 + 100.0) == []
    assert list(initiator.events) == []  # the caller gave up: no event


def test_forget_address_fails_the_handshakes_with_it() -> None:
    node = side("n")
    handle = node.table.connect(
        b"\x00\x00\x00\x07", "X", UDP, T0, timestamp_ns=1, timeout_s=20.0, capabilities=0
    )
    node.table.connect(
        b"\x00\x00\x00\x08", "Y", UDP, T0, timestamp_ns=2, timeout_s=20.0, capabilities=0
    )
    node.feed_init(fresh_init(), "X", T0)
    node.feed_init(fresh_init("other"), "Y", T0)
    assert (node.table.initiating, node.table.half_open) == (2, 2)
    node.table.forget_address("X")
    assert (node.table.initiating, node.table.half_open) == (1, 1)
    assert list(node.events) == [HandshakeAborted(handle, CONNECTION_CLOSED, timeout=False)]
    assert node.counters.handshakes_failed == 1


# -- on the network --------------------------------------------------------------------------
@pytest.mark.parametrize(("timeout_s", "gives_up_after"), [(40.0, 40.0), (1000.0, 90.0)])
def test_handshake_retry_backoff_and_give_up(
    net: Net, timeout_s: float, gives_up_after: float
) -> None:
    a = net.add_node("A")
    start = net.now
    handle = a.endpoint.connect("nowhere", start, link=a.link, timestamp_ns=1, timeout_s=timeout_s)
    net.flush()
    net.run(200.0)
    inits = net.sent_by(a, INIT)
    assert len({p.data for p in inits}) == 1  # every retry is the same packet
    intervals = [b - a for a, b in itertools.pairwise([p.sent_at for p in inits])]
    bases = [min(HANDSHAKE_RETRY_INITIAL_S * 2**i, HANDSHAKE_RETRY_MAX_S) for i in range(99)]
    for interval, base in zip(intervals, bases, strict=False):
        assert base <= interval <= base + J
    assert max(intervals) <= HANDSHAKE_RETRY_MAX_S + J
    assert intervals[:3] == sorted(intervals[:3])
    assert len(set(intervals)) > 3  # the jitter varies
    [(t, failed)] = a.timed_events_of(HandshakeAborted)
    assert failed == HandshakeAborted(handle, "no valid answer", timeout=True)
    assert t == pytest.approx(start + min(gives_up_after, HANDSHAKE_ATTEMPT_MAX_S))
    assert inits[-1].sent_at < t
    assert gives_up_after - HANDSHAKE_RETRY_MAX_S - J <= inits[-1].sent_at - start
    assert a.endpoint.live_handshakes() == 0
    assert a.endpoint.counters.handshakes_failed == 1
    assert a.endpoint.get_timer() is None


def test_final_retry_backoff_and_give_up(net: Net) -> None:
    # B's heartbeat would find A dead after 15 s (its records are all dropped): not the subject.
    a, b = net.add_node("A"), net.add_node("B", config=NodeConfig(ping_interval_s=None))
    net.drop(lambda p: p.sender == "B" and p.type == DATA, times=10_000)
    start = net.now
    handle = net.connect(a, b, timeout_s=20.0)
    net.run(0.0)
    [sid] = a.endpoint.sessions
    sa = a.session(sid)
    assert sa.get_timer() is None  # in its handshake: the endpoint's table times it
    assert set(handshake_table(a.endpoint, "confirming")) == {sid}
    net.run(60.0)
    finals = net.sent_by(a, FINAL)
    intervals = [b - a for a, b in itertools.pairwise([p.sent_at for p in finals])]
    assert intervals == pytest.approx([1.0, 2.0, 4.0, 5.0, 5.0])
    [(t, failed)] = a.timed_events_of(HandshakeAborted)
    assert failed == HandshakeAborted(handle, "no confirmation from the responder", timeout=True)
    assert t == pytest.approx(start + 20.0)
    assert a.events_of(SessionEstablished) == []
    assert a.endpoint.counters.handshakes_failed == 1
    # The session is aborted with it: closed, keys erased, remembered as recently closed.
    assert not a.endpoint.sessions
    assert a.events_of(SessionClosed) == [
        SessionClosed(sid, CLOSE_NORMAL, "no confirmation from the responder", False)
    ]
    assert sa.keys.erased
    assert a.endpoint.recently_closed(sid)
    assert handshake_table(a.endpoint, "confirming") == {}
    # The responder answered every copy; it holds a session the initiator gave up on.
    assert b.endpoint.drops["duplicate_final"] == len(finals) - 1


def test_half_open_handshakes_expire(net: Net) -> None:
    a, b = net.add_node("A"), net.add_node("B")
    net.connect(a, b)
    net.kill(a)
    net.run(0.0)
    start = net.now
    assert b.endpoint.live_handshakes() == 1
    assert b.endpoint.get_timer() == pytest.approx(start + RESPONDER_HALF_OPEN_TIMEOUT_S)
    net.run(RESPONDER_HALF_OPEN_TIMEOUT_S - 0.1)
    assert b.endpoint.live_handshakes() == 1
    net.run(0.2)
    assert b.endpoint.live_handshakes() == 0
    assert handshake_table(b.endpoint, "half_open_by_mac1") == {}
    assert b.endpoint.get_timer() is None


def test_a_failed_handshake_is_counted_when_it_fails_not_when_its_event_is_read(
    net: Net,
) -> None:
    a = net.add_node("A")
    ep = a.endpoint
    ep.connect("nowhere", net.now, link=a.link, timestamp_ns=1, timeout_s=5.0)
    ep.datagrams_to_send(net.now)
    while (at := ep.get_timer()) is not None:
        ep.handle_timer(at)
        ep.datagrams_to_send(at)
    assert ep.counters.handshakes_failed == 1  # before events_received() was called
    assert ep.snapshot().counters.handshakes_failed == 1
    # A session closed during its handshake fails it too: counted as the endpoint collects it.
    b = net.add_node("B")
    net.drop(lambda p: p.sender == "B" and p.type == DATA)  # the keys stay unconfirmed
    handle = ep.connect("B", net.now, link=a.link, timestamp_ns=2, timeout_s=5.0)
    net.flush_node(a)
    net.run(0.0)
    [sid] = ep.sessions
    ep.session(sid).close(0, "never mind", net.now)
    ep.datagrams_to_send(net.now)
    assert ep.counters.handshakes_failed == 2
    events = ep.events_received()
    assert HandshakeAborted(handle, "never mind", timeout=False) in events
    assert ep.counters.handshakes_failed == 2  # reading counts nothing more
    assert b.endpoint.counters.handshakes_failed == 0


def test_final_stops_once_the_responders_record_arrives(net: Net) -> None:
    a, b = net.add_node("A"), net.add_node("B")
    net.drop(lambda p: p.sender == "B" and p.type == DATA)  # the first confirmation is lost
    start = net.now
    net.connect(a, b)
    net.run(30.0)
    finals = net.sent_by(a, FINAL)
    assert [p.sent_at - start for p in finals] == pytest.approx([0.0, 1.0])
    assert b.endpoint.drops["duplicate_final"] == 1  # answered with another record
    [sid] = a.endpoint.sessions
    assert a.session(sid).is_active
    assert handshake_table(a.endpoint, "confirming") == {}
    assert a.endpoint.handshakes.confirming_count == 0
