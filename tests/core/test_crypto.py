"""The primitives module: both AEAD backends agree byte for byte, and errors are typed."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seigr_stt.core import crypto
from tests.profiles import scaled

BACKENDS = [
    pytest.param((crypto._nacl_encrypt, crypto._nacl_decrypt), id="pynacl"),
    pytest.param((crypto._pyca_encrypt, crypto._pyca_decrypt), id="cryptography"),
]
Seal = Callable[[bytes, bytes, bytes, bytes], bytes]
KEY = bytes(range(32))
NONCE = bytes(4) + (7).to_bytes(8, "little")


def test_the_fast_backend_is_in_use_when_installed() -> None:
    assert crypto.AEAD_BACKEND == "cryptography"  # the dev extras install it (speed extra)


@settings(max_examples=scaled(0.3), deadline=None)
@given(st.binary(max_size=1500), st.binary(max_size=40), st.integers(0, 2**64 - 1))
def test_backends_produce_identical_records(plaintext: bytes, ad: bytes, counter: int) -> None:
    nonce = bytes(4) + counter.to_bytes(8, "little")
    sealed = crypto._nacl_encrypt(KEY, nonce, ad, plaintext)
    assert crypto._pyca_encrypt(KEY, nonce, ad, plaintext) == sealed
    assert crypto._pyca_decrypt(KEY, nonce, ad, sealed) == plaintext
    assert crypto._nacl_decrypt(KEY, nonce, ad, sealed) == plaintext
    assert crypto.aead_encrypt(KEY, counter, ad, plaintext) == sealed


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_backend_refuses_a_forgery_with_decrypt_error(
    backend: tuple[Seal, Seal],
) -> None:
    encrypt, decrypt = backend
    sealed = encrypt(KEY, NONCE, b"ad", b"payload")
    for bad in (
        sealed[:-1] + bytes([sealed[-1] ^ 1]),
        bytes([sealed[0] ^ 0x80]) + sealed[1:],
    ):
        with pytest.raises(crypto.DecryptError):
            decrypt(KEY, NONCE, b"ad", bad)
    with pytest.raises(crypto.DecryptError):
        decrypt(KEY, NONCE, b"other ad", sealed)


def test_short_ciphertext_is_a_decrypt_error() -> None:
    for size in range(crypto.TAG_LEN):
        with pytest.raises(crypto.DecryptError):
            crypto.aead_decrypt(KEY, 0, b"", bytes(size))


def test_forget_key_drops_the_cached_cipher() -> None:
    key = bytes(range(1, 33))
    crypto.aead_encrypt(key, 0, b"", b"x")
    assert key in crypto._CIPHERS
    crypto.forget_key(key)
    assert key not in crypto._CIPHERS
    crypto.forget_key(key)  # idempotent


def test_cipher_cache_is_bounded() -> None:
    for i in range(crypto._CIPHER_CACHE_MAX + 5):
        crypto.aead_encrypt(i.to_bytes(32, "big"), 0, b"", b"")
    assert len(crypto._CIPHERS) <= crypto._CIPHER_CACHE_MAX
