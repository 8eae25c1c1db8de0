"""A periodic key-rotation script over a live session (the chapter's "Periodic Key Rotation").

Two nodes exchange a steady stream of messages while a background task rotates every active
session's key at a fixed interval. At the end both peers agree on the key version and no
message was lost. Run: ``python examples/key_rotation.py [--interval 0.2] [--rotations 5]``.
"""

from __future__ import annotations

import argparse
import asyncio

from seigr_stt import STTNode, generate_seed


async def rotate_keys_periodically(node: STTNode, interval: float, rounds: int) -> None:
    """Rotate all session keys every ``interval`` seconds, ``rounds`` times."""
    for _ in range(rounds):
        await asyncio.sleep(interval)
        for session in node.session_manager.get_active_sessions():
            await session.rotate_key()
            print(f"Rotated key for {session.session_id.hex()} -> version {session.key_version}")


async def main(interval: float, rotations: int) -> int:
    shared_seed = generate_seed()
    server = STTNode(generate_seed(), shared_seed)
    await server.start(server_mode=True)
    client = STTNode(generate_seed(), shared_seed)
    await client.start()
    try:
        assert server.udp_address is not None
        session = await client.connect_udp(*server.udp_address)
        sent = 0
        received: list[bytes] = []

        async def sender() -> None:
            nonlocal sent
            while not rotation.done():
                await session.send(sent.to_bytes(4, "big"))
                sent += 1
                await asyncio.sleep(0.002)

        async def receiver() -> None:
            async for packet in server.receive():
                received.append(packet.data)
                if rotation.done() and len(received) == sent:
                    return

        rotation = asyncio.create_task(rotate_keys_periodically(client, interval, rotations))
        await asyncio.gather(sender(), rotation)
        async with asyncio.timeout(10):
            await receiver()
        peer = server.session_manager.get_session(session.session_id)
        assert peer is not None
        in_order = received == [i.to_bytes(4, "big") for i in range(sent)]
        print(f"messages sent {sent}, received {len(received)}, in order: {in_order}")
        print(
            f"key version: client {session.key_version}, server {peer.key_version}; "
            f"keys equal: {peer.session_key == session.session_key}"
        )
        return 0 if in_order and session.key_version == peer.key_version == rotations else 1
    finally:
        await client.stop()
        await server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--interval", type=float, default=0.2)
    parser.add_argument("--rotations", type=int, default=5)
    options = parser.parse_args()
    raise SystemExit(asyncio.run(main(options.interval, options.rotations)))
