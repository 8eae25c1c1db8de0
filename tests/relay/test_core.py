"""The relay's sans-I/O core and wire format (§17): registration by proof of the static key,
forwarding by node id, limits, expiry; driven in memory with an injected clock."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

import seigr_stt.relay
from seigr_stt import generate_seed
from seigr_stt.constants import (
    RELAY_FORWARD_HEADER_SIZE,
    RELAY_HELLO_SIZE,
    RELAY_PROTOCOL_VERSION,
    RelayPacketType,
    RelayRefusal,
)
from seigr_stt.core.identity import NodeIdentity
from seigr_stt.core.link import Link, TransportKind
from seigr_stt.relay.client import Registrar
from seigr_stt.relay.core import RelayConfig, RelayCore, RelayDrop
from seigr_stt.relay.wire import (
    Challenge,
    Hello,
    Refused,
    Register,
    Registered,
    RelayWireError,
    forward_packet,
    parse_forward,
    parse_unreachable,
)

UDP = Link(TransportKind.UDP, 1232)


def make_core(**limits: int | float) -> RelayCore:
    return RelayCore(os.urandom(32), os.urandom, RelayConfig(**limits))  # type: ignore[arg-type]


def register(
    core: RelayCore, identity: NodeIdentity, addr: tuple[str, int], now: float = 0.0
) -> bytes:
    """Run HELLO..REGISTER for ``identity`` from ``addr``; returns the relay's last answer."""
    registrar = Registrar(identity, os.urandom)
    core.receive(registrar.hello(), addr, now, UDP)
    [(challenge, to)] = core.datagrams_to_send()
    assert to == addr
    reg = registrar.on_challenge(challenge)
    assert reg is not None
    core.receive(reg, addr, now, UDP)
    [(answer, to)] = core.datagrams_to_send()
    if answer[1] == RelayPacketType.REGISTERED:
        assert registrar.on_registered(answer) is not None
    return answer


def test_the_relay_core_is_sans_io() -> None:
    for path in Path(seigr_stt.relay.__file__).parent.glob("*.py"):
        if path.name in ("server.py", "__init__.py"):
            continue
        tree = ast.parse(path.read_text())
        imported = {
            (n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
        } | {
            a.name.split(".")[0]
            for n in ast.walk(tree)
            if isinstance(n, ast.Import)
            for a in n.names
        }
        assert not imported & {"asyncio", "socket", "time", "random", "os"}, path.name


def test_codecs_round_trip_and_refuse_garbage() -> None:
    nonce = os.urandom(16)
    for packet in (
        Hello(nonce),
        Challenge(os.urandom(32), nonce, 7, os.urandom(16)),
        Register(os.urandom(32), nonce, 7, os.urandom(16), os.urandom(16)),
        Registered(60, 1198, nonce, ("192.0.2.1", 4000), os.urandom(16)),
        Registered(60, 1198, nonce, ("2001:db8::1", 4000), os.urandom(16)),
        Registered(60, 1198, nonce, None, os.urandom(16)),
        Refused(RelayRefusal.BAD_PROOF, nonce),
    ):
        data = packet.serialize()
        assert type(packet).parse(data) == packet
        with pytest.raises(RelayWireError):
            type(packet).parse(data[:-1])
        with pytest.raises(RelayWireError):
            type(packet).parse(bytes([RELAY_PROTOCOL_VERSION + 1]) + data[1:])
    assert len(Hello(nonce).serialize()) == RELAY_HELLO_SIZE
    node_id = os.urandom(32)
    assert parse_forward(forward_packet(RelayPacketType.SEND, node_id, b"x")) == (node_id, b"x")
    with pytest.raises(RelayWireError):
        parse_forward(forward_packet(RelayPacketType.SEND, node_id, b""))
    with pytest.raises(RelayWireError):
        parse_unreachable(b"\x01\x27")


def test_registration_proves_the_static_key_and_reports_the_observed_address() -> None:
    core = make_core()
    identity = NodeIdentity.from_seed(generate_seed())
    answer = register(core, identity, ("198.51.100.7", 40000))
    registered = Registered.parse(answer)
    assert registered.observed == ("198.51.100.7", 40000)
    assert registered.max_record == 1232 - RELAY_FORWARD_HEADER_SIZE
    assert core.registration(identity.node_id) is not None
    assert core.registrations_accepted == 1


def test_a_wrong_proof_a_stale_cookie_and_a_low_order_key_are_refused_and_counted() -> None:
    core = make_core()
    real = NodeIdentity.from_seed(generate_seed())
    other = NodeIdentity.from_seed(generate_seed())
    # Claims real's public key (and so its node id) without its private key.
    impostor = NodeIdentity(other.static_private, real.static_public, real.node_id)
    answer = register(core, impostor, ("192.0.2.1", 1))
    assert Refused.parse(answer).code == RelayRefusal.BAD_PROOF
    assert core.drops[RelayDrop.BAD_PROOF] == 1
    assert core.registration(real.node_id) is None

    registrar = Registrar(real, os.urandom)
    core.receive(registrar.hello(), ("192.0.2.1", 2), 0.0, UDP)
    [(challenge, _)] = core.datagrams_to_send()
    reg = registrar.on_challenge(challenge)
    assert reg is not None
    core.receive(reg, ("192.0.2.1", 3), 1.0, UDP)  # another address: the cookie is not its
    core.receive(reg, ("192.0.2.1", 2), 100.0, UDP)  # too late
    assert core.drops[RelayDrop.STALE_COOKIE] == 2

    c = Challenge.parse(challenge)
    low_order = Register(bytes(32), c.nonce, c.issued, c.cookie, bytes(16)).serialize()
    core.receive(low_order, ("192.0.2.1", 2), 1.0, UDP)
    assert core.drops[RelayDrop.BAD_KEY] == 1
    assert len(core) == 0


def test_forwarding_by_node_id_and_counted_drops() -> None:
    core = make_core(forward_burst_bytes=4000, forward_rate_bytes=1.0)
    a, b = (NodeIdentity.from_seed(generate_seed()) for _ in range(2))
    register(core, a, ("192.0.2.1", 1))
    register(core, b, ("192.0.2.2", 2))
    sealed = os.urandom(200)
    core.receive(forward_packet(RelayPacketType.SEND, b.node_id, sealed), ("192.0.2.1", 1), 1, UDP)
    [(delivered, to)] = core.datagrams_to_send()
    assert to == ("192.0.2.2", 2)
    assert delivered[1] == RelayPacketType.DELIVER
    assert parse_forward(delivered) == (a.node_id, sealed)  # the sender the relay checked

    stranger = os.urandom(32)
    core.receive(forward_packet(RelayPacketType.SEND, stranger, sealed), ("192.0.2.1", 1), 1, UDP)
    [(hint, to)] = core.datagrams_to_send()
    assert parse_unreachable(hint) == stranger
    core.receive(forward_packet(RelayPacketType.SEND, b.node_id, sealed), ("192.0.2.9", 9), 1, UDP)
    big = forward_packet(RelayPacketType.SEND, b.node_id, bytes(2000))
    core.receive(big, ("192.0.2.1", 1), 1, UDP)
    for _ in range(30):  # the byte bucket (4000 bytes, 1 byte/s) runs dry
        core.receive(
            forward_packet(RelayPacketType.SEND, b.node_id, sealed), ("192.0.2.1", 1), 1, UDP
        )
    core.receive(b"\x01", ("192.0.2.1", 1), 1, UDP)
    core.receive(b"\x09\x25", ("192.0.2.1", 1), 1, UDP)
    core.receive(b"\x01\x26" + bytes(40), ("192.0.2.1", 1), 1, UDP)
    assert core.drops == {
        RelayDrop.UNKNOWN_DESTINATION: 1,
        RelayDrop.UNREGISTERED: 1,
        RelayDrop.TOO_BIG: 1,
        RelayDrop.FORWARD_RATE: 14,  # 4000 - 234 bytes left: 16 SENDs of 234 fit
        RelayDrop.SHORT: 1,
        RelayDrop.VERSION: 1,
        RelayDrop.TYPE: 1,
    }


def test_a_websocket_link_carries_up_to_its_limit_whatever_size_it_fills_records_to() -> None:
    # A WebSocket connection sizes its own records to one TCP burst (§12.2, record_size) but
    # carries messages up to its configured limit: the relay forwards up to that limit.
    limit = 60_000 + RELAY_FORWARD_HEADER_SIZE
    link = Link(TransportKind.WEBSOCKET, limit, peer="192.0.2.2:2", record_size=30_000)
    core = make_core(max_record_size=60_000, forward_burst_bytes=200_000)
    a, b = (NodeIdentity.from_seed(generate_seed()) for _ in range(2))
    register(core, a, ("192.0.2.1", 1))
    registrar = Registrar(b, os.urandom)
    core.receive(registrar.hello(), link, 0.0, link)
    [(challenge, _)] = core.datagrams_to_send()
    reg = registrar.on_challenge(challenge)
    assert reg is not None
    core.receive(reg, link, 0.0, link)
    [(answer, _)] = core.datagrams_to_send()
    registered = registrar.on_registered(answer)
    assert registered is not None
    assert registered.max_record == 60_000  # the limit, not the record size
    sealed = os.urandom(50_000)
    core.receive(forward_packet(RelayPacketType.SEND, b.node_id, sealed), ("192.0.2.1", 1), 1, UDP)
    [(delivered, to)] = core.datagrams_to_send()
    assert to is link
    assert parse_forward(delivered) == (a.node_id, sealed)
    assert not core.drops


def test_limits_bound_registrations_per_source_and_in_total_and_they_expire() -> None:
    core = make_core(max_registrations_per_source=3, max_registrations=5, control_burst=1000)
    ids = [NodeIdentity.from_seed(generate_seed()) for _ in range(8)]
    answers = [register(core, ids[i], ("192.0.2.1", 100 + i)) for i in range(4)]
    assert Refused.parse(answers[3]).code == RelayRefusal.SOURCE_LIMIT
    answers = [register(core, ids[4 + i], (f"192.0.2.{10 + i}", 1)) for i in range(3)]
    assert Refused.parse(answers[2]).code == RelayRefusal.RELAY_FULL
    assert len(core) == 5
    assert core.drops == {RelayDrop.SOURCE_LIMIT: 1, RelayDrop.RELAY_FULL: 1}
    # The same node again from its address renews; from a new address it moves.
    register(core, ids[0], ("192.0.2.1", 100), now=30.0)
    register(core, ids[4], ("192.0.2.99", 1), now=30.0)
    assert len(core) == 5
    registration = core.registration(ids[4].node_id)
    assert registration is not None
    assert registration.addr == ("192.0.2.99", 1)
    at = core.get_timer()
    assert at is not None
    assert core.handle_timer(at - 1) == []
    expired = core.handle_timer(61.0)
    assert sorted(expired, key=repr) == [("192.0.2.1", 101), ("192.0.2.1", 102), ("192.0.2.11", 1)]
    assert len(core) == 2
    core.forget_address(("192.0.2.99", 1))
    assert core.registration(ids[4].node_id) is None


def test_a_flood_of_hellos_is_rate_limited_per_source_and_holds_no_state() -> None:
    core = make_core(control_rate=10, control_burst=20, max_sources=100)
    for i in range(1000):
        core.receive(Hello(os.urandom(16)).serialize(), ("192.0.2.1", i), 0.0, UDP)
    assert len(core.datagrams_to_send()) == 20
    assert core.drops[RelayDrop.RATE_LIMITED] == 980
    for i in range(1000):
        core.receive(Hello(os.urandom(16)).serialize(), (f"10.0.{i // 250}.{i % 250}", 1), 0.0, UDP)
    assert core.sources_tracked == 100
    assert len(core) == 0


def test_the_registrar_ignores_answers_to_other_attempts() -> None:
    identity = NodeIdentity.from_seed(generate_seed())
    registrar = Registrar(identity, os.urandom)
    assert registrar.on_registered(bytes(59)) is None
    registrar.hello()
    other = Challenge(os.urandom(32), os.urandom(16), 0, os.urandom(16)).serialize()
    assert registrar.on_challenge(other) is None
    assert registrar.on_challenge(b"garbage") is None
    assert registrar.on_refused(Refused(1, os.urandom(16)).serialize()) is None
    assert registrar.on_refused(b"") is None
