"""Hostile input at the core level (``reliability.md`` cases 1–7, 11–13, 15).

Every case checks the same four things: no exception escapes ``receive_datagram``; no state
changes (the endpoint's tables and every session's counters, keys, epochs and replay window);
nothing is sent back (a cookie is the only reply an unauthenticated packet may get); and exactly
one drop counter moves, with the expected reason.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seigr_stt.config import NodeConfig
from seigr_stt.constants import (
    CLOSE_PROTOCOL_ERROR,
    HANDSHAKE_INIT_HEADER_SIZE,
    HANDSHAKE_REPLY_HEADER_SIZE,
    INIT_REPLAY_WINDOW_S,
    MAC_BYTES,
    PROTOCOL_VERSION,
    RECORD_HEADER_SIZE,
    REJECT_AFTER_MESSAGES,
    REPLAY_WINDOW_PACKETS,
    VERSION_NEGOTIATION,
)
from seigr_stt.core import crypto, handshake
from seigr_stt.core.events import (
    DatagramReceived,
    HandshakeAborted,
    KeyRotated,
    MessageReceived,
    SessionClosed,
    SessionEstablished,
)
from seigr_stt.core.frames import (
    Ack,
    Close,
    Datagram,
    Frame,
    MaxData,
    MaxStreamData,
    MaxStreams,
    Ping,
    Pong,
    ResetStream,
    StopSending,
    Stream,
    serialize_frames,
)
from seigr_stt.core.handshakes import versions_packet
from seigr_stt.core.noise import rekey
from seigr_stt.core.record import parse_header
from seigr_stt.core.session import Session
from tests.core.net import (
    COOKIE,
    DATA,
    FINAL,
    INIT,
    RESPONSE,
    Net,
    Node,
    Pair,
    authentic_record,
    craft_init,
    dgram,
    endpoint_snapshot,
    init_payload,
    make_pair,
)
from tests.core.test_handshake import LOW_ORDER_POINTS
from tests.profiles import scaled

Reasons = str | set[str]


def quiet_drop(node: Node, data: bytes, reasons: Reasons, *, src: Hashable = "A") -> str:
    """Feed ``data`` to ``node`` and check it was dropped without a trace; return the reason."""
    ep = node.endpoint
    now = node.now
    before = endpoint_snapshot(ep)
    drops_before = Counter(ep.drops)
    ep.receive_datagram(data, src, now, node.link)
    assert ep.datagrams_to_send(now) == []
    assert list(ep.events_received()) == []
    assert endpoint_snapshot(ep) == before
    moved = ep.drops - drops_before
    assert sum(moved.values()) == 1, moved
    [reason] = moved
    expected = {reasons} if isinstance(reasons, str) else reasons
    assert reason in expected, (reason, expected)
    return reason


@dataclass
class Scene:
    """An established pair with every kind of packet captured from its history."""

    pair: Pair
    init: bytes
    response: bytes
    final: bytes
    cookie: bytes
    a_records: list[bytes]  # a -> b, already delivered
    b_records: list[bytes]  # b -> a, already delivered

    def valid_packets(self) -> list[tuple[str, bytes]]:
        """(intended receiver, packet) for every captured packet."""
        return [
            ("B", self.init),
            ("A", self.response),
            ("B", self.final),
            ("A", self.cookie),
            *(("B", r) for r in self.a_records),
            *(("A", r) for r in self.b_records),
        ]


def captured_cookie() -> bytes:
    net = Net(seed=99)
    a = net.add_node("A")
    b = net.add_node("B", config=NodeConfig(handshake_load_threshold=1, handshake_half_open_max=4))
    ghost = net.add_node("ghost")
    net.connect(ghost, b)
    net.kill(ghost)
    net.run(0.0)
    net.connect(a, b)
    net.run(0.0)
    [reply] = net.sent_by(b, COOKIE)
    return reply.data


def build_scene() -> Scene:
    pair = make_pair()
    net = pair.net
    for i in range(4):
        pair.send(pair.a, b"a%d" % i * (i * 100))
        pair.send(pair.b, b"b%d" % i)
        pair.a.endpoint.session(pair.sid).send_datagram(b"dgram", net.now)
        net.flush()
    net.run(0.0)

    def one(ptype: int) -> bytes:
        [packet] = [p.data for p in net.log if p.type == ptype]
        return packet

    return Scene(
        pair,
        init=one(INIT),
        response=one(RESPONSE),
        final=one(FINAL),
        cookie=captured_cookie(),
        a_records=[p.data for p in net.sent_by(pair.a, DATA) if p.fate == "delivered"],
        b_records=[p.data for p in net.sent_by(pair.b, DATA) if p.fate == "delivered"],
    )


@pytest.fixture
def scene() -> Scene:
    return build_scene()


@functools.cache
def shared_scene() -> Scene:
    """One scene for the property tests: dropped packets change nothing, so it stays valid."""
    return build_scene()


def node(scene: Scene, name: str) -> Node:
    return scene.pair.a if name == "A" else scene.pair.b


# -- 1. truncated, one byte short / long -------------------------------------------------------
def truncation_reasons(ptype: int, length: int) -> set[str]:
    if length < 2:
        return {"short"}
    if ptype == DATA:
        return {"short"} if length < RECORD_HEADER_SIZE else {"malformed", "replay", "auth"}
    if ptype == INIT:
        return {"size", "mac1"}
    if ptype in (RESPONSE, FINAL):
        return {"size"} if length < HANDSHAKE_REPLY_HEADER_SIZE + 2 * MAC_BYTES else {"mac1"}
    return {"size"}


@pytest.mark.parametrize("kind", ["init", "response", "final", "cookie", "a_record", "b_record"])
def test_truncated_packets_of_every_length(scene: Scene, kind: str) -> None:
    held = {
        "a_record": authentic_record(scene.pair.sa, dgram(b"held back")),
        "b_record": authentic_record(scene.pair.sb, dgram(b"held back")),
    }
    target, packet = {
        "init": ("B", scene.init),
        "response": ("A", scene.response),
        "final": ("B", scene.final),
        "cookie": ("A", scene.cookie),
        "a_record": ("B", held["a_record"]),
        "b_record": ("A", held["b_record"]),
    }[kind]
    ptype = packet[1]
    header_sizes: dict[int, int] = {
        INIT: HANDSHAKE_INIT_HEADER_SIZE,
        RESPONSE: HANDSHAKE_REPLY_HEADER_SIZE,
        FINAL: HANDSHAKE_REPLY_HEADER_SIZE,
        COOKIE: 8,
        DATA: RECORD_HEADER_SIZE,
    }
    header = header_sizes[ptype]
    lengths = set(range(header + 16 + 1)) | {len(packet) - 1} | set(range(0, len(packet), 7))
    for length in sorted(lengths):
        quiet_drop(node(scene, target), packet[:length], truncation_reasons(ptype, length))
    long_reasons = {"mac1"} if ptype in (INIT, RESPONSE, FINAL) else {"size", "malformed"}
    for extra in (b"\x00", b"\xff", bytes(16)):
        reason = quiet_drop(node(scene, target), packet + extra, long_reasons | {"auth"})
        if ptype != DATA or len(extra) != 16:
            assert reason in long_reasons


def test_truncations_of_the_held_records_left_them_deliverable(scene: Scene) -> None:
    record = authentic_record(scene.pair.sa, dgram(b"still good"))
    for length in range(len(record)):
        quiet_drop(scene.pair.b, record[:length], {"short", "malformed", "auth"})
    scene.pair.net.inject(scene.pair.b, record, "A")
    assert scene.pair.b.events_of(DatagramReceived)[-1].data == b"still good"
    assert scene.pair.sb.keys.replay.highest == parse_header(record).counter


# -- 2. unknown, closed, other session ---------------------------------------------------------
def test_unknown_session_id(scene: Scene) -> None:
    record = scene.a_records[0]
    for sid in (bytes(8), b"\xff" * 8, scene.pair.sid[::-1]):
        quiet_drop(scene.pair.b, record[:4] + sid + record[12:], "unknown_session")


def test_closed_session_id(net: Net) -> None:
    a, b = net.add_node("A"), net.add_node("B")
    live = net.establish(a, b)
    doomed = net.establish(a, b)
    straggler = authentic_record(a.session(doomed), dgram(b"late"))
    b.endpoint.session(doomed).close(0, "", net.now)
    net.flush()
    net.run(1.0)
    assert set(b.endpoint.sessions) == {live}
    quiet_drop(b, straggler, "tombstone")


def test_a_valid_record_of_another_session(net: Net) -> None:
    a, b, c = net.add_node("A"), net.add_node("B"), net.add_node("C")
    ab = net.establish(a, b)
    cb = net.establish(c, b)
    record = authentic_record(c.session(cb), dgram(b"for the c-b session"))
    quiet_drop(b, record[:4] + ab + record[12:], "auth", src="C")
    quiet_drop(b, record[:4] + ab + record[12:], "auth", src="A")
    net.inject(b, record, "C")  # the genuine one still works where it belongs
    assert b.events_of(DatagramReceived)[-1].data == b"for the c-b session"


# -- 3. / 4. replays and reordering ------------------------------------------------------------
def test_replayed_records(scene: Scene) -> None:
    for record in scene.a_records:
        quiet_drop(scene.pair.b, record, "replay")
    for record in scene.b_records:
        quiet_drop(scene.pair.a, record, "replay", src="B")


def test_replay_after_rotation_and_after_grace(scene: Scene) -> None:
    pair = scene.pair
    pair.a.endpoint.session(pair.sid).request_rotation(pair.net.now)
    pair.net.flush()
    pair.net.run(0.0)
    assert pair.sb.keys.recv_epoch == 1
    for record in scene.a_records:  # epoch 0: the previous key, still in its grace period
        quiet_drop(pair.b, record, "replay")
    pair.net.run(10.0)
    for record in scene.a_records:  # the previous key is gone
        quiet_drop(pair.b, record, "epoch")


def test_reordering_within_the_window_accepted_once(pair: Pair) -> None:
    records = [authentic_record(pair.sa, b"") for _ in range(200)]
    order = list(range(200))
    pair.net.random.shuffle(order)
    for i in order:
        assert pair.net.inject(pair.b, records[i], "A") == []
    assert pair.b.endpoint.drops == {}
    assert pair.sb.counters.packets_received == 200
    for i in order:
        quiet_drop(pair.b, records[i], "replay")


def test_older_than_the_window_dropped_before_decrypting(pair: Pair) -> None:
    old = authentic_record(pair.sa, dgram(b"old"))
    high = REPLAY_WINDOW_PACKETS + 100
    pair.net.inject(pair.b, authentic_record(pair.sa, b"", counter=high), "A")
    assert pair.sb.keys.replay.highest == high
    counter = parse_header(old).counter
    assert high - counter >= REPLAY_WINDOW_PACKETS
    quiet_drop(pair.b, old, "replay")
    # A record with a bad tag is refused as "replay", not "auth": the AEAD never ran.
    edge = authentic_record(pair.sa, b"", counter=high - REPLAY_WINDOW_PACKETS)
    quiet_drop(pair.b, edge[:-1] + bytes([edge[-1] ^ 1]), "replay")
    assert pair.sb.counters.auth_failures == 0
    inside = authentic_record(pair.sa, b"", counter=high - REPLAY_WINDOW_PACKETS + 1)
    assert pair.net.inject(pair.b, inside, "A") == []
    assert pair.b.endpoint.drops == {"replay": 2}


# -- 5. counter at or beyond the reject limit -----------------------------------------------
@pytest.mark.parametrize(
    "counter", [REJECT_AFTER_MESSAGES, REJECT_AFTER_MESSAGES + 1, (1 << 64) - 1]
)
def test_counter_at_or_beyond_the_reject_limit(pair: Pair, counter: int) -> None:
    quiet_drop(pair.b, authentic_record(pair.sa, b"", counter=counter), "replay")
    assert pair.sb.counters.auth_failures == 0


def test_counter_just_below_the_reject_limit_is_accepted(pair: Pair) -> None:
    pair.net.inject(pair.b, authentic_record(pair.sa, b"", counter=REJECT_AFTER_MESSAGES - 1), "A")
    assert pair.b.endpoint.drops == {}
    assert pair.sb.keys.replay.highest == REJECT_AFTER_MESSAGES - 1


# -- 6. every single-bit flip ----------------------------------------------------------------
def flip_bit(data: bytes, bit: int) -> bytes:
    i = bit // 8
    return data[:i] + bytes([data[i] ^ (1 << (bit % 8))]) + data[i + 1 :]


def expected_flip_reason(record: bytes, bit: int, counter: int) -> str:
    byte, k = divmod(bit, 8)
    if byte == 0:
        return "version"
    if byte == 1:
        return {0: "size", 2: "size"}.get(k, "type")  # 5^1 = cookie, 5^4 = INIT: wrong sizes
    if byte == 2:
        return "auth" if k == 0 else "epoch"  # epoch 1 selects the next key; others none
    if 4 <= byte < 12:
        return "unknown_session"
    if 12 <= byte < 20:
        flipped = counter ^ (1 << (8 * (19 - byte) + k))
        return "replay" if flipped < counter else "auth"  # every lower counter was seen
    return "auth"  # echo byte, ciphertext, tag


def test_every_single_bit_flip_of_a_record(pair: Pair) -> None:
    for _ in range(5):
        pair.net.inject(pair.b, authentic_record(pair.sa, b""), "A")
    record = authentic_record(pair.sa, b"")
    assert len(record) == 52
    counter = parse_header(record).counter
    assert counter == 5
    seen: Counter[str] = Counter()
    for bit in range(len(record) * 8):
        seen[
            quiet_drop(pair.b, flip_bit(record, bit), expected_flip_reason(record, bit, counter))
        ] += 1
    assert seen == {
        "version": 8,
        "size": 2,
        "type": 6,
        "auth": 1 + 8 + 8 * 32 + 62,
        "epoch": 7,
        "unknown_session": 64,
        "replay": 2,
    }
    assert pair.sb.counters.auth_failures == seen["auth"]
    pair.net.inject(pair.b, record, "A")  # the original is still good
    assert pair.sb.keys.replay.highest == counter
    assert set(pair.b.endpoint.drops) == set(seen)


# -- 7. epoch abuse --------------------------------------------------------------------------
def sending_key(session: Session) -> bytes:
    """The session's current send key. Forging a record of a later epoch needs the key itself,
    and the key schedule exposes none by design: read its private slot."""
    slot = session.keys._send
    assert slot is not None
    return slot.key


def test_skipped_epochs_are_dropped(pair: Pair) -> None:
    base = sending_key(pair.sa)
    key = base
    for skipped in range(2, 6):
        key = rekey(key)
        quiet_drop(pair.b, authentic_record(pair.sa, b"", epoch=skipped, key=rekey(key)), "epoch")
    quiet_drop(pair.b, authentic_record(pair.sa, b"", epoch=2, key=rekey(base)), "epoch")
    quiet_drop(pair.b, authentic_record(pair.sa, b"", epoch=255), "epoch")  # no previous key
    assert pair.sb.counters.epoch_drops == 6


def test_next_epoch_with_a_bad_tag_does_not_promote(pair: Pair) -> None:
    base = sending_key(pair.sa)
    genuine = authentic_record(pair.sa, b"", epoch=1, key=rekey(base))
    for bit in (len(genuine) * 8 - 1, 200, 8 * 3):  # tag, ciphertext, echo byte
        quiet_drop(pair.b, flip_bit(genuine, bit), "auth")
    wrong_key = authentic_record(pair.sa, b"", epoch=1, key=base)
    quiet_drop(pair.b, wrong_key, "auth")
    assert pair.sb.keys.recv_epoch == 0
    assert pair.sb.key_version == 0
    pair.net.inject(pair.b, genuine, "A")
    assert pair.sb.keys.recv_epoch == 1
    assert pair.sb.key_version == 1


def test_forged_echo(pair: Pair) -> None:
    # Unauthenticated: changing the echo byte breaks the tag.
    record = authentic_record(pair.sb, b"")
    quiet_drop(pair.a, record[:3] + b"\x01" + record[4:], "auth", src="B")
    # Authenticated but bogus (the peer echoes an epoch we never sent): ignored.
    pair.a.endpoint.session(pair.sid).request_rotation(pair.net.now)
    pair.net.drop(lambda p: True, times=1)  # our epoch-1 record never reaches b
    pair.net.flush()
    assert pair.sa.keys.rotation_pending
    pair.net.inject(pair.a, authentic_record(pair.sb, b"", echo=2), "B")
    assert pair.sa.keys.peer_echo == 0
    assert pair.sa.keys.rotation_pending
    assert pair.a.events_of(KeyRotated) == []


# -- handshake replies tampered by a member (mac1 recomputed) ----------------------------------
def remac(node: Node, packet: bytes) -> bytes:
    """``packet`` with a correct mac1 again (what a holder of the shared seed can do)."""
    body = packet[: -2 * MAC_BYTES]
    return body + crypto.mac(node.endpoint.secrets.mac1_key, body) + packet[-MAC_BYTES:]


def test_tampered_response_with_a_valid_mac1(net: Net) -> None:
    a, b = net.add_node("A"), net.add_node("B")
    net.drop(lambda p: p.type == RESPONSE)
    net.connect(a, b)
    net.run(0.0)
    [response] = net.sent_by(b, RESPONSE)
    for offset in (12, 13, 43, 44, 60, len(response.data) - 33):
        tampered = bytearray(response.data)
        tampered[offset] ^= 0x04
        quiet_drop(a, remac(a, bytes(tampered)), "handshake_auth", src="B")
    quiet_drop(
        a,
        remac(a, response.data[:8] + b"\x00\x00\x00\x01" + response.data[12:]),
        "unknown_index",
        src="B",
    )
    net.deliver_held(response)  # the genuine one still completes the handshake
    net.run(0.0)
    assert len(a.events_of(SessionEstablished)) == 1


def test_response_with_a_forged_clear_index_does_not_spoil_the_handshake(net: Net) -> None:
    a, b = net.add_node("A"), net.add_node("B")
    net.drop(lambda p: p.type == RESPONSE)
    net.connect(a, b)
    net.run(0.0)
    [response] = net.sent_by(b, RESPONSE)
    forged = remac(a, response.data[:4] + b"\x99\x99\x99\x99" + response.data[8:])
    quiet_drop(a, forged, "payload", src="B")
    net.deliver_held(response)
    net.run(0.0)
    assert len(a.events_of(SessionEstablished)) == 1


def test_tampered_final_with_a_valid_mac1(net: Net) -> None:
    a, b = net.add_node("A"), net.add_node("B")
    net.drop(lambda p: p.type == FINAL)
    net.connect(a, b)
    net.run(0.0)
    [final] = net.sent_by(a, FINAL)
    for offset in (12, 40, 60, len(final.data) - 33):
        tampered = bytearray(final.data)
        tampered[offset] ^= 0x10
        quiet_drop(b, remac(b, bytes(tampered)), "handshake_auth")
    net.deliver_held(final)
    net.run(0.0)
    assert len(b.events_of(SessionEstablished)) == 1
    assert len(a.events_of(SessionEstablished)) == 1


# -- 11. version byte changed, prologue mismatch --------------------------------------------
@pytest.mark.parametrize("version", [0, 1, 3, 0x81, 0xFF])
def test_version_byte_changed(scene: Scene, version: int) -> None:
    for target, packet in scene.valid_packets():
        quiet_drop(node(scene, target), bytes([version]) + packet[1:], "version")
    # With a correct mac1 over the changed header, an INIT of another version is refused too,
    # and answered with one VERSIONS packet (§19): no DH, no state, smaller than the INIT.
    e_pub = crypto.public_key(bytes(range(1, 33)))
    index = b"\x01\x01\x01\x01"
    secrets = scene.pair.b.endpoint.secrets
    init = craft_init(secrets, e_pub=e_pub, payload=init_payload(index), version=version)
    ep = scene.pair.b.endpoint
    if version == VERSION_NEGOTIATION:  # byte 0 = 0 is VERSIONS, never an INIT
        quiet_drop(scene.pair.b, init, "version")
        return
    before = Counter(ep.drops)
    mismatches = ep.counters.version_mismatches
    ep.receive_datagram(init, "A", scene.pair.b.now, scene.pair.b.link)
    assert ep.drops - before == Counter({"version": 1})
    assert ep.counters.version_mismatches == mismatches + 1
    [(reply, addr)] = ep.datagrams_to_send(scene.pair.b.now)
    assert addr == "A"
    sender = init[4:8]  # the clear sender index
    assert reply == versions_packet(sender, secrets.mac1_key)
    assert reply[:-16] == bytes([0, 1]) + sender + bytes([PROTOCOL_VERSION])
    assert len(reply) == 23 < len(init)
    assert list(ep.events_received()) == []


def test_prologue_mismatch_fails_without_fallback(
    net: Net, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = net.add_node("A"), net.add_node("B")
    monkeypatch.setattr(
        handshake, "PROLOGUE", b"seigr-stt/2 " + b"Noise_XXpsk3_25519_ChaChaPoly_BLAKE2b"
    )
    handle = net.connect(a, b, timeout_s=3.0)
    monkeypatch.undo()
    [init] = net.sent_by(a, INIT)
    net._flight.clear()
    quiet_drop(b, init.data, "handshake_auth")
    net.run(5.0)
    assert b.endpoint.drops["handshake_auth"] >= 2
    assert net.sent_by(b) == []
    assert a.events_of(HandshakeAborted) == [
        HandshakeAborted(handle, "no valid answer", timeout=True)
    ]


# -- 12. low-order and invalid DH points ------------------------------------------------------
@pytest.mark.parametrize("point", LOW_ORDER_POINTS, ids=lambda p: p.hex()[:8])
def test_low_order_ephemeral_in_init(scene: Scene, point: bytes) -> None:
    index = b"\x05\x06\x07\x08"
    init = craft_init(
        scene.pair.b.endpoint.secrets, e_pub=point, payload=init_payload(index), index=index
    )
    quiet_drop(scene.pair.b, init, "handshake_auth", src="mallory")


# -- 13. reflection ---------------------------------------------------------------------------
def test_our_own_init_sent_back(net: Net) -> None:
    a, b = net.add_node("A"), net.add_node("B")
    net.connect(a, b)
    [init] = net.sent_by(a, INIT)
    quiet_drop(a, init.data, "reflection", src="B")


def test_a_replayed_init_of_a_completed_handshake_costs_no_diffie_hellman(scene: Scene) -> None:
    """Whoever saw a handshake can replay its INIT, from any address: for
    ``INIT_REPLAY_WINDOW_S`` after the handshake completed the copy is refused before any
    Diffie-Hellman and without an answer (the FINAL's timestamp would refuse it, but only after
    a DH and a RESPONSE reflected to the address the copy names)."""
    b = scene.pair.b
    for src in ("A", "VICTIM"):
        quiet_drop(b, scene.init, "replayed_init", src=src)
    # With a cookie in its mac2 it is the same INIT: still refused.
    quiet_drop(b, scene.init[:-MAC_BYTES] + bytes(range(MAC_BYTES)), "replayed_init")


def test_a_replayed_init_is_answered_again_once_the_window_passed(net: Net) -> None:
    a, b = net.add_node("A"), net.add_node("B")
    net.establish(a, b)
    [init] = net.sent_by(a, INIT)
    responses = len(net.sent_by(b, RESPONSE))
    net.run(INIT_REPLAY_WINDOW_S + 1.0)
    net.inject(b, init.data, "VICTIM")
    assert len(net.sent_by(b, RESPONSE)) == responses + 1  # a DH again; its FINAL never comes
    assert b.endpoint.drops["replayed_init"] == 0


def test_our_own_records_sent_back(scene: Scene) -> None:
    pair = scene.pair
    for session in (pair.sa, pair.sb):
        # Use a counter the other direction never reached, so the window lets it through.
        while session.keys.send_counter <= (session.keys.replay.highest or 0):
            session.keys.next_send()
    quiet_drop(pair.a, authentic_record(pair.sa, b""), "auth", src="B")
    quiet_drop(pair.b, authentic_record(pair.sb, dgram(b"x" * 100)), "auth")


def test_our_own_handshake_replies_sent_back(scene: Scene) -> None:
    quiet_drop(scene.pair.b, scene.response, "unknown_index")
    quiet_drop(scene.pair.a, scene.final, "unknown_index", src="B")


# -- authenticated frames of every type ------------------------------------------------------
EVERY_FRAME: list[Frame] = [
    Ping(1),
    Pong(99),
    Stream(3, 0, False, b"\x01m"),  # message channel 0 of the responder: one message
    Stream(3, 0, True, b"\x05m"),  # a message announced longer than the stream's end
    Stream(2, 0, False, b"\x01m"),  # the initiator's own message channel
    Datagram(b"d"),
    Ack(0, ((0, 3),)),
    Stream(0, 0, True, b"s"),
    ResetStream(0, 1, 0),
    StopSending(0, 1),
    MaxData(1 << 20),
    MaxStreamData(0, 1 << 20),
    MaxStreams(8),
    Close(0, "bye"),
]


@pytest.mark.parametrize("frame", EVERY_FRAME, ids=lambda f: type(f).__name__)
def test_authenticated_frames_of_every_type_never_raise(pair: Pair, frame: Frame) -> None:
    record = authentic_record(pair.sb, serialize_frames([frame]))
    pair.net.inject(pair.a, record, "B")  # must not raise
    pair.net.run(1.0)
    assert set(pair.a.endpoint.drops) <= {"tombstone"}  # b's answer to a's closing CLOSE
    closed = pair.a.events_of(SessionClosed)
    if closed:  # a frame the session does not take is a protocol violation, or a CLOSE
        assert closed[0].code == (0 if isinstance(frame, Close) else CLOSE_PROTOCOL_ERROR)
    else:
        assert pair.sa.is_active


# -- 15. random bytes and mutated valid packets at volume ------------------------------------
PROPERTY = settings(
    max_examples=scaled(3.5),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
ALL_REASONS = {
    "short", "version", "type", "size", "malformed", "mac1", "unknown_index", "cookie",
    "unknown_session", "tombstone", "epoch", "replay", "auth", "handshake_state",
}  # fmt: skip


@PROPERTY
@given(st.binary(max_size=1400), st.sampled_from(["A", "B"]))
def test_random_bytes(data: bytes, target: str) -> None:
    scene = shared_scene()
    quiet_drop(node(scene, target), data, ALL_REASONS, src="X")


@PROPERTY
@given(
    st.integers(min_value=0, max_value=7),
    st.binary(min_size=2, max_size=1100),
    st.sampled_from(["A", "B"]),
)
def test_well_framed_random_packets(ptype: int, tail: bytes, target: str) -> None:
    scene = shared_scene()
    data = bytes([PROTOCOL_VERSION, ptype, 0, 0]) + tail
    if ptype == DATA:
        data = data[:4] + scene.pair.sid + data[12:]  # aim at the live session
    quiet_drop(node(scene, target), data, ALL_REASONS, src="X")


Mutation = Callable[[bytes, int], bytes]


@st.composite
def mutated_packets(draw: st.DrawFn) -> tuple[str, bytes]:
    scene = shared_scene()
    target, packet = draw(st.sampled_from(scene.valid_packets()))
    ptype = packet[1]
    # A handshake packet's mac2 is not authenticated (it only proves a cookie): mutate the rest.
    covered = len(packet) - MAC_BYTES if ptype in (INIT, RESPONSE, FINAL) else len(packet)
    kind = draw(st.sampled_from(["flip", "truncate", "extend", "splice"]))
    if kind == "flip":
        bits = draw(st.lists(st.integers(0, covered * 8 - 1), min_size=1, max_size=6, unique=True))
        out = packet
        for bit in bits:
            out = flip_bit(out, bit)
    elif kind == "truncate":
        out = packet[: draw(st.integers(0, len(packet) - 1))]
    elif kind == "extend":
        out = packet + draw(st.binary(min_size=1, max_size=64))
    else:
        start = draw(st.integers(0, covered - 1))
        chunk = draw(st.binary(min_size=1, max_size=32))
        out = packet[:start] + chunk + packet[start + len(chunk) :]
        if out[:covered] == packet[:covered]:
            out = flip_bit(out, start * 8)
    to_other = draw(st.booleans())
    return ("A" if target == "B" else "B") if to_other else target, out


@PROPERTY
@given(mutated_packets())
def test_mutated_valid_packets(case: tuple[str, bytes]) -> None:
    target, data = case
    scene = shared_scene()
    quiet_drop(node(scene, target), data, ALL_REASONS, src="A" if target == "B" else "B")


def test_the_shared_scene_is_still_healthy() -> None:
    scene = shared_scene()
    pair = scene.pair
    pair.send(pair.a, b"after the storm")
    pair.net.run(0.0)
    assert pair.b.events_of(MessageReceived)[-1].data == b"after the storm"
