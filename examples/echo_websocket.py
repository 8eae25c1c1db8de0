"""Echo over WebSocket: a server node echoes every message back on the same stream.

Run: ``python examples/echo_websocket.py``. The client sends a few messages and prints the echoes.
"""

from __future__ import annotations

import asyncio

from seigr_stt import STTNode, generate_seed


async def echo_server(node: STTNode) -> None:
    """Send every received message back to the session it came from."""
    async for packet in node.receive():
        await node.send_to_sessions([packet.session_id], packet.data, packet.stream_id)


async def main() -> None:
    shared_seed = generate_seed()
    async with STTNode(generate_seed(), shared_seed) as client:
        server = STTNode(generate_seed(), shared_seed, ws_port=0)
        await server.start(server_mode=True)
        echo = asyncio.create_task(echo_server(server))
        try:
            assert server.ws_url is not None
            session = await client.connect_websocket(server.ws_url)
            replies = client.receive()
            for text in ("hello", "seigr", "stt"):
                await session.send(text.encode())
                reply = await anext(replies)
                print(f"sent {text!r}, echoed {reply.data.decode()!r} via {reply.transport}")
        finally:
            await server.stop()
            await echo


if __name__ == "__main__":
    asyncio.run(main())
