"""The UDP transport, alone and under a node: garbage, replays, address changes, backpressure."""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import sys
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from seigr_stt import NodeConfig, NodeEvent, SessionState, STTNode, generate_seed
from seigr_stt.aio import udp
from seigr_stt.aio.udp import UDPTransport
from seigr_stt.constants import PACKET_DATA, PROTOCOL_VERSION
from tests.aio.helpers import (
    LOOPBACK,
    SENTINEL,
    NodeFactory,
    UDPRelay,
    collect_until_sentinels,
    connect,
    loopback_udp_socket,
    receive_n,
    recv_all,
    wait_until,
)
from tests.timing import MS, SECOND

Received = list[tuple[bytes, tuple[str, int]]]


def garbage(session_id: bytes) -> list[tuple[bytes, str]]:
    """Hostile datagrams and the drop reason each must be counted under."""
    record_header = bytes([PROTOCOL_VERSION, PACKET_DATA, 0, 0])
    V = bytes([PROTOCOL_VERSION])
    return [
        (b"", "short"),
        (V, "short"),
        (b"\x07\x05" + bytes(50), "version"),
        (V + b"\x09" + bytes(50), "type"),
        (V + b"\x05" + bytes(10), "short"),  # shorter than a record header
        (record_header + b"unknown!" + bytes(8) + bytes(33), "malformed"),  # not padded
        (record_header + b"unknown!" + bytes(8) + bytes(32), "unknown_session"),
        # a record for the live session that does not authenticate
        (record_header + session_id + (1 << 40).to_bytes(8, "big") + bytes(48), "auth"),
        (V + b"\x01\x00\x00" + os.urandom(296), "mac1"),  # an INIT without a valid mac1
        (V + b"\x01\x00\x00" + bytes(50), "size"),  # an INIT too short to be one
        (V + b"\x02\x01\x00" + bytes(100), "malformed"),  # reserved bytes set
        (V + b"\x03\x00\x00" + os.urandom(100), "mac1"),  # a FINAL without a valid mac1
        (V + b"\x04\x00\x00" + bytes(60), "unknown_index"),  # a cookie reply for nothing
    ]


# -- under a node ---------------------------------------------------------------------------------
async def test_garbage_datagrams_are_dropped_counted_and_unanswered(
    make_node: NodeFactory,
) -> None:
    server = await make_node()
    client = await make_node(server_mode=False)
    session, peer = await connect(client, server, "udp")
    assert server.udp_address is not None
    before = Counter(server.get_stats()["drops"])
    sent_before = server.get_stats()["packets_sent"]
    raw = loopback_udp_socket()
    try:
        hostile = garbage(session.session_id)
        for data, _ in hostile:
            raw.sendto(data, server.udp_address)
        expected = Counter(reason for _, reason in hostile)
        await wait_until(
            lambda: Counter(server.get_stats()["drops"]) - before == expected,
            "every garbage datagram to be counted",
        )
        assert server.get_stats()["packets_sent"] == sent_before  # no answer to any of it
        # The session still works both ways, and was not moved to the raw socket's address.
        await session.send(b"after the garbage")
        await peer.send(b"reply after the garbage")
        (up,) = await receive_n(server, 1)
        (down,) = await receive_n(client, 1)
        assert (up.data, down.data) == (b"after the garbage", b"reply after the garbage")
        assert peer.peer_addr == client.udp_address
        assert peer.get_statistics()["auth_failures"] == 1
        # Nothing was sent back to the garbage's source.
        assert recv_all(raw, server.udp_address) == []
    finally:
        raw.close()
    assert Counter(server.get_stats()["drops"]) - before == expected
    assert server.session_manager.get_session_count() == 1


async def test_random_datagrams_at_volume(make_node: NodeFactory) -> None:
    server = await make_node()
    client = await make_node(server_mode=False)
    session, _ = await connect(client, server, "udp")
    assert server.udp_address is not None
    before = server.get_stats()["drops_total"]
    raw = loopback_udp_socket()
    count = 500
    try:
        rng = os.urandom
        for i in range(count):
            data = bytearray(rng(1 + i % 300))
            if i % 3 == 0:  # make many of them look like records or handshakes
                data[:2] = bytes([PROTOCOL_VERSION, 1 + i % 5])[: len(data)]
            raw.sendto(bytes(data), server.udp_address)
            if i % 50 == 0:
                await asyncio.sleep(0)  # let the node read; the socket buffer is not endless
        await wait_until(
            lambda: server.get_stats()["drops_total"] - before == count, "every drop counted"
        )
    finally:
        raw.close()
    await session.send(b"alive")
    (packet,) = await receive_n(server, 1)
    assert packet.data == b"alive"
    assert server.session_manager.get_session_count() == 1


async def test_replayed_records_are_dropped_and_not_delivered_twice(
    make_node: NodeFactory,
) -> None:
    server = await make_node()
    client = await make_node(server_mode=False)
    assert server.udp_address is not None
    relay = UDPRelay(server.udp_address)
    try:
        session = await client.connect_udp(*relay.address)
        peer = server.session_manager.get_session(session.session_id)
        assert peer is not None
        await session.send(b"exactly once", stream_id=3)
        (packet,) = await receive_n(server, 1)
        assert packet.data == b"exactly once"
        records = [d for d in relay.to_server if d[1] == PACKET_DATA]
        assert records
        before = server.get_stats()["drops"].get("replay", 0)
        for record in records:
            relay.inject(record)
        await wait_until(
            lambda: server.get_stats()["drops"].get("replay", 0) - before == len(records),
            "the replays to be dropped",
        )
        assert peer.get_statistics()["replays_dropped"] == len(records)
        await session.send(SENTINEL, stream_id=3)
        assert await collect_until_sentinels(server, [(peer.session_id, 3)]) == []

        # After the close, the session's records are dropped as a tombstone's.
        await session.close()
        async with asyncio.timeout(10 * SECOND):
            await peer.wait_closed()
        relay.inject(records[-1])
        await wait_until(
            lambda: server.get_stats()["drops"].get("tombstone", 0) == 1, "a tombstone drop"
        )
    finally:
        relay.close()


async def test_peer_address_change_follows_authenticated_packets(make_node: NodeFactory) -> None:
    server = await make_node()
    client = await make_node(server_mode=False)
    assert server.udp_address is not None
    server_events: list[NodeEvent] = []
    client_events: list[NodeEvent] = []
    server.on("peer_address_changed", server_events.append)
    client.on("peer_address_changed", client_events.append)
    relay = UDPRelay(server.udp_address)
    try:
        session = await client.connect_udp(*relay.address)
        peer = server.session_manager.get_session(session.session_id)
        assert peer is not None
        old_address = relay.back_address
        assert peer.peer_addr == old_address
        assert session.peer_addr == relay.address

        # An unauthenticated record with the session's id from elsewhere moves nothing.
        forged = bytes([PROTOCOL_VERSION, PACKET_DATA, 0, 0]) + session.session_id
        forged += (1 << 30).to_bytes(8, "big") + bytes(48)
        raw = loopback_udp_socket()
        try:
            raw.sendto(forged, server.udp_address)
            await wait_until(lambda: server.get_stats()["drops"].get("auth", 0) == 1, "a drop")
        finally:
            raw.close()
        assert peer.peer_addr == old_address
        assert server_events == []

        relay.rebind()  # the client now appears to come from a new port (a NAT rebinding)
        new_address = relay.back_address
        assert new_address != old_address
        await session.send(b"from my new address", stream_id=1)
        (packet,) = await receive_n(server, 1)
        assert packet.data == b"from my new address"
        # The new address is followed only once it answered a challenge (§5.3): one round trip.
        await wait_until(lambda: bool(server_events), "the path to be validated")
        assert [(e.kind, e.session, e.old_address, e.new_address) for e in server_events] == [
            ("peer_address_changed", peer, old_address, new_address)
        ]
        assert peer.peer_addr == new_address
        # Replies now go to the new address (the relay forwards from both; count the new one).
        await peer.send(b"to your new address", stream_id=1)
        (reply,) = await receive_n(client, 1)
        assert reply.data == b"to your new address"
        assert client_events == []
        assert session.is_active()
        assert peer.is_active()
        await session.close()  # through the relay, before it goes: no wait for a lost CLOSE
        async with asyncio.timeout(5 * SECOND):
            await peer.wait_closed()
    finally:
        relay.close()


async def test_reflected_handshake_is_dropped(make_node: NodeFactory) -> None:
    """Our own INIT sent back to us is recognised and dropped, never answered."""
    node = await make_node(server_mode=True)
    assert node.udp_address is not None
    catcher = loopback_udp_socket()
    try:
        host, port = catcher.getsockname()[:2]
        connecting = asyncio.create_task(node.connect_udp(host, port, timeout=1500 * MS))
        await wait_until(lambda: node.get_stats()["handshakes"]["in_flight"] == 1, "INIT")
        async with asyncio.timeout(10 * SECOND):
            while True:
                init = b"".join(recv_all(catcher, node.udp_address)[:1])
                if init:
                    break
                await asyncio.sleep(0.005)
        catcher.sendto(init, node.udp_address)
        await wait_until(lambda: node.get_stats()["drops"].get("reflection", 0) == 1, "a drop")
        with pytest.raises(TimeoutError):
            await connecting
    finally:
        catcher.close()
    assert node.session_manager.get_session_count() == 0


async def test_data_that_needs_no_reply_is_acknowledged_then_all_is_quiet(
    make_node: NodeFactory,
) -> None:
    """The keepalive's job (answer data so the sender does not think us dead) is done by the
    ACK: a record carrying data is acknowledged within the ACK delay, which is shorter than
    the keepalive interval. An ACK needs no answer itself, so both sides then stay silent:
    no keepalive ping-pong of empty records."""
    config = NodeConfig(keepalive_s=0.05)
    server = await make_node(config=config)
    client = await make_node(server_mode=False, config=config)
    session, peer = await connect(client, server, "udp")
    server_sent = peer.get_statistics()["packets_sent"]
    await session.send(b"one message; the application never replies")
    await receive_n(server, 1)
    await wait_until(
        lambda: session.get_statistics()["bytes_in_flight"] == 0, "the data to be acknowledged"
    )
    assert peer.get_statistics()["packets_sent"] > server_sent
    assert session.rtt is not None  # the acknowledgement gave an RTT sample
    quiet = (session.get_statistics()["packets_sent"], peer.get_statistics()["packets_sent"])
    await asyncio.sleep(6 * config.keepalive_s)
    assert (
        session.get_statistics()["packets_sent"],
        peer.get_statistics()["packets_sent"],
    ) == quiet
    assert session.is_active()
    assert peer.is_active()


# -- the transport alone --------------------------------------------------------------------------
async def bind(received: Received, host: str = LOOPBACK) -> UDPTransport:
    return await UDPTransport.bind(host, 0, lambda data, addr: received.append((data, addr)))


async def test_transport_sends_and_receives() -> None:
    got_a: Received = []
    got_b: Received = []
    a = await bind(got_a)
    b = await bind(got_b)
    try:
        assert a.address[0] == LOOPBACK
        assert a.address[1] > 0
        a.sendto(b"one", b.address)
        a.sendto(b"", b.address)
        b.sendto(b"back", a.address)
        await wait_until(lambda: len(got_b) == 2 and len(got_a) == 1, "the datagrams")
        assert got_b == [(b"one", a.address), (b"", a.address)]
        assert got_a == [(b"back", b.address)]
        assert (a.datagrams_sent, a.datagrams_received) == (2, 1)
        assert (b.datagrams_sent, b.datagrams_received) == (1, 2)
        assert a.queued == 0
        async with asyncio.timeout(10 * SECOND):
            await a.wait_writable()
    finally:
        a.close()
        b.close()


async def test_transport_counts_send_errors_and_drops_after_close() -> None:
    got: Received = []
    a = await bind(got)
    b = await bind(got)
    try:
        a.sendto(b"x" * 70000, b.address)  # larger than any UDP datagram: EMSGSIZE
        assert (a.send_errors, a.datagrams_sent) == (1, 0)
    finally:
        a.close()
        a.close()  # idempotent
        b.close()
    assert a.closed
    a.sendto(b"after close", b.address)
    assert a.send_dropped == 1


async def test_transport_ipv6() -> None:
    got: Received = []
    a = await bind(got, "::1")
    b = await bind(got, "::1")
    try:
        a.sendto(b"v6", b.address)
        await wait_until(lambda: bool(got), "the datagram")
        assert got == [(b"v6", a.address)]
    finally:
        a.close()
        b.close()


class FlakySocket(socket.socket):
    """A real UDP socket whose first ``busy`` sends report a full buffer and whose first
    ``read_errors`` reads fail (as an ICMP error would)."""

    busy = 0
    read_errors = 0
    fail_sends = False

    def sendto(self, *args: Any) -> int:
        if self.busy:
            self.busy -= 1
            raise BlockingIOError
        if self.fail_sends:
            raise OSError("simulated send failure")
        return int(super().sendto(*args))

    def recvfrom(self, *args: Any) -> Any:
        if self.read_errors:
            self.read_errors -= 1
            raise ConnectionRefusedError
        return super().recvfrom(*args)


def flaky_transport(received: Received) -> tuple[UDPTransport, FlakySocket]:
    sock = FlakySocket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.bind((LOOPBACK, 0))
    loop = asyncio.get_running_loop()
    return UDPTransport(loop, sock, lambda d, a: received.append((d, a))), sock


async def test_transport_queues_when_the_kernel_buffer_is_full(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(udp, "SEND_QUEUE_HIGH_WATER", 4)
    got: Received = []
    sender, sock = flaky_transport([])
    receiver = await bind(got)
    try:
        sock.busy = 2  # the direct send and the writer's first attempt find the buffer full
        for i in range(6):
            sender.sendto(b"%d" % i, receiver.address)
        assert sender.queued == 6
        assert sender.datagrams_sent == 0
        async with asyncio.timeout(10 * SECOND):
            await sender.wait_writable()
        await wait_until(lambda: len(got) == 6, "the queued datagrams")
        assert [d for d, _ in got] == [b"%d" % i for i in range(6)]
        assert sender.queued == 0
        assert sender.datagrams_sent == 6
        sender.sendto(b"direct again", receiver.address)
        await wait_until(lambda: len(got) == 7, "the direct datagram")
    finally:
        sender.close()
        receiver.close()


async def test_transport_drops_beyond_its_queue_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(udp, "SEND_QUEUE_MAX", 3)
    sender, sock = flaky_transport([])
    try:
        sock.busy = 1_000_000
        for _ in range(5):
            sender.sendto(b"x", (LOOPBACK, 9))
        assert sender.queued == 3
        assert sender.send_dropped == 2
    finally:
        sender.close()  # closing with a queue and a writer registered
    assert sender.queued == 0


async def test_transport_counts_errors_of_queued_sends() -> None:
    sender, sock = flaky_transport([])
    try:
        sock.busy = 1
        sender.sendto(b"x", (LOOPBACK, 9))
        assert sender.queued == 1
        sock.fail_sends = True
        await wait_until(lambda: sender.queued == 0, "the writer to give up on the datagram")
        assert sender.send_errors == 1
        assert sender.datagrams_sent == 0
    finally:
        sender.close()


async def test_transport_skips_read_errors() -> None:
    got: Received = []
    receiver, sock = flaky_transport(got)
    sender = await bind([])
    try:
        sock.read_errors = 1
        sender.sendto(b"after an error", receiver.address)
        await wait_until(lambda: bool(got), "the datagram")
        assert got == [(b"after an error", sender.address)]
    finally:
        receiver.close()
        sender.close()


async def test_node_with_a_closed_udp_transport_drops_sends(make_node: NodeFactory) -> None:
    server = await make_node()
    client = await make_node(server_mode=False)
    session, _ = await connect(client, server, "udp")
    assert client.udp_transport is not None
    client.udp_transport.close()
    await session.send(b"into the void")  # queued in the core; the transport drops it
    assert client.get_stats()["transports"]["udp"]["send_dropped"] >= 1
    assert session.state == SessionState.ACTIVE
    assert isinstance(client, STTNode)


class NoReaderLoop(asyncio.SelectorEventLoop):
    """A loop without ``add_reader``/``add_writer``, as the Proactor loop (Windows' default)."""

    def add_reader(self, fd: Any, callback: Callable[..., Any], *args: Any) -> None:  # type: ignore[override]
        raise NotImplementedError

    def add_writer(self, fd: Any, callback: Callable[..., Any], *args: Any) -> None:  # type: ignore[override]
        raise NotImplementedError


def test_a_loop_without_add_reader_gets_the_datagram_endpoint_and_a_working_node() -> None:
    """The fallback end to end: handshake, messages both ways, a stream, and a clean stop."""

    async def exchange() -> None:
        shared = generate_seed()
        server = STTNode(generate_seed(), shared, LOOPBACK, 0, ws_port=None)
        client = STTNode(generate_seed(), shared, LOOPBACK, 0, ws_port=None)
        await server.start(server_mode=True)
        await client.start()
        try:
            for node in (server, client):
                transport = node.udp_transport
                assert transport is not None
                assert transport.uses_endpoint
            address = server.udp_address
            assert address is not None
            host, port = address
            async with asyncio.timeout(10 * SECOND):
                session = await client.connect_udp(host, port)
                await session.send(b"hello over the endpoint")
                [packet] = await receive_n(server, 1)
                assert packet.data == b"hello over the endpoint"
                await server.send_to_sessions([packet.session_id], b"and back")
                [reply] = await receive_n(client, 1)
                assert reply.data == b"and back"
                big = os.urandom(300_000)  # many records: the batch end and the acks
                await session.send(big)
                [packet] = await receive_n(server, 1)
                assert packet.data == big
        finally:
            await client.stop()
            await server.stop()
        for node in (server, client):
            transport = node.udp_transport
            assert transport is not None
            assert not transport.is_running

    with asyncio.Runner(loop_factory=NoReaderLoop) as runner:
        runner.run(exchange())


def test_the_datagram_endpoint_transport_sends_receives_and_counts() -> None:
    async def run() -> None:
        got_a: Received = []
        got_b: Received = []
        a = await bind(got_a)
        b = await bind(got_b)
        try:
            assert a.uses_endpoint
            a.sendto(b"one", b.address)
            b.sendto(b"back", a.address)
            await wait_until(lambda: len(got_b) == 1 and len(got_a) == 1, "the datagrams")
            assert got_b == [(b"one", a.address)]
            assert (a.datagrams_sent, a.datagrams_received) == (1, 1)
            assert a.queued == 0
            a.sendto(b"x" * 70000, b.address)  # larger than any UDP datagram
            await asyncio.sleep(0)
        finally:
            a.close()
            b.close()
        a.sendto(b"after close", b.address)
        assert a.send_dropped == 1
        assert not a.is_running

    with asyncio.Runner(loop_factory=NoReaderLoop) as runner:
        runner.run(run())


def test_pmtu_options_are_linux_numbers_only_on_linux(monkeypatch: pytest.MonkeyPatch) -> None:
    """A missing option is skipped off Linux: 10 is IP_MULTICAST_TTL on macOS and Windows."""
    monkeypatch.delattr(socket, "IP_MTU_DISCOVER", raising=False)
    monkeypatch.setattr(sys, "platform", "darwin")
    assert udp._socket_option("IP_MTU_DISCOVER", 10) is None
    monkeypatch.setattr(sys, "platform", "linux")
    assert udp._socket_option("IP_MTU_DISCOVER", 10) == 10
    monkeypatch.setattr(socket, "IP_MTU_DISCOVER", 10, raising=False)
    monkeypatch.setattr(sys, "platform", "darwin")
    assert udp._socket_option("IP_MTU_DISCOVER", 99) == 10  # the module's own constant wins


# -- segmentation and receive offload (Linux) -----------------------------------------------------
def burst() -> list[bytes]:
    """Ten 1200-byte datagrams and a shorter last one: one run for segmentation offload."""
    return [bytes([i]) * 1200 for i in range(10)] + [b"tail" * 100]


async def offloading() -> UDPTransport:
    """A transport that offloads, or a skip where this kernel offers no segmentation offload."""
    probe = await bind([])
    if not probe.gso:
        probe.close()
        pytest.skip("this kernel offers no UDP segmentation offload")
    return probe


async def test_a_run_goes_out_in_one_offloaded_send_and_arrives_as_datagrams() -> None:
    got: Received = []
    a = await offloading()
    b = await UDPTransport.bind(LOOPBACK, 0, lambda d, s: got.append((d, s)), offload=False)
    try:
        assert not b.gso
        assert not b.gro
        a.send_many(burst(), b.address)
        await wait_until(lambda: len(got) == 11, "eleven datagrams")
        assert got == [(packet, a.address) for packet in burst()]
        assert (a.gso_sends, a.datagrams_sent, b.datagrams_received) == (1, 11, 11)
    finally:
        a.close()
        b.close()


async def test_coalesced_reads_are_split_at_the_segment_size_in_order() -> None:
    got: Received = []
    batches: list[int] = []
    a = await offloading()
    b = await UDPTransport.bind(
        LOOPBACK,
        0,
        lambda d, s: got.append((d, s)),
        lambda: batches.append(len(got)),
    )
    try:
        assert b.gro
        a.send_many(burst(), b.address)
        a.sendto(b"alone", b.address)
        await wait_until(lambda: len(got) == 12, "twelve datagrams")
        assert got == [(packet, a.address) for packet in [*burst(), b"alone"]]
        # Loopback hands the offloaded send over as it went: one read, split again.
        assert b.gro_reads >= 1
        assert b.datagrams_received == 12
        assert batches[-1] == 12
    finally:
        a.close()
        b.close()


async def test_runs_break_at_a_larger_datagram_and_at_the_segment_limit() -> None:
    got: Received = []
    a = await offloading()
    b = await UDPTransport.bind(LOOPBACK, 0, lambda d, s: got.append((d, s)), offload=False)
    packets = [b"a" * 500, b"b" * 500, b"c" * 900, b"d" * 100]  # runs: a b | c d
    packets += [bytes([i % 256]) * 100 for i in range(udp.GSO_MAX_SEGMENTS + 1)]  # 64 | 1
    try:
        a.send_many(packets, b.address)
        await wait_until(lambda: len(got) == len(packets), "every datagram")
        assert [d for d, _ in got] == packets
        assert a.gso_sends == 3  # a+b, c+d, the 64; the 65th goes alone
        assert a.datagrams_sent == len(packets)
    finally:
        a.close()
        b.close()


class RefusingSocket:
    """A socket whose kernel refuses segmentation offload on send (EIO, as a device without
    checksum offload answers); everything else is the real socket's."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.refused = 0

    def sendmsg(self, *args: Any) -> int:
        self.refused += 1
        raise OSError(errno.EIO, "segmentation offload refused")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


async def test_a_refused_offload_falls_back_to_one_datagram_per_call_and_loses_nothing() -> None:
    got: Received = []
    a = await offloading()
    b = await UDPTransport.bind(LOOPBACK, 0, lambda d, s: got.append((d, s)), offload=False)
    refusing = RefusingSocket(a._sock)
    a._sock = refusing  # type: ignore[assignment]
    try:
        a.send_many(burst(), b.address)
        a.send_many(burst(), b.address)  # no second attempt: offload is off for this socket
        await wait_until(lambda: len(got) == 22, "every datagram")
        assert [d for d, _ in got] == burst() + burst()
        assert (refusing.refused, a.gso, a.gso_sends, a.send_errors) == (1, False, 0, 0)
    finally:
        a._sock = refusing._sock
        a.close()
        b.close()


async def test_without_offload_a_run_goes_datagram_by_datagram(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    got: Received = []
    monkeypatch.setenv(udp.NO_OFFLOAD_ENV, "1")
    a = await UDPTransport.bind(LOOPBACK, 0, lambda d, s: None)
    b = await UDPTransport.bind(LOOPBACK, 0, lambda d, s: got.append((d, s)), offload=False)
    try:
        assert not a.gso
        assert not a.gro
        a.send_many(burst(), b.address)
        await wait_until(lambda: len(got) == 11, "eleven datagrams")
        assert [d for d, _ in got] == burst()
        assert (a.gso_sends, a.datagrams_sent) == (0, 11)
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("offload", [True, False], ids=["offload", "portable"])
async def test_a_stream_between_nodes_with_and_without_offload(
    make_node: NodeFactory, monkeypatch: pytest.MonkeyPatch, offload: bool
) -> None:
    if not offload:
        monkeypatch.setattr(udp, "_offloads", lambda sock: (False, False))
    server = await make_node()
    client = await make_node(server_mode=False)
    session, peer = await connect(client, server, "udp")
    assert client._driver.udp is not None
    assert server._driver.udp is not None
    if offload and not client._driver.udp.gso:
        pytest.skip("this kernel offers no UDP segmentation offload")
    payload = os.urandom(512 * 1024)
    stream = await session.open_stream()
    await stream.write(payload)
    await stream.close()
    async with asyncio.timeout(20 * SECOND):
        incoming = await anext(peer.incoming_streams())
        assert await incoming.read() == payload
    assert (client._driver.udp.gso_sends > 0) == offload
    assert (server._driver.udp.gro, client._driver.udp.gro) == (offload, offload)
    stats = client.stats()
    assert stats.udp.offload == offload
    assert stats.udp.offloaded_sends == client._driver.udp.gso_sends
    assert stats.udp.coalesced_reads == client._driver.udp.gro_reads
