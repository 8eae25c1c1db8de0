"""The complete example of Chapter 17 of the seigr_toolset_transmissions documentation,
"Sessions & SessionManager" ("Complete Example: Session Lifecycle"), runnable.

Adapted only where the original could not work: seeds are real random seeds (the chapter's
``b"server" * 8`` has 4 distinct byte values and is refused as too weak; its shared seed is 30
bytes, under the 32 required), the package is ``seigr_stt``,
and the server binds a free port (``port=0``) instead of 8080 so the example never collides.
The test suite imports :func:`session_lifecycle` and runs it (``tests/aio/test_integration.py``).
"""

from __future__ import annotations

import asyncio

from seigr_stt import STTNode, generate_seed


async def session_lifecycle() -> STTNode:
    """Run the chapter's six steps; return the server node, stopped, for a caller to inspect."""
    # Create nodes
    shared_seed = generate_seed()  # share this among authorized peers

    server = STTNode(node_seed=generate_seed(), shared_seed=shared_seed, port=0)
    await server.start(server_mode=True)
    assert server.udp_address is not None
    server_port = server.udp_address[1]

    client = STTNode(node_seed=generate_seed(), shared_seed=shared_seed, port=0)
    await client.start()

    # Connect - creates session
    print("1. Creating session...")
    session = await client.connect_udp("localhost", server_port)
    print(f"   Session ID: {session.session_id.hex()}")
    print(f"   State: {session.state} (ACTIVE)")

    # Use session
    print("\n2. Using session...")
    await client.send_to_sessions([session.session_id], b"Test data")

    # Check statistics
    print("\n3. Session stats:")
    stats = session.get_statistics()
    print(f"   Bytes sent: {stats['bytes_sent']}")
    print(f"   Uptime: {stats['uptime']:.2f}s")

    # Rotate key
    print("\n4. Rotating key...")
    old_version = session.key_version
    await session.rotate_key()
    print(f"   Key version: {old_version} → {session.key_version}")
    print(f"   Last rotation: {session.last_key_rotation}")

    # Check manager
    print("\n5. Manager stats:")
    mgr_stats = client.session_manager.get_stats()
    print(f"   Total sessions: {mgr_stats['total']}")
    print(f"   Active: {mgr_stats['active']}")

    # Close session
    print("\n6. Closing session...")
    await client.session_manager.close_session(session.session_id)
    print(f"   State: {session.state} (CLOSED)")

    # Cleanup
    await client.stop()
    await server.stop()
    return server


if __name__ == "__main__":
    asyncio.run(session_lifecycle())
