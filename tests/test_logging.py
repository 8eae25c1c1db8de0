"""Logging as ecosystem.md asks: stdlib loggers, ``logger=``, a short session id on session
records, and never a seed or key in a log record, a repr or an error message."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from collections.abc import Iterable

import pytest

from seigr_stt import (
    HandshakeTimeout,
    NodeConfig,
    STTNode,
    STTSession,
    WeakSeedError,
)
from seigr_stt.core.identity import NodeIdentity, SharedSecrets
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
