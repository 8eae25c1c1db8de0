"""The Noise Protocol Framework (revision 34) for the suite ``25519_ChaChaPoly_BLAKE2b``.

A sans-I/O handshake engine: bytes in, bytes out, no clock and no entropy source of its own. The
ephemeral private key is either passed in (test vectors) or drawn from an injected
``rng(n) -> bytes`` callable. Every primitive comes from :mod:`seigr_stt.core.crypto`.

The handshake patterns are data: :data:`_PATTERN_TEXT` transcribes the pattern table of the
specification (§7.4, §7.5, §7.7) and ``pskN`` modifiers (§9) are applied to the parsed table, so
the one token interpreter in :class:`HandshakeState` runs every supported pattern.

Objects of this module never show key material in their ``repr``. Errors are subclasses of
:class:`NoiseError` (defined in :mod:`seigr_stt.exceptions`); their messages never contain key
material either.
"""

from __future__ import annotations

import copy
import re as _re
from collections.abc import Callable, Sequence
from typing import Final, NamedTuple

from seigr_stt.core.crypto import (
    DH_LEN,
    HASH_LEN,
    TAG_LEN,
    DecryptError,
    InvalidPublicKey,
    aead_decrypt,
    aead_encrypt,
    dh,
    hash_,
    hkdf,
    public_key,
)
from seigr_stt.exceptions import (
    NoiseConfigError,
    NoiseDecryptError,
    NoiseError,
    NoiseInvalidKey,
    NoiseMessageError,
    NoiseNonceExhausted,
    NoiseStateError,
)

__all__ = [
    "KEY_LEN",
    "MAX_MESSAGE_LEN",
    "MAX_NONCE",
    "PSK_LEN",
    "SUITE",
    "SUPPORTED_PATTERNS",
    "CipherState",
    "HandshakeState",
    "NoiseConfigError",
    "NoiseDecryptError",
    "NoiseError",
    "NoiseInvalidKey",
    "NoiseMessageError",
    "NoiseNonceExhausted",
    "NoiseStateError",
    "SymmetricState",
    "rekey",
]

SUITE: Final = "25519_ChaChaPoly_BLAKE2b"
KEY_LEN: Final = 32
"""Length of a CipherState key and of the exporter secret."""
PSK_LEN: Final = 32
MAX_NONCE: Final = 2**64 - 1
"""The reserved nonce: a CipherState whose ``n`` reaches it refuses to encrypt or decrypt."""
MAX_MESSAGE_LEN: Final = 65535
"""The largest Noise message (§3); handshake messages above it are refused."""

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
        return CipherState(self.k, self.n)


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


# -- Handshake patterns (§7) ---------------------------------------------------------------------

# Transcribed from the specification. A line is a message; "->" is sent by the initiator, "<-" by
# the responder; lines above "..." are pre-messages. DH tokens name the initiator's key first.
_PATTERN_TEXT: Final[dict[str, str]] = {
    # One-way patterns (§7.4).
    "N": "<- s | ... | -> e, es",
    "K": "-> s | <- s | ... | -> e, es, ss",
    "X": "<- s | ... | -> e, es, s, ss",
    # Fundamental interactive patterns (§7.5).
    "NN": "-> e | <- e, ee",
    "NK": "<- s | ... | -> e, es | <- e, ee",
    "NX": "-> e | <- e, ee, s, es",
    "KN": "-> s | ... | -> e | <- e, ee, se",
    "KK": "-> s | <- s | ... | -> e, es, ss | <- e, ee, se",
    "KX": "-> s | ... | -> e | <- e, ee, se, s, es",
    "XN": "-> e | <- e, ee | -> s, se",
    "XK": "<- s | ... | -> e, es | <- e, ee | -> s, se",
    "XX": "-> e | <- e, ee, s, es | -> s, se",
    "IN": "-> e, s | <- e, ee, se",
    "IK": "<- s | ... | -> e, es, s, ss | <- e, ee, se",
    "IX": "-> e, s | <- e, ee, se, s, es",
    # Deferred patterns (§7.7).
    "NK1": "<- s | ... | -> e | <- e, ee, es",
    "NX1": "-> e | <- e, ee, s | -> es",
    "X1N": "-> e | <- e, ee | -> s | <- se",
    "X1K": "<- s | ... | -> e, es | <- e, ee | -> s | <- se",
    "XK1": "<- s | ... | -> e | <- e, ee, es | -> s, se",
    "X1K1": "<- s | ... | -> e | <- e, ee, es | -> s | <- se",
    "X1X": "-> e | <- e, ee, s, es | -> s | <- se",
    "XX1": "-> e | <- e, ee, s | -> es, s, se",
    "X1X1": "-> e | <- e, ee, s | -> es, s | <- se",
    "K1N": "-> s | ... | -> e | <- e, ee | -> se",
    "K1K": "-> s | <- s | ... | -> e, es | <- e, ee | -> se",
    "KK1": "-> s | <- s | ... | -> e | <- e, ee, se, es",
    "K1K1": "-> s | <- s | ... | -> e | <- e, ee, es | -> se",
    "K1X": "-> s | ... | -> e | <- e, ee, s, es | -> se",
    "KX1": "-> s | ... | -> e | <- e, ee, se, s | -> es",
    "K1X1": "-> s | ... | -> e | <- e, ee, s | -> se, es",
    "I1N": "-> e, s | <- e, ee | -> se",
    "I1K": "<- s | ... | -> e, es, s | <- e, ee | -> se",
    "IK1": "<- s | ... | -> e, s | <- e, ee, se, es",
    "I1K1": "<- s | ... | -> e, s | <- e, ee, es | -> se",
    "I1X": "-> e, s | <- e, ee, s, es | -> se",
    "IX1": "-> e, s | <- e, ee, se, s | -> es",
    "I1X1": "-> e, s | <- e, ee, s | -> se, es",
}

_DH_TOKENS: Final = frozenset({"ee", "es", "se", "ss"})


class _Message(NamedTuple):
    from_initiator: bool
    tokens: tuple[str, ...]


class _Pattern(NamedTuple):
    initiator_pre: tuple[str, ...]
    responder_pre: tuple[str, ...]
    messages: tuple[_Message, ...]
    one_way: bool


def _parse_line(line: str) -> _Message:
    arrow, _, rest = line.strip().partition(" ")
    tokens = tuple(t.strip() for t in rest.split(","))
    return _Message(arrow == "->", tokens)


def _parse_pattern(text: str, one_way: bool) -> _Pattern:
    lines = [line.strip() for line in text.split("|")]
    pre: list[_Message] = []
    if "..." in lines:
        cut = lines.index("...")
        pre = [_parse_line(line) for line in lines[:cut]]
        lines = lines[cut + 1 :]
    messages = tuple(_parse_line(line) for line in lines)
    initiator_pre = tuple(t for m in pre if m.from_initiator for t in m.tokens)
    responder_pre = tuple(t for m in pre if not m.from_initiator for t in m.tokens)
    return _Pattern(initiator_pre, responder_pre, messages, one_way)


_PATTERNS: Final[dict[str, _Pattern]] = {
    name: _parse_pattern(text, one_way=name in ("N", "K", "X"))
    for name, text in _PATTERN_TEXT.items()
}
SUPPORTED_PATTERNS: Final = frozenset(_PATTERNS)
"""The base pattern names accepted in a protocol name (each may carry ``pskN`` modifiers)."""

_NAME_RE: Final = _re.compile(
    r"Noise_(?P<base>[A-Z0-9]+)(?P<mods>psk[0-9]+(?:\+psk[0-9]+)*)?_" + SUITE,
)


def _apply_psk(pattern: _Pattern, modifiers: str) -> _Pattern:
    """Place the ``psk`` tokens (§9.2): psk0 starts message 1, pskN ends message N."""
    messages = [list(m.tokens) for m in pattern.messages]
    seen: set[int] = set()
    for modifier in modifiers.split("+"):
        index = int(modifier.removeprefix("psk"))
        if index in seen or index > len(messages):
            raise NoiseConfigError(f"invalid psk modifier {modifier!r} for this pattern")
        seen.add(index)
        if index == 0:
            messages[0].insert(0, "psk")
        else:
            messages[index - 1].append("psk")
    return pattern._replace(
        messages=tuple(
            _Message(m.from_initiator, tuple(tokens))
            for m, tokens in zip(pattern.messages, messages, strict=True)
        )
    )


def _parse_protocol_name(protocol_name: str | bytes) -> tuple[bytes, _Pattern]:
    if isinstance(protocol_name, str):
        text = protocol_name
    else:
        try:
            text = bytes(protocol_name).decode("ascii")
        except UnicodeDecodeError as exc:
            raise NoiseConfigError("protocol name must be ASCII") from exc
    match = _NAME_RE.fullmatch(text)
    if match is None:
        raise NoiseConfigError(
            f"unsupported protocol name {text!r}; expected Noise_<PATTERN>_{SUITE}"
        )
    pattern = _PATTERNS.get(match["base"])
    if pattern is None:
        raise NoiseConfigError(f"unsupported handshake pattern {match['base']!r}")
    if match["mods"]:
        pattern = _apply_psk(pattern, match["mods"])
    return text.encode("ascii"), pattern


# -- HandshakeState (§5.3) -----------------------------------------------------------------------


def _checked_key(name: str, key: bytes | None) -> bytes | None:
    if key is None:
        return None
    if len(key) != DH_LEN:
        raise NoiseConfigError(f"{name} must be {DH_LEN} bytes")
    return bytes(key)


def _uses_local_static(pattern: _Pattern, initiator: bool) -> bool:
    """Whether our static key is pre-shared, sent, or part of a DH in ``pattern``."""
    local_pre = pattern.initiator_pre if initiator else pattern.responder_pre
    mine = 0 if initiator else 1
    return "s" in local_pre or any(
        (token == "s" and message.from_initiator == initiator)
        or (token in _DH_TOKENS and token[mine] == "s")
        for message in pattern.messages
        for token in message.tokens
    )


class _Progress:
    """The mutable part of a handshake; a step works on a copy and commits it on success."""

    __slots__ = ("e", "message_index", "psk_index", "re", "rs", "symmetric")

    def __init__(
        self,
        symmetric: SymmetricState,
        e: bytes | None,
        rs: bytes | None,
        re: bytes | None,
    ) -> None:
        self.symmetric = symmetric
        self.e = e
        self.rs = rs
        self.re = re
        self.message_index = 0
        self.psk_index = 0

    def __repr__(self) -> str:
        return f"_Progress(message_index={self.message_index})"

    def copy(self) -> _Progress:
        clone = _Progress(self.symmetric.copy(), self.e, self.rs, self.re)
        clone.message_index = self.message_index
        clone.psk_index = self.psk_index
        return clone


class HandshakeState:
    """One party's Noise handshake for ``Noise_<PATTERN>_25519_ChaChaPoly_BLAKE2b`` (§5.3).

    Arguments (all keys are raw 32-byte X25519 values; ``s`` and ``e`` are PRIVATE keys):

    - ``protocol_name``: the full name, e.g. ``"Noise_XXpsk3_25519_ChaChaPoly_BLAKE2b"``.
    - ``initiator``: this party's role. ``prologue``: bytes both parties must agree on.
    - ``s``: our static private key; required when the pattern sends or pre-shares it.
    - ``e``: our ephemeral private key. Only for test vectors; otherwise leave it ``None`` and
      pass ``rng`` (``rng(n)`` returns ``n`` fresh secret random bytes).
    - ``rs``/``re``: the peer's public keys known in advance (pre-messages). ``rs`` is required
      when the pattern pre-shares it and refused when the pattern transmits it (check
      :attr:`remote_static` after the handshake instead).
    - ``psks``: one 32-byte PSK per ``psk`` token, used in the order the tokens occur.

    Use: the party whose turn it is (:attr:`is_my_turn`) calls :meth:`write_message`, the other
    :meth:`read_message`, until :attr:`is_complete`. A failed :meth:`read_message` (bad length,
    forged or corrupted data, low-order key) leaves the state exactly as it was, so the caller may
    drop that message and still process the genuine one. Then :meth:`split` (once) gives the
    transport CipherStates and :attr:`exporter` a shared secret for key derivation.

    Handshake payloads are only as protected as the spec says for their position (§7.7): the
    first payloads may be sent in clear or to an unauthenticated peer.
    """

    __slots__ = (
        "_exporter",
        "_initiator",
        "_pattern",
        "_progress",
        "_protocol_name",
        "_psks",
        "_rng",
        "_s",
        "_s_pub",
        "_split_taken",
        "_transport",
    )

    def __init__(
        self,
        protocol_name: str | bytes,
        initiator: bool,
        prologue: bytes,
        *,
        s: bytes | None = None,
        e: bytes | None = None,
        rs: bytes | None = None,
        re: bytes | None = None,
        psks: Sequence[bytes] = (),
        rng: Callable[[int], bytes] | None = None,
    ) -> None:
        name, pattern = _parse_protocol_name(protocol_name)
        self._protocol_name = name
        self._pattern = pattern
        self._initiator = bool(initiator)
        self._rng = rng
        self._s = _checked_key("s", s)
        self._s_pub = None if self._s is None else public_key(self._s)
        e = _checked_key("e", e)
        rs = _checked_key("rs", rs)
        re = _checked_key("re", re)

        psk_count = sum(m.tokens.count("psk") for m in pattern.messages)
        if len(psks) != psk_count:
            raise NoiseConfigError(f"this pattern needs {psk_count} PSK(s), got {len(psks)}")
        if any(len(psk) != PSK_LEN for psk in psks):
            raise NoiseConfigError(f"a PSK must be {PSK_LEN} bytes")
        self._psks = tuple(bytes(psk) for psk in psks)

        local_pre, remote_pre = (
            (pattern.initiator_pre, pattern.responder_pre)
            if self._initiator
            else (pattern.responder_pre, pattern.initiator_pre)
        )
        if self._s is None and _uses_local_static(pattern, self._initiator):
            raise NoiseConfigError("this pattern needs our static private key s")
        for kind, key in (("s", rs), ("e", re)):
            label = "r" + kind
            if kind in remote_pre and key is None:
                raise NoiseConfigError(f"this pattern needs the peer's pre-shared {label}")
            if kind not in remote_pre and key is not None:
                raise NoiseConfigError(
                    f"{label} is not a pre-message of this pattern (a key the peer transmits "
                    "is learned in the handshake: check remote_static afterwards)"
                )

        symmetric = SymmetricState(name)
        symmetric.mix_hash(bytes(prologue))
        progress = _Progress(symmetric, e, rs, re)
        if "e" in local_pre and progress.e is None:
            progress.e = self._new_ephemeral()
        self._progress = progress
        self._transport: tuple[bytes, bytes] | None = None
        self._exporter: bytes | None = None
        self._split_taken = False

        # Pre-messages: the initiator's keys are hashed first (§7.1).
        for pre, local in (
            (pattern.initiator_pre, self._initiator),
            (pattern.responder_pre, not self._initiator),
        ):
            for kind in pre:
                pub = self._public(progress, kind, local)
                symmetric.mix_hash(pub)
                if kind == "e" and self._psks:
                    symmetric.mix_key(pub)

    # -- introspection ------------------------------------------------------------------------

    def copy(self) -> HandshakeState:
        """An independent copy: a caller that must check a message's payload before accepting it
        reads it on the copy and keeps the copy only if the payload passes."""
        clone = copy.copy(self)
        clone._progress = self._progress.copy()
        return clone

    def __repr__(self) -> str:
        return (
            f"HandshakeState({self._protocol_name.decode()!r}, "
            f"initiator={self._initiator}, message_index={self._progress.message_index}, "
            f"complete={self.is_complete})"
        )

    @property
    def protocol_name(self) -> bytes:
        """The full protocol name, as hashed into ``h``."""
        return self._protocol_name

    @property
    def initiator(self) -> bool:
        """Whether this party is the initiator."""
        return self._initiator

    @property
    def is_one_way(self) -> bool:
        """Whether the pattern is one-way (N, K, X): only the initiator ever sends, even after."""
        return self._pattern.one_way

    @property
    def is_complete(self) -> bool:
        """Whether every handshake message has been written or read."""
        return self._progress.message_index >= len(self._pattern.messages)

    @property
    def is_my_turn(self) -> bool:
        """Whether the next handshake call must be :meth:`write_message` (False once complete)."""
        if self.is_complete:
            return False
        message = self._pattern.messages[self._progress.message_index]
        return message.from_initiator == self._initiator

    @property
    def remote_static(self) -> bytes | None:
        """The peer's static public key, once pre-shared or received (else ``None``).

        When it was received in the handshake the caller must still decide whether to trust it.
        """
        return self._progress.rs

    @property
    def handshake_hash(self) -> bytes:
        """The final handshake hash ``h`` (64 bytes), a channel binding; only once complete."""
        if not self.is_complete:
            raise NoiseStateError("the handshake hash is final only once the handshake is complete")
        return self._progress.symmetric.get_handshake_hash()

    @property
    def exporter(self) -> bytes:
        """A 32-byte secret both parties share after the handshake: ``HKDF(ck, b"", 3)[2][:32]``.

        Independent of the transport keys; derive application keys from it, never use it as one.
        """
        if self._exporter is None:
            raise NoiseStateError("the exporter exists only once the handshake is complete")
        return self._exporter

    # -- transport keys -----------------------------------------------------------------------

    def _take_transport(self) -> tuple[bytes, bytes]:
        if self._transport is None:
            raise NoiseStateError("split is only possible once the handshake is complete")
        if self._split_taken:
            raise NoiseStateError("the transport keys were already handed out")
        self._split_taken = True
        return self._transport

    def split_raw(self) -> tuple[CipherState, CipherState]:
        """Split(): ``(c1, c2)``, ``c1`` for initiator-to-responder traffic.

        :meth:`split_raw`, :meth:`split` and :meth:`split_keys` share one use: the transport
        keys are handed out once, so two users can never reuse a nonce. For a one-way pattern
        only ``c1`` may be used (§7.4).
        """
        k1, k2 = self._take_transport()
        return CipherState(k1), CipherState(k2)

    def split(self) -> tuple[CipherState, CipherState]:
        """``(send, receive)`` CipherStates for this party's role (once; see :meth:`split_raw`).

        The initiator sends with ``c1`` and receives with ``c2``; the responder the reverse. For a
        one-way pattern the responder must never use its ``send`` CipherState.
        """
        c1, c2 = self.split_raw()
        return (c1, c2) if self._initiator else (c2, c1)

    def split_keys(self) -> tuple[bytes, bytes, bytes]:
        """``(send_key, receive_key, exporter)`` as raw 32-byte values for this party's role.

        For a record layer that manages its own nonces (once; see :meth:`split_raw`).
        """
        k1, k2 = self._take_transport()
        send, receive = (k1, k2) if self._initiator else (k2, k1)
        return send, receive, self.exporter

    # -- handshake messages -------------------------------------------------------------------

    def write_message(self, payload: bytes = b"") -> bytes:
        """WriteMessage: the next handshake message carrying ``payload``.

        Raises :class:`NoiseStateError` when it is not our turn or the handshake is complete,
        :class:`NoiseMessageError` when the message would exceed 65535 bytes. On error the
        state is unchanged.
        """
        if self.is_complete or not self.is_my_turn:
            raise NoiseStateError("write_message out of turn")
        work = self._progress.copy()
        symmetric = work.symmetric
        out = bytearray()
        for token in self._pattern.messages[work.message_index].tokens:
            if token == "e":
                if work.e is None:
                    work.e = self._new_ephemeral()
                pub = public_key(work.e)
                out += pub
                symmetric.mix_hash(pub)
                if self._psks:
                    symmetric.mix_key(pub)
            elif token == "s":
                out += symmetric.encrypt_and_hash(self._public(work, "s", True))
            else:
                self._mix_token(work, token)
        out += symmetric.encrypt_and_hash(payload)
        if len(out) > MAX_MESSAGE_LEN:
            raise NoiseMessageError(f"handshake message would exceed {MAX_MESSAGE_LEN} bytes")
        self._commit(work)
        return bytes(out)

    def read_message(self, message: bytes) -> bytes:
        """ReadMessage: process the peer's next handshake message and return its payload.

        Raises :class:`NoiseStateError` when it is our turn to write or the handshake is complete,
        :class:`NoiseMessageError` for a wrong length, :class:`NoiseDecryptError` when
        authentication fails, :class:`NoiseInvalidKey` for a low-order public key. On error the
        state is unchanged.
        """
        if self.is_complete or self.is_my_turn:
            raise NoiseStateError("read_message out of turn")
        data = bytes(message)
        if len(data) > MAX_MESSAGE_LEN:
            raise NoiseMessageError(f"handshake message exceeds {MAX_MESSAGE_LEN} bytes")
        work = self._progress.copy()
        symmetric = work.symmetric
        offset = 0

        def take(size: int) -> bytes:
            nonlocal offset
            if len(data) - offset < size:
                raise NoiseMessageError("handshake message too short")
            chunk = data[offset : offset + size]
            offset += size
            return chunk

        for token in self._pattern.messages[work.message_index].tokens:
            if token == "e":
                work.re = take(DH_LEN)
                symmetric.mix_hash(work.re)
                if self._psks:
                    symmetric.mix_key(work.re)
            elif token == "s":
                size = DH_LEN + (TAG_LEN if symmetric.cipher_state.has_key() else 0)
                work.rs = symmetric.decrypt_and_hash(take(size))
            else:
                self._mix_token(work, token)
        if symmetric.cipher_state.has_key() and len(data) - offset < TAG_LEN:
            raise NoiseMessageError("handshake message too short for its payload tag")
        payload = symmetric.decrypt_and_hash(data[offset:])
        self._commit(work)
        return payload

    # -- internals ----------------------------------------------------------------------------

    def _new_ephemeral(self) -> bytes:
        if self._rng is None:
            raise NoiseStateError("an ephemeral key is needed: pass e or rng")
        key = self._rng(DH_LEN)
        if len(key) != DH_LEN:
            raise NoiseConfigError(f"rng({DH_LEN}) returned {len(key)} bytes")
        return bytes(key)

    def _public(self, work: _Progress, kind: str, local: bool) -> bytes:
        """The public ``e``/``s`` key of us (``local``) or the peer; present by construction."""
        if local and kind == "s":
            key = self._s_pub
        elif local:
            key = None if work.e is None else public_key(work.e)
        else:
            key = work.rs if kind == "s" else work.re
        assert key is not None  # the constructor's key checks and the token order guarantee it
        return key

    def _mix_token(self, work: _Progress, token: str) -> None:
        """``ee``/``es``/``se``/``ss`` (initiator's key named first) or ``psk``."""
        if token == "psk":
            work.symmetric.mix_key_and_hash(self._psks[work.psk_index])
            work.psk_index += 1
            return
        mine, theirs = (token[0], token[1]) if self._initiator else (token[1], token[0])
        private = self._s if mine == "s" else work.e
        remote = self._public(work, theirs, False)
        assert private is not None  # guaranteed by the constructor and the token order
        try:
            shared = dh(private, remote)
        except InvalidPublicKey as exc:
            raise NoiseInvalidKey("the peer's public key is of low order") from exc
        work.symmetric.mix_key(shared)

    def _commit(self, work: _Progress) -> None:
        work.message_index += 1
        self._progress = work
        if self.is_complete:
            k1, k2, self._exporter = work.symmetric.split3_keys()
            self._transport = (k1, k2)
