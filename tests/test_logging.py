"""Logging as ecosystem.md asks: stdlib loggers, ``logger=``, a short session id on session
records, and never a seed or key in a log record, a repr or an error message."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import sys
from collections.abc import Iterable

import pytest

from seigr_stt import (
    HandshakeError,
    HandshakeTimeout,
    NodeConfig,
    STTNode,
    STTSession,
    WeakSeedError,
    generate_seed,
)
from seigr_stt.core.identity import NodeIdentity, SharedSecrets
from seigr_stt.logs import JSONFormatter, RefusalLog
from tests.aio.helpers import wait_until
from tests.timing import MS, SECOND

SERVER_SEED = hashlib.sha256(b"server node seed (test)").digest()
CLIENT_SEED = hashlib.sha256(b"client node seed (test)").digest()
SHARED_SEED = hashlib.sha256(b"shared seed (test)").digest()
OTHER_SHARED_SEED = hashlib.sha256(b"another group's shared seed (test)").digest()


def forms(secret: bytes) -> set[str]:
    """The ways a secret could show up in text: hex, base64, a bytes repr, 8-byte prefixes."""
    b64 = base64.b64encode(secret).decode()
    return {
        secret.hex(),
        secret.hex().upper(),
        secret.hex()[:16],
        b64.rstrip("="),
        base64.urlsafe_b64encode(secret).decode().rstrip("="),
        b64[:12],
        repr(secret)[2:-1],
        repr(secret[:8])[2:-1],
    }


class Secrets:
    """Every secret seen during the test: seeds, derived keys, session and traffic keys."""

    def __init__(self) -> None:
        self.raw: set[bytes] = set()

    def add(self, *secrets: bytes | None) -> None:
        self.raw.update(s for s in secrets if s)

    def add_node(self, node: STTNode) -> None:
        self.add(node._identity.static_private)
        self.add(node._secrets.psk, node._secrets.mac1_key, node._secrets.cookie_key)

    def add_session(self, node: STTNode, session: STTSession) -> None:
        self.add(session.session_key)
        keys = node.endpoint.session(session.session_id).keys
        # White-box on purpose: these are the secrets that must never reach a log or a repr.
        for slot in (keys._send, keys._recv_current, keys._recv_next, keys._recv_prev):
            self.add(slot.key if slot is not None else None)
        self.add(keys._exporter)

    def assert_absent(self, texts: Iterable[str], where: str) -> None:
        patterns = {form for secret in self.raw for form in forms(secret)}
        for text in texts:
            for pattern in patterns:
                assert pattern not in text, f"a secret appears in {where}: {text[:200]!r}"


def record_texts(records: Iterable[logging.LogRecord]) -> list[str]:
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    texts = []
    for record in records:
        texts.append(formatter.format(record))  # includes any traceback
        texts.append(repr(record.args))
        texts.append(repr(getattr(record, "sid", "")))
    return texts


def raw_args(records: Iterable[logging.LogRecord]) -> list[bytes]:
    args: list[bytes] = []
    for record in records:
        values = record.args.values() if isinstance(record.args, dict) else record.args or ()
        args.extend(bytes(v) for v in values if isinstance(v, bytes | bytearray))
    return args


async def test_a_whole_lifecycle_logs_no_secret(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="seigr_stt")
    secrets = Secrets()
    secrets.add(SERVER_SEED, CLIENT_SEED, SHARED_SEED, OTHER_SHARED_SEED)
    client_logger = logging.getLogger("app.client")
    # Seeds as text too: hex for the server, base64 for the client.
    server = STTNode(SERVER_SEED.hex(), SHARED_SEED, "127.0.0.1", 0, ws_port=0)
    client = STTNode(
        base64.b64encode(CLIENT_SEED).decode(), SHARED_SEED, "127.0.0.1", 0, logger=client_logger
    )
    stranger = STTNode(CLIENT_SEED, OTHER_SHARED_SEED, "127.0.0.1", 0)
    for node in (server, client, stranger):
        secrets.add_node(node)
    reprs: list[str] = []
    errors: list[str] = []
    try:
        await server.start(server_mode=True)
        await client.start()
        await stranger.start()
        assert server.udp_address is not None
        assert server.ws_url is not None

        udp = await client.connect_udp(*server.udp_address)
        ws = await client.connect_websocket(server.ws_url)
        peers = []
        for session in (udp, ws):
            peer = server.session_manager.get_session(session.session_id)
            assert peer is not None
            peers.append(peer)
            secrets.add_session(client, session)
            secrets.add_session(server, peer)
            await session.send(b"hello", stream_id=1)
            await peer.send(b"hello back")
            stream = await session.open_stream()
            await stream.write(b"stream bytes")
            await stream.close()
            reprs.append(repr(stream))
        received = 0
        async with asyncio.timeout(10 * SECOND):
            async for _ in server.receive():
                received += 1
                if received == 2:
                    break
        for session, peer in zip((udp, ws), peers, strict=True):
            await session.rotate_key()
            secrets.add_session(client, session)
            secrets.add_session(server, peer)
            core = client.endpoint.session(session.session_id)
            reprs += [repr(session), repr(peer), repr(core), repr(core.keys)]

        with pytest.raises(HandshakeTimeout) as timeout:
            await stranger.connect_udp(*server.udp_address, timeout=500 * MS)
        errors.append(str(timeout.value))
        with pytest.raises(WeakSeedError) as weak:
            STTNode(SERVER_SEED[:20], SHARED_SEED)
        errors.append(str(weak.value))
        with pytest.raises(WeakSeedError) as weak:
            STTNode(SERVER_SEED.hex()[:-1], SHARED_SEED)
        errors.append(str(weak.value))

        reprs += [
            repr(server),
            repr(client),
            repr(server.session_manager),
            repr(NodeConfig()),
            repr(NodeIdentity.from_seed(SERVER_SEED)),
            repr(SharedSecrets.from_seed(SHARED_SEED)),
            repr(server._identity),
            repr(server._secrets),
        ]
        await udp.close()
        await peers[0].wait_closed()
        reprs.append(repr(udp))
    finally:
        await stranger.stop()
        await client.stop()
        await server.stop()

    records = caplog.records
    secrets.assert_absent(record_texts(records), "a log record")
    secrets.assert_absent(reprs, "a repr")
    secrets.assert_absent(errors, "an error message")
    for arg in raw_args(records):
        for secret in secrets.raw:
            assert secret not in arg, "a secret is passed raw to a log record"

    # Session records carry the short session id; the client's go to its own logger.
    for session, side in ((udp, "initiator"), (ws, "initiator")):
        short = session.session_id.hex()[:8]
        for name in ("seigr_stt.node", "app.client"):
            messages = [r.getMessage() for r in records if r.name == name]
            assert any(m.startswith(f"[{short}] session established") for m in messages), name
        assert any(
            r.name == "app.client" and r.getMessage() == f"[{short}] key rotated to version 1"
            for r in records
        )
        assert side in next(
            r.getMessage()
            for r in records
            if r.name == "app.client" and r.getMessage().startswith(f"[{short}] session est")
        )
    udp_short = udp.session_id.hex()[:8]
    assert any(
        r.name == "seigr_stt.node" and r.getMessage().startswith(f"[{udp_short}] session closed")
        for r in records
    )
    assert any(r.name == "app.client" and "started" in r.getMessage() for r in records)


def test_library_installs_no_handler() -> None:
    import seigr_stt  # noqa: F401  (imported for its side effects, if any)

    for name in ("seigr_stt", "seigr_stt.node", "seigr_stt.session", "seigr_stt.websocket"):
        assert logging.getLogger(name).handlers == [], name


# -- the lifecycle at INFO, structured fields, refusals (docs/logging.md) ----------------------
def messages(records: Iterable[logging.LogRecord], level: int = logging.INFO) -> list[str]:
    return [r.getMessage() for r in records if r.levelno >= level]


async def test_lifecycle_at_info_with_structured_fields(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="seigr_stt")
    server = STTNode(generate_seed(), SHARED_SEED, "127.0.0.1", 0)
    client = STTNode(generate_seed(), SHARED_SEED, "127.0.0.1", 0)
    await server.start(server_mode=True)
    await client.start()
    try:
        address = server.udp_address
        assert address is not None
        session = await client.connect_udp(*address)
        peer = server.session_manager.get_session(session.session_id)
        assert peer is not None
        await session.rotate_key()
        await session.close(reason="bye")
        async with asyncio.timeout(5 * SECOND):
            await peer.wait_closed()
    finally:
        await client.stop()
        await server.stop()
    assert "started=False, stopped=True" in repr(server)

    short = session.session_id.hex()[:8]
    text = messages(caplog.records)
    where = f"127.0.0.1:{address[1]}"
    assert any(m.startswith("node ") and "started: udp" in m for m in text)
    assert any(m == f"handshake with {where} over udp started" for m in text)
    # key rotation: the same line, at INFO, on both sides
    assert text.count(f"[{short}] key rotated to version 1") == 2
    closed = [m for m in text if m.startswith(f"[{short}] session closed")]
    assert f"[{short}] session closed (code 0): NORMAL, reason 'bye'" in closed
    assert f"[{short}] session closed (code 0, by peer): NORMAL, reason 'bye'" in closed
    assert sum(1 for m in text if m.startswith("node ") and " stopped: udp (" in m) == 2

    established = [
        r for r in caplog.records if r.getMessage().startswith(f"[{short}] session established")
    ]
    assert len(established) == 2
    for record in established:
        assert record.__dict__["stt_session"] == session.session_id.hex()
        assert record.__dict__["stt_transport"] == "udp"
        assert record.__dict__["stt_addr"].startswith("127.0.0.1:")
    peers = {r.__dict__["stt_peer"] for r in established}
    assert peers == {server.node_id.hex()[:16], client.node_id.hex()[:16]}


async def test_refused_handshakes_are_logged_once_per_interval_with_the_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="seigr_stt")
    server = STTNode(generate_seed(), SHARED_SEED, "127.0.0.1", 0)
    strangers = [STTNode(generate_seed(), OTHER_SHARED_SEED, "127.0.0.1", 0) for _ in range(3)]
    await server.start(server_mode=True)
    refusals = server._driver.refusals
    assert refusals is not None
    refusals.interval_s = 0.5  # the default is 10 s
    try:
        address = server.udp_address
        assert address is not None
        for node in strangers:
            await node.start()
        with pytest.raises(HandshakeTimeout):
            await strangers[0].connect_udp(*address, timeout=100 * MS)
        results = await asyncio.gather(
            *(node.connect_udp(*address, timeout=100 * MS) for node in strangers[1:]),
            return_exceptions=True,
        )
        assert all(isinstance(r, HandshakeTimeout) for r in results)

        def mac1_lines() -> list[logging.LogRecord]:
            return [r for r in caplog.records if getattr(r, "stt_reason", None) == "mac1"]

        await wait_until(
            lambda: sum(r.__dict__["stt_count"] for r in mac1_lines()) >= 3, "the mac1 lines"
        )
        lines = mac1_lines()
        # the first knock at once, the others together at the end of the interval
        assert [r.__dict__["stt_count"] for r in lines] == [1, 2]
        assert all(r.levelno == logging.WARNING for r in lines)
        assert "another shared_seed" in lines[0].getMessage()
        assert lines[1].created - lines[0].created >= 0.4
        # the strangers logged their own failures
        failed = [m for m in messages(caplog.records) if "failed: no valid handshake" in m]
        assert len(failed) == 3
    finally:
        for node in strangers:
            await node.stop()
        await server.stop()


async def test_a_full_server_logs_the_refusal(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="seigr_stt")
    server = STTNode(
        generate_seed(), SHARED_SEED, "127.0.0.1", 0, config=NodeConfig(max_sessions=1)
    )
    clients = [STTNode(generate_seed(), SHARED_SEED, "127.0.0.1", 0) for _ in range(2)]
    await server.start(server_mode=True)
    try:
        address = server.udp_address
        assert address is not None
        for node in clients:
            await node.start()
        await clients[0].connect_udp(*address)
        with pytest.raises(HandshakeError):
            await clients[1].connect_udp(*address, timeout=2 * SECOND)
        await server.stop()  # pending refusal lines are written at stop
        full = [r for r in caplog.records if getattr(r, "stt_reason", None) == "session_limit"]
        assert len(full) == 1
        assert full[0].levelno == logging.WARNING
        assert "the server is full" in full[0].getMessage()
    finally:
        for node in clients:
            await node.stop()
        await server.stop()


async def test_debug_adds_per_record_lines(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="seigr_stt.records")
    server = STTNode(generate_seed(), SHARED_SEED, "127.0.0.1", 0)
    client = STTNode(generate_seed(), SHARED_SEED, "127.0.0.1", 0)
    await server.start(server_mode=True)
    await client.start()
    try:
        address = server.udp_address
        assert address is not None
        session = await client.connect_udp(*address)
        await session.send(b"x" * 100)
        await asyncio.sleep(0.05)
    finally:
        await client.stop()
        await server.stop()
    records = [r for r in caplog.records if r.name == "seigr_stt.records"]
    sent = [r for r in records if r.getMessage().startswith("sent ")]
    received = [r for r in records if r.getMessage().startswith("received ")]
    assert sent
    assert received
    assert all(r.levelno == logging.DEBUG for r in records)
    assert any(r.__dict__.get("stt_addr") == f"127.0.0.1:{address[1]}" for r in sent)
    assert any(r.getMessage().endswith("MessageReceived") for r in records)


def test_json_formatter_writes_one_object_per_record() -> None:
    logger = logging.getLogger("seigr_stt.test_json")
    record = logger.makeRecord(
        logger.name,
        logging.WARNING,
        __file__,
        1,
        "[%s] session closed: code %d",
        ("abcd1234", 0),
        None,
        extra={"stt_session": "abcd1234" * 2, "stt_peer": "ff" * 8, "stt_addr": None},
    )
    document = json.loads(JSONFormatter().format(record))
    assert document["message"] == "[abcd1234] session closed: code 0"
    assert document["level"] == "WARNING"
    assert document["logger"] == "seigr_stt.test_json"
    assert document["stt_session"] == "abcd1234abcd1234"
    assert document["stt_peer"] == "ff" * 8
    assert "stt_addr" not in document  # None fields are left out
    assert document["time"].endswith("Z")
    try:
        raise ValueError("boom")
    except ValueError:
        record = logger.makeRecord(
            logger.name, logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    line = JSONFormatter().format(record)
    assert "\n" not in line
    assert "ValueError: boom" in json.loads(line)["exception"]


async def test_refusal_log_counts_per_reason_and_flushes_at_close() -> None:
    logger = logging.getLogger("seigr_stt.test_refusals")
    logger.setLevel(logging.DEBUG)
    lines: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record)

    handler = Keep()
    logger.addHandler(handler)
    try:
        log = RefusalLog(logger, asyncio.get_running_loop(), interval_s=60.0)
        log.update({"mac1": 1})
        log.update({"mac1": 4, "replay": 2, "rate_limited": 0})
        log.update({"mac1": 4, "replay": 2})  # nothing new
        assert [(r.__dict__["stt_reason"], r.__dict__["stt_count"]) for r in lines] == [
            ("mac1", 1),
            ("replay", 2),
        ]
        assert lines[1].levelno == logging.DEBUG  # a per-record drop, not a refusal
        log.close()
        assert [(r.__dict__["stt_reason"], r.__dict__["stt_count"]) for r in lines[2:]] == [
            ("mac1", 3)
        ]
        assert log.lines == 3
    finally:
        logger.removeHandler(handler)
