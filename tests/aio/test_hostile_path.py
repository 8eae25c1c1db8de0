"""An on-path outsider (and a spoofing member) against real nodes over loopback UDP and
WebSocket (audit 2026-12, F3, F4; issue 11, "Proof").

The client talks to the server over UDP through a relay that stands for the attacker's place on
the path: it sees every packet, can withhold or delay one, and knows no seed. It takes a genuine
record of the session off the path and sends it from an address of its own (a spoofed source),
or over the server's public WebSocket port. The old node moved the session to any address a
genuine record came from, at once: it sent its whole congestion window to the spoofed address
(11 MiB for one 68-byte record in the audit) and, over WebSocket, lost the session when the
attacker hung up. Now a new address is only challenged, with at most three times the bytes it
sent, and a session's records over another link are dropped unopened (``wrong_link``).

Every test ends with the honest peer served. All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
from websockets.asyncio.client import connect as ws_connect

from seigr_stt import NodeEvent, SessionState, STTNode, STTSession
from seigr_stt.aio.websocket import WSLink
from seigr_stt.config import NodeConfig
from seigr_stt.constants import (
    PACKET_DATA,
    PATH_AMPLIFICATION_FACTOR,
    STREAM_INITIAL_WINDOW_BYTES,
)
from seigr_stt.core.flow import channel_stream_id
from seigr_stt.core.frames import Frame, MaxData, MaxStreamData, serialize_frames
from seigr_stt.core.path import CHALLENGE_RECORD_BYTES
from seigr_stt.core.session import Session
from tests.aio.helpers import (
    NodeFactory,
    UDPRelay,
    connect,
    loopback_udp_socket,
    receive_n,
    wait_until,
)
from tests.aio.hostile import core_session, drops, forge_record, recv_all, round_trip
from tests.timing import SECOND


def is_record(data: bytes) -> bool:
    return len(data) > 1 and data[1] == PACKET_DATA


@dataclass
class Path:
    """A server, a client whose UDP session goes through ``relay``, and the attacker's own
    UDP socket (the spoofed source address)."""

    server: STTNode
    client: STTNode
    session: STTSession
    relay: UDPRelay
    spoofer: socket.socket
    moved: list[NodeEvent] = field(default_factory=list)  # the server's peer_address_changed
    stolen: list[bytes] = field(default_factory=list)  # records taken off the path
    held: list[bytes] = field(default_factory=list)  # the client's packets held back meanwhile

    @property
    def server_addr(self) -> tuple[str, int]:
        assert self.server.udp_address is not None
        return self.server.udp_address

    @property
    def core(self) -> Session:
        """The server's core session with the client."""
        return core_session(self.server, self.session.session_id)

    def steal(self, then: Callable[[bytes], None] = lambda record: None) -> None:
        """Take the client's next record off the path (then call ``then`` with it) and hold
        every later packet of the client back until :meth:`release`."""

        def divert(data: bytes) -> bool:
            if self.stolen:
                self.held.append(data)
                return True
            if not is_record(data):
                return False
            self.stolen.append(data)
            then(data)
            return True

        self.relay.divert = divert

    async def stolen_record(self) -> bytes:
        """The record :meth:`steal` took."""
        await wait_until(lambda: bool(self.stolen), "a record of the client to steal")
        return self.stolen[0]

    def release(self) -> None:
        """Forward the client's packets again, those held back first."""
        self.relay.divert = None
        for data in self.held:
            self.relay.inject(data)
        self.held.clear()

    def spoofed(self) -> list[bytes]:
        """Everything the server sent to the attacker's address so far."""
        return recv_all(self.spoofer, self.server_addr)

    async def honest_peer_is_served(self, tag: bytes) -> None:
        assert self.session.is_active()
        assert self.core.addr == self.relay.back_address  # the session never left its path
        assert self.moved == []
        await round_trip(self.session, self.client, self.server, tag)


@pytest.fixture
async def path(make_node: NodeFactory) -> AsyncIterator[Path]:
    # Without transport migration (§18), which would open a record by another link.
    server = await make_node(config=NodeConfig(migration=False))
    client = await make_node(server_mode=False, ws=False)
    assert server.udp_address is not None
    relay = UDPRelay(server.udp_address)
    spoofer = loopback_udp_socket()
    try:
        session = await client.connect_udp(*relay.address, timeout=10 * SECOND)
        scene = Path(server, client, session, relay, spoofer)
        server.on("peer_address_changed", scene.moved.append)
        await round_trip(session, client, server, b"setup")
        yield scene
        await client.stop()  # through the relay, so both sides close at once
    finally:
        spoofer.close()
        relay.close()


# -- F3: a genuine record from a spoofed address ----------------------------------------------
@pytest.mark.parametrize("attacker", ["on-path", "member"])
async def test_a_record_from_a_spoofed_address_gets_at_most_three_times_its_size(
    path: Path, attacker: str
) -> None:
    """The audit's r13 over real sockets. While the server sends the client 2 MiB, the attacker
    sends a genuine record from its own address: one the relay took off the path (an on-path
    outsider), or one the member sealed itself granting all the credit there is (MAX_DATA and
    MAX_STREAM_DATA of 2**40). The relay then holds the client's packets back for 0.2 s, so the
    spoofed record stays the newest the server has seen. The server challenges the spoofed
    address and sends it nothing else; its download goes on to the client.

    The download is one stream window long: the member's forged credit is credit its own
    receiver never granted, so with more to send the server would overrun the client's real
    window and the client would close the session (``stream data beyond the granted credit``),
    which only hurts the member but ends the test's session."""
    peer = path.server.session_manager.get_session(path.session.session_id)
    assert peer is not None
    payload = bytes(range(256)) * (STREAM_INITIAL_WINDOW_BYTES // 256)
    sent: list[bytes] = []  # the spoofed record

    def spoof(record: bytes) -> None:
        if attacker == "member":  # its own record goes nowhere; a forgery of its own goes first
            client_core = core_session(path.client, path.session.session_id)
            credit: list[Frame] = [
                MaxData(1 << 40),
                MaxStreamData(channel_stream_id(3, 1), 1 << 40),
            ]
            record = forge_record(client_core, serialize_frames(credit))
        # else: genuine, not yet delivered: the server sees it from the attacker first
        sent.append(record)
        path.spoofer.sendto(record, path.server_addr)

    await peer.send(payload, stream_id=3)
    download = asyncio.create_task(receive_n(path.client, 1))
    await wait_until(lambda: path.core.streams.send_buffered < len(payload), "the download")
    path.steal(then=spoof)
    await path.stolen_record()
    await wait_until(lambda: path.core.path.candidate is not None, "the server to challenge")
    await asyncio.sleep(0.2)  # the client's packets wait on the path
    path.release()
    await wait_until(lambda: path.core.path.candidate is None, "the server to give up")
    to_spoofer = path.spoofed()
    received = len(sent[0])
    amplified = sum(len(d) for d in to_spoofer)
    assert amplified <= PATH_AMPLIFICATION_FACTOR * received, (amplified, received)
    assert to_spoofer, "the spoofed address was challenged"
    assert all(len(d) == CHALLENGE_RECORD_BYTES for d in to_spoofer)  # challenges, no data
    assert path.core.path.validated == 0
    (packet,) = await download
    assert packet.data == payload
    await path.honest_peer_is_served(b"after a spoofed record")


# -- F4: a session's record over another link -------------------------------------------------
async def test_a_udp_record_replayed_over_websocket_is_dropped_and_the_session_lives(
    path: Path,
) -> None:
    """The audit's r06: the relay takes one record of the UDP session off the path, sends it to
    the server's public WebSocket port (no seed needed to open a connection) and hangs up. The
    old node moved the session to that connection and lost it when it closed."""
    path.steal()
    await path.session.send(b"this record is taken off the path", stream_id=1)
    stolen = await path.stolen_record()
    path.release()
    assert path.server.ws_url is not None
    before = drops(path.server)
    async with ws_connect(path.server.ws_url, compression=None, proxy=None) as ws:
        await ws.send(stolen)
        await wait_until(lambda: drops(path.server)["wrong_link"] > before["wrong_link"])
    await wait_until(
        lambda: path.server.get_stats()["transports"]["websocket"]["connections"] == 0,
        "the node to drop the attacker's connection",
    )
    assert drops(path.server) - before == {"wrong_link": 1}
    assert path.core.state == SessionState.ACTIVE
    assert path.core.counters.auth_failures == 0  # not even decrypted
    # The client resends what was taken: it arrives once.
    (packet,) = await receive_n(path.server, 1)
    assert packet.data == b"this record is taken off the path"
    await path.honest_peer_is_served(b"after the WebSocket replay")


async def test_a_websocket_record_replayed_over_udp_is_dropped_unanswered(
    make_node: NodeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reverse: a record of a WebSocket session (a TLS-terminating proxy on the path sees
    it) sent to the node's UDP port from the attacker's address. Without migration (§18) a
    WebSocket session never roams: the connection is its path."""
    server = await make_node(config=NodeConfig(migration=False))
    client = await make_node(server_mode=False, ws=False)
    session, peer = await connect(client, server, "websocket")
    link = core_session(client, session.session_id).addr
    assert isinstance(link, WSLink)
    stolen: list[bytes] = []
    forward = link.send

    def copy(packet: bytes) -> None:
        # WebSocket is reliable (§14.8): the record also goes on; the proxy keeps a copy.
        if not stolen and is_record(packet):
            stolen.append(packet)
        forward(packet)

    monkeypatch.setattr(link, "send", copy)
    await session.send(b"over WebSocket", stream_id=1)
    await wait_until(lambda: bool(stolen), "a record to copy")
    (packet,) = await receive_n(server, 1)
    assert packet.data == b"over WebSocket"
    assert server.udp_address is not None
    spoofer = loopback_udp_socket()
    try:
        before = drops(server)
        spoofer.sendto(stolen[0], server.udp_address)
        await wait_until(lambda: drops(server)["wrong_link"] > before["wrong_link"])
        answers = recv_all(spoofer, server.udp_address)
    finally:
        spoofer.close()
    assert drops(server) - before == {"wrong_link": 1}
    assert answers == []
    core = core_session(server, session.session_id)
    assert isinstance(core.addr, WSLink)
    assert core.path.candidate is None
    assert peer.is_active()
    await round_trip(session, client, server, b"after the UDP replay")


# -- many spoofed addresses at once -----------------------------------------------------------
async def test_spoofed_copies_from_many_addresses_cost_at_most_three_times_each(
    path: Path,
) -> None:
    """An on-path attacker sends one stolen record from 20 addresses of its own, in turn. Each
    address is a candidate until a newer one replaces it; none ever gets more than three times
    what it sent, and the sum stays below three times the attacker's traffic."""
    path.steal()
    await path.session.send(b"taken off the path", stream_id=1)
    stolen = await path.stolen_record()
    sockets = [loopback_udp_socket() for _ in range(20)]
    try:
        before = drops(path.server)
        for sock in sockets:  # only the first copy is the newest: the others are replays
            sock.sendto(stolen, path.server_addr)
        await wait_until(lambda: drops(path.server)["replay"] - before["replay"] >= 19)
        path.release()
        await wait_until(lambda: path.core.path.candidate is None, "the server to give up")
        answers = [recv_all(sock, path.server_addr) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
    assert sum(1 for a in answers if a) == 1  # the first: challenged; the rest: replays
    assert sum(len(d) for a in answers for d in a) <= PATH_AMPLIFICATION_FACTOR * len(stolen)
    (packet,) = await receive_n(path.server, 1)
    assert packet.data == b"taken off the path"
    await path.honest_peer_is_served(b"after many addresses")
