"""The cryptographic primitives, and the one module that calls the AEAD.

X25519 comes from pynacl; BLAKE2b, HMAC and HKDF from the standard library. See
``docs/protocol.md`` §1. Every caller goes through these functions, so the AEAD backend is chosen
here alone, by measurement: ChaCha20-Poly1305 (IETF) from pyca/cryptography when it is installed
(the ``speed`` extra; about 2.5x faster per call for 64–1200-byte records on our machines, see
docs/performance.md), else from pynacl. Both produce identical bytes (tested).
"""

from __future__ import annotations

import hashlib
import hmac
import struct

from nacl import bindings as _nacl
from nacl.exceptions import CryptoError as _NaclCryptoError
from nacl.exceptions import RuntimeError as _NaclRuntimeError

from seigr_stt.constants import KDF_PERSON, KEY_BYTES, MAC_BYTES

__all__ = [
    "AEAD_BACKEND",
    "BLOCK_LEN",
    "DH_LEN",
    "HASH_LEN",
    "TAG_LEN",
    "DecryptError",
    "InvalidPublicKey",
    "aead_decrypt",
    "aead_encrypt",
    "dh",
    "forget_key",
    "hash_",
    "hkdf",
    "hmac_hash",
    "kdf",
    "mac",
    "public_key",
    "xaead_decrypt",
    "xaead_encrypt",
]

DH_LEN = 32
HASH_LEN = 64
BLOCK_LEN = 128
TAG_LEN = 16
_NONCE_PREFIX = b"\x00\x00\x00\x00"
_LE64 = struct.Struct("<Q")


class DecryptError(Exception):
    """An AEAD tag did not verify: the ciphertext, key, nonce or associated data is wrong."""


class InvalidPublicKey(Exception):
    """A Diffie-Hellman public key is of low order or otherwise unusable."""


def public_key(private: bytes) -> bytes:
    """Return the X25519 public key of a 32-byte private key."""
    return bytes(_nacl.crypto_scalarmult_base(private))


def dh(private: bytes, public: bytes) -> bytes:
    """X25519(private, public); raises :class:`InvalidPublicKey` for low-order points."""
    if len(public) != DH_LEN:
        raise InvalidPublicKey("public key must be 32 bytes")
    try:
        return bytes(_nacl.crypto_scalarmult(private, public))
    except (_NaclRuntimeError, _NaclCryptoError) as exc:
        raise InvalidPublicKey("low-order or invalid public key") from exc


def _nacl_encrypt(key: bytes, nonce: bytes, ad: bytes, plaintext: bytes) -> bytes:
    return bytes(_nacl.crypto_aead_chacha20poly1305_ietf_encrypt(plaintext, ad, nonce, key))


def _nacl_decrypt(key: bytes, nonce: bytes, ad: bytes, ciphertext: bytes) -> bytes:
    try:
        return bytes(_nacl.crypto_aead_chacha20poly1305_ietf_decrypt(ciphertext, ad, nonce, key))
    except (_NaclCryptoError, _NaclRuntimeError) as exc:
        raise DecryptError("authentication failed") from exc


try:  # pragma: no branch - which one depends on the installation
    from cryptography.exceptions import InvalidTag as _InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305 as _ChaCha
except ImportError:  # pragma: no cover - exercised by the backend tests with the module hidden
    _ChaCha = None  # type: ignore[assignment,misc]

_CIPHERS: dict[bytes, _ChaCha] = {}
_CIPHER_CACHE_MAX = 4096


def _cipher(key: bytes) -> _ChaCha:
    cipher = _CIPHERS.get(key)
    if cipher is None:
        if len(_CIPHERS) >= _CIPHER_CACHE_MAX:
            _CIPHERS.clear()
        cipher = _CIPHERS[key] = _ChaCha(key)
    return cipher


def _pyca_encrypt(key: bytes, nonce: bytes, ad: bytes, plaintext: bytes) -> bytes:
    return _cipher(key).encrypt(nonce, plaintext, ad)


def _pyca_decrypt(key: bytes, nonce: bytes, ad: bytes, ciphertext: bytes) -> bytes:
    try:
        return _cipher(key).decrypt(nonce, ciphertext, ad)
    except _InvalidTag as exc:
        raise DecryptError("authentication failed") from exc


#: The AEAD in use: ``"cryptography"`` or ``"pynacl"``.
AEAD_BACKEND = "cryptography" if _ChaCha is not None else "pynacl"
_encrypt = _pyca_encrypt if _ChaCha is not None else _nacl_encrypt
_decrypt = _pyca_decrypt if _ChaCha is not None else _nacl_decrypt


def forget_key(key: bytes) -> None:
    """Drop the cached cipher object of a key that is being erased."""
    _CIPHERS.pop(key, None)


def aead_encrypt(key: bytes, counter: int, ad: bytes, plaintext: bytes) -> bytes:
    """ChaCha20-Poly1305 (IETF) with Noise's nonce: 4 zero bytes then the 64-bit LE counter."""
    return _encrypt(key, _NONCE_PREFIX + _LE64.pack(counter), ad, plaintext)


def aead_decrypt(key: bytes, counter: int, ad: bytes, ciphertext: bytes) -> bytes:
    """Open what :func:`aead_encrypt` sealed; raises :class:`DecryptError` on any mismatch."""
    if len(ciphertext) < TAG_LEN:
        raise DecryptError("ciphertext shorter than its tag")
    return _decrypt(key, _NONCE_PREFIX + _LE64.pack(counter), ad, ciphertext)


def xaead_encrypt(key: bytes, nonce: bytes, ad: bytes, plaintext: bytes) -> bytes:
    """XChaCha20-Poly1305 with a 24-byte random nonce (cookie replies, §10)."""
    return bytes(_nacl.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, ad, nonce, key))


def xaead_decrypt(key: bytes, nonce: bytes, ad: bytes, ciphertext: bytes) -> bytes:
    """Open what :func:`xaead_encrypt` sealed; raises :class:`DecryptError` on any mismatch."""
    if len(ciphertext) < TAG_LEN:
        raise DecryptError("ciphertext shorter than its tag")
    try:
        return bytes(_nacl.crypto_aead_xchacha20poly1305_ietf_decrypt(ciphertext, ad, nonce, key))
    except (_NaclCryptoError, _NaclRuntimeError) as exc:
        raise DecryptError("authentication failed") from exc


def hash_(data: bytes) -> bytes:
    """BLAKE2b-512, Noise's HASH."""
    return hashlib.blake2b(data).digest()


def hmac_hash(key: bytes, data: bytes) -> bytes:
    """HMAC-BLAKE2b-512, the HMAC under Noise's HKDF."""
    return hmac.digest(key, data, hashlib.blake2b)


def hkdf(chaining_key: bytes, input_key_material: bytes, outputs: int) -> tuple[bytes, ...]:
    """Noise's HKDF: 2 or 3 outputs of HASH_LEN bytes each (RFC 5869 with an empty info)."""
    temp_key = hmac_hash(chaining_key, input_key_material)
    out: list[bytes] = []
    previous = b""
    for i in range(1, outputs + 1):
        previous = hmac_hash(temp_key, previous + bytes([i]))
        out.append(previous)
    return tuple(out)


def kdf(seed: bytes, label: bytes, size: int = KEY_BYTES) -> bytes:
    """Derive ``size`` bytes for one use (``label``) from a seed: keyed BLAKE2b (§2)."""
    key = seed if len(seed) <= 64 else hashlib.blake2b(seed).digest()
    return hashlib.blake2b(label, digest_size=size, key=key, person=KDF_PERSON).digest()


def mac(key: bytes, data: bytes) -> bytes:
    """Keyed BLAKE2b-128, WireGuard's MAC (mac1, mac2, cookies)."""
    return hashlib.blake2b(data, digest_size=MAC_BYTES, key=key).digest()
