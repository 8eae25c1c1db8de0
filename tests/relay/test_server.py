"""RelayServer over real loopback sockets: arguments, a WebSocket that never registers, and
a node's renewal."""

from __future__ import annotations

import asyncio

import pytest
from websockets.asyncio.client import connect

from seigr_stt import STTNode, generate_seed
from seigr_stt.config import TransportConfig
from seigr_stt.exceptions import ProtocolError
from seigr_stt.relay import RelayServer
from tests.aio.helpers import wait_until
from tests.timing import SECOND


def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="udp_port or ws_port"):
        RelayServer(udp_port=None, ws_port=None)
    with pytest.raises(ValueError, match="ws_port"):
        RelayServer(ws_port=70000)
    with pytest.raises(ValueError, match="32 bytes"):
        RelayServer(static_private=b"short")


async def test_a_websocket_that_never_registers_is_closed() -> None:
    config = TransportConfig(websocket_handshake_timeout_s=0.1, websocket_session_timeout_s=0.1)
    async with RelayServer(udp_port=None, ws_port=0, transport_config=config) as relay:
        assert relay.ws_url is not None
        assert relay.udp_url is None
        with pytest.raises(ProtocolError):
            await relay.start()
        async with connect(relay.ws_url) as websocket:
            async with asyncio.timeout(5 * SECOND):
                await websocket.wait_closed()
            assert websocket.close_code == 1008
        await wait_until(lambda: relay.stats().websocket_connections == 0)


async def test_a_node_renews_its_registration_and_the_relay_keeps_one() -> None:
    async with RelayServer(udp_port=0, ws_port=0) as relay:
        assert relay.udp_url is not None
        assert relay.ws_url is not None
        async with STTNode(generate_seed(), generate_seed(), relays=[relay.udp_url]) as node:
            link = node.relay_link(relay.udp_url)
            assert link is not None
            assert link.registered
            first = link.expires_at
            assert first is not None
            await link.register()
            assert link.expires_at is not None
            assert link.expires_at > first
            stats = relay.stats()
            assert stats.registrations == 1
            assert stats.registrations_accepted == 1
            assert node.relays == (relay.udp_url,)
