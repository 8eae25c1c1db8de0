"""Seeds and node identity (``docs/protocol.md`` §2).

A node has a private ``node_seed`` and shares a ``shared_seed`` with every authorized peer. From the
node seed come the static X25519 key and the public ``node_id``; from the shared seed come the Noise
PSK, the mac1 key and the cookie-reply key. Every derivation is ``kdf(seed, label)`` with its own
label, so no two uses share key material.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field

from seigr_stt.constants import (
    LABEL_COOKIE,
    LABEL_MAC1,
    LABEL_NODE_ID,
    LABEL_PSK,
    LABEL_STATIC_KEY,
    NODE_ID_BYTES,
    SEED_MIN_BYTES,
    SEED_MIN_DISTINCT_BYTE_VALUES,
)
from seigr_stt.core import crypto
from seigr_stt.exceptions import WeakSeedError

__all__ = ["NodeIdentity", "SharedSecrets", "node_id_from_static", "parse_seed"]

_HEX = re.compile(r"^(0x)?[0-9a-fA-F]+$")
_B64 = re.compile(r"^[A-Za-z0-9+/_-]+={0,2}$")


def parse_seed(seed: bytes | bytearray | memoryview | str, what: str = "seed") -> bytes:
    """Validate a seed and return it as bytes.

    Accepts raw bytes, or text in hex (optionally ``0x``-prefixed) or base64 (standard or
    URL-safe). Raises :class:`WeakSeedError` (a ``ValueError``) when the seed is not decodable,
    shorter than 32 bytes, or has fewer than 16 distinct byte values — a seed made of a repeated
    word such as ``b"server" * 8`` is refused; use :func:`seigr_stt.generate_seed`.
    The error text never contains the seed.
    """
    if isinstance(seed, str):
        raw = _decode_text_seed(seed.strip(), what)
    elif isinstance(seed, bytes | bytearray | memoryview):
        raw = bytes(seed)
    else:
        raise WeakSeedError(
            f"{what} must be bytes or a hex/base64 string, not {type(seed).__name__}"
        )
    if len(raw) < SEED_MIN_BYTES:
        raise WeakSeedError(
            f"{what} is {len(raw)} bytes; at least {SEED_MIN_BYTES} bytes of random data are "
            "required (use seigr_stt.generate_seed())"
        )
    if len(set(raw)) < SEED_MIN_DISTINCT_BYTE_VALUES:
        raise WeakSeedError(
            f"{what} has too little entropy ({len(set(raw))} distinct byte values, at least "
            f"{SEED_MIN_DISTINCT_BYTE_VALUES} required); use seigr_stt.generate_seed()"
        )
    return raw


def _decode_text_seed(text: str, what: str) -> bytes:
    if _HEX.match(text):
        digits = text.removeprefix("0x")
        if len(digits) % 2:
            raise WeakSeedError(f"{what} looks like hex but has an odd number of digits")
        return bytes.fromhex(digits)
    if _B64.match(text):
        try:
            padded = text + "=" * (-len(text) % 4)
            if "-" in text or "_" in text:
                return base64.urlsafe_b64decode(padded)
            return base64.b64decode(padded, validate=True)
        except (binascii.Error, ValueError):
            pass
    raise WeakSeedError(f"{what} text is neither hex nor base64")


def node_id_from_static(static_public: bytes) -> bytes:
    """The 32-byte node id of a static public key (what a peer learns in the handshake)."""
    return crypto.kdf(static_public, LABEL_NODE_ID, NODE_ID_BYTES)


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    """A node's static key pair and id, derived deterministically from its node seed."""

    static_private: bytes = field(repr=False)
    static_public: bytes
    node_id: bytes

    @classmethod
    def from_seed(cls, node_seed: bytes | bytearray | memoryview | str) -> NodeIdentity:
        """Derive the identity; the same seed gives the same ``node_id`` after a restart."""
        raw = parse_seed(node_seed, "node_seed")
        private = crypto.kdf(raw, LABEL_STATIC_KEY)
        public = crypto.public_key(private)
        return cls(private, public, node_id_from_static(public))


@dataclass(frozen=True, slots=True)
class SharedSecrets:
    """The keys every member of a group derives from the shared seed."""

    psk: bytes = field(repr=False)
    mac1_key: bytes = field(repr=False)
    cookie_key: bytes = field(repr=False)

    @classmethod
    def from_seed(cls, shared_seed: bytes | bytearray | memoryview | str) -> SharedSecrets:
        """The secrets of ``shared_seed`` (bytes, or hex/base64 text); WeakSeedError if weak."""
        raw = parse_seed(shared_seed, "shared_seed")
        return cls(
            psk=crypto.kdf(raw, LABEL_PSK),
            mac1_key=crypto.kdf(raw, LABEL_MAC1),
            cookie_key=crypto.kdf(raw, LABEL_COOKIE),
        )
