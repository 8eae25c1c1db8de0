"""Configuration: frozen dataclasses validated at construction by their field types and bounds.

Three parts, each read by one layer of the package, and the public facade that joins them:

* :class:`SessionConfig`: what one session needs (message limits, windows, timers, rotation);
  the sans-I/O :class:`~seigr_stt.core.session.Session` reads nothing else;
* :class:`EndpointConfig`: the node-wide protocol limits (sessions, handshake admission);
* :class:`TransportConfig`: record sizes per transport, and the WebSocket server's deadlines and
  connection limits;
* :class:`NodeConfig`: all of the above as one flat set of keyword arguments, what
  :class:`~seigr_stt.STTNode` takes (``NodeConfig(max_sessions=100, keepalive_s=5)``). A
  ``NodeConfig`` *is* each of the three parts, so it can be passed wherever one is expected.

Every field is checked against its type annotation (an ``int`` field refuses ``1.5`` and
``True``; a ``float`` field takes ints and refuses NaN and infinities; ``None`` only where the
annotation allows it) and against the bounds in its metadata; a bad value raises
:class:`~seigr_stt.exceptions.ConfigError` naming the class and the field.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field, fields
from typing import Any

from seigr_stt.constants import (
    DEAD_PEER_TIMEOUT_S,
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_MAX_SESSIONS,
    DEFAULT_SESSION_IDLE_TIMEOUT_S,
    HANDSHAKE_BURST_PER_SOURCE,
    HANDSHAKE_BURST_UNPROVEN,
    HANDSHAKE_HALF_OPEN_MAX,
    HANDSHAKE_LOAD_THRESHOLD,
    HANDSHAKE_RATE_PER_SOURCE_PER_S,
    HANDSHAKE_RATE_UNPROVEN_PER_S,
    KEEPALIVE_TIMEOUT_S,
    KEY_ROTATION_MIN_INTERVAL_S,
    PATH_REPROBE_INTERVAL_S,
    PING_INTERVAL_S,
    PMTU_DEFAULT_PROBE_MAX,
    RATCHET_INTERVAL_S,
    REJECT_AFTER_TIME_S,
    REKEY_AFTER_MESSAGES,
    REKEY_AFTER_TIME_S,
    RESPONDER_HALF_OPEN_TIMEOUT_S,
    SESSION_INITIAL_WINDOW_BYTES,
    STREAM_INITIAL_WINDOW_BYTES,
    TOMBSTONE_S,
    UDP_MAX_RECORD_SIZE,
    WEBSOCKET_MAX_RECORD_SIZE,
)
from seigr_stt.exceptions import ConfigError

__all__ = ["EndpointConfig", "NodeConfig", "SessionConfig", "TransportConfig"]


def _bounds(
    minimum: float = 0, maximum: float | None = None, *, exclusive: bool = True
) -> dict[str, Any]:
    """Field metadata: ``minimum < value`` (``<=`` when not ``exclusive``), ``value <= maximum``."""
    return {"min": minimum, "max": maximum, "exclusive": exclusive}


def _allowed_types(hint: Any) -> tuple[set[type], bool]:
    """The plain types an annotation admits, and whether it admits None."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = set(typing.get_args(hint))
    else:
        args = {hint}
    allows_none = type(None) in args
    return {a for a in args if a is not type(None)}, allows_none


def _check_field(owner: str, name: str, hint: Any, metadata: Any, value: Any) -> None:
    where = f"{owner}.{name}"
    allowed, allows_none = _allowed_types(hint)
    if bool in allowed:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be True or False, not {value!r}")
        return
    if value is None:
        if allows_none:
            return
        raise ConfigError(f"{where} must be a number, not None")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where} must be a number, not {value!r}")
    if isinstance(value, float):
        if float not in allowed:
            raise ConfigError(f"{where} must be an int, not {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{where} must be finite, not {value!r}")
    minimum = metadata.get("min", 0)
    maximum = metadata.get("max")
    exclusive = metadata.get("exclusive", True)
    if value < minimum or (exclusive and value == minimum):
        relation = "greater than" if exclusive else "at least"
        raise ConfigError(f"{where} must be {relation} {minimum:g}, not {value!r}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{where} must be at most {maximum:g}, not {value!r}")


class _Validated:
    """Validates every field of a config dataclass after construction."""

    def __post_init__(self) -> None:
        owner = type(self).__name__
        hints = typing.get_type_hints(type(self))
        assert dataclasses.is_dataclass(self)
        for f in fields(self):
            _check_field(owner, f.name, hints[f.name], f.metadata, getattr(self, f.name))
        self._check()

    def _check(self) -> None:
        """Checks across fields (subclasses extend it; call ``super()._check()``)."""


@dataclass(frozen=True, kw_only=True)
class SessionConfig(_Validated):
    """What one session needs; every field has a safe default."""

    max_message_size: int = field(default=DEFAULT_MAX_MESSAGE_SIZE, metadata=_bounds())
    """Largest message ``send_to_sessions``/``session.send`` accept, in bytes (MessageTooLarge)."""

    max_channels: int = field(default=1024, metadata=_bounds())
    """Message channels (``stream_id`` values) one peer may use in a session."""

    session_idle_timeout_s: float | None = field(
        default=DEFAULT_SESSION_IDLE_TIMEOUT_S, metadata=_bounds()
    )
    """A session with no application data either way for this long is closed; None disables."""

    keepalive_s: float = field(default=KEEPALIVE_TIMEOUT_S, metadata=_bounds())
    """Send an empty record when we received data but sent nothing for this long."""

    ping_interval_s: float | None = field(default=PING_INTERVAL_S, metadata=_bounds())
    """When nothing was received from the peer for this long, send it a PING it must
    acknowledge (the heartbeat of an idle session, like websockets' ``ping_interval``), so a
    vanished peer is noticed within ``ping_interval_s + dead_peer_timeout_s`` (25 s by default)
    even when the application sends nothing. The peer only acknowledges it: one small record
    each way per interval. None: an idle session notices nothing until it sends."""

    dead_peer_timeout_s: float = field(default=DEAD_PEER_TIMEOUT_S, metadata=_bounds())
    """After sending a record that must be acknowledged, how long without any authenticated
    record from the peer before the session closes with ``CLOSE_DEAD_PEER`` (nothing is sent
    to a peer that is gone). Like websockets' ``ping_timeout``. Over UDP the close also waits
    for ``DEAD_PEER_MIN_PTOS`` (6) probe timeouts in a row, whose interval is capped at a
    quarter of this timeout, so a live peer behind heavy loss is not taken for a gone one."""

    persistent_keepalive_s: float | None = field(default=None, metadata=_bounds())
    """Send an empty record whenever nothing was sent for this long, even when idle (like
    WireGuard's PersistentKeepalive), so a NAT or firewall mapping stays open. None: only the
    usual keepalive that answers received data. Application data resets the idle timeout, an
    empty record does not: pair this with ``session_idle_timeout_s=None`` to keep an idle session
    alive."""

    rekey_after_s: float = field(
        default=REKEY_AFTER_TIME_S, metadata=_bounds(0, REJECT_AFTER_TIME_S - 10)
    )
    """Rotate the traffic keys automatically after this long on one epoch. At most 170 s, so a
    rotation completes before keys expire at ``REJECT_AFTER_TIME_S`` (180 s)."""

    rekey_after_messages: int = field(default=REKEY_AFTER_MESSAGES, metadata=_bounds())
    """Rotate the traffic keys automatically after sending this many records on one epoch."""

    key_rotation_min_interval_s: float = field(
        default=KEY_ROTATION_MIN_INTERVAL_S, metadata=_bounds()
    )
    """Least time between two rotations of one session (the peer must also have confirmed)."""

    migration: bool = True
    """Let the session move between transports (UDP, WebSocket, relay; docs/protocol.md §18):
    a record of the session arriving by another link makes that path a candidate, validated
    before it carries data. False: such records are dropped unopened (``wrong_link``)."""

    path_reprobe_interval_s: float = field(default=PATH_REPROBE_INTERVAL_S, metadata=_bounds())
    """While the session runs on a path it prefers less (relay below WebSocket below UDP), a
    better path it knows is probed this often, and the session moves back once one answers."""

    ratchet_interval_s: float | None = field(default=RATCHET_INTERVAL_S, metadata=_bounds())
    """Run a DH ratchet (fresh X25519 keys mixed into the next epoch, docs/protocol.md §7.1)
    automatically this long after the previous one, for post-compromise security; the session's
    responder waits 1.25 times as long, so the initiator normally starts them, and the initiator
    0.99 times as long (118.8 s of 120 s), so that its ratchet comes before the responder's
    ``rekey_after_s`` hash rotation. It coexists with
    ``rekey_after_s``: a ratchet is a rotation too and restarts that clock, so with both at 120 s
    every automatic rotation is a ratchet, and with ``rekey_after_s=30`` every fourth. None: only
    ``rotate_key(fresh_dh=True)`` ratchets."""

    stream_window: int = field(
        default=STREAM_INITIAL_WINDOW_BYTES, metadata=_bounds(1024, 1 << 40, exclusive=False)
    )
    """Bytes a peer may send on one stream beyond what the application has read (per-stream
    flow-control window, §16.3). Both peers must use the same value: it is the initial credit
    each side assumes the other grants."""

    session_window: int = field(
        default=SESSION_INITIAL_WINDOW_BYTES, metadata=_bounds(1024, 1 << 40, exclusive=False)
    )
    """Bytes a peer may send on all streams of a session beyond what the application has read
    (session flow-control window, §16.3). Both peers must use the same value."""


@dataclass(frozen=True, kw_only=True)
class EndpointConfig(_Validated):
    """Node-wide protocol limits: sessions and handshake admission (§10)."""

    max_sessions: int = field(default=DEFAULT_MAX_SESSIONS, metadata=_bounds())
    """Live sessions (handshaking, active or closing) the node holds at once; more are refused."""

    handshake_half_open_max: int = field(default=HANDSHAKE_HALF_OPEN_MAX, metadata=_bounds())
    """Responder handshakes in flight at once; INIT packets beyond it are dropped and counted."""

    handshake_load_threshold: int = field(default=HANDSHAKE_LOAD_THRESHOLD, metadata=_bounds())
    """Half-open handshakes above which INIT packets must carry a valid cookie (mac2)."""

    handshake_rate_per_source_per_s: float = field(
        default=HANDSHAKE_RATE_PER_SOURCE_PER_S, metadata=_bounds()
    )
    """Handshakes (Diffie-Hellman operations) one *proven* source host may cost this node per
    second, on average: a per-source token bucket charged only for INIT packets with a valid
    cookie (mac2), which proves the sender receives at its address, so a spoofer cannot drain
    another host's bucket. INIT packets beyond it are dropped and counted as ``rate_limited``
    (docs/protocol.md §10). A source is the sender's IP address (all its ports share one
    bucket) or, on WebSocket, the remote host of the connection."""

    handshake_burst_per_source: int = field(default=HANDSHAKE_BURST_PER_SOURCE, metadata=_bounds())
    """Handshakes one proven source host may start at once before
    ``handshake_rate_per_source_per_s`` applies (the bucket's capacity; a new source starts
    with a full bucket)."""

    handshake_rate_unproven_per_s: float = field(
        default=HANDSHAKE_RATE_UNPROVEN_PER_S, metadata=_bounds()
    )
    """INIT packets without a valid cookie, from all sources together, that this node answers
    per second on average (one token bucket for the whole node). While it is empty the node is
    under load: every INIT must carry a cookie, and gets one in a cookie reply if it does not
    (docs/protocol.md §10). Honest initiators then connect one round trip later."""

    handshake_burst_unproven: int = field(default=HANDSHAKE_BURST_UNPROVEN, metadata=_bounds())
    """Capacity of the node-wide bucket of ``handshake_rate_unproven_per_s``."""

    tombstone_s: float = field(default=TOMBSTONE_S, metadata=_bounds())
    """How long a closed session's id is remembered so stragglers are dropped quietly."""

    capabilities: int = field(default=0, metadata=_bounds(0, (1 << 64) - 1, exclusive=False))
    """Capability bits this node advertises in its handshakes (``session.capabilities``)."""

    def _check(self) -> None:
        super()._check()
        if self.handshake_load_threshold > self.handshake_half_open_max:
            raise ConfigError(
                f"{type(self).__name__}.handshake_load_threshold cannot exceed "
                "handshake_half_open_max"
            )


@dataclass(frozen=True, kw_only=True)
class TransportConfig(_Validated):
    """Record sizes per transport (§5, §12), and what one WebSocket connection may cost (§12.2)."""

    udp_max_record_size: int = field(
        default=UDP_MAX_RECORD_SIZE, metadata=_bounds(256, 65507, exclusive=False)
    )
    """Largest UDP datagram the node sends (bytes). 1232 fits every IPv6 path."""

    udp_pmtu_probe_max: int = field(default=PMTU_DEFAULT_PROBE_MAX, metadata=_bounds(0, 65000))
    """Largest UDP record a session may use after probing that the path carries it (bytes;
    ``udp_max_record_size`` or less turns probing off). Loopback and LANs with jumbo frames gain
    the most; probes are sent with Don't Fragment set, so a path that cannot carry one loses only
    the probe."""

    websocket_max_record_size: int = field(
        default=WEBSOCKET_MAX_RECORD_SIZE, metadata=_bounds(256, 16 * 1024 * 1024, exclusive=False)
    )
    """Largest WebSocket binary message the node sends or accepts (bytes). On a network path the
    records sent are a little smaller, so that each one's frame fits one TCP burst of whole
    segments (docs/protocol.md §12.2, "Record size")."""

    websocket_handshake_timeout_s: float = field(default=5.0, metadata=_bounds())
    """Seconds an accepted WebSocket connection has, from its HTTP upgrade, to carry a handshake
    the node keeps (a valid INIT from a member); otherwise it is closed (1008) and counted as
    ``closed_handshake_timeout``. Also the deadline of the HTTP upgrade itself (and of the TLS
    handshake under ``wss://``)."""

    websocket_session_timeout_s: float = field(
        default=RESPONDER_HALF_OPEN_TIMEOUT_S, metadata=_bounds()
    )
    """Seconds an accepted WebSocket connection has, from its HTTP upgrade, to carry an
    established session; otherwise it is closed (1008, ``closed_handshake_timeout``). The default
    is the responder's half-open lifetime (15 s). At least ``websocket_handshake_timeout_s``."""

    websocket_idle_timeout_s: float = field(default=30.0, metadata=_bounds())
    """Seconds a WebSocket connection (accepted or opened by this node) may carry no session and
    no handshake before it is closed (1000, ``closed_idle``). A connection whose session lives is
    never idle."""

    websocket_max_pending: int = field(default=256, metadata=_bounds(0, 1 << 20))
    """Accepted WebSocket connections without an established session (from the TCP accept on)
    that the node holds at once; beyond it new connections are refused (HTTP 503, counted as
    ``refused_connections``). Lowered at start to fit half the process's file-descriptor limit."""

    websocket_max_pending_per_source: int = field(default=8, metadata=_bounds(0, 1 << 20))
    """The share of ``websocket_max_pending`` one remote host may hold; beyond it that host's new
    connections are refused (HTTP 503). Behind a reverse proxy every connection comes from the
    proxy: raise it to ``websocket_max_pending`` there (docs/deployment.md)."""

    websocket_send_queue_bytes: int = field(
        default=16 * WEBSOCKET_MAX_RECORD_SIZE, metadata=_bounds(256, 1 << 34, exclusive=False)
    )
    """Bytes of records one WebSocket connection queues for its peer (1 MiB: 16 maximum records).
    WebSocket is reliable (protocol §14.8): a session starts a record of stream data only while
    the queue has room for a whole one, and sends again when it drains. A handshake packet beyond
    it is dropped and counted in ``send_dropped``, a record only beyond twice it. Application
    senders wait from half of it on. At least ``websocket_max_record_size``."""

    def _check(self) -> None:
        super()._check()
        owner = type(self).__name__
        if self.websocket_session_timeout_s < self.websocket_handshake_timeout_s:
            raise ConfigError(
                f"{owner}.websocket_session_timeout_s must be at least the handshake timeout"
            )
        if self.websocket_max_pending_per_source > self.websocket_max_pending:
            raise ConfigError(
                f"{owner}.websocket_max_pending_per_source cannot exceed websocket_max_pending"
            )
        if self.websocket_send_queue_bytes < self.websocket_max_record_size:
            raise ConfigError(
                f"{owner}.websocket_send_queue_bytes must hold one record: at least "
                f"websocket_max_record_size ({self.websocket_max_record_size})"
            )


@dataclass(frozen=True, kw_only=True)
class NodeConfig(SessionConfig, EndpointConfig, TransportConfig):
    """Settings of one node: every field of :class:`SessionConfig`, :class:`EndpointConfig` and
    :class:`TransportConfig`, as keyword arguments. Every field has a safe default; invalid
    values raise :class:`~seigr_stt.exceptions.ConfigError` naming the field."""
