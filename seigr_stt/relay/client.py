"""A node's side of registering at a relay, sans-I/O (§17.3).

:class:`Registrar` builds HELLO, answers a CHALLENGE with a REGISTER carrying the proof that
this node holds its static key, and checks that REGISTERED (or REFUSED) answers the nonce of
the current attempt; REGISTERED must also carry the relay's proof. Randomness comes in as
``rng``; nothing reads a clock.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

from seigr_stt.constants import RELAY_NONCE_BYTES
from seigr_stt.core.identity import NodeIdentity
from seigr_stt.relay.wire import (
    Challenge,
    Hello,
    Refused,
    Register,
    Registered,
    RelayWireError,
    proof_key,
    register_proof,
    registered_proof,
)

__all__ = ["Registrar"]


class Registrar:
    """One node's registration attempts at one relay; see the module docstring."""

    __slots__ = ("_identity", "_key", "_nonce", "_rng", "relay_static")

    def __init__(self, identity: NodeIdentity, rng: Callable[[int], bytes]) -> None:
        self._identity = identity
        self._rng = rng
        self._nonce = b""
        self._key: bytes | None = None
        #: The relay's static public key, once a CHALLENGE came.
        self.relay_static: bytes | None = None

    def __repr__(self) -> str:
        return f"Registrar(relay_static={self.relay_static is not None})"

    def hello(self) -> bytes:
        """Start an attempt: the HELLO to send (a fresh nonce; earlier answers no longer match)."""
        self._nonce = self._rng(RELAY_NONCE_BYTES)
        self._key = None
        return Hello(self._nonce).serialize()

    def on_challenge(self, data: bytes) -> bytes | None:
        """A CHALLENGE came: the REGISTER to send, or None (malformed, not for this attempt, or
        a low-order relay key)."""
        try:
            challenge = Challenge.parse(data)
            if challenge.nonce != self._nonce or not self._nonce:
                return None
            key = proof_key(self._identity.static_private, challenge.relay_static)
        except RelayWireError:
            return None
        self._key = key
        self.relay_static = challenge.relay_static
        register = Register(
            self._identity.static_public, challenge.nonce, challenge.issued, challenge.cookie
        )
        proof = register_proof(key, challenge.relay_static, register)
        return Register(
            register.node_static, register.nonce, register.issued, register.cookie, proof
        ).serialize()

    def on_registered(self, data: bytes) -> Registered | None:
        """A REGISTERED came: the registration if it answers this attempt and carries the
        relay's proof, else None."""
        if self._key is None:
            return None
        try:
            registered = Registered.parse(data)
        except RelayWireError:
            return None
        if registered.nonce != self._nonce:
            return None
        if not hmac.compare_digest(registered_proof(self._key, registered), registered.proof):
            return None
        return registered

    def on_refused(self, data: bytes) -> int | None:
        """A REFUSED came: its code if it names this attempt's nonce (unauthenticated: a hint
        that may end the attempt early), else None."""
        try:
            refused = Refused.parse(data)
        except RelayWireError:
            return None
        if not self._nonce or refused.nonce != self._nonce:
            return None
        return refused.code
