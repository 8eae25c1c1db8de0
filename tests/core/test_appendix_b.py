"""The test vectors of ``docs/protocol.md`` Appendix B, read from the document and recomputed.

Every value is recomputed from the *document's* inputs by :mod:`tests.core.appendix_b` (which
follows the appendix's recipe: handshake objects, then two endpoints, a message and its ACK) and
compared with the hex the document shows, so the page and the code cannot drift apart. After a
deliberate change: ``.venv/bin/python -m tests.core.appendix_b --write``.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest
from nacl import bindings

from seigr_stt.core.identity import parse_seed
from seigr_stt.exceptions import WeakSeedError
from tests.core import appendix_b
from tests.core.appendix_b import (
    DEFAULT_INPUTS,
    DOC,
    LAYOUT,
    SEED_LABELS,
    blocks,
    compute,
    doc_section,
    fenced_blocks,
    inline_hex,
    parse_block,
    parse_inputs,
    prose_hex,
    seed_of,
    write,
)

SECTION = doc_section(DOC.read_text(encoding="utf-8"))
BLOCKS = fenced_blocks(SECTION)
NAMES = [name for entry in LAYOUT for name in ((entry,) if isinstance(entry, str) else entry)]


@pytest.fixture(scope="module")
def computed() -> dict[str, bytes]:
    """Every value, recomputed from the inputs as the document states them."""
    return compute(parse_inputs(BLOCKS[0]))


def documented() -> dict[str, str]:
    """Every value of the document's code blocks by name, as it is written there."""
    assert len(BLOCKS) == len(LAYOUT), "Appendix B has another number of code blocks"
    values: dict[str, str] = {}
    for block, entry in zip(BLOCKS, LAYOUT, strict=True):
        values |= parse_block(block, entry)
    return values


def test_the_inputs_are_the_generators() -> None:
    assert parse_inputs(BLOCKS[0]) == DEFAULT_INPUTS


@pytest.mark.parametrize(("name", "label"), SEED_LABELS.items())
def test_each_seed_is_the_hash_the_appendix_names(name: str, label: bytes) -> None:
    assert f"`{label.decode()}`" in SECTION
    assert documented()[name] == hashlib.blake2b(label).digest()[:32].hex() == seed_of(label).hex()
    assert parse_seed(seed_of(label)) == seed_of(label), "the public API takes it"


def test_counting_seeds_are_refused() -> None:
    """Why the seeds of earlier revisions (000102…1f and so on) had to go."""
    for start in (0x00, 0x20, 0x40):
        with pytest.raises(WeakSeedError, match="structured"):
            parse_seed(bytes(range(start, start + 32)))


@pytest.mark.parametrize("name", NAMES)
def test_value(name: str, computed: dict[str, bytes]) -> None:
    shown = documented()[name]
    if name == "timestamp t":
        assert int(shown) == DEFAULT_INPUTS.timestamp_ns
    elif name == "capabilities":
        assert shown == f"{DEFAULT_INPUTS.capabilities} (both)"
    elif name == "INIT payload":  # its first 32 bytes; the rest is zero padding
        assert shown == computed[name][:32].hex()
    else:
        assert shown == computed[name].hex()


def test_the_blocks_are_verbatim(computed: dict[str, bytes]) -> None:
    """Down to the layout: ``python -m tests.core.appendix_b --write`` would change nothing."""
    assert blocks(computed, parse_inputs(BLOCKS[0])) == BLOCKS


def test_the_hex_quoted_in_the_prose(computed: dict[str, bytes]) -> None:
    """INIT's mac1, and the frames of the message and ACK records (decrypted)."""
    assert prose_hex(SECTION) == inline_hex(computed)
    assert computed["message frames"].hex() == "07020000060568656c6c6f"
    assert computed["ACK frames"].hex() == "06004c350000"


def test_against_hashlib_and_libsodium() -> None:
    """The §2 derivations, REKEY and the records, from the document's hex with other code than
    ours: hashlib's BLAKE2b and libsodium's X25519 and ChaCha20-Poly1305."""
    decimal = ("timestamp t", "capabilities")
    doc = {name: bytes.fromhex(v) for name, v in documented().items() if name not in decimal}

    def kdf(seed: bytes, label: bytes) -> bytes:  # §2.2; every seed here is 32 bytes
        return hashlib.blake2b(label, digest_size=32, key=seed, person=b"seigr-stt-kdf-v1").digest()

    for side, seed in (("I", "node_seed (initiator)"), ("R", "node_seed (responder)")):
        private = kdf(doc[seed], b"static-x25519")
        public = bindings.crypto_scalarmult_base(private)
        assert doc[f"static private ({side})"] == private
        assert doc[f"static public  ({side})"] == public
        assert doc[f"node_id        ({side})"] == kdf(public, b"node-id")
    for name, label in (
        ("psk", b"noise-psk"),
        ("mac1_key", b"mac1"),
        ("cookie_key", b"cookie-reply"),
    ):
        assert doc[name] == kdf(doc["shared_seed"], label)
    for side, role in (("I", "initiator"), ("R", "responder")):
        ephemeral = doc[f"{role} e (private)"]
        assert doc[f"e public ({side})"] == bindings.crypto_scalarmult_base(ephemeral)
    k1, k2, h = doc["k1 (initiator->resp)"], doc["k2 (resp->initiator)"], doc["handshake hash"]
    assert doc["exporter_0"] == kdf(k1 + k2, b"exporter" + h)  # §2.3, from h and Split()
    assert doc["session_key epoch 0"] == kdf(doc["exporter_0"], b"session-key")
    # §7.1: the DH ratchet's epoch 2, with hashlib's HMAC-BLAKE2b for Noise's HKDF.
    dh = bindings.crypto_scalarmult(doc["ratchet e (I, private)"], doc["ratchet E (R)"])
    assert dh == bindings.crypto_scalarmult(doc["ratchet e (R, private)"], doc["ratchet E (I)"])
    assert doc["ratchet dh"] == dh

    def mix(chain: bytes, secret: bytes) -> bytes:  # HKDF(chain, secret, 2)[0][0:32]
        temp = hmac.new(chain, secret, hashlib.blake2b).digest()
        return hmac.new(temp, b"\x01", hashlib.blake2b).digest()[:32]

    exporter_2 = mix(kdf(kdf(doc["exporter_0"], b"next-epoch"), b"next-epoch"), dh)
    assert doc["session_key epoch 2"] == kdf(exporter_2, b"session-key")
    assert doc["session_key epoch 1"] == kdf(kdf(doc["exporter_0"], b"next-epoch"), b"session-key")

    def chacha(key: bytes, counter: int, ad: bytes, data: bytes, *, seal: bool) -> bytes:
        nonce = bytes(4) + counter.to_bytes(8, "little")
        op = (
            bindings.crypto_aead_chacha20poly1305_ietf_encrypt
            if seal
            else (bindings.crypto_aead_chacha20poly1305_ietf_decrypt)
        )
        return bytes(op(data, ad, nonce, key))

    k1, k2 = doc["k1 (initiator->resp)"], doc["k2 (resp->initiator)"]
    assert doc["REKEY(k1)"] == chacha(k1, 2**64 - 1, b"", bytes(32), seal=True)[:32]
    for name, key, frames in (
        ("confirmation record", k2, ""),
        ("message record", k1, "07020000060568656c6c6f"),
        ("ACK record", k2, "06004c350000"),
    ):
        record = doc[name]
        counter = int.from_bytes(record[12:20], "big")
        plain = chacha(key, counter, record[:20], record[20:], seal=False)
        assert plain == bytes.fromhex(frames + "01").ljust(16, b"\0"), name
    assert (
        doc["INIT"][-32:-16]
        == hashlib.blake2b(doc["INIT"][:-32], digest_size=16, key=doc["mac1_key"]).digest()
    )


def test_sizes(computed: dict[str, bytes]) -> None:
    """The sizes the appendix (and Appendix A) state."""
    sizes = {"INIT": 256, "RESPONSE": 160, "FINAL": 125, "INIT payload": 168}
    sizes |= dict.fromkeys(("confirmation record", "message record", "ACK record"), 52)
    sizes |= dict.fromkeys(appendix_b.ROTATION_NAMES, 52)
    sizes |= dict.fromkeys(appendix_b.RATCHET_NAMES, 52)
    sizes |= dict.fromkeys(appendix_b.RATCHET_NAMES[:2], 84)  # a 34-byte ratchet frame
    assert {name: len(computed[name]) for name in sizes} == sizes


def test_write_restores_the_appendix(tmp_path: Path) -> None:
    text = DOC.read_text(encoding="utf-8")
    stale = text.replace(BLOCKS[5], "00" * 125, 1)  # FINAL
    mac1 = inline_hex(compute())[0]
    stale = stale.replace(f"`{mac1}`", "`" + "ff" * 16 + "`", 1)
    assert stale != text
    copy = tmp_path / "protocol.md"
    copy.write_text(stale, encoding="utf-8")
    write(copy)
    assert copy.read_text(encoding="utf-8") == text


def test_main(capsys: pytest.CaptureFixture[str]) -> None:
    assert appendix_b.main([]) == 0
    out = capsys.readouterr().out
    assert all(f"```\n{block}\n```" in out for block in BLOCKS)
    assert appendix_b.main(["--bogus"]) == 2
