"""Dial a peer by its node id through a relay that cannot read the session.

Run: ``python examples/relay.py``. A relay serves UDP and WebSocket; node B registers at it over
UDP and accepts sessions; node A, knowing only B's node id, dials it through the relay over
WebSocket. The relay forwards sealed records and reports what it saw: sizes, never content.
Inside the session B tells A the UDP address the relay observed for it; A probes it, and the
session moves from the relay to that direct path (``path_changed``) without losing a byte.
"""

from __future__ import annotations

import asyncio

from seigr_stt import NodeEvent, STTNode, generate_seed
from seigr_stt.relay import RelayServer


async def main() -> None:
    shared_seed = generate_seed()  # every authorized peer holds it; the relay does not
    async with RelayServer(udp_port=0, ws_port=0) as relay:
        assert relay.udp_url is not None
        assert relay.ws_url is not None
        b = STTNode(generate_seed(), shared_seed, server_mode=True, relays=[relay.udp_url])
        a = STTNode(generate_seed(), shared_seed)
        moved = asyncio.get_running_loop().create_future()

        def path_changed(event: NodeEvent) -> None:
            if not moved.done():
                moved.set_result(event)

        a.on("path_changed", path_changed)
        async with b, a:
            link = b.relay_link(relay.udp_url)
            assert link is not None
            print(f"B registered, the relay sees it at {link.observed}")
            session = await a.connect(b.node_id, relays=[relay.ws_url], timeout=5.0)
            await session.send(b"hello through the relay")
            packet = await b.recv(timeout=5.0)
            print(f"B received {packet.data.decode()!r}")
            event = await asyncio.wait_for(moved, 5.0)
            print(f"the session moved from the {event.old_transport} to {event.transport}")
            stats = relay.stats()
            print(f"the relay forwarded {stats.packets_forwarded} sealed packets")


if __name__ == "__main__":
    asyncio.run(main())
