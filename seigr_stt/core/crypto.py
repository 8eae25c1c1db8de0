"""The cryptographic primitives, and the one module that calls the AEAD.

X25519 comes from pynacl; BLAKE2b, HMAC and HKDF from the standard library. See
``docs/protocol.md`` §1. Every caller goes through this module, so the AEAD backend is chosen
here alone, by measurement: ChaCha20-Poly1305 (IETF) from pyca/cryptography when it is installed
(the ``speed`` extra; about 2.5x faster per call for 64–1200-byte records on our machines, see
docs/performance.md), else from pynacl. Both produce identical bytes (tested). The module holds
no state: a traffic key's cipher object is made by :func:`make_aead` and held by its owner.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from typing import Protocol

from nacl import bindings as _nacl
from nacl._sodium import ffi as _ffi  # PyNaCl's own libsodium handle (see dh_into)
from nacl._sodium import lib as _sodium
from nacl.exceptions import CryptoError as _NaclCryptoError
from nacl.exceptions import RuntimeError as _NaclRuntimeError

from seigr_stt.constants import AEAD_CONTEXT_AFTER_CALLS, KDF_PERSON, KEY_BYTES, MAC_BYTES
from seigr_stt.exceptions import DecryptError, InvalidPublicKey

__all__ = [
    "AEAD_BACKEND",
    "BLOCK_LEN",
    "DH_LEN",
    "HASH_LEN",
    "TAG_LEN",
    "Aead",
    "DecryptError",
    "InvalidPublicKey",
    "NaclAead",
    "PycaAead",
    "aead_decrypt",
    "aead_encrypt",
    "dh",
    "dh_into",
    "hash_",
    "hkdf",
    "hmac_hash",
    "kdf",
    "mac",
    "make_aead",
    "public_key",
    "public_key_of",
    "wipe",
    "xaead_decrypt",
    "xaead_encrypt",
]

DH_LEN = 32
HASH_LEN = 64
BLOCK_LEN = 128
TAG_LEN = 16


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


class Aead(Protocol):
    """ChaCha20-Poly1305 (IETF) bound to one key, with Noise's nonce (4 zero bytes, then the
    64-bit little-endian counter). Made by :func:`make_aead`; the key schedule holds one per
    traffic key, so a key's cipher object lives exactly as long as the key (no global cache)."""

    def encrypt(self, counter: int, ad: bytes, plaintext: bytes | bytearray) -> bytes:
        """Seal ``plaintext`` with ``ad`` under record counter ``counter``."""
        ...

    def decrypt(self, counter: int, ad: bytes, ciphertext: bytes) -> bytes:
        """Raises :class:`DecryptError` on any mismatch."""
        ...


_NONCE = struct.Struct("<4xQ")  # Noise's nonce: 4 zero bytes, then LE64(counter)
_nonce = _NONCE.pack


# The one-shot AEAD calls libsodium through PyNaCl's own cffi handle: PyNaCl's Python wrappers
# check and format their arguments on every call, which cost three to four times the cipher
# itself for a handshake message or a short record (profiled; docs/performance.md). The keys
# (32 bytes) and nonces (12) are of the right size by construction here.


def _key_checked(key: bytes) -> bytes:
    # libsodium reads 32 bytes from the pointer: a shorter key must never reach it.
    if len(key) != KEY_BYTES:
        raise ValueError("a ChaCha20-Poly1305 key is 32 bytes")
    return key if type(key) is bytes else bytes(key)


def _nacl_seal(key: bytes, counter: int, ad: bytes, plaintext: bytes | bytearray) -> bytes:
    key = _key_checked(key)
    ad = ad if type(ad) is bytes else bytes(ad)
    size = len(plaintext)
    out = _ffi.new("unsigned char[]", size + TAG_LEN)
    message = plaintext if type(plaintext) is bytes else _ffi.from_buffer(plaintext)
    _sodium.crypto_aead_chacha20poly1305_ietf_encrypt(
        out, _ffi.NULL, message, size, ad, len(ad), _ffi.NULL, _nonce(counter), key
    )
    return bytes(_ffi.buffer(out))


def _nacl_open(key: bytes, counter: int, ad: bytes, ciphertext: bytes) -> bytes:
    key = _key_checked(key)
    ad = ad if type(ad) is bytes else bytes(ad)
    ciphertext = ciphertext if type(ciphertext) is bytes else bytes(ciphertext)
    size = len(ciphertext) - TAG_LEN
    if size < 0:
        raise DecryptError("ciphertext shorter than its tag")
    out = _ffi.new("unsigned char[]", size)
    if (
        _sodium.crypto_aead_chacha20poly1305_ietf_decrypt(
            out,
            _ffi.NULL,
            _ffi.NULL,
            ciphertext,
            len(ciphertext),
            ad,
            len(ad),
            _nonce(counter),
            key,
        )
        != 0
    ):
        raise DecryptError("authentication failed")
    return bytes(_ffi.buffer(out))


class NaclAead:
    """The pynacl backend (libsodium): one-shot calls, no state beyond the key."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        self._key = key

    def __repr__(self) -> str:
        return "NaclAead()"

    def encrypt(self, counter: int, ad: bytes, plaintext: bytes | bytearray) -> bytes:
        """Seal ``plaintext`` with ``ad`` under record counter ``counter``."""
        return _nacl_seal(self._key, counter, ad, plaintext)

    def decrypt(self, counter: int, ad: bytes, ciphertext: bytes) -> bytes:
        """Open what ``encrypt`` sealed; raises :class:`DecryptError` on any mismatch."""
        if len(ciphertext) < TAG_LEN:
            raise DecryptError("ciphertext shorter than its tag")
        return _nacl_open(self._key, counter, ad, ciphertext)


try:  # pragma: no branch - which one depends on the installation
    from cryptography.exceptions import InvalidTag as _InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305 as _ChaCha
except ImportError:  # pragma: no cover - exercised by the backend tests with the module hidden
    _ChaCha = None  # type: ignore[assignment,misc]


class PycaAead:
    """The pyca/cryptography backend (OpenSSL): about 2.5x faster per call for 64–1200-byte
    records on our machines (docs/performance.md).

    Its OpenSSL context costs about 2.2 KiB of memory, held as long as the key, so it is made
    only once the key has been used ``AEAD_CONTEXT_AFTER_CALLS`` times: until then each call is
    libsodium's one-shot function (identical bytes, no state). A session that sends or receives
    a handful of records per key epoch (an idle one) never holds a context; a busy key gets one
    after its first few records.
    """

    __slots__ = ("_calls", "_decrypt", "_encrypt", "_key")

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._calls = 0
        self._encrypt: Callable[[bytes, bytes | bytearray, bytes], bytes] | None = None
        self._decrypt: Callable[[bytes, bytes, bytes], bytes] | None = None

    def __repr__(self) -> str:
        return "PycaAead()"

    def _context(self) -> bool:
        """Count a call; make the OpenSSL context once the key is busy. True if it exists."""
        if self._encrypt is not None:
            return True
        self._calls += 1
        if self._calls <= AEAD_CONTEXT_AFTER_CALLS:
            return False
        cipher = _ChaCha(self._key)
        # Bound once: the record path calls them per record.
        self._encrypt = cipher.encrypt
        self._decrypt = cipher.decrypt
        return True

    def encrypt(self, counter: int, ad: bytes, plaintext: bytes | bytearray) -> bytes:
        """Seal ``plaintext`` (bytes or a bytearray, read once) with ``ad`` under record counter
        ``counter``."""
        encrypt = self._encrypt
        if encrypt is None:
            if not self._context():
                return _nacl_seal(self._key, counter, ad, plaintext)
            encrypt = self._encrypt
            assert encrypt is not None
        return encrypt(_nonce(counter), plaintext, ad)

    def decrypt(self, counter: int, ad: bytes, ciphertext: bytes) -> bytes:
        """Open what ``encrypt`` sealed; raises :class:`DecryptError` on any mismatch."""
        if len(ciphertext) < TAG_LEN:
            raise DecryptError("ciphertext shorter than its tag")
        decrypt = self._decrypt
        if decrypt is None:
            if not self._context():
                return _nacl_open(self._key, counter, ad, ciphertext)
            decrypt = self._decrypt
            assert decrypt is not None
        try:
            return decrypt(_nonce(counter), ciphertext, ad)
        except _InvalidTag as exc:
            raise DecryptError("authentication failed") from exc


#: The AEAD in use: ``"cryptography"`` or ``"pynacl"``.
AEAD_BACKEND = "cryptography" if _ChaCha is not None else "pynacl"
_AEAD_CLASS: type[PycaAead] | type[NaclAead] = PycaAead if _ChaCha is not None else NaclAead


def make_aead(key: bytes) -> Aead:
    """An :class:`Aead` for one 32-byte key, from the faster backend installed."""
    return _AEAD_CLASS(key)


def aead_encrypt(key: bytes, counter: int, ad: bytes, plaintext: bytes) -> bytes:
    """One-shot :meth:`Aead.encrypt` (the handshake's few calls; records use :func:`make_aead`)."""
    return _AEAD_CLASS(key).encrypt(counter, ad, plaintext)


def aead_decrypt(key: bytes, counter: int, ad: bytes, ciphertext: bytes) -> bytes:
    """Open what :func:`aead_encrypt` sealed; raises :class:`DecryptError` on any mismatch."""
    if len(ciphertext) < TAG_LEN:
        raise DecryptError("ciphertext shorter than its tag")
    return _AEAD_CLASS(key).decrypt(counter, ad, ciphertext)


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


_BLAKE2B_BLOCK = 128  # bytes: HMAC pads its key to the hash's block size (RFC 2104)
_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


def _hmac_pads(key: bytes) -> tuple[hashlib.blake2b, hashlib.blake2b]:
    """BLAKE2b-512 states that absorbed ``key``'s inner and outer HMAC pads (RFC 2104): the
    half of HMAC that depends on the key alone, computed once for every message under it."""
    if len(key) > _BLAKE2B_BLOCK:
        key = hashlib.blake2b(key).digest()
    key = key.ljust(_BLAKE2B_BLOCK, b"\0")
    return hashlib.blake2b(key.translate(_IPAD)), hashlib.blake2b(key.translate(_OPAD))


def _hmac_with(pads: tuple[hashlib.blake2b, hashlib.blake2b], data: bytes) -> bytes:
    inner = pads[0].copy()
    inner.update(data)
    outer = pads[1].copy()
    outer.update(inner.digest())
    return outer.digest()


def hmac_hash(key: bytes, data: bytes) -> bytes:
    """HMAC-BLAKE2b-512, the HMAC under Noise's HKDF (equal to ``hmac.digest(key, data,
    hashlib.blake2b)``)."""
    return _hmac_with(_hmac_pads(key), data)


def hkdf(chaining_key: bytes, input_key_material: bytes, outputs: int) -> tuple[bytes, ...]:
    """Noise's HKDF: 2 or 3 outputs of HASH_LEN bytes each (RFC 5869 with an empty info).

    The temporary key's pads are computed once for its 2 or 3 outputs (a third less CPU than
    a fresh HMAC per output: about 3.8 against 6.0 µs for two outputs)."""
    temp_pads = _hmac_pads(_hmac_with(_hmac_pads(chaining_key), input_key_material))
    out: list[bytes] = []
    previous = b""
    for i in range(1, outputs + 1):
        previous = _hmac_with(temp_pads, previous + bytes((i,)))
        out.append(previous)
    return tuple(out)


def kdf(seed: bytes, label: bytes, size: int = KEY_BYTES) -> bytes:
    """Derive ``size`` bytes for one use (``label``) from a seed: keyed BLAKE2b (§2)."""
    key = seed if len(seed) <= 64 else hashlib.blake2b(seed).digest()
    return hashlib.blake2b(label, digest_size=size, key=key, person=KDF_PERSON).digest()


def mac(key: bytes, data: bytes) -> bytes:
    """Keyed BLAKE2b-128, WireGuard's MAC (mac1, mac2, cookies)."""
    return hashlib.blake2b(data, digest_size=MAC_BYTES, key=key).digest()


# -- secrets held in bytearrays (the DH ratchet, §7.1) --------------------------------------------
# PyNaCl's bindings take and return immutable bytes, which Python can neither overwrite nor free
# on demand. These three call the same libsodium functions through PyNaCl's own cffi handle with
# buffers the caller owns, so an ephemeral private key and its shared secret exist only in
# bytearrays that wipe() overwrites.


def public_key_of(private: bytearray) -> bytes:
    """X25519 public key of a 32-byte private key held in a bytearray (not copied)."""
    if len(private) != DH_LEN:
        raise ValueError("private key must be 32 bytes")
    out = bytearray(DH_LEN)
    _sodium.crypto_scalarmult_base(_ffi.from_buffer(out), _ffi.from_buffer(private))
    return bytes(out)


def dh_into(private: bytearray, public: bytes, out: bytearray) -> None:
    """``out[:] = X25519(private, public)`` without an immutable copy of the private key or of
    the result. Raises :class:`InvalidPublicKey` for a low-order or malformed public key
    (libsodium refuses an all-zero result); ``out`` is then zeros."""
    if len(public) != DH_LEN or len(private) != DH_LEN or len(out) != DH_LEN:
        raise InvalidPublicKey("keys must be 32 bytes")
    buffer = _ffi.from_buffer(out)
    if _sodium.crypto_scalarmult(buffer, _ffi.from_buffer(private), public) != 0:
        _sodium.sodium_memzero(buffer, DH_LEN)
        raise InvalidPublicKey("low-order or invalid public key")


def wipe(secret: bytearray) -> None:
    """Overwrite ``secret`` with zeros in place (libsodium's sodium_memzero, which the compiler
    may not optimise away). Copies made elsewhere are not reached: see docs/security.md."""
    if secret:
        _sodium.sodium_memzero(_ffi.from_buffer(secret), len(secret))
