"""What a WebSocket connection may cost the node (audit F8, F9, F14; docs/protocol.md §12.2).

Deadlines for the first handshake packet, the session and idleness; limits on pending
connections in total and per host; the bounded send queue; no software banner; quiet logs. All
over real loopback sockets with small timeouts; the assertions are on counts and states, never
on how long something took.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from contextlib import AsyncExitStack
from typing import Any
from urllib.parse import urlsplit

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from seigr_stt import HandshakeError, NodeConfig, SessionState, STTNode, generate_seed
from seigr_stt.aio import websocket
from seigr_stt.aio.websocket import WebSocketServer, WSLink
from seigr_stt.constants import PACKET_HANDSHAKE_RESPONSE, PROTOCOL_VERSION, PacketType
from seigr_stt.core.endpoint import Endpoint
from seigr_stt.core.frames import Ping, serialize_frames
from seigr_stt.core.identity import NodeIdentity, SharedSecrets
from seigr_stt.core.link import Link, TransportKind
from tests.aio.helpers import LOOPBACK, NodeFactory, connect, receive_n, wait_until
from tests.aio.hostile import forge_record, member_init
from tests.aio.test_websocket import closed_with
from tests.timing import SECOND

#: Deadlines short enough for a test, long enough for loopback.
FAST: dict[str, Any] = {
    "websocket_handshake_timeout_s": 0.3,
    "websocket_session_timeout_s": 1.5,
    "websocket_idle_timeout_s": 0.3,
}


def ws_stats(node: STTNode) -> dict[str, Any]:
    """The node's WebSocket figures."""
    stats: dict[str, Any] = node.get_stats()["transports"]["websocket"]
    return stats


def ws_url(node: STTNode) -> str:
    assert node.ws_url is not None
    return node.ws_url


def host_port(url: str) -> tuple[str, int]:
    """The TCP address of a WebSocket URL."""
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    return parts.hostname, parts.port


def raw(url: str, source: str = LOOPBACK, **kwargs: Any) -> ws_connect:
    """A plain ``websockets`` client from host ``source`` with no STT behind it."""
    return ws_connect(
        url,
        compression=None,
        proxy=None,
        open_timeout=10 * SECOND,
        local_addr=(source, 0),
        **kwargs,
    )


@pytest.fixture
def other_hosts() -> list[str]:
    """Three loopback addresses other than 127.0.0.1: three more source hosts."""
    hosts = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    for host in hosts:
        with socket.socket() as probe:
            try:
                probe.bind((host, 0))
            except OSError:
                pytest.skip(f"cannot bind {host}: only 127.0.0.1 is a loopback address here")
    return hosts


async def refused_status(url: str, source: str = LOOPBACK) -> tuple[int, bytes]:
    """Open a connection that the node refuses; return the HTTP status and body it sent."""
    with pytest.raises(InvalidStatus) as info:
        async with raw(url, source):
            pass
    return info.value.response.status_code, bytes(info.value.response.body)


# -- deadlines ------------------------------------------------------------------------------------
@pytest.mark.parametrize("sends", ["nothing", "garbage", "an INIT of another group"])
async def test_an_outsider_connection_is_closed_at_the_first_packet_deadline(
    make_node: NodeFactory, sends: str
) -> None:
    # The session deadline lies beyond the test's waits: only the first-packet deadline can act.
    config = NodeConfig(**(FAST | {"websocket_session_timeout_s": 60.0}))
    node = await make_node(config=config)
    async with raw(ws_url(node)) as ws:
        assert ws_stats(node)["pending"] == 1
        if sends == "garbage":
            await ws.send(os.urandom(300))
        elif sends == "an INIT of another group":
            stranger = SharedSecrets.from_seed(generate_seed())
            await ws.send(
                member_init(stranger, NodeIdentity.from_seed(generate_seed())).init_packet()
            )
        assert await closed_with(ws) == 1008  # policy violation
    await wait_until(lambda: ws_stats(node)["connections"] == 0, "the node to drop the link")
    stats = ws_stats(node)
    assert (stats["closed_handshake_timeout"], stats["closed_idle"]) == (1, 0)
    assert stats["pending"] == 0


async def test_a_handshake_that_never_completes_is_closed_at_the_session_deadline(
    make_node: NodeFactory, shared_seed: bytes
) -> None:
    node = await make_node(config=NodeConfig(**FAST))
    secrets = SharedSecrets.from_seed(shared_seed)
    async with raw(ws_url(node)) as ws:
        await ws.send(member_init(secrets, NodeIdentity.from_seed(generate_seed())).init_packet())
        response = await ws.recv()  # a half-open handshake now holds the link
        assert isinstance(response, bytes)
        assert response[1] == PACKET_HANDSHAKE_RESPONSE
        (link,) = node.websocket_links
        loop = asyncio.get_running_loop()
        # Past the first deadline (0.3 s), well before the session deadline (1.5 s).
        await asyncio.sleep(link.opened_at + 0.6 - loop.time())
        assert not link.closed
        assert node.endpoint.bound_to(link)
        assert await closed_with(ws) == 1008  # no FINAL: the session deadline closes it
    await wait_until(lambda: ws_stats(node)["connections"] == 0, "the node to drop the link")
    assert ws_stats(node)["closed_handshake_timeout"] == 1
    assert node.get_stats()["handshakes"]["in_flight"] == 0  # the half-open entry went with it


async def test_a_link_is_never_idle_while_its_session_lives(make_node: NodeFactory) -> None:
    config = NodeConfig(**FAST)
    server = await make_node(config=config)
    client = await make_node(server_mode=False, config=config)
    session, _ = await connect(client, server, "websocket")
    assert ws_stats(server)["pending"] == 0  # an established session settles the connection
    await asyncio.sleep(4 * config.websocket_idle_timeout_s)  # four idle periods, no traffic
    for node in (server, client):
        stats = ws_stats(node)
        assert (stats["connections"], stats["closed_idle"]) == (1, 0)
        assert stats["closed_handshake_timeout"] == 0
    assert session.state == SessionState.ACTIVE
    await session.send(b"still here")
    (packet,) = await receive_n(server, 1)
    assert packet.data == b"still here"
    # Once the session ends, the link carries nothing: the idle timer closes it.
    await session.close()
    await wait_until(
        lambda: ws_stats(server)["connections"] == ws_stats(client)["connections"] == 0,
        "both sides to drop the idle link",
    )
    assert ws_stats(server)["closed_idle"] + ws_stats(client)["closed_idle"] >= 1
    assert ws_stats(server)["closed_handshake_timeout"] == 0


# -- pending connections -------------------------------------------------------------------------
async def test_one_host_beyond_its_share_is_refused_while_others_connect(
    make_node: NodeFactory, other_hosts: list[str]
) -> None:
    config = NodeConfig(websocket_max_pending=16, websocket_max_pending_per_source=3)
    server = await make_node(config=config)
    client = await make_node(server_mode=False)
    attacker = other_hosts[0]
    async with AsyncExitStack() as held:
        for _ in range(3):
            await held.enter_async_context(raw(ws_url(server), attacker))
        assert await refused_status(ws_url(server), attacker) == (503, b"Service Unavailable\n")
        assert await refused_status(ws_url(server), attacker) == (503, b"Service Unavailable\n")
        stats = ws_stats(server)
        assert (stats["pending"], stats["refused_connections"]) == (3, 2)
        # An honest member on another host (127.0.0.1) connects over both transports.
        ws_session, _ = await connect(client, server, "websocket")
        udp_session, _ = await connect(client, server, "udp")
        assert ws_session.transport_type == "websocket"
        assert udp_session.transport_type == "udp"
        assert ws_stats(server)["pending"] == 3  # the member's link no longer counts
    await wait_until(lambda: ws_stats(server)["pending"] == 0, "the held connections to go")
    assert ws_stats(server)["refused_connections"] == 2


async def test_the_total_limit_refuses_every_host_until_pending_connections_go(
    make_node: NodeFactory, other_hosts: list[str]
) -> None:
    config = NodeConfig(websocket_max_pending=4, websocket_max_pending_per_source=2)
    server = await make_node(config=config)
    client = await make_node(server_mode=False)
    async with AsyncExitStack() as held:
        for host in other_hosts[:2]:
            for _ in range(2):
                await held.enter_async_context(raw(ws_url(server), host))
        assert ws_stats(server)["pending"] == 4
        assert (await refused_status(ws_url(server), other_hosts[2]))[0] == 503
        with pytest.raises(HandshakeError, match="503"):
            await client.connect_websocket(ws_url(server), timeout=5 * SECOND)
        assert ws_stats(server)["refused_connections"] == 2
        udp_session, _ = await connect(client, server, "udp")  # UDP is not affected
        assert udp_session.is_active()
    await wait_until(lambda: ws_stats(server)["pending"] == 0, "the held connections to go")
    ws_session, _ = await connect(client, server, "websocket")
    assert ws_session.is_active()


async def test_connections_beyond_the_limits_are_answered_503_or_dropped_at_once(
    make_node: NodeFactory,
) -> None:
    # TCP connections that never send their HTTP request: two pending, two refused and waiting
    # for their request (a 503 answer), and the rest dropped at once. Connections without a
    # session never hold more than max_pending + max_pending_per_source sockets.
    config = NodeConfig(websocket_max_pending=2, websocket_max_pending_per_source=2)
    server = await make_node(config=config)
    host, port = host_port(ws_url(server))
    streams: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def counted(pending: int, refused: int) -> None:
        def now() -> tuple[int, int]:
            stats = ws_stats(server)
            return stats["pending"], stats["refused_connections"]

        await wait_until(lambda: now() == (pending, refused), "the node to count the connection")

    try:
        for pending, refused in [(1, 0), (2, 0), (2, 1), (2, 2), (2, 3), (2, 4), (2, 5)]:
            streams.append(await asyncio.open_connection(host, port))
            await counted(pending, refused)
        for reader, _ in streams[4:]:  # dropped at once, without a word
            async with asyncio.timeout(10 * SECOND):
                with contextlib.suppress(ConnectionResetError):
                    assert await reader.read() == b""
        reader, writer = streams[2]  # refused, waiting: its request gets a 503
        writer.write(b"GET /stt HTTP/1.1\r\nHost: x\r\n\r\n")
        async with asyncio.timeout(10 * SECOND):
            answer = await reader.read()
        assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
        assert answer.endswith(b"\r\n\r\nService Unavailable\n")
    finally:
        for _, writer in streams:
            writer.close()
    await wait_until(lambda: ws_stats(server)["pending"] == 0, "every connection to go")


async def test_the_limits_fit_half_the_file_descriptor_limit(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(websocket, "_fd_budget", lambda: 40)  # a process limit of 80 files
    server = WebSocketServer(
        lambda data, link: None, lambda link: None, lambda link: None, NodeConfig()
    )
    with caplog.at_level(logging.WARNING, logger="seigr_stt.websocket"):
        await server.start(LOOPBACK, 0)
    try:
        assert (server.gate.max_pending, server.gate.max_per_source) == (32, 8)
        assert "websocket_max_pending lowered from 256 to 32" in caplog.text
    finally:
        await server.close()


# -- the bounded send queue ----------------------------------------------------------------------
async def non_reading_socket(url: str) -> socket.socket:
    """A TCP connection to ``url``'s host with the smallest receive buffer the kernel allows,
    for a client that will stop reading."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, host_port(url))
    return sock


def shrink_send_buffer(link: WSLink) -> None:
    """The node's side of ``link`` gets the smallest kernel send buffer: little hides there."""
    sock = link.connection.transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)


async def test_the_send_queue_never_exceeds_its_bound_for_a_peer_that_does_not_read(
    make_node: NodeFactory,
) -> None:
    bound = 8192
    config = NodeConfig(websocket_max_record_size=2048, websocket_send_queue_bytes=bound)
    node = await make_node(config=config)
    sock = await non_reading_socket(ws_url(node))
    # max_queue=1: the client's library stops reading from the socket after one message (and,
    # never reading, it cannot take the node's close frame: close_timeout cuts that short).
    async with ws_connect(
        ws_url(node), sock=sock, compression=None, proxy=None, max_queue=1, close_timeout=0.1
    ):
        await wait_until(lambda: len(node.websocket_links) == 1, "the node to accept")
        (link,) = node.websocket_links
        shrink_send_buffer(link)
        offered = 2000  # 2 MB of 1000-byte packets, as the drain point hands them over
        for i in range(offered):
            link.send(bytes(1000))
            assert link.queued_bytes <= bound
            if i % 20 == 0:
                await asyncio.sleep(0)  # let the writer fill the kernel's buffers
        assert link.peak_queued_bytes <= bound
        assert link.send_dropped >= offered - 1000  # at most ~1 MB went anywhere
        assert ws_stats(node)["send_dropped"] == link.send_dropped
        assert ws_stats(node)["send_queued_bytes"] == link.queued_bytes
    await wait_until(lambda: ws_stats(node)["connections"] == 0, "the node to drop the link")
    assert ws_stats(node)["send_queued_bytes"] == 0


async def test_a_member_that_stops_reading_cannot_grow_the_send_queue(
    make_node: NodeFactory, shared_seed: bytes
) -> None:
    """R16: a member completes a handshake over WebSocket, stops reading its socket, and sends
    records full of PINGs. Every reply the node makes by itself (PONG, ACK) has to fit the
    bounded queue (records may take it to twice its bound, §12.2); the rest is dropped and
    counted."""
    bound, record = 4096, 2048
    config = NodeConfig(websocket_max_record_size=record, websocket_send_queue_bytes=bound)
    node = await make_node(config=config)
    attacker = Endpoint(
        NodeIdentity.from_seed(generate_seed()),
        SharedSecrets.from_seed(shared_seed),
        config,
        os.urandom,
        accept_incoming=False,
    )
    link = Link(TransportKind.WEBSOCKET, record, peer="victim", source="victim")
    loop = asyncio.get_running_loop()
    sock = await non_reading_socket(ws_url(node))
    async with ws_connect(
        ws_url(node),
        sock=sock,
        compression=None,
        proxy=None,
        max_queue=1,
        close_timeout=0.1,
        max_size=record,
    ) as ws:
        attacker.connect(
            "victim", loop.time(), link=link, timestamp_ns=time.time_ns(), timeout_s=10
        )
        async with asyncio.timeout(10 * SECOND):  # the handshake, reading normally
            while True:
                for packet, _ in attacker.datagrams_to_send(loop.time()):
                    await ws.send(packet)
                if node.session_manager.get_session_count() == 1:
                    break
                with contextlib.suppress(TimeoutError):
                    answer = await asyncio.wait_for(ws.recv(), 0.05)
                    assert isinstance(answer, bytes)
                    attacker.receive_datagram(answer, "victim", loop.time(), link)
        (session_id,) = attacker.sessions
        (victim_link,) = node.websocket_links
        shrink_send_buffer(victim_link)
        # From now on the attacker never reads. Records of 100 PINGs (about 1 KB) each.
        pings = serialize_frames([Ping(2**61 + i) for i in range(100)])
        sent = 0
        while victim_link.send_dropped == 0 and sent < 5000:
            await ws.send(forge_record(attacker.sessions[session_id], pings))
            sent += 1
            assert victim_link.queued_bytes <= 2 * bound
            if sent % 10 == 0:
                await asyncio.sleep(0)  # let the victim keep up with what was sent
        await wait_until(lambda: victim_link.send_dropped > 0, "the queue to overflow")
        assert victim_link.peak_queued_bytes <= 2 * bound
        session = node.session_manager.get_session(session_id)
        assert session is not None
        assert session.state in (SessionState.ACTIVE, SessionState.CLOSED)
    # The attacker hangs up: the link, its session and its queue go.
    await wait_until(lambda: ws_stats(node)["connections"] == 0, "the node to drop the link")
    assert ws_stats(node)["send_queued_bytes"] == 0
    await wait_until(lambda: session.state == SessionState.CLOSED, "the session to close")


async def test_records_may_take_the_queue_to_twice_its_bound_handshake_packets_not(
    make_node: NodeFactory,
) -> None:
    # A record is never resent on a reliable link (§14.8): the small control records that go
    # out while stream data waits for room may exceed the bound, up to twice it.
    bound = 8192
    config = NodeConfig(websocket_max_record_size=2048, websocket_send_queue_bytes=bound)
    node = await make_node(config=config)
    sock = await non_reading_socket(ws_url(node))
    async with ws_connect(
        ws_url(node), sock=sock, compression=None, proxy=None, max_queue=1, close_timeout=0.1
    ):
        await wait_until(lambda: len(node.websocket_links) == 1, "the node to accept")
        (link,) = node.websocket_links
        shrink_send_buffer(link)
        record = bytes([PROTOCOL_VERSION, PacketType.DATA]) + bytes(998)
        handshake = bytes([PROTOCOL_VERSION, PacketType.HANDSHAKE_INIT]) + bytes(998)
        for _ in range(400):
            link.send(record)
            if link.queued_bytes > bound:
                break
            await asyncio.sleep(0)  # let the writer fill the kernel's buffers
        assert link.queued_bytes > bound
        dropped = link.send_dropped
        link.send(handshake)
        assert link.send_dropped == dropped + 1
        while link.queued_bytes + len(record) <= 2 * bound:
            link.send(record)
        assert link.send_dropped == dropped + 1
        link.send(record)
        assert link.send_dropped == dropped + 2
        assert link.peak_queued_bytes <= 2 * bound
        assert link.room.bytes == bound - link.queued_bytes


async def test_a_member_that_stops_reading_holds_stream_data_back_and_loses_nothing(
    make_node: NodeFactory,
) -> None:
    """A member that stops reading for a while: WebSocket is reliable (§14.8), so the node's
    session holds its stream data back while the queue lacks room for a record (no congestion
    window, nothing dropped, nothing retransmitted), then sends the rest once the member reads
    again, and every byte arrives."""
    bound = 16384
    config = NodeConfig(websocket_max_record_size=4096, websocket_send_queue_bytes=bound)
    server = await make_node(config=config)
    client = await make_node(server_mode=False, config=config)
    session, peer = await connect(client, server, "websocket")
    (client_link,) = client.websocket_links
    (server_link,) = server.websocket_links
    shrink_send_buffer(server_link)  # little hides in the kernel's buffers
    client_link.connection.transport.pause_reading()
    message = os.urandom(512 * 1024)
    sending = asyncio.create_task(peer.send(message, stream_id=1))
    await wait_until(lambda: server_link.room.bytes < 4096, "the queue to fill")
    await asyncio.sleep(0.05)  # the session holds back: the queue stays within its bound
    assert server_link.queued_bytes <= bound
    # A normal buffer again (a tiny one would make the kernel crawl).
    server_sock = server_link.connection.transport.get_extra_info("socket")
    server_sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    client_link.connection.transport.resume_reading()
    (packet,) = await receive_n(client, 1)
    assert packet.data == message
    async with asyncio.timeout(10 * SECOND):
        await sending
    assert server_link.peak_queued_bytes <= bound
    assert server_link.send_dropped == 0
    stats = peer.get_statistics()
    assert stats["packets_lost"] == 0
    assert stats["retransmitted_bytes"] == 0
    assert session.is_active()
    assert peer.is_active()


# -- no banner -----------------------------------------------------------------------------------
async def http_exchange(node: STTNode, request: bytes) -> tuple[bytes, bytes]:
    """Send one raw HTTP request to the node's WebSocket port; return the head and body."""
    reader, writer = await asyncio.open_connection(*host_port(ws_url(node)))
    try:
        writer.write(request)
        async with asyncio.timeout(10 * SECOND):
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                0,
            )
            body = await reader.readexactly(length)
    finally:
        writer.close()
    return head, body


UPGRADE = (
    b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)


@pytest.mark.parametrize(
    ("request_head", "status", "body"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n", b"404 Not Found", b"Not Found\n"),
        (b"GET /metrics HTTP/1.1\r\nHost: x\r\n", b"404 Not Found", b"Not Found\n"),
        (b"GET / HTTP/1.1\r\nHost: x\r\n" + UPGRADE, b"404 Not Found", b"Not Found\n"),
        (b"GET /stt HTTP/1.1\r\nHost: x\r\n", b"426 Upgrade Required", b"Upgrade Required\n"),
        (b"GET /stt HTTP/1.1\r\nHost: x\r\n" + UPGRADE, b"101 Switching Protocols", b""),
    ],
)
async def test_no_answer_names_the_software(
    make_node: NodeFactory, request_head: bytes, status: bytes, body: bytes
) -> None:
    node = await make_node()
    head, got = await http_exchange(node, request_head + b"\r\n")
    assert head.startswith(b"HTTP/1.1 " + status + b"\r\n")
    assert got == body
    names = [line.split(b":", 1)[0].lower() for line in head.split(b"\r\n")[1:] if line]
    assert b"server" not in names
    for word in (b"seigr", b"websockets", b"python"):
        assert word not in head.lower() + got.lower()


# -- logs ----------------------------------------------------------------------------------------
async def test_refused_and_expired_connections_log_nothing_above_debug(
    make_node: NodeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    config = NodeConfig(
        websocket_max_pending=4,
        websocket_max_pending_per_source=4,
        websocket_handshake_timeout_s=1.0,  # the held connections outlive the refusals
        websocket_idle_timeout_s=0.3,
    )
    node = await make_node(config=config)
    caplog.set_level(logging.DEBUG)
    caplog.clear()
    async with AsyncExitStack() as held:
        clients: list[ClientConnection] = [
            await held.enter_async_context(raw(ws_url(node))) for _ in range(4)
        ]
        for _ in range(8):
            assert (await refused_status(ws_url(node)))[0] == 503
        for ws in clients:
            assert await closed_with(ws) == 1008
    await wait_until(lambda: ws_stats(node)["connections"] == 0, "the node to drop the links")
    assert ws_stats(node)["refused_connections"] == 8
    assert ws_stats(node)["closed_handshake_timeout"] == 4
    loud = [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith(("seigr_stt", "asyncio")) and r.levelno > logging.DEBUG
    ]
    assert loud == []
    debug = [r.getMessage() for r in caplog.records if r.name == "seigr_stt.websocket"]
    assert any("503" in line for line in debug)  # the library's lines, lowered to DEBUG
