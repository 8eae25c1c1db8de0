"""The handshake's MACs and cookies: what an outsider's packet may cost (``docs/protocol.md`` §10).

Every handshake packet ends in ``mac1 || mac2`` (16 bytes each), as in WireGuard:

* ``mac1 = BLAKE2b-128(mac1_key, packet up to mac1)`` with ``mac1_key`` from the shared seed:
  checked before any Diffie-Hellman, so a packet from a non-member costs one keyed hash;
* ``mac2 = BLAKE2b-128(cookie, packet up to mac2)``, or zeros without a cookie. Under load the
  responder requires a valid mac2 and answers an INIT without one with a *cookie reply*: the cookie
  (a MAC of the sender's address under a secret rotated every ``COOKIE_SECRET_LIFETIME_S``),
  sealed with XChaCha20-Poly1305 under the shared ``cookie_key`` and bound to the INIT's mac1. Only
  a sender that receives at its claimed address learns the cookie.

:class:`CookieJar` is the responder's side; :func:`open_cookie_reply` the initiator's. Randomness
and time come in as arguments (sans-I/O).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

from seigr_stt.constants import (
    COOKIE_BYTES,
    COOKIE_NONCE_BYTES,
    COOKIE_REPLY_SIZE,
    COOKIE_SECRET_LIFETIME_S,
    MAC_BYTES,
    PROTOCOL_VERSION,
    PacketType,
)
from seigr_stt.core import crypto
from seigr_stt.exceptions import DecryptError

__all__ = [
    "CookieJar",
    "check_mac1",
    "check_mac2",
    "finish_packet",
    "mac1_of",
    "open_cookie_reply",
]

_MACS = 2 * MAC_BYTES
_ZERO_MAC = bytes(MAC_BYTES)


def finish_packet(body: bytes, mac1_key: bytes, cookie: bytes | None) -> bytes:
    """Append mac1 and mac2 (zeros without a ``cookie``) to a handshake packet's ``body``."""
    with_mac1 = body + crypto.mac(mac1_key, body)
    mac2 = crypto.mac(cookie, with_mac1) if cookie is not None else _ZERO_MAC
    return with_mac1 + mac2


def check_mac1(packet: bytes, mac1_key: bytes) -> bool:
    """Constant-time check of a handshake packet's mac1: cheap, done before any DH."""
    expected = crypto.mac(mac1_key, packet[:-_MACS])
    return hmac.compare_digest(expected, packet[-_MACS:-MAC_BYTES])


def check_mac2(packet: bytes, cookie: bytes) -> bool:
    """Constant-time check of mac2 against the cookie this source should hold."""
    expected = crypto.mac(cookie, packet[:-MAC_BYTES])
    return hmac.compare_digest(expected, packet[-MAC_BYTES:])


def mac1_of(packet: bytes) -> bytes:
    """The mac1 field of a handshake packet (associated data of a cookie reply)."""
    return packet[-_MACS:-MAC_BYTES]


def open_cookie_reply(cookie_key: bytes, init_mac1: bytes, reply: bytes) -> bytes:
    """The cookie a reply to our INIT (with ``init_mac1``) carries. Raises
    :class:`~seigr_stt.exceptions.DecryptError` if it does not verify; the caller has checked
    the reply's size (``COOKIE_REPLY_SIZE``)."""
    nonce = reply[8 : 8 + COOKIE_NONCE_BYTES]
    cookie = crypto.xaead_decrypt(cookie_key, nonce, init_mac1, reply[8 + COOKIE_NONCE_BYTES :])
    if len(cookie) != COOKIE_BYTES:  # pragma: no cover - the AEAD fixed its length
        raise DecryptError("cookie of the wrong size")
    return cookie


class CookieJar:
    """The responder's cookies: one secret, rotated every ``COOKIE_SECRET_LIFETIME_S``."""

    __slots__ = ("_cookie_key", "_expires_at", "_rng", "_secret")

    def __init__(self, cookie_key: bytes, rng: Callable[[int], bytes]) -> None:
        self._cookie_key = cookie_key
        self._rng = rng
        self._secret = rng(32)
        self._expires_at: float | None = None

    def __repr__(self) -> str:
        return "CookieJar(<secret>)"

    def cookie_for(self, source: bytes, now: float) -> bytes:
        """The cookie of ``source`` (the sender's address as bytes) under the current secret."""
        if self._expires_at is None or now >= self._expires_at:
            self._secret = self._rng(32)
            self._expires_at = now + COOKIE_SECRET_LIFETIME_S
        return crypto.mac(self._secret, source)

    def check(self, init: bytes, source: bytes, now: float) -> bool:
        """Whether ``init`` carries a valid mac2 for ``source``'s current cookie."""
        return check_mac2(init, self.cookie_for(source, now))

    def reply(self, init: bytes, receiver: bytes, source: bytes, now: float) -> bytes:
        """The cookie reply to ``init`` from ``source`` (sent to ``receiver``'s index)."""
        nonce = self._rng(COOKIE_NONCE_BYTES)
        sealed = crypto.xaead_encrypt(
            self._cookie_key, nonce, mac1_of(init), self.cookie_for(source, now)
        )
        packet = (
            bytes([PROTOCOL_VERSION, PacketType.COOKIE_REPLY, 0, 0]) + receiver + nonce + sealed
        )
        assert len(packet) == COOKIE_REPLY_SIZE
        return packet
