"""The relay, sans-I/O: registration, the forwarding table, rate limits, memory bounds (§17).

The relay forwards already-sealed STT packets between nodes it knows by node id. It holds no
session key and no shared seed: it cannot read what it forwards, and whatever it forges,
alters or replays is dropped by the receiving session's AEAD and replay window (§5.3). What it
checks is that a node registering under a node id holds that id's static private key (§17.3).

The adapter's contract, as for the node's endpoint:

1. feed every received packet to :meth:`RelayCore.receive` with the address it came from (any
   hashable: ``(host, port)`` for UDP, a connection object for WebSocket) and the
   :class:`~seigr_stt.core.link.Link` of its transport;
2. after every entry call :meth:`RelayCore.datagrams_to_send` and send each ``(packet, addr)``;
3. re-arm one timer at :meth:`RelayCore.get_timer` and call :meth:`RelayCore.handle_timer` then;
4. call :meth:`RelayCore.forget_address` when a connection closes.

Nothing here raises for anything a packet contains: a packet the relay does not forward is
dropped and counted in :attr:`RelayCore.drops` by :class:`RelayDrop`. Memory is bounded: at
most ``max_registrations`` registrations (``max_registrations_per_source`` per source host),
one token bucket per registration, and a per-source table of ``max_sources`` buckets. Nothing
is kept for a HELLO: the CHALLENGE's cookie is a MAC of the source, checked when the REGISTER
comes back.
"""

from __future__ import annotations

import hmac
from collections import Counter
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from enum import StrEnum

from seigr_stt.constants import (
    LABEL_RELAY_COOKIE,
    RELAY_COOKIE_LIFETIME_S,
    RELAY_FORWARD_HEADER_SIZE,
    RELAY_MAX_RECORD_SIZE,
    RELAY_PROTOCOL_VERSION,
    RELAY_REGISTRATION_LIFETIME_S,
    RELAY_SWEEP_INTERVAL_S,
    RelayPacketType,
    RelayRefusal,
)
from seigr_stt.core import crypto
from seigr_stt.core.identity import node_id_from_static
from seigr_stt.core.link import Link, TransportKind
from seigr_stt.core.ratelimit import TokenBuckets
from seigr_stt.relay.wire import (
    Challenge,
    Hello,
    Refused,
    Register,
    Registered,
    RelayWireError,
    proof_key,
    register_proof,
    registered_proof,
    unreachable_packet,
)

__all__ = ["Registration", "RelayConfig", "RelayCore", "RelayDrop"]

Rng = Callable[[int], bytes]


class RelayDrop(StrEnum):
    """Every reason the relay drops a packet (§17.5)."""

    SHORT = "short"  # shorter than a version and a type
    VERSION = "version"  # another protocol version
    TYPE = "type"  # not a packet a node sends to a relay
    MALFORMED = "malformed"  # the type's codec refused it
    RATE_LIMITED = "rate_limited"  # the source's control bucket is empty (HELLO, REGISTER)
    STALE_COOKIE = "stale_cookie"  # a REGISTER whose cookie is not ours, or too old
    BAD_KEY = "bad_key"  # a REGISTER with a low-order static key
    BAD_PROOF = "bad_proof"  # a REGISTER whose proof of the static key does not verify
    RELAY_FULL = "relay_full"  # a REGISTER while max_registrations are held
    SOURCE_LIMIT = "source_limit"  # a REGISTER beyond max_registrations_per_source
    UNREGISTERED = "unregistered"  # a SEND from an address with no registration
    UNKNOWN_DESTINATION = "unknown_destination"  # a SEND to a node id not registered here
    TOO_BIG = "too_big"  # a SEND above max_record_size, or above what the destination carries
    FORWARD_RATE = "forward_rate"  # the sender's registration exceeded its byte rate


@dataclass(frozen=True, slots=True)
class RelayConfig:
    """The relay's limits. Every field is a bound on memory or on what one party may cost."""

    max_registrations: int = 65536
    """Registrations held at once; a REGISTER beyond it is refused (``relay_full``)."""
    max_registrations_per_source: int = 64
    """Registrations one source host may hold (a NAT with many nodes behind it counts once)."""
    max_sources: int = 65536
    """Source hosts whose control bucket is remembered (LRU)."""
    control_rate: float = 20.0
    """HELLO and REGISTER packets a second per source host."""
    control_burst: int = 40
    """The burst of ``control_rate``."""
    forward_rate_bytes: float = 64 * 1024 * 1024
    """Bytes a second one registration may send through the relay."""
    forward_burst_bytes: int = 8 * 1024 * 1024
    """The burst of ``forward_rate_bytes``."""
    max_record_size: int = RELAY_MAX_RECORD_SIZE
    """The largest STT packet forwarded (announced in REGISTERED)."""
    registration_lifetime_s: int = RELAY_REGISTRATION_LIFETIME_S
    """How long a registration lives unless renewed (announced in REGISTERED)."""

    def __post_init__(self) -> None:
        for name in ("max_registrations", "max_registrations_per_source", "max_sources"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"RelayConfig.{name} must be an int >= 1, not {value!r}")
        for name in ("control_rate", "forward_rate_bytes"):
            if not getattr(self, name) > 0:
                raise ValueError(f"RelayConfig.{name} must be > 0")
        if self.control_burst < 1 or self.forward_burst_bytes < self.max_record_size:
            raise ValueError("RelayConfig bursts must hold at least one packet")
        if not 256 <= self.max_record_size <= 65535:
            raise ValueError("RelayConfig.max_record_size must be within 256..65535")
        if not 10 <= self.registration_lifetime_s <= 65535:
            raise ValueError("RelayConfig.registration_lifetime_s must be within 10..65535")


class Registration:
    """One node registered at the relay: where it is, until when, and its byte bucket."""

    __slots__ = (
        "_stamp",
        "_tokens",
        "addr",
        "bytes_forwarded",
        "expires_at",
        "link",
        "node_id",
        "source",
    )

    def __init__(
        self, node_id: bytes, addr: Hashable, link: Link, source: Hashable, now: float, burst: int
    ) -> None:
        self.node_id = node_id
        self.addr = addr
        self.link = link
        self.source = source
        self.expires_at = now
        self.bytes_forwarded = 0
        self._tokens = float(burst)
        self._stamp = now

    def __repr__(self) -> str:
        return f"Registration({self.node_id.hex()[:16]}…, {self.link.kind})"

    def spend(self, size: int, now: float, rate: float, burst: int) -> bool:
        """Take ``size`` bytes from the registration's bucket; False (nothing taken) if short."""
        stamp = max(now, self._stamp)
        tokens = min(float(burst), self._tokens + (stamp - self._stamp) * rate)
        self._stamp = stamp
        if tokens < size:
            self._tokens = tokens
            return False
        self._tokens = tokens - size
        return True


class RelayCore:
    """The relay's state; see the module docstring. ``static_private`` is the relay's X25519
    key (its public half goes out in every CHALLENGE; nodes need not know it in advance)."""

    def __init__(self, static_private: bytes, rng: Rng, config: RelayConfig | None = None) -> None:
        self.config = config or RelayConfig()
        self._static_private = static_private
        self.static_public = crypto.public_key(static_private)
        self._cookie_secret = crypto.kdf(rng(32), LABEL_RELAY_COOKIE)
        self._by_id: dict[bytes, Registration] = {}
        self._by_addr: dict[Hashable, Registration] = {}
        self._per_source: Counter[Hashable] = Counter()
        self._control = TokenBuckets(
            self.config.control_rate, self.config.control_burst, self.config.max_sources
        )
        self._out: list[tuple[bytes, Hashable]] = []
        self._sweep_at: float | None = None
        #: Packets dropped, by :class:`RelayDrop`.
        self.drops: Counter[str] = Counter()
        self.registrations_accepted = 0
        self.packets_forwarded = 0
        self.bytes_forwarded = 0

    def __repr__(self) -> str:
        return f"RelayCore(registrations={len(self._by_id)})"

    # -- reading ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._by_id)

    def registered_at(self, addr: Hashable) -> bool:
        """Whether a registration uses the address ``addr``."""
        return addr in self._by_addr

    def registration(self, node_id: bytes) -> Registration | None:
        """The registration of ``node_id``, or None."""
        return self._by_id.get(node_id)

    def registrations(self) -> Iterator[Registration]:
        """Every registration held now."""
        return iter(list(self._by_id.values()))

    @property
    def sources_tracked(self) -> int:
        """Source hosts in the control-bucket table (at most ``max_sources``)."""
        return len(self._control)

    # -- network -> relay ---------------------------------------------------------------------
    def receive(self, data: bytes, addr: Hashable, now: float, link: Link) -> None:
        """Process one packet from ``addr`` that came by ``link``; never raises for its
        contents. Then call :meth:`datagrams_to_send`."""
        if len(data) < 2:
            self.drops[RelayDrop.SHORT] += 1
            return
        if data[0] != RELAY_PROTOCOL_VERSION:
            self.drops[RelayDrop.VERSION] += 1
            return
        kind = data[1]
        if kind == RelayPacketType.SEND:
            self._forward(data, addr, now)
        elif kind == RelayPacketType.HELLO or kind == RelayPacketType.REGISTER:
            if not self._control.take(link.source_of(addr), now):
                self.drops[RelayDrop.RATE_LIMITED] += 1
            elif kind == RelayPacketType.HELLO:
                self._hello(data, addr, now, link)
            else:
                self._register(data, addr, now, link)
        else:
            self.drops[RelayDrop.TYPE] += 1

    def _cookie(self, link: Link, addr: Hashable, nonce: bytes, issued: int) -> bytes:
        return crypto.mac(
            self._cookie_secret, link.cookie_input(addr) + nonce + issued.to_bytes(4, "big")
        )

    def _hello(self, data: bytes, addr: Hashable, now: float, link: Link) -> None:
        try:
            hello = Hello.parse(data)
        except RelayWireError:
            self.drops[RelayDrop.MALFORMED] += 1
            return
        issued = int(now) & 0xFFFFFFFF
        cookie = self._cookie(link, addr, hello.nonce, issued)
        challenge = Challenge(self.static_public, hello.nonce, issued, cookie)
        self._out.append((challenge.serialize(), addr))

    def _refuse(self, reason: RelayDrop, code: RelayRefusal, nonce: bytes, addr: Hashable) -> None:
        self.drops[reason] += 1
        self._out.append((Refused(code, nonce).serialize(), addr))

    def _register(self, data: bytes, addr: Hashable, now: float, link: Link) -> None:
        try:
            register = Register.parse(data)
        except RelayWireError:
            self.drops[RelayDrop.MALFORMED] += 1
            return
        # Cheapest checks first: the cookie (a MAC) before the DH (§17.3).
        age = (int(now) - register.issued) & 0xFFFFFFFF
        expected = self._cookie(link, addr, register.nonce, register.issued)
        if age > RELAY_COOKIE_LIFETIME_S or not hmac.compare_digest(expected, register.cookie):
            self._refuse(RelayDrop.STALE_COOKIE, RelayRefusal.STALE_COOKIE, register.nonce, addr)
            return
        try:
            key = proof_key(self._static_private, register.node_static)
        except RelayWireError:
            self._refuse(RelayDrop.BAD_KEY, RelayRefusal.BAD_PROOF, register.nonce, addr)
            return
        proof = register_proof(key, self.static_public, register)
        if not hmac.compare_digest(proof, register.proof):
            self._refuse(RelayDrop.BAD_PROOF, RelayRefusal.BAD_PROOF, register.nonce, addr)
            return
        # Authenticated: only now does any state change.
        node_id = node_id_from_static(register.node_static)
        source = link.source_of(addr)
        current = self._by_id.get(node_id)
        same = current is not None and current.addr == addr
        if not same:
            config = self.config
            if self._per_source[source] >= config.max_registrations_per_source:
                code = RelayRefusal.SOURCE_LIMIT
                self._refuse(RelayDrop.SOURCE_LIMIT, code, register.nonce, addr)
                return
            if current is None and len(self._by_id) >= config.max_registrations:
                self._refuse(RelayDrop.RELAY_FULL, RelayRefusal.RELAY_FULL, register.nonce, addr)
                return
            # The node moved (or re-registered over another transport): last proof wins, and
            # an address carries one node id.
            if current is not None:
                self._remove(current)
            previous = self._by_addr.get(addr)
            if previous is not None:
                self._remove(previous)
            current = Registration(node_id, addr, link, source, now, config.forward_burst_bytes)
            self._by_id[node_id] = current
            self._by_addr[addr] = current
            self._per_source[source] += 1
            self.registrations_accepted += 1
        assert current is not None
        current.expires_at = now + self.config.registration_lifetime_s
        if self._sweep_at is None:
            self._sweep_at = now + RELAY_SWEEP_INTERVAL_S
        observed = addr if link.kind == TransportKind.UDP and isinstance(addr, tuple) else None
        max_record = min(self.config.max_record_size, _carried(link) - RELAY_FORWARD_HEADER_SIZE)
        registered = Registered(
            self.config.registration_lifetime_s, max_record, register.nonce, observed
        )
        proof = registered_proof(key, registered)
        self._out.append((Registered(*_fields(registered), proof).serialize(), addr))

    def _forward(self, data: bytes, addr: Hashable, now: float) -> None:
        sender = self._by_addr.get(addr)
        if sender is None:
            self.drops[RelayDrop.UNREGISTERED] += 1
            return
        size = len(data) - RELAY_FORWARD_HEADER_SIZE
        if size <= 0:
            self.drops[RelayDrop.MALFORMED] += 1
            return
        target = self._by_id.get(bytes(data[2:RELAY_FORWARD_HEADER_SIZE]))
        if target is None:
            self.drops[RelayDrop.UNKNOWN_DESTINATION] += 1
            if self._control.take(sender.source, now):  # the hint spends the control budget
                hint = unreachable_packet(bytes(data[2:RELAY_FORWARD_HEADER_SIZE]))
                self._out.append((hint, addr))
            return
        if size > self.config.max_record_size or len(data) > _carried(target.link):
            self.drops[RelayDrop.TOO_BIG] += 1
            return
        config = self.config
        if not sender.spend(len(data), now, config.forward_rate_bytes, config.forward_burst_bytes):
            self.drops[RelayDrop.FORWARD_RATE] += 1
            return
        sender.bytes_forwarded += size
        self.packets_forwarded += 1
        self.bytes_forwarded += size
        # The DELIVER header names the sender: the one the relay checked (§17.4).
        self._out.append(
            (
                bytes((RELAY_PROTOCOL_VERSION, RelayPacketType.DELIVER))
                + sender.node_id
                + data[RELAY_FORWARD_HEADER_SIZE:],
                target.addr,
            )
        )

    # -- adapter calls --------------------------------------------------------------------------
    def forget_address(self, addr: Hashable) -> None:
        """The connection ``addr`` closed: its registration (if any) ends now."""
        registration = self._by_addr.get(addr)
        if registration is not None:
            self._remove(registration)

    def _remove(self, registration: Registration) -> None:
        if self._by_id.get(registration.node_id) is registration:
            del self._by_id[registration.node_id]
        if self._by_addr.get(registration.addr) is registration:
            del self._by_addr[registration.addr]
        self._per_source[registration.source] -= 1
        if self._per_source[registration.source] <= 0:
            del self._per_source[registration.source]

    # -- relay -> network -----------------------------------------------------------------------
    def datagrams_to_send(self) -> list[tuple[bytes, Hashable]]:
        """Every ``(packet, addr)`` due, in order; call after every entry."""
        out, self._out = self._out, []
        return out

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` is next due (the sweep of expired registrations)."""
        return self._sweep_at

    def handle_timer(self, now: float) -> list[Hashable]:
        """Forget the registrations expired at ``now``; returns their addresses (a WebSocket
        adapter may close those connections)."""
        if self._sweep_at is None or now < self._sweep_at:
            return []
        expired = [r for r in self._by_id.values() if r.expires_at <= now]
        for registration in expired:
            self._remove(registration)
        self._sweep_at = now + RELAY_SWEEP_INTERVAL_S if self._by_id else None
        return [r.addr for r in expired]


def _carried(link: Link) -> int:
    """The largest relay packet a link carries."""
    return link.max_record_size


def _fields(registered: Registered) -> tuple[int, int, bytes, tuple[str, int] | None]:
    return registered.lifetime_s, registered.max_record, registered.nonce, registered.observed
