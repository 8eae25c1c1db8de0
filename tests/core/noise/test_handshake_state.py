"""Unit tests of :mod:`seigr_stt.core.noise.handshake_state`: HandshakeState edge cases."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seigr_stt.core.crypto import public_key
from seigr_stt.core.noise import (
    MAX_MESSAGE_LEN,
    HandshakeState,
    NoiseConfigError,
    NoiseError,
    NoiseInvalidKey,
    NoiseMessageError,
    NoiseStateError,
    patterns,
)
from tests.core.noise import KEY, SUITE, XXPSK3


def _counting_rng(start: int = 1) -> Callable[[int], bytes]:
    state = [start]

    def rng(n: int) -> bytes:
        state[0] += 1
        return hashlib.blake2b(state[0].to_bytes(8, "little"), digest_size=n).digest()

    return rng


def _pair(
    name: str = XXPSK3,
    psks: tuple[bytes, ...] = (b"p" * 32,),
    i_static: bytes | None = b"i" * 32,
    r_static: bytes | None = b"r" * 32,
) -> tuple[HandshakeState, HandshakeState]:
    """Deterministic parties: fixed statics, ephemerals from a seeded RNG."""
    initiator = HandshakeState(name, True, b"prologue", s=i_static, psks=psks, rng=_counting_rng(1))
    responder = HandshakeState(
        name, False, b"prologue", s=r_static, psks=psks, rng=_counting_rng(1000)
    )
    return initiator, responder


def _complete(initiator: HandshakeState, responder: HandshakeState) -> None:
    while not initiator.is_complete:
        sender, receiver = (
            (initiator, responder) if initiator.is_my_turn else (responder, initiator)
        )
        assert receiver.read_message(sender.write_message(b"hi")) == b"hi"
    assert responder.is_complete


# -- HandshakeState: split, exporter ------------------------------------------------------------


@pytest.mark.parametrize(
    "name", [XXPSK3, "Noise_NN" + SUITE, "Noise_IKpsk2" + SUITE, "Noise_X" + SUITE]
)
def test_exporter_agrees_and_split_matches_split3(name: str) -> None:
    static_i, static_r = b"i" * 32, b"r" * 32

    def run() -> tuple[HandshakeState, HandshakeState]:
        psks = (b"p" * 32,) if "psk" in name else ()
        needs_rs = name.startswith(("Noise_IK", "Noise_X_"))
        initiator = HandshakeState(
            name,
            True,
            b"",
            s=static_i,
            rs=public_key(static_r) if needs_rs else None,
            psks=psks,
            rng=_counting_rng(1),
        )
        responder = HandshakeState(name, False, b"", s=static_r, psks=psks, rng=_counting_rng(9))
        _complete(initiator, responder)
        return initiator, responder

    initiator, responder = run()
    assert initiator.exporter == responder.exporter
    assert len(initiator.exporter) == 32
    i_send, i_recv, i_exp = initiator.split_keys()
    r_send, r_recv, r_exp = responder.split_keys()
    assert (i_send, i_recv) == (r_recv, r_send)
    assert i_exp == r_exp == initiator.exporter
    assert i_exp not in (i_send, i_recv)

    # A deterministic rerun: split_raw and split hand out the same keys in the documented order.
    again_i, again_r = run()
    c1, c2 = again_i.split_raw()
    assert (c1.k, c2.k) == (i_send, i_recv)
    send, recv = again_r.split()
    assert (send.k, recv.k) == (r_send, r_recv)
    assert again_i.exporter == i_exp
    assert again_i.handshake_hash == initiator.handshake_hash


def test_is_one_way_and_properties() -> None:
    one_way = HandshakeState("Noise_Npsk0" + SUITE, True, b"", rs=public_key(KEY), psks=[KEY])
    assert one_way.is_one_way
    assert one_way.initiator
    assert one_way.protocol_name == ("Noise_Npsk0" + SUITE).encode()
    assert one_way.remote_static == public_key(KEY)
    interactive = HandshakeState(("Noise_NN" + SUITE).encode(), False, b"")
    assert not interactive.is_one_way
    assert not interactive.initiator
    assert interactive.remote_static is None


# -- HandshakeState: repr --------------------------------------------------------------------


def test_repr_never_shows_key_material() -> None:
    psk = b"\x11" * 32
    static_i, static_r = b"\x22" * 32, b"\x33" * 32
    initiator = HandshakeState(XXPSK3, True, b"", s=static_i, psks=[psk], e=b"\x44" * 32)
    responder = HandshakeState(XXPSK3, False, b"", s=static_r, psks=[psk], e=b"\x55" * 32)
    secrets_seen = [psk, static_i, static_r, b"\x44" * 32, b"\x55" * 32]

    def check(*objects: object) -> None:
        for obj in objects:
            text = repr(obj)
            for secret in secrets_seen:
                assert secret.hex() not in text
                assert repr(secret) not in text
                assert secret.hex()[:16] not in text

    check(initiator, responder)
    _complete(initiator, responder)
    send, recv = initiator.split()
    assert send.k is not None
    assert recv.k is not None
    secrets_seen += [send.k, recv.k, initiator.exporter]
    check(initiator, responder, send, recv, initiator._progress, initiator._progress.symmetric)
    assert "has_key=True" in repr(send)
    assert "XXpsk3" in repr(initiator)
    assert "complete=True" in repr(initiator)
    assert "message_index=3" in repr(initiator._progress)


# -- HandshakeState: configuration errors --------------------------------------------------------


def test_constructor_key_checks() -> None:
    rs = public_key(KEY)
    cases: list[Callable[[], HandshakeState]] = [
        lambda: HandshakeState(XXPSK3, True, b"", s=KEY, psks=[]),  # psk missing
        lambda: HandshakeState(XXPSK3, True, b"", s=KEY, psks=[KEY, KEY]),  # one too many
        lambda: HandshakeState(XXPSK3, True, b"", s=KEY, psks=[b"short"]),
        lambda: HandshakeState("Noise_NN" + SUITE, True, b"", psks=[KEY]),
        lambda: HandshakeState(XXPSK3, True, b"", psks=[KEY]),  # s missing
        lambda: HandshakeState("Noise_NK" + SUITE, False, b""),  # responder s missing
        lambda: HandshakeState("Noise_KN" + SUITE, True, b""),  # pre-shared s missing
        lambda: HandshakeState("Noise_NK" + SUITE, True, b""),  # rs missing
        lambda: HandshakeState(XXPSK3, True, b"", s=KEY, rs=rs, psks=[KEY]),  # rs transmitted
        lambda: HandshakeState("Noise_NN" + SUITE, True, b"", re=rs),  # no pre-shared e
        lambda: HandshakeState("Noise_NN" + SUITE, True, b"", e=b"x"),
        lambda: HandshakeState("Noise_NK" + SUITE, True, b"", rs=b"x" * 33),
        lambda: HandshakeState("Noise_NK" + SUITE, False, b"", s=KEY[:31]),
    ]
    for make in cases:
        with pytest.raises(NoiseConfigError):
            make()
    # Unused keys are fine (vectors hand static keys to NN).
    HandshakeState("Noise_NN" + SUITE, True, b"", s=KEY)


def test_ephemeral_needs_e_or_rng() -> None:
    state = HandshakeState("Noise_NN" + SUITE, True, b"")
    with pytest.raises(NoiseStateError):
        state.write_message(b"")
    short_rng = HandshakeState("Noise_NN" + SUITE, True, b"", rng=lambda n: bytes(n - 1))
    with pytest.raises(NoiseConfigError):
        short_rng.write_message(b"")
    assert not state.is_complete


# -- HandshakeState: message lengths ------------------------------------------------------------


def test_message_length_limits() -> None:
    initiator, responder = _pair()
    first = initiator.write_message(b"")
    assert len(first) == 32 + 16  # e, and the (psk-mode) encrypted empty payload
    for short in (b"", first[:31], first[:47]):
        with pytest.raises(NoiseMessageError):
            responder.read_message(short)
    with pytest.raises(NoiseMessageError):
        responder.read_message(bytes(MAX_MESSAGE_LEN + 1))
    assert responder.read_message(first) == b""

    reply = responder.write_message(b"")
    with pytest.raises(NoiseMessageError):
        initiator.read_message(reply[: 32 + 47])  # the encrypted static is cut short
    initiator.read_message(reply)

    with pytest.raises(NoiseMessageError):
        initiator.write_message(bytes(MAX_MESSAGE_LEN))
    last = initiator.write_message(bytes(MAX_MESSAGE_LEN - 48 - 16))
    assert len(last) == MAX_MESSAGE_LEN
    assert responder.read_message(last) == bytes(MAX_MESSAGE_LEN - 48 - 16)


def test_plaintext_payload_may_be_empty() -> None:
    initiator, responder = _pair("Noise_NN" + SUITE, psks=(), i_static=None, r_static=None)
    first = initiator.write_message(b"")
    assert len(first) == 32  # no key yet: the payload is sent in clear and empty
    assert responder.read_message(first) == b""
    with pytest.raises(NoiseMessageError):
        initiator.read_message(responder.write_message(b"")[:47])


def test_low_order_pre_shared_static_is_rejected_on_write() -> None:
    state = HandshakeState("Noise_NK" + SUITE, True, b"", rs=bytes(32), rng=secrets.token_bytes)
    with pytest.raises(NoiseInvalidKey):
        state.write_message(b"")
    assert state.is_my_turn  # nothing was consumed


# -- Pre-message ephemerals (no pattern of the tables has one; the engine supports them) --------


@pytest.mark.parametrize("modifier", ["", "psk1"])
def test_pre_message_ephemeral(monkeypatch: pytest.MonkeyPatch, modifier: str) -> None:
    # A fallback-shaped pattern: the initiator's ephemeral is known to the responder in advance.
    pattern = patterns.parse_pattern("-> e | ... | <- e, ee, s, es | -> s, se", one_way=False)
    monkeypatch.setitem(patterns.PATTERNS, "FB", pattern)
    name = f"Noise_FB{modifier}" + SUITE
    psks = [KEY] if modifier else []
    with pytest.raises(NoiseStateError):
        HandshakeState(name, True, b"", s=b"i" * 32, psks=psks)  # the pre-shared e must exist
    e_i = b"e" * 32
    initiator = HandshakeState(name, True, b"", s=b"i" * 32, e=e_i, psks=psks)
    with pytest.raises(NoiseConfigError):
        HandshakeState(name, False, b"", s=b"r" * 32, psks=psks, rng=secrets.token_bytes)
    responder = HandshakeState(
        name, False, b"", s=b"r" * 32, re=public_key(e_i), psks=psks, rng=secrets.token_bytes
    )
    assert responder.is_my_turn
    _complete(initiator, responder)
    assert initiator.handshake_hash == responder.handshake_hash
    generated = HandshakeState(name, True, b"", s=b"i" * 32, psks=psks, rng=secrets.token_bytes)
    assert not generated.is_my_turn


# -- Property: garbage never escapes as anything but NoiseError ---------------------------------


@settings(deadline=None)
@given(st.one_of(st.binary(max_size=200), st.binary(min_size=48, max_size=48)))
def test_random_bytes_to_fresh_responder_raise_only_noise_errors(data: bytes) -> None:
    responder = HandshakeState(
        XXPSK3, False, b"prologue", s=b"r" * 32, psks=[b"p" * 32], rng=secrets.token_bytes
    )
    with pytest.raises(NoiseError):
        responder.read_message(data)
    assert not responder.is_my_turn  # the failed read changed nothing


@settings(deadline=None)
@given(st.binary(min_size=0, max_size=160))
def test_random_reply_to_initiator_raises_only_noise_errors(data: bytes) -> None:
    initiator, responder = _pair()
    responder.read_message(initiator.write_message(b""))
    with pytest.raises(NoiseError):
        initiator.read_message(data)
    assert initiator.read_message(responder.write_message(b"ok")) == b"ok"
