"""The public in-memory network of :mod:`seigr_stt.testing`: what library users rely on."""

from __future__ import annotations

import pytest

from seigr_stt import testing
from seigr_stt.constants import PACKET_DATA
from seigr_stt.core.events import DatagramReceived, MessageReceived
from seigr_stt.testing import START, Net, Node, Packet


def pair(net: Net) -> tuple[Node, Node, bytes]:
    a, b = net.add_node("A"), net.add_node("B")
    return a, b, net.establish(a, b)


def test_the_module_docstring_example_runs() -> None:
    net = Net(seed=7, loss=0.05, delay_s=(0.010, 0.030), duplicate=0.01)
    a, b = net.add_node("A"), net.add_node("B")
    sid = net.establish(a, b)
    a.endpoint.session(sid).send_message(0, b"hello", net.now)
    net.flush()
    net.run(1.0)
    assert [e.data for e in b.events_of(MessageReceived)] == [b"hello"]
    assert testing.__doc__ is not None
    assert "net.establish(a, b)" in testing.__doc__


def test_the_simulator_is_public_and_the_relay_still_there() -> None:
    for name in ("Net", "Node", "Packet", "Impairment", "RelayStats", "UDPRelay", "START"):
        assert name in testing.__all__
        assert getattr(testing, name) is not None


def test_the_package_exports_every_public_name_of_its_modules() -> None:
    """``seigr_stt.testing`` is the public face of its modules: the same objects."""
    modules = (testing.sim, testing.relay, testing.nat, testing.natbox)
    assert sorted(testing.__all__) == sorted(name for m in modules for name in m.__all__)
    for module in modules:
        for name in module.__all__:
            assert getattr(testing, name) is getattr(module, name)


def run_transfer(seed: int) -> list[tuple[float, str, str]]:
    net = Net(seed=seed, loss=0.1, delay_s=(0.0, 0.02), duplicate=0.1)
    a, _, sid = pair(net)
    for i in range(50):
        a.endpoint.session(sid).send_message(i % 3, b"m%d" % i * 50, net.now)
        net.flush()
        net.run(0.002)
    net.run(2.0)
    return [(p.sent_at, p.sender, p.fate) for p in net.log]


def test_a_seed_makes_every_run_identical() -> None:
    assert run_transfer(5) == run_transfer(5)
    assert run_transfer(5) != run_transfer(6)


def test_time_starts_at_start_and_moves_only_when_run() -> None:
    net = Net()
    assert net.now == START
    net.run(2.5)
    assert net.now == START + 2.5
    net.run_until(START + 1.0)  # never backwards
    assert net.now == START + 2.5


def test_fates_of_lost_filtered_unroutable_and_delivered_packets() -> None:
    net = Net(seed=1)
    a, b, sid = pair(net)
    before = len(net.log)
    net.drop(lambda p: p.sender == "A", times=1)
    for data in (b"filtered", b"delivered"):
        a.endpoint.session(sid).send_datagram(data, net.now)
        net.flush()
    net.run(0.1)
    net.loss = 0.999
    a.endpoint.session(sid).send_datagram(b"lost", net.now)
    net.flush()
    net.loss = 0.0
    net.kill(b)
    a.endpoint.session(sid).send_datagram(b"nobody", net.now)
    net.flush()
    fates = [p.fate for p in net.log[before:] if p.sender == "A"]
    assert fates == ["filtered", "delivered", "lost", "unroutable"]
    assert [p.fate for p in net.log[before:] if p.sender == "B"] == ["delivered"]  # its ACK
    assert [e.data for e in b.events_of(DatagramReceived)] == [b"delivered"]


def test_delay_reorders_and_duplicates_are_delivered_twice() -> None:
    net = Net(seed=3, delay_s=(0.0, 0.05), duplicate=0.5)
    a, b, sid = pair(net)
    for i in range(40):
        a.endpoint.session(sid).send_datagram(b"%d" % i, net.now)
        net.flush()
    net.run(1.0)
    sent = [p for p in net.sent_by(a, PACKET_DATA) if p.sent_at > START]  # one per datagram
    assert len(sent) > 40  # duplicates are logged as packets of their own
    delivered_at = [p.delivered_at for p in net.deliveries if p.sender == "A"]
    assert delivered_at == sorted(t for t in delivered_at if t is not None)
    order = [int(e.data) for e in b.events_of(DatagramReceived)]
    assert sorted(order) == list(range(40))  # datagrams once each: the copies were replays
    assert order != sorted(order)  # and reordered
    assert b.endpoint.drops["replay"] == len(sent) - 40


def test_rate_limit_serialises_packets_and_drops_beyond_the_queue() -> None:
    rate = 100_000.0
    net = Net(seed=4, delay_s=(0.01, 0.01), rate_bytes_per_s=rate, queue_s=0.05)
    a, b, sid = pair(net)
    net.run(1.0)
    start = net.now
    for _ in range(20):
        a.endpoint.session(sid).send_datagram(bytes(1000), net.now)
    launched = net.flush_node(a)
    assert len(launched) == 20  # datagrams are not congestion controlled: all at once
    net.run(1.0)
    size = len(launched[0].data)
    departures = [start + (i + 1) * size / rate for i in range(len(launched))]
    # A packet leaves once the link is free; one that would wait more than queue_s is dropped.
    kept = [p for p in launched if p.fate == "delivered"]
    waited = [d - size / rate - start for d in departures]
    assert [p.fate for p in launched] == ["delivered" if w <= 0.05 else "overflow" for w in waited]
    assert [p.delivered_at for p in kept] == pytest.approx(
        [d + 0.01 for d in departures[: len(kept)]]
    )
    assert 5 <= len(kept) < 20
    assert len(b.events_of(DatagramReceived)) == len(kept)


def test_each_direction_is_its_own_link() -> None:
    net = Net(seed=5, rate_bytes_per_s=50_000.0, queue_s=1.0)
    a, b, sid = pair(net)
    net.run(1.0)
    for node in (a, b):
        for _ in range(5):
            node.endpoint.session(sid).send_datagram(bytes(1000), net.now)
    net.flush()
    net.run(1.0)
    times = {
        name: [p.delivered_at for p in net.deliveries if p.sender == name and p.sent_at > START + 1]
        for name in ("A", "B")
    }
    assert times["A"] == pytest.approx(times["B"])  # neither waited for the other


def test_without_auto_consume_the_application_must_return_credit() -> None:
    net = Net(seed=6)
    a = net.add_node("A")
    b = net.add_node("B", auto_consume=False)
    sid = net.establish(a, b)
    big = bytes(700_000)
    for _ in range(3):
        a.endpoint.session(sid).send_message(0, big, net.now)
    net.flush()
    net.run(5.0)
    assert len(b.events_of(MessageReceived)) == 1  # the second does not fit the 1 MiB window
    b.auto_consume = True
    [event] = b.events_of(MessageReceived)
    b.endpoint.session(sid).consume_message(event.channel, event.credit)
    net.flush()
    net.run(5.0)
    assert len(b.events_of(MessageReceived)) == 3


def test_packet_type_of_a_short_packet() -> None:
    assert Packet(b"", "A", "B", 0.0).type == -1
    assert Packet(b"\x01\x04", "A", "B", 0.0).type == 4


def test_a_timer_that_stays_due_is_reported() -> None:
    net = Net()
    a = net.add_node("A")
    a.endpoint.get_timer = lambda: net.now  # type: ignore[method-assign]
    with pytest.raises(AssertionError, match="stays at"):
        net.run(1.0)


def test_establish_fails_loudly_when_the_peer_is_gone() -> None:
    net = Net()
    a, b = net.add_node("A"), net.add_node("B")
    net.kill(b)
    with pytest.raises(AssertionError, match="did not complete"):
        net.establish(a, b, within_s=5.0)
