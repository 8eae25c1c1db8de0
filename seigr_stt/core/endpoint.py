"""The node's protocol endpoint, sans-I/O: one per node, serving every transport (§3, §10).

An address is opaque here (any hashable the adapter chooses: ``(host, port)`` for UDP, a
connection key for WebSocket). The adapter's contract:

1. feed every received packet to :meth:`receive_datagram` with the transport's record size;
2. make app calls (:meth:`connect`, :meth:`send_message`, :meth:`close`, …);
3. after *every* entry, call :meth:`datagrams_to_send` and send each ``(packet, addr)``, then
   :meth:`events_received` and act on the events, then re-arm one timer at :meth:`get_timer`;
4. when that timer fires, call :meth:`handle_timer` and go back to 3.

Unauthenticated input never raises and never changes a session: it is dropped and counted in
:attr:`drops` by reason. The only reply an unauthenticated packet can get is a cookie (§10).
"""

from __future__ import annotations

import heapq
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field

from seigr_stt.config import NodeConfig
from seigr_stt.constants import (
    CLOSE_NORMAL,
    COOKIE_BYTES,
    COOKIE_NONCE_BYTES,
    COOKIE_REPLY_SIZE,
    COOKIE_SECRET_LIFETIME_S,
    HANDSHAKE_ATTEMPT_MAX_S,
    HANDSHAKE_RATE_SOURCES_MAX,
    HANDSHAKE_RETRY_INITIAL_S,
    HANDSHAKE_RETRY_JITTER_S,
    HANDSHAKE_RETRY_MAX_S,
    INDEX_BYTES,
    PACKET_COOKIE_REPLY,
    PACKET_DATA,
    PACKET_HANDSHAKE_FINAL,
    PACKET_HANDSHAKE_INIT,
    PACKET_HANDSHAKE_RESPONSE,
    PEER_TIMESTAMP_TABLE_MAX,
    PROTOCOL_VERSION,
    RESPONDER_HALF_OPEN_TIMEOUT_S,
    STT_SESSION_STATE_CLOSED,
)
from seigr_stt.core import crypto
from seigr_stt.core.events import Event, HandshakeFailedEvent
from seigr_stt.core.handshake import (
    HandshakeFailed,
    InitiatorHandshake,
    ResponderHandshake,
    check_mac1,
    check_mac2,
    mac1_of,
    parse_handshake_header,
)
from seigr_stt.core.identity import NodeIdentity, SharedSecrets
from seigr_stt.core.record import RecordError, parse_header
from seigr_stt.core.session import Session
from seigr_stt.exceptions import ProtocolError, SessionNotFound

__all__ = ["DROP_REASONS", "Endpoint", "TokenBuckets"]

Rng = Callable[[int], bytes]

#: Every reason a packet can be dropped for; :attr:`Endpoint.drops` counts each (§11).
DROP_REASONS = (
    "short",  # too short to be any packet
    "version",  # unknown protocol version
    "type",  # unknown packet type
    "size",  # a handshake packet of an impossible size
    "malformed",  # reserved bytes set, a record not padded to 16 bytes
    "mac1",  # handshake packet without a valid mac1 (not a member, or garbage)
    "cookie_required",  # under load: INIT without a valid mac2, answered with a cookie
    "half_open_full",  # too many handshakes in flight
    "rate_limited",  # INIT beyond its source's token bucket (handshakes per second)
    "session_limit",  # max_sessions reached
    "unknown_index",  # handshake reply for no handshake of ours
    "handshake_auth",  # Noise decryption failed (wrong PSK, tampering) or invalid DH key
    "handshake_state",  # a handshake packet out of order
    "payload",  # a handshake payload that does not decode or match its header
    "reflection",  # our own handshake sent back to us
    "stale_timestamp",  # a handshake no newer than the last one accepted from that peer
    "duplicate_final",  # a retransmitted FINAL (answered with a confirmation record)
    "cookie",  # a cookie reply that does not verify
    "unknown_session",  # a record for no session
    "tombstone",  # a record for a recently closed session
    "closed_session",  # a record for a session that is closing down
    "epoch",  # a record whose epoch selects no key
    "replay",  # a duplicate or too-old counter
    "auth",  # a record that failed authentication
)


class TokenBuckets:
    """Per-source token buckets: ``rate`` tokens a second, at most ``burst`` held (§10).

    Sans-I/O like the rest of the core: time comes in as ``now``. The table keeps the
    ``max_sources`` most recently seen sources (LRU); a source forgotten comes back with a full
    bucket, so the table bounds memory, not the total rate of a sender with more sources than
    that. A source's bucket starts full.
    """

    __slots__ = ("_buckets", "burst", "max_sources", "rate")

    def __init__(self, rate: float, burst: int, max_sources: int) -> None:
        self.rate = rate
        self.burst = burst
        self.max_sources = max_sources
        self._buckets: OrderedDict[Hashable, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, source: Hashable, now: float) -> bool:
        """Spend one token of ``source``'s bucket; False (nothing spent) when it is empty."""
        entry = self._buckets.get(source)
        if entry is None:
            tokens, stamp = float(self.burst), now
            if len(self._buckets) >= self.max_sources:
                self._buckets.popitem(last=False)
        else:
            held, last = entry
            # A clock that steps back refills nothing (and keeps the later stamp).
            stamp = max(now, last)
            tokens = min(float(self.burst), held + (stamp - last) * self.rate)
            self._buckets.move_to_end(source)
        allowed = tokens >= 1.0
        self._buckets[source] = (tokens - 1.0 if allowed else tokens, stamp)
        return allowed


@dataclass(slots=True)
class _Initiating:
    handshake: InitiatorHandshake
    addr: Hashable
    max_record_size: int
    probe_max: int
    deadline: float
    retry_at: float
    retry_s: float
    handle: int
    cookie: bytes | None = field(default=None, repr=False)


@dataclass(slots=True)
class _HalfOpen:
    handshake: ResponderHandshake
    addr: Hashable
    max_record_size: int
    probe_max: int
    expires_at: float
    init_mac1: bytes


class Endpoint:
    """Handshakes, session table, tombstones and drop counters of one node."""

    def __init__(
        self,
        identity: NodeIdentity,
        secrets: SharedSecrets,
        config: NodeConfig,
        rng: Rng,
        *,
        accept_incoming: bool = True,
    ) -> None:
        self.identity = identity
        self.secrets = secrets
        self.config = config
        self.accept_incoming = accept_incoming
        self._rng = rng
        self.sessions: dict[bytes, Session] = {}
        self._by_local_index: dict[bytes, Session] = {}
        self._initiating: dict[bytes, _Initiating] = {}
        self._half_open: dict[bytes, _HalfOpen] = {}
        self._half_open_by_mac1: dict[bytes, bytes] = {}
        self._tombstones: OrderedDict[bytes, float] = OrderedDict()
        self._peer_timestamps: OrderedDict[bytes, int] = OrderedDict()
        self._handshake_buckets = TokenBuckets(
            config.handshake_rate_per_source_per_s,
            config.handshake_burst_per_source,
            HANDSHAKE_RATE_SOURCES_MAX,
        )
        self._cookie_secret = rng(32)
        self._cookie_secret_expires_at: float | None = None
        self._out: list[tuple[bytes, Hashable]] = []
        self._events: deque[Event] = deque()
        self._dirty: dict[bytes, Session] = {}
        self._heap: list[tuple[float, int, bytes]] = []
        self._scheduled: dict[bytes, float] = {}
        self._heap_seq = 0
        self._next_handle = 0
        self.drops: Counter[str] = Counter()
        self.sessions_created = 0
        self.sessions_closed = 0
        self.handshakes_started = 0
        self.init_retransmits_answered = 0
        self.handshakes_failed = 0
        self.packets_received = 0
        self.packets_sent = 0
        self.bytes_received = 0
        self.bytes_sent = 0

    # -- helpers ------------------------------------------------------------------------------
    def _new_index(self) -> bytes:
        while True:
            index = self._rng(INDEX_BYTES)
            if index == bytes(INDEX_BYTES):
                continue
            if (
                index in self._by_local_index
                or index in self._initiating
                or index in self._half_open
            ):
                continue
            return index

    def _jitter(self) -> float:
        return int.from_bytes(self._rng(2), "big") / 0xFFFF * HANDSHAKE_RETRY_JITTER_S

    def _drop(self, reason: str) -> None:
        self.drops[reason] += 1

    def _send(self, packet: bytes, addr: Hashable) -> None:
        self._out.append((packet, addr))

    def live_handshakes(self) -> int:
        """Handshakes in flight (initiated and half-open)."""
        return len(self._initiating) + len(self._half_open)

    def session(self, session_id: bytes) -> Session:
        """The live session with this id; raises :class:`SessionNotFound`."""
        session = self.sessions.get(session_id)
        if session is None:
            raise SessionNotFound(f"no live session {session_id.hex()}")
        return session

    # -- app -> core --------------------------------------------------------------------------
    def connect(
        self,
        addr: Hashable,
        now: float,
        *,
        timestamp_ns: int,
        max_record_size: int,
        timeout_s: float,
        probe_max: int = 0,
    ) -> int:
        """Start a handshake with ``addr``; returns a handle that the
        :class:`~seigr_stt.core.events.SessionEstablished` or
        :class:`~seigr_stt.core.events.HandshakeFailedEvent` event will carry.

        ``max_record_size`` is the largest packet every path of the transport carries;
        ``probe_max`` > that lets the session probe for larger records (§12.1, PMTU)."""
        if len(self.sessions) + self.live_handshakes() >= self.config.max_sessions:
            raise ProtocolError(f"max_sessions ({self.config.max_sessions}) reached")
        index = self._new_index()
        handshake = InitiatorHandshake(
            self.identity,
            self.secrets,
            index,
            capabilities=self.config.capabilities,
            timestamp_ns=timestamp_ns,
            rng=self._rng,
        )
        self._next_handle += 1
        retry_s = HANDSHAKE_RETRY_INITIAL_S
        self._initiating[index] = _Initiating(
            handshake=handshake,
            addr=addr,
            max_record_size=max_record_size,
            probe_max=probe_max,
            deadline=now + min(timeout_s, HANDSHAKE_ATTEMPT_MAX_S),
            retry_at=now + retry_s + self._jitter(),
            retry_s=retry_s,
            handle=self._next_handle,
        )
        self.handshakes_started += 1
        self._send(handshake.init_packet(), addr)
        return self._next_handle

    def cancel_connect(self, handle: int, now: float) -> None:
        """Forget an initiated handshake (the caller gave up on it)."""
        for index, pending in list(self._initiating.items()):
            if pending.handle == handle:
                del self._initiating[index]
        for session in list(self.sessions.values()):
            if session.handle == handle and session.state != STT_SESSION_STATE_CLOSED:
                session.close(CLOSE_NORMAL, "connect cancelled", now)
                self._dirty[session.session_id] = session

    def send_message(self, session_id: bytes, channel: int, data: bytes, now: float) -> None:
        """Queue a message; raises SessionNotFound, SessionClosedError or MessageTooLarge."""
        session = self.session(session_id)
        session.send_message(channel, data, now)
        self._dirty[session_id] = session

    def consume_message(self, session_id: bytes, channel: int, credit: int) -> None:
        """The application took a message whose :class:`MessageReceived` carried ``credit``:
        return that flow-control credit to the peer. Unknown sessions are ignored."""
        session = self.sessions.get(session_id)
        if session is not None:
            session.consume_message(channel, credit)
            self._dirty[session_id] = session

    def open_stream(self, session_id: bytes, now: float) -> int:
        """Open a bidirectional byte stream; returns its id (StreamError at the peer's limit)."""
        session = self.session(session_id)
        stream_id = session.open_stream(now)
        self._dirty[session_id] = session
        return stream_id

    def write_stream(
        self, session_id: bytes, stream_id: int, data: bytes, fin: bool, now: float
    ) -> None:
        """Append to a byte stream (and finish it when ``fin``)."""
        session = self.session(session_id)
        session.write_stream(stream_id, data, fin, now)
        self._dirty[session_id] = session

    def reset_stream(self, session_id: bytes, stream_id: int, code: int, now: float) -> None:
        """Abort a byte stream in both directions."""
        session = self.session(session_id)
        session.reset_stream(stream_id, code, now)
        self._dirty[session_id] = session

    def consume_stream(self, session_id: bytes, stream_id: int, n: int) -> None:
        """The application read ``n`` bytes of a byte stream: return the credit."""
        session = self.sessions.get(session_id)
        if session is not None:
            session.consume_stream(stream_id, n)
            self._dirty[session_id] = session

    def send_datagram(self, session_id: bytes, data: bytes, now: float) -> None:
        session = self.session(session_id)
        session.send_datagram(data, now)
        self._dirty[session_id] = session

    def ping(self, session_id: bytes, now: float) -> int:
        """Send a PING; returns the token a :class:`PongReceived` event will carry."""
        session = self.session(session_id)
        token = session.ping(now)
        self._dirty[session_id] = session
        return token

    def request_rotation(self, session_id: bytes, now: float) -> int:
        """Ask for a key rotation; returns the key version a KeyRotated event will confirm."""
        session = self.session(session_id)
        target = session.request_rotation(now)
        self._dirty[session_id] = session
        return target

    def close(
        self, session_id: bytes, code: int, reason: str, now: float, *, drain: bool = False
    ) -> None:
        """Start closing a session (no error if it is already closing); with ``drain``, data
        already written is delivered first (§9)."""
        session = self.session(session_id)
        session.close(code, reason, now, drain=drain)
        self._dirty[session_id] = session

    def abort(self, session_id: bytes, code: int, reason: str) -> None:
        """Close a session without sending anything (its transport is gone)."""
        session = self.session(session_id)
        session.abort(code, reason)
        self._dirty[session_id] = session

    def abort_address(self, addr: Hashable, code: int, reason: str) -> None:
        """Abort every session and forget every handshake bound to ``addr`` (a closed link)."""
        for session in list(self.sessions.values()):
            if session.addr == addr:
                self.abort(session.session_id, code, reason)
        for index, pending in list(self._initiating.items()):
            if pending.addr == addr:
                del self._initiating[index]
                self._events.append(
                    HandshakeFailedEvent(pending.handle, "connection closed", timeout=False)
                )
        for index, half in list(self._half_open.items()):
            if half.addr == addr:
                self._forget_half_open(index)

    # -- network -> core ----------------------------------------------------------------------
    def receive_datagram(
        self,
        data: bytes,
        addr: Hashable,
        now: float,
        max_record_size: int,
        probe_max: int = 0,
        *,
        source: Hashable | None = None,
    ) -> None:
        """Process one packet from ``addr``. Never raises for anything the packet contains.

        ``max_record_size`` and ``probe_max`` describe the transport it came by, as in
        :meth:`connect` (used if the packet starts a session). ``source`` is the key of the
        per-source handshake rate limit (§10): the adapter passes the sender's host, so that
        one host's many ports share one bucket; None uses ``addr``."""
        self.packets_received += 1
        self.bytes_received += len(data)
        if len(data) < 2:
            self._drop("short")
            return
        if data[0] != PROTOCOL_VERSION:
            self._drop("version")
            return
        ptype = data[1]
        if ptype == PACKET_DATA:
            self._receive_record(data, addr, now)
        elif ptype == PACKET_HANDSHAKE_INIT:
            self._receive_init(
                data, addr, now, max_record_size, probe_max, addr if source is None else source
            )
        elif ptype == PACKET_HANDSHAKE_RESPONSE:
            self._receive_response(data, addr, now)
        elif ptype == PACKET_HANDSHAKE_FINAL:
            self._receive_final(data, addr, now)
        elif ptype == PACKET_COOKIE_REPLY:
            self._receive_cookie_reply(data)
        else:
            self._drop("type")

    def _receive_record(self, data: bytes, addr: Hashable, now: float) -> None:
        try:
            header = parse_header(data)
        except RecordError:
            self._drop("malformed" if len(data) >= 20 else "short")
            return
        session = self.sessions.get(header.session_id)
        if session is None:
            self._drop("tombstone" if header.session_id in self._tombstones else "unknown_session")
            return
        reason = session.receive_record(data, header, addr, now)
        if reason is not None:
            self._drop(reason)
        self._dirty[session.session_id] = session

    def _check_handshake(self, data: bytes) -> tuple[int, bytes, bytes] | None:
        try:
            parsed = parse_handshake_header(data)
        except HandshakeFailed as exc:
            self._drop(exc.reason)
            return None
        if not check_mac1(data, self.secrets.mac1_key):
            self._drop("mac1")
            return None
        return parsed

    def _cookie_for(self, addr: Hashable, now: float) -> bytes:
        if self._cookie_secret_expires_at is None or now >= self._cookie_secret_expires_at:
            self._cookie_secret = self._rng(32)
            self._cookie_secret_expires_at = now + COOKIE_SECRET_LIFETIME_S
        return crypto.mac(self._cookie_secret, repr(addr).encode())

    def _receive_init(
        self,
        data: bytes,
        addr: Hashable,
        now: float,
        max_record_size: int,
        probe_max: int,
        source: Hashable,
    ) -> None:
        parsed = self._check_handshake(data)
        if parsed is None:
            return
        if not self.accept_incoming:
            self._drop("handshake_state")
            return
        mac1 = mac1_of(data)
        known = self._half_open_by_mac1.get(mac1)
        if known is not None and known in self._half_open:
            # A retransmitted INIT: our RESPONSE was lost. Answer with the same bytes, within
            # the source's handshake budget: a captured INIT replayed from spoofed sources must
            # not draw unlimited replies (§10).
            if not self._handshake_buckets.take(source, now):
                self._drop("rate_limited")
                return
            half = self._half_open[known]
            self._send(half.handshake.response_packet, addr)
            self.init_retransmits_answered += 1
            return
        if any(p.handshake.ephemeral_public == data[8:40] for p in self._initiating.values()):
            self._drop("reflection")
            return
        if len(self._half_open) >= self.config.handshake_half_open_max:
            self._drop("half_open_full")
            return
        if len(self._half_open) >= self.config.handshake_load_threshold and not check_mac2(
            data, self._cookie_for(addr, now)
        ):
            self._drop("cookie_required")
            self._send_cookie_reply(data, parsed[1], addr, now)
            return
        if not self._handshake_buckets.take(source, now):
            self._drop("rate_limited")
            return
        if len(self.sessions) + self.live_handshakes() >= self.config.max_sessions:
            self._drop("session_limit")
            return
        index = self._new_index()
        try:
            handshake = ResponderHandshake(
                self.identity,
                self.secrets,
                index,
                data,
                capabilities=self.config.capabilities,
                rng=self._rng,
            )
        except HandshakeFailed as exc:
            self._drop(exc.reason)
            return
        self._half_open[index] = _HalfOpen(
            handshake, addr, max_record_size, probe_max, now + RESPONDER_HALF_OPEN_TIMEOUT_S, mac1
        )
        self._half_open_by_mac1[mac1] = index
        self._send(handshake.response_packet, addr)

    def _send_cookie_reply(self, init: bytes, receiver: bytes, addr: Hashable, now: float) -> None:
        nonce = self._rng(COOKIE_NONCE_BYTES)
        sealed = crypto.xaead_encrypt(
            self.secrets.cookie_key, nonce, mac1_of(init), self._cookie_for(addr, now)
        )
        self._send(
            bytes([PROTOCOL_VERSION, PACKET_COOKIE_REPLY, 0, 0]) + receiver + nonce + sealed, addr
        )

    def _receive_cookie_reply(self, data: bytes) -> None:
        if len(data) != COOKIE_REPLY_SIZE or data[2] or data[3]:
            self._drop("size")
            return
        pending = self._initiating.get(data[4:8])
        if pending is None:
            self._drop("unknown_index")
            return
        nonce = data[8 : 8 + COOKIE_NONCE_BYTES]
        try:
            cookie = crypto.xaead_decrypt(
                self.secrets.cookie_key,
                nonce,
                mac1_of(pending.handshake.init_packet(pending.cookie)),
                data[8 + COOKIE_NONCE_BYTES :],
            )
        except crypto.DecryptError:
            self._drop("cookie")
            return
        if len(cookie) != COOKIE_BYTES:  # pragma: no cover - the AEAD fixed its length
            self._drop("cookie")
            return
        pending.cookie = cookie  # used by the next retransmission of INIT (§10)

    def _receive_response(self, data: bytes, addr: Hashable, now: float) -> None:
        parsed = self._check_handshake(data)
        if parsed is None:
            return
        pending = self._initiating.get(parsed[2])
        if pending is None:
            self._drop("unknown_index")
            return
        if len(self.sessions) >= self.config.max_sessions:
            self._drop("session_limit")
            return
        try:
            final = pending.handshake.receive_response(data)
        except HandshakeFailed as exc:
            self._drop(exc.reason)
            return
        result = pending.handshake.result
        assert result is not None
        del self._initiating[parsed[2]]
        session = Session(
            result,
            addr,
            now,
            config=self.config,
            max_record_size=pending.max_record_size,
            probe_max=pending.probe_max,
            handle=pending.handle,
            final_packet=final,
            handshake_deadline=pending.deadline,
        )
        self._register(session)
        self._send(final, addr)

    def _receive_final(self, data: bytes, addr: Hashable, now: float) -> None:
        parsed = self._check_handshake(data)
        if parsed is None:
            return
        _, sender, receiver = parsed
        established = self._by_local_index.get(receiver)
        if established is not None:
            if (
                not established.initiator
                and established.peer_index == sender
                and established.final_digest == crypto.mac(self.secrets.mac1_key, data)
            ):
                established.confirm_again()
                self._dirty[established.session_id] = established
                self._drop("duplicate_final")
            else:
                self._drop("handshake_state")
            return
        half = self._half_open.get(receiver)
        if half is None:
            self._drop("unknown_index")
            return
        try:
            result = half.handshake.receive_final(data)
        except HandshakeFailed as exc:
            self._drop(exc.reason)
            return
        self._forget_half_open(receiver)
        last = self._peer_timestamps.get(result.peer_static)
        if last is not None and result.peer_timestamp_ns <= last:
            self._drop("stale_timestamp")
            return
        self._peer_timestamps[result.peer_static] = result.peer_timestamp_ns
        self._peer_timestamps.move_to_end(result.peer_static)
        while len(self._peer_timestamps) > PEER_TIMESTAMP_TABLE_MAX:
            self._peer_timestamps.popitem(last=False)
        session = Session(
            result,
            addr,
            now,
            config=self.config,
            max_record_size=half.max_record_size,
            probe_max=half.probe_max,
        )
        session.final_digest = half.handshake.final_digest
        self._register(session)

    def _forget_half_open(self, index: bytes) -> None:
        half = self._half_open.pop(index, None)
        if half is not None and self._half_open_by_mac1.get(half.init_mac1) == index:
            del self._half_open_by_mac1[half.init_mac1]

    def _register(self, session: Session) -> None:
        self.sessions[session.session_id] = session
        self._by_local_index[session.local_index] = session
        self.sessions_created += 1
        self._dirty[session.session_id] = session

    # -- core -> network ----------------------------------------------------------------------
    def _collect(self, now: float) -> None:
        while self._dirty:
            dirty, self._dirty = self._dirty, {}
            for session in dirty.values():
                for packet in session.flush(now):
                    self._send(packet, session.addr)
                self._events.extend(session.events)
                session.events.clear()
                if session.state == STT_SESSION_STATE_CLOSED:
                    self._reap(session, now)
                else:
                    self._schedule(session)

    def _reap(self, session: Session, now: float) -> None:
        if self.sessions.pop(session.session_id, None) is None:
            return
        self._by_local_index.pop(session.local_index, None)
        self._scheduled.pop(session.session_id, None)
        self._tombstones[session.session_id] = now + self.config.tombstone_s
        self.sessions_closed += 1

    def _schedule(self, session: Session) -> None:
        deadline = session.get_timer()
        sid = session.session_id
        if deadline is None:
            self._scheduled.pop(sid, None)
            return
        if self._scheduled.get(sid) == deadline:
            return
        self._scheduled[sid] = deadline
        self._heap_seq += 1
        heapq.heappush(self._heap, (deadline, self._heap_seq, sid))
        if len(self._heap) > 4 * len(self._scheduled) + 64:
            self._heap = [(t, i, s) for (t, i, s) in self._heap if self._scheduled.get(s) == t]
            heapq.heapify(self._heap)

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Hashable]]:
        """Every ``(packet, addr)`` due now, in order. Call after every entry point."""
        self._collect(now)
        out, self._out = self._out, []
        self.packets_sent += len(out)
        self.bytes_sent += sum(len(p) for p, _ in out)
        return out

    def events_received(self) -> Iterator[Event]:
        """Pop the events produced so far (call after :meth:`datagrams_to_send`)."""
        while self._events:
            event = self._events.popleft()
            if isinstance(event, HandshakeFailedEvent):
                self.handshakes_failed += 1
            yield event

    # -- timers -------------------------------------------------------------------------------
    def get_timer(self) -> float | None:
        """The earliest deadline of the endpoint and all its sessions, or None."""
        while self._heap and self._scheduled.get(self._heap[0][2]) != self._heap[0][0]:
            heapq.heappop(self._heap)
        candidates: list[float] = []
        if self._heap:
            candidates.append(self._heap[0][0])
        for pending in self._initiating.values():
            candidates.append(min(pending.retry_at, pending.deadline))
        if self._half_open:
            candidates.append(min(h.expires_at for h in self._half_open.values()))
        if self._tombstones:
            candidates.append(next(iter(self._tombstones.values())))
        return min(candidates, default=None)

    def handle_timer(self, now: float) -> None:
        """Handle every deadline due at ``now``; then call :meth:`datagrams_to_send`."""
        for index, pending in list(self._initiating.items()):
            if now >= pending.deadline:
                del self._initiating[index]
                self._events.append(
                    HandshakeFailedEvent(pending.handle, "no valid answer", timeout=True)
                )
            elif now >= pending.retry_at:
                self._send(pending.handshake.init_packet(pending.cookie), pending.addr)
                pending.retry_s = min(pending.retry_s * 2, HANDSHAKE_RETRY_MAX_S)
                pending.retry_at = now + pending.retry_s + self._jitter()
        for index, half in list(self._half_open.items()):
            if now >= half.expires_at:
                self._forget_half_open(index)
        while self._tombstones:
            sid, expires_at = next(iter(self._tombstones.items()))
            if expires_at > now:
                break
            del self._tombstones[sid]
        while self._heap and self._heap[0][0] <= now:
            deadline, _, sid = heapq.heappop(self._heap)
            if self._scheduled.get(sid) != deadline:
                continue
            del self._scheduled[sid]
            session = self.sessions.get(sid)
            if session is not None:
                session.handle_timer(now)
                self._dirty[sid] = session
