"""The STT handshake objects (``docs/protocol.md`` §4), without an endpoint around them."""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seigr_stt.constants import (
    HANDSHAKE_INIT_MIN_SIZE,
    HANDSHAKE_MESSAGE_MAX_SIZE,
    HANDSHAKE_REPLY_HEADER_SIZE,
    MAC_BYTES,
    PACKET_HANDSHAKE_FINAL,
    PACKET_HANDSHAKE_INIT,
    PACKET_HANDSHAKE_RESPONSE,
    PROTOCOL_VERSION,
    SESSION_ID_BYTES,
)
from seigr_stt.core import crypto
from seigr_stt.core.cookie import check_mac1, check_mac2, finish_packet, mac1_of
from seigr_stt.core.handshake import (
    HandshakeFailed,
    HandshakeRefused,
    HandshakeResult,
    InitiatorHandshake,
    ResponderHandshake,
    _pack,
    parse_handshake_header,
)
from seigr_stt.core.identity import NodeIdentity, SharedSecrets
from tests.core.net import SHARED_SEED, craft_init, init_payload, make_seed, seeded_rng
from tests.profiles import scaled

ALICE = NodeIdentity.from_seed(make_seed("alice"))
BOB = NodeIdentity.from_seed(make_seed("bob"))
SECRETS = SharedSecrets.from_seed(SHARED_SEED)
I_INDEX = b"\x0a\x0b\x0c\x0d"
R_INDEX = b"\x01\x02\x03\x04"
V = PROTOCOL_VERSION
# A low-order point of Curve25519 (order 8), and the identity-like points 0 and 1.
LOW_ORDER_POINTS = [
    bytes(32),
    (1).to_bytes(32, "little"),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
    ((1 << 255) - 19 - 1).to_bytes(32, "little"),
    ((1 << 255) - 19).to_bytes(32, "little"),
]


def initiator(
    identity: NodeIdentity = ALICE,
    secrets: SharedSecrets = SECRETS,
    *,
    capabilities: int = 0,
    timestamp_ns: int = 1234,
    seed: int = 1,
) -> InitiatorHandshake:
    return InitiatorHandshake(
        identity,
        secrets,
        I_INDEX,
        capabilities=capabilities,
        timestamp_ns=timestamp_ns,
        rng=seeded_rng(seed),
    )


def responder(
    init: bytes,
    identity: NodeIdentity = BOB,
    secrets: SharedSecrets = SECRETS,
    *,
    capabilities: int = 0,
    seed: int = 2,
) -> ResponderHandshake:
    return ResponderHandshake(
        identity, secrets, R_INDEX, init, capabilities=capabilities, rng=seeded_rng(seed)
    )


def complete() -> tuple[InitiatorHandshake, ResponderHandshake, bytes, HandshakeResult]:
    alice = initiator(capabilities=5, timestamp_ns=777)
    bob = responder(alice.init_packet(), capabilities=9)
    final = alice.receive_response(bob.response_packet)
    result = bob.receive_final(final)
    return alice, bob, final, result


def flip(packet: bytes, offset: int) -> bytes:
    return packet[:offset] + bytes([packet[offset] ^ 0x01]) + packet[offset + 1 :]


def test_full_handshake() -> None:
    alice, bob, final, r_res = complete()
    i_res = alice.result
    assert i_res is not None
    assert i_res.session_id == r_res.session_id == I_INDEX + R_INDEX
    assert len(i_res.session_id) == SESSION_ID_BYTES == 8
    assert i_res.initiator
    assert not r_res.initiator
    assert (i_res.local_index, i_res.peer_index) == (I_INDEX, R_INDEX)
    assert (r_res.local_index, r_res.peer_index) == (R_INDEX, I_INDEX)
    assert i_res.peer_node_id == BOB.node_id
    assert r_res.peer_node_id == ALICE.node_id
    assert i_res.peer_static == BOB.static_public
    assert r_res.peer_static == ALICE.static_public
    assert i_res.send_key == r_res.recv_key
    assert i_res.recv_key == r_res.send_key
    assert i_res.send_key != i_res.recv_key
    assert i_res.exporter == r_res.exporter
    assert i_res.handshake_hash == r_res.handshake_hash
    assert (i_res.peer_capabilities, r_res.peer_capabilities) == (9, 5)
    assert r_res.peer_timestamp_ns == 777
    assert bob.peer_timestamp_ns == 777
    assert alice.final_packet == final
    assert bob.final_digest == crypto.mac(SECRETS.mac1_key, final)


def test_packet_layouts_and_no_amplification() -> None:
    for caps in (0, (1 << 64) - 1):
        alice = initiator(capabilities=caps)
        init = alice.init_packet()
        bob = responder(init, capabilities=caps)
        response = bob.response_packet
        final = alice.receive_response(response)
        assert len(init) >= HANDSHAKE_INIT_MIN_SIZE
        assert len(response) <= len(init)
        assert parse_handshake_header(init) == (PACKET_HANDSHAKE_INIT, I_INDEX, b"")
        assert parse_handshake_header(response) == (PACKET_HANDSHAKE_RESPONSE, R_INDEX, I_INDEX)
        assert parse_handshake_header(final) == (PACKET_HANDSHAKE_FINAL, I_INDEX, R_INDEX)
        assert init[8:40] == alice.ephemeral_public == bob.peer_ephemeral
        for packet in (init, response, final):
            assert check_mac1(packet, SECRETS.mac1_key)
            assert packet[-MAC_BYTES:] == bytes(MAC_BYTES)  # no cookie: mac2 is zero
            assert mac1_of(packet) == packet[-2 * MAC_BYTES : -MAC_BYTES]


def test_init_packet_is_stable_and_carries_mac2_with_a_cookie() -> None:
    alice = initiator()
    plain = alice.init_packet()
    assert alice.init_packet() == plain
    cookie = bytes(range(16))
    with_cookie = alice.init_packet(cookie)
    assert with_cookie[:-MAC_BYTES] == plain[:-MAC_BYTES]
    assert with_cookie[-MAC_BYTES:] != bytes(MAC_BYTES)
    assert check_mac2(with_cookie, cookie)
    assert not check_mac2(plain, cookie)
    assert not check_mac2(with_cookie, bytes(16))


def test_mac1_needs_the_shared_seed() -> None:
    init = initiator().init_packet()
    other = SharedSecrets.from_seed(make_seed("other-group"))
    assert not check_mac1(init, other.mac1_key)
    assert not check_mac1(flip(init, 20), SECRETS.mac1_key)
    assert check_mac1(flip(init, len(init) - 1), SECRETS.mac1_key)  # mac2 is not covered


def test_ephemeral_keys_differ_per_handshake() -> None:
    assert initiator(seed=1).ephemeral_public != initiator(seed=3).ephemeral_public


@pytest.mark.parametrize(
    ("packet", "reason"),
    [
        (b"", "size"),
        (bytes([V, 1, 0, 0]) + bytes(35), "size"),
        (bytes([V, 2, 0, 0]) + bytes(HANDSHAKE_MESSAGE_MAX_SIZE - 3), "size"),
        (bytes([3, 1, 0, 0]) + bytes(300), "version"),
        (bytes([1, 1, 0, 0]) + bytes(300), "version"),  # protocol 1.0
        (bytes([0, 1, 0, 0]) + bytes(300), "version"),
        (bytes([V, 1, 1, 0]) + bytes(300), "malformed"),
        (bytes([V, 2, 0, 1]) + bytes(300), "malformed"),
        (bytes([V, 1, 0, 0]) + bytes(HANDSHAKE_INIT_MIN_SIZE - 5), "size"),
        (bytes([V, 2, 0, 0]) + bytes(39), "size"),
        (bytes([V, 3, 0, 0]) + bytes(39), "size"),
        (bytes([V, 4, 0, 0]) + bytes(60), "type"),
        (bytes([V, 5, 0, 0]) + bytes(60), "type"),
        (bytes([V, 0, 0, 0]) + bytes(60), "type"),
    ],
)
def test_parse_handshake_header_rejects(packet: bytes, reason: str) -> None:
    with pytest.raises(HandshakeFailed) as info:
        parse_handshake_header(packet)
    assert info.value.reason == reason


def test_parse_handshake_header_limits() -> None:
    assert parse_handshake_header(bytes([V, 2, 0, 0]) + bytes(40))[0] == 2
    assert parse_handshake_header(bytes([V, 1, 0, 0]) + bytes(HANDSHAKE_INIT_MIN_SIZE - 4))[0] == 1
    assert parse_handshake_header(bytes([V, 3, 0, 0]) + bytes(HANDSHAKE_MESSAGE_MAX_SIZE - 4))[0]


@settings(max_examples=scaled(2), deadline=None)
@given(st.binary(max_size=1100))
def test_arbitrary_bytes_raise_only_handshake_failed(data: bytes) -> None:
    try:
        ptype, sender, receiver = parse_handshake_header(data)
    except HandshakeFailed as exc:
        reason = exc.reason
    else:
        reason = ""
    if reason:
        assert reason in {"size", "version", "malformed", "type"}
        return
    assert ptype in (1, 2, 3)
    assert sender == data[4:8]
    assert receiver == (b"" if ptype == 1 else data[8:12])


@settings(deadline=None)
@given(st.integers(min_value=1, max_value=3), st.binary(min_size=300, max_size=1000))
def test_well_framed_garbage_raises_only_handshake_failed(ptype: int, tail: bytes) -> None:
    packet = bytes([V, ptype, 0, 0]) + tail
    receive: Callable[[], object]
    if ptype == 1:
        receive = functools.partial(responder, packet)
    elif ptype == 2:
        receive = functools.partial(initiator().receive_response, packet)
    else:
        receive = functools.partial(responder(initiator().init_packet()).receive_final, packet)
    with pytest.raises(HandshakeFailed) as info:
        receive()
    assert info.value.reason in {"handshake_auth", "handshake_state", "payload"}


# -- initiator side --------------------------------------------------------------------------
def test_response_errors_leave_the_initiator_usable() -> None:
    alice = initiator()
    bob = responder(alice.init_packet())
    response = bob.response_packet
    cases = [
        (flip(response, 20), "handshake_auth"),  # ephemeral key changed
        (flip(response, len(response) - 40), "handshake_auth"),  # ciphertext
        (response[:4] + R_INDEX + b"\x00\x00\x00\x00" + response[12:], "handshake_state"),
        (bytes([V, 3]) + response[2:], "handshake_state"),  # FINAL type
        (response[:60], "handshake_auth"),
    ]
    for packet, reason in cases:
        with pytest.raises(HandshakeFailed) as info:
            alice.receive_response(packet)
        assert info.value.reason == reason
        assert alice.result is None
    final = alice.receive_response(response)
    assert bob.receive_final(final).session_id == I_INDEX + R_INDEX
    with pytest.raises(HandshakeFailed) as info:
        alice.receive_response(response)
    assert info.value.reason == "handshake_state"


def test_response_with_a_forged_clear_index_is_refused() -> None:
    alice = initiator()
    bob = responder(alice.init_packet())
    response = bob.response_packet
    forged = response[:4] + b"\x99\x99\x99\x99" + response[8:]  # sender index in clear changed
    with pytest.raises(HandshakeFailed) as info:
        alice.receive_response(forged)
    assert info.value.reason == "payload"


def test_reflection_of_our_own_static_key() -> None:
    alice = initiator(ALICE)
    twin = responder(alice.init_packet(), ALICE)  # a responder with the same node seed
    with pytest.raises(HandshakeFailed) as info:
        alice.receive_response(twin.response_packet)
    assert info.value.reason == "reflection"
    assert alice.result is None
    # The refusal left alice's state untouched; a FINAL written anyway (from a copy that read
    # the response) is refused by the responder for the same reason.
    state = copy.deepcopy(alice._state)
    state.read_message(twin.response_packet[HANDSHAKE_REPLY_HEADER_SIZE:-32])
    message = state.write_message(_pack({"i": I_INDEX, "r": R_INDEX}))
    header = bytes([V, PACKET_HANDSHAKE_FINAL, 0, 0]) + I_INDEX + R_INDEX
    final = finish_packet(header + message, SECRETS.mac1_key, None)
    with pytest.raises(HandshakeFailed) as info:
        twin.receive_final(final)
    assert info.value.reason == "reflection"


# -- responder side --------------------------------------------------------------------------
def test_final_errors_leave_the_responder_usable() -> None:
    alice = initiator()
    bob = responder(alice.init_packet())
    final = alice.receive_response(bob.response_packet)
    cases = [
        (flip(final, 30), "handshake_auth"),
        (final[:4] + b"\x00\x00\x00\x01" + final[8:], "handshake_state"),  # wrong sender
        (final[:8] + b"\x00\x00\x00\x01" + final[12:], "handshake_state"),  # wrong receiver
        (bytes([V, 2]) + final[2:], "handshake_state"),
    ]
    for packet, reason in cases:
        with pytest.raises(HandshakeFailed) as info:
            bob.receive_final(packet)
        assert info.value.reason == reason
        assert bob.result is None
    assert bob.receive_final(final).peer_node_id == ALICE.node_id
    with pytest.raises(HandshakeFailed) as info:
        bob.receive_final(final)
    assert info.value.reason == "handshake_state"


def test_wrong_psk_with_the_right_mac1_key_fails_at_final() -> None:
    other_psk = SharedSecrets(
        psk=make_seed("another-psk"), mac1_key=SECRETS.mac1_key, cookie_key=SECRETS.cookie_key
    )
    alice = initiator(secrets=other_psk)
    bob = responder(alice.init_packet())
    final = alice.receive_response(bob.response_packet)  # msg 2 does not involve the PSK
    with pytest.raises(HandshakeFailed) as info:
        bob.receive_final(final)
    assert info.value.reason == "handshake_auth"
    assert bob.result is None


def test_responder_refuses_a_non_init() -> None:
    alice = initiator()
    bob = responder(alice.init_packet())
    with pytest.raises(HandshakeFailed) as info:
        responder(bob.response_packet)
    assert info.value.reason == "type"


def test_tampered_init_is_refused() -> None:
    init = initiator().init_packet()
    for offset in (8, 39, 40, 100, len(init) - 33):
        with pytest.raises(HandshakeFailed) as info:
            responder(flip(init, offset))
        assert info.value.reason == "handshake_auth"


def test_crafted_init_is_accepted_when_honest() -> None:
    e_pub = crypto.public_key(bytes(range(32)))
    bob = responder(craft_init(SECRETS, e_pub=e_pub, payload=init_payload(b"\x11\x22\x33\x44")))
    assert bob.peer_index == b"\x11\x22\x33\x44"
    assert bob.peer_timestamp_ns == 1


GOOD_INDEX = b"\x11\x22\x33\x44"


@pytest.mark.parametrize(
    ("payload", "detail"),
    [
        (b"\xc1" * 220, "not valid msgpack"),  # a byte msgpack never uses
        (bytes(220), "not valid msgpack"),  # extra data after the first value
        (msgpack.packb([bytes(220)]), "not a map"),
        (msgpack.packb(bytes(220)), "not a map"),
        (msgpack.packb({1: bytes(220)}), "not valid msgpack"),  # strict_map_key
        # a bin key unpacks but never names a field (§4.3): the index is missing
        (msgpack.packb({b"i": GOOD_INDEX, "t": 1, "c": 0, "p": bytes(200)}), "index"),
        (msgpack.packb({"i": GOOD_INDEX, "p": [0] * 17 + [bytes(200)]}), "not valid msgpack"),
        (msgpack.packb({"i": GOOD_INDEX, "t": 1, "c": 0, "p": "x" * 200}), "not valid msgpack"),
        (init_payload(b"\x00\x00\x00\x00"), "does not match the clear header"),
        (init_payload(GOOD_INDEX, p=bytes(600)), "too large"),
        (init_payload(GOOD_INDEX, timestamp_ns=-1), "'t'"),
        (init_payload(GOOD_INDEX, timestamp_ns=1.5), "'t'"),  # type: ignore[arg-type]
        (init_payload(GOOD_INDEX, t=True), "'t'"),
        (init_payload(GOOD_INDEX, t="1"), "'t'"),
        (init_payload(GOOD_INDEX, t=None), "'t'"),
        (init_payload(GOOD_INDEX, c=None), "'c'"),
        (init_payload(GOOD_INDEX, c=-5), "'c'"),
    ],
    ids=[
        "not-msgpack",
        "extra-data",
        "array",
        "bin",
        "int-key",
        "bin-key",
        "long-array",
        "long-string",
        "index-mismatch",
        "too-large",
        "negative-time",
        "float-time",
        "bool-time",
        "str-time",
        "no-time",
        "no-caps",
        "negative-caps",
    ],
)
def test_bad_init_payloads(payload: bytes, detail: str) -> None:
    e_pub = crypto.public_key(bytes(range(32)))
    packet = craft_init(SECRETS, e_pub=e_pub, payload=payload)
    assert len(packet) >= HANDSHAKE_INIT_MIN_SIZE
    with pytest.raises(HandshakeFailed, match=detail) as info:
        responder(packet)
    assert info.value.reason == "payload"


@pytest.mark.parametrize("point", LOW_ORDER_POINTS, ids=lambda p: p.hex()[:8])
def test_low_order_ephemeral_is_refused(point: bytes) -> None:
    packet = craft_init(SECRETS, e_pub=point, payload=init_payload(b"\x11\x22\x33\x44"))
    assert check_mac1(packet, SECRETS.mac1_key)
    with pytest.raises(HandshakeFailed) as info:
        responder(packet)
    assert info.value.reason == "handshake_auth"


def test_reprs_hide_secrets() -> None:
    alice, bob, _, result = complete()
    text = repr(alice) + repr(bob) + repr(result)
    for secret in (result.send_key, result.recv_key, result.exporter, ALICE.static_private):
        assert secret.hex() not in text
        assert repr(secret) not in text
    assert I_INDEX.hex() in repr(alice)


def test_a_refusing_response_names_its_code_and_leaves_the_initiator_untouched() -> None:
    alice = initiator()
    bob = ResponderHandshake(
        BOB, SECRETS, R_INDEX, alice.init_packet(), capabilities=0, rng=seeded_rng(2), refuse=7
    )
    with pytest.raises(HandshakeRefused) as refused:
        alice.receive_response(bob.response_packet)
    assert refused.value.code == 7
    assert alice.result is None
    assert alice.final_packet is None
    # Tampered, the refusal is an ordinary authentication failure, not a refusal.
    with pytest.raises(HandshakeFailed):
        alice.receive_response(flip(bob.response_packet, 40))
    # The genuine answer still counts afterwards.
    good = responder(alice.init_packet())
    assert alice.receive_response(good.response_packet)
