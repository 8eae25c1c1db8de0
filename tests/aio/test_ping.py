"""``STTSession.ping()``: a PING answered by the peer's PONG, over both transports."""

from __future__ import annotations

import pytest

from seigr_stt import STTNode, generate_seed
from seigr_stt.exceptions import SessionClosedError
from tests.timing import SECOND


@pytest.mark.parametrize("transport", ["udp", "websocket"])
async def test_ping_returns_a_round_trip_time(transport: str) -> None:
    shared = generate_seed()
    server = STTNode(generate_seed(), shared, ws_port=0)
    await server.start(server_mode=True)
    try:
        async with STTNode(generate_seed(), shared) as client:
            if transport == "udp":
                assert server.udp_address is not None
                session = await client.connect_udp(*server.udp_address)
            else:
                assert server.ws_url is not None
                session = await client.connect_websocket(server.ws_url)
            rtts = [await session.ping(timeout=5 * SECOND) for _ in range(3)]
            assert all(0.0 < rtt < 5 * SECOND for rtt in rtts)
            assert session.rtt is not None  # the PINGs were acknowledged too
            await session.close()
            with pytest.raises(SessionClosedError):
                await session.ping()
    finally:
        await server.stop()
