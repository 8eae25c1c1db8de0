"""The test vectors of ``docs/protocol.md`` Appendix B, recomputed from the appendix's inputs.

:func:`compute` follows the appendix's own recipe:

1. the handshake objects (:class:`InitiatorHandshake`, :class:`ResponderHandshake`) with the
   inputs, their ``rng`` returning the given ephemeral private keys;
2. the same handshake replayed through two in-memory :class:`Endpoint` objects (``NodeConfig()``
   defaults, a UDP link of record size 1232 without probing, time 0.0, ``rng`` scripted), which
   must send exactly the packets of step 1, then the responder's key-confirmation record;
3. the initiator endpoint sends the message ``hello`` on channel 0 (checked against a record sealed
   by hand from k1); the responder sends nothing at once, its timer is due at ``MAX_ACK_DELAY_S``,
   and then it sends the ACK record.

:func:`blocks` renders the appendix's code blocks, and :func:`inline_hex` the hex values its prose
quotes, both in the order of the document; ``tests/core/test_appendix_b.py`` checks that the
document holds exactly these. To regenerate the appendix after a deliberate change::

    .venv/bin/python -m tests.core.appendix_b            # print the blocks
    .venv/bin/python -m tests.core.appendix_b --write    # rewrite them in docs/protocol.md

``--write`` replaces only the code blocks and the quoted hex values of Appendix B, in order; the
prose around them is left to the author.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path

import msgpack

from seigr_stt.config import NodeConfig
from seigr_stt.constants import (
    ACK_DELAY_EXPONENT,
    HANDSHAKE_INIT_HEADER_SIZE,
    MAC_BYTES,
    MAX_ACK_DELAY_S,
    NOISE_PROTOCOL_NAME,
    PROLOGUE,
    PROTOCOL_VERSION_NAME,
    UDP_MAX_RECORD_SIZE,
)
from seigr_stt.core import crypto
from seigr_stt.core.endpoint import Endpoint
from seigr_stt.core.frames import Ack, Stream, parse_frames, serialize_frames
from seigr_stt.core.handshake import InitiatorHandshake, ResponderHandshake
from seigr_stt.core.identity import NodeIdentity, SharedSecrets
from seigr_stt.core.keys import KeySchedule
from seigr_stt.core.link import Link, TransportKind
from seigr_stt.core.noise import HandshakeState, rekey
from seigr_stt.core.record import open_record, pack_header, parse_header, seal_record

__all__ = [
    "DEFAULT_INPUTS",
    "DOC",
    "LAYOUT",
    "SEED_LABELS",
    "Inputs",
    "ScriptedRng",
    "blocks",
    "compute",
    "doc_section",
    "fenced_blocks",
    "inline_hex",
    "main",
    "parse_block",
    "parse_inputs",
    "prose_hex",
    "seed_of",
    "vectors_json",
    "write",
]

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
JSON = Path(__file__).resolve().parents[1] / "vectors" / "stt_1_1.json"
HEADING = "## Appendix B: test vectors"

#: The seeds are the first 32 bytes of BLAKE2b-512 of these texts: fixed, reproducible by
#: anyone, and random-looking enough to pass the seed check (``parse_seed``), which refuses
#: counting seeds such as ``bytes(range(32))``.
SEED_LABELS = {
    "node_seed (initiator)": b"seigr_stt appendix B node seed I",
    "node_seed (responder)": b"seigr_stt appendix B node seed R",
    "shared_seed": b"seigr_stt appendix B shared seed",
}

MESSAGE = b"hello"
CHANNEL = 0
WIDTH = 64  # hex digits per line in the code blocks


def seed_of(label: bytes) -> bytes:
    """The first 32 bytes of ``BLAKE2b-512(label)`` (unkeyed, default parameters)."""
    return hashlib.blake2b(label).digest()[:32]


@dataclass(frozen=True)
class Inputs:
    """Everything the vectors depend on (the appendix's "Inputs" block)."""

    node_seed_i: bytes
    node_seed_r: bytes
    shared_seed: bytes
    ephemeral_i: bytes
    ephemeral_r: bytes
    index_i: bytes
    index_r: bytes
    timestamp_ns: int
    capabilities: int
    ratchet_i: bytes = bytes.fromhex("33" * 31 + "03")
    ratchet_r: bytes = bytes.fromhex("44" * 31 + "04")


DEFAULT_INPUTS = Inputs(
    node_seed_i=seed_of(SEED_LABELS["node_seed (initiator)"]),
    node_seed_r=seed_of(SEED_LABELS["node_seed (responder)"]),
    shared_seed=seed_of(SEED_LABELS["shared_seed"]),
    ephemeral_i=bytes.fromhex("11" * 31 + "01"),
    ephemeral_r=bytes.fromhex("22" * 31 + "02"),
    index_i=bytes.fromhex("0a0b0c0d"),
    index_r=bytes.fromhex("01020304"),
    timestamp_ns=1_700_000_000_000_000_000,
    capabilities=0,
)

# The labels of the appendix's labelled blocks, in order; a name not listed here is a block of
# its own (a packet or record in hex lines).
INPUT_LABELS = (
    "node_seed (initiator)",
    "node_seed (responder)",
    "shared_seed",
    "initiator e (private)",
    "responder e (private)",
    "initiator index",
    "responder index",
    "timestamp t",
    "capabilities",
    "ratchet e (I, private)",
    "ratchet e (R, private)",
)
DERIVED_LABELS = (
    "static private (I)",
    "static public  (I)",
    "node_id        (I)",
    "static private (R)",
    "static public  (R)",
    "node_id        (R)",
    "psk",
    "mac1_key",
    "cookie_key",
    "e public (I)",
    "e public (R)",
)
RESULT_LABELS = (
    "session id",
    "k1 (initiator->resp)",
    "k2 (resp->initiator)",
    "exporter_0",
    "handshake hash",
    "session_key epoch 0",
    "session_key epoch 1",
    "REKEY(k1)",
)
ROTATION_NAMES = ("rotation record 1 (I)", "rotation record 2 (R)", "rotation record 3 (I)")
RATCHET_NAMES = (
    "RATCHET_INIT record (I)",
    "RATCHET_REPLY record (R)",
    "ratchet record 3 (I)",
    "ratchet record 4 (R)",
    "ratchet record 5 (I)",
)
RATCHET_LABELS = ("ratchet E (I)", "ratchet E (R)", "ratchet dh", "session_key epoch 2")
#: The appendix's code blocks in order: a tuple of labels, or the name of one hex value.
LAYOUT: tuple[tuple[str, ...] | str, ...] = (
    INPUT_LABELS,
    DERIVED_LABELS,
    "INIT payload",
    "INIT",
    "RESPONSE",
    "FINAL",
    RESULT_LABELS,
    "confirmation record",
    "message record",
    "ACK record",
    *ROTATION_NAMES,
    RATCHET_LABELS,
    *RATCHET_NAMES,
)
#: The hex values the prose quotes in backticks, in order.
INLINE = ("INIT mac1", "message frames", "ACK frames")


# -- computing ----------------------------------------------------------------------------------
class ScriptedRng:
    """An ``rng`` returning the scripted values in order; each call must ask for the size the
    script expects, so a change in what the code draws, or when, fails loudly."""

    def __init__(self, name: str, script: list[tuple[int, bytes]]) -> None:
        self.name = name
        self.left = deque(script)

    def __call__(self, n: int) -> bytes:
        assert self.left, f"{self.name}: rng({n}) called after the script ran out"
        size, value = self.left.popleft()
        assert size == n, f"{self.name}: rng({n}) called where the script expects rng({size})"
        return value


def _drain(endpoint: Endpoint, now: float, what: str, count: int = 1) -> list[bytes]:
    packets = [packet for packet, _ in endpoint.datagrams_to_send(now)]
    assert len(packets) == count, f"{what}: {len(packets)} packets sent, expected {count}"
    return packets


def _handshake(inputs: Inputs) -> dict[str, bytes]:
    """Step 1: the handshake objects alone."""
    initiator_id = NodeIdentity.from_seed(inputs.node_seed_i)
    responder_id = NodeIdentity.from_seed(inputs.node_seed_r)
    secrets = SharedSecrets.from_seed(inputs.shared_seed)
    initiator = InitiatorHandshake(
        initiator_id,
        secrets,
        inputs.index_i,
        capabilities=inputs.capabilities,
        timestamp_ns=inputs.timestamp_ns,
        rng=ScriptedRng("initiator", [(32, inputs.ephemeral_i)]),
    )
    init = initiator.init_packet()
    responder = ResponderHandshake(
        responder_id,
        secrets,
        inputs.index_r,
        init,
        capabilities=inputs.capabilities,
        rng=ScriptedRng("responder", [(32, inputs.ephemeral_r)]),
    )
    final = initiator.receive_response(responder.response_packet)
    mine, theirs = initiator.result, responder.receive_final(final)
    assert mine is not None
    assert (mine.session_id, mine.handshake_hash, mine.exporter) == (
        theirs.session_id,
        theirs.handshake_hash,
        theirs.exporter,
    ), "both sides agree on the session id, the handshake hash and exporter_0"
    assert (mine.send_key, mine.recv_key) == (theirs.recv_key, theirs.send_key)
    assert mine.peer_node_id == responder_id.node_id
    assert theirs.peer_node_id == initiator_id.node_id
    assert theirs.peer_timestamp_ns == inputs.timestamp_ns
    schedule = KeySchedule(mine.send_key, mine.recv_key, mine.exporter, 0.0)
    session_key_0 = schedule.session_key
    schedule.rotate(0.0)
    return {
        "static private (I)": initiator_id.static_private,
        "static public  (I)": initiator_id.static_public,
        "node_id        (I)": initiator_id.node_id,
        "static private (R)": responder_id.static_private,
        "static public  (R)": responder_id.static_public,
        "node_id        (R)": responder_id.node_id,
        "psk": secrets.psk,
        "mac1_key": secrets.mac1_key,
        "cookie_key": secrets.cookie_key,
        "e public (I)": crypto.public_key(inputs.ephemeral_i),
        "e public (R)": crypto.public_key(inputs.ephemeral_r),
        "INIT": init,
        "RESPONSE": responder.response_packet,
        "FINAL": final,
        "session id": mine.session_id,
        "k1 (initiator->resp)": mine.send_key,
        "k2 (resp->initiator)": mine.recv_key,
        "exporter_0": mine.exporter,
        "handshake hash": mine.handshake_hash,
        "session_key epoch 0": session_key_0,
        "session_key epoch 1": schedule.session_key,
        "REKEY(k1)": rekey(mine.send_key),
    }


def _init_payload(init: bytes, inputs: Inputs) -> bytes:
    """The INIT's Noise payload in clear. Message 1 (``-> e``) encrypts it under a key derived
    from ``e`` alone (no DH, no PSK yet), so any responder state opens it."""
    secrets = SharedSecrets.from_seed(inputs.shared_seed)
    responder_id = NodeIdentity.from_seed(inputs.node_seed_r)
    state = HandshakeState(
        NOISE_PROTOCOL_NAME,
        initiator=False,
        prologue=PROLOGUE,
        s=responder_id.static_private,
        psks=(secrets.psk,),
    )
    return state.read_message(init[HANDSHAKE_INIT_HEADER_SIZE : -2 * MAC_BYTES])


def _endpoints(inputs: Inputs, expected: dict[str, bytes]) -> dict[str, bytes]:
    """Steps 2 and 3: two endpoints exchange the handshake, then one message and its ACK."""
    initiator_id = NodeIdentity.from_seed(inputs.node_seed_i)
    responder_id = NodeIdentity.from_seed(inputs.node_seed_r)
    secrets = SharedSecrets.from_seed(inputs.shared_seed)
    link = Link(TransportKind.UDP, UDP_MAX_RECORD_SIZE)  # probe_max 0: no path-MTU probing
    addr_i: Hashable = ("192.0.2.1", 1000)
    addr_r: Hashable = ("192.0.2.2", 2000)
    rng_i = ScriptedRng(
        "initiator endpoint",
        [(32, bytes(32)), (4, inputs.index_i), (32, inputs.ephemeral_i), (2, bytes(2))],
    )
    rng_r = ScriptedRng(
        "responder endpoint", [(32, bytes(32)), (4, inputs.index_r), (32, inputs.ephemeral_r)]
    )
    config = NodeConfig(capabilities=inputs.capabilities)
    initiator = Endpoint(initiator_id, secrets, config, rng_i)
    responder = Endpoint(responder_id, secrets, config, rng_r)
    now = 0.0

    initiator.connect(addr_r, now, link=link, timestamp_ns=inputs.timestamp_ns, timeout_s=10.0)
    [init] = _drain(initiator, now, "INIT")
    assert init == expected["INIT"], "the endpoint's INIT differs from the handshake object's"
    responder.receive_datagram(init, addr_i, now, link)
    [response] = _drain(responder, now, "RESPONSE")
    assert response == expected["RESPONSE"], "the endpoint's RESPONSE differs"
    initiator.receive_datagram(response, addr_r, now, link)
    [final] = _drain(initiator, now, "FINAL")
    assert final == expected["FINAL"], "the endpoint's FINAL differs"
    responder.receive_datagram(final, addr_i, now, link)
    [confirmation] = _drain(responder, now, "key confirmation")
    initiator.receive_datagram(confirmation, addr_r, now, link)
    _drain(initiator, now, "the initiator after the confirmation", 0)
    assert not rng_i.left, "the initiator endpoint's rng script was not used up"
    assert not rng_r.left, "the responder endpoint's rng script was not used up"

    session_id = expected["session id"]
    sender, receiver = initiator.session(session_id), responder.session(session_id)
    assert sender.keys.session_key == receiver.keys.session_key == expected["session_key epoch 0"]
    sender.send_message(CHANNEL, MESSAGE, now)
    [message] = _drain(initiator, now, "the message")
    message_frames = serialize_frames(
        [Stream(2, 0, False, bytes([len(MESSAGE)]) + MESSAGE)]  # stream 2 = channel 0, ours
    )
    k1, k2 = expected["k1 (initiator->resp)"], expected["k2 (resp->initiator)"]
    by_hand = seal_record(crypto.make_aead(k1), pack_header(0, 0, session_id, 0), 0, message_frames)
    assert message == by_hand, "the message record differs from one sealed by hand from k1"

    responder.receive_datagram(message, addr_i, now, link)
    _drain(responder, now, "the responder at once", 0)
    assert responder.get_timer() == now + MAX_ACK_DELAY_S, "the ACK is due at MAX_ACK_DELAY_S"
    now += MAX_ACK_DELAY_S
    responder.handle_timer(now)
    [ack] = _drain(responder, now, "the ACK")
    delay = round(MAX_ACK_DELAY_S * 1e6) >> ACK_DELAY_EXPONENT  # 3125
    ack_frames = serialize_frames([Ack(delay, ((0, 0),))])
    assert _opened(k2, confirmation) == (0, b""), "the confirmation is counter 0, no frames"
    assert _opened(k1, message) == (0, message_frames)
    assert _opened(k2, ack) == (1, ack_frames), "the ACK record holds one ACK of counter 0"
    assert parse_frames(ack_frames) == [Ack(delay, ((0, 0),))]
    values = {
        "confirmation record": confirmation,
        "message record": message,
        "ACK record": ack,
        "message frames": message_frames,
        "ACK frames": ack_frames,
    }
    # Step 4: one hash rotation, started by the initiator at t = 1 s: three empty records.
    initiator.receive_datagram(ack, addr_r, now, link)
    now = ROTATION_AT
    sender.request_rotation(now)
    rotation = _until_quiet(initiator, responder, addr_i, addr_r, link, now)
    assert [who for who, _ in rotation] == ["I", "R", "I"], rotation
    for (who, record), (epoch, echo) in zip(rotation, [(1, 0), (1, 1), (1, 1)], strict=True):
        header = parse_header(record)
        assert (header.epoch, header.echo) == (epoch, echo), (who, header)
    assert sender.keys.session_key == receiver.keys.session_key == expected["session_key epoch 1"]
    values |= dict(zip(ROTATION_NAMES, (record for _, record in rotation), strict=True))
    # Step 5: one DH ratchet, started by the initiator at t = 2 s, its ephemeral keys scripted.
    rng_i.left.append((32, inputs.ratchet_i))
    rng_r.left.append((32, inputs.ratchet_r))
    now = RATCHET_AT
    sender.request_ratchet(now)
    ratchet = _until_quiet(initiator, responder, addr_i, addr_r, link, now)
    assert not rng_i.left, "the initiator drew exactly one ratchet key"
    assert not rng_r.left, "the responder drew exactly one ratchet key"
    assert sender.keys.session_key == receiver.keys.session_key
    assert sender.key_version == receiver.key_version == 2
    assert [who for who, _ in ratchet] == ["I", "R", "I", "R", "I"], ratchet
    shapes = [(1, 1, 3), (1, 1, 3), (2, 1, 4), (2, 2, 4), (2, 2, 5)]  # epoch, echo, counter
    for (_, record), shape in zip(ratchet, shapes, strict=True):
        header = parse_header(record)
        assert (header.epoch, header.echo, header.counter) == shape
    values |= dict(zip(RATCHET_NAMES, (record for _, record in ratchet), strict=True))
    values["session_key epoch 2"] = sender.keys.session_key
    return values


ROTATION_AT = 1.0
RATCHET_AT = 2.0


def _until_quiet(
    initiator: Endpoint,
    responder: Endpoint,
    addr_i: Hashable,
    addr_r: Hashable,
    link: Link,
    now: float,
) -> list[tuple[str, bytes]]:
    """Deliver every packet at once, both ways, and run the timers due within 1 s: every
    record sent, ``("I" | "R", record)``, in order."""
    sent: list[tuple[str, bytes]] = []
    end = now + 1.0
    while True:
        moved = False
        for who, source, target, addr in (
            ("I", initiator, responder, addr_i),
            ("R", responder, initiator, addr_r),
        ):
            for packet, _ in source.datagrams_to_send(now):
                sent.append((who, packet))
                target.receive_datagram(packet, addr, now, link)
                moved = True
        if moved:
            continue
        due = [t for t in (initiator.get_timer(), responder.get_timer()) if t is not None]
        if not due or min(due) > end:
            return sent
        now = max(now, min(due))
        initiator.handle_timer(now)
        responder.handle_timer(now)


def _opened(key: bytes, record: bytes) -> tuple[int, bytes]:
    """``(counter, frames)`` of a record of epoch 0 with echo 0."""
    header = parse_header(record)
    assert (header.epoch, header.echo) == (0, 0)
    return header.counter, open_record(crypto.make_aead(key), record, header.counter)


def compute(inputs: Inputs = DEFAULT_INPUTS) -> dict[str, bytes]:
    """Every value of the appendix by name (the labels of its blocks), from ``inputs``."""
    values: dict[str, bytes] = {
        "node_seed (initiator)": inputs.node_seed_i,
        "node_seed (responder)": inputs.node_seed_r,
        "shared_seed": inputs.shared_seed,
        "initiator e (private)": inputs.ephemeral_i,
        "responder e (private)": inputs.ephemeral_r,
        "initiator index": inputs.index_i,
        "responder index": inputs.index_r,
        "ratchet e (I, private)": inputs.ratchet_i,
        "ratchet e (R, private)": inputs.ratchet_r,
        "ratchet E (I)": crypto.public_key(inputs.ratchet_i),
        "ratchet E (R)": crypto.public_key(inputs.ratchet_r),
        "ratchet dh": crypto.dh(inputs.ratchet_i, crypto.public_key(inputs.ratchet_r)),
    }
    values |= _handshake(inputs)
    values["INIT payload"] = _init_payload(values["INIT"], inputs)
    values["INIT mac1"] = values["INIT"][-2 * MAC_BYTES : -MAC_BYTES]
    values |= _endpoints(inputs, values)
    return values


# -- rendering and parsing ----------------------------------------------------------------------
def _lines(hex_: str) -> list[str]:
    return [hex_[i : i + WIDTH] for i in range(0, len(hex_), WIDTH)]


def _labelled(labels: tuple[str, ...], values: dict[str, bytes], inputs: Inputs) -> str:
    width = max(map(len, labels)) + 2
    lines = []
    for label in labels:
        if label == "timestamp t":
            text = [str(inputs.timestamp_ns)]
        elif label == "capabilities":
            text = [f"{inputs.capabilities} (both)"]
        else:
            text = _lines(values[label].hex())
        lines.append(label.ljust(width) + text[0])
        lines += [" " * width + line for line in text[1:]]
    return "\n".join(lines)


def _payload_block(payload: bytes) -> str:
    shown = payload[: WIDTH // 2]
    assert payload[len(shown) :] == bytes(len(payload) - len(shown)), "the rest is padding"
    padding = len(msgpack.unpackb(payload)["p"])
    return (
        f"{shown.hex()}\n(followed by zero bytes to {len(payload)} bytes in all: "
        f"`p` is {padding} zero bytes)"
    )


def blocks(values: dict[str, bytes], inputs: Inputs = DEFAULT_INPUTS) -> list[str]:
    """The text of each code block of the appendix, in order (without the fences)."""
    out = []
    for entry in LAYOUT:
        if isinstance(entry, tuple):
            out.append(_labelled(entry, values, inputs))
        elif entry == "INIT payload":
            out.append(_payload_block(values[entry]))
        else:
            out.append("\n".join(_lines(values[entry].hex())))
    return out


def inline_hex(values: dict[str, bytes]) -> list[str]:
    """The hex values the appendix's prose quotes (in backticks), in order."""
    return [values[name].hex() for name in INLINE]


def doc_section(text: str) -> str:
    """Appendix B of the document: from its heading to the next ``## `` heading or the end."""
    start = text.index(HEADING)
    end = text.find("\n## ", start + len(HEADING))
    return text[start : len(text) if end < 0 else end + 1]


_FENCE = re.compile(r"^```[^\n]*\n(.*?)^```$", re.S | re.M)
_INLINE_HEX = re.compile(r"`([0-9a-f]{8,})`")


def fenced_blocks(section: str) -> list[str]:
    """The contents of the section's fenced code blocks, in order, without the final newline."""
    return [match.group(1).rstrip("\n") for match in _FENCE.finditer(section)]


def prose_hex(section: str) -> list[str]:
    """The backticked hex values (at least 8 digits, no spaces) outside the code blocks."""
    return _INLINE_HEX.findall(_FENCE.sub("", section))


def parse_block(block: str, entry: tuple[str, ...] | str) -> dict[str, str]:
    """The values of one code block by name: ``label  value`` lines (continued by indented
    lines) for a labelled block, else every line of hex digits joined."""
    if isinstance(entry, str):
        return {entry: "".join(line for line in block.splitlines() if _is_hex(line))}
    values: dict[str, str] = {}
    label = ""
    for line in block.splitlines():
        if line[:1].isspace():
            values[label] += line.strip()
            continue
        match = next((lbl for lbl in entry if re.match(re.escape(lbl) + r"\s", line)), None)
        assert match is not None, f"unknown label in line {line!r}"
        label = match
        values[label] = line[len(label) :].strip()
    return values


def _is_hex(line: str) -> bool:
    return bool(re.fullmatch(r"[0-9a-f]+", line))


def parse_inputs(block: str) -> Inputs:
    """The appendix's "Inputs" block as :class:`Inputs`."""
    values = parse_block(block, INPUT_LABELS)
    return Inputs(
        node_seed_i=bytes.fromhex(values["node_seed (initiator)"]),
        node_seed_r=bytes.fromhex(values["node_seed (responder)"]),
        shared_seed=bytes.fromhex(values["shared_seed"]),
        ephemeral_i=bytes.fromhex(values["initiator e (private)"]),
        ephemeral_r=bytes.fromhex(values["responder e (private)"]),
        index_i=bytes.fromhex(values["initiator index"]),
        index_r=bytes.fromhex(values["responder index"]),
        timestamp_ns=int(values["timestamp t"]),
        capabilities=int(values["capabilities"].split()[0]),
        ratchet_i=bytes.fromhex(values["ratchet e (I, private)"]),
        ratchet_r=bytes.fromhex(values["ratchet e (R, private)"]),
    )


def write(path: Path = DOC, inputs: Inputs = DEFAULT_INPUTS) -> None:
    """Rewrite the code blocks and quoted hex values of Appendix B in ``path``, in order."""
    text = path.read_text(encoding="utf-8")
    section = doc_section(text)
    count = len(fenced_blocks(section))
    assert count == len(LAYOUT), f"Appendix B has {count} code blocks, expected {len(LAYOUT)}"
    values = compute(inputs)
    new_blocks = iter(blocks(values, inputs))
    new_inline = iter(inline_hex(values))
    pieces = []
    last = 0
    for match in _FENCE.finditer(section):
        prose = _INLINE_HEX.sub(lambda m: f"`{next(new_inline)}`", section[last : match.start(1)])
        pieces.append(prose + next(new_blocks) + "\n")
        last = match.end(1)
    pieces.append(_INLINE_HEX.sub(lambda m: f"`{next(new_inline)}`", section[last:]))
    path.write_text(text.replace(section, "".join(pieces), 1), encoding="utf-8")


def vectors_json(values: dict[str, bytes], inputs: Inputs = DEFAULT_INPUTS) -> str:
    """Every value of the appendix as a JSON document (hex strings; two decimal inputs)."""
    body: dict[str, object] = {
        "protocol": PROTOCOL_VERSION_NAME,
        "source": "docs/protocol.md Appendix B; regenerate: python -m tests.core.appendix_b --json",
        "timestamp t": inputs.timestamp_ns,
        "capabilities": inputs.capabilities,
    }
    body |= {name: values[name].hex() for name in sorted(values)}
    return json.dumps(body, indent=1) + "\n"


def main(argv: list[str]) -> int:
    """Print the appendix's code blocks; ``--write`` puts them into the document, ``--json``
    writes ``tests/vectors/stt_1_1.json``."""
    if argv == ["--write"]:
        write()
        return 0
    if argv == ["--json"]:
        JSON.write_text(vectors_json(compute()), encoding="utf-8")
        return 0
    if argv:
        print("usage: python -m tests.core.appendix_b [--write | --json]", file=sys.stderr)
        return 2
    values = compute()
    for block in blocks(values):
        print(f"```\n{block}\n```\n")
    print("Quoted in the prose, in order:", ", ".join(f"`{h}`" for h in inline_hex(values)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
