"""serve() and connect(): a handler per session, and a client that reconnects.

Run: ``python examples/serve_connect.py``. An echo server answers a client over UDP and one over
WebSocket; then a server whose handler answers once and returns (serve() closes the session)
meets a client that reconnects each time, as ``async for websocket in connect(...)`` does.
"""

from __future__ import annotations

import asyncio
import contextlib

from seigr_stt import STTSession, connect, generate_seed, serve


async def echo(session: STTSession) -> None:
    """Send every message back on its channel, until the client closes the session."""
    async for packet in session:
        await session.send(packet.data, packet.stream_id)


async def answer_once(session: STTSession) -> None:
    """Answer one message, then return: serve() closes the session."""
    packet = await session.recv()
    await session.send(b"answer to " + packet.data)


async def main() -> None:
    shared_seed = generate_seed()  # every authorized peer holds it

    async with serve(echo, generate_seed(), shared_seed, ws_port=0) as server:
        assert server.udp_address is not None
        assert server.ws_url is not None
        host, port = server.udp_address
        for target in (f"udp://{host}:{port}", server.ws_url):
            async with connect(target, generate_seed(), shared_seed) as session:
                await session.send(b"hello")
                reply = await session.recv(timeout=5.0)
                print(f"echoed {reply.data.decode()!r} via {session.transport_type}")

    async with serve(answer_once, generate_seed(), shared_seed) as server:
        assert server.udp_address is not None
        reconnecting = connect(server.udp_address, generate_seed(), shared_seed)
        rounds = 0
        # aclosing: the client node stops when the block ends, not when the loop is collected.
        async with contextlib.aclosing(reconnecting) as sessions:
            async for session in sessions:
                rounds += 1
                await session.send(b"question %d" % rounds)
                print((await session.recv(timeout=5.0)).data.decode())
                await session.wait_closed()  # the handler returned: serve() closed the session
                print(f"session {rounds} closed by the server, code {session.close_code}")
                if rounds == 3:
                    break
        print(f"{rounds} sessions, reconnected after each close")


if __name__ == "__main__":
    asyncio.run(main())
