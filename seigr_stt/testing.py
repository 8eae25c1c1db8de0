"""Tools for testing code that uses seigr_stt: seeded lossy networks, reproducible from a seed.

Two simulators:

* :class:`Net` is an in-memory transport and a seeded lossy network (loss, reordering,
  duplication, delay, rate limit) driving sans-I/O :class:`seigr_stt.core.endpoint.Endpoint`
  objects with simulated time. Nothing reads a clock or opens a socket: thousands of simulated
  seconds run in a moment, and every run with the same seed is identical::

      net = Net(seed=7, loss=0.05, delay_s=(0.010, 0.030), duplicate=0.01)
      a, b = net.add_node("A"), net.add_node("B")
      sid = net.establish(a, b)
      a.endpoint.send_message(sid, 0, b"hello", net.now)
      net.flush()
      net.run(1.0)
      assert [e.data for e in b.events_of(MessageReceived)] == [b"hello"]

* :class:`UDPRelay` is a loopback UDP relay that sits between two real nodes and loses, delays,
  reorders, duplicates and rate-limits datagrams as an :class:`Impairment` says::

      async with UDPRelay(server.udp_address, Impairment(loss=0.1, seed=7)) as relay:
          session = await client.connect_udp(*relay.address)

  The relay binds 127.0.0.1 only and forwards only to the target it was given.
"""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import random
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from types import TracebackType
from typing import TypeVar

from seigr_stt.aio.udp import UDPTransport
from seigr_stt.config import NodeConfig
from seigr_stt.constants import UDP_MAX_RECORD_SIZE
from seigr_stt.core.endpoint import Endpoint
from seigr_stt.core.events import (
    Event,
    MessageReceived,
    SessionEstablished,
    StreamDataReceived,
)
from seigr_stt.core.identity import NodeIdentity, SharedSecrets
from seigr_stt.core.session import Session

__all__ = [
    "SHARED_SEED",
    "START",
    "Impairment",
    "Net",
    "Node",
    "Packet",
    "RelayStats",
    "UDPRelay",
    "make_seed",
    "seeded_rng",
]

Address = tuple[str, int]
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
    rate-limited link was full), ``unroutable`` (no node at ``dst``) or ``delivered``. ``tag`` is
    free for the caller (e.g. what the packet carried).
    """

    data: bytes
    src: Addr
    dst: Addr
    sent_at: float
    sender: str = ""
    tag: object = None
    fate: str = "in_flight"
    delivered_at: float | None = None

    @property
    def type(self) -> int:
        """Byte 1 of the packet (its type), or -1 for a packet too short to have one."""
        return self.data[1] if len(self.data) > 1 else -1


@dataclass(eq=False)
class Node:
    """One :class:`Endpoint` on a :class:`Net`, with every event it produced and when.

    The net plays the node's adapter: it drains the endpoint after every entry, records its
    events in :attr:`events` and, with ``auto_consume`` (the default), tells the endpoint at once
    that the application took every message and stream byte (``consume_message`` and
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
    ) -> Node:
        """Add an endpoint reachable at address ``name``. Its identity comes from ``node_seed``
        (by default one derived from ``name``); ``max_record_size`` is its transport's record
        size (UDP by default)."""
        endpoint = Endpoint(
            NodeIdentity.from_seed(node_seed if node_seed is not None else make_seed(name)),
            SharedSecrets.from_seed(shared_seed),
            config if config is not None else NodeConfig(),
            seeded_rng(f"rng:{name}:{self.random.random()}"),
            accept_incoming=accept_incoming,
        )
        node = Node(name, endpoint, name, max_record_size, net=self, auto_consume=auto_consume)
        self.nodes.append(node)
        self._routes[node.addr] = node
        return node

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

    def connect(self, a: Node, b: Node, *, timeout_s: float = 10.0) -> int:
        """Start a handshake from ``a`` to ``b``; returns the handle its events will carry."""
        handle = a.endpoint.connect(
            b.addr,
            self.now,
            timestamp_ns=self.timestamp_ns(),
            max_record_size=a.max_record_size,
            timeout_s=timeout_s,
        )
        self.flush_node(a)
        return handle

    def establish(self, a: Node, b: Node, *, within_s: float = 30.0) -> bytes:
        """Connect ``a`` to ``b`` and run until both hold the session; return its id.

        Raises AssertionError when the handshake does not complete within ``within_s``."""
        handle = self.connect(a, b)
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
                packet = Packet(data, node.addr, dst, self.now, node.name)
                self._launch(packet)
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
            node.endpoint.consume_message(event.session_id, event.channel, event.credit)
            return True
        if isinstance(event, StreamDataReceived) and event.data:
            node.endpoint.consume_stream(event.session_id, event.stream_id, len(event.data))
            return True
        return False

    def _launch(self, packet: Packet) -> None:
        self.log.append(packet)
        if any(f(packet) for f in list(self.filters)):
            packet.fate = "filtered"
            return
        if packet.dst not in self._routes:
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
        node.endpoint.receive_datagram(data, src, self.now, node.max_record_size)
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
            target = self._routes.get(packet.dst)
            if target is None:
                packet.fate = "unroutable"
                continue
            packet.fate = "delivered"
            packet.delivered_at = self.now
            self.deliveries.append(packet)
            target.endpoint.receive_datagram(
                packet.data, packet.src, self.now, target.max_record_size
            )
            self.flush_node(target)
        while self._actions and self._actions[0][0] <= self.now:
            _, _, action = heapq.heappop(self._actions)
            action()
            self.flush()
        for node in list(self.nodes):
            self._fire_timers(node)

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


# -- the UDP relay ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Impairment:
    """What the network does to each datagram, independently per direction.

    ``loss`` and ``duplicate`` are probabilities; ``delay_s`` is a fixed one-way delay and
    ``jitter_s`` a uniform extra delay in ``[0, jitter_s)`` (jitter reorders datagrams);
    ``rate_bytes_per_s`` (0 = unlimited) serialises datagrams like a link of that speed, dropping
    those that would wait more than ``queue_s``. ``seed`` makes every run identical.
    """

    loss: float = 0.0
    duplicate: float = 0.0
    delay_s: float = 0.0
    jitter_s: float = 0.0
    rate_bytes_per_s: float = 0.0
    queue_s: float = 0.25
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("loss", "duplicate"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be within [0, 1)")
        for name in ("delay_s", "jitter_s", "rate_bytes_per_s", "queue_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")


@dataclass(slots=True)
class RelayStats:
    """What the relay did, per run."""

    received: int = 0
    forwarded: int = 0
    lost: int = 0
    duplicated: int = 0
    queue_dropped: int = 0


class _Link:
    """One direction of the relay: impairment state and a send function."""

    def __init__(
        self,
        impairment: Impairment,
        rng: random.Random,
        stats: RelayStats,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.impairment = impairment
        self.rng = rng
        self.stats = stats
        self.loop = loop
        self.link_free_at = 0.0

    def carry(self, data: bytes, send: Callable[[bytes], None]) -> None:
        imp = self.impairment
        self.stats.received += 1
        if imp.loss and self.rng.random() < imp.loss:
            self.stats.lost += 1
            return
        copies = 2 if imp.duplicate and self.rng.random() < imp.duplicate else 1
        if copies == 2:
            self.stats.duplicated += 1
        now = self.loop.time()
        for _ in range(copies):
            delay = imp.delay_s + (self.rng.random() * imp.jitter_s if imp.jitter_s else 0.0)
            if imp.rate_bytes_per_s:
                start = max(now, self.link_free_at)
                if start - now > imp.queue_s:
                    self.stats.queue_dropped += 1
                    continue
                self.link_free_at = start + len(data) / imp.rate_bytes_per_s
                delay += self.link_free_at - now
            if delay <= 0:
                self.stats.forwarded += 1
                send(data)
            else:
                self.loop.call_later(delay, self._deliver, data, send)

    def _deliver(self, data: bytes, send: Callable[[bytes], None]) -> None:
        self.stats.forwarded += 1
        send(data)


class UDPRelay:
    """A loopback UDP relay to ``target`` with impairments in both directions.

    Every client address seen on :attr:`address` gets its own upstream socket, so the target sees
    one stable address per client. ``client_to_server`` and ``server_to_client`` may differ; by
    default both use ``impairment`` (with different random streams).
    """

    def __init__(
        self,
        target: Address | None,
        impairment: Impairment | None = None,
        *,
        server_to_client: Impairment | None = None,
    ) -> None:
        if target is None:
            raise ValueError("the relay needs a target address (the node must be started)")
        host = str(target[0])
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError("the relay forwards to loopback addresses only")
        self.target: Address = (host, int(target[1]))
        self.upstream_impairment = impairment or Impairment()
        self.downstream_impairment = server_to_client or self.upstream_impairment
        self.stats_up = RelayStats()
        self.stats_down = RelayStats()
        self._front: UDPTransport | None = None
        self._uplinks: dict[Address, UDPTransport] = {}
        self._connecting: dict[Address, list[bytes]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._up: _Link | None = None
        self._down: _Link | None = None

    @property
    def address(self) -> Address:
        """Where clients should send: the relay's own loopback address."""
        assert self._front is not None
        return self._front.address

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        seed = self.upstream_impairment.seed
        self._up = _Link(
            self.upstream_impairment, random.Random(f"{seed}:up"), self.stats_up, self._loop
        )
        self._down = _Link(
            self.downstream_impairment,
            random.Random(f"{self.downstream_impairment.seed}:down"),
            self.stats_down,
            self._loop,
        )
        self._front = await UDPTransport.bind("127.0.0.1", 0, self._from_client)

    def _from_client(self, data: bytes, client: Address) -> None:
        uplink = self._uplinks.get(client)
        if uplink is not None:
            self._forward_up(uplink, data)
            return
        waiting = self._connecting.get(client)
        if waiting is not None:
            waiting.append(data)
            return
        self._connecting[client] = [data]
        assert self._loop is not None
        task = self._loop.create_task(self._open_uplink(client))
        task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)

    def _forward_up(self, uplink: UDPTransport, data: bytes) -> None:
        assert self._up is not None
        if not uplink.closed:
            self._up.carry(data, lambda d: uplink.sendto(d, self.target))

    async def _open_uplink(self, client: Address) -> None:
        uplink = await UDPTransport.bind(
            "127.0.0.1", 0, lambda data, _addr: self._from_server(client, data)
        )
        self._uplinks[client] = uplink
        for data in self._connecting.pop(client, []):
            self._forward_up(uplink, data)

    def _from_server(self, client: Address, data: bytes) -> None:
        assert self._down is not None
        front = self._front
        if front is not None and not front.closed:
            self._down.carry(data, lambda d: front.sendto(d, client))

    def close(self) -> None:
        """Close every socket (datagrams still delayed in the relay are dropped)."""
        if self._front is not None:
            self._front.close()
        for uplink in self._uplinks.values():
            uplink.close()
        self._uplinks.clear()

    async def __aenter__(self) -> UDPRelay:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
