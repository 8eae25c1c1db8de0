"""Handshakes in flight: admission, retransmission and the table of pending ones (§4, §8, §10).

A :class:`HandshakeTable` holds every handshake of an endpoint that has not produced a confirmed
session yet:

* *initiating*: we sent INIT and wait for RESPONSE; INIT is retransmitted (1 s, doubling up to
  5 s, with jitter) until the caller's timeout;
* *half-open*: we answered a peer's INIT with RESPONSE and wait for FINAL; a retransmitted INIT
  gets the same RESPONSE again;
* *confirming*: we sent FINAL and have a session, but the responder's first record has not
  arrived to confirm the keys; FINAL is retransmitted on the INIT schedule without jitter.

Admission of an INIT goes from cheap to expensive (§10): header and mac1 (a keyed hash), the
replay cache of completed handshakes, reflection and the half-open limit, then the budget: an
INIT with a valid cookie (mac2) has proven its source and spends a token of that source's
bucket; one without spends a token of the node-wide bucket of unproven INITs, and while that
bucket is empty (or the half-open table is loaded) it gets a cookie reply instead. A spoofed
source address can therefore never spend an honest host's tokens. Then the session limit, and
only then Diffie-Hellman. A retransmitted INIT (our RESPONSE was lost) passes the same budget
before it gets the stored RESPONSE again. Deadlines live in one
:class:`~seigr_stt.core.timers.DeadlineHeap`, so finding the next one is O(log n).
"""

from __future__ import annotations

import hmac
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field

from seigr_stt.config import EndpointConfig
from seigr_stt.constants import (
    COOKIE_REPLY_SIZE,
    HANDSHAKE_ATTEMPT_MAX_S,
    HANDSHAKE_INIT_MIN_SIZE,
    HANDSHAKE_MESSAGE_MAX_SIZE,
    HANDSHAKE_RATE_SOURCES_MAX,
    HANDSHAKE_RETRY_INITIAL_S,
    HANDSHAKE_RETRY_JITTER_S,
    HANDSHAKE_RETRY_MAX_S,
    INDEX_BYTES,
    INIT_REPLAY_CACHE_MAX,
    INIT_REPLAY_WINDOW_S,
    LEGACY_PROTOCOL_VERSIONS,
    MAC_BYTES,
    PACKET_HANDSHAKE_INIT,
    PEER_TIMESTAMP_TABLE_MAX,
    PROTOCOL_VERSION,
    PROTOCOL_VERSION_NAME,
    RESPONDER_HALF_OPEN_TIMEOUT_S,
    VERSION_NEGOTIATION,
    VERSIONS_MAX,
    CloseCode,
)
from seigr_stt.core import crypto
from seigr_stt.core.cookie import CookieJar, check_mac1, mac1_of, open_cookie_reply
from seigr_stt.core.events import Event, HandshakeAborted
from seigr_stt.core.handshake import (
    HandshakeRefused,
    HandshakeResult,
    InitiatorHandshake,
    ResponderHandshake,
    parse_handshake_header,
)
from seigr_stt.core.identity import NodeIdentity, SharedSecrets
from seigr_stt.core.link import Link
from seigr_stt.core.ratelimit import TokenBucket, TokenBuckets
from seigr_stt.core.stats import DropReason, EndpointCounters
from seigr_stt.core.timers import DeadlineHeap
from seigr_stt.exceptions import DecryptError, HandshakeFailed

_NO_MAC2 = bytes(MAC_BYTES)  # the mac2 of an INIT sent without a cookie

__all__ = ["CONNECTION_CLOSED", "Completed", "HandshakeTable"]

#: Why a handshake fails when its connection closes first. Over WebSocket a server closes a
#: connection that carries no valid handshake within a few seconds, so this is also what a wrong
#: shared seed (or a server not in server mode, or one that does not allow us) looks like there.
CONNECTION_CLOSED = (
    "connection closed before a valid answer (the peer may not share our shared_seed, "
    "not be in server mode, or not allow our node id)"
)

Rng = Callable[[int], bytes]
Send = Callable[[bytes, Hashable], None]


@dataclass(slots=True)
class _Initiating:
    handshake: InitiatorHandshake
    addr: Hashable
    link: Link
    deadline: float
    retry_at: float
    retry_s: float
    handle: int
    sent_at: float  # INIT first sent: with no retransmission, RESPONSE gives an RTT sample
    cookie: bytes | None = field(default=None, repr=False)
    retransmitted: bool = False
    expected_peer: bytes | None = None  # dialled by node id (§17): the responder must be it


@dataclass(slots=True)
class _HalfOpen:
    handshake: ResponderHandshake
    addr: Hashable
    link: Link
    expires_at: float
    init_mac1: bytes
    sent_at: float  # RESPONSE first sent: with no retransmission, FINAL gives an RTT sample
    retransmitted: bool = False


@dataclass(slots=True)
class _Confirming:
    final_packet: bytes = field(repr=False)
    addr: Hashable
    handle: int
    deadline: float
    retry_at: float
    retry_s: float = HANDSHAKE_RETRY_INITIAL_S


@dataclass(frozen=True, slots=True)
class Completed:
    """A handshake that produced keys: the endpoint makes a session of it."""

    result: HandshakeResult
    addr: Hashable
    link: Link
    handle: int | None = None  # initiator: what connect() returned
    final_digest: bytes | None = None  # responder: recognises a retransmitted FINAL
    final_packet: bytes | None = field(default=None, repr=False)  # initiator: FINAL as sent
    deadline: float | None = None  # initiator: when the attempt gives up
    rtt_sample_s: float | None = None  # the handshake's round trip, unless a packet was resent


class HandshakeTable:
    """Every handshake of one endpoint that has no confirmed session yet; see the module
    docstring. Refused packets are counted in ``counters.drops``; packets to send go through
    ``send``; :class:`HandshakeAborted` events go to ``events``."""

    def __init__(
        self,
        identity: NodeIdentity,
        secrets: SharedSecrets,
        config: EndpointConfig,
        rng: Rng,
        counters: EndpointCounters,
        send: Send,
        events: deque[Event],
        allowed: Callable[[bytes], bool] | None = None,
    ) -> None:
        self.identity = identity
        self.secrets = secrets
        self.config = config
        self.accept_incoming = True
        #: Which peers may hold a session with us, by node id (None: every member).
        self.allowed = allowed
        self._rng = rng
        self._counters = counters
        self._send = send
        self._events = events
        self._initiating: dict[bytes, _Initiating] = {}
        self._half_open: dict[bytes, _HalfOpen] = {}
        self._half_open_by_mac1: dict[bytes, bytes] = {}
        self._confirming: dict[bytes, _Confirming] = {}
        self._peer_timestamps: OrderedDict[bytes, int] = OrderedDict()
        self._deadlines: DeadlineHeap[tuple[str, bytes]] = DeadlineHeap()
        self.buckets = TokenBuckets(
            config.handshake_rate_per_source_per_s,
            config.handshake_burst_per_source,
            HANDSHAKE_RATE_SOURCES_MAX,
        )
        #: INITs without a cookie, from every source together.
        self.unproven = TokenBucket(
            config.handshake_rate_unproven_per_s, config.handshake_burst_unproven
        )
        #: mac1 of the INITs of completed handshakes -> until when a copy is refused.
        self._completed_inits: OrderedDict[bytes, float] = OrderedDict()
        self.cookies = CookieJar(secrets.cookie_key, rng)
        self._next_handle = 0

    def __len__(self) -> int:
        """Handshakes in flight: initiated and half-open."""
        return len(self._initiating) + len(self._half_open)

    @property
    def half_open(self) -> int:
        """Responder handshakes waiting for FINAL."""
        return len(self._half_open)

    def snapshot(self) -> dict[str, object]:
        """Every pending handshake's deadlines and the peer-timestamp table, as plain data:
        equal snapshots mean no handshake state changed (for tests and debugging)."""
        return {
            "initiating": {
                i: (p.cookie is not None, p.retry_at, p.deadline)
                for i, p in self._initiating.items()
            },
            "half_open": {i: h.expires_at for i, h in self._half_open.items()},
            "half_open_by_mac1": dict(self._half_open_by_mac1),
            "confirming": {s: (c.retry_at, c.deadline) for s, c in self._confirming.items()},
            "peer_timestamps": dict(self._peer_timestamps),
            "completed_inits": dict(self._completed_inits),
            "timer": self._deadlines.earliest(),
        }

    @property
    def initiating(self) -> int:
        """Handshakes we started that wait for a RESPONSE."""
        return len(self._initiating)

    @property
    def confirming_count(self) -> int:
        """Sessions we initiated whose keys the responder has not confirmed yet."""
        return len(self._confirming)

    def _drop(self, reason: DropReason) -> None:
        self._counters.drops[reason] += 1

    def _abort(self, handle: int, reason: str, *, timeout: bool, code: int | None = None) -> None:
        self._counters.handshakes_failed += 1
        self._events.append(HandshakeAborted(handle, reason, timeout=timeout, code=code))

    def _jitter(self) -> float:
        return int.from_bytes(self._rng(2), "big") / 0xFFFF * HANDSHAKE_RETRY_JITTER_S

    def new_index(self, in_use: Callable[[bytes], bool]) -> bytes:
        """A fresh random local index: not zero, not ``in_use`` (established), not pending."""
        while True:
            index = self._rng(INDEX_BYTES)
            if index == bytes(INDEX_BYTES) or in_use(index):
                continue
            if index in self._initiating or index in self._half_open:
                continue
            return index

    # -- initiating ---------------------------------------------------------------------------
    def connect(
        self,
        index: bytes,
        addr: Hashable,
        link: Link,
        now: float,
        *,
        timestamp_ns: int,
        timeout_s: float,
        capabilities: int,
        expected_peer: bytes | None = None,
    ) -> int:
        """Start a handshake with local ``index``; sends INIT and returns the handle that the
        session's events (or :class:`HandshakeAborted`) will carry. With ``expected_peer`` (a
        node id) a responder with another node id gets no FINAL and the handshake aborts."""
        handshake = InitiatorHandshake(
            self.identity,
            self.secrets,
            index,
            capabilities=capabilities,
            timestamp_ns=timestamp_ns,
            rng=self._rng,
        )
        self._next_handle += 1
        pending = _Initiating(
            handshake=handshake,
            addr=addr,
            link=link,
            deadline=now + min(timeout_s, HANDSHAKE_ATTEMPT_MAX_S),
            retry_at=now + HANDSHAKE_RETRY_INITIAL_S + self._jitter(),
            retry_s=HANDSHAKE_RETRY_INITIAL_S,
            handle=self._next_handle,
            sent_at=now,
            expected_peer=expected_peer,
        )
        self._initiating[index] = pending
        self._deadlines.set(("i", index), min(pending.retry_at, pending.deadline))
        self._counters.handshakes_started += 1
        self._send(handshake.init_packet(), addr)
        return self._next_handle

    def cancel(self, handle: int) -> None:
        """Forget the handshake of ``handle`` (the caller gave up on it)."""
        for index, pending in list(self._initiating.items()):
            if pending.handle == handle:
                self._forget_initiating(index)
        for session_id, confirming in list(self._confirming.items()):
            if confirming.handle == handle:
                self.confirmed(session_id)

    def receive_response(
        self,
        data: bytes,
        receiver: bytes,
        session_count: int,
        now: float,
        session_exists: Callable[[bytes], bool] | None = None,
    ) -> Completed | None:
        """A RESPONSE (mac1 checked) to our INIT ``receiver``: on success FINAL is sent and the
        keys returned; the caller registers the session and then calls :meth:`confirming`."""
        pending = self._initiating.get(receiver)
        if pending is None:
            self._drop(DropReason.UNKNOWN_INDEX)
            return None
        if session_exists is not None and session_exists(receiver + data[4:8]):
            # A member answered with the responder index of a live session's id (§4.4).
            self._drop(DropReason.SESSION_ID_IN_USE)
            return None
        if session_count >= self.config.max_sessions:
            self._drop(DropReason.SESSION_LIMIT)
            return None
        try:
            final = pending.handshake.receive_response(data)
        except HandshakeFailed as exc:
            self._drop(DropReason(exc.reason))
            return None
        except HandshakeRefused as refused:
            self._forget_initiating(receiver)
            reason = (
                "the server is full (it holds max_sessions sessions)"
                if refused.code == CloseCode.SERVER_FULL
                else f"the peer refused the session (code {refused.code})"
            )
            self._abort(pending.handle, reason, timeout=False, code=refused.code)
            return None
        result = pending.handshake.result
        assert result is not None
        self._forget_initiating(receiver)
        if self.allowed is not None and not self.allowed(result.peer_node_id):
            # The responder proved it holds the shared seed, but it is not a peer we accept:
            # no FINAL, and the caller learns why at once.
            self._drop(DropReason.PEER_REFUSED)
            reason = f"the peer {result.peer_node_id.hex()[:16]}… is not in allowed_peers"
            self._abort(pending.handle, reason, timeout=False)
            return None
        if pending.expected_peer is not None and result.peer_node_id != pending.expected_peer:
            self._drop(DropReason.PEER_REFUSED)
            reason = (
                f"answered by node {result.peer_node_id.hex()[:16]}…, not the node dialled "
                f"({pending.expected_peer.hex()[:16]}…)"
            )
            self._abort(pending.handle, reason, timeout=False)
            return None
        self._send(final, pending.addr)
        self._counters.initiator_handshake_s.observe(now - pending.sent_at)
        return Completed(
            result,
            pending.addr,
            pending.link,
            handle=pending.handle,
            final_packet=final,
            deadline=pending.deadline,
            rtt_sample_s=None if pending.retransmitted else now - pending.sent_at,
        )

    def confirming(self, completed: Completed, now: float) -> None:
        """Retransmit FINAL for the session of ``completed`` until :meth:`confirmed` (the
        responder's first record arrived) or the handshake's deadline."""
        assert completed.final_packet is not None
        assert completed.handle is not None
        assert completed.deadline is not None
        session_id = completed.result.session_id
        confirming = _Confirming(
            final_packet=completed.final_packet,
            addr=completed.addr,
            handle=completed.handle,
            deadline=completed.deadline,
            retry_at=now + HANDSHAKE_RETRY_INITIAL_S,
        )
        self._confirming[session_id] = confirming
        self._deadlines.set(("c", session_id), min(confirming.retry_at, confirming.deadline))

    def confirmed(self, session_id: bytes) -> None:
        """The session's keys are confirmed (or it closed): stop retransmitting FINAL."""
        if self._confirming.pop(session_id, None) is not None:
            self._deadlines.discard(("c", session_id))

    def receive_cookie_reply(self, data: bytes) -> None:
        """A cookie reply to one of our INITs: keep the cookie for the next retransmission."""
        if len(data) != COOKIE_REPLY_SIZE or data[2] or data[3]:
            self._drop(DropReason.SIZE)
            return
        pending = self._initiating.get(data[4:8])
        if pending is None:
            self._drop(DropReason.UNKNOWN_INDEX)
            return
        init_mac1 = mac1_of(pending.handshake.init_packet(pending.cookie))
        try:
            pending.cookie = open_cookie_reply(self.secrets.cookie_key, init_mac1, data)
        except DecryptError:
            self._drop(DropReason.COOKIE)

    # -- versions (§19) -------------------------------------------------------------------------
    def receive_other_version(self, data: bytes, addr: Hashable) -> None:
        """A packet (at least 2 bytes) whose byte 0 is not :data:`PROTOCOL_VERSION`.

        A VERSIONS packet answering one of our INITs fails that handshake at once when it does
        not list our version. An INIT of another version whose mac1 verifies (a member of
        another version: the INIT's size bounds, sender index and trailing mac1/mac2 are the
        same in every version) is answered with VERSIONS, no DH, no state. Everything else is a
        `version` drop."""
        self._drop(DropReason.VERSION)  # every such packet, whatever follows (§11)
        if data[0] == VERSION_NEGOTIATION:
            self._receive_versions(data)
            return
        if (
            data[1] != PACKET_HANDSHAKE_INIT
            or not HANDSHAKE_INIT_MIN_SIZE <= len(data) <= HANDSHAKE_MESSAGE_MAX_SIZE
            or not self.accept_incoming
            or not check_mac1(data, self.secrets.mac1_key)
        ):
            return
        self._counters.version_mismatches += 1
        self._send(versions_packet(data[4:8], self.secrets.mac1_key), addr)

    def _receive_versions(self, data: bytes) -> None:
        """VERSIONS: acted on only if well formed, its mac1 verifies and it names one of our
        pending INITs; otherwise nothing beyond the `version` drop already counted."""
        count = data[1]
        if not 1 <= count <= VERSIONS_MAX or len(data) != _VERSIONS_FIXED + count:
            return
        expected = crypto.mac(self.secrets.mac1_key, data[:-MAC_BYTES])
        if not hmac.compare_digest(expected, data[-MAC_BYTES:]):
            return
        pending = self._initiating.get(data[2:6])
        offered = data[6 : 6 + count]
        if pending is None or PROTOCOL_VERSION in offered:
            return  # not a refusal of our version: the handshake goes on
        del self._initiating[data[2:6]]
        self._deadlines.discard(("i", data[2:6]))
        self._counters.version_mismatches += 1
        names = ", ".join(_version_name(v) for v in offered)
        reason = (
            f"protocol version mismatch: the peer speaks {names}, "
            f"this node speaks {PROTOCOL_VERSION_NAME}"
        )
        self._abort(pending.handle, reason, timeout=False)

    # -- responding ---------------------------------------------------------------------------
    def check_packet(self, data: bytes) -> tuple[int, bytes, bytes] | None:
        """Header and mac1 of a handshake packet: ``(type, sender, receiver)``, or None (the
        drop is counted). The first check of every handshake packet: one keyed hash."""
        try:
            parsed = parse_handshake_header(data)
        except HandshakeFailed as exc:
            self._drop(DropReason(exc.reason))
            return None
        if not check_mac1(data, self.secrets.mac1_key):
            self._drop(DropReason.MAC1)
            return None
        return parsed

    def receive_init(
        self,
        data: bytes,
        sender: bytes,
        addr: Hashable,
        link: Link,
        now: float,
        *,
        session_count: int,
        new_index: Callable[[], bytes],
    ) -> None:
        """An INIT (mac1 checked) from ``addr``: admit it in order of cost and answer with a
        RESPONSE, a cookie reply, or nothing (the drop counted)."""
        if not self.accept_incoming:
            self._drop(DropReason.HANDSHAKE_STATE)
            return
        mac1 = mac1_of(data)
        known = self._half_open_by_mac1.get(mac1)
        if known is not None and known in self._half_open:
            # A retransmitted INIT: our RESPONSE was lost. Answer with the same bytes, within
            # the budget: a captured INIT replayed from spoofed sources must not draw unlimited
            # replies, nor spend the tokens of the host it names (§10).
            if not self._admit(data, sender, addr, link, now, retransmit=True):
                return
            half = self._half_open[known]
            half.retransmitted = True
            self._send(half.handshake.response_packet, addr)
            self._counters.init_retransmits_answered += 1
            return
        if self._is_replayed(mac1, now):
            self._drop(DropReason.REPLAYED_INIT)
            return
        ephemeral = data[8:40]
        if any(p.handshake.ephemeral_public == ephemeral for p in self._initiating.values()):
            self._drop(DropReason.REFLECTION)
            return
        if len(self._half_open) >= self.config.handshake_half_open_max:
            self._drop(DropReason.HALF_OPEN_FULL)
            return
        if not self._admit(data, sender, addr, link, now):
            return
        # At max_sessions the member still gets an answer, within the same budget: a RESPONSE
        # that refuses (§4.4), so its connect fails at once with "server full" instead of
        # timing out. It keeps no state here; the drop is counted as session_limit.
        full = session_count + len(self) >= self.config.max_sessions
        index = new_index()
        try:
            handshake = ResponderHandshake(
                self.identity,
                self.secrets,
                index,
                data,
                capabilities=self.config.capabilities,
                rng=self._rng,
                refuse=CloseCode.SERVER_FULL if full else None,
            )
        except HandshakeFailed as exc:
            self._drop(DropReason(exc.reason))
            return
        if full:
            self._drop(DropReason.SESSION_LIMIT)
            self._send(handshake.response_packet, addr)
            return
        half = _HalfOpen(
            handshake, addr, link, now + RESPONDER_HALF_OPEN_TIMEOUT_S, mac1, sent_at=now
        )
        self._half_open[index] = half
        self._half_open_by_mac1[mac1] = index
        self._counters.handshakes_accepted += 1
        self._deadlines.set(("h", index), half.expires_at)
        self._send(handshake.response_packet, addr)

    def _admit(
        self,
        data: bytes,
        sender: bytes,
        addr: Hashable,
        link: Link,
        now: float,
        *,
        retransmit: bool = False,
    ) -> bool:
        """Spend the budget of one INIT (§10), or count the drop (and send a cookie reply).

        A valid mac2 proves the source receives at its address: it spends that source's
        token. Without one the INIT spends a token of the node-wide unproven bucket, unless the
        node is under load (that bucket empty, or, for a new handshake, the half-open table at
        the threshold): then it gets a cookie reply and is dropped. No spoofed address can
        spend another's tokens. A ``retransmit`` adds no half-open entry, so only the bucket
        decides its load."""
        cookie_input = link.cookie_input(addr)
        if data[-MAC_BYTES:] != _NO_MAC2 and self.cookies.check(data, cookie_input, now):
            if self.buckets.take(link.source_of(addr), now):
                return True
            self._drop(DropReason.RATE_LIMITED)
            return False
        loaded = not retransmit and len(self._half_open) >= self.config.handshake_load_threshold
        if loaded or not self.unproven.take(now):
            self._drop(DropReason.COOKIE_REQUIRED)
            self._send(self.cookies.reply(data, sender, cookie_input, now), addr)
            return False
        return True

    def _is_replayed(self, mac1: bytes, now: float) -> bool:
        """Whether an INIT with ``mac1`` completed a handshake less than
        ``INIT_REPLAY_WINDOW_S`` ago: a copy replayed by anyone who saw it gets no DH and no
        answer (the FINAL's timestamp check would refuse it anyway, but only after a DH)."""
        cache = self._completed_inits
        while cache:
            oldest, until = next(iter(cache.items()))
            if until > now and len(cache) <= INIT_REPLAY_CACHE_MAX:
                break
            del cache[oldest]
        expires = cache.get(mac1)
        return expires is not None and expires > now

    def receive_final(self, data: bytes, receiver: bytes, now: float) -> Completed | None:
        """A FINAL (mac1 checked) for our half-open ``receiver``: the initiator's membership and
        identity check out, and its timestamp is newer than any before (a replayed INIT would
        not be). Returns the keys for a new session, or None (the drop counted)."""
        half = self._half_open.get(receiver)
        if half is None:
            self._drop(DropReason.UNKNOWN_INDEX)
            return None
        try:
            result = half.handshake.receive_final(data)
        except HandshakeFailed as exc:
            self._drop(DropReason(exc.reason))
            return None
        self._forget_half_open(receiver)
        self._completed_inits[half.init_mac1] = now + INIT_REPLAY_WINDOW_S
        self._completed_inits.move_to_end(half.init_mac1)
        if self.allowed is not None and not self.allowed(result.peer_node_id):
            self._drop(DropReason.PEER_REFUSED)
            return None
        last = self._peer_timestamps.get(result.peer_static)
        if last is not None and result.peer_timestamp_ns <= last:
            self._drop(DropReason.STALE_TIMESTAMP)
            return None
        self._peer_timestamps[result.peer_static] = result.peer_timestamp_ns
        self._peer_timestamps.move_to_end(result.peer_static)
        while len(self._peer_timestamps) > PEER_TIMESTAMP_TABLE_MAX:
            self._peer_timestamps.popitem(last=False)
        self._counters.responder_handshake_s.observe(now - half.sent_at)
        return Completed(
            result,
            half.addr,
            half.link,
            final_digest=half.handshake.final_digest,
            rtt_sample_s=None if half.retransmitted else now - half.sent_at,
        )

    # -- forgetting ---------------------------------------------------------------------------
    def _forget_initiating(self, index: bytes) -> None:
        if self._initiating.pop(index, None) is not None:
            self._deadlines.discard(("i", index))

    def _forget_half_open(self, index: bytes) -> None:
        half = self._half_open.pop(index, None)
        if half is None:
            return
        self._deadlines.discard(("h", index))
        if self._half_open_by_mac1.get(half.init_mac1) == index:
            del self._half_open_by_mac1[half.init_mac1]

    def bound_to(self, addr: Hashable) -> bool:
        """Whether a handshake in flight uses ``addr``."""
        return any(
            entry.addr == addr
            for table in (self._initiating, self._half_open, self._confirming)
            for entry in table.values()
        )

    def forget_address(self, addr: Hashable) -> None:
        """The transport to ``addr`` closed: every handshake with it fails."""
        for index, pending in list(self._initiating.items()):
            if pending.addr == addr:
                self._forget_initiating(index)
                self._abort(pending.handle, CONNECTION_CLOSED, timeout=False)
        for index, half in list(self._half_open.items()):
            if half.addr == addr:
                self._forget_half_open(index)

    # -- timers -------------------------------------------------------------------------------
    def get_timer(self) -> float | None:
        """The earliest retransmission or expiry, or None."""
        return self._deadlines.earliest()

    def handle_timer(self, now: float) -> Iterator[tuple[bytes, str]]:
        """Retransmit what is due and expire what is over. Yields ``(session_id, reason)`` for
        each session whose keys were never confirmed: the caller aborts it (its
        :class:`HandshakeAborted` event, ``timeout=True``, is already queued)."""
        for kind, key in list(self._deadlines.pop_due(now)):
            if kind == "i":
                pending = self._initiating[key]
                if now >= pending.deadline:
                    del self._initiating[key]
                    self._abort(pending.handle, "no valid answer", timeout=True)
                    continue
                self._send(pending.handshake.init_packet(pending.cookie), pending.addr)
                self._counters.handshake_retransmits += 1
                pending.retransmitted = True
                pending.retry_s = min(pending.retry_s * 2, HANDSHAKE_RETRY_MAX_S)
                pending.retry_at = now + pending.retry_s + self._jitter()
                self._deadlines.set(("i", key), min(pending.retry_at, pending.deadline))
            elif kind == "h":
                self._forget_half_open(key)
            else:
                confirming = self._confirming[key]
                if now >= confirming.deadline:
                    del self._confirming[key]
                    reason = "no confirmation from the responder"
                    self._abort(confirming.handle, reason, timeout=True)
                    yield key, reason
                    continue
                self._send(confirming.final_packet, confirming.addr)
                confirming.retry_s = min(confirming.retry_s * 2, HANDSHAKE_RETRY_MAX_S)
                confirming.retry_at = now + confirming.retry_s
                self._deadlines.set(("c", key), min(confirming.retry_at, confirming.deadline))


_VERSIONS_FIXED = 6 + MAC_BYTES  # marker, count, receiver index, mac1


def _version_name(code: int) -> str:
    if code == PROTOCOL_VERSION:
        return PROTOCOL_VERSION_NAME
    return LEGACY_PROTOCOL_VERSIONS.get(code, f"version code {code}")


def versions_packet(receiver: bytes, mac1_key: bytes, versions: bytes | None = None) -> bytes:
    """A VERSIONS packet (§19) to the INIT whose sender index is ``receiver``: byte 0 =
    :data:`VERSION_NEGOTIATION`, the number of versions, the index, the versions this node speaks
    (by default only :data:`PROTOCOL_VERSION`), and mac1 over all of that."""
    listed = bytes([PROTOCOL_VERSION]) if versions is None else versions
    body = bytes([VERSION_NEGOTIATION, len(listed)]) + receiver + listed
    return body + crypto.mac(mac1_key, body)
