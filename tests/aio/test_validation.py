"""Arguments are checked at every public entry, OS failures arrive in the STTError tree, close
codes are typed, misuse after stop() raises (issue 13, deliverable 5)."""

from __future__ import annotations

import asyncio
import errno
import socket
import time

import pytest

from seigr_stt import (
    BindError,
    CloseCode,
    ConfigError,
    HandshakeError,
    HandshakeTimeout,
    NodeConfig,
    ProtocolError,
    SessionClosedError,
    STTError,
    STTNode,
    generate_seed,
)
from tests.aio.helpers import LOOPBACK, NodeFactory, Pair, connect, next_incoming_stream
from tests.timing import SECOND


async def test_data_that_is_not_bytes_is_refused_before_anything_is_sent(pair: Pair) -> None:
    session = pair.session
    sent = session.stats().datagrams_sent
    for data, kind in ((123, "int"), ("text", "str"), (None, "NoneType")):
        with pytest.raises(TypeError, match=f"data must be bytes, not {kind}"):
            await session.send_datagram(data)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=f"data must be bytes, not {kind}"):
            await session.send(data)  # type: ignore[arg-type]
    assert session.stats().datagrams_sent == sent
    stream = await session.open_stream()
    with pytest.raises(TypeError, match="data must be bytes, not int"):
        stream.write(5)  # type: ignore[arg-type]
    await stream.write(bytearray(b"ok"))  # bytes-like is accepted
    await stream.close()
    incoming = await next_incoming_stream(pair.peer)
    assert await incoming.read() == b"ok"  # nothing of the refused writes arrived


@pytest.mark.parametrize(
    ("host", "port", "error", "text"),
    [
        (LOOPBACK, "9000", TypeError, "port must be an int, not str"),
        (LOOPBACK, 70000, ConfigError, "port must be within 1..65535, not 70000"),
        (LOOPBACK, 0, ConfigError, "port must be within 1..65535, not 0"),
        (LOOPBACK, True, TypeError, "port must be an int, not bool"),
        (5, 9000, TypeError, "host must be a str, not int"),
        ("", 9000, ConfigError, "host must not be empty"),
    ],
)
async def test_a_bad_address_raises_and_leaves_no_handshake_in_flight(
    make_node: NodeFactory, host: object, port: object, error: type[Exception], text: str
) -> None:
    client = await make_node(server_mode=False, ws=False)
    with pytest.raises(error, match=text):
        await client.connect_udp(host, port, timeout=1)  # type: ignore[arg-type]
    stats = client.get_stats()
    assert stats["handshakes"]["in_flight"] == 0
    assert stats["handshakes"]["started"] == 0
    assert client.stats().sessions.handshakes_in_flight == 0


async def test_timeouts_are_checked(pair: Pair) -> None:
    client = pair.client
    assert pair.server.udp_address is not None
    host, port = pair.server.udp_address
    with pytest.raises(TypeError, match="timeout must be a number of seconds, not str"):
        await client.connect_udp(host, port, timeout="1")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="timeout must be a positive"):
        await client.connect_udp(host, port, timeout=0)
    with pytest.raises(TypeError, match="url must be a str"):
        await client.connect_websocket(b"ws://x")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="timeout must be a positive"):
        await pair.session.ping(timeout=-1)
    with pytest.raises(TypeError, match="timeout"):
        await pair.session.rotate_key(timeout=None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="reason must be a str"):
        await pair.session.close(0, reason=5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="code must be an int"):
        await pair.session.close("0")  # type: ignore[arg-type]
    assert pair.session.is_active()
    assert client.get_stats()["handshakes"]["in_flight"] == 0


async def test_an_unknown_host_is_a_handshake_error_naming_it(make_node: NodeFactory) -> None:
    client = await make_node(server_mode=False, ws=False)
    for host in ("nosuchhost.invalid", "256.1.1.1"):
        with pytest.raises(HandshakeError, match=f"cannot resolve '{host}' \\(port 9000\\)"):
            await client.connect_udp(host, 9000, timeout=1)
    assert client.get_stats()["handshakes"]["in_flight"] == 0


async def test_a_busy_udp_port_is_a_bind_error_naming_the_address() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind((LOOPBACK, 0))
        port = busy.getsockname()[1]
        node = STTNode(generate_seed(), generate_seed(), LOOPBACK, port)
        with pytest.raises(BindError, match=f"cannot bind UDP to 127.0.0.1:{port}") as caught:
            await node.start()
    assert isinstance(caught.value, OSError)  # `except OSError` still catches it
    assert isinstance(caught.value, STTError)
    assert caught.value.errno == errno.EADDRINUSE
    assert not node.is_running


async def test_a_busy_websocket_port_is_a_bind_error_and_frees_udp() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind((LOOPBACK, 0))
        busy.listen()
        port = busy.getsockname()[1]
        node = STTNode(generate_seed(), generate_seed(), LOOPBACK, 0, ws_port=port)
        with pytest.raises(BindError, match=f"cannot bind WebSocket to 127.0.0.1:{port}"):
            await node.start()
    assert node.udp_address is None


async def test_a_host_that_does_not_resolve_is_a_bind_error() -> None:
    node = STTNode(generate_seed(), generate_seed(), "nosuchhost.invalid", 0)
    with pytest.raises(BindError, match=r"nosuchhost\.invalid:0: the host does not resolve"):
        await node.start()


async def test_send_to_sessions_with_ids_that_are_not_bytes(pair: Pair) -> None:
    with pytest.raises(TypeError, match="8-byte session ids \\(bytes\\), not 'abcd'"):
        await pair.client.send_to_sessions(["abcd"], b"x")  # type: ignore[list-item]
    with pytest.raises(TypeError, match="not one id"):
        await pair.client.send_to_sessions("abcd", b"x")  # type: ignore[arg-type]
    assert pair.session.stats().messages_sent == 0  # nothing sent to the valid ones either


async def test_misuse_before_start_and_after_stop_raises() -> None:
    node = STTNode(generate_seed(), generate_seed(), LOOPBACK, 0)
    with pytest.raises(ProtocolError, match="not started"):
        await node.send_to_all(b"x")
    async with node:
        assert await node.send_to_all(b"x") == 0  # running, no session: nothing to send
        with pytest.raises(TypeError, match="data must be bytes"):
            await node.send_to_all(123)  # type: ignore[arg-type]
    with pytest.raises(ProtocolError, match="node stopped"):
        await node.send_to_all(b"x")
    with pytest.raises(ProtocolError, match="node stopped"):
        await node.connect_udp(LOOPBACK, 9)
    with pytest.raises(ProtocolError, match="cannot be restarted"):
        async with node:
            pass


async def test_server_mode_in_the_constructor_needs_no_start_call(shared_seed: bytes) -> None:
    with pytest.raises(TypeError, match="server_mode must be a bool"):
        STTNode(generate_seed(), shared_seed, server_mode="yes")  # type: ignore[arg-type]
    async with (
        STTNode(generate_seed(), shared_seed, LOOPBACK, 0, server_mode=True) as server,
        STTNode(generate_seed(), shared_seed, LOOPBACK, 0) as client,
    ):
        assert server.server_mode
        assert not client.server_mode
        session, peer = await connect(client, server, "udp")
        assert peer.is_active()
        assert session.is_active()


async def test_close_codes_are_typed_and_say_who_closed(pair: Pair) -> None:
    closed = asyncio.Event()
    pair.peer.on("session_closed", lambda event: closed.set())
    await pair.session.close(CloseCode.GOING_AWAY, "bye")
    async with asyncio.timeout(10 * SECOND):
        await closed.wait()
    assert pair.session.close_code is CloseCode.GOING_AWAY
    assert pair.peer.close_code is CloseCode.GOING_AWAY
    assert not pair.session.closed_by_peer
    assert pair.peer.closed_by_peer
    with pytest.raises(SessionClosedError) as by_us:
        await pair.session.send(b"x")
    assert by_us.value.code is CloseCode.GOING_AWAY
    assert by_us.value.by_peer is False
    with pytest.raises(SessionClosedError) as by_peer:
        await pair.peer.send_datagram(b"x")
    assert by_peer.value.code is CloseCode.GOING_AWAY
    assert by_peer.value.by_peer is True
    assert by_peer.value.reason == "bye"


async def test_an_application_close_code_stays_an_int(pair: Pair) -> None:
    await pair.session.close(4242)
    assert pair.session.close_code == 4242
    assert type(pair.session.close_code) is int


async def test_a_full_server_refusal_carries_the_code(make_node: NodeFactory) -> None:
    server = await make_node(ws=False, config=NodeConfig(max_sessions=1))
    client = await make_node(server_mode=False, ws=False)
    await connect(client, server, "udp")
    with pytest.raises(HandshakeError, match="server is full") as refused:
        await connect(client, server, "udp", timeout=10 * SECOND)
    assert not isinstance(refused.value, HandshakeTimeout)
    assert refused.value.code is CloseCode.SERVER_FULL
    assert client.get_stats()["handshakes"]["in_flight"] == 0


async def test_a_handshake_timeout_has_no_code(make_node: NodeFactory) -> None:
    client = await make_node(server_mode=False, ws=False)
    silent = await make_node(server_mode=False, ws=False)  # not in server mode: never answers
    assert silent.udp_address is not None
    with pytest.raises(HandshakeTimeout) as timed_out:
        await client.connect_udp(*silent.udp_address, timeout=0.2)
    assert timed_out.value.code is None


async def test_back_to_back_rotations_on_an_idle_session_are_quick(make_node: NodeFactory) -> None:
    server = await make_node(ws=False)
    client = await make_node(server_mode=False, ws=False)
    session, _peer = await connect(client, server, "udp")
    started = time.perf_counter()
    for _ in range(5):
        await session.rotate_key()
    elapsed = time.perf_counter() - started
    assert session.key_version == 5
    # The interval is max(50 ms, 3 PTO) with the RTT seeded by the handshake (about 80-100 ms
    # on loopback), not the ~1 s of the unmeasured initial RTT.
    assert elapsed < 0.8 * SECOND, f"5 rotations took {elapsed:.3f} s"


async def test_stream_and_manager_arguments_are_checked(pair: Pair) -> None:
    stream = await pair.session.open_stream()
    with pytest.raises(TypeError, match="n must be an int, not str"):
        await stream.read("5")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="less than zero"):
        await stream.readexactly(-1)
    with pytest.raises(TypeError, match="code must be an int"):
        stream.reset("1")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="reset code"):
        stream.reset(-1)
    assert not stream.is_closing()  # none of these touched the stream
    with pytest.raises(TypeError, match="session_id must be bytes, not str"):
        await pair.client.session_manager.close_session("abcd")  # type: ignore[arg-type]


async def test_an_address_of_the_other_family_is_refused_at_once(make_node: NodeFactory) -> None:
    client = await make_node(server_mode=False, ws=False)  # bound to 127.0.0.1
    with pytest.raises(ConfigError, match="another address family"):
        await client.connect_udp("::1", 9000, timeout=1)
    with pytest.raises(TypeError, match="iterable of session ids \\(bytes\\), not int"):
        await client.send_to_sessions(5, b"x")  # type: ignore[arg-type]
    assert client.get_stats()["handshakes"]["started"] == 0
