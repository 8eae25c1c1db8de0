"""Every code block of the user's chapter runs against real nodes, with only the package renamed.

``tests/data/chapter17.md`` is the user's own "Chapter 17: Sessions & SessionManager", verbatim.
Its 21 ```python blocks are fragments: they use top-level ``await`` and names the chapter defines
elsewhere (``node``, ``session``, ``manager``, ``session_id``, ``peer_id``, ``send_data``). Each
test gives a block exactly those names, bound to two real nodes talking UDP over loopback, replaces
``seigr_toolset_transmissions`` by ``seigr_stt`` (the rename ``design/api.md`` promises) and runs
it unchanged otherwise. Where a block cannot run as written, the test pins why: the chapter's weak
seeds are refused, two blocks are pseudo-code of the XOR scheme Noise replaced, one block forgets
``import time``, and one names a host that does not exist. The migration guide
(``docs/migrating.md``) explains each.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import io
import re
import subprocess
import sys
import time
import types
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from seigr_stt import STTError, STTNode, STTSession, generate_seed
from seigr_stt.constants import SessionState
from tests.aio.helpers import wait_until
from tests.timing import SECOND

CHAPTER = Path(__file__).resolve().parent / "data" / "chapter17.md"


def blocks() -> list[str]:
    """The chapter's ```python blocks, in order, with the package renamed."""
    found = re.findall(r"^```python\n(.*?)^```$", CHAPTER.read_text(), re.DOTALL | re.MULTILINE)
    return [block.replace("seigr_toolset_transmissions", "seigr_stt") for block in found]


def block(number: int) -> str:
    """Block ``number``, counted from 1 as the audit's chapter table does."""
    return blocks()[number - 1]


async def run(code: str, namespace: dict[str, Any]) -> str:
    """Run ``code`` (top-level ``await`` allowed) in ``namespace``; what it printed."""
    compiled = compile(code, "<chapter>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        result = eval(compiled, namespace)
        if asyncio.iscoroutine(result):
            await result
    return printed.getvalue()


@dataclass
class Peers:
    """A client node with one UDP session to a server node, as the chapter's fragments assume."""

    server: STTNode
    node: STTNode
    session: STTSession

    def namespace(self) -> dict[str, Any]:
        """The names the chapter's fragments use without defining them."""
        return {
            "asyncio": asyncio,
            "node": self.node,
            "session": self.session,
            "manager": self.node.session_manager,
            "session_id": self.session.session_id,
            "peer_id": self.server.node_id,
        }


@pytest.fixture
async def peers() -> AsyncIterator[Peers]:
    shared = generate_seed()
    server = STTNode(generate_seed(), shared, "127.0.0.1", 0)
    node = STTNode(generate_seed(), shared, "127.0.0.1", 0)
    await server.start(server_mode=True)
    await node.start()
    try:
        assert server.udp_address is not None
        session = await node.connect_udp(*server.udp_address, timeout=10 * SECOND)
        yield Peers(server, node, session)
    finally:
        async with asyncio.timeout(10 * SECOND):
            await node.stop()
            await server.stop()


def test_the_chapter_has_21_blocks() -> None:
    assert len(blocks()) == 21


async def test_block_1_connect_as_written_names_the_unknown_host(peers: Peers) -> None:
    # As written, peer.example.com does not resolve: an error of the tree naming the host,
    # not a raw socket.gaierror, and nothing left in flight.
    with pytest.raises(STTError, match=r"peer\.example\.com"):
        async with asyncio.timeout(10 * SECOND):
            await run(block(1), peers.namespace())
    assert peers.node.get_stats()["handshakes"]["in_flight"] == 0


async def test_block_1_connect_with_a_real_address(peers: Peers) -> None:
    assert peers.server.udp_address is not None
    host, port = peers.server.udp_address
    code = block(1).replace('"peer.example.com", 8080', f'"{host}", {port}')
    printed = await run(code, peers.namespace())
    assert re.fullmatch(r"Session ID: [0-9a-f]{16}\n", printed), printed


async def test_block_2_session_properties(peers: Peers) -> None:
    await run(block(2), peers.namespace())
    session = peers.session
    assert len(session.session_id) == 8
    assert len(session.peer_node_id) == 32
    assert len(session.session_key) == 32
    assert session.key_version == 0
    assert session.state == SessionState.ACTIVE
    assert session.transport_type == "udp"
    for stamp in (session.created_at, session.last_active, session.last_key_rotation):
        assert abs(stamp - time.time()) < 60


async def test_block_3_state_constants_from_utils_constants(peers: Peers) -> None:
    printed = await run(block(3), peers.namespace())
    assert printed == "Session ready!\nCan send/receive data\n"


async def test_block_4_statistics_have_the_chapter_keys(peers: Peers) -> None:
    namespace = peers.namespace()
    await run(block(4), namespace)
    stats = namespace["stats"]
    chapter_keys = {
        "session_id",
        "peer_node_id",
        "state",
        "created_at",
        "uptime",
        "bytes_sent",
        "bytes_received",
        "packets_sent",
        "packets_received",
        "send_errors",
        "receive_errors",
    }
    assert chapter_keys <= stats.keys()
    assert stats["session_id"] == peers.session.session_id.hex()
    assert stats["state"] == 1


async def test_block_5_recording_traffic_moves_the_counters_exactly(peers: Peers) -> None:
    before = peers.session.get_statistics()
    await run(block(5), peers.namespace())
    after = peers.session.get_statistics()
    delta = {key: after[key] - before[key] for key in ("bytes_sent", "bytes_received")}
    assert delta == {"bytes_sent": 1024, "bytes_received": 2048}
    assert after["send_errors"] - before["send_errors"] == 1
    assert after["receive_errors"] - before["receive_errors"] == 1


async def test_block_6_rotate_key(peers: Peers) -> None:
    namespace = peers.namespace()
    printed = await run(block(6), namespace)
    assert printed.startswith("Key version: 1\nLast rotation: ")
    assert namespace["new_key"] == peers.session.session_key
    [theirs] = peers.server.session_manager.get_active_sessions()
    assert theirs.key_version == 1
    assert theirs.session_key == namespace["new_key"]


async def test_blocks_7_and_8_manager_and_a_manual_session(peers: Peers) -> None:
    namespace = peers.namespace()
    await run(block(7), namespace)
    await run(block(8), namespace)
    manual = namespace["session"]
    assert manual.session_id == b"12345678"
    assert manual.is_manual
    assert namespace["manager"].get_session(b"12345678") is manual


async def test_blocks_9_to_13_lookups_closing_counts_and_stats(peers: Peers) -> None:
    namespace = peers.namespace()
    found = await run(block(9), namespace)
    assert found == f"Found session with peer {peers.server.node_id.hex()}\nSession exists\n"
    listed = await run(block(10), namespace)
    assert listed.startswith("Active sessions: 1\n")
    await run(block(11), namespace)
    assert peers.session.state == SessionState.CLOSED
    counted = await run(block(12), namespace)
    assert counted == "Total sessions: 1\nActive: 0\n"
    await run(block(13), namespace)
    assert namespace["stats"]["total"] == 1
    assert namespace["stats"]["closed"] == 1


def run_script(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60 * SECOND,
        check=False,
    )


def test_block_14_as_written_refuses_the_chapters_weak_seeds() -> None:
    result = run_script(block(14))
    assert result.returncode == 1
    assert "WeakSeedError" in result.stderr
    assert "generate_seed" in result.stderr


def test_block_14_runs_every_step_with_real_seeds_and_a_free_port() -> None:
    code = (
        block(14)
        .replace('b"shared_secret_32bytes_minimum!"', "generate_seed()")
        .replace('b"server" * 8', "generate_seed()")
        .replace('b"client" * 8', "generate_seed()")
        .replace("port=8080", "port=0")
        .replace('"localhost", 8080', "*server.udp_address")
        .replace("from seigr_stt import STTNode", "from seigr_stt import STTNode, generate_seed")
    )
    result = run_script(code)
    assert result.returncode == 0, result.stderr
    for step in ("1. Creating", "2. Using", "3. Session stats", "4. Rotating", "5. Manager"):
        assert step in result.stdout
    assert "State: 1 (ACTIVE)" in result.stdout
    assert "State: 3 (CLOSED)" in result.stdout
    assert "Key version: 0 â†’ 1" in result.stdout


async def test_blocks_15_and_16_are_pseudo_code_of_the_replaced_xor_scheme(peers: Peers) -> None:
    # The chapter's XOR derivation is what the project replaced with Noise XXpsk3: the names
    # it calls do not exist, on purpose.
    for number in (15, 16):
        with pytest.raises(NameError):
            await run(block(number), peers.namespace())


async def test_block_17_session_pool_reuses_a_session_by_address(peers: Peers) -> None:
    namespace = peers.namespace()
    await run(block(17), namespace)
    pool = namespace["SessionPool"](peers.node)
    assert peers.server.udp_address is not None
    host, port = peers.server.udp_address
    first = await pool.get_or_create(host, port)
    assert first is peers.session
    assert await pool.get_or_create(host, port) is first


async def test_block_18_health_monitoring(peers: Peers) -> None:
    namespace = peers.namespace()
    await run(block(18), namespace)
    monitor = namespace["monitor_sessions"]
    # As written the block forgets `import time`: the chapter's slip.
    with pytest.raises(NameError, match="time"):
        await monitor(peers.node)
    # With it, a session idle for over 5 minutes is closed. The clock is moved, not waited on.
    monitor.__globals__["time"] = types.SimpleNamespace(time=lambda: time.time() + 301)
    task = asyncio.create_task(monitor(peers.node))
    try:
        async with asyncio.timeout(5 * SECOND):
            await peers.session.wait_closed()
    finally:
        task.cancel()
    assert peers.session.state == SessionState.CLOSED


async def test_block_19_periodic_key_rotation(peers: Peers) -> None:
    namespace = peers.namespace()
    await run(block(19), namespace)
    task = asyncio.create_task(namespace["rotate_keys_periodically"](peers.node, interval=0.05))
    try:
        await wait_until(lambda: peers.session.key_version >= 3)
    finally:
        task.cancel()
    [theirs] = peers.server.session_manager.get_active_sessions()
    await wait_until(lambda: theirs.key_version >= 3)


async def test_block_20_session_not_found(peers: Peers) -> None:
    namespace = peers.namespace()
    await run(block(20), namespace)
    assert namespace["session"] is peers.session
    await peers.session.close()
    namespace = peers.namespace()
    await run(block(20), namespace)
    assert namespace["session"] is None


async def test_block_21_state_and_transport_check(peers: Peers) -> None:
    sent: list[STTSession] = []

    async def send_data(session: STTSession) -> None:
        sent.append(session)
        await session.send(b"checked")

    namespace = peers.namespace() | {"send_data": send_data}
    await run(block(21), namespace)
    assert sent == [peers.session]
    async with asyncio.timeout(5 * SECOND):
        packet = await anext(aiter(peers.server.receive()))
    assert packet.data == b"checked"
