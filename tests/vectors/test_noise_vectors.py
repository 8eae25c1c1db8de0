"""The cacophony Noise vectors for 25519_ChaChaPoly_BLAKE2b, byte for byte.

The vector file is committed beside this module (``tests/vectors/README.md`` gives its provenance
and licence), so the test runs in every clone and never skips.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from seigr_stt.core.noise import CipherState, HandshakeState

_FILE_NAME = "noise_25519_ChaChaPoly_BLAKE2b.json"
_ONE_WAY = {"N", "K", "X"}


_PATH = Path(__file__).resolve().parent / _FILE_NAME
_VECTORS: list[dict[str, Any]] = json.loads(_PATH.read_text(encoding="utf-8"))["vectors"]


def _hex(value: str | None) -> bytes | None:
    return None if value is None else bytes.fromhex(value)


def _party(vector: dict[str, Any], initiator: bool) -> HandshakeState:
    side = "init" if initiator else "resp"
    return HandshakeState(
        vector["protocol_name"],
        initiator,
        bytes.fromhex(vector[f"{side}_prologue"]),
        s=_hex(vector.get(f"{side}_static")),
        e=_hex(vector.get(f"{side}_ephemeral")),
        rs=_hex(vector.get(f"{side}_remote_static")),
        psks=[bytes.fromhex(p) for p in vector.get(f"{side}_psks", [])],
    )


def _is_one_way(protocol_name: str) -> bool:
    pattern = protocol_name.split("_")[1]
    return pattern.split("psk")[0] in _ONE_WAY


def test_vector_file_is_complete() -> None:
    """The filtered file holds the 59 vectors of the suite, each name once."""
    names = [v["protocol_name"] for v in _VECTORS]
    assert len(names) == 59
    assert len(set(names)) == 59
    assert "Noise_XXpsk3_25519_ChaChaPoly_BLAKE2b" in names


@pytest.mark.parametrize("vector", _VECTORS, ids=[v["protocol_name"] for v in _VECTORS])
def test_vector_handshake_and_transport(vector: dict[str, Any]) -> None:
    initiator = _party(vector, True)
    responder = _party(vector, False)
    one_way = _is_one_way(vector["protocol_name"])
    assert initiator.is_one_way is one_way
    assert responder.is_one_way is one_way
    messages: list[dict[str, str]] = vector["messages"]

    index = 0
    while not initiator.is_complete:
        sender, receiver = (initiator, responder) if index % 2 == 0 else (responder, initiator)
        assert sender.is_my_turn
        assert not receiver.is_my_turn
        payload = bytes.fromhex(messages[index]["payload"])
        ciphertext = sender.write_message(payload)
        assert ciphertext.hex() == messages[index]["ciphertext"], f"handshake message {index}"
        assert receiver.read_message(ciphertext) == payload
        index += 1
    assert responder.is_complete
    assert index < len(messages), "the vector continues with transport messages"

    expected_hash = vector["handshake_hash"]
    assert initiator.handshake_hash.hex() == expected_hash
    assert responder.handshake_hash.hex() == expected_hash
    assert initiator.exporter == responder.exporter

    i_send, i_recv = initiator.split()
    r_send, r_recv = responder.split()
    for number in range(index, len(messages)):
        pair: tuple[CipherState, CipherState] = (
            (i_send, r_recv) if one_way or number % 2 == 0 else (r_send, i_recv)
        )
        payload = bytes.fromhex(messages[number]["payload"])
        ciphertext = pair[0].encrypt_with_ad(b"", payload)
        assert ciphertext.hex() == messages[number]["ciphertext"], f"transport message {number}"
        assert pair[1].decrypt_with_ad(b"", ciphertext) == payload
