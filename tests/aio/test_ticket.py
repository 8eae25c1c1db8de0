"""Dialling by ticket over real loopback sockets: node.ticket() says where a node is, connect()
tries every way at once and requires the ticket's node id."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Callable

import pytest

from seigr_stt import (
    ConfigError,
    HandshakeError,
    HandshakeTimeout,
    NodeConfig,
    NodeTicket,
    ProtocolError,
    STTNode,
    generate_seed,
)
from seigr_stt.relay import RelayServer
from seigr_stt.testing import NATBox, NATConfig
from tests.aio.helpers import wait_until
from tests.timing import SECOND


@pytest.fixture
async def nodes(shared_seed: bytes) -> AsyncIterator[Callable[..., STTNode]]:
    made: list[STTNode] = []

    def make(host: str = "127.0.0.1", **kwargs: object) -> STTNode:
        node = STTNode(generate_seed(), shared_seed, host, 0, **kwargs)  # type: ignore[arg-type]
        made.append(node)
        return node

    yield make
    await asyncio.gather(*(node.stop() for node in made))


def closed_udp_port() -> int:
    """A loopback UDP port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_a_nodes_ticket_lists_its_addresses_and_relays(
    nodes: Callable[..., STTNode],
) -> None:
    node = nodes(ws_port=0)
    with pytest.raises(ProtocolError):
        node.ticket()
    await node.start(server_mode=True)
    ticket = node.ticket()
    assert ticket.node_id == node.node_id
    assert ticket.addresses == (node.udp_address,)
    assert ticket.websockets == (node.ws_url,)
    assert ticket.relays == ()
    assert NodeTicket.parse(str(ticket)) == ticket
    wildcard = nodes(host="0.0.0.0")
    await wildcard.start()
    assert wildcard.ticket().is_empty  # a wildcard bind is no address a peer can use


async def test_connect_by_ticket_makes_one_session_with_the_right_node(
    nodes: Callable[..., STTNode],
) -> None:
    server = nodes(ws_port=0)
    client = nodes()
    await server.start(server_mode=True)
    await client.start()
    session = await client.connect(str(server.ticket()), timeout=5 * SECOND)
    assert session.peer_node_id == server.node_id
    assert session.transport_type in ("udp", "websocket")
    # UDP and WebSocket were tried at once: a second session that completed is closed again.
    await wait_until(
        lambda: len(server.session_manager.get_active_sessions()) == 1, "one session left"
    )
    assert [s.session_id for s in client.session_manager.get_active_sessions()] == [
        session.session_id
    ]
    await session.send(b"by ticket")
    async with asyncio.timeout(5 * SECOND):
        packet = await anext(server.receive())
    assert packet.data == b"by ticket"


async def test_another_node_at_the_tickets_address_is_refused(
    nodes: Callable[..., STTNode],
) -> None:
    server = nodes()
    client = nodes()
    await server.start(server_mode=True)
    await client.start()
    assert server.udp_address is not None
    forged = NodeTicket(os.urandom(32), (server.udp_address,))
    with pytest.raises(HandshakeError) as caught:
        await client.connect(forged, timeout=2 * SECOND)
    assert not isinstance(caught.value, HandshakeTimeout)
    assert f"udp 127.0.0.1:{server.udp_address[1]}" in str(caught.value)
    assert client.session_manager.get_active_sessions() == []


async def test_the_relay_carries_the_session_when_the_direct_address_is_dead(
    nodes: Callable[..., STTNode],
) -> None:
    async with RelayServer(udp_port=0, ws_port=0) as relay:
        assert relay.ws_url is not None
        stay = NodeConfig(migration=False)  # on loopback the session would move off the relay
        server = nodes(relays=[relay.ws_url], config=stay)
        client = nodes(config=stay)
        await server.start(server_mode=True)
        await client.start()
        ticket = server.ticket()
        assert ticket.relays == (relay.ws_url,)
        dead = NodeTicket(ticket.node_id, (("127.0.0.1", closed_udp_port()),), (), ticket.relays)
        session = await client.connect(dead, timeout=3 * SECOND)
        assert session.peer_node_id == server.node_id
        assert session.transport_type == "relay"
        await client.stop()  # while the relay still runs: their relay links close at once
        await server.stop()


async def test_nothing_answering_is_a_timeout_naming_each_attempt(
    nodes: Callable[..., STTNode],
) -> None:
    client = nodes()
    await client.start()
    port = closed_udp_port()
    ticket = NodeTicket(os.urandom(32), (("127.0.0.1", port),))
    with pytest.raises(HandshakeTimeout, match=f"udp 127.0.0.1:{port}"):
        await client.connect(ticket, timeout=0.3 * SECOND)


async def test_a_ticket_without_a_usable_way_or_our_own_is_refused(
    nodes: Callable[..., STTNode],
) -> None:
    client = nodes()
    await client.start()
    with pytest.raises(ConfigError, match="no UDP address of this node's address family"):
        await client.connect(NodeTicket(os.urandom(32), (("2001:db8::1", 9000),)))
    with pytest.raises(ConfigError, match="this node's own"):
        await client.connect(client.ticket())


@pytest.mark.parametrize(
    ("nat", "transport"),
    [(NATConfig.full_cone(), "udp"), (NATConfig.port_restricted_cone(), "relay")],
    ids=["full-cone-direct", "port-restricted-relayed"],
)
async def test_a_ticket_of_a_node_behind_a_nat_lists_its_public_address(
    nodes: Callable[..., STTNode], nat: NATConfig, transport: str
) -> None:
    """B sits behind a NAT and registers at a relay over UDP (through its box), so the relay
    observes B's public address and B's ticket lists it. A dials that ticket from outside: a
    full cone lets the direct handshake in; a port-restricted cone filters it (B never sent to
    A) and the relay carries the session, the direct attempt cancelled."""
    async with (
        RelayServer(udp_port=0, ws_port=0) as relay,
        NATBox(nat, public_host="127.0.0.3") as box,
    ):
        assert relay.udp_address is not None
        assert relay.ws_url is not None
        routed = "udp://{}:{}".format(*box.route(relay.udp_address))
        stay = NodeConfig(migration=False)  # the path the dial made is the one to check
        b = nodes(server_mode=True, relays=[routed, relay.ws_url], config=stay)
        b.udp_route = box.route
        a = nodes(config=stay)
        await b.start()
        await a.start()
        link = b.relay_link(routed)
        assert link is not None
        observed = link.observed
        assert observed is not None
        assert observed[0] == "127.0.0.3"
        ticket = b.ticket()
        assert ticket.addresses == (b.udp_address, observed)
        assert ticket.relays == (routed, relay.ws_url)
        # A is outside: of B's ways, only the public address and the relay's WebSocket mean
        # anything to it (B's own address and the routed URL are inside B's box).
        outside = NodeTicket(ticket.node_id, (observed,), (), (relay.ws_url,))
        session = await a.connect(str(outside), timeout=3 * SECOND)
        assert session.peer_node_id == b.node_id
        assert session.transport_type == transport
        if transport == "relay":
            assert box.nat.stats.dropped_filtered > 0  # the direct attempt was made and filtered
        else:
            assert session.path == ("udp", observed)
        assert a.stats().handshakes_in_flight == 0  # the losing attempt was cancelled cleanly
        assert [s.session_id for s in a.session_manager.get_active_sessions()] == [
            session.session_id
        ]
        await asyncio.gather(a.stop(), b.stop())  # while the relay and the box still run
