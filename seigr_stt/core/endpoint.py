"""The node's protocol endpoint, sans-I/O: one per node, serving every transport (§3, §10).

An address is opaque here (any hashable the adapter chooses: ``(host, port)`` for UDP, a
connection object for WebSocket); a :class:`~seigr_stt.core.link.Link` describes the transport a
packet came by. The adapter's contract:

1. feed every received packet to :meth:`Endpoint.receive_datagram`;
2. make application calls: :meth:`Endpoint.connect`, :meth:`Endpoint.cancel_connect`,
   :meth:`Endpoint.abort_address`, and on a session (:meth:`Endpoint.session`) its own methods
   (``send_message``, ``write_stream``, ``close``, ...): a session tells the endpoint itself that
   it changed;
3. after *every* entry, call :meth:`Endpoint.datagrams_to_send` and send each
   ``(packet, addr)``, then :meth:`Endpoint.events_received` and act on the events, then re-arm
   one timer at :meth:`Endpoint.get_timer`;
4. when that timer fires, call :meth:`Endpoint.handle_timer` and go back to 3.

Unauthenticated input never raises and never changes a session: it is dropped and counted by
:class:`~seigr_stt.core.stats.DropReason`. The only reply an unauthenticated packet can get is a
handshake message or a cookie (§10).
"""

from __future__ import annotations

import hmac
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Hashable, Mapping
from types import MappingProxyType

from seigr_stt.config import EndpointConfig, SessionConfig
from seigr_stt.constants import (
    PROTOCOL_VERSION,
    RECORD_HEADER_SIZE,
    CloseCode,
    PacketType,
    SessionState,
)
from seigr_stt.core import crypto
from seigr_stt.core.events import Event, HandshakeAborted
from seigr_stt.core.handshakes import Completed, HandshakeTable
from seigr_stt.core.identity import NodeIdentity, SharedSecrets
from seigr_stt.core.link import Link, SendRoom
from seigr_stt.core.record import parse_header
from seigr_stt.core.session import Session
from seigr_stt.core.stats import DropReason, EndpointCounters, EndpointSnapshot
from seigr_stt.core.timers import DeadlineHeap
from seigr_stt.exceptions import ProtocolError, RecordError, SessionNotFound

__all__ = ["Endpoint"]

Rng = Callable[[int], bytes]


class Endpoint:
    """Packet-type demux, the session table and its deadlines, tombstones and counters of one
    node. ``config`` holds the node-wide limits; sessions get ``session_config`` (by default
    ``config`` itself when it is a :class:`~seigr_stt.config.NodeConfig`). ``allowed_peers``,
    when given, decides by node id which members may hold a session with us (both roles)."""

    def __init__(
        self,
        identity: NodeIdentity,
        secrets: SharedSecrets,
        config: EndpointConfig,
        rng: Rng,
        *,
        accept_incoming: bool = True,
        session_config: SessionConfig | None = None,
        allowed_peers: Callable[[bytes], bool] | None = None,
    ) -> None:
        self.identity = identity
        self.secrets = secrets
        self.config = config
        if session_config is None:
            session_config = config if isinstance(config, SessionConfig) else SessionConfig()
        self.session_config = session_config
        self.counters = EndpointCounters()
        self._rng = rng
        self._out: list[tuple[bytes, Hashable]] = []
        self._events: deque[Event] = deque()
        self.handshakes = HandshakeTable(
            identity, secrets, config, rng, self.counters, self._send, self._events, allowed_peers
        )
        self.handshakes.accept_incoming = accept_incoming
        self._sessions: dict[bytes, Session] = {}
        self._by_local_index: dict[bytes, Session] = {}
        self._tombstones: OrderedDict[bytes, float] = OrderedDict()
        self._dirty: dict[bytes, Session] = {}
        self._deadlines: DeadlineHeap[bytes] = DeadlineHeap()

    def __repr__(self) -> str:
        return f"Endpoint(sessions={len(self._sessions)}, handshakes={len(self.handshakes)})"

    # -- reading ------------------------------------------------------------------------------
    @property
    def accept_incoming(self) -> bool:
        """Whether peers' INITs are answered (server mode)."""
        return self.handshakes.accept_incoming

    @accept_incoming.setter
    def accept_incoming(self, value: bool) -> None:
        """Answer peers' INITs (True) or take part only in our own handshakes."""
        self.handshakes.accept_incoming = value

    @property
    def sessions(self) -> Mapping[bytes, Session]:
        """The live sessions by id (a read-only view)."""
        return MappingProxyType(self._sessions)

    @property
    def drops(self) -> Counter[str]:
        """Packets dropped, by reason (§11)."""
        return self.counters.drops

    def live_handshakes(self) -> int:
        """Handshakes in flight (initiated and half-open)."""
        return len(self.handshakes)

    def session(self, session_id: bytes) -> Session:
        """The live session with this id; raises :class:`SessionNotFound`. Its methods change it
        (``send_message``, ``close``, ...); then call :meth:`datagrams_to_send`."""
        session = self._sessions.get(session_id)
        if session is None:
            raise SessionNotFound(f"no live session {session_id.hex()}")
        return session

    def get_session(self, session_id: bytes) -> Session | None:
        """The live session with this id, or None."""
        return self._sessions.get(session_id)

    def bound_to(self, addr: Hashable) -> bool:
        """Whether a session or a handshake in flight uses ``addr`` (e.g. a WebSocket
        connection that still carries something)."""
        return any(s.addr == addr for s in self._sessions.values()) or self.handshakes.bound_to(
            addr
        )

    def room_available(self, room: SendRoom) -> None:
        """A reliable link's send queue drained (``room`` is its ``Link.room``): the sessions
        it held back for room send again at the next ``datagrams_to_send``, and once the queue
        is empty those that held back a partial record too."""
        waiting = room.held + room.corked if room.empty else room.held
        for session_id in waiting:
            session = self._sessions.get(session_id)
            if session is not None:
                self._dirty[session_id] = session
        room.held.clear()
        if room.empty:
            room.corked.clear()

    def snapshot(self) -> EndpointSnapshot:
        """The endpoint's figures now, frozen."""
        return EndpointSnapshot.of(
            self.counters,
            sessions=len(self._sessions),
            handshakes_in_flight=len(self.handshakes),
            tombstones=len(self._tombstones),
        )

    def recently_closed(self, session_id: bytes) -> bool:
        """Whether ``session_id`` closed within ``tombstone_s`` (its stragglers are dropped
        as ``tombstone``)."""
        return session_id in self._tombstones

    # -- app -> core --------------------------------------------------------------------------
    def connect(
        self,
        addr: Hashable,
        now: float,
        *,
        link: Link,
        timestamp_ns: int,
        timeout_s: float,
        peer_node_id: bytes | None = None,
    ) -> int:
        """Start a handshake with ``addr`` over ``link``; returns a handle that the
        :class:`~seigr_stt.core.events.SessionEstablished` or
        :class:`~seigr_stt.core.events.HandshakeAborted` event will carry. Then call
        :meth:`datagrams_to_send`. Raises :class:`ProtocolError` at ``max_sessions``.

        ``timestamp_ns`` must grow across this node's handshakes (wall-clock nanoseconds): a
        responder refuses one not newer than the last it accepted from us (§4). With
        ``peer_node_id`` the handshake aborts unless the responder proves that node id."""
        if len(self._sessions) + len(self.handshakes) >= self.config.max_sessions:
            raise ProtocolError(f"max_sessions ({self.config.max_sessions}) reached")
        index = self.handshakes.new_index(self._by_local_index.__contains__)
        return self.handshakes.connect(
            index,
            addr,
            link,
            now,
            timestamp_ns=timestamp_ns,
            timeout_s=timeout_s,
            capabilities=self.config.capabilities,
            expected_peer=peer_node_id,
        )

    def cancel_connect(self, handle: int, now: float) -> None:
        """Forget an initiated handshake (the caller gave up on it); then call
        :meth:`datagrams_to_send`."""
        self.handshakes.cancel(handle)
        for session in list(self._sessions.values()):
            if session.handle == handle and session.state != SessionState.CLOSED:
                session.close(CloseCode.NORMAL, "connect cancelled", now)

    def abort_address(self, addr: Hashable, code: int, reason: str) -> None:
        """Abort every session and handshake bound to ``addr`` (a closed link), and forget it
        as another path of the other sessions (§18); then call :meth:`datagrams_to_send`."""
        for session in list(self._sessions.values()):
            if session.addr == addr:
                session.abort(code, reason)
            elif session.standby or session.path.probes or session.path.candidate is not None:
                session.forget_path(addr)
        self.handshakes.forget_address(addr)

    # -- network -> core ----------------------------------------------------------------------
    def receive_datagram(self, data: bytes, addr: Hashable, now: float, link: Link) -> None:
        """Process one packet from ``addr`` that came by ``link``. Never raises for anything
        the packet contains. Then (once per batch of packets is enough) call
        :meth:`datagrams_to_send`."""
        counters = self.counters
        counters.packets_received += 1
        counters.bytes_received += len(data)
        if len(data) < 2:
            counters.drops[DropReason.SHORT] += 1
            return
        if data[0] != PROTOCOL_VERSION:
            self.handshakes.receive_other_version(data, addr)  # counts the drop (§19)
            return
        ptype = data[1]
        if ptype == PacketType.DATA:
            self._receive_record(data, addr, now, link)
            return
        if ptype == PacketType.COOKIE_REPLY:
            self.handshakes.receive_cookie_reply(data)
            return
        if ptype not in (
            PacketType.HANDSHAKE_INIT,
            PacketType.HANDSHAKE_RESPONSE,
            PacketType.HANDSHAKE_FINAL,
        ):
            counters.drops[DropReason.TYPE] += 1
            return
        parsed = self.handshakes.check_packet(data)
        if parsed is None:
            return
        _, sender, receiver = parsed
        if ptype == PacketType.HANDSHAKE_INIT:
            self.handshakes.receive_init(
                data,
                sender,
                addr,
                link,
                now,
                session_count=len(self._sessions),
                # Our half must be unused, and so must the whole id the initiator's half makes
                # with it: a member must not make two of its sessions share an id (§4.4).
                new_index=lambda: self.handshakes.new_index(
                    lambda index: index in self._by_local_index or sender + index in self._sessions
                ),
            )
        elif ptype == PacketType.HANDSHAKE_RESPONSE:
            completed = self.handshakes.receive_response(
                data, receiver, len(self._sessions), now, self._sessions.__contains__
            )
            if completed is not None:
                self._register(completed, now)
                self.handshakes.confirming(completed, now)
        else:
            self._receive_final(data, sender, receiver, now)

    def _receive_final(self, data: bytes, sender: bytes, receiver: bytes, now: float) -> None:
        established = self._by_local_index.get(receiver)
        if established is not None:
            digest = established.final_digest
            if (
                not established.initiator
                and established.peer_index == sender
                and digest is not None
                and hmac.compare_digest(digest, crypto.mac(self.secrets.mac1_key, data))
            ):
                established.confirm_again()  # our confirming record was lost
                self.counters.drops[DropReason.DUPLICATE_FINAL] += 1
            else:
                self.counters.drops[DropReason.HANDSHAKE_STATE] += 1
            return
        completed = self.handshakes.receive_final(data, receiver, now)
        if completed is not None:
            self._register(completed, now)

    def _receive_record(self, data: bytes, addr: Hashable, now: float, link: Link) -> None:
        try:
            header = parse_header(data)
        except RecordError:
            short = len(data) < RECORD_HEADER_SIZE
            self.counters.drops[DropReason.SHORT if short else DropReason.MALFORMED] += 1
            return
        session = self._sessions.get(header.session_id)
        if session is None:
            tombstone = header.session_id in self._tombstones
            self.counters.drops[
                DropReason.TOMBSTONE if tombstone else DropReason.UNKNOWN_SESSION
            ] += 1
            return
        reason = session.receive_record(data, header, addr, now, link)
        if reason is not None:
            self.counters.drops[reason] += 1
        self._dirty[session.session_id] = session

    def _register(self, completed: Completed, now: float) -> None:
        session = Session(
            completed.result,
            completed.addr,
            completed.link,
            now,
            config=self.session_config,
            handle=completed.handle,
            on_change=self._changed,
            rtt_sample_s=completed.rtt_sample_s,
            rng=self._rng,
        )
        session.final_digest = completed.final_digest
        assert session.session_id not in self._sessions, "session ids are unique"
        self._sessions[session.session_id] = session
        self._by_local_index[session.local_index] = session
        self.counters.sessions_created += 1
        self._dirty[session.session_id] = session

    def _changed(self, session: Session) -> None:
        self._dirty[session.session_id] = session

    def _send(self, packet: bytes, addr: Hashable) -> None:
        self._out.append((packet, addr))

    # -- core -> network ----------------------------------------------------------------------
    def _collect(self, now: float) -> None:
        while self._dirty:
            dirty, self._dirty = self._dirty, {}
            for session in dirty.values():
                self._out += session.flush(now)
                if session.events:
                    self._take_events(session)
                if session.state != SessionState.HANDSHAKE:
                    self.handshakes.confirmed(session.session_id)
                if session.state == SessionState.CLOSED:
                    self._reap(session, now)
                else:
                    self._deadlines.set(session.session_id, session.get_timer())

    def _take_events(self, session: Session) -> None:
        for event in session.events:
            if isinstance(event, HandshakeAborted):
                self.counters.handshakes_failed += 1
        self._events.extend(session.events)
        session.events.clear()

    def _reap(self, session: Session, now: float) -> None:
        if self._sessions.pop(session.session_id, None) is None:
            return
        self._by_local_index.pop(session.local_index, None)
        self._deadlines.discard(session.session_id)
        self._tombstones[session.session_id] = now + self.config.tombstone_s
        self.counters.sessions_closed += 1

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Hashable]]:
        """Every ``(packet, addr)`` due now, in order. Call after every entry point; then call
        :meth:`events_received`."""
        self._collect(now)
        out, self._out = self._out, []
        self.counters.packets_sent += len(out)
        self.counters.bytes_sent += sum(len(p) for p, _ in out)
        return out

    def events_received(self) -> list[Event]:
        """Pop the events produced so far (call after :meth:`datagrams_to_send`); then re-arm
        the timer at :meth:`get_timer`."""
        events = list(self._events)
        self._events.clear()
        return events

    # -- timers -------------------------------------------------------------------------------
    def get_timer(self) -> float | None:
        """The earliest deadline of the endpoint and all its sessions, or None."""
        candidates = [
            at for at in (self._deadlines.earliest(), self.handshakes.get_timer()) if at is not None
        ]
        if self._tombstones:
            candidates.append(next(iter(self._tombstones.values())))
        return min(candidates, default=None)

    def handle_timer(self, now: float) -> None:
        """Handle every deadline due at ``now``; then call :meth:`datagrams_to_send`."""
        for session_id, reason in self.handshakes.handle_timer(now):
            session = self._sessions.get(session_id)
            if session is not None:
                session.abort(CloseCode.NORMAL, reason, report_handshake=False)
        while self._tombstones:
            session_id, expires_at = next(iter(self._tombstones.items()))
            if expires_at > now:
                break
            del self._tombstones[session_id]
        for session_id in list(self._deadlines.pop_due(now)):
            session = self._sessions.get(session_id)
            if session is not None:
                session.handle_timer(now)
                self._dirty[session_id] = session
