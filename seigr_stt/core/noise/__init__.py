"""The Noise Protocol Framework (revision 34) for the suite ``25519_ChaChaPoly_BLAKE2b``.

One job: the package's public names, re-exported from the modules that implement them, so that
``from seigr_stt.core.noise import X`` is the one import users need:

- :mod:`~seigr_stt.core.noise.cipher`: :class:`CipherState`, :class:`SymmetricState` and
  :func:`rekey` (Noise §5.1–5.2, §4.2);
- :mod:`~seigr_stt.core.noise.patterns`: the pattern table as data, its parser and the ``pskN``
  modifiers (Noise §7, §9);
- :mod:`~seigr_stt.core.noise.handshake_state`: :class:`HandshakeState`, the token interpreter
  that runs every supported pattern (Noise §5.3).

A sans-I/O engine: bytes in, bytes out, no clock and no entropy source of its own. Every primitive
comes from :mod:`seigr_stt.core.crypto`. Objects of this package never show key material in their
``repr``. Errors are subclasses of :class:`NoiseError` (defined in :mod:`seigr_stt.exceptions`);
their messages never contain key material either.
"""

from __future__ import annotations

from seigr_stt.core.noise.cipher import KEY_LEN, MAX_NONCE, CipherState, SymmetricState, rekey
from seigr_stt.core.noise.handshake_state import MAX_MESSAGE_LEN, PSK_LEN, HandshakeState
from seigr_stt.core.noise.patterns import SUITE, SUPPORTED_PATTERNS
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
