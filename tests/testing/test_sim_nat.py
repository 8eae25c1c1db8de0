"""Sans-I/O endpoints behind simulated NATs: hole punching, symmetric NATs, expiring mappings.

Two endpoints A and B sit behind their own NAT; a public node S plays the STUN server: each side
learns its public address as S observes it (the source of a probe delivered to S), and the
addresses are exchanged out of band (the test passes them on, as a relay or a ticket would).
"""

from __future__ import annotations

from seigr_stt.config import NodeConfig
from seigr_stt.core.events import HandshakeAborted, MessageReceived, SessionEstablished
from seigr_stt.testing import NAT, Firewall, NATConfig, Net, Node, seeded_rng

STUN = ("192.0.2.1", 3478)
A_INSIDE = ("10.0.0.2", 4000)
B_INSIDE = ("10.0.1.2", 4000)
#: No heartbeat and no idle close: only the application and the keepalives under test send.
QUIET = NodeConfig(ping_interval_s=None, session_idle_timeout_s=None)


def setup(
    config_a: NATConfig,
    config_b: NATConfig,
    node_config: NodeConfig | None = None,
    *,
    seed: int = 1,
) -> tuple[Net, Node, Node, NAT, NAT]:
    net = Net(seed=seed, delay_s=(0.010, 0.020))
    nat_a = net.add_nat(NAT(config_a, "203.0.113.1", seeded_rng("nat-a")))
    nat_b = net.add_nat(NAT(config_b, "203.0.113.2", seeded_rng("nat-b")))
    net.add_node("S", addr=STUN)
    a = net.add_node("A", addr=A_INSIDE, behind=nat_a, config=node_config)
    b = net.add_node("B", addr=B_INSIDE, behind=nat_b, config=node_config)
    return net, a, b, nat_a, nat_b


def observed(net: Net, node: Node) -> object:
    """The node's public address as the STUN server sees it."""
    probe = net.send_raw(node, b"stun?", STUN)
    net.run(0.1)
    assert probe.fate == "delivered"
    assert probe.inside_src == node.addr
    return probe.src


def punch_and_connect(net: Net, a: Node, b: Node, *, punch: bool) -> int:
    """Each side learns its public address from S; with ``punch`` each sends a probe to the
    other's (the first is dropped by the far NAT, and each opens the near one); then A
    connects to B's observed address. Returns the handle."""
    a_public, b_public = observed(net, a), observed(net, b)
    if punch:  # A first: its probe meets B's NAT before B's probe opened it
        net.send_raw(a, b"punch", b_public)
        net.run(0.1)
        net.send_raw(b, b"punch", a_public)
        net.run(0.1)
    handle = net.connect(a, b, to=b_public, timeout_s=3.0)
    net.run(4.0)
    return handle


def established(node: Node, handle: int) -> bool:
    return any(e.handle == handle for e in node.events_of(SessionEstablished))


def test_full_cone_nats_let_a_direct_session_through() -> None:
    net, a, b, nat_a, nat_b = setup(NATConfig.full_cone(), NATConfig.full_cone())
    handle = punch_and_connect(net, a, b, punch=False)  # endpoint-independent filtering
    assert established(a, handle)
    (event,) = b.events_of(SessionEstablished)
    assert event.addr == ("203.0.113.1", 4000)  # A's public address, its port preserved
    a.session(event.session_id).send_message(0, b"through two NATs", net.now)
    net.flush()
    net.run(1.0)
    assert [m.data for m in b.events_of(MessageReceived)] == [b"through two NATs"]
    assert nat_a.stats.translated_out > 0
    assert nat_b.stats.translated_in > 0
    assert nat_a.stats.dropped_filtered == nat_b.stats.dropped_filtered == 0


def test_port_restricted_cones_need_both_sides_to_punch() -> None:
    net, a, b, _, nat_b = setup(NATConfig.port_restricted_cone(), NATConfig.port_restricted_cone())
    handle = punch_and_connect(net, a, b, punch=False)
    assert not established(a, handle)
    assert [e.timeout for e in a.events_of(HandshakeAborted)] == [True]
    assert nat_b.stats.dropped_filtered > 0  # A's handshake was unsolicited at B's NAT

    net, a, b, nat_a, nat_b = setup(
        NATConfig.port_restricted_cone(), NATConfig.port_restricted_cone()
    )
    handle = punch_and_connect(net, a, b, punch=True)
    assert established(a, handle)
    assert b.events_of(SessionEstablished)
    # Exactly one packet was lost: A's punch, which reached B's NAT before B punched.
    assert nat_b.stats.dropped_filtered == 1
    assert nat_a.stats.dropped_filtered == 0
    punches = [p for p in net.log if p.data == b"punch"]
    assert sorted(p.fate for p in punches) == ["delivered", "nat"]


def test_symmetric_nats_defeat_hole_punching() -> None:
    net, a, b, nat_a, nat_b = setup(NATConfig.symmetric(), NATConfig.symmetric())
    handle = punch_and_connect(net, a, b, punch=True)
    assert not established(a, handle)
    assert not b.events_of(SessionEstablished)
    # Each NAT made a fresh port for the peer, so every packet came from an address the far
    # NAT had not been told about: its mapping toward S filtered them all.
    assert nat_a.stats.mappings_created == nat_b.stats.mappings_created == 2
    assert nat_a.stats.translated_in == nat_b.stats.translated_in == 0
    assert nat_a.stats.dropped_filtered > 0
    assert nat_b.stats.dropped_filtered > 0


def test_one_full_cone_side_is_enough_for_a_symmetric_peer_to_dial_it() -> None:
    net, a, b, _, _ = setup(NATConfig.symmetric(), NATConfig.full_cone())
    handle = punch_and_connect(net, a, b, punch=False)
    assert established(a, handle)


def test_an_expired_mapping_drops_traffic() -> None:
    net, a, b, nat_a, _ = setup(
        NATConfig.full_cone(mapping_timeout_s=30.0), NATConfig.full_cone(), QUIET
    )
    sid = net.establish(a, b, to=observed(net, b))
    net.run(60.0)  # idle: nothing refreshes A's mapping
    b.session(sid).send_message(0, b"too late", net.now)
    net.flush()
    net.run(2.0)
    assert a.events_of(MessageReceived) == []
    assert nat_a.stats.mappings_expired == 1
    assert nat_a.stats.dropped_no_mapping > 0
    assert any(p.sender == "B" and p.fate == "nat" for p in net.log)


def test_a_persistent_keepalive_keeps_the_mapping_open() -> None:
    config = NodeConfig(
        ping_interval_s=None, session_idle_timeout_s=None, persistent_keepalive_s=10
    )
    net, a, b, nat_a, _ = setup(
        NATConfig.full_cone(mapping_timeout_s=30.0), NATConfig.full_cone(), config
    )
    sid = net.establish(a, b, to=observed(net, b))
    net.run(60.0)
    b.session(sid).send_message(0, b"still here", net.now)
    net.flush()
    net.run(2.0)
    assert [m.data for m in a.events_of(MessageReceived)] == [b"still here"]
    assert nat_a.stats.mappings_expired == 0


def test_hairpinning_lets_two_nodes_behind_one_nat_meet_at_its_public_address() -> None:
    for hairpinning in (True, False):
        net = Net(seed=3)
        nat = net.add_nat(
            NAT(NATConfig.full_cone(hairpinning=hairpinning), "203.0.113.9", seeded_rng(0))
        )
        net.add_node("S", addr=STUN)
        a = net.add_node("A", addr=("10.0.0.2", 4000), behind=nat)
        b = net.add_node("B", addr=("10.0.0.3", 4001), behind=nat)
        b_public = observed(net, b)
        handle = net.connect(a, b, to=b_public, timeout_s=2.0)
        net.run(3.0)
        assert established(a, handle) is hairpinning
        assert (nat.stats.dropped_hairpin > 0) is not hairpinning


def test_private_addresses_are_reachable_only_from_the_same_side() -> None:
    net, a, b, _, _ = setup(NATConfig.full_cone(), NATConfig.full_cone())
    outside = net.add_node("O", addr=("192.0.2.50", 9000))
    lan = net.add_node("L", addr=("10.0.0.9", 4000), behind=a.nat)
    assert net.send_raw(outside, b"x", A_INSIDE).fate == "unroutable"
    assert net.send_raw(b, b"x", A_INSIDE).fate == "unroutable"
    direct = net.send_raw(lan, b"x", A_INSIDE)
    net.run(0.1)
    assert direct.fate == "delivered"
    assert direct.inside_src is None
    assert net.send_raw(outside, b"x", ("198.51.100.1", 1)).fate == "unroutable"


def test_a_firewall_in_the_nat_drops_the_handshake() -> None:
    net = Net(seed=4)
    wall = Firewall()
    nat = net.add_nat(NAT(NATConfig.full_cone(), "203.0.113.1", seeded_rng(0), firewall=wall))
    a = net.add_node("A", addr=A_INSIDE, behind=nat)
    s = net.add_node("S", addr=STUN)
    handle = net.connect(a, s, timeout_s=1.0)
    net.run(2.0)
    assert not established(a, handle)
    assert wall.stats.udp_dropped == nat.stats.dropped_firewall > 0
    assert {p.fate for p in net.sent_by(a)} == {"nat"}
