"""The WebSocket transport: close codes for misuse, 404 off the path, garbage, lost links."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import ssl
import subprocess
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.protocol import State

from seigr_stt import HandshakeError, NodeConfig, NodeEvent, SessionState, STTNode, generate_seed
from seigr_stt.aio import websocket as websocket_module
from seigr_stt.aio.websocket import WSLink
from seigr_stt.aio.wsframes import burst_record_size, tcp_segment_size
from seigr_stt.constants import CLOSE_GOING_AWAY
from tests.aio.helpers import (
    SENTINEL,
    NodeFactory,
    collect_until_sentinels,
    connect,
    receive_n,
    wait_until,
)
from tests.aio.test_udp import garbage
from tests.timing import SECOND

SMALL_RECORDS = NodeConfig(websocket_max_record_size=1024)


def raw_client(url: str) -> ws_connect:
    """A plain ``websockets`` client with no STT behind it."""
    return ws_connect(url, compression=None, proxy=None, open_timeout=10 * SECOND)


async def closed_with(ws: ClientConnection) -> int | None:
    """Wait until the server closes ``ws``; return the close code it sent."""
    async with asyncio.timeout(10 * SECOND):
        try:
            while True:
                await ws.recv()
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd is not None else None


async def test_a_text_message_closes_the_connection_with_1003(make_node: NodeFactory) -> None:
    node = await make_node()
    assert node.ws_url is not None
    async with raw_client(node.ws_url) as ws:
        await ws.send("a text frame")
        assert await closed_with(ws) == 1003
    await wait_until(
        lambda: node.get_stats()["transports"]["websocket"]["connections"] == 0,
        "the node to forget the connection",
    )


async def test_an_oversized_message_closes_the_connection_with_1009(
    make_node: NodeFactory,
) -> None:
    node = await make_node(config=SMALL_RECORDS)
    assert node.ws_url is not None
    async with raw_client(node.ws_url) as ws:
        await ws.send(bytes(1024))  # at the limit: dropped as garbage, the connection stays
        await wait_until(lambda: node.get_stats()["drops_total"] == 1, "the drop")
        assert ws.state is State.OPEN
        await ws.send(bytes(1025))
        assert await closed_with(ws) == 1009
    assert node.get_stats()["drops_total"] == 1


async def test_an_oversized_message_at_the_default_limit(make_node: NodeFactory) -> None:
    node = await make_node()
    assert node.ws_url is not None
    async with raw_client(node.ws_url) as ws:
        await ws.send(bytes(node.config.websocket_max_record_size + 1))
        assert await closed_with(ws) == 1009


@pytest.mark.parametrize("path", ["/", "/other", "/stt/", "/STT"])
async def test_other_paths_get_404(make_node: NodeFactory, path: str) -> None:
    node = await make_node()
    assert node.ws_url is not None
    url = node.ws_url.removesuffix("/stt") + path
    with pytest.raises(InvalidStatus) as info:
        async with raw_client(url):
            pass
    assert info.value.response.status_code == 404
    assert node.get_stats()["transports"]["websocket"]["connections"] == 0


async def test_garbage_messages_are_dropped_and_the_session_keeps_working(
    make_node: NodeFactory,
) -> None:
    # Without migration (§18): a record by another connection is not even opened.
    still = NodeConfig(migration=False)
    server = await make_node(config=still)
    client = await make_node(server_mode=False, config=still)
    session, peer = await connect(client, server, "websocket")
    assert server.ws_url is not None
    before = Counter(server.get_stats()["drops"])
    sent_before = server.get_stats()["packets_sent"]
    # A record for the live session on another connection is not even decrypted: without
    # migration a session takes records only from its own link (§5.3): wrong_link, not auth.
    hostile = [
        (data, "wrong_link" if reason == "auth" else reason)
        for data, reason in garbage(session.session_id)
    ]
    async with raw_client(server.ws_url) as ws:
        for data, _ in hostile:
            await ws.send(data)
        expected = Counter(reason for _, reason in hostile)
        await wait_until(
            lambda: Counter(server.get_stats()["drops"]) - before == expected,
            "every garbage message to be counted",
        )
        assert server.get_stats()["packets_sent"] == sent_before  # nothing answered
        assert ws.state is State.OPEN
        await session.send(b"after the garbage", stream_id=2)
        await peer.send(b"reply", stream_id=2)
        (up,) = await receive_n(server, 1)
        (down,) = await receive_n(client, 1)
        assert (up.data, down.data) == (b"after the garbage", b"reply")
    assert peer.get_statistics()["auth_failures"] == 0
    assert session.is_active()
    assert peer.is_active()
    assert server.session_manager.get_session_count() == 1


async def test_a_lost_connection_closes_its_sessions_on_both_sides(
    make_node: NodeFactory,
) -> None:
    server = await make_node()
    client = await make_node(server_mode=False)
    events: list[tuple[str, NodeEvent]] = []
    server.on("session_closed", lambda e: events.append(("server", e)))
    client.on("session_closed", lambda e: events.append(("client", e)))
    session, peer = await connect(client, server, "websocket")
    udp_session, udp_peer = await connect(client, server, "udp")
    links = [link for link in client.websocket_links if isinstance(link, WSLink)]
    assert len(links) == 1
    await links[0].connection.close()  # the TCP connection goes away without a CLOSE record
    async with asyncio.timeout(10 * SECOND):
        await session.wait_closed()
        await peer.wait_closed()
    assert sorted((who, e.code, e.by_peer) for who, e in events) == [
        ("client", CLOSE_GOING_AWAY, False),
        ("server", CLOSE_GOING_AWAY, False),
    ]
    assert udp_session.is_active()
    assert udp_peer.is_active()
    await wait_until(
        lambda: server.get_stats()["transports"]["websocket"]["connections"] == 0,
        "the server to forget the connection",
    )
    assert client.get_stats()["transports"]["websocket"]["connections"] == 0


async def test_server_stop_closes_raw_connections(make_node: NodeFactory) -> None:
    node = await make_node()
    assert node.ws_url is not None
    async with raw_client(node.ws_url) as ws:
        await wait_until(
            lambda: node.get_stats()["transports"]["websocket"]["connections"] == 1,
            "the node to see the connection",
        )
        await node.stop()
        assert await closed_with(ws) is not None
    assert node.ws_url is not None  # still reports where it served


async def test_an_ssl_context_needs_a_wss_url(make_node: NodeFactory) -> None:
    server = await make_node()
    client = await make_node(server_mode=False)
    assert server.ws_url is not None
    with pytest.raises(HandshakeError, match="wss"):
        await client.connect_websocket(server.ws_url, ssl=ssl.create_default_context())
    assert client.session_manager.get_session_count() == 0


async def test_large_messages_pass_the_link_backpressure(make_node: NodeFactory) -> None:
    # A queue of two records: each message fills it, and the records that do not fit are
    # dropped and recovered by retransmission.
    config = NodeConfig(websocket_send_queue_bytes=2 * 65536)
    server = await make_node(config=config)
    client = await make_node(server_mode=False, config=config)
    session, peer = await connect(client, server, "websocket")
    messages = [bytes([i]) * (300 * 1024) for i in range(4)]
    for message in messages:
        await session.send(message, stream_id=1)  # each one fills the link's queue
    await session.send(SENTINEL, stream_id=1)
    packets = await collect_until_sentinels(server, [(peer.session_id, 1)])
    assert [p.data for p in packets] == messages
    (link,) = client.websocket_links
    assert link.peak_queued_bytes <= 2 * 65536
    assert session.is_active()


async def test_mebibytes_cross_a_websocket_both_ways_intact_without_retransmission(
    make_node: NodeFactory,
) -> None:
    # WebSocket is reliable (§14.8): no congestion window, no loss detection, rare ACKs; every
    # byte arrives in both directions at once, nothing is resent, and in the end nothing is
    # left unacknowledged.
    server = await make_node()
    client = await make_node(server_mode=False)
    session, peer = await connect(client, server, "websocket")
    up = os.urandom(3 * 1024 * 1024)
    down = os.urandom(3 * 1024 * 1024)
    sending = asyncio.gather(session.send(up, stream_id=2), peer.send(down, stream_id=3))
    (at_server,), (at_client,) = await asyncio.gather(receive_n(server, 1), receive_n(client, 1))
    await sending
    assert at_server.data == up
    assert at_client.data == down
    for side in (session, peer):
        stats = side.get_statistics()
        assert stats["packets_lost"] == 0
        assert stats["retransmitted_bytes"] == 0
    (link,) = client.websocket_links
    assert link.send_dropped == 0
    await wait_until(
        lambda: session.get_statistics()["bytes_in_flight"] == 0, "everything acknowledged"
    )


async def test_the_tail_of_a_write_rides_with_the_next_one(make_node: NodeFactory) -> None:
    """§15.4 over a real connection: four 64 KiB writes in one loop turn. The first leaves at
    once as a full record; its 49-byte tail waits while the connection's queue is busy and
    fills a record with the next writes; the last tail leaves once the queue is empty, with
    nothing more written: 5 messages (without the cork, 6: the first tail alone)."""
    server = await make_node()
    client = await make_node(server_mode=False)
    session, peer = await connect(client, server, "websocket")
    stream = await session.open_stream()
    incoming_streams = peer.incoming_streams()
    data = os.urandom(4 * 65536)
    await asyncio.sleep(0.01)  # a fresh loop turn: the first write is sent at once
    before = session.get_statistics()["packets_sent"]
    for offset in range(0, len(data), 65536):
        stream.write(data[offset : offset + 65536])  # no await: one loop turn
    incoming = await anext(aiter(incoming_streams))
    assert await incoming.readexactly(len(data)) == data  # the last tail left, unasked
    assert session.get_statistics()["packets_sent"] - before == 5


async def test_a_writer_that_drains_between_writes_sends_one_record_per_write(
    make_node: NodeFactory,
) -> None:
    """§15.4, the usual application loop (``await write``, ``await drain``): each tail is held
    until the connection has taken everything queued and the application had a loop turn to
    write again, so it fills the next write's record instead of leaving alone (without the
    cork: two records per write). On loopback in one process the old wake-up (as the last
    packet left the queue) passed too; across processes it raced the next write (1.05-1.5
    records per write, docs/performance.md)."""
    server = await make_node()
    client = await make_node(server_mode=False)
    session, peer = await connect(client, server, "websocket")
    stream = await session.open_stream()
    incoming_streams = peer.incoming_streams()
    writes = 16
    data = os.urandom(writes * 65536)
    await asyncio.sleep(0.01)
    before = session.get_statistics()["packets_sent"]
    for offset in range(0, len(data), 65536):
        await stream.write(data[offset : offset + 65536])
        await stream.drain()
    incoming = await anext(aiter(incoming_streams))
    assert await incoming.readexactly(len(data)) == data
    # One record per write, and the last tail alone (ACKs of the peer's records, if any, may
    # ride along; they make no record of their own while data flows).
    assert session.get_statistics()["packets_sent"] - before <= writes + 1


async def test_sessions_share_one_server_but_not_links(make_node: NodeFactory) -> None:
    server = await make_node()
    clients = [await make_node(server_mode=False) for _ in range(3)]
    pairs = [await connect(client, server, "websocket") for client in clients]
    assert server.get_stats()["transports"]["websocket"]["connections"] == 3
    for k, (session, _) in enumerate(pairs):
        await session.send(b"client %d" % k, stream_id=k)
    packets = await receive_n(server, 3)
    assert sorted((p.session_id, p.data) for p in packets) == sorted(
        (peer.session_id, b"client %d" % k) for k, (_, peer) in enumerate(pairs)
    )
    await pairs[0][0].close()
    assert pairs[1][0].state == SessionState.ACTIVE


async def test_a_connection_closed_during_the_handshake_fails_it(make_node: NodeFactory) -> None:
    silent = await make_node(server_mode=False)  # never answers an INIT
    client = await make_node(server_mode=False)
    assert silent.ws_url is not None
    connecting = asyncio.create_task(client.connect_websocket(silent.ws_url, timeout=10 * SECOND))
    await wait_until(
        lambda: silent.get_stats()["drops"].get("handshake_state", 0) == 1, "the INIT to arrive"
    )
    await silent.stop()  # closes the WebSocket under the pending handshake
    with pytest.raises(HandshakeError, match="connection closed") as info:
        await connecting
    assert not isinstance(info.value, TimeoutError)
    assert client.get_stats()["handshakes"]["failed"] == 1
    assert client.session_manager.get_session_count() == 0


async def test_a_link_refuses_packets_once_closed(make_node: NodeFactory) -> None:
    server = await make_node()
    client = await make_node(server_mode=False)
    session, _ = await connect(client, server, "websocket")
    (link,) = [link for link in client.websocket_links if isinstance(link, WSLink)]
    assert "127.0.0.1:" in repr(link)
    await session.close()
    await link.aclose()
    await link.aclose()  # idempotent
    link.send(b"too late")
    assert link.send_dropped == 1


# -- record size and TCP segments (§12.2, "Record size") ---------------------------------------
async def test_an_accepted_link_sizes_records_to_the_connections_segments(
    make_node: NodeFactory,
) -> None:
    # A client that announces an Ethernet-sized MSS: the server's end of the connection then
    # sends 1448-byte segments, and its link sizes records to one burst of them.
    server = await make_node()
    assert server.ws_url is not None
    address = urlsplit(server.ws_url)
    assert address.hostname is not None
    assert address.port is not None
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 1460)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (address.hostname, address.port))
    async with ws_connect(server.ws_url, sock=sock, compression=None, proxy=None):
        await wait_until(lambda: len(server.websocket_links) == 1, "the server's link")
        (link,) = server.websocket_links
        mss = tcp_segment_size(link.connection.transport)
        assert 1000 < mss <= 1460
        assert link.record_size == burst_record_size(65536, mss, masked=False, tls=False)
        assert link.record_size < 65536
        assert link.link.record_size == link.record_size
        assert link.link.max_record_size == 65536  # what it carries: the configured limit


async def test_sessions_send_records_of_the_links_size_and_data_arrives_intact(
    make_node: NodeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every connection as on an Ethernet path (the lookup of its MSS stubbed where WSLink calls
    # it): 1 MiB each way
    # in records that fit one burst, nothing lost or reordered.
    monkeypatch.setattr(websocket_module, "tcp_segment_size", lambda transport: 1448)
    server = await make_node()
    client = await make_node(server_mode=False)
    session, peer = await connect(client, server, "websocket")
    ((client_link,), (server_link,)) = client.websocket_links, server.websocket_links
    assert (client_link.record_size, server_link.record_size) == (65160 - 8, 65160 - 4)
    data = os.urandom(1 << 20)
    stream = await session.open_stream()
    await stream.write(data)
    incoming = await anext(aiter(peer.incoming_streams()))
    assert await incoming.readexactly(len(data)) == data
    await incoming.write(data[::-1])
    assert await stream.readexactly(len(data)) == data[::-1]
    for node, sid, link in (
        (client, session.session_id, client_link),
        (server, peer.session_id, server_link),
    ):
        core = node._driver.endpoint.get_session(sid)
        assert core is not None
        assert core.max_record_size == link.record_size


# -- TLS ------------------------------------------------------------------------------------------
@pytest.fixture
def tls(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a throwaway self-signed certificate for 127.0.0.1, and a client
    context that trusts exactly that certificate."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=30 * SECOND,
    )
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    client_context = ssl.create_default_context(cafile=str(cert))
    return server_context, client_context


async def test_wss(
    make_node: NodeFactory, shared_seed: bytes, tls: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    server_context, client_context = tls
    server = STTNode(generate_seed(), shared_seed, ws_port=0)
    await server.start(server_mode=True, ssl=server_context)
    try:
        assert server.ws_url is not None
        assert server.ws_url.startswith("wss://127.0.0.1:")
        client = await make_node(server_mode=False)
        # The default context does not trust a self-signed certificate.
        with pytest.raises(HandshakeError):
            await client.connect_websocket(server.ws_url, timeout=5 * SECOND)
        with pytest.raises(HandshakeError):
            await client.connect_websocket(
                server.ws_url.replace("wss://", "ws://"), timeout=5 * SECOND
            )
        session = await client.connect_websocket(server.ws_url, ssl=client_context)
        assert session.transport_type == "websocket"
        await session.send(b"over TLS")
        (packet,) = await receive_n(server, 1)
        assert (packet.data, packet.transport) == (b"over TLS", "websocket")
    finally:
        await server.stop()


async def test_wss_records_leave_room_for_the_tls_overhead(
    make_node: NodeFactory,
    shared_seed: bytes,
    tls: tuple[ssl.SSLContext, ssl.SSLContext],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Under TLS each 16 KiB TLS record adds its overhead to the frame: with Ethernet-sized
    # segments (the MSS lookup stubbed where WSLink calls it) records are smaller than over
    # plain WebSocket, and 1 MiB still crosses intact in them.
    monkeypatch.setattr(websocket_module, "tcp_segment_size", lambda transport: 1448)
    server_context, client_context = tls
    server = STTNode(generate_seed(), shared_seed, ws_port=0)
    await server.start(server_mode=True, ssl=server_context)
    try:
        assert server.ws_url is not None
        client = await make_node(server_mode=False)
        session = await client.connect_websocket(server.ws_url, ssl=client_context)
        ((client_link,), (server_link,)) = client.websocket_links, server.websocket_links
        assert client_link.record_size == burst_record_size(65536, 1448, masked=True, tls=True)
        assert server_link.record_size == burst_record_size(65536, 1448, masked=False, tls=True)
        assert server_link.record_size < burst_record_size(65536, 1448, masked=False, tls=False)
        data = os.urandom(1 << 20)
        stream = await session.open_stream()
        await stream.write(data)
        incoming = await anext(
            aiter(server.session_manager.get_active_sessions()[0].incoming_streams())
        )
        assert await incoming.readexactly(len(data)) == data
    finally:
        await server.stop()


class ConnectProxy:
    """An HTTP CONNECT proxy on loopback: it records each target and pipes the bytes both ways."""

    def __init__(self) -> None:
        self.targets: list[str] = []
        self.server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    async def __aenter__(self) -> ConnectProxy:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for task in self._pipes:
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        method, target, _ = request.split(b"\r\n", 1)[0].decode().split(" ", 2)
        assert method == "CONNECT", method
        self.targets.append(target)
        host, port = target.rsplit(":", 1)
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        finally:
            sink.close()


async def test_connect_websocket_through_an_http_proxy(make_node: NodeFactory) -> None:
    server = await make_node()
    client = await make_node(server_mode=False, ws=False)
    assert server.ws_url is not None
    async with ConnectProxy() as proxy:
        session = await client.connect_websocket(
            server.ws_url, timeout=10 * SECOND, proxy=proxy.url
        )
        await session.send(b"via the proxy")
        [packet] = await receive_n(server, 1)
    assert packet.data == b"via the proxy"
    assert proxy.targets == [server.ws_url.removeprefix("ws://").removesuffix("/stt")]


async def test_the_environments_proxy_only_when_asked(
    make_node: NodeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = await make_node()
    client = await make_node(server_mode=False, ws=False)
    assert server.ws_url is not None
    async with ConnectProxy() as proxy:
        monkeypatch.setenv("WS_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        direct = await client.connect_websocket(server.ws_url, timeout=10 * SECOND)
        assert proxy.targets == []  # the default is a direct connection
        proxied = await client.connect_websocket(server.ws_url, timeout=10 * SECOND, proxy=True)
        assert len(proxy.targets) == 1
        await proxied.send(b"env")
        await direct.send(b"direct")
        received = {packet.data for packet in await receive_n(server, 2)}
    assert received == {b"env", b"direct"}


async def test_a_proxy_that_is_not_a_url_is_refused(make_node: NodeFactory) -> None:
    client = await make_node(server_mode=False, ws=False)
    with pytest.raises(TypeError, match="proxy must be"):
        await client.connect_websocket("ws://127.0.0.1:9/stt", proxy=8080)  # type: ignore[arg-type]
    with pytest.raises(HandshakeError, match="cannot open a WebSocket"):
        await client.connect_websocket("ws://127.0.0.1:9/stt", proxy="ftp://127.0.0.1:1")
