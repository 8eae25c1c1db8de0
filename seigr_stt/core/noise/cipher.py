"""Noise's symmetric-key objects: CipherState and SymmetricState (Noise rev. 34 §5.1–5.2).

One job: the key and nonce of a ChaChaPoly cipher (:class:`CipherState`, §5.1), the chaining key
and handshake hash a handshake feeds (:class:`SymmetricState`, §5.2), and the default REKEY
function (:func:`rekey`, §4.2), for the suite ``25519_ChaChaPoly_BLAKE2b``. Every primitive comes
from :mod:`seigr_stt.core.crypto`. Objects of this module never show key material in their
``repr``; errors are the ``Noise*Error`` classes of :mod:`seigr_stt.exceptions`.
"""

from __future__ import annotations

from typing import Final

from seigr_stt.core.crypto import (
    HASH_LEN,
    TAG_LEN,
    DecryptError,
    aead_decrypt,
    aead_encrypt,
    hash_,
    hkdf,
)
from seigr_stt.exceptions import (
    NoiseConfigError,
    NoiseDecryptError,
    NoiseNonceExhausted,
    NoiseStateError,
)

__all__ = [
    "KEY_LEN",
    "MAX_NONCE",
    "CipherState",
    "SymmetricState",
    "rekey",
]

KEY_LEN: Final = 32
"""Length of a CipherState key and of the exporter secret."""
MAX_NONCE: Final = 2**64 - 1
"""The reserved nonce: a CipherState whose ``n`` reaches it refuses to encrypt or decrypt."""

_ZEROS32: Final = bytes(KEY_LEN)


# -- CipherState (§5.1) --------------------------------------------------------------------------


def rekey(key: bytes) -> bytes:
    """REKEY(k): the first 32 bytes of ENCRYPT(k, 2**64-1, b"", 32 zero bytes) (§4.2).

    A pure function of a 32-byte key; the record layer uses it for its own key updates.
    """
    if len(key) != KEY_LEN:
        raise NoiseConfigError("a ChaChaPoly key is 32 bytes")
    return aead_encrypt(key, MAX_NONCE, b"", _ZEROS32)[:KEY_LEN]


class CipherState:
    """A key ``k`` (or ``None``) and a 64-bit nonce ``n`` (§5.1).

    Contract: without a key, encryption and decryption are the identity (the spec's behaviour for
    the start of a handshake). With a key, each successful call uses the nonce ``n`` and then
    increments it; a failed decryption leaves ``n`` unchanged. Nonce ``2**64-1`` is reserved: once
    ``n`` reaches it every call raises :class:`NoiseNonceExhausted`. The caller must never let two
    messages share a (key, nonce) pair, so a CipherState must not be copied and used twice.
    """

    __slots__ = ("k", "n")

    def __init__(self, k: bytes | None = None, n: int = 0) -> None:
        self.k: bytes | None = None
        self.n: int = 0
        self.initialize_key(k)
        self.set_nonce(n)

    def __repr__(self) -> str:
        return f"CipherState(has_key={self.has_key()}, n={self.n})"

    def initialize_key(self, key: bytes | None) -> None:
        """InitializeKey(key): set ``k`` (32 bytes or ``None``) and reset ``n`` to 0."""
        if key is not None and len(key) != KEY_LEN:
            raise NoiseConfigError("a ChaChaPoly key is 32 bytes")
        self.k = None if key is None else bytes(key)
        self.n = 0

    def has_key(self) -> bool:
        """HasKey(): whether ``k`` is set."""
        return self.k is not None

    def set_nonce(self, n: int) -> None:
        """SetNonce(n): ``0 <= n <= 2**64-1``. Reusing a nonce under the same key is fatal."""
        if not 0 <= n <= MAX_NONCE:
            raise NoiseConfigError("nonce must be in [0, 2**64-1]")
        self.n = n

    def _check_nonce(self) -> None:
        if self.n >= MAX_NONCE:
            raise NoiseNonceExhausted("nonce exhausted; rekey is not enough, start a new session")

    def encrypt_with_ad(self, ad: bytes, plaintext: bytes) -> bytes:
        """EncryptWithAd: ENCRYPT(k, n++, ad, plaintext), or ``plaintext`` when there is no key."""
        key = self.k
        if key is None:
            return bytes(plaintext)
        self._check_nonce()
        ciphertext = aead_encrypt(key, self.n, ad, plaintext)
        self.n += 1
        return ciphertext

    def decrypt_with_ad(self, ad: bytes, ciphertext: bytes) -> bytes:
        """DecryptWithAd: DECRYPT(k, n++, ad, ciphertext), or ``ciphertext`` with no key.

        Raises :class:`NoiseDecryptError` (``n`` unchanged) when authentication fails or the
        ciphertext is shorter than its 16-byte tag.
        """
        key = self.k
        if key is None:
            return bytes(ciphertext)
        self._check_nonce()
        # crypto.aead_decrypt lets pynacl's ValueError escape for a too-short input.
        if len(ciphertext) < TAG_LEN:
            raise NoiseDecryptError("ciphertext shorter than its tag")
        try:
            plaintext = aead_decrypt(key, self.n, ad, ciphertext)
        except DecryptError as exc:
            raise NoiseDecryptError("authentication failed") from exc
        self.n += 1
        return plaintext

    def rekey(self) -> None:
        """Rekey(): ``k = REKEY(k)``; ``n`` is left as it is (§5.1, §11.3)."""
        if self.k is None:
            raise NoiseStateError("cannot rekey a CipherState without a key")
        self.k = rekey(self.k)

    def copy(self) -> CipherState:
        """An independent copy (a failed handshake step works on copies, leaving no trace)."""
        clone = CipherState.__new__(CipherState)
        clone.k = self.k  # immutable bytes (or None), already checked
        clone.n = self.n
        return clone


# -- SymmetricState (§5.2) -----------------------------------------------------------------------


class SymmetricState:
    """The chaining key ``ck``, the handshake hash ``h`` and a CipherState (§5.2).

    Contract: built from the full protocol name (``InitializeSymmetric``); the caller feeds it the
    handshake in order and must not split it before the handshake pattern is finished.
    """

    __slots__ = ("_ck", "_h", "cipher_state")

    def __init__(self, protocol_name: bytes) -> None:
        """InitializeSymmetric(protocol_name)."""
        name = bytes(protocol_name)
        self._h = name.ljust(HASH_LEN, b"\x00") if len(name) <= HASH_LEN else hash_(name)
        self._ck = self._h
        self.cipher_state = CipherState()

    def __repr__(self) -> str:
        return f"SymmetricState(cipher_state={self.cipher_state!r})"

    def mix_key(self, input_key_material: bytes) -> None:
        """MixKey: ``ck, temp_k = HKDF(ck, ikm, 2)``; InitializeKey(temp_k[:32])."""
        self._ck, temp_k = hkdf(self._ck, input_key_material, 2)
        self.cipher_state.initialize_key(temp_k[:KEY_LEN])

    def mix_hash(self, data: bytes) -> None:
        """MixHash: ``h = HASH(h || data)``."""
        self._h = hash_(self._h + data)

    def mix_key_and_hash(self, input_key_material: bytes) -> None:
        """MixKeyAndHash: ``ck, temp_h, temp_k = HKDF(ck, ikm, 3)``; MixHash(temp_h); set key."""
        self._ck, temp_h, temp_k = hkdf(self._ck, input_key_material, 3)
        self.mix_hash(temp_h)
        self.cipher_state.initialize_key(temp_k[:KEY_LEN])

    def get_handshake_hash(self) -> bytes:
        """GetHandshakeHash: ``h`` (meaningful as a channel binding only after the handshake)."""
        return self._h

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        """EncryptAndHash: encrypt with ``h`` as associated data, then MixHash(ciphertext)."""
        ciphertext = self.cipher_state.encrypt_with_ad(self._h, plaintext)
        self.mix_hash(ciphertext)
        return ciphertext

    def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        """DecryptAndHash: decrypt with ``h`` as associated data, then MixHash(ciphertext).

        Raises :class:`NoiseDecryptError` without touching ``h`` when authentication fails.
        """
        plaintext = self.cipher_state.decrypt_with_ad(self._h, ciphertext)
        self.mix_hash(ciphertext)
        return plaintext

    def split(self) -> tuple[CipherState, CipherState]:
        """Split: ``(c1, c2)`` keyed with the two outputs of ``HKDF(ck, b"", 2)``.

        ``c1`` carries initiator-to-responder traffic, ``c2`` the other direction.
        """
        temp_k1, temp_k2 = hkdf(self._ck, b"", 2)
        return CipherState(temp_k1[:KEY_LEN]), CipherState(temp_k2[:KEY_LEN])

    def split3(self) -> tuple[CipherState, CipherState, bytes]:
        """Split plus an exporter: ``(c1, c2, exporter)`` from ``HKDF(ck, b"", 3)``.

        The first two outputs of a 3-output HKDF equal those of a 2-output one, so ``c1`` and
        ``c2`` are exactly :meth:`split`'s and transport keys stay interoperable. ``exporter`` is
        the third output truncated to 32 bytes: a secret both parties share, independent of the
        transport keys, for deriving application keys.
        """
        k1, k2, exporter = self.split3_keys()
        return CipherState(k1), CipherState(k2), exporter

    def split3_keys(self) -> tuple[bytes, bytes, bytes]:
        """:meth:`split3` as raw 32-byte values: ``(k1, k2, exporter)``."""
        temp_k1, temp_k2, temp_k3 = hkdf(self._ck, b"", 3)
        return temp_k1[:KEY_LEN], temp_k2[:KEY_LEN], temp_k3[:KEY_LEN]

    def copy(self) -> SymmetricState:
        """An independent copy (a failed handshake step works on copies, leaving no trace)."""
        clone = SymmetricState.__new__(SymmetricState)
        clone._ck = self._ck
        clone._h = self._h
        clone.cipher_state = self.cipher_state.copy()
        return clone
