"""The per-source handshake token bucket (docs/protocol.md §10), sans-I/O.

Where it sits among the INIT checks: after mac1 (a non-member's garbage never touches it), after
the cookie check (an INIT answered with a cookie spends nothing), before any Diffie-Hellman.
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
    HANDSHAKE_RATE_PER_SOURCE_PER_S,
    HANDSHAKE_RATE_SOURCES_MAX,
    PACKET_COOKIE_REPLY,
    PACKET_HANDSHAKE_RESPONSE,
    UDP_MAX_RECORD_SIZE,
)
from seigr_stt.core.endpoint import Endpoint
from seigr_stt.core.handshake import InitiatorHandshake
from seigr_stt.core.identity import NodeIdentity, SharedSecrets
from seigr_stt.core.link import Link, TransportKind
from seigr_stt.core.ratelimit import TokenBuckets
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


def init_packet() -> bytes:
    handshake = InitiatorHandshake(
        INITIATOR, SECRETS, os.urandom(4), capabilities=0, timestamp_ns=1, rng=os.urandom
    )
    return handshake.init_packet()


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


# -- in the endpoint ------------------------------------------------------------------------------
def test_defaults_and_config_fields() -> None:
    config = NodeConfig()
    assert config.handshake_rate_per_source_per_s == HANDSHAKE_RATE_PER_SOURCE_PER_S == 20.0
    assert config.handshake_burst_per_source == HANDSHAKE_BURST_PER_SOURCE == 40
    assert HANDSHAKE_RATE_SOURCES_MAX == 4096
    assert "rate_limited" in tuple(DropReason)
    assert responder().handshakes.buckets.max_sources == HANDSHAKE_RATE_SOURCES_MAX


def test_inits_beyond_the_burst_are_rate_limited_per_source() -> None:
    ep = responder(NodeConfig(handshake_burst_per_source=3, handshake_rate_per_source_per_s=1.0))
    # Four ports of one host share its bucket: on a datagram link the source is the host.
    outs = [feed(ep, init_packet(), ("10.0.0.1", 1000 + i), START) for i in range(4)]
    assert outs == [[PACKET_HANDSHAKE_RESPONSE]] * 3 + [[]]
    assert ep.drops == Counter({"rate_limited": 1})
    assert ep.handshakes.half_open == 3
    # Another host has its own bucket; the first host's refills with time.
    assert feed(ep, init_packet(), ("10.0.0.2", 1), START) == [PACKET_HANDSHAKE_RESPONSE]
    assert feed(ep, init_packet(), ("10.0.0.1", 9), START + 1.0) == [PACKET_HANDSHAKE_RESPONSE]


def test_websocket_connections_of_one_host_share_its_bucket() -> None:
    ep = responder(NodeConfig(handshake_burst_per_source=3, handshake_rate_per_source_per_s=1.0))
    # Each connection is its own link and address; the link names the host as the source.
    links = [websocket("10.0.0.1", 1000 + i) for i in range(4)]
    outs = [feed(ep, init_packet(), object(), START, link) for link in links]
    assert outs == [[PACKET_HANDSHAKE_RESPONSE]] * 3 + [[]]
    assert ep.drops == Counter({"rate_limited": 1})
    other = websocket("10.0.0.2", 1000)
    assert feed(ep, init_packet(), object(), START, other) == [PACKET_HANDSHAKE_RESPONSE]
    assert feed(ep, init_packet(), object(), START + 1.0, links[0]) == [PACKET_HANDSHAKE_RESPONSE]


def test_without_a_source_the_address_is_the_key() -> None:
    ep = responder(NodeConfig(handshake_burst_per_source=1))
    assert feed(ep, init_packet(), "A", START) == [PACKET_HANDSHAKE_RESPONSE]
    assert feed(ep, init_packet(), "A", START) == []
    assert feed(ep, init_packet(), "B", START) == [PACKET_HANDSHAKE_RESPONSE]
    assert ep.drops == Counter({"rate_limited": 1})


def test_bad_mac1_spends_no_token_and_retransmitted_inits_are_budgeted() -> None:
    ep = responder(NodeConfig(handshake_burst_per_source=1))
    garbage = bytearray(init_packet())
    garbage[-20] ^= 1  # mac1 broken
    for _ in range(5):
        assert feed(ep, bytes(garbage), "A", START) == []
    init = init_packet()
    assert feed(ep, init, "A", START) == [PACKET_HANDSHAKE_RESPONSE]
    # The same INIT again (a lost RESPONSE, or a replay of a captured INIT): answered with the
    # stored RESPONSE, but only within the source's budget, and the bucket is empty now.
    assert feed(ep, init, "A", START) == []
    assert ep.drops == Counter({"mac1": 5, "rate_limited": 1})
    later = START + 2.0 / ep.config.handshake_rate_per_source_per_s  # a token again
    assert feed(ep, init, "A", later) == [PACKET_HANDSHAKE_RESPONSE]
    assert ep.counters.init_retransmits_answered == 1
    assert ep.drops["rate_limited"] == 1


def test_an_init_answered_with_a_cookie_spends_no_token() -> None:
    config = NodeConfig(
        handshake_load_threshold=1, handshake_half_open_max=8, handshake_burst_per_source=2
    )
    ep = responder(config)
    assert feed(ep, init_packet(), "A", START) == [PACKET_HANDSHAKE_RESPONSE]  # now under load
    for _ in range(5):
        assert feed(ep, init_packet(), "A", START) == [PACKET_COOKIE_REPLY]
    assert ep.drops == Counter({"cookie_required": 5})
    assert len(ep.handshakes.buckets) == 1
    # A mac2-valid INIT from "A" passes the cookie check and spends the last token...
    handshake = InitiatorHandshake(
        INITIATOR, SECRETS, os.urandom(4), capabilities=0, timestamp_ns=2, rng=os.urandom
    )
    cookie = ep.handshakes.cookies.cookie_for(UDP.cookie_input("A"), START)
    assert feed(ep, handshake.init_packet(cookie), "A", START) == [PACKET_HANDSHAKE_RESPONSE]
    # ... and the next one finds the bucket empty: no DH, no answer.
    again = InitiatorHandshake(
        INITIATOR, SECRETS, os.urandom(4), capabilities=0, timestamp_ns=3, rng=os.urandom
    )
    assert feed(ep, again.init_packet(cookie), "A", START) == []
    assert ep.drops["rate_limited"] == 1
    assert ep.handshakes.half_open == 2


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
    assert feed(ep, init_packet(), first, START, link) == [PACKET_HANDSHAKE_RESPONSE]
    assert feed(ep, init_packet(), second, START, link) == []
    assert len(ep.handshakes.buckets) == 1
