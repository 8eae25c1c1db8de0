"""Seeds and node identity (``docs/protocol.md`` §2)."""

from __future__ import annotations

import base64
import itertools
import os
import random

import pytest

from seigr_stt.constants import NODE_ID_BYTES, SEED_MIN_BYTES
from seigr_stt.core import crypto
from seigr_stt.core.identity import (
    NodeIdentity,
    SharedSecrets,
    node_id_from_static,
    parse_seed,
)
from seigr_stt.exceptions import ConfigError, WeakSeedError
from tests.core.net import make_seed

SEED = bytes.fromhex("7ec06ab650064a515de234aa5ea4789c049c7f577c00d7e8676716149334db15")
# A seed whose base64 needs both "+" and "/" (standard) or "-" and "_" (URL-safe).
B64_SEED = bytes([0xFB, 0xFF, 0xBF]) + bytes.fromhex(
    "0f64bc364e4b80501f74a05ee8dadc6e2c36657446a21e9e3474ee8d88"
)


def test_b64_seed_exercises_both_alphabets() -> None:
    assert "+" in base64.b64encode(B64_SEED).decode()
    assert "/" in base64.b64encode(B64_SEED).decode()
    assert "-" in base64.urlsafe_b64encode(B64_SEED).decode()
    assert "_" in base64.urlsafe_b64encode(B64_SEED).decode()


@pytest.mark.parametrize(
    "form",
    [
        SEED,
        bytearray(SEED),
        memoryview(SEED),
        SEED.hex(),
        SEED.hex().upper(),
        "0x" + SEED.hex(),
        "  " + SEED.hex() + "\n",
        base64.b64encode(SEED).decode(),
        base64.b64encode(SEED).decode().rstrip("="),
        base64.urlsafe_b64encode(SEED).decode(),
    ],
    ids=[
        "bytes",
        "bytearray",
        "memoryview",
        "hex",
        "HEX",
        "0x-hex",
        "hex-with-whitespace",
        "base64",
        "base64-unpadded",
        "urlsafe-base64",
    ],
)
def test_seed_forms_accepted(form: bytes | bytearray | memoryview | str) -> None:
    assert parse_seed(form) == SEED


@pytest.mark.parametrize(
    "text",
    [
        base64.b64encode(B64_SEED).decode(),
        base64.urlsafe_b64encode(B64_SEED).decode(),
        base64.urlsafe_b64encode(B64_SEED).decode().rstrip("="),
    ],
    ids=["standard", "urlsafe", "urlsafe-unpadded"],
)
def test_base64_alphabets(text: str) -> None:
    assert parse_seed(text) == B64_SEED


def test_longer_seeds_accepted() -> None:
    long_seed = random.Random("long").randbytes(512)
    assert parse_seed(long_seed) == long_seed
    assert NodeIdentity.from_seed(long_seed).node_id != NodeIdentity.from_seed(SEED).node_id


@pytest.mark.parametrize(
    "seed",
    [
        b"",
        SEED[: SEED_MIN_BYTES - 1],
        SEED[: SEED_MIN_BYTES - 1].hex(),
        base64.b64encode(SEED[:31]).decode(),
        b"server" * 8,
        bytes(64),
        bytes(range(15)) * 4,
        (b"server" * 8).hex(),
        "",
        "not a seed!",
        "zz" * 32,
        "0x" + "g" * 64,
        "abc def",
        "=" * 44,
        "abcde",
    ],
    ids=[
        "empty",
        "31-bytes",
        "31-bytes-hex",
        "31-bytes-base64",
        "server*8",
        "zeros",
        "15-distinct-values",
        "server*8-hex",
        "empty-text",
        "punctuation",
        "zz-text",
        "0x-non-hex",
        "space",
        "only-padding",
        "bad-base64-length",
    ],
)
def test_weak_or_undecodable_seeds_rejected(seed: bytes | str) -> None:
    with pytest.raises(WeakSeedError) as info:
        parse_seed(seed)
    message = str(info.value)
    assert message
    text = seed if isinstance(seed, str) else seed.hex()
    if len(text) >= 8:
        assert text not in message
    if isinstance(seed, bytes) and len(seed) >= 8:
        assert repr(seed) not in message
        assert seed.decode("latin-1") not in message


RANDOM_16 = random.Random("block").randbytes(16)
RANDOM_18 = random.Random("odd block").randbytes(18)
P = pytest.param


@pytest.mark.parametrize(
    ("seed", "rule"),
    [
        P(bytes(range(32)), "differences", id="ascending"),
        P(bytes(range(100, 132)), "differences", id="ascending-from-100"),
        P(bytes(range(131, 99, -1)), "differences", id="descending"),
        P(bytes(range(0, 256, 8)), "differences", id="step-8"),
        P(bytes((7 * i + 250) % 256 for i in range(32)), "differences", id="step-7-wrapping"),
        P(bytes((256 - 3 * i) % 256 for i in range(40)), "differences", id="step-minus-3"),
        P(bytes(range(16)) + bytes(range(100, 116)), "differences", id="two-runs"),
        P(bytes(x for i in range(16) for x in (i, 100 + i)), "differences", id="interleaved"),
        P(SEED[:16] + bytes(range(16, 48)), "differences", id="random-then-run"),  # 31 of 47 are 1
        P(SEED + bytes(100), "differences", id="random-then-zeros"),
        P(bytes(range(256)) * 2, "repeated", id="range-256-twice"),
        P(b"0123456789abcdef" * 2, "repeated", id="hex-digits-twice"),
        P(RANDOM_16 * 2, "repeated", id="random-16-twice"),
        P((RANDOM_18 * 3)[:40], "repeated", id="period-18-of-40"),
    ],
)
def test_structured_seeds_rejected(seed: bytes, rule: str) -> None:
    assert len(seed) >= SEED_MIN_BYTES
    assert len(set(seed)) >= 16  # not caught by the older rules
    with pytest.raises(WeakSeedError, match=rf"seed is structured, not random \(.*{rule}") as info:
        parse_seed(seed)
    message = str(info.value)
    assert seed.hex()[:16] not in message
    assert repr(seed)[:16] not in message
    with pytest.raises(WeakSeedError, match="structured"):
        parse_seed(seed.hex())
    with pytest.raises(WeakSeedError, match="node_seed is structured"):
        NodeIdentity.from_seed(seed)


def _differences(seed: bytes) -> list[int]:
    return [(b - a) % 256 for a, b in itertools.pairwise(seed)]


@pytest.mark.parametrize(("run", "refused"), [(16, False), (17, True)])
def test_a_step_is_refused_only_above_half_the_differences(run: int, refused: bool) -> None:
    """32 bytes have 31 differences: a run of 16 (15 steps of 1) passes, 17 (16 steps) not."""
    head = SEED[: 32 - run]
    assert 1 not in _differences(head)
    seed = head + bytes(range(200, 200 + run))
    assert _differences(seed).count(1) == run - 1
    if refused:
        with pytest.raises(WeakSeedError, match="16 of its 31 consecutive byte differences"):
            parse_seed(seed)
    else:
        assert parse_seed(seed) == seed


@pytest.mark.parametrize("period", range(1, 9))
def test_short_periods_are_refused(period: int) -> None:
    """A block of at most 8 bytes repeated has at most 8 distinct values: the entropy rule."""
    seed = (RANDOM_16[:period] * 32)[:32]
    with pytest.raises(WeakSeedError, match="entropy"):
        parse_seed(seed)


@pytest.mark.parametrize(("period", "refused"), [(16, True), (17, False)])
def test_a_period_is_refused_only_up_to_half_the_length(period: int, refused: bool) -> None:
    block = SEED[:period]
    seed = (block * 2)[:32]
    if refused:
        with pytest.raises(WeakSeedError, match="a block of 16 bytes repeated"):
            parse_seed(seed)
    else:
        assert parse_seed(seed) == seed


def test_random_seeds_are_never_refused() -> None:
    """100,000 CSPRNG seeds of 32 bytes (and 2,000 of each longer length) all pass.

    False-positive bounds per 32-byte seed (union bounds): the structure rules
    (:func:`seigr_stt.core.identity._structure`) refuse a random seed with probability below
    2^-85 (dominant step: 256 * C(31, 16) * 256^-16 < 2^-91; period <= 16: < 2^-127), and the
    older distinct-values rule with probability below C(256, 15) * (15/256)^32 < 2^-51. So a
    failure here means a bug in the rules, not bad luck.
    """
    for _ in range(100_000):
        seed = os.urandom(32)
        assert parse_seed(seed) == seed
    for length in (33, 48, 64, 100, 256):
        for _ in range(2_000):
            seed = os.urandom(length)
            assert parse_seed(seed) == seed


def test_exactly_sixteen_distinct_values_accepted() -> None:
    # 16 random values, each twice, in an order that is neither periodic nor a sequence.
    seed = bytes.fromhex("f6d1f6e479abb971f0e49774d5059171f09a7497d579d1050284b9ab91029a84")
    assert len(set(seed)) == 16
    assert parse_seed(seed) == seed


@pytest.mark.parametrize("value", [None, 12345, 3.5, [1, 2, 3], SEED.hex().encode().decode])
def test_wrong_types_rejected(value: object) -> None:
    with pytest.raises(WeakSeedError, match="must be bytes"):
        parse_seed(value)  # type: ignore[arg-type]


def test_weak_seed_error_is_a_value_error_and_a_config_error() -> None:
    assert issubclass(WeakSeedError, ValueError)
    assert issubclass(WeakSeedError, ConfigError)
    with pytest.raises(ValueError, match="entropy"):
        NodeIdentity.from_seed(b"server" * 8)
    with pytest.raises(ValueError, match="shared_seed"):
        SharedSecrets.from_seed(b"short")


def test_error_names_the_argument() -> None:
    with pytest.raises(WeakSeedError, match="node_seed"):
        NodeIdentity.from_seed(b"x")
    with pytest.raises(WeakSeedError, match="shared_seed"):
        SharedSecrets.from_seed(b"x")


def test_node_id_is_deterministic_and_32_bytes() -> None:
    first = NodeIdentity.from_seed(SEED)
    second = NodeIdentity.from_seed(SEED.hex())
    assert len(first.node_id) == NODE_ID_BYTES == 32
    assert first == second
    assert first.node_id == node_id_from_static(first.static_public)
    assert first.static_public == crypto.public_key(first.static_private)
    assert len(first.static_private) == 32
    other = NodeIdentity.from_seed(make_seed("other"))
    assert other.node_id != first.node_id
    assert other.static_public != first.static_public


def test_node_id_is_not_the_public_key() -> None:
    identity = NodeIdentity.from_seed(SEED)
    assert identity.node_id != identity.static_public
    assert identity.static_private not in (SEED, identity.static_public)


def test_shared_secrets_are_separated_by_label() -> None:
    secrets = SharedSecrets.from_seed(SEED)
    values = {secrets.psk, secrets.mac1_key, secrets.cookie_key}
    assert len(values) == 3
    assert all(len(v) == 32 for v in values)
    assert SharedSecrets.from_seed(SEED) == secrets
    assert SharedSecrets.from_seed(make_seed("other")).psk != secrets.psk
    # The node seed and the shared seed derive different things from the same bytes.
    assert NodeIdentity.from_seed(SEED).static_private not in values


def test_reprs_hide_private_keys() -> None:
    identity = NodeIdentity.from_seed(SEED)
    secrets = SharedSecrets.from_seed(SEED)
    text = repr(identity) + str(identity) + repr(secrets) + str(secrets)
    for secret in (identity.static_private, secrets.psk, secrets.mac1_key, secrets.cookie_key):
        assert secret.hex() not in text
        assert repr(secret) not in text
        assert repr(secret)[2:-1] not in text
    assert SEED.hex() not in text
    assert identity.node_id.hex() in repr(identity) or repr(identity.node_id) in repr(identity)
