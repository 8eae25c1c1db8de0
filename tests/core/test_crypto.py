"""The primitives module: both AEAD backends agree byte for byte, errors are typed, and cipher
objects live with their owner (the module holds no state)."""

from __future__ import annotations

import gc
import hashlib
import hmac
import types
import weakref
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seigr_stt.core import crypto
from seigr_stt.core.keys import KeySchedule
from tests.profiles import scaled

BACKENDS = [
    pytest.param(crypto.NaclAead, id="pynacl"),
    pytest.param(crypto.PycaAead, id="cryptography"),
]
KEY = bytes(range(32))
COUNTER = 7


def test_the_fast_backend_is_in_use_when_installed() -> None:
    assert crypto.AEAD_BACKEND == "cryptography"  # the dev extras install it (speed extra)
    assert isinstance(crypto.make_aead(KEY), crypto.PycaAead)


@settings(max_examples=scaled(0.3), deadline=None)
@given(st.binary(max_size=1500), st.binary(max_size=40), st.integers(0, 2**64 - 1))
def test_backends_produce_identical_records(plaintext: bytes, ad: bytes, counter: int) -> None:
    nacl, pyca = crypto.NaclAead(KEY), crypto.PycaAead(KEY)
    sealed = nacl.encrypt(counter, ad, plaintext)
    assert pyca.encrypt(counter, ad, plaintext) == sealed
    assert pyca.decrypt(counter, ad, sealed) == plaintext
    assert nacl.decrypt(counter, ad, sealed) == plaintext
    assert crypto.aead_encrypt(KEY, counter, ad, plaintext) == sealed
    assert crypto.aead_decrypt(KEY, counter, ad, sealed) == plaintext


def test_a_cipher_gets_its_openssl_context_only_once_its_key_is_busy() -> None:
    """Memory per idle session: the first AEAD_CONTEXT_AFTER_CALLS calls under a key are
    libsodium one-shots; the next call makes the OpenSSL context. Bytes never change, and a
    forgery is refused the same way before and after."""
    from seigr_stt.constants import AEAD_CONTEXT_AFTER_CALLS

    pyca, nacl = crypto.PycaAead(KEY), crypto.NaclAead(KEY)
    done = 0  # calls made so far
    for counter in range(AEAD_CONTEXT_AFTER_CALLS + 4):
        assert (pyca._encrypt is not None) == (done > AEAD_CONTEXT_AFTER_CALLS)
        plaintext = b"record %d" % counter
        sealed = pyca.encrypt(counter, b"ad", plaintext)
        assert sealed == nacl.encrypt(counter, b"ad", plaintext)
        assert (pyca._encrypt is not None) == (done + 1 > AEAD_CONTEXT_AFTER_CALLS)
        assert pyca.decrypt(counter, b"ad", sealed) == plaintext
        with pytest.raises(crypto.DecryptError):
            pyca.decrypt(counter, b"ad", sealed[:-1] + bytes([sealed[-1] ^ 1]))
        done += 3
    assert pyca._encrypt is not None
    assert pyca._decrypt is not None


def test_the_nonce_is_noises_four_zero_bytes_then_the_le64_counter() -> None:
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    nonce = bytes(4) + COUNTER.to_bytes(8, "little")
    expected = ChaCha20Poly1305(KEY).encrypt(nonce, b"payload", b"ad")
    for backend in (crypto.NaclAead, crypto.PycaAead):
        assert backend(KEY).encrypt(COUNTER, b"ad", b"payload") == expected


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_backend_refuses_a_forgery_with_decrypt_error(
    backend: Callable[[bytes], crypto.Aead],
) -> None:
    aead = backend(KEY)
    sealed = aead.encrypt(COUNTER, b"ad", b"payload")
    for bad in (
        sealed[:-1] + bytes([sealed[-1] ^ 1]),
        bytes([sealed[0] ^ 0x80]) + sealed[1:],
    ):
        with pytest.raises(crypto.DecryptError):
            aead.decrypt(COUNTER, b"ad", bad)
    with pytest.raises(crypto.DecryptError):
        aead.decrypt(COUNTER, b"other ad", sealed)
    with pytest.raises(crypto.DecryptError):
        aead.decrypt(COUNTER + 1, b"ad", sealed)
    with pytest.raises(crypto.DecryptError):
        backend(bytes(32)).decrypt(COUNTER, b"ad", sealed)


@pytest.mark.parametrize("backend", BACKENDS)
def test_short_ciphertext_is_a_decrypt_error(backend: Callable[[bytes], crypto.Aead]) -> None:
    aead = backend(KEY)
    for size in range(crypto.TAG_LEN):
        with pytest.raises(crypto.DecryptError):
            aead.decrypt(0, b"", bytes(size))
        with pytest.raises(crypto.DecryptError):
            crypto.aead_decrypt(KEY, 0, b"", bytes(size))


@pytest.mark.parametrize("backend", BACKENDS)
def test_cipher_objects_do_not_show_their_key(backend: Callable[[bytes], crypto.Aead]) -> None:
    text = repr(backend(KEY))
    assert KEY.hex() not in text
    assert repr(KEY) not in text


def test_the_module_holds_no_mutable_state() -> None:
    # The old module-global cipher cache kept every traffic key's cipher object (and so the key)
    # alive after the session erased it. No module-level container may come back.
    mutable = (dict, list, set, bytearray, memoryview)
    offenders = [
        name
        for name, value in vars(crypto).items()
        if not name.startswith("__")
        and isinstance(value, mutable)
        and not isinstance(value, types.ModuleType)
    ]
    assert offenders == []
    assert not hasattr(crypto, "forget_key")


def test_one_shot_calls_keep_no_cipher_object(monkeypatch: pytest.MonkeyPatch) -> None:
    made = _track_ciphers(monkeypatch, "_AEAD_CLASS")
    sealed = crypto.aead_encrypt(KEY, 0, b"", b"x")
    assert crypto.aead_decrypt(KEY, 0, b"", sealed) == b"x"
    gc.collect()
    assert len(made) == 2
    assert [r() for r in made] == [None, None]


def test_erasing_a_key_schedule_drops_its_cipher_objects(monkeypatch: pytest.MonkeyPatch) -> None:
    made = _track_ciphers(monkeypatch, "make_aead")
    keys = KeySchedule(bytes(range(32)), bytes(range(1, 33)), bytes(32), 0.0)
    assert len(made) == 3  # send, receive current, receive next
    keys.rotate(1.0)  # the old send key's cipher goes with the key
    gc.collect()
    assert len(made) == 4
    assert made[0]() is None
    assert all(r() is not None for r in made[1:])
    keys.erase()
    gc.collect()
    assert [r() for r in made] == [None] * 4
    assert keys.erased


def _track_ciphers(
    monkeypatch: pytest.MonkeyPatch, attribute: str
) -> list[weakref.ReferenceType[crypto.Aead]]:
    """Make every cipher object through a weak-referenceable subclass and keep a weak reference
    to each (the real classes use ``__slots__`` without ``__weakref__``)."""
    made: list[weakref.ReferenceType[crypto.Aead]] = []
    base = crypto._AEAD_CLASS

    class Tracked(base):  # type: ignore[valid-type,misc]
        __slots__ = ("__weakref__",)

        def __init__(self, key: bytes) -> None:
            super().__init__(key)
            made.append(weakref.ref(self))

    monkeypatch.setattr(crypto, attribute, Tracked)
    return made


@settings(max_examples=scaled(1), deadline=None)
@given(key=st.binary(max_size=300), data=st.binary(max_size=300))
def test_hmac_hash_is_rfc_2104_hmac_blake2b(key: bytes, data: bytes) -> None:
    # Keys shorter than, equal to and longer than BLAKE2b's 128-byte block (a long key is
    # hashed first): the precomputed pads must give what the standard library's HMAC gives.
    assert crypto.hmac_hash(key, data) == hmac.digest(key, data, hashlib.blake2b)


@pytest.mark.parametrize("key_size", [0, 64, 128, 129])
def test_hmac_hash_at_the_block_size_edges(key_size: int) -> None:
    key = bytes((i * 7) % 256 for i in range(key_size))
    assert crypto.hmac_hash(key, b"m") == hmac.digest(key, b"m", hashlib.blake2b)


@settings(max_examples=scaled(1), deadline=None)
@given(
    chaining_key=st.binary(min_size=64, max_size=64),
    ikm=st.sampled_from([b"", bytes(32), bytes(range(64))]) | st.binary(max_size=64),
    outputs=st.sampled_from([2, 3]),
)
def test_hkdf_is_noises_hkdf(chaining_key: bytes, ikm: bytes, outputs: int) -> None:
    # Noise §4.3 spelled out with the standard library's HMAC: each output keyed by the
    # temporary key, over the previous output and the output's number.
    temp_key = hmac.digest(chaining_key, ikm, hashlib.blake2b)
    expected, previous = [], b""
    for i in range(1, outputs + 1):
        previous = hmac.digest(temp_key, previous + bytes([i]), hashlib.blake2b)
        expected.append(previous)
    assert crypto.hkdf(chaining_key, ikm, outputs) == tuple(expected)
