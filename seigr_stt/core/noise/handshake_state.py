"""The Noise handshake: the token interpreter :class:`HandshakeState` (Noise rev. 34 §5.3).

One job: run one party's handshake of any supported pattern, message by message, then hand out
the transport keys. A sans-I/O engine: bytes in, bytes out, no clock and no entropy source of its
own. The ephemeral private key is either passed in (test vectors) or drawn from an injected
``rng(n) -> bytes`` callable. The pattern comes as data from
:mod:`seigr_stt.core.noise.patterns` (§7, §9); hashing and encryption go through the
:class:`~seigr_stt.core.noise.cipher.SymmetricState` of :mod:`seigr_stt.core.noise.cipher`.

Objects of this module never show key material in their ``repr``. Errors are subclasses of
:class:`~seigr_stt.exceptions.NoiseError`; their messages never contain key material either.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Final

from seigr_stt.core.crypto import DH_LEN, TAG_LEN, InvalidPublicKey, dh, public_key
from seigr_stt.core.noise.cipher import CipherState, SymmetricState
from seigr_stt.core.noise.patterns import DH_TOKENS, Pattern, parse_protocol_name
from seigr_stt.exceptions import (
    NoiseConfigError,
    NoiseInvalidKey,
    NoiseMessageError,
    NoiseStateError,
)

__all__ = [
    "MAX_MESSAGE_LEN",
    "PSK_LEN",
    "HandshakeState",
]

PSK_LEN: Final = 32
MAX_MESSAGE_LEN: Final = 65535
"""The largest Noise message (§3); handshake messages above it are refused."""


# -- HandshakeState (§5.3) -----------------------------------------------------------------------


def _checked_key(name: str, key: bytes | None) -> bytes | None:
    if key is None:
        return None
    if len(key) != DH_LEN:
        raise NoiseConfigError(f"{name} must be {DH_LEN} bytes")
    return bytes(key)


@lru_cache(maxsize=128)
def _pattern_facts(pattern: Pattern, initiator: bool) -> tuple[int, bool]:
    """``(psk tokens, whether our static key is used)`` of ``pattern``: worked out once per
    pattern and role, not per handshake."""
    psk_count = sum(m.tokens.count("psk") for m in pattern.messages)
    return psk_count, _uses_local_static(pattern, initiator)


def _uses_local_static(pattern: Pattern, initiator: bool) -> bool:
    """Whether our static key is pre-shared, sent, or part of a DH in ``pattern``."""
    local_pre = pattern.initiator_pre if initiator else pattern.responder_pre
    mine = 0 if initiator else 1
    return "s" in local_pre or any(
        (token == "s" and message.from_initiator == initiator)
        or (token in DH_TOKENS and token[mine] == "s")
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
    - ``s_public``: optionally, the public key of ``s`` when the caller already holds it (it must
      be X25519 of ``s``; not checked); spares a scalar multiplication per handshake.

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
        s_public: bytes | None = None,
    ) -> None:
        name, pattern = parse_protocol_name(protocol_name)
        self._protocol_name = name
        self._pattern = pattern
        self._initiator = bool(initiator)
        self._rng = rng
        self._s = _checked_key("s", s)
        if s_public is not None and self._s is not None:
            # The caller's contract: s_public is X25519(s) (an identity that derived it once),
            # which spares one scalar multiplication per handshake.
            self._s_pub: bytes | None = _checked_key("s_public", s_public)
        else:
            self._s_pub = None if self._s is None else public_key(self._s)
        e = _checked_key("e", e)
        rs = _checked_key("rs", rs)
        re = _checked_key("re", re)

        psk_count, uses_static = _pattern_facts(pattern, self._initiator)
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
        if self._s is None and uses_static:
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
        clone = HandshakeState.__new__(HandshakeState)
        for name in HandshakeState.__slots__:
            setattr(clone, name, getattr(self, name))
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
