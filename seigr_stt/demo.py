"""``stt demo`` / ``make demo``: two nodes in one process, the whole session lifecycle.

Handshake over UDP and over WebSocket, data both ways, key rotation, statistics, close —
printing each step. Everything stays on 127.0.0.1 with ephemeral ports.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from seigr_stt import STTNode
from seigr_stt.aio.session import NodeEvent, ReceivedPacket, STTSession

__all__ = ["run_demo"]


async def _next_packet(packets: asyncio.Queue[ReceivedPacket]) -> ReceivedPacket:
    async with asyncio.timeout(10):
        return await packets.get()


async def _pump(node: STTNode, packets: asyncio.Queue[ReceivedPacket]) -> None:
    async for packet in node.receive():
        packets.put_nowait(packet)


async def _exchange(
    client: STTNode,
    server: STTNode,
    session: STTSession,
    server_packets: asyncio.Queue[ReceivedPacket],
    client_packets: asyncio.Queue[ReceivedPacket],
    say: Callable[[str], None],
) -> None:
    label = session.transport_type
    await client.send_to_sessions([session.session_id], f"hello over {label}".encode())
    got = await _next_packet(server_packets)
    say(f"   server received {got.data!r} on stream {got.stream_id} via {got.transport}")
    peer_session = server.session_manager.get_session(session.session_id)
    assert peer_session is not None
    big = bytes(range(256)) * 1024  # 256 KiB: split across many records
    await peer_session.send(big, stream_id=7)
    reply = await _next_packet(client_packets)
    say(
        f"   client received {len(reply.data)} bytes on stream {reply.stream_id} "
        f"(intact: {reply.data == big})"
    )


async def run_demo(say: Callable[[str], None] = print) -> dict[str, int]:
    """Run the demo; returns a few figures (used by the tests)."""
    from seigr_stt import generate_seed

    shared_seed = generate_seed()
    server = STTNode(generate_seed(), shared_seed, "127.0.0.1", 0, ws_port=0)
    client = STTNode(generate_seed(), shared_seed, "127.0.0.1", 0)
    rotations = 0

    def on_rotated(event: NodeEvent) -> None:
        nonlocal rotations
        rotations += 1

    server.on("key_rotated", on_rotated)
    server.on(
        "session_closed",
        lambda e: say(
            f"   server saw session {e.session.session_id.hex()} closed "
            f"(code {e.code}, {e.reason or 'no reason'!s})"
        ),
    )
    await server.start(server_mode=True)
    await client.start()
    server_packets: asyncio.Queue[ReceivedPacket] = asyncio.Queue()
    client_packets: asyncio.Queue[ReceivedPacket] = asyncio.Queue()
    pumps = [
        asyncio.create_task(_pump(server, server_packets)),
        asyncio.create_task(_pump(client, client_packets)),
    ]
    try:
        say(f"server {server.node_id.hex()[:16]}… udp {server.udp_address}, ws {server.ws_url}")
        say(f"client {client.node_id.hex()[:16]}… udp {client.udp_address}")

        say("1. handshake over UDP (Noise XXpsk3)")
        udp = await client.connect_udp(*server.udp_address)  # type: ignore[misc]
        say(
            f"   session {udp.session_id.hex()} state {udp.state.name}, "
            f"peer {udp.peer_node_id.hex()[:16]}…"
        )
        say("2. data both ways over UDP")
        await _exchange(client, server, udp, server_packets, client_packets, say)

        say("3. handshake over WebSocket")
        assert server.ws_url is not None
        ws = await client.connect_websocket(server.ws_url)
        say(f"   session {ws.session_id.hex()} state {ws.state.name}")
        say("4. data both ways over WebSocket")
        await _exchange(client, server, ws, server_packets, client_packets, say)

        say("5. key rotation")
        for session in (udp, ws):
            before = session.key_version
            await session.rotate_key()
            peer = server.session_manager.get_session(session.session_id)
            assert peer is not None
            same = peer.session_key == session.session_key
            say(
                f"   {session.transport_type}: key version {before} -> {session.key_version} "
                f"(server {peer.key_version}; keys equal: {same})"
            )

        say("6. statistics")
        stats = udp.get_statistics()
        rtt = "not measured" if stats["rtt"] is None else f"{stats['rtt'] * 1000:.3f} ms"
        say(
            f"   udp session: {stats['packets_sent']} packets / {stats['bytes_sent']} bytes sent, "
            f"{stats['packets_received']} packets received, rtt {rtt}"
        )
        mgr = client.session_manager.get_stats()
        say(
            f"   client manager: total {mgr['total']}, active {mgr['active']}, "
            f"closed {mgr['closed']}"
        )

        say("7. close")
        await client.session_manager.close_session(udp.session_id)
        say(f"   udp session state {udp.state.name}")
        await ws.close(0, "demo done")
        say(f"   websocket session state {ws.state.name}")
        drops = server.get_stats()["drops_total"]
        say(f"   server drops: {drops}")
        return {
            "rotations": rotations,
            "drops": drops,
            "closed": client.session_manager.get_stats()["closed"],
        }
    finally:
        await client.stop()
        await server.stop()
        for task in pumps:
            task.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
        say("both nodes stopped")
