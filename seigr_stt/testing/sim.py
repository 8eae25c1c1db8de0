"""The in-memory network: sans-I/O endpoints on a seeded lossy network in simulated time.

Public through :mod:`seigr_stt.testing`, which re-exports every name of ``__all__``.
"""

from __future__ import annotations

import dataclasses
import heapq
import random
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import TypeVar

from seigr_stt.config import NodeConfig
from seigr_stt.constants import UDP_MAX_RECORD_SIZE
from seigr_stt.core.endpoint import Endpoint
from seigr_stt.core.events import (
    Event,
    MessageReceived,
    SessionEstablished,
    StreamDataReceived,
    StreamOpened,
)
from seigr_stt.core.identity import NodeIdentity, SharedSecrets
from seigr_stt.core.link import Link, TransportKind
from seigr_stt.core.session import Session
from seigr_stt.testing.nat import NAT

__all__ = ["SHARED_SEED", "START", "Net", "Node", "Packet", "make_seed", "seeded_rng"]

Addr = Hashable
E = TypeVar("E")


# -- the in-memory network -------------------------------------------------------------------
START = 1000.0
"""Simulated time at which every :class:`Net` starts (not zero, to catch ``if now:`` bugs)."""


def seeded_rng(seed: int | str) -> Callable[[int], bytes]:
    """A deterministic ``rng(n) -> bytes`` for an :class:`Endpoint` (never for real keys)."""
    return random.Random(seed).randbytes


def make_seed(name: int | str) -> bytes:
    """A deterministic 32-byte seed derived from ``name`` (never for real identities)."""
    return random.Random(f"seed:{name}").randbytes(32)


SHARED_SEED = make_seed("shared")
"""The shared seed every :meth:`Net.add_node` uses unless told otherwise."""


@dataclass(eq=False)
class Packet:
    """One datagram on the simulated network, with what the network did to it.

    ``fate`` is ``in_flight`` until the network decides: ``lost`` (random loss), ``filtered``
    (a filter of :attr:`Net.filters` or :meth:`Net.drop` took it), ``overflow`` (the queue of a
    rate-limited link was full), ``unroutable`` (no node at ``dst``, or a private address behind
    a NAT the sender is not behind), ``nat`` (a :class:`~seigr_stt.testing.NAT` dropped it: its
    ``stats`` say why) or ``delivered``. ``tag`` is free for the caller (e.g. what the packet
    carried).

    A packet from a node behind a NAT carries its public source in ``src`` and the node's own
    address in ``inside_src``; one delivered through a NAT to a node behind it keeps the public
    ``dst`` and names the node's address in ``inside_dst``.
    """

    data: bytes
    src: Addr
    dst: Addr
    sent_at: float
    sender: str = ""
    tag: object = None
    fate: str = "in_flight"
    delivered_at: float | None = None
    inside_src: Addr | None = None
    inside_dst: Addr | None = None

    @property
    def type(self) -> int:
        """Byte 1 of the packet (its type), or -1 for a packet too short to have one."""
        return self.data[1] if len(self.data) > 1 else -1


@dataclass(eq=False)
class Node:
    """One :class:`Endpoint` on a :class:`Net`, with every event it produced and when.

    The net plays the node's adapter: it drains the endpoint after every entry, records its
    events in :attr:`events` and, with ``auto_consume`` (the default), tells the endpoint at once
    that the application took every message, stream and stream byte (``consume_message``,
    ``accept_stream`` and
    ``consume_stream``), so flow-control credit flows back as from an application that keeps up.
    Set ``auto_consume`` to False to play an application that reads nothing.
    """

    name: str
    endpoint: Endpoint
    addr: Addr
    max_record_size: int = UDP_MAX_RECORD_SIZE
    events: list[tuple[float, Event]] = field(default_factory=list)
    net: Net | None = field(default=None, repr=False)
    auto_consume: bool = True
    #: The NAT the node sits behind (:meth:`Net.add_node` with ``behind=``), or None.
    nat: NAT | None = field(default=None, repr=False)
    #: The kind of the node's transport: UDP, or WEBSOCKET for a reliable link (§14.8), whose
    #: sessions rely on the net to lose nothing (give the net no loss, duplication, reordering
    #: or bottleneck then).
    kind: TransportKind = TransportKind.UDP
    link: Link = field(init=False, repr=False)
    #: The node's other addresses, each on a link of its own (:meth:`Net.add_link`).
    links: dict[Addr, Link] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        #: The node's main transport, as its endpoint sees it (of ``kind``: UDP by default).
        self.link = Link(self.kind, self.max_record_size)

    def address_on(self, kind: TransportKind) -> Addr:
        """The node's address on a link of ``kind`` (its main address for UDP)."""
        if kind == self.link.kind:
            return self.addr
        for addr, link in self.links.items():
            if link.kind == kind:
                return addr
        raise KeyError(f"{self.name} has no {kind} link")

    @property
    def now(self) -> float:
        """The simulated time of the net this node is on."""
        assert self.net is not None
        return self.net.now

    def events_of(self, kind: type[E]) -> list[E]:
        """Every event of one type, in order."""
        return [event for _, event in self.events if isinstance(event, kind)]

    def timed_events_of(self, kind: type[E]) -> list[tuple[float, E]]:
        """Every event of one type with the simulated time it came out."""
        return [(t, event) for t, event in self.events if isinstance(event, kind)]

    def session(self, session_id: bytes) -> Session:
        """The endpoint's live session ``session_id`` (raises SessionNotFound)."""
        return self.endpoint.session(session_id)


class Net:
    """Endpoints connected by a seeded, lossy, reordering, duplicating in-memory network.

    Every packet a node sends is, in this order: offered to :attr:`filters` (a test's
    deterministic drops); lost with probability ``loss``; queued on the link from its sender to
    its destination when ``rate_bytes_per_s`` is set (a bottleneck: packets leave one after the
    other at that rate, and one that would wait more than ``queue_s`` is dropped); delayed by a
    uniform draw from ``delay_s`` (a range wider than zero reorders packets); and duplicated with
    probability ``duplicate`` (the copy draws its own delay). Each direction between two nodes is
    its own link. Every setting may be changed at any time.

    Time is :attr:`now` and moves only in :meth:`run` and :meth:`run_until`, which deliver
    packets, fire the endpoints' timers and run the actions given to :meth:`schedule` in time
    order. All randomness comes from :attr:`random`, seeded by ``seed``. :attr:`log` holds every
    packet launched and :attr:`deliveries` every packet delivered, in delivery order.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        loss: float = 0.0,
        delay_s: tuple[float, float] = (0.0, 0.0),
        duplicate: float = 0.0,
        rate_bytes_per_s: float = 0.0,
        queue_s: float = 0.25,
        start: float = START,
    ) -> None:
        self.now = start
        self.random = random.Random(seed)
        self.loss = loss
        self.delay_s = delay_s
        self.duplicate = duplicate
        self.rate_bytes_per_s = rate_bytes_per_s
        self.queue_s = queue_s
        self.nodes: list[Node] = []
        self.log: list[Packet] = []
        self.deliveries: list[Packet] = []  # in the order the receivers got them
        self.filters: list[Callable[[Packet], bool]] = []
        self._routes: dict[Addr, Node] = {}
        self._nats: dict[object, NAT] = {}
        self._link_free_at: dict[tuple[str, Addr], float] = {}
        self._flight: list[tuple[float, int, Packet]] = []
        self._actions: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = 0
        self._timestamp_ns = 0

    # -- building -----------------------------------------------------------------------------
    def add_node(
        self,
        name: str,
        *,
        node_seed: bytes | None = None,
        shared_seed: bytes = SHARED_SEED,
        config: NodeConfig | None = None,
        accept_incoming: bool = True,
        max_record_size: int = UDP_MAX_RECORD_SIZE,
        auto_consume: bool = True,
        addr: Addr | None = None,
        behind: NAT | None = None,
        rng: Callable[[int], bytes] | None = None,
        kind: TransportKind = TransportKind.UDP,
    ) -> Node:
        """Add an endpoint reachable at address ``addr`` (by default ``name``). Its identity
        comes from ``node_seed`` (by default one derived from ``name``); ``max_record_size`` is
        its transport's record size (UDP by default) and ``kind`` its transport's kind.

        ``behind``: a NAT added with :meth:`add_nat`; the node's ``addr`` is then a private
        address that only nodes behind the same NAT reach, and everything it sends elsewhere
        leaves through the NAT. Give ``(host, port)`` addresses to every node that talks
        through a NAT, so that its filtering can tell hosts and ports apart.

        ``rng`` is the node's randomness (ephemeral keys, indexes, path challenges): by default
        seeded from the net's seed, so a run repeats exactly; a test of what a copy of a node's
        state can predict passes a real source (``os.urandom``), whose state no copy holds."""
        if behind is not None and self._nats.get(behind.public_ip) is not behind:
            raise ValueError("add the NAT to this net (add_nat) before nodes behind it")
        seed_label = f"rng:{name}:{self.random.random()}"
        endpoint = Endpoint(
            NodeIdentity.from_seed(node_seed if node_seed is not None else make_seed(name)),
            SharedSecrets.from_seed(shared_seed),
            config if config is not None else NodeConfig(),
            rng if rng is not None else seeded_rng(seed_label),
            accept_incoming=accept_incoming,
        )
        node = Node(
            name,
            endpoint,
            name if addr is None else addr,
            max_record_size,
            net=self,
            auto_consume=auto_consume,
            nat=behind,
            kind=kind,
        )
        if node.addr in self._routes:
            raise ValueError(f"address {node.addr!r} is taken")
        self.nodes.append(node)
        self._routes[node.addr] = node
        return node

    def add_nat(self, nat: NAT) -> NAT:
        """Put ``nat`` on the net: packets to ``(nat.public_ip, port)`` go through its
        :meth:`~seigr_stt.testing.NAT.inbound`, and nodes added ``behind=nat`` send through its
        :meth:`~seigr_stt.testing.NAT.outbound`. The NAT translates at the moment a packet
        leaves its node (outbound) and the moment it arrives (inbound), with :attr:`now` as its
        clock; the link between a node and its NAT takes no time. Returns ``nat``."""
        if nat.public_ip in self._nats:
            raise ValueError(f"a NAT already owns {nat.public_ip!r}")
        self._nats[nat.public_ip] = nat
        return nat

    def send_raw(self, node: Node, data: bytes, dst: Addr) -> Packet:
        """Send ``data`` from ``node``'s address (through its NAT, if any) to ``dst``, outside
        its endpoint: a hole-punching probe, or a STUN request whose delivered packet's ``src``
        is the node's public address as the outside sees it."""
        packet = Packet(data, node.addr, dst, self.now, node.name)
        self._send(node, packet)
        return packet

    def add_link(
        self,
        node: Node,
        addr: Addr,
        kind: TransportKind,
        max_record_size: int = 1200,
        record_size: int = 0,
    ) -> Link:
        """Give ``node`` another address ``addr`` on a link of its own of ``kind`` (a WebSocket
        connection, a relay): packets to ``addr`` reach the node by that link, and what the
        node sends to another node's address of that kind leaves from ``addr``, so that
        sessions can move between transports (§18). ``record_size`` (0: ``max_record_size``) is
        the size sessions fill their records to on it (:class:`~seigr_stt.core.link.Link`).
        Returns the link."""
        if addr in self._routes:
            raise ValueError(f"address {addr!r} is taken")
        link = Link(
            kind, max_record_size, peer=str(addr), source=str(addr), record_size=record_size
        )
        node.links[addr] = link
        self._routes[addr] = node
        return link

    def move(self, node: Node, new_addr: Addr) -> None:
        """The node's packets now come from ``new_addr`` (NAT rebinding); both addrs reach it."""
        node.addr = new_addr
        self._routes[new_addr] = node

    def kill(self, node: Node) -> None:
        """The node vanishes: it gets no more packets and its timers stop."""
        self.nodes.remove(node)
        for addr in [a for a, n in self._routes.items() if n is node]:
            del self._routes[addr]

    def drop(self, predicate: Callable[[Packet], bool], times: int = 1) -> None:
        """Drop the next ``times`` packets matching ``predicate`` (fate ``filtered``)."""
        remaining = [times]

        def _filter(packet: Packet) -> bool:
            if remaining[0] > 0 and predicate(packet):
                remaining[0] -= 1
                return True
            return False

        self.filters.append(_filter)

    # -- app calls ----------------------------------------------------------------------------
    def timestamp_ns(self) -> int:
        """A strictly increasing handshake timestamp derived from the simulated time."""
        self._timestamp_ns = max(self._timestamp_ns + 1, int(self.now * 1e9))
        return self._timestamp_ns

    def connect(self, a: Node, b: Node, *, timeout_s: float = 10.0, to: Addr | None = None) -> int:
        """Start a handshake from ``a`` to ``b`` (at address ``to``, by default ``b.addr``: give
        ``b``'s public address when it sits behind a NAT); returns the handle its events will
        carry. To one of ``b``'s other addresses (:meth:`add_link`), ``a`` uses its own link of
        that kind."""
        dst = b.addr if to is None else to
        link = a.link
        if dst in b.links:
            link = a.links[a.address_on(b.links[dst].kind)]
        handle = a.endpoint.connect(
            dst,
            self.now,
            link=link,
            timestamp_ns=self.timestamp_ns(),
            timeout_s=timeout_s,
        )
        self.flush_node(a)
        return handle

    def establish(
        self, a: Node, b: Node, *, within_s: float = 30.0, to: Addr | None = None
    ) -> bytes:
        """Connect ``a`` to ``b`` (at ``to``, as :meth:`connect`) and run until both hold the
        session; return its id.

        Raises AssertionError when the handshake does not complete within ``within_s``."""
        handle = self.connect(a, b, to=to)
        deadline = self.now + within_s
        sid: bytes | None = None
        while self.now <= deadline:
            if sid is None:
                for event in a.events_of(SessionEstablished):
                    if event.handle == handle:
                        sid = event.session_id
            if sid is not None and sid in b.endpoint.sessions and sid in a.endpoint.sessions:
                return sid
            t = self.next_deadline()
            if t is None or t > deadline:
                break
            self.run_until(t)
        raise AssertionError("the handshake did not complete")

    # -- network ------------------------------------------------------------------------------
    def flush(self) -> list[Packet]:
        """Drain every node (call after app calls made directly on endpoints)."""
        out: list[Packet] = []
        for node in list(self.nodes):
            out += self.flush_node(node)
        return out

    def flush_node(self, node: Node) -> list[Packet]:
        """Drain one endpoint: launch its packets and collect its events; return the packets."""
        launched: list[Packet] = []
        while True:
            for data, dst in node.endpoint.datagrams_to_send(self.now):
                src = node.addr
                target = self._routes.get(dst)
                if target is not None and dst in target.links:  # leaves by the same kind
                    src = node.address_on(target.links[dst].kind)
                packet = Packet(data, src, dst, self.now, node.name)
                self._send(node, packet)
                launched.append(packet)
            consumed = False
            for event in node.endpoint.events_received():
                node.events.append((self.now, event))
                if node.auto_consume:
                    consumed |= self._consume(node, event)
            if not consumed:
                return launched

    @staticmethod
    def _consume(node: Node, event: Event) -> bool:
        if isinstance(event, MessageReceived):
            session = node.endpoint.get_session(event.session_id)
            if session is not None:
                session.consume_message(event.channel, event.credit)
            return True
        if isinstance(event, StreamOpened):
            session = node.endpoint.get_session(event.session_id)
            if session is not None:
                session.accept_stream(event.stream_id)
            return True
        if isinstance(event, StreamDataReceived) and event.data:
            session = node.endpoint.get_session(event.session_id)
            if session is not None:
                session.consume_stream(event.stream_id, len(event.data))
            return True
        return False

    def _send(self, node: Node, packet: Packet) -> None:
        """Translate a packet ``node`` sends through its NAT (unless it stays on the node's
        private network), then launch it."""
        target = self._routes.get(packet.dst)
        nat = node.nat
        if target is not None and packet.dst in target.links:
            pass  # a link of its own (a relay, a WebSocket): no NAT on the way
        elif target is None or target.nat is not nat:  # it leaves the sender's network
            if target is not None and target.nat is not None:
                self.log.append(packet)
                packet.fate = "unroutable"  # a private address of another network
                return
            if nat is not None:
                public = nat.outbound(packet.src, packet.dst, self.now)
                packet.inside_src = packet.src
                if public is None:
                    self.log.append(packet)
                    packet.fate = "nat"
                    return
                packet.src = public
        self._launch(packet)

    def _reachable(self, dst: Addr) -> bool:
        if dst in self._routes:
            return True
        return isinstance(dst, tuple) and len(dst) == 2 and dst[0] in self._nats

    def _launch(self, packet: Packet) -> None:
        self.log.append(packet)
        if any(f(packet) for f in list(self.filters)):
            packet.fate = "filtered"
            return
        if not self._reachable(packet.dst):
            packet.fate = "unroutable"
            return
        if self.loss and self.random.random() < self.loss:
            packet.fate = "lost"
            return
        self._enqueue(packet)
        if self.duplicate and self.random.random() < self.duplicate:
            copy = dataclasses.replace(packet)
            self.log.append(copy)
            self._enqueue(copy)

    def _enqueue(self, packet: Packet) -> None:
        departs = self.now
        if self.rate_bytes_per_s:
            link = (packet.sender, packet.dst)
            start = max(self.now, self._link_free_at.get(link, self.now))
            if start - self.now > self.queue_s:
                packet.fate = "overflow"
                return
            departs = start + len(packet.data) / self.rate_bytes_per_s
            self._link_free_at[link] = departs
        lo, hi = self.delay_s
        delay = lo if hi <= lo else self.random.uniform(lo, hi)
        self._seq += 1
        heapq.heappush(self._flight, (departs + delay, self._seq, packet))

    def inject(self, node: Node, data: bytes, src: Addr) -> list[Packet]:
        """Hand ``data`` to ``node`` at once, as if from ``src``; return what it sent back."""
        node.endpoint.receive_datagram(data, src, self.now, node.link)
        return self.flush_node(node)

    def deliver_held(self, packet: Packet, node: Node | None = None) -> list[Packet]:
        """Deliver a packet a filter held back (or any logged packet) now."""
        target = node if node is not None else self._routes[packet.dst]
        return self.inject(target, packet.data, packet.src)

    @property
    def in_flight(self) -> int:
        """Packets on their way (queued or delayed)."""
        return len(self._flight)

    # -- time ---------------------------------------------------------------------------------
    def schedule(self, at: float, action: Callable[[], None]) -> None:
        """Run ``action`` at simulated time ``at`` (then drain every node)."""
        self._seq += 1
        heapq.heappush(self._actions, (at, self._seq, action))

    def next_deadline(self) -> float | None:
        """The earliest delivery, action or endpoint timer, or None when nothing is pending."""
        candidates: list[float] = []
        if self._flight:
            candidates.append(self._flight[0][0])
        if self._actions:
            candidates.append(self._actions[0][0])
        for node in self.nodes:
            t = node.endpoint.get_timer()
            if t is not None:
                candidates.append(t)
        return min(candidates, default=None)

    def run_until(self, t_end: float) -> None:
        """Process every delivery, action and timer due up to ``t_end``; then ``now = t_end``.

        Raises AssertionError when time cannot advance (a timer that stays due after it fired).
        """
        steps_at_now = 0
        while True:
            t = self.next_deadline()
            if t is None or t > t_end:
                break
            if t > self.now:
                self.now = t
                steps_at_now = 0
            steps_at_now += 1
            if steps_at_now > 100_000:
                raise AssertionError(f"no progress at simulated time {self.now}")
            self._step()
        self.now = max(self.now, t_end)

    def run(self, duration_s: float) -> None:
        """Run for ``duration_s`` simulated seconds."""
        self.run_until(self.now + duration_s)

    def _step(self) -> None:
        while self._flight and self._flight[0][0] <= self.now:
            _, _, packet = heapq.heappop(self._flight)
            target = self._route_arrival(packet)
            if target is None:
                continue
            packet.fate = "delivered"
            packet.delivered_at = self.now
            self.deliveries.append(packet)
            link = target.links.get(packet.dst, target.link)
            target.endpoint.receive_datagram(packet.data, packet.src, self.now, link)
            self.flush_node(target)
        while self._actions and self._actions[0][0] <= self.now:
            _, _, action = heapq.heappop(self._actions)
            action()
            self.flush()
        for node in list(self.nodes):
            self._fire_timers(node)

    def _route_arrival(self, packet: Packet) -> Node | None:
        """The node a packet arriving now reaches (through a NAT's inbound translation when
        ``dst`` is a NAT's public address), or None with the packet's fate set."""
        target = self._routes.get(packet.dst)
        if target is not None:
            return target
        dst = packet.dst
        nat = self._nats.get(dst[0]) if isinstance(dst, tuple) and len(dst) == 2 else None
        if nat is None:
            packet.fate = "unroutable"
            return None
        inside = nat.inbound(packet.src, dst, self.now)  # type: ignore[arg-type]
        if inside is None:
            packet.fate = "nat"
            return None
        packet.inside_dst = inside
        target = self._routes.get(inside)
        if target is None:
            packet.fate = "unroutable"
        return target

    def _fire_timers(self, node: Node) -> None:
        deadline = None
        for _ in range(4):
            deadline = node.endpoint.get_timer()
            if deadline is None or deadline > self.now:
                return
            node.endpoint.handle_timer(self.now)
            self.flush_node(node)
        raise AssertionError(
            f"{node.name}: get_timer() stays at {deadline} <= now {self.now} after handle_timer"
        )

    # -- inspection ---------------------------------------------------------------------------
    def sent_by(self, node: Node, ptype: int | None = None) -> list[Packet]:
        """Every packet ``node`` sent (of one type if given), in order."""
        return [p for p in self.log if p.sender == node.name and (ptype is None or p.type == ptype)]
