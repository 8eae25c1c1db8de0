"""The DH ratchet of a live session (``docs/protocol.md`` §7.1) on the in-memory network.

The first tests are the property the ratchet exists for. An attacker who once read a session's
memory holds a deep copy of every secret it had (traffic keys of both directions, the next-epoch
key, the exporter, the ratchet's state). After a *hash* rotation (§7) the copy still opens the
records of the next epoch, because ``k' = REKEY(k)`` needs nothing but ``k``: forward secrecy
only. After a *DH ratchet* it does not, because the next keys are ``MIX(REKEY(k), dh)`` and
``dh`` needs one of two ephemeral private keys made after the copy, by a real random source
(``os.urandom``) that no copy of the session can replay: post-compromise security.

Then the behaviour: a ratchet on request and on the interval (``KeyRotated.fresh_dh``), forged,
replayed and stale INIT/REPLY frames that change nothing, the erasure of spent secrets, crossed
initiations, and loss, reordering and duplication of the ratchet's own records.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable

import pytest

from seigr_stt.config import NodeConfig
from seigr_stt.constants import CloseCode
from seigr_stt.core import crypto
from seigr_stt.core.events import KeyRotated, MessageReceived
from seigr_stt.core.frames import RatchetInit, RatchetReply, serialize_frames
from seigr_stt.core.keys import KeySchedule
from seigr_stt.core.record import open_record, parse_header
from seigr_stt.core.session import Session
from seigr_stt.exceptions import ConfigError, DecryptError
from tests.core.net import DATA, Net, Node, Packet, authentic_record, session_snapshot

# Every test ratchets on request only, unless it says otherwise.
MANUAL = NodeConfig(ratchet_interval_s=None)


def pair(
    seed: int = 0,
    *,
    config: NodeConfig = MANUAL,
    config_b: NodeConfig | None = None,
    rng: Callable[[int], bytes] | None = os.urandom,
) -> tuple[Net, Node, Node, bytes]:
    """An established session between A (initiator) and B, with real randomness by default."""
    net = Net(seed=seed)
    a = net.add_node("A", config=config, rng=rng)
    b = net.add_node("B", config=config_b or config, rng=rng)
    sid = net.establish(a, b)
    net.run(0.1)
    return net, a, b, sid


def opens(keys: KeySchedule, packet: bytes, now: float) -> bool:
    """Whether ``keys`` (a receiver's schedule, or a copy of it) authenticates ``packet``."""
    header = parse_header(packet)
    selected = keys.select_receive_key(header.epoch, now)
    if selected is None:
        return False
    try:
        open_record(selected[1], packet, header.counter)
    except DecryptError:
        return False
    return True


def exchange(net: Net, a: Node, b: Node, sid: bytes, tag: bytes, count: int = 5) -> None:
    for i in range(count):
        for node in (a, b):
            node.session(sid).send_message(0, b"%s:%s:%d" % (node.name.encode(), tag, i), net.now)
            net.flush_node(node)
    net.run(0.5)


def rotate(net: Net, a: Node, sid: bytes, *, fresh_dh: bool) -> None:
    session = a.session(sid)
    if fresh_dh:
        session.request_ratchet(net.now)
    else:
        session.request_rotation(net.now)
    net.flush_node(a)
    net.run(0.5)


# -- the property -----------------------------------------------------------------------------
@pytest.mark.parametrize("fresh_dh", [False, True], ids=["hash-rotation", "dh-ratchet"])
def test_a_copy_of_every_secret_follows_a_hash_rotation_but_not_a_dh_ratchet(
    fresh_dh: bool,
) -> None:
    """The property of §7.1. Both nodes draw their randomness from ``os.urandom``
    (``Net.add_node(rng=)``), so no copy of a session can predict an ephemeral key made after it.

    A deep copy of both sessions at epoch 0 (traffic keys of both directions, the precomputed
    next-epoch slot, the exporter, the ratchet's state: what an attacker who read memory has)
    then meets the records of epoch 1:

    * after a hash rotation the copy opens every one of them, and computes the new session key:
      epoch 1 is ``REKEY`` of what it holds (forward secrecy only);
    * after a DH ratchet it opens none and its session key is wrong: epoch 1 is
      ``MIX(REKEY(k), dh)`` and ``dh`` needs an ephemeral private key made after the copy
      (post-compromise security).
    """
    net, a, b, sid = pair()
    exchange(net, a, b, sid, b"before")
    sa, sb = a.session(sid), b.session(sid)
    assert sa.key_version == sb.key_version == 0
    # The attacker reads both processes' memory at epoch 0: every secret of both sessions.
    stolen_a, stolen_b = copy.deepcopy(sa), copy.deepcopy(sb)
    assert stolen_b.keys.fingerprint() == sb.keys.fingerprint()
    assert stolen_a.keys.session_key == sa.keys.session_key
    mark = len(net.log)
    rotate(net, a, sid, fresh_dh=fresh_dh)
    exchange(net, a, b, sid, b"after")
    events = [e for node in (a, b) for e in node.events_of(KeyRotated)]
    assert [(e.key_version, e.fresh_dh) for e in events] == [(1, fresh_dh)] * 2
    # The records of the new epoch, in both directions (each opened by its real receiver).
    later = [p for p in net.log[mark:] if p.type == DATA and parse_header(p.data).epoch == 1]
    assert len(later) >= 10
    for packet in later:
        receiver = sb if packet.sender == "A" else sa
        stolen = stolen_b if packet.sender == "A" else stolen_a
        assert opens(receiver.keys, packet.data, net.now)
        # The copy holds the next-epoch slot as it was at the copy: REKEY(k) of each direction.
        assert opens(stolen.keys, packet.data, net.now) is not fresh_dh
    # The exported session key (the root of every later epoch) likewise.
    copied_next = copy.deepcopy(stolen_a.keys)
    copied_next.rotate(net.now)
    assert (copied_next.session_key == sa.keys.session_key) is not fresh_dh


@pytest.mark.parametrize("fresh_dh", [False, True], ids=["hash-rotation", "dh-ratchet"])
def test_a_copied_session_fed_every_record_reads_on_only_after_a_hash_rotation(
    fresh_dh: bool,
) -> None:
    # The attacker runs the copy of B as B, on every record A sends (including A's RATCHET_INIT):
    # the copy answers with an ephemeral of its own, which A never sees, so its keys part from
    # the real ones at the transition and nothing of epoch 1 authenticates.
    net, a, b, sid = pair(seed=1)
    stolen_b = copy.deepcopy(b.session(sid))
    stolen_b._on_change = None  # the copy is nobody's session: no endpoint to notify
    mark = len(net.log)
    rotate(net, a, sid, fresh_dh=fresh_dh)
    exchange(net, a, b, sid, b"after", count=10)
    from_a = [p for p in net.log[mark:] if p.sender == "A" and p.type == DATA]
    for packet in from_a:
        stolen_b.receive_record(packet.data, parse_header(packet.data), "A", net.now)
        stolen_b.flush(net.now)  # what the copy would send (goes nowhere)
    read = [e.data for e in stolen_b.events if isinstance(e, MessageReceived)]
    real = [e.data for e in b.events_of(MessageReceived)]
    assert len(real) == 10
    if fresh_dh:
        assert read == []
        assert stolen_b.counters.auth_failures >= 10
        assert stolen_b.key_version == 0
    else:
        assert read == real
        assert stolen_b.counters.auth_failures == 0


def test_state_copied_after_the_ratchet_cannot_open_the_epoch_before() -> None:
    # Forward secrecy across the ratchet: once both directions are past it and the grace period
    # is over, the schedule holds nothing that opens epoch 0.
    net, a, b, sid = pair(seed=2)
    mark = len(net.log)
    exchange(net, a, b, sid, b"old")
    old = [p for p in net.log[mark:] if p.sender == "A" and p.type == DATA]
    rotate(net, a, sid, fresh_dh=True)
    exchange(net, a, b, sid, b"new")
    net.run(5.0)  # past the previous key's grace period
    stolen_b = copy.deepcopy(b.session(sid))
    assert not any(opens(stolen_b.keys, p.data, net.now) for p in old)
    assert stolen_b.keys.mix_base is None  # the DH secret is gone too


# -- ratchets on request and on the interval ----------------------------------------------------
def test_ratchet_on_request_reports_fresh_dh_on_both_sides() -> None:
    net, a, b, sid = pair(seed=3)
    sa, sb = a.session(sid), b.session(sid)
    key0 = sa.keys.session_key
    target = sb.request_ratchet(net.now)  # the responder may ask too
    assert target == 1
    assert sb.ratchet.wanted
    net.flush()
    net.run(0.5)
    assert sa.ratchets_completed == sb.ratchets_completed >= target
    assert sa.ratchet.count == sb.ratchet.count == 1
    assert not sa.ratchet.wanted
    assert not sb.ratchet.in_progress
    for node in (a, b):
        assert node.events_of(KeyRotated) == [KeyRotated(sid, 1, True)]
    assert sa.keys.session_key == sb.keys.session_key != key0
    # A hash rotation afterwards is reported as such.
    rotate(net, a, sid, fresh_dh=False)
    assert [e.fresh_dh for e in b.events_of(KeyRotated)] == [True, False]
    assert sa.key_version == sb.key_version == 2
    # And a second request needs a second ratchet.
    assert sa.request_ratchet(net.now) == sa.ratchets_completed + 1
    net.flush()
    net.run(0.5)
    assert [(e.key_version, e.fresh_dh) for e in a.events_of(KeyRotated)][-1] == (3, True)
    exchange(net, a, b, sid, b"x", count=3)
    assert len(b.events_of(MessageReceived)) == 3


def test_ratchet_on_the_interval_initiator_first_responder_later() -> None:
    # Both at 1 s: the initiator's timer (0.99 s) fires before the responder's (1.25 s), and
    # each ratchet restarts both clocks, so every automatic ratchet is the initiator's.
    config = NodeConfig(ratchet_interval_s=1.0)
    net, a, b, sid = pair(seed=4, config=config)
    assert a.session(sid).ratchet.interval_s == 0.99
    assert b.session(sid).ratchet.interval_s == 1.25
    net.run(3.5)
    for node in (a, b):
        rotated = node.timed_events_of(KeyRotated)
        assert [(e.key_version, e.fresh_dh) for _, e in rotated] == [
            (1, True),
            (2, True),
            (3, True),
        ]
    assert a.session(sid).ratchet.count == 3
    # The responder never initiated: every ephemeral it made answered an INIT.
    assert b.session(sid).ratchet.generated == 3


@pytest.mark.parametrize("seed", [22, 23])
def test_with_the_defaults_every_automatic_rotation_of_an_idle_session_is_a_ratchet(
    seed: int,
) -> None:
    # rekey_after_s and ratchet_interval_s both 120 s. The responder's hash-rotation clock starts
    # when it follows the initiator's epoch, one delay after the initiator's ratchet clock; with
    # jitter the initiator's INIT would reach the responder after that clock fired about half
    # the time (a hash rotation, the INIT abandoned, a second rotation at once). The initiator's
    # interval is therefore slightly shorter (RATCHET_INITIATOR_FACTOR).
    config = NodeConfig(session_idle_timeout_s=None)
    net, a, b, sid = pair(seed=seed, config=config)
    net.delay_s = (0.0, 0.05)
    net.run(3 * 120.0 + 10.0)
    for node in (a, b):
        rotated = [(e.key_version, e.fresh_dh) for e in node.events_of(KeyRotated)]
        assert rotated == [(1, True), (2, True), (3, True)]
    assert a.session(sid).ratchet.generated == 3  # no INIT abandoned
    assert b.session(sid).ratchet.generated == 3  # every one answered, none of its own


def test_ratchet_on_the_interval_of_the_responder_alone() -> None:
    net, a, b, sid = pair(seed=5, config=MANUAL, config_b=NodeConfig(ratchet_interval_s=0.8))
    assert a.session(sid).ratchet.due_at() is None
    net.run(2.2)  # responder's interval: 0.8 x 1.25 = 1 s
    for node in (a, b):
        assert [e.fresh_dh for e in node.events_of(KeyRotated)] == [True, True]


def test_a_session_without_randomness_cannot_ratchet() -> None:
    net, a, _b, sid = pair(seed=6)
    session = a.session(sid)
    session.ratchet._rng = None  # as a core session made without an rng
    with pytest.raises(ConfigError, match="randomness"):
        session.request_ratchet(net.now)


# -- forged, replayed and stale frames ----------------------------------------------------------
def deliver(net: Net, to: Node, sid: bytes, record: bytes, src: str) -> object:
    session = to.session(sid)
    return session.receive_record(record, parse_header(record), src, net.now)


def test_a_forged_init_or_reply_changes_nothing() -> None:
    net, a, b, sid = pair(seed=7)
    sb = b.session(sid)
    public = crypto.public_key_of(bytearray(os.urandom(32)))
    before = session_snapshot(sb)
    for frame in (RatchetInit(0, public), RatchetReply(0, public)):
        # Sealed under a key the attacker made up, in the current and the next epoch.
        for epoch in (0, 1):
            record = authentic_record(
                a.session(sid), serialize_frames([frame]), epoch=epoch, key=os.urandom(32)
            )
            assert deliver(net, b, sid, record, "A") is not None
    assert session_snapshot(sb) == before
    assert not sb.ratchet.in_progress
    assert sb.counters.auth_failures == 4


def test_a_replayed_init_or_reply_changes_nothing() -> None:
    net, a, b, sid = pair(seed=8)
    sa, sb = a.session(sid), b.session(sid)
    mark = len(net.log)
    sa.request_ratchet(net.now)
    init_records = net.flush_node(a)
    net.run(0.5)
    reply_records = [p for p in net.log[mark:] if p.sender == "B" and p.type == DATA]
    assert sa.key_version == sb.key_version == 1
    exchange(net, a, b, sid, b"x", count=2)
    snaps = session_snapshot(sa), session_snapshot(sb)
    for packet in init_records:
        assert deliver(net, b, sid, packet.data, "A") is not None  # a replay (or an old epoch)
    for packet in reply_records:
        assert deliver(net, a, sid, packet.data, "B") is not None
    assert (session_snapshot(sa), session_snapshot(sb)) == snaps


def test_an_authentic_stale_or_unmatched_frame_changes_no_key() -> None:
    # Frames the peer really sent (sealed with the real keys) but that match nothing: a REPLY
    # without an INIT, an INIT of an epoch already left. Ignored; the keys stay as they are.
    net, a, b, sid = pair(seed=9)
    sa, sb = a.session(sid), b.session(sid)
    rotate(net, a, sid, fresh_dh=False)
    assert sb.key_version == 1
    public = crypto.public_key_of(bytearray(os.urandom(32)))
    fingerprint = sb.keys.fingerprint()
    for frame in (RatchetReply(1, public), RatchetReply(0, public), RatchetInit(0, public)):
        record = authentic_record(sa, serialize_frames([frame]))
        assert deliver(net, b, sid, record, "A") is None  # authenticated and processed
    assert sb.keys.fingerprint() == fingerprint
    assert not sb.ratchet.in_progress
    assert sb.is_active


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (RatchetInit(5, b"\x09" + bytes(31)), "epoch not reached"),
        (RatchetInit(0, bytes(32)), "low order"),  # the all-zero point
    ],
)
def test_an_authentic_impossible_init_is_a_protocol_violation(
    frame: RatchetInit, reason: str
) -> None:
    net, a, b, sid = pair(seed=10)
    sb = b.session(sid)
    record = authentic_record(a.session(sid), serialize_frames([frame]))
    deliver(net, b, sid, record, "A")
    assert sb.close_code == CloseCode.PROTOCOL_ERROR
    assert sb.close_reason is not None
    assert reason in sb.close_reason
    assert not sb.ratchet.in_progress
    assert sb.keys.mix_base is None


@pytest.mark.parametrize(
    "plaintext",
    [
        pytest.param(b"\x10\x00" + bytes(31), id="init-truncated-key"),
        pytest.param(b"\x11\x40", id="reply-truncated-epoch"),
        pytest.param(b"\x12" + bytes(33), id="reserved-0x12"),
    ],
)
def test_an_authentic_malformed_ratchet_frame_closes_and_changes_no_key(plaintext: bytes) -> None:
    # Sealed with the peer's real key, so it is the peer's fault: CLOSE_PROTOCOL_ERROR (§6),
    # and the frame is parsed in full before anything of it is acted on.
    net, a, b, sid = pair(seed=21)
    sb = b.session(sid)
    fingerprint = sb.keys.fingerprint()
    deliver(net, b, sid, authentic_record(a.session(sid), plaintext), "A")
    assert sb.close_code == CloseCode.PROTOCOL_ERROR
    assert not sb.ratchet.in_progress
    assert sb.ratchet.generated == 0
    assert sb.keys.mix_base is None
    assert sb.counters.auth_failures == 0
    assert fingerprint is not None


def test_a_second_init_in_one_epoch_is_a_protocol_violation() -> None:
    net, a, b, sid = pair(seed=11)
    sa = a.session(sid)
    sa.request_ratchet(net.now)
    net.drop(lambda p: p.sender == "B", times=100)  # A never hears the REPLY
    net.flush_node(a)
    net.run(0.05)
    assert b.session(sid).ratchet.in_progress
    other = crypto.public_key_of(bytearray(os.urandom(32)))
    sb = b.session(sid)
    deliver(net, b, sid, authentic_record(sa, serialize_frames([RatchetInit(0, other)])), "A")
    assert sb.close_code == CloseCode.PROTOCOL_ERROR
    assert sb.close_reason == "second ratchet in one epoch"


def test_a_repeated_init_is_answered_with_the_same_reply() -> None:
    # A sends its INIT again when it counts the record lost; B must not make a second secret.
    net, a, b, sid = pair(seed=20)
    sa, sb = a.session(sid), b.session(sid)
    net.delay_s = (0.01, 0.01)
    sa.request_ratchet(net.now)
    (init_packet,) = net.flush_node(a)
    net.run(0.015)
    reply = sb.ratchet._reply
    assert reply is not None
    assert not sb.ratchet.out
    fingerprint = sb.keys.fingerprint()
    init = sa.ratchet._public
    deliver(net, b, sid, authentic_record(sa, serialize_frames([RatchetInit(0, init)])), "A")
    assert [f for f, _ in sb.ratchet.out] == [reply.frame]
    assert sb.keys.fingerprint() == fingerprint
    assert sb.ratchet.generated == 1
    net.flush_node(b)
    net.run(1.0)
    assert sa.ratchet.count == sb.ratchet.count == 1
    assert sa.keys.session_key == sb.keys.session_key
    assert init_packet.fate == "delivered"


# -- erasure ------------------------------------------------------------------------------------
def test_spent_ephemeral_secrets_are_wiped(monkeypatch: pytest.MonkeyPatch) -> None:
    net, a, b, sid = pair(seed=12)
    sa, sb = a.session(sid), b.session(sid)
    privates: list[bytearray] = []
    secrets: list[bytearray] = []
    real_dh_into = crypto.dh_into

    def spy(private: bytearray, public: bytes, out: bytearray) -> None:
        privates.append(private)
        secrets.append(out)
        real_dh_into(private, public, out)

    monkeypatch.setattr(crypto, "dh_into", spy)
    net.delay_s = (0.01, 0.01)
    sa.request_ratchet(net.now)
    assert sa.ratchet.holds_private_key
    net.flush_node(a)
    net.run(0.015)  # B has the INIT and answered: its private key is spent
    assert len(privates) == 1
    assert privates[0] == bytes(32)
    assert sb.keys.mix_base == 0
    assert secrets[0] != bytes(32)
    net.run(0.5)
    assert sa.key_version == sb.key_version == 1
    assert len(privates) == 2  # A's, when the REPLY came
    assert not sa.ratchet.holds_private_key
    assert not sb.ratchet.holds_private_key
    assert all(p == bytes(32) for p in privates)
    assert all(s == bytes(32) for s in secrets)  # both directions made the transition
    assert sa.keys.mix_base is None
    assert sb.keys.mix_base is None


def test_closing_mid_ratchet_wipes_the_private_key() -> None:
    net, a, _b, sid = pair(seed=13)
    sa = a.session(sid)
    sa.request_ratchet(net.now)
    private = sa.ratchet._private
    assert private is not None
    assert private != bytes(32)
    sa.close(CloseCode.NORMAL, "bye", net.now)
    net.flush()
    net.run(1.0)
    assert private == bytes(32)


# -- crossed initiations, loss, reordering, duplication -----------------------------------------
def test_crossed_initiations_make_one_ratchet_that_serves_both_requests() -> None:
    net, a, b, sid = pair(seed=14)
    sa, sb = a.session(sid), b.session(sid)
    net.delay_s = (0.02, 0.02)
    target_a = sa.request_ratchet(net.now)
    target_b = sb.request_ratchet(net.now)
    net.flush()  # both INITs are on the wire at once
    assert sa.ratchet.holds_private_key
    assert sb.ratchet.holds_private_key
    abandoned = sb.ratchet._private
    net.run(1.0)
    # The session initiator's ratchet won; B dropped (and wiped) its own and answered A's.
    assert abandoned is not None
    assert abandoned == bytes(32)
    assert sa.ratchet.count == sb.ratchet.count == 1
    assert sa.ratchets_completed >= target_a
    assert sb.ratchets_completed >= target_b
    for node in (a, b):
        assert node.events_of(KeyRotated) == [KeyRotated(sid, 1, True)]
    assert sa.keys.session_key == sb.keys.session_key
    exchange(net, a, b, sid, b"x", count=3)
    assert len(a.events_of(MessageReceived)) == len(b.events_of(MessageReceived)) == 3


def test_a_ratchet_crossed_by_a_hash_rotation_of_the_peer_starts_again() -> None:
    net, a, b, sid = pair(seed=15)
    sa, sb = a.session(sid), b.session(sid)
    net.delay_s = (0.02, 0.02)
    sa.request_ratchet(net.now)
    sb.request_rotation(net.now)
    net.flush()
    net.run(1.0)
    assert sa.ratchets_completed >= 1
    rotated = [(e.key_version, e.fresh_dh) for e in a.events_of(KeyRotated)]
    assert rotated[-1][1]
    assert rotated == [(e.key_version, e.fresh_dh) for e in b.events_of(KeyRotated)]
    assert sa.keys.session_key == sb.keys.session_key
    assert sa.counters.auth_failures == sb.counters.auth_failures == 0


@pytest.mark.parametrize(
    "lose",
    [
        pytest.param(lambda p: p.sender == "A" and p.type == DATA, id="init-lost"),
        pytest.param(lambda p: p.sender == "B" and p.type == DATA, id="reply-lost"),
    ],
)
def test_a_lost_init_or_reply_is_sent_again(lose: Callable[[Packet], bool]) -> None:
    net, a, b, sid = pair(seed=16)
    sa, sb = a.session(sid), b.session(sid)
    net.drop(lose, times=2)
    sa.request_ratchet(net.now)
    net.flush_node(a)
    net.run(3.0)
    assert [p.fate for p in net.log].count("filtered") == 2
    assert sa.ratchet.count == sb.ratchet.count == 1
    assert sa.keys.session_key == sb.keys.session_key
    assert sa.counters.packets_lost + sb.counters.packets_lost >= 1
    assert sa.counters.auth_failures == sb.counters.auth_failures == 0


@pytest.mark.parametrize("seed", [17, 18, 19])
def test_ratchets_under_loss_reordering_and_duplication(seed: int) -> None:
    net, a, b, sid = pair(seed=seed)
    net.loss = 0.2
    net.delay_s = (0.0, 0.03)
    net.duplicate = 0.2
    sa, sb = a.session(sid), b.session(sid)
    for i in range(6):
        (sa if i % 2 else sb).request_ratchet(net.now)
        exchange(net, a, b, sid, b"%d" % i, count=5)
        net.run(0.5)
    net.loss = net.duplicate = 0.0
    net.run(3.0)
    assert sa.ratchet.count == sb.ratchet.count >= 3
    assert sa.keys.session_key == sb.keys.session_key
    assert sa.counters.auth_failures == sb.counters.auth_failures == 0
    assert sa.counters.epoch_drops == sb.counters.epoch_drops == 0
    for receiver in (a, b):
        assert len(receiver.events_of(MessageReceived)) == 30
    assert isinstance(sa, Session)
