"""Unit tests of :mod:`seigr_stt.core.noise.cipher`: CipherState, SymmetricState, rekey."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from seigr_stt.core.noise import (
    MAX_NONCE,
    CipherState,
    NoiseConfigError,
    NoiseDecryptError,
    NoiseNonceExhausted,
    NoiseStateError,
    SymmetricState,
    rekey,
)
from tests.core.noise import KEY, SUITE


def _independent_encrypt(key: bytes, counter: int, ad: bytes, plaintext: bytes) -> bytes:
    """ChaChaPoly from ``cryptography``, not from our crypto module."""
    nonce = bytes(4) + counter.to_bytes(8, "little")
    return ChaCha20Poly1305(key).encrypt(nonce, plaintext, ad)


# -- CipherState ---------------------------------------------------------------------------------


def test_cipherstate_without_key_is_identity() -> None:
    cs = CipherState()
    assert not cs.has_key()
    assert cs.encrypt_with_ad(b"ad", b"plain") == b"plain"
    assert cs.decrypt_with_ad(b"ad", b"plain") == b"plain"
    assert cs.n == 0
    with pytest.raises(NoiseStateError):
        cs.rekey()


def test_cipherstate_nonce_increments_and_matches_independent_aead() -> None:
    sender, receiver = CipherState(KEY), CipherState(KEY)
    for n in range(3):
        ct = sender.encrypt_with_ad(b"ad", b"message %d" % n)
        assert ct == _independent_encrypt(KEY, n, b"ad", b"message %d" % n)
        assert sender.n == n + 1
        assert receiver.decrypt_with_ad(b"ad", ct) == b"message %d" % n
        assert receiver.n == n + 1


def test_cipherstate_failed_decrypt_keeps_nonce() -> None:
    sender, receiver = CipherState(KEY), CipherState(KEY)
    ct = sender.encrypt_with_ad(b"", b"x")
    with pytest.raises(NoiseDecryptError):
        receiver.decrypt_with_ad(b"other ad", ct)
    with pytest.raises(NoiseDecryptError):
        receiver.decrypt_with_ad(b"", ct[:-1] + bytes([ct[-1] ^ 1]))
    with pytest.raises(NoiseDecryptError):
        receiver.decrypt_with_ad(b"", b"short")
    assert receiver.n == 0
    assert receiver.decrypt_with_ad(b"", ct) == b"x"


def test_cipherstate_set_nonce_and_exhaustion() -> None:
    sender, receiver = CipherState(KEY), CipherState(KEY)
    sender.set_nonce(MAX_NONCE - 1)  # the last usable nonce
    receiver.set_nonce(MAX_NONCE - 1)
    ct = sender.encrypt_with_ad(b"", b"last")
    assert ct == _independent_encrypt(KEY, MAX_NONCE - 1, b"", b"last")
    assert receiver.decrypt_with_ad(b"", ct) == b"last"
    assert sender.n == MAX_NONCE
    with pytest.raises(NoiseNonceExhausted):
        sender.encrypt_with_ad(b"", b"one more")
    with pytest.raises(NoiseNonceExhausted):
        receiver.decrypt_with_ad(b"", ct)
    assert issubclass(NoiseNonceExhausted, NoiseStateError)
    for bad in (-1, MAX_NONCE + 1):
        with pytest.raises(NoiseConfigError):
            sender.set_nonce(bad)


def test_cipherstate_rekey_is_the_spec_formula() -> None:
    # REKEY(k) = ENCRYPT(k, 2**64-1, zerolen, zeros)[:32], computed with an independent AEAD.
    expected = _independent_encrypt(KEY, MAX_NONCE, b"", bytes(32))[:32]
    assert rekey(KEY) == expected
    cs = CipherState(KEY)
    cs.set_nonce(7)
    cs.rekey()
    assert cs.k == expected
    assert cs.n == 7  # rekey leaves the nonce alone
    assert cs.encrypt_with_ad(b"", b"z") == _independent_encrypt(expected, 7, b"", b"z")
    with pytest.raises(NoiseConfigError):
        rekey(b"short")


def test_cipherstate_key_length_and_initialize_key() -> None:
    with pytest.raises(NoiseConfigError):
        CipherState(b"x" * 31)
    cs = CipherState(KEY, 5)
    cs.initialize_key(None)
    assert not cs.has_key()
    assert cs.n == 0


def test_cipherstate_copy_is_independent() -> None:
    cs = CipherState(KEY, 3)
    clone = cs.copy()
    clone.encrypt_with_ad(b"", b"")
    assert (cs.n, clone.n) == (3, 4)


# -- SymmetricState ------------------------------------------------------------------------------


def test_symmetricstate_protocol_name_padding_and_hashing() -> None:
    short = b"Noise_XX" + SUITE.encode()
    assert SymmetricState(short).get_handshake_hash() == short + bytes(64 - len(short))
    exact = b"N" * 64
    assert SymmetricState(exact).get_handshake_hash() == exact
    long = b"N" * 65
    assert SymmetricState(long).get_handshake_hash() == hashlib.blake2b(long).digest()


def test_symmetricstate_split3_extends_split() -> None:
    ss = SymmetricState(b"Noise_NN" + SUITE.encode())
    ss.mix_key(b"input key material")
    ss.mix_key_and_hash(b"more")
    c1, c2 = ss.split()
    d1, d2, exporter = ss.split3()
    assert (c1.k, c2.k) == (d1.k, d2.k)
    assert ss.split3_keys() == (d1.k, d2.k, exporter)
    assert len(exporter) == 32
    assert exporter not in (c1.k, c2.k)
    assert c1.n == c2.n == d1.n == d2.n == 0


def test_symmetricstate_encrypt_decrypt_and_hash_track_h() -> None:
    a = SymmetricState(b"Noise_NN" + SUITE.encode())
    b = a.copy()
    assert a.encrypt_and_hash(b"clear") == b"clear"  # no key yet
    assert b.decrypt_and_hash(b"clear") == b"clear"
    a.mix_key(b"k")
    b.mix_key(b"k")
    ct = a.encrypt_and_hash(b"secret")
    before = b.get_handshake_hash()
    with pytest.raises(NoiseDecryptError):
        b.decrypt_and_hash(ct[:-1] + bytes([ct[-1] ^ 1]))
    assert b.get_handshake_hash() == before  # a failure does not touch h
    assert b.decrypt_and_hash(ct) == b"secret"
    assert a.get_handshake_hash() == b.get_handshake_hash()
