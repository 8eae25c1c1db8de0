"""seigr_stt: an encrypted peer-to-peer node runtime.

Two programs that share a secret seed talk over UDP or WebSocket through a Noise
``XXpsk3_25519_ChaChaPoly_BLAKE2b`` handshake and an authenticated record layer with replay
protection and key rotation. Start with :class:`STTNode`; see ``docs/getting-started.md``.
"""

from __future__ import annotations

import os

from seigr_stt.aio.manager import SessionManager
from seigr_stt.aio.manual import ManualSession
from seigr_stt.aio.node import STTNode
from seigr_stt.aio.serve import Connect, Server, connect, serve
from seigr_stt.aio.session import EVENT_KINDS, NodeEvent, ReceivedPacket, STTSession
from seigr_stt.aio.stats import (
    NodeStats,
    SessionCountStats,
    SessionStats,
    UDPStats,
    WebSocketStats,
)
from seigr_stt.aio.streams import STTStream
from seigr_stt.config import NodeConfig
from seigr_stt.constants import SEED_GENERATED_BYTES, CloseCode, FrameType, PacketType, SessionState
from seigr_stt.exceptions import (
    BindError,
    ConfigError,
    HandshakeError,
    HandshakeTimeout,
    KeyRotationError,
    MessageTooLarge,
    ProtocolError,
    RelayError,
    SessionClosedError,
    SessionError,
    SessionNotFound,
    StreamError,
    STTError,
    TicketError,
    WeakSeedError,
)
from seigr_stt.ticket import NodeTicket

__version__ = "0.1.0"

__all__ = [
    "EVENT_KINDS",
    "BindError",
    "CloseCode",
    "ConfigError",
    "Connect",
    "FrameType",
    "HandshakeError",
    "HandshakeTimeout",
    "KeyRotationError",
    "ManualSession",
    "MessageTooLarge",
    "NodeConfig",
    "NodeEvent",
    "NodeStats",
    "NodeTicket",
    "PacketType",
    "ProtocolError",
    "ReceivedPacket",
    "RelayError",
    "STTError",
    "STTNode",
    "STTSession",
    "STTStream",
    "Server",
    "SessionClosedError",
    "SessionCountStats",
    "SessionError",
    "SessionManager",
    "SessionNotFound",
    "SessionState",
    "SessionStats",
    "StreamError",
    "TicketError",
    "UDPStats",
    "WeakSeedError",
    "WebSocketStats",
    "__version__",
    "connect",
    "generate_seed",
    "serve",
]


def generate_seed() -> bytes:
    """Return a new 32-byte seed from the operating system's CSPRNG (``os.urandom``)."""
    return os.urandom(SEED_GENERATED_BYTES)
