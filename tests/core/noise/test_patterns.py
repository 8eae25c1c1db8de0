"""Unit tests of :mod:`seigr_stt.core.noise.patterns`: the pattern table, protocol names, psk
modifiers."""

from __future__ import annotations

import secrets

import pytest

from seigr_stt.core import noise
from seigr_stt.core.noise import HandshakeState, NoiseConfigError
from seigr_stt.core.noise.patterns import PATTERNS, parse_pattern, parse_protocol_name
from tests.core.noise import KEY, SUITE

# -- Protocol names --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "Noise_XX_448_ChaChaPoly_BLAKE2b",
        "Noise_XX_25519_AESGCM_SHA256",
        "Noise_ZZ" + SUITE,
        "Noise_XXfallback" + SUITE,
        "Noise_XXpsk4" + SUITE,
        "Noise_XXpsk3+psk3" + SUITE,
        "Noise_Npsk2" + SUITE,
        "XX" + SUITE,
        b"Noise_\xffX" + SUITE.encode(),
    ],
)
def test_unsupported_protocol_names(name: str | bytes) -> None:
    with pytest.raises(NoiseConfigError):
        HandshakeState(name, True, b"", s=KEY, psks=[KEY], rng=secrets.token_bytes)


def test_supported_patterns_cover_the_spec_tables() -> None:
    assert len(noise.SUPPORTED_PATTERNS) == 3 + 12 + 23


# -- Parsing and psk modifiers ---------------------------------------------------------------------


def test_parse_pattern_separates_pre_messages() -> None:
    pattern = parse_pattern("-> s | <- s | ... | -> e, es, ss | <- e, ee, se", one_way=False)
    assert (pattern.initiator_pre, pattern.responder_pre) == (("s",), ("s",))
    assert [(m.from_initiator, m.tokens) for m in pattern.messages] == [
        (True, ("e", "es", "ss")),
        (False, ("e", "ee", "se")),
    ]
    assert PATTERNS["KK"] == pattern


def test_psk_modifiers_place_psk_tokens() -> None:
    name, pattern = parse_protocol_name(("Noise_XXpsk0+psk3" + SUITE).encode())
    assert name == ("Noise_XXpsk0+psk3" + SUITE).encode()
    assert [m.tokens for m in pattern.messages] == [
        ("psk", "e"),
        ("e", "ee", "s", "es"),
        ("s", "se", "psk"),
    ]
    assert PATTERNS["XX"].messages[0].tokens == ("e",)  # the table itself is left as it was
