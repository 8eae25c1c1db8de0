"""Seeds and node identity (``docs/protocol.md`` §2).

A node has a private ``node_seed`` and shares a ``shared_seed`` with every authorized peer. From the
node seed come the static X25519 key and the public ``node_id``; from the shared seed come the Noise
PSK, the mac1 key and the cookie-reply key. Every derivation is ``kdf(seed, label)`` with its own
label, so no two uses share key material.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import re
from collections import Counter
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
    URL-safe). Raises :class:`WeakSeedError` (a ``ValueError``) when the seed is not decodable or
    is obviously not random (use :func:`seigr_stt.generate_seed` or ``stt keygen FILE``):

    - shorter than 32 bytes;
    - fewer than 16 distinct byte values (``bytes(64)``, ``b"server" * 8``);
    - periodic: a block of at most half its length repeated (``b"0123456789abcdef" * 2``, or
      any 16 bytes twice);
    - a sequence: more than half of its consecutive differences ``(b[i+1] - b[i]) mod 256`` are
      the same value (``bytes(range(32))``, ``bytes(range(100, 132))``, descending runs, any
      constant step mod 256, and mixtures where one step dominates).

    A seed from a CSPRNG is refused with probability below 2^-85 (see :func:`_structure`); not
    every weak seed is recognised (a typed passphrase with 16 distinct letters passes). The
    error text names ``what`` and the rule, never the seed.
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
    problem = _structure(raw)
    if problem is not None:
        raise WeakSeedError(
            f"{what} is structured, not random ({problem}); use seigr_stt.generate_seed()"
        )
    return raw


def _smallest_period(raw: bytes) -> int:
    """The smallest p > 0 with ``raw[i] == raw[i + p]`` for every i (len(raw) if none), in O(n).

    It is ``n - border``, where the border (the longest proper prefix that is also a suffix) is
    the last value of the Knuth-Morris-Pratt prefix function.
    """
    border = [0] * len(raw)
    k = 0
    for i in range(1, len(raw)):
        while k and raw[i] != raw[k]:
            k = border[k - 1]
        if raw[i] == raw[k]:
            k += 1
        border[i] = k
    return len(raw) - (border[-1] if raw else 0)


def _structure(raw: bytes) -> str | None:
    """Why ``raw`` (at least 32 bytes) is obviously structured, or None; the text has no seed bytes.

    Two rules, with n = len(raw) >= 32 and m = n - 1 consecutive differences:

    1. *Periodic*: the smallest period p is at most n // 2. A uniformly random seed has a period
       p with probability 256^-(n-p), so P(rule 1) <= sum over p <= n/2 of 256^-(n-p)
       < 1.004 * 256^-(n/2) <= 2^-127.
    2. *Dominant step*: some difference value occurs more than m / 2 times, i.e. at least
       k = m // 2 + 1 times. For uniformly random bytes the differences ``(b[i+1] - b[i]) mod 256``
       are independent and uniform (the map from the bytes to the first byte and the differences
       is a bijection), so by the union bound over the 256 values and the k-subsets of positions,
       P(rule 2) <= 256 * C(m, k) * 256^-k < 2^8 * 2^m * 2^(-4m) = 2^(8 - 3m) <= 2^-85 for
       m >= 31 (for n = 32 exactly: 256 * C(31, 16) * 256^-16 < 2^-91).

    So a seed from a CSPRNG is refused with probability below 2^-85 + 2^-127.
    """
    n = len(raw)
    period = _smallest_period(raw)
    if period <= n // 2:
        return f"a block of {period} bytes repeated"
    differences = Counter((b - a) & 0xFF for a, b in itertools.pairwise(raw))
    count = max(differences.values())
    if count > (n - 1) / 2:
        return f"{count} of its {n - 1} consecutive byte differences are equal"
    return None


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
