"""How a packet reached the endpoint: a :class:`Link` names the rate-limit source, the cookie's
input and the record sizes of its transport (``docs/protocol.md`` §10, §12)."""

from __future__ import annotations

import dataclasses

import pytest

from seigr_stt.config import NodeConfig
from seigr_stt.core.endpoint import Endpoint
from seigr_stt.core.identity import NodeIdentity, SharedSecrets
from seigr_stt.core.link import Link, RelayAddress, TransportKind
from tests.core.net import SHARED_SEED, Net, make_seed, seeded_rng

UDP = Link(TransportKind.UDP, 1232, probe_max=1452)
WS = Link(TransportKind.WEBSOCKET, 65536, peer="203.0.113.7:4431", source="203.0.113.7")


def endpoint(name: str) -> Endpoint:
    """An endpoint with its own identity, in the group of ``SHARED_SEED``."""
    return Endpoint(
        NodeIdentity.from_seed(make_seed(name)),
        SharedSecrets.from_seed(SHARED_SEED),
        NodeConfig(),
        seeded_rng(name),
    )


def connect_over(
    a: Endpoint, b: Endpoint, a_side: Link, b_side: Link, now: float
) -> tuple[bytes, object, object]:
    """Establish a session from ``a`` to ``b`` over one connection (each side's address for the
    other is the connection, ``a_side``/``b_side`` each side's link); returns its id and the
    connection as ``a`` and as ``b`` address it."""
    conn_at_a, conn_at_b = object(), object()
    a.connect(conn_at_a, now, link=a_side, timestamp_ns=1, timeout_s=5.0)
    for _ in range(6):  # carry packets both ways until nothing is left
        for packet, addr in a.datagrams_to_send(now):
            assert addr is conn_at_a
            b.receive_datagram(packet, conn_at_b, now, b_side)
        for packet, addr in b.datagrams_to_send(now):
            assert addr is conn_at_b
            a.receive_datagram(packet, conn_at_a, now, a_side)
    [sid] = a.sessions
    return sid, conn_at_a, conn_at_b


def test_a_datagram_link_takes_the_source_and_cookie_input_from_the_address() -> None:
    assert UDP.source_of(("10.0.0.1", 4000)) == "10.0.0.1"  # all ports of a host: one source
    assert UDP.source_of(("10.0.0.1", 4001)) == UDP.source_of(("10.0.0.1", 4000))
    assert UDP.cookie_input(("10.0.0.1", 4000)) == b"10.0.0.1:4000"  # a cookie per port
    assert UDP.cookie_input(("::1", 4000, 0, 0)) == b"::1:4000"  # IPv6 address tuples


@pytest.mark.parametrize("addr", ["A", 42, ("lonely",), ()])
def test_an_address_that_is_not_host_and_port_is_its_own_source(addr: object) -> None:
    assert UDP.source_of(addr) == (addr[0] if isinstance(addr, tuple) and addr else addr)
    assert UDP.cookie_input(addr) == repr(addr).encode()


def test_a_connection_link_names_its_peer_and_source_whatever_the_address() -> None:
    for addr in (object(), ("127.0.0.1", 1), "conn-7"):
        assert WS.source_of(addr) == "203.0.113.7"
        assert WS.cookie_input(addr) == b"203.0.113.7:4431"


def test_links_are_frozen_and_compared_by_identity() -> None:
    twin = Link(TransportKind.UDP, 1232, probe_max=1452)
    assert twin != UDP
    assert UDP in [twin, UDP]  # found by identity, not by equal fields
    assert [twin].count(UDP) == 0
    assert len({UDP, twin}) == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        UDP.max_record_size = 9000  # type: ignore[misc]


def test_transport_kinds_are_strings() -> None:
    assert [str(kind) for kind in TransportKind] == ["udp", "websocket", "relay"]
    assert TransportKind("udp") is TransportKind.UDP


def test_a_session_takes_its_record_size_and_probe_ceiling_from_the_link() -> None:
    net = Net()
    a = net.add_node("A", max_record_size=1400)
    b = net.add_node("B", max_record_size=1400)
    sid = net.establish(a, b)
    for node in (a, b):
        session = node.session(sid)
        assert session.link is node.link
        assert session.link.kind is TransportKind.UDP
        assert session.max_record_size == 1400
        assert session.pmtu.probe_size(10**6, net.now) is None  # the sim's links do not probe


def test_the_record_size_defaults_to_what_the_link_carries_and_stays_within_it() -> None:
    assert WS.record_size == WS.max_record_size == 65536
    smaller = Link(TransportKind.WEBSOCKET, 65536, record_size=65156)
    assert (smaller.max_record_size, smaller.record_size) == (65536, 65156)
    with pytest.raises(ValueError, match="record_size"):
        Link(TransportKind.WEBSOCKET, 65536, record_size=65537)
    with pytest.raises(ValueError, match="record_size"):
        Link(TransportKind.WEBSOCKET, 65536, record_size=-1)


def test_a_session_fills_records_to_the_links_record_size_not_what_it_carries() -> None:
    # A connection that carries 65536-byte messages but sends 65156-byte records (one TCP
    # burst, §12.2): the session's records are the smaller size.
    a, b = endpoint("burst-a"), endpoint("burst-b")
    a_side = Link(TransportKind.WEBSOCKET, 65536, peer="198.51.100.2:443", record_size=65156)
    b_side = Link(TransportKind.WEBSOCKET, 65536, peer="203.0.113.7:50000", record_size=65152)
    now = 1000.0
    sid, _, _ = connect_over(a, b, a_side, b_side, now)
    assert a.session(sid).max_record_size == 65156
    assert b.session(sid).max_record_size == 65152
    a.session(sid).send_message(0, bytes(200_000), now)
    records = [packet for packet, _addr in a.datagrams_to_send(now)]
    assert len(records) >= 3
    assert max(len(r) for r in records) <= 65156
    assert max(len(r) for r in records) > 65000  # filled, not cut to some other size


def test_a_session_over_a_connection_link_keeps_that_link() -> None:
    # Two endpoints joined by one WebSocket-like connection: each side's address for the other
    # is the connection, and the connection is each side's link.
    a, b = endpoint("ws-a"), endpoint("ws-b")
    a_side = Link(TransportKind.WEBSOCKET, 65536, peer="198.51.100.2:443", source="198.51.100.2")
    b_side = Link(TransportKind.WEBSOCKET, 65536, peer="203.0.113.7:50000", source="203.0.113.7")
    now = 1000.0
    sid, _, conn_at_b = connect_over(a, b, a_side, b_side, now)
    assert b.get_session(sid) is not None
    assert a.session(sid).is_active
    assert a.session(sid).link is a_side
    assert b.session(sid).link is b_side
    assert b.session(sid).max_datagram_size > 60_000  # the connection's record size
    assert len(b.handshakes.buckets) == 0  # no cookie needed, so no source charged
    b.abort_address(conn_at_b, 1, "connection closed")
    b.datagrams_to_send(now)
    assert not b.sessions
    assert b.recently_closed(sid)


def test_a_relayed_peer_is_its_relay_and_node_id() -> None:
    relay = Link(TransportKind.RELAY, 1198, peer="udp://192.0.2.1:9400")
    node_id = bytes(range(32))
    addr = RelayAddress("udp://192.0.2.1:9400", node_id)
    assert addr == RelayAddress("udp://192.0.2.1:9400", node_id)
    assert relay.source_of(addr) == addr  # the handshake rate limit is per relayed peer
    assert relay.cookie_input(addr) == b"udp://192.0.2.1:9400#" + node_id
    assert node_id.hex() not in repr(addr)  # short form
