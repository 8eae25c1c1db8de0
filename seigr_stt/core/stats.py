"""What the core counts: drop reasons, live counters, and frozen snapshots for readers (§11).

The core owns its counters and only it writes them; readers (the asyncio layer, the metrics
exporter, tests) take a frozen snapshot. Taking a snapshot changes nothing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from enum import StrEnum

__all__ = [
    "HANDSHAKE_SECONDS_BOUNDS",
    "DropReason",
    "EndpointCounters",
    "EndpointSnapshot",
    "Histogram",
    "SessionCounters",
    "SessionSnapshot",
]


class DropReason(StrEnum):
    """Every reason a packet is dropped (§11): the keys of ``node.get_stats()["drops"]``."""

    SHORT = "short"  # too short to be any packet
    VERSION = "version"  # unknown protocol version
    TYPE = "type"  # unknown packet type
    SIZE = "size"  # a handshake packet of an impossible size
    MALFORMED = "malformed"  # reserved bytes set, a record not padded to 16 bytes
    MAC1 = "mac1"  # handshake packet without a valid mac1 (not a member, or garbage)
    COOKIE_REQUIRED = "cookie_required"  # under load: INIT without a valid mac2 (cookie sent)
    HALF_OPEN_FULL = "half_open_full"  # too many handshakes in flight
    RATE_LIMITED = "rate_limited"  # INIT with a cookie beyond its source's token bucket
    REPLAYED_INIT = "replayed_init"  # a copy of the INIT of a recently completed handshake
    SESSION_LIMIT = "session_limit"  # max_sessions reached
    UNKNOWN_INDEX = "unknown_index"  # handshake reply for no handshake of ours
    HANDSHAKE_AUTH = "handshake_auth"  # Noise decryption failed or an invalid DH key
    HANDSHAKE_STATE = "handshake_state"  # a handshake packet out of order
    PAYLOAD = "payload"  # a handshake payload that does not decode or match its header
    REFLECTION = "reflection"  # our own handshake sent back to us
    STALE_TIMESTAMP = "stale_timestamp"  # a handshake no newer than the last from that peer
    PEER_REFUSED = "peer_refused"  # a member whose node id allowed_peers refuses
    SESSION_ID_IN_USE = "session_id_in_use"  # a RESPONSE naming the id of a live session
    DUPLICATE_FINAL = "duplicate_final"  # a retransmitted FINAL (answered with a record)
    COOKIE = "cookie"  # a cookie reply that does not verify
    UNKNOWN_SESSION = "unknown_session"  # a record for no session
    TOMBSTONE = "tombstone"  # a record for a recently closed session
    CLOSED_SESSION = "closed_session"  # a record for a session that is closing down
    WRONG_LINK = "wrong_link"  # a record of a session over another transport or connection
    EPOCH = "epoch"  # a record whose epoch selects no key
    REPLAY = "replay"  # a duplicate or too-old counter
    AUTH = "auth"  # a record that failed authentication


@dataclass(slots=True)
class SessionCounters:
    """Traffic counters of one session, written only by the core's session."""

    bytes_sent: int = 0
    bytes_received: int = 0
    packets_sent: int = 0
    packets_received: int = 0
    messages_sent: int = 0
    messages_received: int = 0
    datagrams_sent: int = 0
    datagrams_received: int = 0
    send_errors: int = 0
    receive_errors: int = 0
    replays_dropped: int = 0
    auth_failures: int = 0
    epoch_drops: int = 0
    packets_lost: int = 0
    retransmitted_bytes: int = 0
    streams_opened: int = 0


@dataclass(frozen=True, slots=True)
class SessionSnapshot:
    """One session's figures at one moment (times on the caller's ``now`` clock)."""

    session_id: bytes
    peer_node_id: bytes
    state: int
    initiator: bool
    key_version: int
    confirmed_key_version: int
    created_at: float
    last_sent_at: float | None
    last_received_at: float | None
    rtt_s: float | None
    cwnd: int
    bytes_in_flight: int
    send_buffered: int
    max_record_size: int
    close_code: int | None
    close_reason: str
    counters: SessionCounters = field(repr=False)


#: Upper bounds (seconds) of the buckets of the handshake-duration histograms.
HANDSHAKE_SECONDS_BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass(slots=True)
class Histogram:
    """Counts of observed values per bucket: ``counts[i]`` holds the values ``<= bounds[i]``
    and above the bound before (not cumulative); ``counts[-1]`` those above every bound."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0  # the sum of the observed values

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    @property
    def count(self) -> int:
        """How many values were observed."""
        return sum(self.counts)

    def observe(self, value: float) -> None:
        """Count ``value``."""
        index = 0
        for bound in self.bounds:
            if value <= bound:
                break
            index += 1
        self.counts[index] += 1
        self.total += value

    def copy(self) -> Histogram:
        """An independent copy (later observations do not change it)."""
        return Histogram(self.bounds, list(self.counts), self.total)


def _handshake_histogram() -> Histogram:
    return Histogram(HANDSHAKE_SECONDS_BOUNDS)


@dataclass(slots=True)
class EndpointCounters:
    """Node-wide counters of the endpoint; ``drops`` counts every :class:`DropReason`."""

    drops: Counter[str] = field(default_factory=Counter)  # keyed by DropReason (a str)
    sessions_created: int = 0
    sessions_closed: int = 0
    handshakes_started: int = 0  # as initiator (connect)
    handshakes_accepted: int = 0  # as responder: an INIT answered with a RESPONSE
    handshakes_failed: int = 0
    # INITs of another protocol version with a valid mac1 (a member speaking, e.g., 1.0),
    # each answered with a VERSIONS packet (§19); their packets also count as `version` drops.
    version_mismatches: int = 0
    handshake_retransmits: int = 0  # INITs sent again for want of an answer
    # Completed handshakes, retransmissions included: first INIT sent -> RESPONSE received
    # (initiator), first RESPONSE sent -> FINAL received (responder), in seconds.
    initiator_handshake_s: Histogram = field(default_factory=_handshake_histogram)
    responder_handshake_s: Histogram = field(default_factory=_handshake_histogram)
    init_retransmits_answered: int = 0
    packets_received: int = 0
    packets_sent: int = 0
    bytes_received: int = 0
    bytes_sent: int = 0


@dataclass(frozen=True, slots=True)
class EndpointSnapshot:
    """The endpoint's figures at one moment. ``counters`` is a copy (later packets do not change
    it) whose ``drops`` holds every :class:`DropReason`, zero or not."""

    sessions: int
    handshakes_in_flight: int
    tombstones: int
    counters: EndpointCounters

    @property
    def drops_total(self) -> int:
        """Every packet dropped, whatever the reason."""
        return sum(self.counters.drops.values())

    @classmethod
    def of(
        cls,
        counters: EndpointCounters,
        *,
        sessions: int,
        handshakes_in_flight: int,
        tombstones: int,
    ) -> EndpointSnapshot:
        """Freeze ``counters`` with the table sizes."""
        drops: Counter[str] = Counter({reason: counters.drops[reason] for reason in DropReason})
        drops.update({k: v for k, v in counters.drops.items() if k not in drops})
        copy = replace(
            counters,
            drops=drops,
            initiator_handshake_s=counters.initiator_handshake_s.copy(),
            responder_handshake_s=counters.responder_handshake_s.copy(),
        )
        return cls(sessions, handshakes_in_flight, tombstones, copy)
