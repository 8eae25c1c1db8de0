"""A relay that learns nothing (``docs/protocol.md`` §17, ``docs/relay.md``).

Nodes register under their node id with proof of holding the node's static key; the relay
forwards already-sealed STT packets between registered node ids, holding no session key and no
shared seed. :class:`RelayServer` is the asyncio server (UDP and WebSocket), :class:`RelayCore`
its sans-I/O core.
"""

from __future__ import annotations

from seigr_stt.relay.core import RelayConfig, RelayCore, RelayDrop
from seigr_stt.relay.server import RelayServer, RelayStats

__all__ = ["RelayConfig", "RelayCore", "RelayDrop", "RelayServer", "RelayStats"]
