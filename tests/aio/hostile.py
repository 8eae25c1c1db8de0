"""Playing an attacker against real nodes over loopback sockets: what the hostile-input suites
share (``test_hostile_node``, ``test_hostile_member``, ``test_hostile_path``).

* a **member** holds the shared seed and has a session: :func:`forge_record` seals any frames
  with the session's genuine send key and counter (what a member's own implementation can put on
  the wire), and :class:`Member` sends such records from the session's own address, over UDP
  or over the session's WebSocket connection;
* an **on-path outsider** sees and injects packets and knows no seed: :class:`~tests.aio.helpers.
  UDPRelay` (with ``divert``) takes a genuine record off the path, and a socket of its own
  re-sends it;
* :class:`LoopLag` measures how long the event loop was kept from running anything else, and
  :class:`ServerWork` how long a node's endpoint spent on what it received.

All traffic stays on 127.0.0.1; every wait is bounded (:data:`tests.aio.helpers.WAIT_S`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

import pytest

from seigr_stt import STTNode, STTSession
from seigr_stt.aio.websocket import WSLink
from seigr_stt.core.endpoint import Endpoint
from seigr_stt.core.frames import Frame, serialize_frames
from seigr_stt.core.handshake import InitiatorHandshake
from seigr_stt.core.identity import NodeIdentity, SharedSecrets
from seigr_stt.core.link import Link
from seigr_stt.core.record import pack_header, seal_record
from seigr_stt.core.session import Session
from tests.aio.helpers import NodeFactory, Transport, connect, receive_n, recv_all, wait_until

__all__ = [
    "LoopLag",
    "Member",
    "ServerWork",
    "core_session",
    "drops",
    "endpoint_of",
    "forge_record",
    "make_member",
    "member_init",
    "recv_all",
    "round_trip",
]


def endpoint_of(node: STTNode) -> Endpoint:
    """The node's sans-I/O endpoint (its tables are what a flood must not grow)."""
    return node.endpoint


def core_session(node: STTNode, session_id: bytes) -> Session:
    """The node's core session ``session_id`` (KeyError once it is gone)."""
    return endpoint_of(node).sessions[session_id]


def drops(node: STTNode) -> Counter[str]:
    """The node's drop counters by reason."""
    return Counter(node.get_stats()["drops"])


def member_init(secrets: SharedSecrets, identity: NodeIdentity) -> InitiatorHandshake:
    """A genuine INIT as any holder of the shared seed can build it (fresh index and key)."""
    return InitiatorHandshake(
        identity,
        secrets,
        os.urandom(4),
        capabilities=0,
        timestamp_ns=time.time_ns(),
        rng=os.urandom,
    )


def forge_record(session: Session, frames: bytes, *, epoch: int | None = None) -> bytes:
    """A record sealed with ``session``'s real send key: what an authenticated (member) peer
    that breaks the protocol can send."""
    key, real_epoch, echo, counter = session.keys.next_send()
    header = pack_header(real_epoch if epoch is None else epoch, echo, session.session_id, counter)
    return seal_record(key, header, counter, frames)


async def round_trip(session: STTSession, client: STTNode, server: STTNode, tag: bytes) -> None:
    """One message each way on ``session``: the session still works."""
    peer = server.session_manager.get_session(session.session_id)
    assert peer is not None
    await session.send(b"up:" + tag, stream_id=7)
    (up,) = await receive_n(server, 1)
    await peer.send(b"down:" + tag, stream_id=7)
    (down,) = await receive_n(client, 1)
    assert (up.data, down.data) == (b"up:" + tag, b"down:" + tag)


@dataclass
class Member:
    """A hostile member: a node of its own with a genuine session to ``server``, which it uses
    to send records of any frames it likes, sealed with that session's keys, from the session's
    own address (its UDP socket, or its WebSocket connection)."""

    node: STTNode
    server: STTNode
    session: STTSession  # the member's side
    peer: STTSession  # the server's side
    transport: Transport
    sent: int = 0  # forged records sent
    _base: int = 0  # the server's packets_received when the member started counting

    @property
    def core(self) -> Session:
        """The member's core session: its keys seal the forged records."""
        return core_session(self.node, self.session.session_id)

    @property
    def server_core(self) -> Session:
        """The server's core session with the member."""
        return core_session(self.server, self.session.session_id)

    def record(self, frames: list[Frame]) -> bytes:
        """One record of ``frames`` (any frames, any count) under the session's keys."""
        return forge_record(self.core, serialize_frames(frames))

    def send_raw(self, record: bytes) -> None:
        """Send ``record`` to the server from the session's address."""
        if self.transport == "udp":
            udp = self.node.udp_transport
            assert udp is not None
            assert self.server.udp_address is not None
            udp.sendto(record, self.server.udp_address)
        else:
            link = self.core.addr
            assert isinstance(link, WSLink)
            link.send(record)
        self.sent += 1

    def send(self, frames: list[Frame]) -> None:
        """Forge one record of ``frames`` and send it."""
        self.send_raw(self.record(frames))

    def mark(self) -> None:
        """Count from now on: :meth:`settle` waits for what is sent after this."""
        self.sent = 0
        self._base = endpoint_of(self.server).counters.packets_received

    async def settle(self, slack: int = 0) -> None:
        """Wait until the server has read all but ``slack`` of the records sent since
        :meth:`mark` (keeps a burst within the socket buffers: nothing is lost)."""
        counters = endpoint_of(self.server).counters
        await wait_until(
            lambda: counters.packets_received - self._base >= self.sent - slack,
            "the server to read the member's records",
        )

    async def send_paced(self, records: list[bytes], batch: int = 32) -> None:
        """Send ``records`` in batches of ``batch``, each read by the server before the next."""
        self.mark()
        for i, record in enumerate(records):
            self.send_raw(record)
            if i % batch == batch - 1:
                await self.settle()
        await self.settle()


async def make_member(
    make_node: NodeFactory,
    server: STTNode,
    transport: Transport,
    monkeypatch: pytest.MonkeyPatch | None = None,
    **node_args: Any,
) -> Member:
    """Start a member node, connect it to ``server`` over ``transport``. With ``monkeypatch``,
    the member ignores what the server's answers say about its forgeries (a hostile member's
    own implementation keeps no state it does not want): no protocol violation closes it."""
    node = await make_node(server_mode=False, **node_args)
    session, peer = await connect(node, server, transport)
    member = Member(node, server, session, peer, transport)
    if monkeypatch is not None:
        monkeypatch.setattr(member.core, "_protocol_violation", lambda now, detail: None)
    return member


@dataclass
class LoopLag:
    """The longest the event loop was kept from running a 1 ms ticker: the stall a peer's input
    causes everything else on the node (other sessions, timers). Use as ``async with``."""

    period: float = 0.001
    max_lag: float = 0.0
    ticks: int = 0
    _task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(self.period)
            self.ticks += 1
            self.max_lag = max(self.max_lag, time.perf_counter() - before - self.period)

    async def __aenter__(self) -> LoopLag:
        self._task = asyncio.create_task(self._run())
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        await asyncio.sleep(self.period)  # the last stall shows in the tick after it
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


@dataclass
class ServerWork:
    """CPU seconds a node's endpoint spends on received packets and on the records it builds in
    answer (``receive_datagram`` and ``datagrams_to_send``): the thread's CPU time around each
    call, so another process taking the core meanwhile does not count."""

    seconds: float = 0.0
    calls: Counter[str] = field(default_factory=Counter)

    def install(self, node: STTNode, monkeypatch: pytest.MonkeyPatch) -> ServerWork:
        """Time ``node``'s endpoint from now on (undone with ``monkeypatch``)."""
        endpoint = endpoint_of(node)
        receive, collect = endpoint.receive_datagram, endpoint.datagrams_to_send

        def timed_receive(data: bytes, addr: Hashable, now: float, link: Link) -> None:
            started = time.thread_time()
            try:
                receive(data, addr, now, link)
            finally:
                self.seconds += time.thread_time() - started
                self.calls["receive"] += 1

        def timed_collect(now: float) -> list[tuple[bytes, Hashable]]:
            started = time.thread_time()
            try:
                return collect(now)
            finally:
                self.seconds += time.thread_time() - started

        monkeypatch.setattr(endpoint, "receive_datagram", timed_receive)
        monkeypatch.setattr(endpoint, "datagrams_to_send", timed_collect)
        return self

    def reset(self) -> None:
        """Start counting again."""
        self.seconds = 0.0
        self.calls.clear()
