"""An in-memory network that drives sans-I/O endpoints with hand-set time.

Nothing here reads a clock or draws unseeded randomness: :class:`Net` owns ``now`` and a seeded
``random.Random``. Each :class:`Node` wraps one :class:`~seigr_stt.core.endpoint.Endpoint` and
follows the adapter contract of ``endpoint.py``: after every entry (packet, timer, app call) the
net drains ``datagrams_to_send`` and ``events_received``.

Packets are :class:`Packet` objects whose ``fate`` tells what the network did with them (lost,
dropped by a test's filter, unroutable, delivered), so a test can reason about exactly what reached
the other side. Loss, delay (reordering) and duplication are per-net settings that a test may
change at any time; ``filters`` drop chosen packets deterministically.
"""

from __future__ import annotations

import dataclasses
import heapq
import random
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgpack

from seigr_stt.config import NodeConfig
from seigr_stt.constants import (
    HANDSHAKE_INIT_MIN_SIZE,
    MAC_BYTES,
    NOISE_PROTOCOL_NAME,
    PACKET_COOKIE_REPLY,
    PACKET_DATA,
    PACKET_HANDSHAKE_FINAL,
    PACKET_HANDSHAKE_INIT,
    PACKET_HANDSHAKE_RESPONSE,
    PROLOGUE,
    PROTOCOL_VERSION,
    UDP_MAX_RECORD_SIZE,
)
from seigr_stt.core import crypto
from seigr_stt.core.endpoint import Endpoint
from seigr_stt.core.events import Event, SessionEstablished
from seigr_stt.core.frames import Datagram, serialize_frames
from seigr_stt.core.identity import NodeIdentity, SharedSecrets
from seigr_stt.core.noise import SymmetricState
from seigr_stt.core.record import pack_header, seal_record
from seigr_stt.core.session import Session

__all__ = [
    "COOKIE",
    "DATA",
    "FINAL",
    "INIT",
    "RESPONSE",
    "SHARED_SEED",
    "START",
    "Net",
    "Node",
    "Packet",
    "Pair",
    "authentic_record",
    "craft_init",
    "dgram",
    "endpoint_snapshot",
    "init_payload",
    "make_pair",
    "make_seed",
    "packet_type",
    "seeded_rng",
    "session_snapshot",
]

Addr = Hashable
E = TypeVar("E")

START = 1000.0
"""Simulated time at which every net starts (any epoch works; not zero, to catch ``if now:``)."""

INIT = PACKET_HANDSHAKE_INIT
RESPONSE = PACKET_HANDSHAKE_RESPONSE
FINAL = PACKET_HANDSHAKE_FINAL
COOKIE = PACKET_COOKIE_REPLY
DATA = PACKET_DATA


def seeded_rng(seed: int | str) -> Callable[[int], bytes]:
    """A deterministic ``rng(n) -> bytes`` for an endpoint."""
    return random.Random(seed).randbytes


def make_seed(name: int | str) -> bytes:
    """A deterministic 32-byte seed with plenty of distinct byte values."""
    return random.Random(f"seed:{name}").randbytes(32)


SHARED_SEED = make_seed("shared")


def init_payload(index: bytes, timestamp_ns: int = 1, capabilities: int = 0, **extra: Any) -> bytes:
    """A handshake INIT payload as an honest initiator writes it (``extra`` overrides fields)."""
    payload: dict[str, Any] = {"i": index, "t": timestamp_ns, "c": capabilities, "p": bytes(200)}
    payload.update(extra)
    packed: bytes = msgpack.packb(payload, use_bin_type=True)
    return packed


def craft_init(
    secrets: SharedSecrets,
    *,
    e_pub: bytes,
    payload: bytes,
    index: bytes = b"\x11\x22\x33\x44",
    version: int = PROTOCOL_VERSION,
) -> bytes:
    """Build an INIT around any ephemeral public key (even one with no private key, such as a
    low-order point) with a correct mac1: message 1 of XXpsk3 involves no DH and no PSK, so any
    holder of the mac1 key can write one."""
    state = SymmetricState(NOISE_PROTOCOL_NAME)
    state.mix_hash(PROLOGUE)
    state.mix_hash(e_pub)
    state.mix_key(e_pub)
    message = e_pub + state.encrypt_and_hash(payload)
    body = bytes([version, PACKET_HANDSHAKE_INIT, 0, 0]) + index + message
    packet = body + crypto.mac(secrets.mac1_key, body) + bytes(MAC_BYTES)
    assert len(packet) >= HANDSHAKE_INIT_MIN_SIZE or len(payload) < 200
    return packet


def packet_type(data: bytes) -> int:
    """Byte 1 of a packet (its type), or -1 for a packet too short to have one."""
    return data[1] if len(data) > 1 else -1


@dataclass(eq=False)
class Packet:
    """One datagram on the simulated network."""

    data: bytes
    src: Addr
    dst: Addr
    sent_at: float
    sender: str = ""
    tag: object = None
    fate: str = "in_flight"  # lost | filtered | unroutable | delivered
    delivered_at: float | None = None

    @property
    def type(self) -> int:
        return packet_type(self.data)


@dataclass(eq=False)
class Node:
    """One endpoint on the net, with every event it produced and when."""

    name: str
    endpoint: Endpoint
    addr: Addr
    max_record_size: int = UDP_MAX_RECORD_SIZE
    events: list[tuple[float, Event]] = field(default_factory=list)
    net: Net | None = field(default=None, repr=False)

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
        return self.endpoint.session(session_id)


class Net:
    """Endpoints connected by a lossy, reordering, duplicating in-memory network."""

    def __init__(
        self,
        *,
        seed: int = 0,
        loss: float = 0.0,
        delay_s: tuple[float, float] = (0.0, 0.0),
        duplicate: float = 0.0,
        start: float = START,
    ) -> None:
        self.now = start
        self.random = random.Random(seed)
        self.loss = loss
        self.delay_s = delay_s
        self.duplicate = duplicate
        self.nodes: list[Node] = []
        self.log: list[Packet] = []
        self.deliveries: list[Packet] = []  # in the order the receivers got them
        self.filters: list[Callable[[Packet], bool]] = []
        self._routes: dict[Addr, Node] = {}
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
    ) -> Node:
        endpoint = Endpoint(
            NodeIdentity.from_seed(node_seed if node_seed is not None else make_seed(name)),
            SharedSecrets.from_seed(shared_seed),
            config if config is not None else NodeConfig(),
            seeded_rng(f"rng:{name}:{self.random.random()}"),
            accept_incoming=accept_incoming,
        )
        node = Node(name, endpoint, name, max_record_size, net=self)
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
        """A strictly increasing handshake timestamp."""
        self._timestamp_ns = max(self._timestamp_ns + 1, int(self.now * 1e9))
        return self._timestamp_ns

    def connect(self, a: Node, b: Node, *, timeout_s: float = 10.0) -> int:
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
        """Connect ``a`` to ``b`` and run until both hold the session; return its id."""
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
        out: list[Packet] = []
        for node in list(self.nodes):
            out += self.flush_node(node)
        return out

    def flush_node(self, node: Node) -> list[Packet]:
        """Drain one endpoint: launch its packets and collect its events."""
        launched = []
        for data, dst in node.endpoint.datagrams_to_send(self.now):
            packet = Packet(data, node.addr, dst, self.now, node.name)
            self._launch(packet)
            launched.append(packet)
        node.events.extend((self.now, event) for event in node.endpoint.events_received())
        return launched

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
        lo, hi = self.delay_s
        delay = lo if hi <= lo else self.random.uniform(lo, hi)
        self._seq += 1
        heapq.heappush(self._flight, (self.now + delay, self._seq, packet))

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
        return len(self._flight)

    # -- time ---------------------------------------------------------------------------------
    def schedule(self, at: float, action: Callable[[], None]) -> None:
        """Run ``action`` at simulated time ``at`` (then drain every node)."""
        self._seq += 1
        heapq.heappush(self._actions, (at, self._seq, action))

    def next_deadline(self) -> float | None:
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
        """Process every delivery, action and timer due up to ``t_end``; then ``now = t_end``."""
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


@dataclass(eq=False)
class Pair:
    """Two nodes ``a`` (initiator) and ``b`` (responder) with an established session ``sid``."""

    net: Net
    a: Node
    b: Node
    sid: bytes

    @property
    def sa(self) -> Session:
        return self.a.session(self.sid)

    @property
    def sb(self) -> Session:
        return self.b.session(self.sid)

    def send(self, frm: Node, data: bytes, channel: int = 0) -> list[Packet]:
        """Queue one message on ``frm``'s side and launch what it sends at once."""
        frm.endpoint.send_message(self.sid, channel, data, self.net.now)
        return self.net.flush_node(frm)


def make_pair(
    *,
    config: NodeConfig | None = None,
    config_a: NodeConfig | None = None,
    config_b: NodeConfig | None = None,
    seed: int = 0,
    max_record_size: int = UDP_MAX_RECORD_SIZE,
) -> Pair:
    """A fresh net with an established session between ``a`` and ``b``, all traffic settled."""
    net = Net(seed=seed)
    a = net.add_node("A", config=config_a or config, max_record_size=max_record_size)
    b = net.add_node("B", config=config_b or config, max_record_size=max_record_size)
    sid = net.establish(a, b)
    net.run_until(net.now)
    return Pair(net, a, b, sid)


def dgram(data: bytes) -> bytes:
    """The frames bytes of one DATAGRAM frame (a payload valid in any record, in any order)."""
    return serialize_frames([Datagram(data)])


def authentic_record(
    session: Session,
    frames: bytes = b"",
    *,
    plaintext: bytes | None = None,
    epoch: int | None = None,
    echo: int | None = None,
    counter: int | None = None,
    key: bytes | None = None,
) -> bytes:
    """A record sealed with ``session``'s real send key, as its peer will expect it.

    Reserves a counter unless ``counter`` is given. ``plaintext`` replaces the padded frames
    (to forge bad padding); ``epoch``/``echo``/``key`` override the header and key (epoch abuse).
    """
    real_key, real_epoch, real_echo, real_counter = session.keys.next_send()
    key = real_key if key is None else key
    epoch = real_epoch if epoch is None else epoch
    echo = real_echo if echo is None else echo
    counter = real_counter if counter is None else counter
    header = pack_header(epoch, echo, session.session_id, counter)
    if plaintext is not None:
        return header + crypto.aead_encrypt(key, counter, header, plaintext)
    return seal_record(key, header, counter, frames)


def session_snapshot(session: Session) -> dict[str, Any]:
    """Every piece of a session's state that an unauthenticated packet must not change.

    Drop counters (``replays_dropped``, ``auth_failures``, ``epoch_drops``) are left out: moving
    them is the point of a drop.
    """
    counters = dataclasses.asdict(session.counters)
    for name in ("replays_dropped", "auth_failures", "epoch_drops"):
        del counters[name]
    keys = session.keys
    return {
        "state": session.state,
        "addr": session.addr,
        "counters": counters,
        "send_epoch": keys.send_epoch,
        "recv_epoch": keys.recv_epoch,
        "peer_echo": keys.peer_echo,
        "send_counter": keys.send_counter,
        "sent_in_epoch": keys.sent_in_epoch,
        "epoch_started_at": keys.epoch_started_at,
        "last_rotation_at": keys.last_rotation_at,
        "key_slots": (
            keys._send_key,
            keys._recv_prev,
            keys._recv_current,
            keys._recv_next,
            keys._exporter,
            keys._prev_expires_at,
        ),
        "replay_highest": keys.replay.highest,
        "replay_ring": tuple(keys.replay._ring),
        "last_received_at": session.last_received_at,
        "last_sent_at": session.last_sent_at,
        "last_data_at": session.last_data_at,
        "rtt_s": session.rtt_s,
        "has_output": session.has_output,
        "pending_events": len(session.events),
        "close_code": session.close_code,
        "timer": session.get_timer(),
    }


def endpoint_snapshot(endpoint: Endpoint) -> dict[str, Any]:
    """The endpoint's tables and every session's :func:`session_snapshot`."""
    return {
        "sessions": {sid: session_snapshot(s) for sid, s in endpoint.sessions.items()},
        "by_local_index": sorted(endpoint._by_local_index),
        "initiating": {
            index: (p.cookie, p.retry_at, p.deadline) for index, p in endpoint._initiating.items()
        },
        "half_open": {index: h.expires_at for index, h in endpoint._half_open.items()},
        "half_open_by_mac1": dict(endpoint._half_open_by_mac1),
        "tombstones": dict(endpoint._tombstones),
        "peer_timestamps": dict(endpoint._peer_timestamps),
        "sessions_created": endpoint.sessions_created,
        "sessions_closed": endpoint.sessions_closed,
        "timer": endpoint.get_timer(),
    }
