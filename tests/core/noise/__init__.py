"""Unit tests of the Noise engine, one file per module of :mod:`seigr_stt.core.noise`.

The constants below are shared by those files.
"""

from __future__ import annotations

SUITE = "_25519_ChaChaPoly_BLAKE2b"
XXPSK3 = "Noise_XXpsk3" + SUITE
KEY = bytes(range(32))
