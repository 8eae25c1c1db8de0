"""A node of protocol 1.1 against a peer speaking protocol 1.0, over real UDP on loopback.

The 1.0 peer is written here from the 1.0 specification alone, as an independent
implementation would be: ``noiseprotocol`` for message 1 under the 1.0 prologue, ``hashlib``
for the §2 KDF and mac1, ``msgpack`` for the payload. It applies the one rule 1.0 has for other
versions: a packet whose byte 0 is not 1 is dropped and counted as ``version``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections import Counter

import msgpack
import pytest
from noise.connection import Keypair, NoiseConnection

from seigr_stt import HandshakeTimeout
from seigr_stt.constants import PROTOCOL_VERSION
from tests.aio.helpers import NodeFactory, loopback_udp_socket, wait_until
from tests.timing import MS, SECOND

V1_0 = 1
V1_0_PROLOGUE = b"seigr-stt/1 Noise_XXpsk3_25519_ChaChaPoly_BLAKE2b"


def _kdf(seed: bytes, label: bytes) -> bytes:
    return hashlib.blake2b(label, digest_size=32, key=seed, person=b"seigr-stt-kdf-v1").digest()


class Peer10:
    """The 1.0 side: builds a 1.0 INIT and counts what the 1.0 rules make of what it receives."""

    def __init__(self, shared_seed: bytes) -> None:
        self.mac1_key = _kdf(shared_seed, b"mac1")
        self.psk = _kdf(shared_seed, b"noise-psk")
        self.sock = loopback_udp_socket()
        self.drops: Counter[str] = Counter()
        self.index = os.urandom(4)

    def init(self) -> bytes:
        noise = NoiseConnection.from_name(b"Noise_XXpsk3_25519_ChaChaPoly_BLAKE2b")
        noise.set_as_initiator()
        noise.set_prologue(V1_0_PROLOGUE)
        noise.set_psks(psk=self.psk)
        noise.set_keypair_from_private_bytes(Keypair.STATIC, os.urandom(32))
        noise.start_handshake()
        payload = {"i": self.index, "t": 1_800_000_000_000_000_000, "c": 0, "p": b""}
        plain = msgpack.packb(payload, use_bin_type=True)
        payload["p"] = bytes(256 - (8 + 32 + len(plain) + 16 + 32))  # §4.3 padding rule
        body = bytes([V1_0, 1, 0, 0]) + self.index
        body += bytes(noise.write_message(msgpack.packb(payload, use_bin_type=True)))
        mac1 = hashlib.blake2b(body, digest_size=16, key=self.mac1_key).digest()
        return body + mac1 + bytes(16)

    def receive(self, data: bytes) -> None:
        """1.0's §3 check, the first thing it does with any packet."""
        if len(data) < 2:
            self.drops["short"] += 1
        elif data[0] != V1_0:
            self.drops["version"] += 1
        else:
            self.drops["not looked at in this test"] += 1

    async def recv(self, timeout: float) -> bytes:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            return await loop.sock_recv(self.sock, 2048)


async def test_a_1_0_initiator_gets_a_versions_packet_it_counts_as_version(
    make_node: NodeFactory, shared_seed: bytes
) -> None:
    node = await make_node(ws=False)
    assert node.udp_address is not None
    peer = Peer10(shared_seed)
    try:
        init = peer.init()
        assert len(init) == 256
        peer.sock.sendto(init, node.udp_address)
        reply = await peer.recv(2 * SECOND)
        # VERSIONS: marker 0, one version, our index, the version 1.1 speaks, mac1.
        assert reply[:7] == bytes([0, 1]) + peer.index + bytes([PROTOCOL_VERSION])
        assert reply[7:] == hashlib.blake2b(reply[:7], digest_size=16, key=peer.mac1_key).digest()
        peer.receive(reply)
        assert peer.drops == {"version": 1}  # counted on the 1.0 side
        stats = node.get_stats()
        assert stats["drops"]["version"] == 1  # and on the 1.1 side
        assert stats["handshakes"]["version_mismatches"] == 1
        assert stats["handshakes"]["accepted"] == 0
        # A non-member (wrong mac1) of 1.0 gets nothing: only the drop is counted.
        peer.sock.sendto(init[:-32] + bytes(32), node.udp_address)
        await wait_until(lambda: node.get_stats()["drops"]["version"] == 2, "the second drop")
        with pytest.raises(TimeoutError):
            await peer.recv(100 * MS)
        assert node.get_stats()["handshakes"]["version_mismatches"] == 1
    finally:
        peer.sock.close()


async def test_a_1_1_initiator_is_counted_as_version_by_a_1_0_responder(
    make_node: NodeFactory, shared_seed: bytes
) -> None:
    client = await make_node(server_mode=False, ws=False)
    peer = Peer10(shared_seed)
    host, port = peer.sock.getsockname()[:2]
    try:
        with pytest.raises(HandshakeTimeout):
            await client.connect_udp(host, port, timeout=300 * MS)
        while True:  # every INIT the 1.0 responder got (the first and any retransmission)
            try:
                peer.receive(peer.sock.recv(2048))
            except (OSError, BlockingIOError):
                break
        assert peer.drops["version"] >= 1
        assert set(peer.drops) == {"version"}
    finally:
        peer.sock.close()
