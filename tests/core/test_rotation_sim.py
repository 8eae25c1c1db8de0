"""Seeded simulation: key rotation under traffic, loss, reordering and crossed rotations.

Two endpoints exchange thousands of small messages over an in-memory network with a seeded RNG
while both sides call ``request_rotation`` at random every 100–300 ms (``protocol.md``, "Key
rotation": crossed rotations converge and lose no packet). Time is simulated: the run covers
about ten simulated seconds in well under a second of CPU per seed.

The record path has no retransmission yet, and a message fragment that arrives after a later one
is not waited for (``Session._handle_message``). So the exact set of messages that must arrive is
computed from what the network delivered, in the order it delivered it: per channel, a message
arrives iff its record was delivered after every record carrying a higher message number. Every
such message must arrive exactly once, in order; ``messages_lost`` must count every gap; and no
record may fail authentication or select no key.

Variants: 5% loss with 0–30 ms reordering (5,000 messages each way); reordering without loss
(every record authenticated exactly once); in-order delivery without loss (every message arrives);
and sparse traffic with frequent crossed rotations, the run in which the echo rule is load-bearing
(it fails if a rotation may start before the peer confirmed the previous one). Two strict xfails
record what the current design does not do: deliver messages overtaken by reordering, and survive
reordering deeper than the rotation interval.
"""

from __future__ import annotations

import functools
import itertools
from collections import Counter
from dataclasses import dataclass

import pytest

from seigr_stt.core.events import KeyRotated, MessageReceived
from tests.core.net import DATA, Net, Node

SEEDS = [11, 22, 33]
CHANNELS = 2


@dataclass(frozen=True)
class Tag:
    """What one data record carries: message ``number`` of ``channel`` (numbered per channel)."""

    channel: int
    number: int


@dataclass
class Outcome:
    net: Net
    a: Node
    b: Node
    sid: bytes
    rotations_requested: int


def simulate(
    seed: int,
    *,
    loss: float,
    max_delay_s: float,
    messages_per_side: int = 5000,
    duration_s: float = 10.0,
    rotation_every_s: tuple[float, float] = (0.1, 0.3),
) -> Outcome:
    net = Net(seed=seed)
    a, b = net.add_node("A"), net.add_node("B")
    sid = net.establish(a, b)
    net.run(0.1)
    net.loss = loss
    net.delay_s = (0.0, max_delay_s)
    start = net.now
    rand = net.random
    interval = duration_s / messages_per_side
    rotations = [0]

    def sender(node: Node, i: int) -> None:
        channel = i % CHANNELS
        number = i // CHANNELS
        node.endpoint.send_message(
            sid, channel, b"%s:%d:%d" % (node.name.encode(), channel, number), net.now
        )
        records = [p for p in net.flush_node(node) if p.type == DATA]
        assert len(records) == 1  # one message per flush: one record
        records[0].tag = Tag(channel, number)

    def rotator(node: Node) -> None:
        node.endpoint.request_rotation(sid, net.now)
        rotations[0] += 1
        net.flush_node(node)

    for node in (a, b):
        for i in range(messages_per_side):
            at = start + (i + rand.random()) * interval
            net.schedule(at, functools.partial(sender, node, i))
        at = start + rand.uniform(*rotation_every_s)
        while at < start + duration_s:
            net.schedule(at, functools.partial(rotator, node))
            at += rand.uniform(*rotation_every_s)
    net.run_until(start + duration_s + 1.0)
    # Quiesce: a lossless exchange lets the last rotation be confirmed on both sides.
    net.loss = 0.0
    for node in (a, b):
        node.endpoint.ping(sid, net.now)
    net.flush()
    net.run(2.0)
    return Outcome(net, a, b, sid, rotations[0])


def expected_arrivals(net: Net, sender: Node) -> tuple[dict[int, list[int]], int]:
    """Per channel, the message numbers the receiver must deliver; and the number of gaps."""
    last = dict.fromkeys(range(CHANNELS), -1)
    expected: dict[int, list[int]] = {c: [] for c in range(CHANNELS)}
    gaps = 0
    for packet in net.deliveries:
        if packet.sender != sender.name or not isinstance(packet.tag, Tag):
            continue
        channel, number = packet.tag.channel, packet.tag.number
        if number > last[channel]:
            if number > last[channel] + 1:
                gaps += 1
            expected[channel].append(number)
            last[channel] = number
    return expected, gaps


def received(receiver: Node, sender: Node) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {c: [] for c in range(CHANNELS)}
    for event in receiver.events_of(MessageReceived):
        name, channel, number = event.data.split(b":")
        assert name == sender.name.encode()
        assert int(channel) == event.channel
        out[event.channel].append(int(number))
    return out


def reordered_pairs(net: Net) -> int:
    """Data records delivered right after a record their sender sent later."""
    records = [p for p in net.deliveries if isinstance(p.tag, Tag)]
    return sum(
        1 for x, y in itertools.pairwise(records) if x.sender == y.sender and x.sent_at > y.sent_at
    )


def check(outcome: Outcome, *, messages_per_side: int) -> None:
    net, a, b = outcome.net, outcome.a, outcome.b
    sa, sb = a.session(outcome.sid), b.session(outcome.sid)
    # Zero authentication failures and epoch drops: nothing was dropped at all.
    for node, session in ((a, sa), (b, sb)):
        assert node.endpoint.drops == Counter()
        assert session.counters.auth_failures == 0
        assert session.counters.epoch_drops == 0
        assert session.counters.replays_dropped == 0
        assert session.is_active
    # Every message whose record arrived in time arrived exactly once and in order.
    for sender, receiver, session in ((a, b, sb), (b, a, sa)):
        expected, gaps = expected_arrivals(net, sender)
        got = received(receiver, sender)
        assert got == expected
        for numbers in got.values():
            assert numbers == sorted(set(numbers))
        assert session.counters.messages_lost == gaps
        sent = sum(1 for p in net.log if p.sender == sender.name and isinstance(p.tag, Tag))
        assert sent == messages_per_side
    # The keys converged.
    assert sa.key_version == sb.key_version
    assert sa.key_version >= 20
    assert sa.keys.session_key == sb.keys.session_key
    assert not sa.keys.rotation_pending
    assert not sb.keys.rotation_pending
    for node in (a, b):
        versions = [e.key_version for e in node.events_of(KeyRotated)]
        assert versions == sorted(set(versions))
        assert versions[-1] == sa.key_version
    assert outcome.rotations_requested >= 60


@pytest.mark.parametrize("seed", SEEDS)
def test_simulation_loss_and_reordering_with_crossed_rotations(seed: int) -> None:
    outcome = simulate(seed, loss=0.05, max_delay_s=0.030)
    check(outcome, messages_per_side=5000)
    lost = [p for p in outcome.net.log if p.fate == "lost"]
    assert len(lost) > 300  # the 5% loss really happened
    assert reordered_pairs(outcome.net) > 100  # and so did the reordering


@pytest.mark.parametrize("seed", SEEDS)
def test_simulation_reordering_without_loss_with_crossed_rotations(seed: int) -> None:
    outcome = simulate(seed, loss=0.0, max_delay_s=0.030, messages_per_side=3000)
    check(outcome, messages_per_side=3000)
    assert reordered_pairs(outcome.net) > 100
    # Without loss, every record arrived and was authenticated exactly once.
    for sender, session in ((outcome.a, outcome.b), (outcome.b, outcome.a)):
        records = [p for p in outcome.net.log if p.sender == sender.name and p.type == DATA]
        assert all(p.fate == "delivered" for p in records)
        assert session.session(outcome.sid).counters.packets_received == len(records)


@pytest.mark.parametrize("seed", SEEDS)
def test_simulation_in_order_without_loss_every_message_arrives_once(seed: int) -> None:
    outcome = simulate(seed, loss=0.0, max_delay_s=0.0, messages_per_side=2000)
    check(outcome, messages_per_side=2000)
    assert reordered_pairs(outcome.net) == 0
    for receiver, sender in ((outcome.b, outcome.a), (outcome.a, outcome.b)):
        got = received(receiver, sender)
        assert got == {c: list(range(1000)) for c in range(CHANNELS)}
        assert receiver.session(outcome.sid).counters.messages_lost == 0


@pytest.mark.parametrize("seed", SEEDS)
def test_simulation_sparse_traffic_frequent_crossed_rotations(seed: int) -> None:
    # With a record only every ~100 ms, rotations are limited by the rules rather than by the
    # traffic: without the echo rule (or with rotation allowed while one is pending) a rotation
    # whose only record was lost is followed by one two epochs ahead, and this run fails.
    outcome = simulate(
        seed, loss=0.05, max_delay_s=0.030, messages_per_side=100, rotation_every_s=(0.02, 0.1)
    )
    check(outcome, messages_per_side=100)
    assert outcome.a.session(outcome.sid).key_version >= 100


@pytest.mark.xfail(
    strict=True,
    reason="rotation is spaced by a fixed minimum interval (50 ms) and the echo, not by the "
    "reordering depth: records overtaken by two rotations select no key ('epoch' drops); "
    "QUIC spaces key updates by 3 x PTO (RFC 9001 §6.5)",
)
def test_simulation_reordering_deeper_than_the_rotation_interval() -> None:
    outcome = simulate(SEEDS[0], loss=0.0, max_delay_s=0.150, messages_per_side=2000)
    check(outcome, messages_per_side=2000)


@pytest.mark.xfail(
    strict=True,
    reason="no reorder buffer or retransmission on the message path yet: a message whose record "
    "is overtaken by a later one is counted lost (Session._handle_message)",
)
def test_simulation_reordering_without_loss_every_message_arrives_once() -> None:
    outcome = simulate(SEEDS[0], loss=0.0, max_delay_s=0.030, messages_per_side=1000)
    for receiver, sender in ((outcome.b, outcome.a), (outcome.a, outcome.b)):
        assert received(receiver, sender) == {c: list(range(500)) for c in range(CHANNELS)}
