"""The key schedule's rotation rules (``docs/protocol.md`` §7), driven record by record."""

from __future__ import annotations

import pytest

from seigr_stt.constants import (
    KEY_GRACE_MIN_S,
    KEY_GRACE_RTT_FACTOR,
    KEY_ROTATION_MIN_INTERVAL_S,
    REJECT_AFTER_MESSAGES,
)
from seigr_stt.core import crypto
from seigr_stt.core.keys import SLOT_CURRENT, SLOT_NEXT, SLOT_PREVIOUS, KeySchedule, RotationPolicy
from seigr_stt.core.noise import rekey
from seigr_stt.core.record import open_record, pack_header, parse_header, seal_record

K_AB = bytes(range(32))
K_BA = bytes(range(100, 132))
EXPORTER = bytes(range(200, 232))
SID = b"sessid01"
T0 = 500.0
MIN = KEY_ROTATION_MIN_INTERVAL_S
RTT = 0.1


def key_id(aead: crypto.Aead) -> bytes:
    """Which key a cipher object holds: the tag it computes over a fixed input."""
    return aead.encrypt(0, b"key id", b"")


def kid(key: bytes) -> bytes:
    """:func:`key_id` of the cipher object for ``key``."""
    return key_id(crypto.make_aead(key))


def select(ks: KeySchedule, epoch: int, now: float) -> tuple[int, bytes] | None:
    """``select_receive_key`` with the key named by :func:`key_id`."""
    selected = ks.select_receive_key(epoch, now)
    return None if selected is None else (selected[0], key_id(selected[1]))


def make_pair(now: float = T0) -> tuple[KeySchedule, KeySchedule]:
    """The initiator's and the responder's schedules after one handshake."""
    return KeySchedule(K_AB, K_BA, EXPORTER, now), KeySchedule(K_BA, K_AB, EXPORTER, now)


def transmit(src: KeySchedule, dst: KeySchedule, now: float) -> str:
    """Seal one record on ``src`` and run ``dst``'s receive path; returns what happened."""
    aead, epoch, echo, counter = src.next_send()
    record = seal_record(aead, pack_header(epoch, echo, SID, counter), counter, b"payload")
    header = parse_header(record)
    selected = dst.select_receive_key(header.epoch, now)
    if selected is None:
        return "epoch"
    slot, raead = selected
    if not dst.replay.check(header.counter):
        return "replay"
    assert open_record(raead, record, header.counter) == b"payload"
    assert dst.replay.accept(header.counter)
    promoted = dst.after_authenticated(slot, header.echo, now, RTT)
    return "promoted" if promoted else {SLOT_CURRENT: "current", SLOT_PREVIOUS: "previous"}[slot]


def test_initial_state() -> None:
    a, b = make_pair()
    for ks in (a, b):
        assert (ks.send_epoch, ks.recv_epoch, ks.peer_echo, ks.send_counter) == (0, 0, 0, 0)
        assert not ks.rotation_pending
        assert not ks.erased
        assert ks.can_rotate(T0, MIN)  # the first rotation may come at once
        assert ks.get_timer() is None
    assert a.session_key == b.session_key
    assert len(a.session_key) == 32


def test_select_by_epoch_same_next_previous() -> None:
    a, _ = make_pair()
    assert select(a, 0, T0) == (SLOT_CURRENT, kid(K_BA))
    assert select(a, 1, T0) == (SLOT_NEXT, kid(rekey(K_BA)))
    assert a.select_receive_key(255, T0) is None  # no previous key yet
    for skipped in (2, 3, 128, 254):
        assert a.select_receive_key(skipped, T0) is None
    # Selecting changes nothing: the next epoch is still "next".
    assert a.recv_epoch == 0
    assert select(a, 1, T0) == (SLOT_NEXT, kid(rekey(K_BA)))


def test_promotion_only_through_after_authenticated_on_next() -> None:
    a, _ = make_pair()
    assert a.after_authenticated(SLOT_CURRENT, 0, T0, RTT) is False
    assert a.recv_epoch == 0
    assert a.after_authenticated(SLOT_NEXT, 0, T0, RTT) is True
    assert a.recv_epoch == 1
    assert a.send_epoch == 1  # the sending direction followed
    assert select(a, 1, T0) == (SLOT_CURRENT, kid(rekey(K_BA)))
    assert select(a, 2, T0) == (SLOT_NEXT, kid(rekey(rekey(K_BA))))
    assert select(a, 0, T0) == (SLOT_PREVIOUS, kid(K_BA))
    assert a.after_authenticated(SLOT_PREVIOUS, 0, T0, RTT) is False
    assert a.recv_epoch == 1


def test_full_rotation_with_echo() -> None:
    a, b = make_pair()
    key_before = a.session_key
    assert a.rotate(T0 + 1) == 1
    assert a.rotation_pending
    assert not a.can_rotate(T0 + 10, MIN)
    assert a.session_key != b.session_key
    assert a.session_key != key_before

    assert transmit(a, b, T0 + 1) == "promoted"  # b promotes and follows
    assert (b.recv_epoch, b.send_epoch, b.peer_echo) == (1, 1, 0)
    assert b.rotation_pending  # b has not yet seen a echo its new epoch
    assert a.session_key == b.session_key

    assert transmit(b, a, T0 + 1) == "promoted"  # a's receive side moves to 1, echo 1
    assert (a.recv_epoch, a.send_epoch, a.peer_echo) == (1, 1, 1)
    assert not a.rotation_pending
    assert transmit(a, b, T0 + 1) == "current"
    assert b.peer_echo == 1
    assert not b.rotation_pending
    assert a.session_key == b.session_key


def test_crossed_rotations_converge() -> None:
    a, b = make_pair()
    a.rotate(T0)
    b.rotate(T0)
    assert transmit(a, b, T0) == "promoted"
    assert transmit(b, a, T0) == "promoted"
    assert (a.send_epoch, a.recv_epoch, b.send_epoch, b.recv_epoch) == (1, 1, 1, 1)
    transmit(a, b, T0)
    assert not a.rotation_pending
    assert not b.rotation_pending
    assert a.session_key == b.session_key


def test_can_rotate_requires_echo_same_epochs_and_interval() -> None:
    a, b = make_pair()
    a.rotate(T0)
    transmit(a, b, T0)  # b promoted, followed; b's echo to a still missing
    assert not b.can_rotate(T0 + 100, MIN)  # peer has not echoed b's epoch 1
    transmit(b, a, T0)
    assert a.recv_epoch == a.send_epoch == a.peer_echo == 1
    assert not a.can_rotate(T0 + MIN / 2, MIN)  # interval not over
    assert a.can_rotate(T0 + MIN, MIN)
    assert not b.can_rotate(T0 + MIN, MIN)  # b still waits for a's echo of 1
    transmit(a, b, T0 + MIN)
    assert b.can_rotate(T0 + MIN, MIN)


def test_echo_rules() -> None:
    a, b = make_pair()
    a.rotate(T0)
    a.rotate(T0)  # a forced ahead twice: send epoch 2
    assert a.send_epoch == 2
    # An echo of the epoch a never reached (3) is ignored; so is one two behind (0).
    a.after_authenticated(SLOT_CURRENT, 3, T0, RTT)
    assert a.peer_echo == 0
    a.after_authenticated(SLOT_CURRENT, 0, T0, RTT)
    assert a.peer_echo == 0
    a.after_authenticated(SLOT_CURRENT, 1, T0, RTT)  # one behind: accepted
    assert a.peer_echo == 1
    a.after_authenticated(SLOT_CURRENT, 2, T0, RTT)
    assert a.peer_echo == 2
    a.after_authenticated(SLOT_CURRENT, 1, T0, RTT)  # never moves back
    assert a.peer_echo == 2
    assert b.peer_echo == 0


def test_forged_echo_ahead_does_not_unlock_rotation() -> None:
    a, _ = make_pair()
    a.rotate(T0)
    a.after_authenticated(SLOT_CURRENT, 2, T0, RTT)  # claims an epoch a never sent
    assert a.peer_echo == 0
    assert a.rotation_pending


@pytest.mark.parametrize(
    ("rtt", "grace"), [(0.0, KEY_GRACE_MIN_S), (0.1, KEY_GRACE_MIN_S), (1.0, 3.0), (2.5, 7.5)]
)
def test_previous_key_grace_period(rtt: float, grace: float) -> None:
    a, _ = make_pair()
    assert grace == max(KEY_GRACE_MIN_S, KEY_GRACE_RTT_FACTOR * rtt)
    a.after_authenticated(SLOT_NEXT, 0, T0, rtt)
    assert a.get_timer() == pytest.approx(T0 + grace)
    a.handle_timer(T0 + grace - 0.01)
    assert select(a, 0, T0 + grace - 0.01) == (SLOT_PREVIOUS, kid(K_BA))
    a.handle_timer(T0 + grace)
    assert a.get_timer() is None
    assert a.select_receive_key(0, T0 + grace) is None
    assert select(a, 1, T0 + grace) == (SLOT_CURRENT, kid(rekey(K_BA)))


def test_previous_key_refused_at_expiry_even_before_the_timer() -> None:
    a, _ = make_pair()
    a.after_authenticated(SLOT_NEXT, 0, T0, RTT)
    assert a.select_receive_key(0, T0 + KEY_GRACE_MIN_S) is None
    assert a.get_timer() is None
    assert a.select_receive_key(0, T0) is None  # gone for good


def test_a_second_promotion_replaces_the_previous_key() -> None:
    a, _ = make_pair()
    a.after_authenticated(SLOT_NEXT, 0, T0, RTT)
    a.after_authenticated(SLOT_NEXT, 1, T0 + 1, RTT)
    assert a.recv_epoch == 2
    assert select(a, 1, T0 + 1) == (SLOT_PREVIOUS, kid(rekey(K_BA)))
    assert a.select_receive_key(0, T0 + 1) is None
    assert a.get_timer() == pytest.approx(T0 + 1 + KEY_GRACE_MIN_S)


def test_send_counter_never_resets() -> None:
    a, _ = make_pair()
    for expected in range(5):
        assert a.next_send()[3] == expected
    assert a.sent_in_epoch == 5
    a.rotate(T0)
    aead, epoch, echo, counter = a.next_send()
    assert (key_id(aead), epoch, echo, counter) == (kid(rekey(K_AB)), 1, 0, 5)
    assert a.sent_in_epoch == 1
    assert a.epoch_started_at == a.last_rotation_at == T0


def test_send_counter_exhaustion() -> None:
    a, _ = make_pair()
    a.send_counter = REJECT_AFTER_MESSAGES - 1
    assert a.next_send()[3] == REJECT_AFTER_MESSAGES - 1
    with pytest.raises(ValueError, match="exhausted"):
        a.next_send()
    assert a.send_counter == REJECT_AFTER_MESSAGES


def test_erase() -> None:
    a, _ = make_pair()
    a.after_authenticated(SLOT_NEXT, 0, T0, RTT)
    a.erase()
    assert a.erased
    assert a.get_timer() is None
    for epoch in (0, 1, 2):
        assert a.select_receive_key(epoch, T0) is None
    with pytest.raises(ValueError, match="erased"):
        a.next_send()
    with pytest.raises(ValueError, match="erased"):
        a.rotate(T0)
    with pytest.raises(ValueError, match="erased"):
        _ = a.session_key
    assert not a.can_rotate(T0 + 100, MIN)


def test_session_key_equal_at_equal_epochs_and_changes_with_rotation() -> None:
    a, b = make_pair()
    seen = {a.session_key}
    for step in range(1, 6):
        (a if step % 2 else b).rotate(T0 + step)
        src, dst = (a, b) if step % 2 else (b, a)
        assert transmit(src, dst, T0 + step) == "promoted"
        assert a.send_epoch == b.send_epoch == step
        assert a.session_key == b.session_key
        seen.add(a.session_key)
        transmit(dst, src, T0 + step)
    assert len(seen) == 6
    traffic_keys = {K_AB, K_BA, EXPORTER}
    assert not seen & traffic_keys
    exporter = EXPORTER
    for _ in range(5):
        exporter = crypto.kdf(exporter, b"next-epoch")
    assert a.session_key == crypto.kdf(exporter, b"session-key")


def test_epochs_wrap_around_256() -> None:
    a, b = make_pair()
    now = T0
    for _ in range(300):
        now += 1.0
        assert a.can_rotate(now, MIN)
        a.rotate(now)
        assert transmit(a, b, now) == "promoted"
        assert transmit(b, a, now) == "promoted"
        assert transmit(a, b, now) == "current"
        assert not a.rotation_pending
        assert not b.rotation_pending
    assert a.send_epoch == b.recv_epoch == 300
    assert a.session_key == b.session_key
    # Previous epoch (299 = 43 mod 256) still within grace; 298 is gone.
    assert b.select_receive_key(299 % 256, now) is not None
    assert b.select_receive_key(298 % 256, now) is None


def test_rekey_is_one_way_and_deterministic() -> None:
    assert rekey(K_AB) == rekey(K_AB)
    assert rekey(K_AB) != K_AB
    assert rekey(rekey(K_AB)) not in (K_AB, rekey(K_AB))


def test_repr_shows_no_key() -> None:
    a, _ = make_pair()
    text = repr(a)
    assert "send_epoch=0" in text
    for key in (K_AB, K_BA, EXPORTER, rekey(K_BA)):
        assert key.hex() not in text
        assert repr(key) not in text


def test_can_rotate_exactly_at_the_interval_deadline() -> None:
    # 1000.05 - 1000.0 < 0.05 in floating point: the check must use the deadline's own sum, or a
    # timer armed at ``last + interval`` fires and finds nothing to do, forever.
    a, b = make_pair(1000.0)
    a.rotate(1000.0)
    transmit(a, b, 1000.0)
    transmit(b, a, 1000.0)
    assert not a.rotation_pending
    assert 1000.05 - 1000.0 < 0.05
    assert a.can_rotate(1000.0 + 0.05, 0.05)


def test_keys_started_at_tracks_the_older_direction() -> None:
    a, b = make_pair()
    assert a.keys_started_at == T0
    a.rotate(T0 + 100)
    assert a.epoch_started_at == T0 + 100
    assert a.keys_started_at == T0  # the receive key is still the handshake's
    transmit(a, b, T0 + 101)
    assert b.keys_started_at == T0 + 101  # promoted and followed at once
    transmit(b, a, T0 + 102)
    assert a.keys_started_at == T0 + 100
    assert a.recv_epoch_started_at == T0 + 102


def test_fingerprint_changes_exactly_when_the_keys_do() -> None:
    a, _ = make_pair()
    before = a.fingerprint()
    a.next_send()
    a.select_receive_key(1, T0)
    assert a.after_authenticated(SLOT_CURRENT, 0, T0, RTT) is False
    assert a.fingerprint() == before  # counters and lookups are not key state
    a.rotate(T0)
    rotated = a.fingerprint()
    assert rotated != before
    a.after_authenticated(SLOT_NEXT, 1, T0, RTT)
    promoted = a.fingerprint()
    assert promoted not in (before, rotated)
    a.handle_timer(T0 + KEY_GRACE_MIN_S)  # the previous receive key is erased
    assert a.fingerprint() != promoted
    erased_before = a.fingerprint()
    a.erase()
    assert a.fingerprint() != erased_before
    for fingerprint in (before, rotated, promoted):
        assert len(fingerprint) == 16
        for key in (K_AB, K_BA, EXPORTER, rekey(K_AB), rekey(K_BA)):
            assert key[:8] not in fingerprint  # it reveals no key


@pytest.mark.parametrize(
    ("requested", "elapsed", "sent", "acts"),
    [
        (False, 10.0, 5, False),  # neither due nor requested
        (False, 120.0, 5, True),  # due by time
        (False, 10.0, 100, True),  # due by count
        (True, 10.0, 5, True),  # requested
    ],
)
def test_may_act_is_false_only_when_maybe_rotate_would_do_nothing(
    requested: bool, elapsed: float, sent: int, acts: bool
) -> None:
    keys = KeySchedule(bytes(32), bytes(range(32)), bytes(64), 0.0)
    policy = RotationPolicy(rekey_after_s=120.0, rekey_after_messages=100)
    if requested:
        policy.request(keys)
    for _ in range(sent):
        keys.next_send()
    assert policy.may_act(keys, elapsed) is acts
    rotated = policy.maybe_rotate(keys, elapsed, interval_s=0.0)
    assert rotated is acts
    assert keys.send_epoch == (1 if acts else 0)
