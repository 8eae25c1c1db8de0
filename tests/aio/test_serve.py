"""``serve()`` and ``connect()``: a handler per session, one-shot and reconnecting clients.

Real nodes over real loopback sockets, UDP and WebSocket; reconnection delays are kept to
milliseconds with an injected ``rng`` and small backoff parameters.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import pytest

from seigr_stt import (
    CloseCode,
    ConfigError,
    Connect,
    HandshakeError,
    NodeConfig,
    ProtocolError,
    Server,
    STTError,
    STTNode,
    STTSession,
    connect,
    generate_seed,
    serve,
)
from seigr_stt.aio.serve import backoff
from tests.aio.helpers import LOOPBACK, WAIT_S, Transport, wait_until
from tests.timing import MS, SECOND

#: Reconnect at once, whatever the jitter: the delays are not what these tests look at.
FAST = {"initial_delay": 0.001, "factor": 2.0, "max_delay": 0.01, "open_timeout": 2 * SECOND}


async def echo(session: STTSession) -> None:
    """Send every message back on its channel, until the session closes."""
    async for packet in session:
        await session.send(packet.data, packet.stream_id)


async def echo_once(session: STTSession) -> None:
    """Answer one message, then return: serve() closes the session."""
    packet = await session.recv()
    await session.send(packet.data, packet.stream_id)


@pytest.fixture
def seeds() -> tuple[bytes, bytes]:
    """(the server's node seed, the shared seed)."""
    return generate_seed(), generate_seed()


@pytest.fixture
async def servers() -> AsyncIterator[list[Server]]:
    """Servers a test starts; every one is closed at teardown."""
    started: list[Server] = []
    yield started
    async with asyncio.timeout(30 * SECOND):
        for server in started:
            server.close()
            await server.wait_closed()


async def start_server(
    servers: list[Server],
    handler: object,
    seeds: tuple[bytes, bytes],
    *,
    port: int = 0,
    ws_port: int | None = 0,
    config: NodeConfig | None = None,
) -> Server:
    server = serve(handler, seeds[0], seeds[1], LOOPBACK, port, ws_port=ws_port, config=config)  # type: ignore[arg-type]
    servers.append(server)
    await server.start()
    return server


def target_of(server: Server, transport: Transport) -> str:
    if transport == "udp":
        assert server.udp_address is not None
        host, port = server.udp_address
        return f"udp://{host}:{port}"
    assert server.ws_url is not None
    return server.ws_url


# -- serve ----------------------------------------------------------------------------------------
async def test_echo_server(
    servers: list[Server], seeds: tuple[bytes, bytes], transport: Transport
) -> None:
    server = await start_server(servers, echo, seeds)
    assert server.is_serving()
    client = connect(target_of(server, transport), generate_seed(), seeds[1])
    async with client as session:
        assert client.node is not None
        node = client.node
        assert session.transport_type == transport
        for text in (b"hello", b"seigr", b"stt"):
            await session.send(text, stream_id=4)
            packet = await session.recv(timeout=WAIT_S)
            assert (packet.data, packet.stream_id) == (text, 4)
        assert [s.session_id for s in server.sessions] == [session.session_id]
    assert client.node is None
    assert not node.is_running
    await wait_until(lambda: not server.sessions, "the handler to end")


async def test_await_serve_and_a_udp_tuple_target(seeds: tuple[bytes, bytes]) -> None:
    server = await serve(echo, seeds[0], seeds[1])
    try:
        assert server.ws_url is None
        assert server.udp_address is not None
        async with connect(server.udp_address, generate_seed(), seeds[1]) as session:
            await session.send(b"tuple")
            assert (await session.recv(timeout=WAIT_S)).data == b"tuple"
    finally:
        server.close()
        await server.wait_closed()
    assert not server.node.is_running


async def test_a_returning_handler_closes_the_session_normally(
    servers: list[Server], seeds: tuple[bytes, bytes], transport: Transport
) -> None:
    server = await start_server(servers, echo_once, seeds)
    async with connect(target_of(server, transport), generate_seed(), seeds[1]) as session:
        await session.send(b"once")
        assert (await session.recv(timeout=WAIT_S)).data == b"once"
        async with asyncio.timeout(WAIT_S):
            await session.wait_closed()
        assert session.close_code == CloseCode.NORMAL


async def test_a_raising_handler_closes_with_internal_error_and_is_logged(
    servers: list[Server], seeds: tuple[bytes, bytes], caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(session: STTSession) -> None:
        await session.recv()
        raise RuntimeError("the handler's own bug")

    server = await start_server(servers, broken, seeds)
    with caplog.at_level(logging.ERROR, logger="seigr_stt.serve"):
        async with connect(target_of(server, "udp"), generate_seed(), seeds[1]) as session:
            await session.send(b"trigger")
            async with asyncio.timeout(WAIT_S):
                await session.wait_closed()
    assert session.close_code == CloseCode.INTERNAL_ERROR
    (record,) = [r for r in caplog.records if "handler of session" in r.getMessage()]
    assert record.exc_info is not None
    assert "the handler's own bug" in str(record.exc_info[1])


async def test_a_session_closed_under_the_handler_is_no_error(
    servers: list[Server], seeds: tuple[bytes, bytes], caplog: pytest.LogCaptureFixture
) -> None:
    ended = asyncio.Event()

    async def reader(session: STTSession) -> None:
        try:
            while True:
                await session.recv()  # raises SessionClosedError once the client closed
        finally:
            ended.set()

    server = await start_server(servers, reader, seeds)
    with caplog.at_level(logging.ERROR, logger="seigr_stt.serve"):
        async with connect(target_of(server, "udp"), generate_seed(), seeds[1]):
            await wait_until(lambda: bool(server.sessions), "the handler to start")
        async with asyncio.timeout(WAIT_S):
            await ended.wait()
        await wait_until(lambda: not server.sessions, "the handler to end")
    assert not [r for r in caplog.records if "handler of session" in r.getMessage()]


async def test_closing_the_server_cancels_and_awaits_the_handlers(
    seeds: tuple[bytes, bytes], transport: Transport
) -> None:
    cancelled: list[bytes] = []

    async def forever(session: STTSession) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(session.session_id)
            raise

    async with serve(forever, seeds[0], seeds[1], ws_port=0) as server:
        clients = [connect(target_of(server, transport), generate_seed(), seeds[1]) for _ in "ab"]
        sessions = [await c.__aenter__() for c in clients]
        await wait_until(lambda: len(server.sessions) == 2, "both handlers")
    assert sorted(cancelled) == sorted(s.session_id for s in sessions)
    assert not server.sessions
    assert not server.node.is_running
    assert not server.is_serving()
    for client, session in zip(clients, sessions, strict=True):
        async with asyncio.timeout(WAIT_S):
            await session.wait_closed()
        assert session.close_code == CloseCode.GOING_AWAY
        await client.__aexit__(None, None, None)


async def test_serve_forever_until_cancelled(seeds: tuple[bytes, bytes]) -> None:
    server = await serve(echo, seeds[0], seeds[1])
    forever = asyncio.create_task(server.serve_forever())
    await asyncio.sleep(0)
    assert not forever.done()
    forever.cancel()
    with pytest.raises(asyncio.CancelledError):
        await forever
    assert not server.node.is_running
    await server.wait_closed()  # closed already: returns at once


async def test_serve_forever_returns_when_a_handler_closes_the_server(
    seeds: tuple[bytes, bytes],
) -> None:
    async def stop_the_server(session: STTSession) -> None:
        await session.recv()
        server.close()

    server = await serve(stop_the_server, seeds[0], seeds[1])
    assert server.udp_address is not None
    async with connect(server.udp_address, generate_seed(), seeds[1]) as session:
        await session.send(b"please stop")
        async with asyncio.timeout(WAIT_S):
            await server.serve_forever()
    assert not server.node.is_running


async def test_no_handler_for_sessions_the_server_opens(
    servers: list[Server], seeds: tuple[bytes, bytes]
) -> None:
    started: list[STTSession] = []

    async def record(session: STTSession) -> None:
        started.append(session)
        await session.wait_closed()

    server = await start_server(servers, record, seeds)
    other = await start_server(servers, echo, (generate_seed(), seeds[1]))
    assert other.udp_address is not None
    outgoing = await server.node.connect_udp(*other.udp_address)
    await outgoing.send(b"from the server")
    assert (await outgoing.recv(timeout=WAIT_S)).data == b"from the server"
    assert started == []


async def test_serve_refuses_bad_arguments(seeds: tuple[bytes, bytes]) -> None:
    with pytest.raises(TypeError):
        serve("not a handler", seeds[0], seeds[1])  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        serve(echo, seeds[0], seeds[1], port=70000)
    server = await serve(echo, seeds[0], seeds[1])
    try:
        with pytest.raises(ProtocolError):
            await server.start()
    finally:
        server.close()
        await server.wait_closed()


# -- connect: one session -------------------------------------------------------------------------
async def test_connect_failure_leaves_nothing_running(
    servers: list[Server], seeds: tuple[bytes, bytes]
) -> None:
    server = await start_server(servers, echo, seeds)
    stranger = connect(target_of(server, "udp"), generate_seed(), generate_seed(), open_timeout=0.2)
    with pytest.raises(HandshakeError):
        async with stranger:
            raise AssertionError("a stranger's handshake does not complete")
    assert stranger.node is None


async def test_a_cancelled_connect_leaves_nothing_running(seeds: tuple[bytes, bytes]) -> None:
    """Cancelled mid-handshake (a silent port): the client node is stopped all the same."""
    silent = STTNode(generate_seed(), seeds[1])
    await silent.start()  # not in server mode: it never answers
    try:
        assert silent.udp_address is not None
        client = connect(silent.udp_address, generate_seed(), seeds[1])
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(client.__aenter__(), 50 * MS)
        assert client.node is None
    finally:
        await silent.stop()


async def test_connect_refuses_bad_targets(seeds: tuple[bytes, bytes]) -> None:
    node_seed, shared = generate_seed(), seeds[1]
    for target in ("127.0.0.1:9000", "udp://127.0.0.1", "udp://:9000", "http://x/stt"):
        with pytest.raises(ConfigError):
            connect(target, node_seed, shared)
    for bad in (("127.0.0.1", 0), ("127.0.0.1", 70000), ("127.0.0.1", "9000"), ("h", 1, 2)):
        with pytest.raises(ConfigError):
            connect(bad, node_seed, shared)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        connect(9000, node_seed, shared)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        connect(("127.0.0.1", 9000), node_seed, shared, open_timeout=0)
    with pytest.raises(ConfigError):
        connect(("127.0.0.1", 9000), node_seed, shared, factor=0.5)
    with pytest.raises(ConfigError):
        connect(("127.0.0.1", 9000), node_seed, node_seed)  # WeakSeedError: seeds must differ
    assert connect(("::1", 9000), node_seed, shared).target == "udp://[::1]:9000"
    assert repr(connect("ws://127.0.0.1:9/stt", node_seed, shared)) == (
        "Connect(websocket ws://127.0.0.1:9/stt)"
    )


async def test_connect_is_entered_once(servers: list[Server], seeds: tuple[bytes, bytes]) -> None:
    server = await start_server(servers, echo, seeds)
    client = connect(target_of(server, "udp"), generate_seed(), seeds[1])
    async with client:
        with pytest.raises(ProtocolError):
            await client.__aenter__()
        with pytest.raises(ProtocolError):
            aiter(client)


# -- connect: reconnecting ------------------------------------------------------------------------
def test_backoff_is_exponential_capped_and_jittered() -> None:
    draws = iter([0.0, 0.999, 0.5, 0.0, 0.0, 0.0])
    delays = backoff(initial_delay=1.0, factor=2.0, max_delay=5.0, rng=lambda: next(draws))
    got = [next(delays) for _ in range(6)]
    assert got == pytest.approx([0.5, 2 * 0.9995, 4 * 0.75, 2.5, 2.5, 2.5])
    with pytest.raises(ConfigError):
        backoff(initial_delay=2.0, max_delay=1.0)


async def test_reconnects_after_the_server_closes_the_session(
    servers: list[Server], seeds: tuple[bytes, bytes], transport: Transport
) -> None:
    server = await start_server(servers, echo_once, seeds)
    seen: list[bytes] = []
    reconnecting = connect(target_of(server, transport), generate_seed(), seeds[1], **FAST)  # type: ignore[arg-type]
    async with asyncio.timeout(WAIT_S), contextlib.aclosing(reconnecting) as sessions:
        async for session in sessions:
            seen.append(session.session_id)
            await session.send(b"round %d" % len(seen))
            assert (await session.recv()).data == b"round %d" % len(seen)
            async for _ in session:  # ends when the server's handler has closed it
                raise AssertionError("the handler answers once")
            assert session.close_code == CloseCode.NORMAL
            if len(seen) == 3:
                break
    assert len(set(seen)) == 3
    assert reconnecting.node is None  # stopped by aclosing


async def test_reconnects_after_the_server_restarts_on_the_same_port(
    servers: list[Server], seeds: tuple[bytes, bytes]
) -> None:
    first = await start_server(servers, echo, seeds, ws_port=None)
    assert first.udp_address is not None
    port = first.udp_address[1]
    sessions: list[STTSession] = []
    reconnecting = connect(("127.0.0.1", port), generate_seed(), seeds[1], **FAST)  # type: ignore[arg-type]
    async with asyncio.timeout(WAIT_S), contextlib.aclosing(reconnecting) as iteration:
        async for session in iteration:
            sessions.append(session)
            await session.send(b"ping %d" % len(sessions))
            assert (await session.recv()).data == b"ping %d" % len(sessions)
            if len(sessions) == 2:
                break
            # The server restarts: its node stops (the client sees GOING_AWAY), and a new one
            # with the same seed binds the same port.
            first.close()
            await first.wait_closed()
            await start_server(servers, echo, seeds, port=port, ws_port=None)
            async for _ in session:
                raise AssertionError("the stopped server sends nothing more")
            assert session.close_code == CloseCode.GOING_AWAY
    assert sessions[0].session_id != sessions[1].session_id
    assert sessions[0].peer_node_id == sessions[1].peer_node_id


async def test_reconnects_after_the_server_vanished_without_closing(
    servers: list[Server], seeds: tuple[bytes, bytes]
) -> None:
    """The server's socket goes away with no CLOSE (a killed process): the client's session
    closes after its short dead-peer time, and the iteration connects to the new server."""
    config = NodeConfig(ping_interval_s=0.05, dead_peer_timeout_s=0.2)
    # (The first server's own session also ends soon, so closing it at teardown is quick.)
    first = await start_server(servers, echo, seeds, ws_port=None, config=config)
    assert first.udp_address is not None
    assert first.node.udp_transport is not None
    port = first.udp_address[1]
    sessions: list[STTSession] = []
    reconnecting = connect(
        ("127.0.0.1", port),
        generate_seed(),
        seeds[1],
        config=config,
        **FAST,  # type: ignore[arg-type]
    )
    async with asyncio.timeout(WAIT_S), contextlib.aclosing(reconnecting) as iteration:
        async for session in iteration:
            sessions.append(session)
            await session.send(b"hello %d" % len(sessions))
            assert (await session.recv()).data == b"hello %d" % len(sessions)
            if len(sessions) == 2:
                break
            first.node.udp_transport.close()  # gone: nothing more is sent or answered
            await start_server(servers, echo, seeds, port=port, ws_port=None)
            async for _ in session:
                raise AssertionError("the vanished server sends nothing more")
            assert session.close_code == CloseCode.DEAD_PEER
    assert sessions[0].session_id != sessions[1].session_id


async def test_failed_attempts_back_off(
    servers: list[Server], seeds: tuple[bytes, bytes], caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing listens on the WebSocket port (refused at once): each retry waits the next
    backoff delay, logged at INFO; the first success ends the waiting."""
    gone = await start_server(servers, echo, seeds)
    url = target_of(gone, "websocket")
    gone.close()
    await gone.wait_closed()
    reconnecting = connect(
        url,
        generate_seed(),
        seeds[1],
        initial_delay=0.01,
        factor=2.0,
        max_delay=0.04,
        rng=lambda: 0.999999,
    )
    with caplog.at_level(logging.INFO, logger="seigr_stt.serve"):
        async with asyncio.timeout(WAIT_S), contextlib.aclosing(reconnecting) as iteration:
            waiting = asyncio.create_task(anext(aiter(iteration)))

            def retries() -> list[object]:
                return [
                    r.args[1]
                    for r in caplog.records
                    if r.getMessage().startswith("connect to ") and isinstance(r.args, tuple)
                ]

            await wait_until(lambda: len(retries()) >= 4, "four failed attempts")
            assert gone.ws_url is not None
            port = int(url.rsplit(":", 1)[1].split("/")[0])
            await start_server(servers, echo, seeds, ws_port=port)
            session = await waiting
            await session.send(b"at last")
            assert (await session.recv()).data == b"at last"
    assert retries()[:4] == pytest.approx([0.01, 0.02, 0.04, 0.04], rel=1e-3)
    assert all("failed; retrying in" in r.getMessage() for r in caplog.records if r.args)


async def test_cancelling_the_iteration_while_it_waits_stops_the_node(
    servers: list[Server], seeds: tuple[bytes, bytes], caplog: pytest.LogCaptureFixture
) -> None:
    gone = await start_server(servers, echo, seeds)
    url = target_of(gone, "websocket")
    gone.close()
    await gone.wait_closed()
    reconnecting = connect(url, generate_seed(), seeds[1], initial_delay=60.0, max_delay=60.0)
    with caplog.at_level(logging.INFO, logger="seigr_stt.serve"):
        waiting = asyncio.create_task(anext(aiter(reconnecting)))
        await wait_until(lambda: "retrying in" in caplog.text, "a failed attempt")
    node = reconnecting.node
    assert node is not None
    assert node.is_running
    waiting.cancel()  # while it sleeps before the next attempt
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert not node.is_running
    assert reconnecting.node is None


async def test_breaking_out_stops_the_node(
    servers: list[Server], seeds: tuple[bytes, bytes]
) -> None:
    server = await start_server(servers, echo, seeds)
    reconnecting = connect(target_of(server, "udp"), generate_seed(), seeds[1], **FAST)  # type: ignore[arg-type]
    nodes: list[STTNode] = []
    async for session in reconnecting:
        assert reconnecting.node is not None
        nodes.append(reconnecting.node)
        await session.send(b"x")
        break
    # Left with break, the generator is finalized as any async generator is (its clean-up runs
    # in a task); aclose() waits for it.
    await reconnecting.aclose()
    assert not nodes[0].is_running
    assert reconnecting.node is None
    await wait_until(lambda: not server.sessions, "the server's handler to end")


def test_connect_is_exported() -> None:
    assert isinstance(connect(("127.0.0.1", 1), generate_seed(), generate_seed()), Connect)
    assert asyncio.iscoroutinefunction(Server.wait_closed)


async def test_a_server_that_cannot_bind_raises_and_holds_nothing(
    servers: list[Server], seeds: tuple[bytes, bytes]
) -> None:
    busy = await start_server(servers, echo, seeds, ws_port=None)
    assert busy.udp_address is not None
    server = serve(echo, seeds[0], seeds[1], LOOPBACK, busy.udp_address[1])
    with pytest.raises(ProtocolError, match="not started"):
        await server.wait_closed()
    with pytest.raises((OSError, STTError)):  # the port is taken
        await server.start()
    assert not server.is_serving()
    server.close()  # nothing to do
    await server.wait_closed()
    assert "serving=False" in repr(server)


async def test_client_node_binding_and_targets(seeds: tuple[bytes, bytes]) -> None:
    node_seed, shared = generate_seed(), seeds[1]
    remote = connect("udp://example.invalid:9000", node_seed, shared)  # not resolved yet
    assert remote.target == "udp://example.invalid:9000"
    assert remote._node_args["host"] == "0.0.0.0"
    assert connect(("::1", 9000), node_seed, shared)._node_args["host"] == "::1"
    assert connect(("2001:db8::1", 9000), node_seed, shared)._node_args["host"] == "::"
    assert connect("ws://localhost:9/stt", node_seed, shared)._node_args["host"] == "127.0.0.1"
    assert connect(("localhost", 9), node_seed, shared, local_host="0.0.0.0")._node_args[
        "host"
    ] == ("0.0.0.0")
    with pytest.raises(ConfigError, match="bad port"):
        connect("udp://127.0.0.1:99999", node_seed, shared)
