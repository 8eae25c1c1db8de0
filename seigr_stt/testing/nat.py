"""NAT and firewall models (RFC 4787 terms): pure state machines, clock and rng given in.

Public through :mod:`seigr_stt.testing`, which re-exports every name of ``__all__``. Nothing
here reads a clock, draws randomness of its own or touches a socket: every call takes ``now``
(seconds, any monotonic origin) and the :class:`NAT` draws ports from the ``rng(n) -> bytes`` it
was given. The in-memory network (:meth:`seigr_stt.testing.Net.add_nat`) and the loopback box
(:class:`seigr_stt.testing.NATBox`) both drive these models.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field

__all__ = [
    "NAT",
    "Behavior",
    "Firewall",
    "FirewallStats",
    "NATConfig",
    "NATMapping",
    "NATStats",
    "PortAllocation",
]

Address = tuple[str, int]
#: A remote endpoint: ``(host, port)`` on real sockets; any hashable on the in-memory network
#: (a non-tuple is a host without ports: its "port" is 0).
Remote = Hashable


def _host(addr: Remote) -> Hashable:
    return addr[0] if isinstance(addr, tuple) and len(addr) == 2 else addr


def _port(addr: Remote) -> int:
    if isinstance(addr, tuple) and len(addr) == 2 and isinstance(addr[1], int):
        return addr[1]
    return 0


class Behavior(enum.Enum):
    """What a NAT's mapping or filtering depends on (RFC 4787 sections 4.1 and 5).

    * ``ENDPOINT_INDEPENDENT``: only the inside endpoint. As mapping: one public address per
      inside endpoint, whatever it talks to. As filtering: anyone may send to a mapping.
    * ``ADDRESS_DEPENDENT``: also the remote's host. As filtering: only hosts the inside endpoint
      sent to may answer (from any of their ports).
    * ``ADDRESS_AND_PORT_DEPENDENT``: also the remote's port. As mapping: a new public address
      per remote endpoint ("symmetric"). As filtering: only the exact endpoints sent to.
    """

    ENDPOINT_INDEPENDENT = "endpoint-independent"
    ADDRESS_DEPENDENT = "address-dependent"
    ADDRESS_AND_PORT_DEPENDENT = "address-and-port-dependent"


class PortAllocation(enum.Enum):
    """How a NAT picks the public port of a new mapping (RFC 4787 section 4.2).

    ``PRESERVE`` takes the inside port when it is free and falls back to a random one;
    ``RANDOM`` always draws from the NAT's rng.
    """

    PRESERVE = "preserve"
    RANDOM = "random"


@dataclass(frozen=True, slots=True)
class NATConfig:
    """How one NAT behaves. The class methods give the four classic kinds.

    ``mapping_timeout_s``: a mapping (and each remote's permission to answer through it) expires
    that long after the last outbound packet that used it; inbound packets refresh it too when
    ``inbound_refreshes``. ``hairpinning``: an inside endpoint may reach another inside endpoint
    through the NAT's public address (the packet then comes from the sender's mapping, and the
    NAT filters it as any inbound packet); without it such packets are dropped.
    ``port_range`` bounds the public ports, both ends included.
    """

    mapping: Behavior = Behavior.ENDPOINT_INDEPENDENT
    filtering: Behavior = Behavior.ENDPOINT_INDEPENDENT
    allocation: PortAllocation = PortAllocation.PRESERVE
    mapping_timeout_s: float = 120.0
    inbound_refreshes: bool = False
    hairpinning: bool = True
    port_range: tuple[int, int] = (1024, 65535)

    def __post_init__(self) -> None:
        if not isinstance(self.mapping, Behavior) or not isinstance(self.filtering, Behavior):
            raise TypeError("mapping and filtering must be Behavior values")
        if not isinstance(self.allocation, PortAllocation):
            raise TypeError("allocation must be a PortAllocation value")
        if not self.mapping_timeout_s > 0:
            raise ValueError("mapping_timeout_s must be positive")
        low, high = self.port_range
        if not 1 <= low <= high <= 65535:
            raise ValueError("port_range must be (low, high) with 1 <= low <= high <= 65535")

    @classmethod
    def full_cone(cls, **overrides: object) -> NATConfig:
        """Endpoint-independent mapping and filtering: anyone may send to a mapping."""
        return cls._make(Behavior.ENDPOINT_INDEPENDENT, Behavior.ENDPOINT_INDEPENDENT, overrides)

    @classmethod
    def restricted_cone(cls, **overrides: object) -> NATConfig:
        """Endpoint-independent mapping, address-dependent filtering."""
        return cls._make(Behavior.ENDPOINT_INDEPENDENT, Behavior.ADDRESS_DEPENDENT, overrides)

    @classmethod
    def port_restricted_cone(cls, **overrides: object) -> NATConfig:
        """Endpoint-independent mapping, address-and-port-dependent filtering."""
        return cls._make(
            Behavior.ENDPOINT_INDEPENDENT, Behavior.ADDRESS_AND_PORT_DEPENDENT, overrides
        )

    @classmethod
    def symmetric(cls, **overrides: object) -> NATConfig:
        """Address-and-port-dependent mapping and filtering, random ports: a new public port per
        remote endpoint, so the address a third party observed is useless to anyone else."""
        overrides.setdefault("allocation", PortAllocation.RANDOM)
        return cls._make(
            Behavior.ADDRESS_AND_PORT_DEPENDENT, Behavior.ADDRESS_AND_PORT_DEPENDENT, overrides
        )

    @classmethod
    def _make(
        cls, mapping: Behavior, filtering: Behavior, overrides: dict[str, object]
    ) -> NATConfig:
        return cls(mapping=mapping, filtering=filtering, **overrides)  # type: ignore[arg-type]


@dataclass(slots=True)
class NATStats:
    """What a :class:`NAT` did, counted per reason.

    ``dropped_no_mapping``: inbound to a public port with no live mapping (never opened, or
    expired); ``dropped_filtered``: the mapping exists but the filtering refused the sender;
    ``dropped_hairpin``: inside to the NAT's own public address without hairpinning;
    ``dropped_firewall``: the NAT's :class:`Firewall` refused the packet (either direction);
    ``dropped_no_port``: no free public port for a new mapping.
    """

    translated_out: int = 0
    translated_in: int = 0
    mappings_created: int = 0
    mappings_expired: int = 0
    dropped_no_mapping: int = 0
    dropped_filtered: int = 0
    dropped_hairpin: int = 0
    dropped_firewall: int = 0
    dropped_no_port: int = 0


@dataclass(slots=True)
class NATMapping:
    """One live mapping: ``inside`` appears outside as ``public``.

    ``permissions`` holds, for each remote key the filtering admits (a host, an endpoint, or
    None under endpoint-independent filtering), when the inside endpoint last sent to it.
    """

    inside: Hashable
    public: Address
    key: Hashable
    last_used: float
    permissions: dict[Hashable, float] = field(default_factory=dict)


class NAT:
    """A UDP NAT with one public IP address: translation state and nothing else.

    :meth:`outbound` translates a packet leaving the inside, :meth:`inbound` one arriving at a
    public address; both return the translated address, or None after counting the drop in
    :attr:`stats`. ``rng(n) -> bytes`` draws random ports (give a seeded one for reproducible
    runs). ``claim_port(port) -> bool`` (optional) is asked before a public port is used for a
    new mapping and may refuse it (the loopback box binds the socket there); ``release_port`` is
    told when an expired mapping's port is no longer used. ``firewall`` (optional) filters UDP in
    both directions by the remote's port before any translation.
    """

    def __init__(
        self,
        config: NATConfig,
        public_ip: str,
        rng: Callable[[int], bytes],
        *,
        firewall: Firewall | None = None,
        claim_port: Callable[[int], bool] | None = None,
        release_port: Callable[[int], None] | None = None,
    ) -> None:
        if not isinstance(config, NATConfig):
            raise TypeError(f"config must be a NATConfig, not {type(config).__name__}")
        self.config = config
        self.public_ip = public_ip
        self.firewall = firewall
        self.stats = NATStats()
        self._rng = rng
        self._claim = claim_port
        self._release = release_port
        self._by_key: dict[Hashable, NATMapping] = {}
        self._by_public: dict[int, NATMapping] = {}

    # -- translation --------------------------------------------------------------------------
    def outbound(self, inside: Hashable, remote: Remote, now: float) -> Address | None:
        """A packet from ``inside`` to ``remote`` leaves: return its public source address.

        Creates a mapping when none applies and refreshes the one used (and ``remote``'s
        permission to answer). None when the packet is dropped (firewall, hairpin, no port).
        """
        if self.firewall is not None and not self.firewall.allows("udp", remote):
            self.stats.dropped_firewall += 1
            return None
        self._expire(now)
        if not self.config.hairpinning and self.is_public(remote):
            self.stats.dropped_hairpin += 1
            return None
        key = self._mapping_key(inside, remote)
        mapping = self._by_key.get(key)
        if mapping is None:
            port = self._allocate(_port(inside))
            if port is None:
                self.stats.dropped_no_port += 1
                return None
            mapping = NATMapping(inside, (self.public_ip, port), key, now)
            self._by_key[key] = mapping
            self._by_public[port] = mapping
            self.stats.mappings_created += 1
        mapping.last_used = now
        mapping.permissions[self._permission_key(remote)] = now
        self.stats.translated_out += 1
        return mapping.public

    def inbound(self, remote: Remote, public: Address, now: float) -> Hashable | None:
        """A packet from ``remote`` arrives at ``public``: return the inside endpoint, or None.

        Filtering: the mapping of ``public`` must be live and the inside endpoint must have sent
        to ``remote`` (its host, its endpoint, or anyone, as the filtering says) within the
        mapping timeout."""
        if self.firewall is not None and not self.firewall.allows("udp", remote):
            self.stats.dropped_firewall += 1
            return None
        self._expire(now)
        mapping = self._by_public.get(public[1]) if public[0] == self.public_ip else None
        if mapping is None:
            self.stats.dropped_no_mapping += 1
            return None
        allowed_at = mapping.permissions.get(self._permission_key(remote))
        if allowed_at is None or now - allowed_at > self.config.mapping_timeout_s:
            self.stats.dropped_filtered += 1
            return None
        if self.config.inbound_refreshes:
            mapping.last_used = now
            mapping.permissions[self._permission_key(remote)] = now
        self.stats.translated_in += 1
        return mapping.inside

    # -- inspection ---------------------------------------------------------------------------
    def is_public(self, addr: Remote) -> bool:
        """Whether ``addr`` is one of this NAT's live public addresses."""
        return (
            isinstance(addr, tuple)
            and _host(addr) == self.public_ip
            and _port(addr) in self._by_public
        )

    def mappings(self, now: float) -> list[NATMapping]:
        """The live mappings at ``now`` (expired ones are removed first), oldest first."""
        self._expire(now)
        return list(self._by_key.values())

    def expire(self, now: float) -> int:
        """Remove the mappings idle for longer than the timeout; return how many."""
        return self._expire(now)

    # -- internals ----------------------------------------------------------------------------
    def _mapping_key(self, inside: Hashable, remote: Remote) -> Hashable:
        behavior = self.config.mapping
        if behavior is Behavior.ENDPOINT_INDEPENDENT:
            return (inside,)
        if behavior is Behavior.ADDRESS_DEPENDENT:
            return (inside, _host(remote))
        return (inside, remote)

    def _permission_key(self, remote: Remote) -> Hashable:
        behavior = self.config.filtering
        if behavior is Behavior.ENDPOINT_INDEPENDENT:
            return None
        if behavior is Behavior.ADDRESS_DEPENDENT:
            return ("host", _host(remote))
        return ("endpoint", remote)

    def _expire(self, now: float) -> int:
        timeout = self.config.mapping_timeout_s
        stale = [m for m in self._by_key.values() if now - m.last_used > timeout]
        for mapping in stale:
            del self._by_key[mapping.key]
            del self._by_public[mapping.public[1]]
            self.stats.mappings_expired += 1
            if self._release is not None:
                self._release(mapping.public[1])
        for mapping in self._by_key.values():
            for permission in [p for p, t in mapping.permissions.items() if now - t > timeout]:
                del mapping.permissions[permission]
        return len(stale)

    def _allocate(self, inside_port: int) -> int | None:
        low, high = self.config.port_range
        if (
            self.config.allocation is PortAllocation.PRESERVE
            and low <= inside_port <= high
            and self._take(inside_port)
        ):
            return inside_port
        span = high - low + 1
        for _ in range(min(4 * span, 256)):
            port = low + int.from_bytes(self._rng(4), "big") % span
            if self._take(port):
                return port
        for port in range(low, high + 1):  # nearly full: the first free one
            if self._take(port):
                return port
        return None

    def _take(self, port: int) -> bool:
        if port in self._by_public:
            return False
        return self._claim is None or self._claim(port)


@dataclass(slots=True)
class FirewallStats:
    """Packets (UDP) and connections (TCP) a :class:`Firewall` let through or dropped."""

    udp_passed: int = 0
    udp_dropped: int = 0
    tcp_passed: int = 0
    tcp_dropped: int = 0


class Firewall:
    """Drops UDP (by default) and optionally lets only some remote ports through.

    ``udp`` and ``tcp``: True lets every packet/connection of that protocol through, False
    drops them all, and an iterable of ports lets through only those whose remote port (the
    destination going out, the source coming in) is listed. The default drops all UDP and lets
    TCP (and so WebSocket) through, like a corporate network.
    """

    def __init__(self, *, udp: bool | Iterable[int] = False, tcp: bool | Iterable[int] = True):
        self.udp = self._rule(udp, "udp")
        self.tcp = self._rule(tcp, "tcp")
        self.stats = FirewallStats()

    @staticmethod
    def _rule(value: bool | Iterable[int], name: str) -> bool | frozenset[int]:
        if isinstance(value, bool):
            return value
        ports = frozenset(value)
        if not all(isinstance(p, int) and 0 < p < 65536 for p in ports):
            raise ValueError(f"{name} ports must be integers within 1..65535")
        return ports

    def allows(self, protocol: str, remote: Remote) -> bool:
        """Whether a ``"udp"`` packet or ``"tcp"`` connection to/from ``remote`` passes
        (counted in :attr:`stats`)."""
        if protocol not in ("udp", "tcp"):
            raise ValueError(f"protocol must be 'udp' or 'tcp', not {protocol!r}")
        rule = self.udp if protocol == "udp" else self.tcp
        passed = rule if isinstance(rule, bool) else _port(remote) in rule
        name = f"{protocol}_{'passed' if passed else 'dropped'}"
        setattr(self.stats, name, getattr(self.stats, name) + 1)
        return passed

    def __repr__(self) -> str:
        return f"Firewall(udp={self.udp!r}, tcp={self.tcp!r})"
