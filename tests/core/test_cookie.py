"""The handshake's MACs and cookies (``docs/protocol.md`` §10), without an endpoint around them."""

from __future__ import annotations

import random

import pytest

from seigr_stt.constants import (
    COOKIE_BYTES,
    COOKIE_NONCE_BYTES,
    COOKIE_REPLY_SIZE,
    COOKIE_SECRET_LIFETIME_S,
    MAC_BYTES,
    PROTOCOL_VERSION,
    PacketType,
)
from seigr_stt.core import crypto
from seigr_stt.core.cookie import (
    CookieJar,
    check_mac1,
    check_mac2,
    finish_packet,
    mac1_of,
    open_cookie_reply,
)
from seigr_stt.core.identity import SharedSecrets
from seigr_stt.exceptions import DecryptError
from tests.core.net import SHARED_SEED, craft_init, init_payload, make_seed, seeded_rng

SECRETS = SharedSecrets.from_seed(SHARED_SEED)
OTHER = SharedSecrets.from_seed(make_seed("other-group"))
BODY = bytes([PROTOCOL_VERSION, PacketType.HANDSHAKE_INIT, 0, 0]) + bytes(range(100))
COOKIE = bytes(range(16))
T0 = 1000.0


def init() -> bytes:
    return craft_init(SECRETS, e_pub=bytes(range(32)), payload=init_payload(b"\x01\x02\x03\x04"))


def jar(seed: str = "jar") -> CookieJar:
    return CookieJar(SECRETS.cookie_key, seeded_rng(seed))


# -- MACs ------------------------------------------------------------------------------------
def test_finish_packet_appends_mac1_then_a_zero_mac2_without_a_cookie() -> None:
    packet = finish_packet(BODY, SECRETS.mac1_key, None)
    assert len(packet) == len(BODY) + 2 * MAC_BYTES
    assert packet[: len(BODY)] == BODY
    assert mac1_of(packet) == crypto.mac(SECRETS.mac1_key, BODY)
    assert packet[-MAC_BYTES:] == bytes(MAC_BYTES)


def test_finish_packet_with_a_cookie_covers_mac1_with_mac2() -> None:
    plain = finish_packet(BODY, SECRETS.mac1_key, None)
    with_cookie = finish_packet(BODY, SECRETS.mac1_key, COOKIE)
    assert with_cookie[:-MAC_BYTES] == plain[:-MAC_BYTES]  # mac1 does not depend on the cookie
    assert with_cookie[-MAC_BYTES:] == crypto.mac(COOKIE, with_cookie[:-MAC_BYTES])
    assert check_mac2(with_cookie, COOKIE)
    assert not check_mac2(plain, COOKIE)
    assert not check_mac2(with_cookie, bytes(16))


def test_check_mac1_needs_the_group_key_and_covers_everything_but_mac2() -> None:
    packet = finish_packet(BODY, SECRETS.mac1_key, COOKIE)
    assert check_mac1(packet, SECRETS.mac1_key)
    assert not check_mac1(packet, OTHER.mac1_key)
    for offset in range(len(packet) - MAC_BYTES):
        flipped = bytearray(packet)
        flipped[offset] ^= 1
        assert not check_mac1(bytes(flipped), SECRETS.mac1_key), offset
    mac2_flipped = packet[:-1] + bytes([packet[-1] ^ 1])
    assert check_mac1(mac2_flipped, SECRETS.mac1_key)  # mac2 is not covered by mac1
    assert not check_mac2(mac2_flipped, COOKIE)


def test_mac1_of_is_the_field_before_mac2() -> None:
    packet = finish_packet(BODY, SECRETS.mac1_key, COOKIE)
    assert mac1_of(packet) == packet[-2 * MAC_BYTES : -MAC_BYTES]
    assert len(mac1_of(packet)) == MAC_BYTES


# -- the responder's jar ---------------------------------------------------------------------
def test_a_cookie_is_stable_per_source_within_the_secret_lifetime() -> None:
    cookies = jar()
    first = cookies.cookie_for(b"10.0.0.1:1000", T0)
    assert len(first) == COOKIE_BYTES
    assert cookies.cookie_for(b"10.0.0.1:1000", T0 + COOKIE_SECRET_LIFETIME_S - 0.001) == first
    assert cookies.cookie_for(b"10.0.0.1:1001", T0) != first  # another port, another cookie
    assert cookies.cookie_for(b"10.0.0.2:1000", T0) != first


def test_the_secret_rotates_after_its_lifetime() -> None:
    cookies = jar()
    first = cookies.cookie_for(b"A", T0)
    second = cookies.cookie_for(b"A", T0 + COOKIE_SECRET_LIFETIME_S)
    assert second != first
    assert cookies.cookie_for(b"A", T0 + 2 * COOKIE_SECRET_LIFETIME_S - 0.001) == second
    assert cookies.cookie_for(b"A", T0 + 2 * COOKIE_SECRET_LIFETIME_S) != second


def test_jars_of_two_responders_give_different_cookies() -> None:
    assert jar("one").cookie_for(b"A", T0) != jar("two").cookie_for(b"A", T0)


def test_check_accepts_only_the_cookie_of_that_source() -> None:
    cookies = jar()
    plain = init()
    assert not cookies.check(plain, b"A", T0)
    body = plain[: -2 * MAC_BYTES]
    good = finish_packet(body, SECRETS.mac1_key, cookies.cookie_for(b"A", T0))
    assert cookies.check(good, b"A", T0)
    assert not cookies.check(good, b"B", T0)
    assert not cookies.check(good, b"A", T0 + COOKIE_SECRET_LIFETIME_S)  # the secret rotated


def test_cookie_reply_layout_and_round_trip() -> None:
    cookies = jar()
    packet = init()
    receiver = b"\x0a\x0b\x0c\x0d"
    reply = cookies.reply(packet, receiver, b"A", T0)
    assert len(reply) == COOKIE_REPLY_SIZE == 64
    assert reply[:4] == bytes([PROTOCOL_VERSION, PacketType.COOKIE_REPLY, 0, 0])
    assert reply[4:8] == receiver
    cookie = open_cookie_reply(SECRETS.cookie_key, mac1_of(packet), reply)
    assert cookie == cookies.cookie_for(b"A", T0)
    assert cookie not in reply  # sealed: only a holder of the group's cookie key reads it
    # A fresh nonce each time: two replies to one INIT differ but carry the same cookie.
    again = cookies.reply(packet, receiver, b"A", T0)
    assert again[8 : 8 + COOKIE_NONCE_BYTES] != reply[8 : 8 + COOKIE_NONCE_BYTES]
    assert open_cookie_reply(SECRETS.cookie_key, mac1_of(packet), again) == cookie


def test_a_cookie_reply_opens_only_for_the_init_it_answers_and_the_group() -> None:
    cookies = jar()
    packet = init()
    reply = cookies.reply(packet, b"\x0a\x0b\x0c\x0d", b"A", T0)
    with pytest.raises(DecryptError):
        open_cookie_reply(SECRETS.cookie_key, bytes(MAC_BYTES), reply)
    with pytest.raises(DecryptError):
        open_cookie_reply(OTHER.cookie_key, mac1_of(packet), reply)
    rng = random.Random(5)
    for _ in range(20):
        tampered = bytearray(reply)
        tampered[rng.randrange(8, len(reply))] ^= 1 << rng.randrange(8)
        with pytest.raises(DecryptError):
            open_cookie_reply(SECRETS.cookie_key, mac1_of(packet), bytes(tampered))


def test_the_jar_does_not_show_its_secret() -> None:
    cookies = jar()
    cookie = cookies.cookie_for(b"A", T0)
    text = repr(cookies)
    assert text == "CookieJar(<secret>)"
    assert cookie.hex() not in text
