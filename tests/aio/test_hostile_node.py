"""Hostile input against real nodes over loopback sockets (reliability.md, "Hostile input").

Every case: no exception escapes, no state changes, no reply but a cookie (or the stored
RESPONSE of a retransmitted INIT), a drop counter moves, and the legitimate session keeps
working. The floods check the denial-of-service bounds of docs/protocol.md §10: non-members cost
one BLAKE2b each; members' INITs cost at most one Diffie-Hellman each within the per-source token
bucket and the half-open table, whatever the number of source ports.

All traffic stays on 127.0.0.1; every loop is bounded in count and time.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import tracemalloc
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from seigr_stt import (
    ConfigError,
    HandshakeTimeout,
    NodeConfig,
    SessionState,
    STTNode,
    STTSession,
    generate_seed,
)
from seigr_stt.constants import (
    CLOSE_PROTOCOL_ERROR,
    COOKIE_NONCE_BYTES,
    COOKIE_REPLY_SIZE,
    MAC_BYTES,
    NOISE_PROTOCOL_NAME,
    PACKET_COOKIE_REPLY,
    PACKET_DATA,
    PACKET_HANDSHAKE_FINAL,
    PACKET_HANDSHAKE_INIT,
    PACKET_HANDSHAKE_RESPONSE,
    PROLOGUE,
    PROTOCOL_VERSION,
    RECORD_HEADER_SIZE,
    REJECT_AFTER_MESSAGES,
    REPLAY_WINDOW_PACKETS,
)
from seigr_stt.core import crypto
from seigr_stt.core import handshakes as handshakes_module
from seigr_stt.core.cookie import mac1_of
from seigr_stt.core.frames import Datagram, Stream, serialize_frames
from seigr_stt.core.handshake import ResponderHandshake
from seigr_stt.core.identity import NodeIdentity, SharedSecrets
from seigr_stt.core.noise import SymmetricState
from seigr_stt.core.stats import DropReason
from tests.aio.helpers import (
    NodeFactory,
    UDPRelay,
    connect,
    loopback_udp_socket,
    receive_n,
    wait_until,
)
from tests.aio.hostile import (
    core_session,
    drops,
    endpoint_of,
    forge_record,
    member_init,
    recv_all,
    round_trip,
)
from tests.timing import MS, SECOND

INIT = PACKET_HANDSHAKE_INIT
RESPONSE = PACKET_HANDSHAKE_RESPONSE
FINAL = PACKET_HANDSHAKE_FINAL
COOKIE = PACKET_COOKIE_REPLY
DATA = PACKET_DATA

# Curve25519 points of small order (and non-canonical encodings of them): a DH with any of
# them gives an all-zero or predictable secret, which the responder must refuse (§4.4 step 6).
LOW_ORDER_POINTS = [
    bytes(32),
    (1).to_bytes(32, "little"),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
    bytes.fromhex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    bytes.fromhex("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    bytes.fromhex("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
]


# -- helpers --------------------------------------------------------------------------------------
def craft_init(
    secrets: SharedSecrets, e_pub: bytes, payload: bytes, *, prologue: bytes = PROLOGUE
) -> bytes:
    """An INIT around any ephemeral key and payload, with a correct mac1 (message 1 has no DH
    and no PSK: any member can write one, even around a point with no private key)."""
    state = SymmetricState(NOISE_PROTOCOL_NAME)
    state.mix_hash(prologue)
    state.mix_hash(e_pub)
    state.mix_key(e_pub)
    body = bytes([PROTOCOL_VERSION, INIT, 0, 0]) + os.urandom(4)
    body += e_pub + state.encrypt_and_hash(payload)
    return body + crypto.mac(secrets.mac1_key, body) + bytes(MAC_BYTES)


def with_mac1(secrets: SharedSecrets, body: bytes) -> bytes:
    """Finish any handshake body with a valid mac1 and a zero mac2."""
    return body + crypto.mac(secrets.mac1_key, body) + bytes(MAC_BYTES)


def open_cookie(secrets: SharedSecrets, reply: bytes, init: bytes) -> bytes:
    """Decrypt a COOKIE_REPLY answering ``init`` (what a member initiator does)."""
    nonce = reply[8 : 8 + COOKIE_NONCE_BYTES]
    return crypto.xaead_decrypt(
        secrets.cookie_key, nonce, mac1_of(init), reply[8 + COOKIE_NONCE_BYTES :]
    )


async def settle(node: STTNode, sent: int, base: int, *, slack: int = 0) -> None:
    """Wait until the node has read all but ``slack`` of ``sent`` datagrams sent since ``base``
    (keeps the flood inside the socket buffers: nothing is lost to the kernel)."""
    ep = endpoint_of(node)
    await wait_until(
        lambda: ep.counters.packets_received - base >= sent - slack, "the node to read"
    )


async def quiescent(scene: Scene) -> None:
    """Wait until the legitimate session owes nothing on either side (no ACK due, nothing in
    flight): a delayed ACK sent during a burst would look like an answer to the burst."""
    sid = scene.session.session_id

    def idle() -> bool:
        for node in (scene.server, scene.client):
            session = endpoint_of(node).sessions.get(sid)
            if session is None:
                continue
            if session.acks.ack_needed or session.recovery.bytes_in_flight:
                return False
        return True

    await wait_until(idle, "the session to settle")


@dataclass
class Quiet:
    """Checks that a hostile burst changed nothing the node shows: no packet sent, no session
    created or closed, the session's address and key version unchanged."""

    node: STTNode
    session_id: bytes
    sent: int = 0
    created: int = 0
    closed: int = 0
    addr: Any = None
    key_version: int = 0
    drops_total: int = 0

    def __post_init__(self) -> None:
        ep = endpoint_of(self.node)
        self.sent = ep.counters.packets_sent
        self.created = ep.counters.sessions_created
        self.closed = ep.counters.sessions_closed
        session = ep.sessions[self.session_id]
        self.addr = session.addr
        self.key_version = session.keys.send_epoch
        self.drops_total = sum(ep.drops.values())

    def new_drops(self) -> int:
        return sum(endpoint_of(self.node).drops.values()) - self.drops_total

    def check(self) -> None:
        ep = endpoint_of(self.node)
        assert ep.counters.packets_sent == self.sent, "the node answered hostile input"
        assert ep.counters.sessions_created == self.created
        assert ep.counters.sessions_closed == self.closed
        session = ep.sessions[self.session_id]
        assert session.addr == self.addr
        assert session.keys.send_epoch == self.key_version


@dataclass
class Scene:
    """A server, a client connected over UDP through a capturing relay, and the raw packets of
    the handshake and of one message each way."""

    server: STTNode
    client: STTNode
    session: STTSession
    relay: UDPRelay
    secrets: SharedSecrets
    raw: socket.socket
    captured: dict[str, bytes] = field(default_factory=dict)

    @property
    def server_addr(self) -> tuple[str, int]:
        assert self.server.udp_address is not None
        return self.server.udp_address

    def send_raw(self, data: bytes) -> None:
        self.raw.sendto(data, self.server_addr)


@pytest.fixture
async def scene(make_node: NodeFactory, shared_seed: bytes) -> AsyncIterator[Scene]:
    server = await make_node(ws=False)
    client = await make_node(server_mode=False, ws=False)
    assert server.udp_address is not None
    relay = UDPRelay(server.udp_address)
    raw = loopback_udp_socket()
    try:
        session = await client.connect_udp(*relay.address, timeout=10 * SECOND)
        scene = Scene(server, client, session, relay, SharedSecrets.from_seed(shared_seed), raw)
        await round_trip(session, client, server, b"setup")
        by_type: dict[int, list[bytes]] = {}
        for data in relay.to_server + relay.to_client:
            by_type.setdefault(data[1], []).append(data)
        scene.captured = {
            "init": by_type[INIT][0],
            "response": by_type[RESPONSE][0],
            "final": by_type[FINAL][0],
            "record_up": next(d for d in relay.to_server if d[1] == DATA),
            "record_down": next(d for d in relay.to_client if d[1] == DATA),
        }
        yield scene
        await client.stop()  # through the relay, so both sides close at once
    finally:
        raw.close()
        relay.close()


async def hostile_burst(scene: Scene, packets: list[bytes], *, from_client: bool = False) -> int:
    """Send ``packets`` to the server (from a stranger's socket, or from the client's own
    address through the relay) and wait until each is counted as a drop; check that nothing
    else happened and that the session still works. Returns the number of drops."""
    await quiescent(scene)
    quiet = Quiet(scene.server, scene.session.session_id)
    for i, data in enumerate(packets):
        if from_client:
            scene.relay.inject(data)
        else:
            scene.send_raw(data)
        if i % 200 == 199:
            await wait_until(lambda: quiet.new_drops() >= i - 100, "the node to read")  # noqa: B023
    await wait_until(lambda: quiet.new_drops() == len(packets), "every packet to be dropped")
    quiet.check()
    assert recv_all(scene.raw, scene.server_addr) == []  # nothing sent back to the stranger
    await round_trip(scene.session, scene.client, scene.server, b"after")
    return quiet.new_drops()


# -- 1. truncated, short and long packets of every type -------------------------------------------
async def test_truncated_packets_of_every_type_and_length(scene: Scene) -> None:
    cookie_reply = (
        bytes([PROTOCOL_VERSION, COOKIE, 0, 0]) + os.urandom(4) + os.urandom(COOKIE_REPLY_SIZE - 8)
    )
    samples = {
        "init": (scene.captured["init"], 8),
        "response": (scene.captured["response"], 12),
        "final": (scene.captured["final"], 12),
        "cookie": (cookie_reply, 8),
        "record": (scene.captured["record_up"], RECORD_HEADER_SIZE),
    }
    packets: list[bytes] = []
    for packet, header in samples.values():
        packets += [packet[:n] for n in range(header + 16 + 1)]
        packets += [packet[:-1], packet + b"\x00"]  # one byte short, one byte long
    before = drops(scene.server)
    assert await hostile_burst(scene, packets) == len(packets)
    moved = drops(scene.server) - before
    assert set(moved) <= {"short", "size", "malformed", "mac1", "unknown_index", "replay"}
    assert min(moved["size"], moved["short"], moved["mac1"]) > 0


# -- 2. unknown and closed sessions, another session's record ------------------------------------
async def test_records_for_unknown_closed_and_other_sessions(
    scene: Scene, make_node: NodeFactory
) -> None:
    record = scene.captured["record_up"]
    # A second client with its own session; its record relabelled with the first session's id.
    other = await make_node(server_mode=False, ws=False)
    other_session = await other.connect_udp(*scene.server_addr, timeout=10 * SECOND)
    other_core = core_session(other, other_session.session_id)
    foreign = forge_record(other_core, b"")
    relabelled = foreign[:4] + scene.session.session_id + foreign[12:]
    packets = [
        record[:4] + os.urandom(8) + record[12:],  # unknown session id
        relabelled,  # a valid record of another session, under this session's id
        foreign[:4] + scene.session.session_id[:4] + foreign[8:],  # half of each id
    ]
    before = drops(scene.server)
    await hostile_burst(scene, packets)
    moved = drops(scene.server) - before
    # The relabelled record fails authentication, or the replay pre-check when its counter was
    # already seen on this session: either way it is dropped before it changes anything.
    assert moved["unknown_session"] == 2
    assert moved["auth"] + moved["replay"] == 1
    assert sum(moved.values()) == 3
    # A closed session's id: a tombstone drop.
    stale = forge_record(other_core, b"")
    await other_session.close()
    await wait_until(
        lambda: other_session.session_id not in endpoint_of(scene.server).sessions, "the close"
    )
    before = drops(scene.server)
    await hostile_burst(scene, [stale, foreign])
    assert drops(scene.server) - before == Counter({"tombstone": 2})


# -- 3., 4., 5. replays, reordering, counter limits ------------------------------------------------
async def test_replayed_records_are_dropped_before_and_after_a_rotation(scene: Scene) -> None:
    record = scene.captured["record_up"]
    before = drops(scene.server)
    await hostile_burst(scene, [record, record], from_client=True)
    await scene.session.rotate_key(timeout=10 * SECOND)
    await hostile_burst(scene, [record, scene.relay.to_server[-1]], from_client=True)
    moved = drops(scene.server) - before
    assert set(moved) <= {"replay", "epoch"}
    assert moved["replay"] >= 3


async def test_reordered_records_inside_the_window_are_accepted_once(scene: Scene) -> None:
    # Eight authentic records (sealed with the client's keys, counters in order), delivered
    # in reverse order from the client's address: each accepted once. Then all replayed.
    client_core = core_session(scene.client, scene.session.session_id)
    records = [
        forge_record(client_core, serialize_frames([Datagram(b"reordered %d" % i)]))
        for i in range(8)
    ]
    peer = scene.server.session_manager.get_session(scene.session.session_id)
    assert peer is not None
    for data in reversed(records):
        scene.relay.inject(data)
    got: list[bytes] = []
    async with asyncio.timeout(10 * SECOND):
        async for datagram in peer.datagrams():
            got.append(datagram)
            if len(got) == len(records):
                break
    assert got == [b"reordered %d" % i for i in reversed(range(8))]
    before = drops(scene.server)
    await hostile_burst(scene, records, from_client=True)
    assert drops(scene.server) - before == Counter({"replay": len(records)})


async def test_a_record_older_than_the_window_is_dropped_before_decrypting(scene: Scene) -> None:
    client_core = core_session(scene.client, scene.session.session_id)
    held = forge_record(client_core, b"")  # authentic, never delivered
    newer = [forge_record(client_core, b"") for _ in range(REPLAY_WINDOW_PACKETS + 64)]
    ep = endpoint_of(scene.server)
    start = ep.counters.packets_received
    for i, data in enumerate(newer):
        scene.relay.inject(data)
        if i % 256 == 255:
            await wait_until(lambda: ep.counters.packets_received - start >= i - 256)  # noqa: B023
    await wait_until(
        lambda: ep.counters.packets_received - start >= len(newer), "the newer records"
    )
    peer = scene.server.session_manager.get_session(scene.session.session_id)
    assert peer is not None
    auth_failures = peer.get_statistics()["auth_failures"]
    before = drops(scene.server)
    await hostile_burst(scene, [held], from_client=True)
    assert drops(scene.server) - before == Counter({"replay": 1})
    assert peer.get_statistics()["auth_failures"] == auth_failures  # no AEAD was attempted


async def test_counters_at_and_beyond_the_reject_limit(scene: Scene) -> None:
    record = scene.captured["record_up"]
    packets = [
        record[:12] + counter.to_bytes(8, "big") + record[20:]
        for counter in (REJECT_AFTER_MESSAGES, REJECT_AFTER_MESSAGES + 1, (1 << 64) - 1)
    ]
    before = drops(scene.server)
    await hostile_burst(scene, packets, from_client=True)
    assert drops(scene.server) - before == Counter({"replay": 3})


# -- 6. every single-bit flip ---------------------------------------------------------------------
async def test_every_bit_flip_of_a_record_is_dropped(scene: Scene) -> None:
    record = scene.captured["record_up"]
    flips = []
    for bit in range(len(record) * 8):
        mutated = bytearray(record)
        mutated[bit // 8] ^= 1 << (bit % 8)
        flips.append(bytes(mutated))
    before = drops(scene.server)
    assert await hostile_burst(scene, flips, from_client=True) == len(flips)
    moved = drops(scene.server) - before
    assert min(moved["auth"], moved["unknown_session"], moved["epoch"]) > 0


async def test_every_bit_flip_of_an_init_is_dropped_without_an_answer(scene: Scene) -> None:
    init = member_init(scene.secrets, NodeIdentity.from_seed(generate_seed())).init_packet()
    flips = []
    # Every bit but those of mac2: mac2 is checked only under load, so an INIT with another
    # mac2 is the same INIT to a responder that is not (and is answered).
    for bit in range((len(init) - MAC_BYTES) * 8):
        mutated = bytearray(init)
        mutated[bit // 8] ^= 1 << (bit % 8)
        flips.append(bytes(mutated))
    before = drops(scene.server)
    await hostile_burst(scene, flips)
    moved = drops(scene.server) - before
    assert set(moved) <= {"mac1", "version", "type", "malformed", "size", "short"}
    assert moved["mac1"] >= (len(init) - MAC_BYTES) * 8 - 64


# -- 7. epoch abuse -------------------------------------------------------------------------------
async def test_epoch_abuse_never_promotes_a_key(scene: Scene) -> None:
    client_core = core_session(scene.client, scene.session.session_id)
    record = scene.captured["record_up"]
    epoch = record[2]
    skipped = [record[:2] + bytes([(epoch + k) % 256]) + record[3:] for k in (2, 3, 128)]
    next_bad_tag = record[:2] + bytes([(epoch + 1) % 256]) + record[3:-1] + b"\x00"
    forged_echo = record[:3] + bytes([(record[3] + 1) % 256]) + record[4:]
    # Sealed with the real key but labelled with a skipped epoch: no key slot, dropped.
    sealed_skipped = forge_record(client_core, b"", epoch=(client_core.keys.send_epoch + 2) % 256)
    before = drops(scene.server)
    await hostile_burst(
        scene, [*skipped, next_bad_tag, forged_echo, sealed_skipped], from_client=True
    )
    moved = drops(scene.server) - before
    assert set(moved) <= {"epoch", "auth", "replay"}
    assert moved["epoch"] >= 4


# -- 8. oversized, huge length headers, text frames ----------------------------------------------
async def test_oversized_datagrams_and_huge_length_headers(scene: Scene) -> None:
    record = scene.captured["record_up"]
    init_header = bytes([PROTOCOL_VERSION, INIT, 0, 0])
    e_pub = crypto.public_key(os.urandom(32))
    packets = [
        init_header + os.urandom(60_000),  # far above the handshake limit: size
        record[:20] + os.urandom(59_980),  # 60,000 bytes: not a padded record, malformed
        # 60,004 bytes, well formed, for the live session: one AEAD attempt, then dropped
        record[:12] + (1 << 40).to_bytes(8, "big") + os.urandom(16 * 3749),
        bytes([PROTOCOL_VERSION, RESPONSE, 0, 0]) + os.urandom(1100),
        # msgpack length headers claiming 4 GiB, behind a valid mac1: refused as "payload"
        craft_init(scene.secrets, e_pub, b"\x81\xa1p\xc6\xff\xff\xff\xff" + bytes(220)),
        craft_init(scene.secrets, e_pub, b"\xdf\xff\xff\xff\xff" + bytes(220)),
        craft_init(scene.secrets, e_pub, b"\xdd\xff\xff\xff\xff" + bytes(220)),
    ]
    before = drops(scene.server)
    await hostile_burst(scene, packets)
    assert drops(scene.server) - before == Counter(
        {"size": 2, "payload": 3, "malformed": 1, "auth": 1}
    )


async def test_an_authenticated_huge_message_length_closes_only_that_session(
    scene: Scene,
) -> None:
    # A member peer announces a message of 2**62 - 1 bytes on a message channel: a protocol
    # violation, so that session is closed; the node and its other sessions carry on.
    client_core = core_session(scene.client, scene.session.session_id)
    frames = serialize_frames([Stream((5 << 2) | 2, 0, False, b"\xff" * 8 + b"x")])
    scene.relay.inject(forge_record(client_core, frames))
    peer = scene.server.session_manager.get_session(scene.session.session_id)
    assert peer is not None
    await wait_until(lambda: peer.state is SessionState.CLOSED, "the session to close")
    assert peer.close_code == CLOSE_PROTOCOL_ERROR
    assert "message" in peer.close_reason
    # The node carries on: a new session works.
    session = await scene.client.connect_udp(*scene.server_addr, timeout=10 * SECOND)
    await round_trip(session, scene.client, scene.server, b"new session")


# -- 9. handshake floods --------------------------------------------------------------------------
class _CountingResponder(ResponderHandshake):
    """Counts responder handshakes: each costs the node its Diffie-Hellman operations."""

    created = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        type(self).created += 1
        super().__init__(*args, **kwargs)


@pytest.fixture
def count_dh(monkeypatch: pytest.MonkeyPatch) -> type[_CountingResponder]:
    _CountingResponder.created = 0
    monkeypatch.setattr(handshakes_module, "ResponderHandshake", _CountingResponder)
    return _CountingResponder


FLOOD_PORTS = 50
FLOOD_BAD = 10_000
FLOOD_VALID = 2_000
#: Load (mac2 required) from 16 half-open handshakes: below the default burst of 40, so the
#: flood meets every defence in turn (mac1, cookie, token bucket); the half-open bound has a
#: test of its own (one host cannot fill the table with the default bucket).
FLOOD_CONFIG = NodeConfig(handshake_load_threshold=16)


async def test_handshake_flood_costs_bounded_cpu_and_memory(
    make_node: NodeFactory,
    shared_seed: bytes,
    count_dh: type[_CountingResponder],
) -> None:
    config = FLOOD_CONFIG
    server = await make_node(ws=False, config=config)
    ep = endpoint_of(server)
    assert server.udp_address is not None
    target = server.udp_address
    secrets = SharedSecrets.from_seed(shared_seed)

    # A legitimate peer with a session, and an echo service on the server.
    steady = await make_node(server_mode=False, ws=False)
    steady_session = await steady.connect_udp(*target, timeout=10 * SECOND)

    async def echo() -> None:
        async for packet in server.receive():
            peer = server.session_manager.get_session(packet.session_id)
            if peer is not None:
                await peer.send(b"echo:" + packet.data, stream_id=packet.stream_id)

    echo_task = asyncio.create_task(echo())

    # The flood: prebuilt, so building it is not measured.
    identity = NodeIdentity.from_seed(generate_seed())
    valid = [member_init(secrets, identity) for _ in range(FLOOD_VALID)]
    by_index = {h.local_index: h for h in valid}
    header = bytes([PROTOCOL_VERSION, INIT, 0, 0])
    bad = [header + os.urandom(254) for _ in range(FLOOD_BAD)]  # 258 bytes; mac1 is random
    plan: list[tuple[int, bytes]] = []  # (socket, packet)
    vi = 0
    for i, packet in enumerate(bad):
        plan.append((i % FLOOD_PORTS, packet))
        if i % 5 == 4:
            plan.append((len(plan) % FLOOD_PORTS, valid[vi].init_packet()))
            vi += 1
    assert (vi, len(plan)) == (FLOOD_VALID, FLOOD_BAD + FLOOD_VALID)
    sockets = [loopback_udp_socket() for _ in range(FLOOD_PORTS)]
    answered: set[bytes] = set()
    replies: Counter[int] = Counter()
    sent = 0

    def answer_cookies() -> int:
        """Read the flood sockets; answer each cookie once with mac2 (what a member does)."""
        resent = 0
        for sock in sockets:
            for data in recv_all(sock, target):
                replies[data[1]] += 1
                if data[1] == COOKIE and data[4:8] in by_index and data[4:8] not in answered:
                    handshake = by_index[data[4:8]]
                    cookie = open_cookie(secrets, data, handshake.init_packet())
                    sock.sendto(handshake.init_packet(cookie), target)
                    answered.add(data[4:8])
                    resent += 1
        return resent

    legit_result: dict[str, Any] = {}

    async def legit_peer() -> None:
        """A new legitimate client connects during the flood and exchanges data."""
        client = await make_node(server_mode=False, ws=False)
        started = time.perf_counter()
        session = await client.connect_udp(*target, timeout=20 * SECOND)
        legit_result["connect_s"] = time.perf_counter() - started
        await session.send(b"hello during the flood", stream_id=1)
        async with asyncio.timeout(10 * SECOND):
            async for packet in client.receive():
                legit_result["echo"] = packet.data
                break

    async def steady_traffic() -> None:
        """The established session keeps exchanging messages through the flood."""
        got: list[bytes] = []
        for i in range(20):
            await steady_session.send(b"steady %d" % i, stream_id=3)
            (packet,) = await receive_n(steady, 1)
            got.append(packet.data)
            await asyncio.sleep(0.02)
        legit_result["steady"] = got

    count_dh.created = 0
    base_received = ep.counters.packets_received
    before = drops(server)
    tracemalloc.start()
    mem_base, _ = tracemalloc.get_traced_memory()
    cpu0, t0 = time.process_time(), time.perf_counter()
    steady_task = asyncio.create_task(steady_traffic())
    legit_task: asyncio.Task[None] | None = None
    try:
        for i, (sock_i, packet) in enumerate(plan):
            sockets[sock_i].sendto(packet, target)
            sent += 1
            if i % 100 == 99:
                sent += answer_cookies()
                await settle(server, sent, base_received, slack=300)
            if i == len(plan) // 4:
                legit_task = asyncio.create_task(legit_peer())
        flood_s = time.perf_counter() - t0
        for _ in range(20):  # the last cookies and their answers
            sent += answer_cookies()
            await settle(server, sent, base_received)
            await asyncio.sleep(0.01)
        mem_now, mem_peak = tracemalloc.get_traced_memory()
        cpu_s = time.process_time() - cpu0
        assert legit_task is not None
        await asyncio.wait_for(legit_task, 30 * SECOND)
        await asyncio.wait_for(steady_task, 30 * SECOND)
    finally:
        tracemalloc.stop()
        echo_task.cancel()
        for sock in sockets:
            sock.close()
    elapsed = time.perf_counter() - t0
    moved = drops(server) - before

    # Non-members: every bad mac1 dropped, unanswered, no DH.
    assert moved["mac1"] == FLOOD_BAD
    # Members: cookies under load, the token bucket, and a bounded half-open table.
    assert moved["cookie_required"] >= FLOOD_VALID // 2
    assert moved["rate_limited"] > 0
    assert moved["half_open_full"] == 0  # one host cannot fill it with the defaults (§10)
    assert set(moved) <= {"mac1", "cookie_required", "rate_limited", "duplicate_final"}
    # CPU: Diffie-Hellman for INITs without a cookie only until the half-open table reaches
    # the load threshold (their entries outlive the test), then only within the host's bucket
    # (burst + rate x time) for INITs proven by their cookie, the legit peer included (§10).
    dh_budget = (
        config.handshake_load_threshold
        + 1  # the legit peer's handshake completes: its half-open slot frees once
        + config.handshake_burst_per_source
        + config.handshake_rate_per_source_per_s * (elapsed + 0.5)
    )
    assert count_dh.created <= dh_budget
    assert replies[RESPONSE] <= count_dh.created
    assert set(replies) <= {COOKIE, RESPONSE}
    # Memory: the half-open table and the bucket table are bounded; no session from the flood.
    assert ep.handshakes.half_open <= min(config.handshake_half_open_max, count_dh.created)
    assert len(ep.handshakes.buckets) <= 2  # one host (and nothing else) was seen
    assert set(ep.sessions) == {s.session_id for s in server.session_manager.get_active_sessions()}
    assert len(ep.sessions) == 2  # the steady peer and the new legitimate peer
    assert mem_peak - mem_base < 16 * 1024 * 1024
    # The legitimate peers.
    assert legit_result["echo"] == b"echo:hello during the flood"
    assert legit_result["steady"] == [b"echo:steady %d" % i for i in range(20)]
    assert steady_session.is_active()
    print(
        f"\nflood: {FLOOD_BAD} bad-mac1 + {FLOOD_VALID} valid-mac1 INITs from {FLOOD_PORTS} "
        f"ports (+{len(answered)} cookie answers) in {flood_s:.2f} s, "
        f"{(FLOOD_BAD + FLOOD_VALID) / flood_s:.0f} packets/s; process CPU {cpu_s:.2f} s "
        f"({cpu_s / sent * 1e6:.0f} us/packet, flooder included); responder DH "
        f"{count_dh.created} (budget {dh_budget:.0f}); half-open {ep.handshakes.half_open}; "
        f"replies {dict(replies)}; traced memory peak +{(mem_peak - mem_base) / 1024:.0f} KiB, "
        f"end +{(mem_now - mem_base) / 1024:.0f} KiB; legit connect "
        f"{legit_result['connect_s']:.2f} s; drops {dict(moved)}"
    )


async def test_half_open_table_is_bounded(
    make_node: NodeFactory, shared_seed: bytes, count_dh: type[_CountingResponder]
) -> None:
    config = NodeConfig(handshake_half_open_max=8, handshake_load_threshold=8)
    server = await make_node(ws=False, config=config)
    assert server.udp_address is not None
    secrets = SharedSecrets.from_seed(shared_seed)
    identity = NodeIdentity.from_seed(generate_seed())
    sockets = [loopback_udp_socket() for _ in range(20)]
    try:
        before = drops(server)
        for sock in sockets:
            sock.sendto(member_init(secrets, identity).init_packet(), server.udp_address)
        await wait_until(lambda: sum((drops(server) - before).values()) == 12, "the drops")
        await asyncio.sleep(50 * MS)
        answers = [d for sock in sockets for d in recv_all(sock, server.udp_address)]
    finally:
        for sock in sockets:
            sock.close()
    assert drops(server) - before == Counter({"half_open_full": 12})
    assert count_dh.created == 8
    assert endpoint_of(server).handshakes.half_open == 8
    assert sorted(d[1] for d in answers) == [RESPONSE] * 8  # no cookie: the table is full


async def test_token_bucket_limits_one_host_on_every_port_and_transport(
    make_node: NodeFactory, shared_seed: bytes, count_dh: type[_CountingResponder]
) -> None:
    """A host proven by its cookie spends one bucket, whatever its port or transport."""
    # Refills too slow to return a token during the test (one per 11 days), so the counts below
    # are exact whatever the clock does; the refill itself is tests/core/test_ratelimit.py's.
    config = NodeConfig(
        handshake_burst_per_source=5,
        handshake_rate_per_source_per_s=1e-6,
        handshake_burst_unproven=1,
        handshake_rate_unproven_per_s=1e-6,
    )
    server = await make_node(config=config)
    assert server.udp_address is not None
    assert server.ws_url is not None
    udp_address = server.udp_address
    secrets = SharedSecrets.from_seed(shared_seed)
    identity = NodeIdentity.from_seed(generate_seed())
    sockets = [loopback_udp_socket() for _ in range(11)]
    try:
        before = drops(server)
        # The node-wide bucket of INITs without a cookie holds one: spent here.
        sockets[0].sendto(member_init(secrets, identity).init_packet(), udp_address)
        assert (await next_reply(sockets[0], udp_address))[1] == RESPONSE
        # From now on an INIT needs the cookie of its address; with it, it spends its host's
        # bucket: 5 tokens for 10 UDP ports and 5 WebSocket connections of 127.0.0.1.
        for sock in sockets[1:]:
            handshake = member_init(secrets, identity)
            sock.sendto(handshake.init_packet(), udp_address)
            reply = await next_reply(sock, udp_address)
            assert reply[1] == COOKIE
            cookie = open_cookie(secrets, reply, handshake.init_packet())
            sock.sendto(handshake.init_packet(cookie), udp_address)

        def proven_handled() -> int:
            return (drops(server) - before)["rate_limited"] + count_dh.created - 1

        await wait_until(lambda: proven_handled() == 10, "the proven INITs over UDP")
        for i in range(5):
            async with ws_connect(server.ws_url, compression=None, proxy=None) as ws:
                handshake = member_init(secrets, identity)
                await ws.send(handshake.init_packet())
                answer = await ws.recv()
                assert isinstance(answer, bytes)
                assert answer[1] == COOKIE
                cookie = open_cookie(secrets, answer, handshake.init_packet())
                await ws.send(handshake.init_packet(cookie))
                await wait_until(lambda: proven_handled() == 11 + i, "the proven INIT")  # noqa: B023
        await asyncio.sleep(50 * MS)
    finally:
        for sock in sockets:
            sock.close()
    moved = drops(server) - before
    assert moved == Counter({"cookie_required": 15, "rate_limited": 10})
    # One bucket for the host: its 5 tokens, then nothing, on 10 UDP ports and over WebSocket
    # alike (a bucket per port would have let all 10 UDP INITs through, one per transport 10).
    assert count_dh.created == 1 + 5


async def test_replayed_inits_from_a_hosts_address_do_not_lock_it_out(
    make_node: NodeFactory, shared_seed: bytes, count_dh: type[_CountingResponder]
) -> None:
    """Audit F5 (r15): one INIT, captured once, replayed many times with the address of the
    host that wants to connect (on loopback every sender is that host). The replays never spend
    the host's own tokens: they drain only the node-wide bucket of unproven INITs, then get
    cookie replies; the host proves its address with the cookie it receives and connects."""
    config = NodeConfig(
        handshake_burst_per_source=5,
        handshake_rate_per_source_per_s=1e-6,
        handshake_burst_unproven=10,
        handshake_rate_unproven_per_s=1e-6,
    )
    server = await make_node(config=config, ws=False)
    client = await make_node(server_mode=False, ws=False)
    assert server.udp_address is not None
    captured = member_init(
        SharedSecrets.from_seed(shared_seed), NodeIdentity.from_seed(generate_seed())
    ).init_packet()
    spoofer = loopback_udp_socket()
    try:
        for _ in range(200):
            spoofer.sendto(captured, server.udp_address)
        await wait_until(lambda: sum(drops(server).values()) >= 190, "the replays")
        replies = recv_all(spoofer, server.udp_address)
        session = await client.connect_udp(*server.udp_address, timeout=10 * SECOND)
    finally:
        spoofer.close()
    assert session.is_active()
    # One DH for the captured INIT, one for the host; 9 stored RESPONSEs, then only cookies.
    assert Counter(r[1] for r in replies) == Counter({RESPONSE: 10, COOKIE: 190})
    assert all(len(r) < len(captured) for r in replies)  # never more than the request
    assert count_dh.created == 2
    assert drops(server)["rate_limited"] == 0
    await round_trip(session, client, server, b"in despite the replays")


async def next_reply(sock: socket.socket, source: tuple[str, int]) -> bytes:
    """The next datagram ``sock`` receives from ``source`` (within the helpers' bound); strays
    from other tests' nodes are skipped, as in :func:`recv_all`."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(10 * SECOND):
        while True:
            data, sender = await loop.sock_recvfrom(sock, 65535)
            if sender[:2] == source[:2]:
                return data


async def test_replayed_init_and_replies_for_unknown_indexes(
    scene: Scene, count_dh: type[_CountingResponder]
) -> None:
    ep = endpoint_of(scene.server)
    init = member_init(scene.secrets, NodeIdentity.from_seed(generate_seed())).init_packet()
    scene.send_raw(init)
    first = await next_reply(scene.raw, scene.server_addr)
    assert first[1] == RESPONSE
    half_open = ep.handshakes.half_open
    # The same INIT again: the stored RESPONSE, byte for byte; no new state, no DH.
    scene.send_raw(init)
    assert await next_reply(scene.raw, scene.server_addr) == first
    assert ep.handshakes.half_open == half_open
    assert count_dh.created == 1
    # RESPONSE and FINAL (valid mac1) for indexes nobody uses; our own RESPONSE sent back.
    unknown = [
        with_mac1(
            scene.secrets, bytes([PROTOCOL_VERSION, kind, 0, 0]) + os.urandom(8) + os.urandom(100)
        )
        for kind in (RESPONSE, FINAL)
    ]
    before = drops(scene.server)
    await hostile_burst(scene, [*unknown, first, scene.captured["response"]])
    assert drops(scene.server) - before == Counter({"unknown_index": 4})
    # The client's INIT and FINAL replayed after the handshake: the INIT of a completed
    # handshake is refused unanswered and without a DH (§10); the replayed FINAL is a
    # byte-identical duplicate, answered to the session's address only.
    before = drops(scene.server)
    scene.send_raw(scene.captured["init"])
    await wait_until(lambda: drops(scene.server)["replayed_init"] > before["replayed_init"])
    assert count_dh.created == 1
    scene.send_raw(scene.captured["final"])
    await wait_until(lambda: drops(scene.server)["duplicate_final"] > before["duplicate_final"])
    assert recv_all(scene.raw, scene.server_addr) == []
    assert drops(scene.server) - before == Counter({"duplicate_final": 1, "replayed_init": 1})
    await round_trip(scene.session, scene.client, scene.server, b"after replays")


# -- 10., 11., 12., 13. wrong seed, version, prologue, low-order points, reflection -------------
async def test_wrong_shared_seed_gets_silence(make_node: NodeFactory) -> None:
    server = await make_node(ws=False)
    stranger = await make_node(server_mode=False, ws=False, shared_seed=generate_seed())
    assert server.udp_address is not None
    sent_before = server.get_stats()["packets_sent"]
    with pytest.raises(HandshakeTimeout):
        await stranger.connect_udp(*server.udp_address, timeout=1500 * MS)
    assert server.get_stats()["drops"]["mac1"] >= 1
    assert server.get_stats()["packets_sent"] == sent_before
    assert endpoint_of(server).live_handshakes() == 0


async def test_version_prologue_and_low_order_points(scene: Scene) -> None:
    init = member_init(scene.secrets, NodeIdentity.from_seed(generate_seed())).init_packet()
    e_pub = crypto.public_key(os.urandom(32))
    payload = b"\x84\xa1i\xc4\x04" + os.urandom(4) + b"\xa1t\x01\xa1c\x00\xa1p\xc4\xc8" + bytes(200)
    packets = [
        bytes([3]) + init[1:],  # another version (mac1 now wrong): never a fallback
        craft_init(scene.secrets, e_pub, payload, prologue=b"seigr-stt/2 " + NOISE_PROTOCOL_NAME),
        *(craft_init(scene.secrets, point, payload) for point in LOW_ORDER_POINTS),
    ]
    before = drops(scene.server)
    await hostile_burst(scene, packets)
    moved = drops(scene.server) - before
    # A payload whose index does not match the clear header is "payload"; every other INIT here
    # fails in Noise ("handshake_auth"): the prologue changes the key of message 1, and a
    # low-order point fails the first DH.
    assert moved["version"] == 1
    assert moved["handshake_auth"] + moved["payload"] == len(packets) - 1


async def test_our_own_packets_reflected_back(scene: Scene) -> None:
    # The server's own record and its RESPONSE, sent back to it.
    packets = [scene.captured["record_down"], scene.captured["response"]]
    before = drops(scene.server)
    await hostile_burst(scene, packets, from_client=True)
    moved = drops(scene.server) - before
    assert set(moved) <= {"auth", "replay", "unknown_index"}


# -- 14. configuration ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "fields",
    [
        {"handshake_rate_per_source_per_s": 0},
        {"handshake_rate_per_source_per_s": -1.0},
        {"handshake_rate_per_source_per_s": float("nan")},
        {"handshake_rate_per_source_per_s": True},
        {"handshake_burst_per_source": 0},
        {"handshake_burst_per_source": 2.5},
        {"handshake_half_open_max": 0},
        {"handshake_load_threshold": 2000},
        {"max_sessions": -1},
    ],
)
def test_out_of_range_limits_are_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        NodeConfig(**fields)


def test_every_drop_reason_is_in_the_node_stats() -> None:
    node = STTNode(generate_seed(), generate_seed())
    stats = node.get_stats()
    assert set(tuple(DropReason)) <= set(stats["drops"])
    assert stats["drops_total"] == 0
    assert stats["transports"]["websocket"]["text_frames_refused"] == 0
    assert stats["transports"]["websocket"]["oversized_refused"] == 0


# -- WebSocket: garbage, text frames, oversized messages ------------------------------------------
def raw_ws(url: str, **kwargs: Any) -> ws_connect:
    return ws_connect(url, compression=None, proxy=None, open_timeout=10 * SECOND, **kwargs)


async def close_code(ws: ClientConnection) -> int | None:
    async with asyncio.timeout(10 * SECOND):
        try:
            while True:
                await ws.recv()
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd is not None else None


async def test_websocket_garbage_text_and_oversized(make_node: NodeFactory) -> None:
    config = NodeConfig(websocket_max_record_size=2048)
    server = await make_node(config=config)
    client = await make_node(server_mode=False, config=config)
    session, _ = await connect(client, server, "websocket")
    assert server.ws_url is not None
    quiet = Quiet(server, session.session_id)
    # Garbage binary messages of every size up to the limit: dropped, the connection stays.
    async with raw_ws(server.ws_url) as ws:
        sizes = [*range(0, 80), 255, 256, 257, 1023, 1024, 1025, 2047, 2048]
        for n in sizes:
            data = bytearray(os.urandom(n))
            if n > 1:
                data[0] = PROTOCOL_VERSION  # look like a packet of some type
                data[1] = 1 + n % 5
            await ws.send(bytes(data))
        await wait_until(lambda: quiet.new_drops() == len(sizes), "every garbage message")
        assert ws.state is State.OPEN
    quiet.check()
    # A text message: closed with 1003, counted.
    async with raw_ws(server.ws_url) as ws:
        await ws.send("not binary")
        assert await close_code(ws) == 1003
    # Oversized: closed with 1009, counted; nothing reaches the endpoint.
    async with raw_ws(server.ws_url) as ws:
        await ws.send(bytes(2049))
        assert await close_code(ws) == 1009
    await wait_until(
        lambda: server.get_stats()["transports"]["websocket"]["oversized_refused"] == 1,
        "the oversized message to be counted",
    )
    stats = server.get_stats()["transports"]["websocket"]
    assert stats["text_frames_refused"] == 1
    assert quiet.new_drops() == len(sizes)
    quiet.check()
    await round_trip(session, client, server, b"ws after garbage")


async def messages_until_quiet(ws: ClientConnection, quiet_s: float = 300 * MS) -> list[bytes]:
    """Every binary message ``ws`` receives until none came for ``quiet_s``."""
    out: list[bytes] = []
    while True:
        try:
            async with asyncio.timeout(quiet_s):
                message = await ws.recv()
        except TimeoutError:
            return out
        assert isinstance(message, bytes)
        out.append(message)


async def test_websocket_handshake_flood_on_one_connection(
    make_node: NodeFactory, shared_seed: bytes, count_dh: type[_CountingResponder]
) -> None:
    config = NodeConfig(handshake_load_threshold=4, handshake_burst_per_source=8)
    server = await make_node(config=config)
    assert server.ws_url is not None
    secrets = SharedSecrets.from_seed(shared_seed)
    identity = NodeIdentity.from_seed(generate_seed())
    before = drops(server)
    async with raw_ws(server.ws_url) as ws:
        for _ in range(200):
            await ws.send(os.urandom(2) + b"\x00\x00" + os.urandom(254))
            await ws.send(bytes([PROTOCOL_VERSION, INIT, 0, 0]) + os.urandom(254))
        inits = [member_init(secrets, identity) for _ in range(40)]
        for handshake in inits:
            await ws.send(handshake.init_packet())
        await wait_until(
            lambda: sum((drops(server) - before).values()) + count_dh.created >= 440,
            "every INIT",
        )
        answers = await messages_until_quiet(ws)
    moved = drops(server) - before
    assert moved["mac1"] == 200
    assert count_dh.created == 4  # then under load: cookies only
    assert moved["cookie_required"] == 36
    assert Counter(a[1] for a in answers) == Counter({RESPONSE: 4, COOKIE: 36})
    assert all(len(a) == COOKIE_REPLY_SIZE for a in answers if a[1] == COOKIE)
