"""Node configuration: one frozen dataclass, validated at construction (``ConfigError``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from seigr_stt.constants import (
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_MAX_SESSIONS,
    DEFAULT_SESSION_IDLE_TIMEOUT_S,
    HANDSHAKE_BURST_PER_SOURCE,
    HANDSHAKE_HALF_OPEN_MAX,
    HANDSHAKE_LOAD_THRESHOLD,
    HANDSHAKE_RATE_PER_SOURCE_PER_S,
    KEEPALIVE_TIMEOUT_S,
    KEY_ROTATION_MIN_INTERVAL_S,
    PMTU_DEFAULT_PROBE_MAX,
    REJECT_AFTER_TIME_S,
    REKEY_AFTER_MESSAGES,
    REKEY_AFTER_TIME_S,
    TOMBSTONE_S,
    UDP_MAX_RECORD_SIZE,
    WEBSOCKET_MAX_RECORD_SIZE,
)
from seigr_stt.exceptions import ConfigError

__all__ = ["NodeConfig"]


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """Settings of one node. Every field has a safe default; invalid values raise ConfigError."""

    max_sessions: int = DEFAULT_MAX_SESSIONS
    """Live sessions (handshaking, active or closing) the node holds at once; more are refused."""

    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    """Largest message ``send_to_sessions``/``session.send`` accept, in bytes (MessageTooLarge)."""

    max_channels: int = 1024
    """Message channels (``stream_id`` values) one peer may use in a session."""

    session_idle_timeout_s: float | None = DEFAULT_SESSION_IDLE_TIMEOUT_S
    """A session with no application data either way for this long is closed; None disables."""

    keepalive_s: float = KEEPALIVE_TIMEOUT_S
    """Send an empty record when we received data but sent nothing for this long."""

    persistent_keepalive_s: float | None = None
    """Send an empty record whenever nothing was sent for this long, even when idle (like
    WireGuard's PersistentKeepalive), so a NAT or firewall mapping stays open. None: only the
    usual keepalive that answers received data. Application data resets the idle timeout, an
    empty record does not: pair this with ``session_idle_timeout_s=None`` to keep an idle session
    alive."""

    rekey_after_s: float = REKEY_AFTER_TIME_S
    """Rotate the traffic keys automatically after this long on one epoch. Must be below
    ``REJECT_AFTER_TIME_S`` (180 s): keys older than that are refused and the session closes."""

    rekey_after_messages: int = REKEY_AFTER_MESSAGES
    """Rotate the traffic keys automatically after sending this many records on one epoch."""

    key_rotation_min_interval_s: float = KEY_ROTATION_MIN_INTERVAL_S
    """Least time between two rotations of one session (the peer must also have confirmed)."""

    udp_max_record_size: int = UDP_MAX_RECORD_SIZE
    """Largest UDP datagram the node sends (bytes). 1232 fits every IPv6 path."""

    udp_pmtu_probe_max: int = PMTU_DEFAULT_PROBE_MAX
    """Largest UDP record a session may use after probing that the path carries it (bytes;
    ``udp_max_record_size`` or less turns probing off). Loopback and LANs with jumbo frames gain
    the most; probes are sent with Don't Fragment set, so a path that cannot carry one loses only
    the probe."""

    websocket_max_record_size: int = WEBSOCKET_MAX_RECORD_SIZE
    """Largest WebSocket binary message the node sends or accepts (bytes)."""

    handshake_half_open_max: int = HANDSHAKE_HALF_OPEN_MAX
    """Responder handshakes in flight at once; INIT packets beyond it are dropped and counted."""

    handshake_load_threshold: int = HANDSHAKE_LOAD_THRESHOLD
    """Half-open handshakes above which INIT packets must carry a valid cookie (mac2)."""

    handshake_rate_per_source_per_s: float = HANDSHAKE_RATE_PER_SOURCE_PER_S
    """Handshakes (Diffie-Hellman operations) one source host may cost this node per second,
    on average: a per-source token bucket checked after mac1 and the cookie, before any DH.
    INIT packets beyond it are dropped and counted as ``rate_limited`` (docs/protocol.md §10).
    A source is the sender's IP address (all its ports share one bucket) or, on WebSocket,
    the remote host of the connection."""

    handshake_burst_per_source: int = HANDSHAKE_BURST_PER_SOURCE
    """Handshakes one source host may start at once before ``handshake_rate_per_source_per_s``
    applies (the bucket's capacity; a new source starts with a full bucket)."""

    tombstone_s: float = TOMBSTONE_S
    """How long a closed session's id is remembered so stragglers are dropped quietly."""

    capabilities: int = 0
    """Capability bits this node advertises in its handshakes (``session.capabilities``)."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None and f.name in ("session_idle_timeout_s", "persistent_keepalive_s"):
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"NodeConfig.{f.name} must be a number, not {value!r}")
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"NodeConfig.{f.name} must be finite")
            if value < 0 or (value == 0 and f.name != "capabilities"):
                raise ConfigError(f"NodeConfig.{f.name} must be positive, not {value!r}")
        if not 256 <= self.udp_max_record_size <= 65507:
            raise ConfigError("NodeConfig.udp_max_record_size must be within 256..65507 bytes")
        if self.udp_pmtu_probe_max > 65000:
            raise ConfigError("NodeConfig.udp_pmtu_probe_max must be at most 65000 bytes")
        if not 256 <= self.websocket_max_record_size <= 16 * 1024 * 1024:
            raise ConfigError("NodeConfig.websocket_max_record_size must be within 256 B..16 MiB")
        if self.rekey_after_s > REJECT_AFTER_TIME_S - 10:
            raise ConfigError(
                f"NodeConfig.rekey_after_s must be at most {REJECT_AFTER_TIME_S - 10:g} s, so a "
                f"rotation completes before keys expire at {REJECT_AFTER_TIME_S:g} s"
            )
        if self.capabilities >= 1 << 64:
            raise ConfigError("NodeConfig.capabilities must fit in 64 bits")
        if not isinstance(self.handshake_burst_per_source, int):
            raise ConfigError("NodeConfig.handshake_burst_per_source must be an int")
        if self.handshake_load_threshold > self.handshake_half_open_max:
            raise ConfigError("handshake_load_threshold cannot exceed handshake_half_open_max")
