"""The handshake budget (docs/protocol.md §10), sans-I/O: a node-wide bucket for INITs without
a cookie, per-source buckets for INITs whose cookie (mac2) proved their source.

Where it sits among the INIT checks: after mac1 (a non-member's garbage never touches it), after
the half-open limit, before any Diffie-Hellman. An INIT answered with a cookie spends nothing,
and no spoofed address can spend an honest host's tokens (audit F5).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Hashable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seigr_stt.config import NodeConfig
from seigr_stt.constants import (
    HANDSHAKE_BURST_PER_SOURCE,
    HANDSHAKE_BURST_UNPROVEN,
    HANDSHAKE_RATE_PER_SOURCE_PER_S,
    HANDSHAKE_RATE_SOURCES_MAX,
    HANDSHAKE_RATE_UNPROVEN_PER_S,
    PACKET_COOKIE_REPLY,
    PACKET_HANDSHAKE_RESPONSE,
    UDP_MAX_RECORD_SIZE,
)
from seigr_stt.core.crypto import mac as crypto_mac
from seigr_stt.core.endpoint import Endpoint
from seigr_stt.core.handshake import InitiatorHandshake
from seigr_stt.core.identity import NodeIdentity, SharedSecrets
from seigr_stt.core.link import Link, TransportKind
from seigr_stt.core.ratelimit import TokenBucket, TokenBuckets
from seigr_stt.core.stats import DropReason
from seigr_stt.testing import SHARED_SEED, START, make_seed, seeded_rng

SECRETS = SharedSecrets.from_seed(SHARED_SEED)
INITIATOR = NodeIdentity.from_seed(make_seed("initiator"))
UDP = Link(TransportKind.UDP, UDP_MAX_RECORD_SIZE)


def websocket(host: str, port: int) -> Link:
    """One WebSocket connection from ``host:port``: its own link, its host the source."""
    return Link(TransportKind.WEBSOCKET, 65536, peer=f"{host}:{port}", source=host)


def responder(config: NodeConfig | None = None) -> Endpoint:
    return Endpoint(
        NodeIdentity.from_seed(make_seed("responder")),
        SECRETS,
        config or NodeConfig(),
        seeded_rng("responder"),
    )


def init_packet(cookie: bytes | None = None) -> bytes:
    handshake = InitiatorHandshake(
        INITIATOR, SECRETS, os.urandom(4), capabilities=0, timestamp_ns=1, rng=os.urandom
    )
    return handshake.init_packet(cookie)


def proven_init(ep: Endpoint, addr: Hashable, link: Link = UDP, now: float = START) -> bytes:
    """An INIT whose mac2 carries the cookie ``ep`` gives ``addr`` (as if from a cookie reply)."""
    return init_packet(ep.handshakes.cookies.cookie_for(link.cookie_input(addr), now))


def feed(ep: Endpoint, packet: bytes, addr: Hashable, now: float, link: Link = UDP) -> list[int]:
    """One packet in by ``link``; the types of the packets that came out."""
    ep.receive_datagram(packet, addr, now, link)
    return [p[1] for p, _ in ep.datagrams_to_send(now)]


# -- the bucket -----------------------------------------------------------------------------------
def test_a_new_source_has_a_full_bucket_then_the_rate() -> None:
    buckets = TokenBuckets(rate=2.0, burst=3, max_sources=8)
    assert [buckets.take("a", 0.0) for _ in range(4)] == [True, True, True, False]
    assert not buckets.take("a", 0.4)  # 0.8 token
    assert buckets.take("a", 0.5)  # 1.0 token
    assert not buckets.take("a", 0.5)
    assert buckets.take("b", 0.5)  # another source is not affected
    assert [buckets.take("a", 100.0) for _ in range(4)] == [True, True, True, False]  # capped


def test_a_clock_stepping_back_refills_nothing() -> None:
    buckets = TokenBuckets(rate=10.0, burst=1, max_sources=8)
    assert buckets.take("a", 50.0)
    assert not buckets.take("a", 10.0)
    assert not buckets.take("a", 50.05)  # still measured from 50.0, the later time
    assert buckets.take("a", 50.1)


def test_the_table_keeps_the_most_recent_sources() -> None:
    buckets = TokenBuckets(rate=1.0, burst=1, max_sources=3)
    for source in "abc":
        assert buckets.take(source, 0.0)
    assert not buckets.take("a", 0.0)  # "a" is now the most recent
    assert buckets.take("d", 0.0)  # evicts "b", the least recent
    assert len(buckets) == 3
    assert buckets.take("b", 0.0)  # forgotten: back with a full bucket (evicts "c")
    assert not buckets.take("a", 0.0)  # "a" was kept, still empty


@settings(deadline=None)
@given(
    rate=st.floats(min_value=0.1, max_value=100.0),
    burst=st.integers(min_value=1, max_value=50),
    steps=st.lists(
        st.tuples(st.floats(min_value=0.0, max_value=2.0), st.integers(0, 2)), max_size=200
    ),
)
def test_no_source_ever_gets_more_than_burst_plus_rate_times_time(
    rate: float, burst: int, steps: list[tuple[float, int]]
) -> None:
    buckets = TokenBuckets(rate=rate, burst=burst, max_sources=16)
    now = 0.0
    granted: Counter[int] = Counter()
    for dt, source in steps:
        now += dt
        if buckets.take(source, now):
            granted[source] += 1
        assert granted[source] <= burst + rate * now + 1e-6
    assert len(buckets) <= 3


def test_the_single_bucket_refills_caps_and_ignores_a_clock_stepping_back() -> None:
    bucket = TokenBucket(rate=2.0, burst=2, now=10.0)
    assert [bucket.take(10.0) for _ in range(3)] == [True, True, False]
    assert not bucket.available(10.4)  # 0.8 token
    assert bucket.available(10.5)  # looking spends nothing
    assert bucket.take(10.5)
    assert not bucket.take(5.0)  # back in time: nothing refilled
    assert not bucket.take(10.9)  # still measured from 10.5
    assert [bucket.take(1000.0) for _ in range(3)] == [True, True, False]  # capped at the burst


# -- in the endpoint ------------------------------------------------------------------------------
def test_defaults_and_config_fields() -> None:
    config = NodeConfig()
    assert config.handshake_rate_per_source_per_s == HANDSHAKE_RATE_PER_SOURCE_PER_S == 20.0
    assert config.handshake_burst_per_source == HANDSHAKE_BURST_PER_SOURCE == 40
    assert config.handshake_rate_unproven_per_s == HANDSHAKE_RATE_UNPROVEN_PER_S == 100.0
    assert config.handshake_burst_unproven == HANDSHAKE_BURST_UNPROVEN == 200
    assert HANDSHAKE_RATE_SOURCES_MAX == 4096
    assert "rate_limited" in tuple(DropReason)
    assert responder().handshakes.buckets.max_sources == HANDSHAKE_RATE_SOURCES_MAX


def test_inits_without_a_cookie_share_one_node_wide_bucket_then_get_cookies() -> None:
    ep = responder(NodeConfig(handshake_burst_unproven=3, handshake_rate_unproven_per_s=1.0))
    outs = [feed(ep, init_packet(), (f"10.0.0.{i}", 1000), START) for i in range(5)]
    assert outs == [[PACKET_HANDSHAKE_RESPONSE]] * 3 + [[PACKET_COOKIE_REPLY]] * 2
    assert ep.drops == Counter({"cookie_required": 2})
    assert len(ep.handshakes.buckets) == 0  # no source was charged: none is proven
    assert ep.handshakes.half_open == 3
    # With the cookie of its reply, a host is proven and spends its own bucket instead...
    addr = ("10.0.0.4", 1000)
    assert feed(ep, proven_init(ep, addr), addr, START) == [PACKET_HANDSHAKE_RESPONSE]
    assert len(ep.handshakes.buckets) == 1
    # ...and the node-wide bucket refills with time.
    assert feed(ep, init_packet(), ("10.0.0.9", 1), START + 1.0) == [PACKET_HANDSHAKE_RESPONSE]


def test_proven_inits_beyond_the_burst_are_rate_limited_per_source() -> None:
    ep = responder(NodeConfig(handshake_burst_per_source=3, handshake_rate_per_source_per_s=1.0))
    # Four ports of one host share its bucket: on a datagram link the source is the host.
    addrs = [("10.0.0.1", 1000 + i) for i in range(4)]
    outs = [feed(ep, proven_init(ep, addr), addr, START) for addr in addrs]
    assert outs == [[PACKET_HANDSHAKE_RESPONSE]] * 3 + [[]]
    assert ep.drops == Counter({"rate_limited": 1})
    assert ep.handshakes.half_open == 3
    # Another host has its own bucket; the first host's refills with time.
    other = ("10.0.0.2", 1)
    assert feed(ep, proven_init(ep, other), other, START) == [PACKET_HANDSHAKE_RESPONSE]
    addr = ("10.0.0.1", 9)
    assert feed(ep, proven_init(ep, addr), addr, START + 1.0) == [PACKET_HANDSHAKE_RESPONSE]


def test_websocket_connections_of_one_host_share_its_bucket() -> None:
    ep = responder(NodeConfig(handshake_burst_per_source=3, handshake_rate_per_source_per_s=1.0))
    # Each connection is its own link and address; the link names the host as the source.
    links = [websocket("10.0.0.1", 1000 + i) for i in range(4)]
    addrs = [object() for _ in links]
    outs = [
        feed(ep, proven_init(ep, addr, link), addr, START, link)
        for addr, link in zip(addrs, links, strict=True)
    ]
    assert outs == [[PACKET_HANDSHAKE_RESPONSE]] * 3 + [[]]
    assert ep.drops == Counter({"rate_limited": 1})
    other, addr = websocket("10.0.0.2", 1000), object()
    assert feed(ep, proven_init(ep, addr, other), addr, START, other) == [PACKET_HANDSHAKE_RESPONSE]
    packet = proven_init(ep, addrs[0], links[0])
    assert feed(ep, packet, addrs[0], START + 1.0, links[0]) == [PACKET_HANDSHAKE_RESPONSE]


def test_a_spoofer_replaying_a_hosts_init_cannot_lock_that_host_out() -> None:
    """Audit F5: one captured INIT replayed with the victim's source address, many times.
    It never spends the victim's tokens; once the node-wide bucket is empty the copies get
    cookie replies (smaller than the INIT) and no Diffie-Hellman, and the victim, which does
    receive at its address, comes in with its cookie."""
    config = NodeConfig(
        handshake_burst_unproven=5,
        handshake_rate_unproven_per_s=1.0,
        handshake_burst_per_source=2,
        handshake_rate_per_source_per_s=0.1,
    )
    ep = responder(config)
    victim = ("10.0.0.7", 4000)
    captured = init_packet()
    outs = [feed(ep, captured, victim, START + i * 0.01) for i in range(100)]
    responses = sum(out == [PACKET_HANDSHAKE_RESPONSE] for out in outs)
    cookies = sum(out == [PACKET_COOKIE_REPLY] for out in outs)
    assert responses == 5  # the first and 4 "retransmissions", all from the node-wide bucket
    assert cookies == 95
    assert ep.handshakes.half_open == 1  # one Diffie-Hellman in all
    assert len(ep.handshakes.buckets) == 0  # nobody's per-source tokens were spent
    # The victim's own handshakes go through with the cookie its address receives.
    for _ in range(2):
        packet = proven_init(ep, victim, now=START + 1.0)
        assert feed(ep, packet, victim, START + 1.0) == [PACKET_HANDSHAKE_RESPONSE]


def test_bad_mac1_spends_nothing_and_retransmitted_inits_are_budgeted() -> None:
    ep = responder(NodeConfig(handshake_burst_unproven=2, handshake_rate_unproven_per_s=1.0))
    garbage = bytearray(init_packet())
    garbage[-20] ^= 1  # mac1 broken
    for _ in range(5):
        assert feed(ep, bytes(garbage), "A", START) == []
    init = init_packet()
    assert feed(ep, init, "A", START) == [PACKET_HANDSHAKE_RESPONSE]
    # The same INIT again (a lost RESPONSE, or a replay of a captured INIT): answered with the
    # stored RESPONSE within the node-wide budget...
    assert feed(ep, init, "A", START) == [PACKET_HANDSHAKE_RESPONSE]
    # ...then, that bucket empty, with a cookie reply; with the cookie, the stored RESPONSE.
    assert feed(ep, init, "A", START) == [PACKET_COOKIE_REPLY]
    cookie = ep.handshakes.cookies.cookie_for(UDP.cookie_input("A"), START)
    with_cookie = init[:-16] + crypto_mac(cookie, init[:-16])
    assert feed(ep, with_cookie, "A", START) == [PACKET_HANDSHAKE_RESPONSE]
    assert ep.drops == Counter({"mac1": 5, "cookie_required": 1})
    assert ep.counters.init_retransmits_answered == 2
    assert ep.handshakes.half_open == 1


def test_an_init_answered_with_a_cookie_spends_no_token() -> None:
    config = NodeConfig(
        handshake_load_threshold=1, handshake_half_open_max=8, handshake_burst_per_source=2
    )
    ep = responder(config)
    assert feed(ep, init_packet(), "A", START) == [PACKET_HANDSHAKE_RESPONSE]  # now under load
    for _ in range(5):
        assert feed(ep, init_packet(), "A", START) == [PACKET_COOKIE_REPLY]
    assert ep.drops == Counter({"cookie_required": 5})
    assert len(ep.handshakes.buckets) == 0
    # Two mac2-valid INITs from "A" pass the cookie check and spend its two tokens...
    for _ in range(2):
        assert feed(ep, proven_init(ep, "A"), "A", START) == [PACKET_HANDSHAKE_RESPONSE]
    # ... and the next one finds the bucket empty: no DH, no answer.
    assert feed(ep, proven_init(ep, "A"), "A", START) == []
    assert ep.drops["rate_limited"] == 1
    assert ep.handshakes.half_open == 3


@pytest.mark.parametrize(
    ("first", "second", "link"),
    [
        (("x", 1), ("x", 2), UDP),  # a datagram link: the host of the address
        ("A", "A", UDP),  # an address that is not a tuple is its own source
        (42, 42, UDP),
        (("x", 1), ("y", 2), websocket("10.0.0.1", 5)),  # the link names the source
    ],
)
def test_any_hashable_source(first: Hashable, second: Hashable, link: Link) -> None:
    ep = responder(NodeConfig(handshake_burst_per_source=1))
    assert feed(ep, proven_init(ep, first, link), first, START, link) == [PACKET_HANDSHAKE_RESPONSE]
    assert feed(ep, proven_init(ep, second, link), second, START, link) == []
    assert len(ep.handshakes.buckets) == 1
