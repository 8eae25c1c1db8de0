"""Seeds and node identity (``docs/protocol.md`` §2)."""

from __future__ import annotations

import base64

import pytest

from seigr_stt.constants import NODE_ID_BYTES, SEED_MIN_BYTES
from seigr_stt.core import crypto
from seigr_stt.core.identity import NodeIdentity, SharedSecrets, node_id_from_static, parse_seed
from seigr_stt.exceptions import ConfigError, WeakSeedError
from tests.core.net import make_seed

SEED = bytes(range(7, 7 + 32))  # 32 distinct byte values
# A seed whose base64 needs both "+" and "/" (standard) or "-" and "_" (URL-safe).
B64_SEED = bytes([0xFB, 0xFF, 0xBF]) + bytes(range(40, 69))


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
    long_seed = bytes(range(256)) * 2
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


def test_exactly_sixteen_distinct_values_accepted() -> None:
    seed = bytes(range(16)) * 2
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
