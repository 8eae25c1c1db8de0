"""Fixtures of the aio tests: nodes on 127.0.0.1 (port 0, ws_port 0), stopped at teardown."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable

import pytest

from seigr_stt import NodeConfig, STTNode, generate_seed
from tests.aio.helpers import LOOPBACK, TRANSPORTS, NodeFactory, Pair, Transport, connect
from tests.timing import SECOND


@pytest.fixture
def shared_seed() -> bytes:
    """The shared seed every node of one test uses unless told otherwise."""
    return generate_seed()


@pytest.fixture
async def make_node(shared_seed: bytes) -> AsyncIterator[NodeFactory]:
    """Start nodes on loopback with ephemeral ports; every one is stopped at teardown."""
    nodes: list[STTNode] = []

    async def factory(
        *,
        server_mode: bool = True,
        ws: bool = True,
        node_seed: bytes | None = None,
        shared_seed: bytes | None = None,
        host: str = LOOPBACK,
        port: int = 0,
        config: NodeConfig | None = None,
        allowed_peers: Iterable[bytes] | Callable[[bytes], bool] | None = None,
    ) -> STTNode:
        node = STTNode(
            node_seed if node_seed is not None else generate_seed(),
            shared_seed if shared_seed is not None else default_shared,
            host,
            port,
            ws_port=0 if ws else None,
            config=config,
            allowed_peers=allowed_peers,
        )
        nodes.append(node)
        await node.start(server_mode=server_mode)
        return node

    default_shared = shared_seed
    yield factory
    async with asyncio.timeout(30 * SECOND):
        await asyncio.gather(*(node.stop() for node in nodes))


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> Transport:
    """Each test using it runs once over UDP and once over WebSocket."""
    value: Transport = request.param
    return value


@pytest.fixture
async def pair(make_node: NodeFactory, transport: Transport) -> Pair:
    """A client (server_mode=False) connected to a server over ``transport``."""
    server = await make_node(server_mode=True)
    client = await make_node(server_mode=False)
    session, peer = await connect(client, server, transport)
    return Pair(client, server, session, peer, transport)
