"""Typed statistics: frozen snapshots of a session, of a node's sessions and of a node.

:meth:`STTSession.stats` returns a :class:`SessionStats`, :meth:`SessionManager.stats` a
:class:`SessionCountStats` and :meth:`STTNode.stats` a :class:`NodeStats`. Each is a frozen
dataclass taken at one moment; taking one changes nothing. The chapter's dict methods
(``get_statistics()``, ``manager.get_stats()``, ``node.get_stats()``) keep their keys and are
built from these objects.

Units are in the names: ``*_at`` is a Unix time in seconds (``time.time()``), ``*_s`` a
duration in seconds, ``*_bytes`` or ``bytes_*`` a byte count; every other figure is a count.
Times and durations are floats at full resolution: round them only for display.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from seigr_stt.constants import SessionState

__all__ = [
    "NodeStats",
    "SessionCountStats",
    "SessionStats",
    "UDPStats",
    "WebSocketStats",
]


@dataclass(frozen=True, slots=True)
class SessionStats:
    """One session's figures (counters add what the protocol counted and what the application
    recorded itself with ``record_frame_sent`` and friends)."""

    session_id: bytes
    peer_node_id: bytes
    state: SessionState
    transport: str | None  # "udp", "websocket", or None for a manual session
    is_manual: bool
    capabilities: int
    #: When the session was created and when it became ready (ACTIVE); Unix seconds.
    created_at: float
    ready_at: float | None
    #: When it closed (None while open), with what code and reason, and by whom.
    closed_at: float | None
    close_code: int | None  # a CloseCode when it is one of the protocol's codes
    close_reason: str
    closed_by_peer: bool
    last_active_at: float
    uptime_s: float  # until now, or until closed_at once closed
    rtt_s: float | None  # smoothed round-trip time, once measured
    key_version: int
    last_key_rotation_at: float
    active_streams: int  # byte streams not yet finished both ways
    streams_opened: int
    bytes_sent: int
    bytes_received: int
    packets_sent: int
    packets_received: int
    packets_lost: int
    retransmitted_bytes: int
    messages_sent: int
    messages_received: int
    datagrams_sent: int
    datagrams_received: int
    datagrams_dropped: int  # unread datagrams dropped because 1024 were waiting
    send_errors: int
    receive_errors: int
    replays_dropped: int
    auth_failures: int
    epoch_drops: int
    cwnd_bytes: int | None  # congestion window (None for a manual session)
    bytes_in_flight: int | None  # sent and not yet acknowledged


@dataclass(frozen=True, slots=True)
class SessionCountStats:
    """How many sessions a node holds, by state, and how many it ever held.

    ``by_state`` counts the live sessions the manager tracks (a session made by a handshake is
    ACTIVE when it is handed out); handshakes still in progress are counted once, in
    ``handshakes_in_flight``.
    """

    created_total: int  # every session ever created, closed ones included
    closed_total: int  # every session that closed
    live: int  # tracked now, in any state but CLOSED
    by_state: Mapping[SessionState, int]
    max_concurrent: int  # the high-water mark of ``live`` since the node was made
    handshakes_in_flight: int
    max_sessions: int  # NodeConfig.max_sessions


@dataclass(frozen=True, slots=True)
class UDPStats:
    """The UDP socket's figures (zeros before ``start()``)."""

    address: tuple[str, int] | None
    datagrams_sent: int
    datagrams_received: int
    send_errors: int
    send_dropped: int
    #: Segmentation and receive offload in use on the socket (Linux; docs/deployment.md).
    offload: bool = False
    offloaded_sends: int = 0  # system calls that sent several datagrams at once
    coalesced_reads: int = 0  # reads that returned several datagrams of one sender


@dataclass(frozen=True, slots=True)
class WebSocketStats:
    """The WebSocket transport's figures (the server's and the outgoing connections)."""

    url: str | None
    connections: int
    pending: int  # accepted connections without an established session yet
    refused_connections: int  # beyond websocket_max_pending(_per_source)
    closed_handshake_timeout: int  # closed for no handshake / no session in time
    closed_idle: int  # closed for carrying nothing
    text_frames_refused: int  # closed for a text message (1003)
    oversized_refused: int  # closed for an oversized message (1009)
    send_dropped: int  # packets dropped by full send queues
    send_queued_bytes: int  # queued now


@dataclass(frozen=True, slots=True)
class NodeStats:
    """A node's figures: its sessions, handshakes, transports, traffic and drops."""

    node_id: bytes
    running: bool
    server_mode: bool
    sessions: SessionCountStats
    handshakes_started: int  # initiated by this node
    handshakes_accepted: int  # peers' handshakes this node completed as responder
    handshakes_failed: int
    handshakes_in_flight: int
    #: Members met speaking another protocol version (docs/protocol.md §19), either way.
    version_mismatches: int
    udp: UDPStats
    websocket: WebSocketStats
    packets_received: int
    packets_sent: int
    bytes_received: int
    bytes_sent: int
    #: Dropped packets by reason: every reason of docs/protocol.md §11, zero or not.
    drops: Mapping[str, int]
    drops_total: int
    receive_queue: int  # messages waiting for ``node.receive()``
