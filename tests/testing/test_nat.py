"""The pure NAT and firewall models: mapping, filtering, timeouts, ports, hairpinning, counters."""

from __future__ import annotations

import random

import pytest

from seigr_stt.testing import (
    NAT,
    Behavior,
    Firewall,
    NATConfig,
    PortAllocation,
    seeded_rng,
)

INSIDE = ("10.0.0.2", 5000)
OTHER_INSIDE = ("10.0.0.3", 5000)
PEER = ("198.51.100.7", 7000)
PEER_OTHER_PORT = ("198.51.100.7", 7001)
PEER_OTHER_HOST = ("198.51.100.8", 7000)
T0 = 1000.0


def nat(config: NATConfig, **kwargs: object) -> NAT:
    return NAT(config, "203.0.113.1", seeded_rng("nat"), **kwargs)  # type: ignore[arg-type]


def test_full_cone_one_mapping_anyone_may_answer() -> None:
    box = nat(NATConfig.full_cone())
    public = box.outbound(INSIDE, PEER, T0)
    assert public == ("203.0.113.1", 5000)  # the inside port, preserved
    assert box.outbound(INSIDE, PEER_OTHER_HOST, T0) == public  # endpoint-independent mapping
    stranger = ("192.0.2.99", 1234)
    assert box.inbound(stranger, public, T0 + 1) == INSIDE  # endpoint-independent filtering
    assert box.stats.translated_out == 2
    assert box.stats.translated_in == 1
    assert box.stats.mappings_created == 1


def test_restricted_cone_filters_by_host_only() -> None:
    box = nat(NATConfig.restricted_cone())
    public = box.outbound(INSIDE, PEER, T0)
    assert public is not None
    assert box.inbound(PEER_OTHER_PORT, public, T0) == INSIDE
    assert box.inbound(PEER_OTHER_HOST, public, T0) is None
    assert box.stats.dropped_filtered == 1


def test_port_restricted_cone_filters_by_endpoint() -> None:
    box = nat(NATConfig.port_restricted_cone())
    public = box.outbound(INSIDE, PEER, T0)
    assert public is not None
    assert box.inbound(PEER, public, T0) == INSIDE
    assert box.inbound(PEER_OTHER_PORT, public, T0) is None
    assert box.inbound(PEER_OTHER_HOST, public, T0) is None
    assert box.stats.dropped_filtered == 2
    # The hole punch: after the inside sends to the other port, that port may answer.
    assert box.outbound(INSIDE, PEER_OTHER_PORT, T0) == public
    assert box.inbound(PEER_OTHER_PORT, public, T0) == INSIDE


def test_symmetric_a_new_random_port_per_remote_endpoint() -> None:
    box = nat(NATConfig.symmetric())
    first = box.outbound(INSIDE, PEER, T0)
    second = box.outbound(INSIDE, PEER_OTHER_PORT, T0)
    third = box.outbound(INSIDE, PEER_OTHER_HOST, T0)
    assert first is not None
    assert second is not None
    assert third is not None
    assert len({first, second, third}) == 3
    assert box.outbound(INSIDE, PEER, T0) == first  # the same remote keeps its mapping
    # The address PEER observed is useless to anyone else, even the same host.
    assert box.inbound(PEER_OTHER_PORT, first, T0) is None
    assert box.stats.mappings_created == 3


def test_address_dependent_mapping_shares_a_port_per_host() -> None:
    box = nat(NATConfig(mapping=Behavior.ADDRESS_DEPENDENT))
    assert box.outbound(INSIDE, PEER, T0) == box.outbound(INSIDE, PEER_OTHER_PORT, T0)
    assert box.outbound(INSIDE, PEER, T0) != box.outbound(INSIDE, PEER_OTHER_HOST, T0)


def test_port_preservation_falls_back_to_random() -> None:
    box = nat(NATConfig.full_cone())
    assert box.outbound(INSIDE, PEER, T0) == ("203.0.113.1", 5000)
    other = box.outbound(OTHER_INSIDE, PEER, T0)  # same inside port 5000, taken
    assert other is not None
    assert other[1] != 5000


def test_random_allocation_is_reproducible_from_the_rng() -> None:
    def ports(seed: str) -> list[int]:
        box = NAT(
            NATConfig.full_cone(allocation=PortAllocation.RANDOM), "203.0.113.1", seeded_rng(seed)
        )
        out = []
        for i in range(5):
            public = box.outbound(("10.0.0.2", 5000 + i), PEER, T0)
            assert public is not None
            out.append(public[1])
        return out

    assert ports("a") == ports("a")
    assert ports("a") != ports("b")
    assert all(1024 <= p <= 65535 for p in ports("a"))


def test_an_idle_mapping_expires_and_outbound_traffic_refreshes_it() -> None:
    box = nat(NATConfig.full_cone(mapping_timeout_s=30.0))
    public = box.outbound(INSIDE, PEER, T0)
    assert public is not None
    assert box.outbound(INSIDE, PEER, T0 + 25) == public  # refresh at 25 s
    assert box.inbound(PEER, public, T0 + 50) == INSIDE  # 25 s after the refresh: live
    assert box.inbound(PEER, public, T0 + 56) is None  # 31 s idle: gone
    assert box.stats.mappings_expired == 1
    assert box.stats.dropped_no_mapping == 1
    assert box.mappings(T0 + 56) == []


def test_inbound_traffic_refreshes_only_when_configured() -> None:
    for refreshes, expected in ((False, None), (True, INSIDE)):
        box = nat(NATConfig.full_cone(mapping_timeout_s=10.0, inbound_refreshes=refreshes))
        public = box.outbound(INSIDE, PEER, T0)
        assert public is not None
        assert box.inbound(PEER, public, T0 + 8) == INSIDE
        assert box.inbound(PEER, public, T0 + 16) == expected


def test_a_permission_expires_while_the_mapping_lives_on() -> None:
    box = nat(NATConfig.port_restricted_cone(mapping_timeout_s=10.0))
    public = box.outbound(INSIDE, PEER, T0)
    assert box.outbound(INSIDE, PEER_OTHER_HOST, T0 + 8) == public  # keeps the mapping alive
    assert public is not None
    assert box.inbound(PEER_OTHER_HOST, public, T0 + 15) == INSIDE
    assert box.inbound(PEER, public, T0 + 15) is None  # PEER's permission is 15 s old
    assert box.stats.dropped_filtered == 1


def test_hairpinning_on_and_off() -> None:
    on = nat(NATConfig.full_cone())
    target = on.outbound(OTHER_INSIDE, PEER, T0)
    assert target is not None
    assert on.outbound(INSIDE, target, T0) is not None
    assert on.is_public(target)
    off = nat(NATConfig.full_cone(hairpinning=False))
    target = off.outbound(OTHER_INSIDE, PEER, T0)
    assert target is not None
    assert off.outbound(INSIDE, target, T0) is None
    assert off.stats.dropped_hairpin == 1


def test_a_full_port_range_drops_new_mappings() -> None:
    box = nat(NATConfig.symmetric(port_range=(40000, 40002)))
    for port in (1, 2, 3):
        assert box.outbound(INSIDE, ("198.51.100.7", port), T0) is not None
    assert box.outbound(INSIDE, ("198.51.100.7", 4), T0) is None
    assert box.stats.dropped_no_port == 1
    assert {m.public[1] for m in box.mappings(T0)} == {40000, 40001, 40002}


def test_claim_and_release_port_hooks() -> None:
    refused = {5000}
    released: list[int] = []
    box = nat(
        NATConfig.full_cone(mapping_timeout_s=5.0),
        claim_port=lambda port: port not in refused,
        release_port=released.append,
    )
    public = box.outbound(INSIDE, PEER, T0)
    assert public is not None
    assert public[1] != 5000
    assert box.expire(T0 + 6) == 1
    assert released == [public[1]]


def test_unknown_public_address_and_other_ip_are_dropped() -> None:
    box = nat(NATConfig.full_cone())
    assert box.inbound(PEER, ("203.0.113.1", 9999), T0) is None
    assert box.inbound(PEER, ("203.0.113.2", 5000), T0) is None
    assert box.stats.dropped_no_mapping == 2


def test_firewall_drops_udp_and_counts() -> None:
    wall = Firewall()
    box = nat(NATConfig.full_cone(), firewall=wall)
    assert box.outbound(INSIDE, PEER, T0) is None
    assert box.stats.dropped_firewall == 1
    assert wall.stats.udp_dropped == 1
    assert wall.allows("tcp", PEER)
    assert wall.stats.tcp_passed == 1


def test_firewall_lets_only_listed_ports_through() -> None:
    wall = Firewall(udp=[7000], tcp=False)
    box = nat(NATConfig.full_cone(), firewall=wall)
    public = box.outbound(INSIDE, PEER, T0)
    assert public is not None
    assert box.outbound(INSIDE, PEER_OTHER_PORT, T0) is None
    assert box.inbound(PEER, public, T0) == INSIDE
    assert box.inbound(PEER_OTHER_PORT, public, T0) is None  # before any filtering
    assert not wall.allows("tcp", PEER)
    assert (wall.stats.udp_passed, wall.stats.udp_dropped, wall.stats.tcp_dropped) == (2, 2, 1)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"mapping_timeout_s": 0.0}, ValueError),
        ({"port_range": (0, 10)}, ValueError),
        ({"port_range": (20, 10)}, ValueError),
        ({"mapping": "symmetric"}, TypeError),
        ({"allocation": "random"}, TypeError),
    ],
)
def test_bad_configs_are_refused(kwargs: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        NATConfig(**kwargs)  # type: ignore[arg-type]


def test_bad_firewall_rules_and_protocols_are_refused() -> None:
    with pytest.raises(ValueError, match="ports"):
        Firewall(udp=[0])
    with pytest.raises(ValueError, match="protocol"):
        Firewall().allows("sctp", PEER)
    with pytest.raises(TypeError):
        NAT("full cone", "203.0.113.1", random.Random(0).randbytes)  # type: ignore[arg-type]
