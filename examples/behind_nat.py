"""Test your app behind NATs: real nodes behind loopback NAT boxes, and a simulated symmetric NAT.

Run: ``python examples/behind_nat.py``. Three scenes, each printing what happened:

1. two nodes behind port-restricted cone NATs: the first handshake is dropped (nobody inside
   asked for it); after the hole punch it goes through;
2. a firewall that drops UDP: the UDP handshake times out and WebSocket gets through;
3. the in-memory network: two endpoints behind symmetric NATs never meet, however they punch.
"""

from __future__ import annotations

import asyncio

from seigr_stt import HandshakeTimeout, STTNode, generate_seed
from seigr_stt.core.events import SessionEstablished
from seigr_stt.testing import NAT, Firewall, NATBox, NATConfig, Net, seeded_rng

STUN = ("127.0.0.1", 3478)  # where a node would learn its public address (nothing is sent)


async def hole_punching(a: STTNode, b: STTNode) -> None:
    config = NATConfig.port_restricted_cone()
    async with NATBox(config) as box_a, NATBox(config) as box_b:
        assert a.udp_address is not None
        assert b.udp_address is not None
        b_public = box_b.punch(b.udp_address, STUN)  # B's address as a STUN server sees it
        assert b_public is not None
        try:
            await a.connect_udp(*box_a.route(b_public), timeout=0.3)
        except HandshakeTimeout:
            print(f"without a punch: timed out ({box_b.nat.stats.dropped_filtered} filtered)")
        a_public = box_a.punch(a.udp_address, b_public)  # the mapping A's handshake opened
        assert a_public is not None
        box_b.punch(b.udp_address, a_public)  # B punches toward A: its NAT now lets A in
        session = await a.connect_udp(*box_a.route(b_public), timeout=5)
        await session.send(b"through two NATs")
        peer = b.session_manager.get_session(session.session_id)
        assert peer is not None
        print(f"after the punch: {(await peer.recv()).data.decode()!r}")
        await session.close()


async def udp_blocked(client: STTNode, server: STTNode) -> None:
    assert server.udp_address is not None
    assert server.ws_url is not None
    firewall = Firewall()  # drops UDP, lets TCP through
    async with NATBox(firewall=firewall) as box:
        try:
            await client.connect_udp(*box.route(server.udp_address), timeout=0.3)
        except HandshakeTimeout:
            print(f"UDP blocked: timed out ({firewall.stats.udp_dropped} dropped)")
        host, port = server.ws_url.removeprefix("ws://").removesuffix("/stt").rsplit(":", 1)
        inside_host, inside_port = await box.route_tcp((host, int(port)))
        session = await client.connect_websocket(f"ws://{inside_host}:{inside_port}/stt")
        print(f"WebSocket through the firewall: {session.transport_type}")
        await session.close()


def symmetric_nats() -> None:
    net = Net(seed=1, delay_s=(0.01, 0.02))
    stun = net.add_node("STUN", addr=("192.0.2.1", 3478))
    nat_a = net.add_nat(NAT(NATConfig.symmetric(), "203.0.113.1", seeded_rng("a")))
    nat_b = net.add_nat(NAT(NATConfig.symmetric(), "203.0.113.2", seeded_rng("b")))
    a = net.add_node("A", addr=("10.0.0.2", 4000), behind=nat_a)
    b = net.add_node("B", addr=("10.0.1.2", 4000), behind=nat_b)
    a_public = net.send_raw(a, b"stun?", stun.addr).src  # what the STUN server observes
    b_public = net.send_raw(b, b"stun?", stun.addr).src
    net.run(0.1)
    net.send_raw(a, b"punch", b_public)
    net.send_raw(b, b"punch", a_public)
    net.connect(a, b, to=b_public, timeout_s=3.0)
    net.run(5.0)
    met = bool(a.events_of(SessionEstablished))
    dropped = nat_a.stats.dropped_filtered + nat_b.stats.dropped_filtered
    print(f"symmetric NATs: session established: {met} ({dropped} filtered)")


async def main() -> None:
    shared_seed = generate_seed()
    async with (
        STTNode(generate_seed(), shared_seed, ws_port=0) as a,
        STTNode(generate_seed(), shared_seed, ws_port=0, server_mode=True) as b,
    ):
        await hole_punching(a, b)
        await udp_blocked(a, b)
    symmetric_nats()


if __name__ == "__main__":
    asyncio.run(main())
