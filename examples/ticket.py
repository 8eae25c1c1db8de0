"""Hand out a node's ticket and dial it: one word holds where the node is and who it must be.

Run: ``python examples/ticket.py``. Node B starts and prints its ticket (its node id, its UDP
address and WebSocket URL). Node A dials that text: UDP and WebSocket are tried at once, the
first session made is kept, and the node at the address must prove the ticket's node id. A
forged ticket (B's address, another node id) is refused by the handshake itself.
"""

from __future__ import annotations

import asyncio
import os

from seigr_stt import HandshakeError, NodeTicket, STTNode, generate_seed


async def main() -> None:
    shared_seed = generate_seed()
    b = STTNode(generate_seed(), shared_seed, "127.0.0.1", 0, ws_port=0, server_mode=True)
    a = STTNode(generate_seed(), shared_seed, "127.0.0.1", 0)
    async with b, a:
        text = str(b.ticket())
        print(f"B's ticket: {text[:24]}… ({len(text)} characters)")
        session = await a.connect(text, timeout=5.0)
        print(f"A reached B by ticket over {session.transport_type}")
        print(f"proved node id matches: {session.peer_node_id == b.node_id}")
        await session.send(b"hello by ticket")
        packet = await b.recv(timeout=5.0)
        print(f"B received {packet.data.decode()!r}")
        forged = NodeTicket(os.urandom(32), b.ticket().addresses)
        try:
            await a.connect(forged, timeout=2.0)
        except HandshakeError:
            print("a ticket naming another node at B's address: refused")


if __name__ == "__main__":
    asyncio.run(main())
