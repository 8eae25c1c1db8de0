"""Dial by node id through a relay (§17), over real loopback sockets: WebSocket and UDP, a
refused proof, a registration flood, and a relay that cannot read, alter or replay."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Callable, Hashable

import pytest

from seigr_stt import NodeConfig, STTNode, generate_seed
from seigr_stt.aio.relay import RelayLink, check_node_id, normalize_relay_url
from seigr_stt.constants import RelayPacketType
from seigr_stt.core.identity import NodeIdentity
from seigr_stt.exceptions import ConfigError, RelayError
from seigr_stt.relay import RelayConfig, RelayServer
from seigr_stt.relay.client import Registrar
from seigr_stt.relay.core import RelayDrop
from tests.aio.helpers import next_incoming_stream, wait_until, write_chunks
from tests.timing import SECOND

MIB = 1024 * 1024


@pytest.fixture
async def relay() -> AsyncIterator[RelayServer]:
    async with RelayServer(udp_port=0, ws_port=0) as server:
        yield server


@pytest.fixture
async def nodes(shared_seed: bytes) -> AsyncIterator[Callable[..., STTNode]]:
    made: list[STTNode] = []

    def make(**kwargs: object) -> STTNode:
        node = STTNode(generate_seed(), shared_seed, **kwargs)  # type: ignore[arg-type]
        made.append(node)
        return node

    yield make
    await asyncio.gather(*(node.stop() for node in made))


def url_of(relay: RelayServer, kind: str) -> str:
    url = relay.ws_url if kind == "ws" else relay.udp_url
    assert url is not None
    return url


@pytest.mark.parametrize("kind", ["ws", "udp"])
async def test_a_1_mib_stream_through_the_relay_by_node_id(
    relay: RelayServer, nodes: Callable[..., STTNode], kind: str
) -> None:
    url = url_of(relay, kind)
    # On loopback both nodes reach the addresses the relay observes: without migration off,
    # the session would move to the direct path (§18, tests/aio/test_migration.py).
    stay = NodeConfig(migration=False)
    server, client = nodes(server_mode=True, relays=[url], config=stay), nodes(config=stay)
    await server.start()
    await client.start()
    session = await client.connect(server.node_id.hex(), relays=[url], timeout=5 * SECOND)
    assert session.peer_node_id == server.node_id
    assert session.stats().transport == "relay"
    data = os.urandom(MIB)
    stream = await session.open_stream()
    writer = asyncio.ensure_future(write_chunks(stream, data))
    incoming = await next_incoming_stream(next(iter(server.session_manager.get_active_sessions())))
    async with asyncio.timeout(20 * SECOND):
        received = await incoming.read()
    await writer
    assert received == data
    assert relay.stats().bytes_forwarded > MIB
    if kind == "udp":  # the relay told each node its UDP source address (STUN-like)
        link = client.relay_link(url)
        assert link is not None
        assert link.observed == client.udp_address


async def test_dialling_a_node_not_registered_fails_fast(
    relay: RelayServer, nodes: Callable[..., STTNode]
) -> None:
    client = nodes(relays=[url_of(relay, "ws")])
    await client.start()
    with pytest.raises(RelayError, match="not registered there"):
        await client.connect(os.urandom(32), timeout=0.5 * SECOND)
    assert relay.stats().drops[RelayDrop.UNKNOWN_DESTINATION] >= 1


async def test_a_wrong_proof_of_key_is_refused_and_counted(relay: RelayServer) -> None:
    real = NodeIdentity.from_seed(generate_seed())
    stolen_id = NodeIdentity(os.urandom(32), real.static_public, real.node_id)
    registrar = Registrar(stolen_id, os.urandom)
    address = relay.udp_address
    assert address is not None
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.connect(address)
        async with asyncio.timeout(2 * SECOND):
            await loop.sock_sendall(sock, registrar.hello())
            register = registrar.on_challenge(await loop.sock_recv(sock, 100))
            assert register is not None
            await loop.sock_sendall(sock, register)
            assert registrar.on_refused(await loop.sock_recv(sock, 100)) == 1  # BAD_PROOF
    assert relay.stats().drops == {RelayDrop.BAD_PROOF: 1}
    assert relay.stats().registrations == 0
    # A relay link whose key does not match its claimed id gets a RelayError naming the reason.
    link = RelayLink(url_of(relay, "ws"), stolen_id, lambda *_: None, lambda: None)
    try:
        with pytest.raises(RelayError, match="proof"):
            await link.register(timeout=2 * SECOND)
    finally:
        await link.aclose()
    assert relay.stats().drops == {RelayDrop.BAD_PROOF: 2}


async def test_a_registration_flood_from_one_source_stays_bounded(
    nodes: Callable[..., STTNode],
) -> None:
    config = RelayConfig(max_registrations_per_source=16)
    async with RelayServer(udp_port=0, config=config) as relay:
        url = url_of(relay, "udp")
        server, client = nodes(server_mode=True, relays=[url]), nodes(relays=[url])
        await server.start()
        await client.start()
        address = relay.udp_address
        assert address is not None
        flooders = [
            Registrar(NodeIdentity(os.urandom(32), b"", b""), os.urandom) for _ in range(3000)
        ]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.2", 0))  # one source, not the nodes' 127.0.0.1
            sock.setblocking(False)
            for registrar in flooders:
                sock.sendto(registrar.hello(), address)
            await asyncio.sleep(0.2 * SECOND)
            answered = 0
            while True:
                try:
                    challenge = sock.recv(100)
                except BlockingIOError:
                    break
                for registrar in flooders:
                    register = registrar.on_challenge(challenge)
                    if register is not None:
                        sock.sendto(register, address)
                        answered += 1
                        break
        stats = relay.stats()
        assert answered <= config.control_burst + 5
        assert stats.drops[RelayDrop.RATE_LIMITED] >= 3000 - answered - 5
        assert stats.registrations <= 2 + config.max_registrations_per_source
        session = await client.connect(server.node_id, timeout=5 * SECOND)
        await session.send(b"still served")
        assert (await server.recv(timeout=5 * SECOND)).data == b"still served"
        await asyncio.gather(client.stop(), server.stop())


async def test_the_relay_cannot_read_and_its_replays_and_forgeries_are_dropped(
    relay: RelayServer, nodes: Callable[..., STTNode]
) -> None:
    url = url_of(relay, "udp")
    server, client = nodes(server_mode=True, relays=[url]), nodes(relays=[url])
    await server.start()
    await client.start()
    forwarded: list[bytes] = []
    honest = relay.core.datagrams_to_send

    def malicious() -> list[tuple[bytes, Hashable]]:
        # Records everything it forwards, and sends each record again and an altered copy.
        out = honest()
        forged: list[tuple[bytes, Hashable]] = []
        extra: list[tuple[bytes, Hashable]] = []
        for packet, addr in out:
            if packet[1] == RelayPacketType.DELIVER:
                forwarded.append(packet)
                if packet[35] == 5:  # an STT record (DATA): forge a copy first, replay it after
                    altered = bytearray(packet)
                    altered[-1] ^= 1
                    forged.append((bytes(altered), addr))
                    extra.append((packet, addr))
        return forged + out + extra

    relay.core.datagrams_to_send = malicious  # type: ignore[method-assign]
    secret = os.urandom(48)
    session = await client.connect(server.node_id, timeout=5 * SECOND)
    await session.send(secret * 3)
    assert (await server.recv(timeout=5 * SECOND)).data == secret * 3
    await wait_until(lambda: server.stats().drops.get("auth", 0) >= 1)
    everything = b"".join(forwarded)
    assert len(everything) > 3 * len(secret)
    for offset in range(0, len(secret) - 8):  # no 8 bytes of the plaintext appear
        assert secret[offset : offset + 8] not in everything
    drops = server.stats().drops
    assert drops["replay"] >= 1
    assert drops["auth"] >= 1
    with pytest.raises(TimeoutError):
        await server.recv(timeout=0.2 * SECOND)  # delivered once, nothing forged


def test_relay_urls_and_node_ids_are_checked() -> None:
    assert normalize_relay_url("ws://relay.example:80") == "ws://relay.example:80/stt"
    assert normalize_relay_url("wss://relay.example/r") == "wss://relay.example/r"
    assert normalize_relay_url("udp://[::1]:9400") == "udp://[::1]:9400"
    for bad in ("http://x:1", "udp://x", "udp://:1", "udp://x:99999"):
        with pytest.raises(ConfigError):
            normalize_relay_url(bad)
    with pytest.raises(TypeError):
        normalize_relay_url(b"udp://x:1")
    node_id = os.urandom(32)
    assert check_node_id(node_id.hex()) == node_id
    for bad_id in ("zz", node_id[:31], node_id.hex()[:62]):
        with pytest.raises(ConfigError):
            check_node_id(bad_id)
    with pytest.raises(TypeError):
        check_node_id(42)
    with pytest.raises(TypeError, match="not one URL"):
        STTNode(generate_seed(), generate_seed(), relays="udp://x:1")


async def test_connect_needs_a_relay_and_unreachable_relays_raise_relay_error(
    nodes: Callable[..., STTNode],
) -> None:
    node = nodes()
    await node.start()
    with pytest.raises(ConfigError, match="relays"):
        await node.connect(os.urandom(32))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))  # answers nothing
        port = silent.getsockname()[1]
        with pytest.raises(RelayError, match="did not answer"):
            await node.connect(
                os.urandom(32), relays=[f"udp://127.0.0.1:{port}"], timeout=0.3 * SECOND
            )
    with pytest.raises(RelayError, match="cannot open a WebSocket"):
        await node.connect(os.urandom(32), relays=[f"ws://127.0.0.1:{port}/stt"], timeout=1)
