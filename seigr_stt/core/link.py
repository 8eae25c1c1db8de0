"""How a packet reached the endpoint: the transport's kind and limits (``docs/protocol.md`` §12).

The adapter describes each transport once with a :class:`Link` and passes it with every packet
and every ``connect``. For UDP one link serves the whole socket and the peer's address is a
``(host, port)`` tuple; for WebSocket each connection is its own link (and its own address).
The endpoint reads from it the record size (and the ceiling for path-MTU probing), whether the
transport is reliable (§14.8), the key of the per-source handshake rate limit, and the bytes a
cookie is bound to (§10).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Link", "RelayAddress", "SendRoom", "TransportKind"]


class TransportKind(StrEnum):
    """The transports a session can run on."""

    UDP = "udp"
    WEBSOCKET = "websocket"
    RELAY = "relay"  # through a relay (§17): the address is a RelayAddress


@dataclass(frozen=True, slots=True)
class RelayAddress:
    """A peer reached through a relay (§17): the relay (its URL, as the node names it) and the
    peer's node id. Two equal addresses are the same path."""

    relay: str
    node_id: bytes

    def __repr__(self) -> str:
        return f"RelayAddress({self.relay}, {self.node_id.hex()[:16]}…)"


class SendRoom:
    """The bytes a connection-oriented transport's send queue takes now, kept up to date by the
    adapter (the core only reads it). Over a reliable link, where no congestion window holds
    stream data back, the session starts a record of stream data only while the room holds a
    whole record (§15.4): the transport's own backpressure paces the sender. A session held back
    puts its id in :attr:`held`; once the queue drains the adapter calls
    ``Endpoint.room_available`` so that those sessions send again.

    While the queue is not empty, a session also holds back a record its stream data would not
    fill (the tail of a write: it would go out only after what is queued anyway, and the next
    write fills it): its id goes in :attr:`corked`, and the adapter calls
    ``Endpoint.room_available`` once the queue is empty (:attr:`bytes` back at
    :attr:`capacity`)."""

    __slots__ = ("bytes", "capacity", "corked", "held")

    def __init__(self, size: int) -> None:
        #: The queue's bound (bytes).
        self.capacity = size
        self.bytes = size
        #: The sessions waiting for room (ids, each once).
        self.held: list[bytes] = []
        #: The sessions holding a partial record of stream data until the queue is empty.
        self.corked: list[bytes] = []

    @property
    def empty(self) -> bool:
        """Whether nothing waits in the queue."""
        return self.bytes >= self.capacity

    def __repr__(self) -> str:
        held, corked = len(self.held), len(self.corked)
        return f"SendRoom({self.bytes}/{self.capacity}, held={held}, corked={corked})"


@dataclass(frozen=True, slots=True, eq=False)
class Link:
    """One transport as the endpoint sees it (compared by identity).

    ``max_record_size`` is the largest packet every path of the transport carries and
    ``record_size`` the size a session fills its records to (at most ``max_record_size``; 0 or
    omitted: that size): a WebSocket connection sends records a little smaller than it carries,
    so that each leaves as one TCP burst (§12.2). ``probe_max`` (> ``record_size`` to enable it)
    is the largest record path-MTU probing may reach. ``peer`` names the remote end of a
    connection-oriented link (WebSocket: ``"host:port"``) and ``source`` its host; for a datagram
    link both are None and come from each packet's ``(host, port)`` address. ``room``, for a
    connection-oriented link, is its send queue's free space (None: unbounded, or a datagram
    link).
    """

    kind: TransportKind
    max_record_size: int
    probe_max: int = 0
    peer: str | None = None
    source: str | None = None
    room: SendRoom | None = None
    record_size: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.record_size <= self.max_record_size:
            raise ValueError("record_size must be within 0..max_record_size")
        if not self.record_size:
            object.__setattr__(self, "record_size", self.max_record_size)

    @property
    def reliable(self) -> bool:
        """Whether the transport delivers every record intact and in order, or fails as a whole
        (WebSocket over TCP): then the session runs no loss detection, congestion window or
        pacing on it and acknowledges rarely (§14.8). UDP and relayed paths are not reliable (a
        relay drops packets when a queue is full)."""
        return self.kind is TransportKind.WEBSOCKET

    def source_of(self, addr: Hashable) -> Hashable:
        """The key of the per-source handshake rate limit: the sender's host (§10)."""
        if self.source is not None:
            return self.source
        return addr[0] if isinstance(addr, tuple) and addr else addr

    def cookie_input(self, addr: Hashable) -> bytes:
        """What a cookie is bound to: the sender's address as it appears on the wire (§10)."""
        if isinstance(addr, RelayAddress):
            return f"{addr.relay}#".encode() + addr.node_id
        if self.peer is not None:
            return self.peer.encode()
        if isinstance(addr, tuple) and len(addr) >= 2:
            return f"{addr[0]}:{addr[1]}".encode()
        return repr(addr).encode()
