"""Our Noise engine against the independent ``noiseprotocol`` package, plus rejection tests.

``noiseprotocol`` (module ``noise``) is a test-only dependency with its own X25519, ChaChaPoly and
BLAKE2b (from ``cryptography``): agreement with it on handshake, transport and rekey is evidence
independent of our primitives.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import pytest
from noise.connection import Keypair, NoiseConnection
from noise.exceptions import NoiseInvalidMessage

from seigr_stt.core.crypto import public_key
from seigr_stt.core.noise import (
    CipherState,
    HandshakeState,
    NoiseDecryptError,
    NoiseError,
    NoiseInvalidKey,
    NoiseStateError,
)

_SUITE = "_25519_ChaChaPoly_BLAKE2b"
_PROLOGUE = b"seigr-stt interop prologue"


@dataclass(frozen=True)
class _Shape:
    """Which keys each role holds before the handshake."""

    initiator_static: bool
    responder_static: bool
    initiator_knows_responder: bool = False
    responder_knows_initiator: bool = False
    psks: int = 0


_SHAPES: dict[str, _Shape] = {
    "Noise_NN" + _SUITE: _Shape(False, False),
    "Noise_XX" + _SUITE: _Shape(True, True),
    "Noise_XXpsk3" + _SUITE: _Shape(True, True, psks=1),
    "Noise_NK" + _SUITE: _Shape(False, True, initiator_knows_responder=True),
    "Noise_KK" + _SUITE: _Shape(True, True, True, True),
    "Noise_IKpsk2" + _SUITE: _Shape(True, True, initiator_knows_responder=True, psks=1),
    "Noise_XXpsk0+psk3" + _SUITE: _Shape(True, True, psks=2),
}


@dataclass
class _Pair:
    ours: HandshakeState
    theirs: Any  # NoiseConnection (untyped package)
    ours_initiator: bool
    their_static_public: bytes | None


def _make_pair(name: str, ours_initiator: bool) -> _Pair:
    shape = _SHAPES[name]
    psks = [secrets.token_bytes(32) for _ in range(shape.psks)]
    init_s = secrets.token_bytes(32) if shape.initiator_static else None
    resp_s = secrets.token_bytes(32) if shape.responder_static else None
    ours_s, theirs_s = (init_s, resp_s) if ours_initiator else (resp_s, init_s)
    ours_knows = (
        shape.initiator_knows_responder if ours_initiator else shape.responder_knows_initiator
    )
    theirs_knows = (
        shape.responder_knows_initiator if ours_initiator else shape.initiator_knows_responder
    )

    ours = HandshakeState(
        name,
        ours_initiator,
        _PROLOGUE,
        s=ours_s,
        rs=public_key(theirs_s) if ours_knows and theirs_s is not None else None,
        psks=psks,
        rng=secrets.token_bytes,
    )

    theirs = NoiseConnection.from_name(name.encode())
    if ours_initiator:
        theirs.set_as_responder()
    else:
        theirs.set_as_initiator()
    theirs.set_prologue(_PROLOGUE)
    if psks:
        theirs.set_psks(psks=psks)
    if theirs_s is not None:
        theirs.set_keypair_from_private_bytes(Keypair.STATIC, theirs_s)
    if theirs_knows and ours_s is not None:
        theirs.set_keypair_from_public_bytes(Keypair.REMOTE_STATIC, public_key(ours_s))
    theirs.start_handshake()
    return _Pair(ours, theirs, ours_initiator, None if theirs_s is None else public_key(theirs_s))


def _handshake(pair: _Pair) -> None:
    number = 0
    while not pair.ours.is_complete:
        payload = f"handshake payload {number}".encode()
        if pair.ours.is_my_turn:
            message = pair.ours.write_message(payload)
            assert bytes(pair.theirs.read_message(message)) == payload
        else:
            message = bytes(pair.theirs.write_message(payload))
            assert pair.ours.read_message(message) == payload
        number += 1
    assert pair.theirs.handshake_finished


def _exchange(send: CipherState, recv: CipherState, theirs: Any, rounds: int) -> None:
    for i in range(rounds):
        outbound = secrets.token_bytes(i * 37)
        assert bytes(theirs.decrypt(send.encrypt_with_ad(b"", outbound))) == outbound
        inbound = secrets.token_bytes(i * 53 + 1)
        assert recv.decrypt_with_ad(b"", bytes(theirs.encrypt(inbound))) == inbound


_CASES = [(name, role) for name in _SHAPES for role in (True, False)]
_IDS = [
    f"{name.split('_')[1]}-{'ours-initiator' if role else 'ours-responder'}"
    for name, role in _CASES
]


@pytest.mark.parametrize(("name", "ours_initiator"), _CASES, ids=_IDS)
def test_interop_noiseprotocol_handshake_transport_rekey(name: str, ours_initiator: bool) -> None:
    pair = _make_pair(name, ours_initiator)
    _handshake(pair)

    assert pair.ours.handshake_hash == bytes(pair.theirs.get_handshake_hash())
    assert pair.ours.remote_static == pair.their_static_public

    send, recv = pair.ours.split()
    _exchange(send, recv, pair.theirs, rounds=5)
    assert send.n == 5
    assert recv.n == 5

    send.rekey()
    recv.rekey()
    pair.theirs.rekey_outbound_cipher()
    pair.theirs.rekey_inbound_cipher()
    _exchange(send, recv, pair.theirs, rounds=4)
    assert send.n == 9  # rekey keeps the nonce running


@pytest.mark.parametrize("ours_initiator", [True, False])
def test_interop_rekey_one_side_only_fails(ours_initiator: bool) -> None:
    pair = _make_pair("Noise_XXpsk3" + _SUITE, ours_initiator)
    _handshake(pair)
    send, _recv = pair.ours.split()
    send.rekey()
    with pytest.raises(NoiseInvalidMessage):
        pair.theirs.decrypt(send.encrypt_with_ad(b"", b"after a one-sided rekey"))


# -- Rejections ----------------------------------------------------------------------------

_P = 2**255 - 19
_LOW_ORDER_CANONICAL = [
    0,
    1,
    0x00B8495F16056286FDB1329CEB8D09DA6AC49FF1FAE35616AEB8413B7C7AEBE0,
    0x57119FD0DD4E22D8868E1C58C45C44045BEF839C55B1D0B1248C50A3BC959C5F,
    _P - 1,
    _P,
    _P + 1,
]
_LOW_ORDER_POINTS = [n.to_bytes(32, "little") for n in _LOW_ORDER_CANONICAL] + [
    (n | 1 << 255).to_bytes(32, "little") for n in _LOW_ORDER_CANONICAL
]


@pytest.mark.parametrize(
    "point", _LOW_ORDER_POINTS, ids=[p.hex()[:8] + p.hex()[-4:] for p in _LOW_ORDER_POINTS]
)
def test_interop_low_order_remote_ephemeral_is_rejected(point: bytes) -> None:
    """A low-order ``e`` makes the first DH that uses it fail, as NoiseInvalidKey."""
    pair = _make_pair("Noise_XXpsk3" + _SUITE, ours_initiator=True)
    first = pair.ours.write_message(b"")
    pair.theirs.read_message(first)
    genuine = bytes(pair.theirs.write_message(b"reply"))
    forged = point + genuine[32:]
    with pytest.raises(NoiseInvalidKey):
        pair.ours.read_message(forged)
    # The failed read left no trace: the genuine reply still completes the handshake.
    assert pair.ours.read_message(genuine) == b"reply"

    # A responder whose first DH is with the remote ephemeral (NK: e, es) rejects it as well.
    responder = HandshakeState(
        "Noise_NK" + _SUITE, False, b"", s=secrets.token_bytes(32), rng=secrets.token_bytes
    )
    with pytest.raises(NoiseInvalidKey):
        responder.read_message(point + bytes(16))


@pytest.mark.parametrize("name", ["Noise_XXpsk3" + _SUITE, "Noise_XX" + _SUITE])
@pytest.mark.parametrize("ours_initiator", [True, False])
def test_interop_flipped_bit_raises_decrypt_error(name: str, ours_initiator: bool) -> None:
    """Every byte of every authenticated handshake message is covered by an AEAD tag."""
    pair = _make_pair(name, ours_initiator)
    number = 0
    while not pair.ours.is_complete:
        if pair.ours.is_my_turn:
            pair.theirs.read_message(pair.ours.write_message(b"payload"))
        else:
            genuine = bytes(pair.theirs.write_message(b"payload"))
            # XX's first message is plaintext (an ephemeral key and a clear payload): nothing to
            # authenticate yet. With psk3 the psk-mode MixKey(e) already encrypts its payload.
            authenticated = number > 0 or "psk" in name
            for position in range(len(genuine)) if authenticated else ():
                tampered = bytearray(genuine)
                tampered[position] ^= 1 << (position % 8)
                with pytest.raises(NoiseDecryptError):
                    pair.ours.read_message(bytes(tampered))
            assert pair.ours.read_message(genuine) == b"payload"
        number += 1
    send, _recv = pair.ours.split()
    assert (
        bytes(pair.theirs.decrypt(send.encrypt_with_ad(b"", b"still in sync"))) == b"still in sync"
    )


def test_interop_transport_flipped_bit_raises_decrypt_error() -> None:
    pair = _make_pair("Noise_XXpsk3" + _SUITE, ours_initiator=False)
    _handshake(pair)
    _send, recv = pair.ours.split()
    genuine = bytes(pair.theirs.encrypt(b"transport"))
    for position in range(len(genuine)):
        tampered = bytearray(genuine)
        tampered[position] ^= 0x80
        with pytest.raises(NoiseDecryptError):
            recv.decrypt_with_ad(b"", bytes(tampered))
    assert recv.n == 0  # failures never advance the nonce
    assert recv.decrypt_with_ad(b"", genuine) == b"transport"


def test_interop_out_of_turn_calls_raise() -> None:
    psk = [secrets.token_bytes(32)]
    name = "Noise_XXpsk3" + _SUITE

    def party(initiator: bool) -> HandshakeState:
        return HandshakeState(
            name, initiator, b"", s=secrets.token_bytes(32), psks=psk, rng=secrets.token_bytes
        )

    initiator, responder = party(True), party(False)
    with pytest.raises(NoiseStateError):
        initiator.read_message(bytes(48))
    with pytest.raises(NoiseStateError):
        responder.write_message(b"")
    for state in (initiator, responder):
        with pytest.raises(NoiseStateError):
            state.split()
        with pytest.raises(NoiseStateError):
            _ = state.handshake_hash
        with pytest.raises(NoiseStateError):
            _ = state.exporter

    responder.read_message(initiator.write_message(b""))
    with pytest.raises(NoiseStateError):
        initiator.write_message(b"")  # twice in a row
    with pytest.raises(NoiseStateError):
        responder.read_message(bytes(48))
    initiator.read_message(responder.write_message(b""))
    responder.read_message(initiator.write_message(b""))
    assert initiator.is_complete
    assert responder.is_complete
    for state in (initiator, responder):
        assert not state.is_my_turn
        with pytest.raises(NoiseStateError):
            state.write_message(b"")
        with pytest.raises(NoiseStateError):
            state.read_message(bytes(64))
        state.split()
        with pytest.raises(NoiseStateError):
            state.split()  # transport keys are handed out once
        with pytest.raises(NoiseStateError):
            state.split_keys()
    assert issubclass(NoiseStateError, NoiseError)


# -- STT's exporter from what noiseprotocol exposes (docs/protocol.md §2.3) ---------------------
@pytest.mark.parametrize("ours_initiator", [True, False])
def test_session_key_from_what_noiseprotocol_exposes(ours_initiator: bool) -> None:
    """A full STT handshake (packets, payloads, mac1) between our handshake objects and a
    ``noiseprotocol`` peer; the peer derives ``exporter_0`` and ``session_key`` from
    ``get_handshake_hash()`` and the keys of its two transport CipherStates (Noise's Split()),
    never the chaining key, and gets ours."""
    import hashlib

    import msgpack

    from seigr_stt import generate_seed
    from seigr_stt.constants import PROLOGUE
    from seigr_stt.core.handshake import InitiatorHandshake, ResponderHandshake
    from seigr_stt.core.identity import NodeIdentity, SharedSecrets
    from seigr_stt.core.keys import KeySchedule

    def kdf(seed: bytes, label: bytes) -> bytes:
        return hashlib.blake2b(label, digest_size=32, key=seed, person=b"seigr-stt-kdf-v1").digest()

    def mac1(body: bytes) -> bytes:
        return body + hashlib.blake2b(body, digest_size=16, key=secrets_.mac1_key).digest()

    secrets_ = SharedSecrets.from_seed(generate_seed())
    ours_id = NodeIdentity.from_seed(generate_seed())
    their_static = secrets.token_bytes(32)
    theirs = NoiseConnection.from_name(b"Noise_XXpsk3_25519_ChaChaPoly_BLAKE2b")
    theirs.set_as_responder() if ours_initiator else theirs.set_as_initiator()
    theirs.set_prologue(PROLOGUE)
    theirs.set_psks(psk=secrets_.psk)
    theirs.set_keypair_from_private_bytes(Keypair.STATIC, their_static)
    theirs.start_handshake()
    i_index, r_index = b"\x0a\x0b\x0c\x0d", b"\x01\x02\x03\x04"
    version = PROLOGUE[len(b"seigr-stt/") : PROLOGUE.index(b" ")]
    assert version == b"1.1"
    from seigr_stt.constants import PROTOCOL_VERSION

    v = bytes([PROTOCOL_VERSION])
    if ours_initiator:
        ours = InitiatorHandshake(
            ours_id, secrets_, i_index, capabilities=0, timestamp_ns=1, rng=secrets.token_bytes
        )
        init = ours.init_packet()
        fields = msgpack.unpackb(bytes(theirs.read_message(init[8:-32])))
        assert fields["i"] == i_index
        body = v + b"\x02\x00\x00" + r_index + i_index
        body += bytes(theirs.write_message(msgpack.packb({"i": r_index, "r": i_index, "c": 0})))
        final = ours.receive_response(mac1(body) + bytes(16))
        assert msgpack.unpackb(bytes(theirs.read_message(final[12:-32]))) == {
            "i": i_index,
            "r": r_index,
        }
        result = ours.result
        k1 = theirs.noise_protocol.cipher_state_decrypt.k  # initiator -> responder
        k2 = theirs.noise_protocol.cipher_state_encrypt.k
    else:
        payload = {"i": i_index, "t": 1, "c": 0, "p": b""}
        payload["p"] = bytes(256 - (8 + 32 + len(msgpack.packb(payload)) + 16 + 32))  # §4.3
        body = v + b"\x01\x00\x00" + i_index
        body += bytes(theirs.write_message(msgpack.packb(payload)))
        responder = ResponderHandshake(
            ours_id, secrets_, r_index, mac1(body) + bytes(16), capabilities=0,
            rng=secrets.token_bytes,
        )  # fmt: skip
        response = responder.response_packet
        theirs.read_message(response[12:-32])
        body = v + b"\x03\x00\x00" + i_index + r_index
        body += bytes(theirs.write_message(msgpack.packb({"i": i_index, "r": r_index})))
        result = responder.receive_final(mac1(body) + bytes(16))
        k1 = theirs.noise_protocol.cipher_state_encrypt.k
        k2 = theirs.noise_protocol.cipher_state_decrypt.k
    assert result is not None
    assert theirs.handshake_finished
    h = bytes(theirs.get_handshake_hash())
    assert h == result.handshake_hash
    exporter = kdf(k1 + k2, b"exporter" + h)  # §2.3: no chaining key needed
    assert exporter == result.exporter
    schedule = KeySchedule(result.send_key, result.recv_key, result.exporter, 0.0)
    assert kdf(exporter, b"session-key") == schedule.session_key
