#!/usr/bin/env python3
"""The figures of issue 11 ("Hardening II"), measured on real nodes over loopback.

One command (from the repository root, with the project installed)::

    python fuzz/hostile_figures.py [--only stall,memory,amplification,websocket]

Four measurements, each the audit's attack (docs: ``../shared/audit/security-2026-12.md``) played
against today's code with the default configuration unless said otherwise:

``stall``
    A member sends ``n`` and then ``4n`` overlapping 3-byte chunks at offsets 1, 3, 5, … of a
    byte stream, then the one byte at offset 0 (audit F1, r03: 32,000 chunks, about 400 KB,
    stalled the old node's event loop for 9 s). Printed: the longest event-loop stall (a 1 ms
    ticker on the node's loop), the node's CPU time for the records, and the ratio 4n / n.
``memory``
    A member sends 1,100-byte chunks every 200 bytes of two byte streams, offset 0 never sent
    (F2, r04b: the old node kept every chunk, about 1,000x the window used). Printed: bytes sent,
    the node's traced memory growth (tracemalloc) against the two stream windows.
``amplification``
    A node serving a download; its peer's genuine record resent from a spoofed address (by an
    on-path outsider), or a record the member seals itself, granting all the credit there is,
    from a spoofed address (F3, r13: 11 MiB sent to the spoofed address for one 68-byte record);
    the peer then stays silent for 3 s. Printed: bytes sent to the spoofed address over bytes
    received from it, over real sockets, and in the sans-I/O simulator exactly as r13 ran it.
``websocket``
    An outsider opens WebSocket connections from four loopback hosts and sends nothing, garbage
    or an INIT of another group (F8, r09: the old node held every one forever); a member
    connects meanwhile; then a connection whose session ended goes idle. Printed: connections
    accepted, refused, closed at the first-packet deadline and for idleness, and when.

Loopback only; the whole run takes about 30 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import socket
import sys
import time
import tracemalloc
from collections.abc import Callable, Hashable
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from seigr_stt import NodeConfig, STTNode, STTSession, generate_seed
from seigr_stt.core.frames import Frame, MaxData, MaxStreamData, Stream, serialize_frames
from seigr_stt.core.handshake import InitiatorHandshake
from seigr_stt.core.identity import NodeIdentity, SharedSecrets
from seigr_stt.core.link import Link
from seigr_stt.core.record import pack_header, seal_record
from seigr_stt.core.session import Session
from seigr_stt.testing import Net

LOOPBACK = "127.0.0.1"
MIB = 1 << 20


# -- tools ----------------------------------------------------------------------------------------
def forge(session: Session, frames: list[Frame]) -> bytes:
    """A record of ``frames`` sealed with ``session``'s genuine send key and next counter."""
    aead, epoch, echo, counter = session.keys.next_send()
    header = pack_header(epoch, echo, session.session_id, counter)
    return seal_record(aead, header, counter, serialize_frames(frames))


class LoopLag:
    """The longest time the event loop did not run a 1 ms ticker."""

    def __init__(self) -> None:
        self.max_lag = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.001)
            self.max_lag = max(self.max_lag, time.perf_counter() - before - 0.001)

    async def __aenter__(self) -> LoopLag:
        self._task = asyncio.create_task(self._run())
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.sleep(0.002)
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll ``predicate`` (a counter or a state) until true; TimeoutError after ``timeout``."""
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - plain counters, no event to await
            await asyncio.sleep(0.002)


class Member:
    """A member node with a session to ``server`` over UDP that sends records of its own."""

    def __init__(self, node: STTNode, server: STTNode, session: STTSession) -> None:
        self.node, self.server, self.session = node, server, session
        self.core = node.endpoint.sessions[session.session_id]
        self.core._protocol_violation = lambda now, detail: None  # type: ignore[method-assign]

    @classmethod
    async def connect(cls, shared: bytes, server: STTNode) -> Member:
        node = STTNode(generate_seed(), shared, LOOPBACK, 0, config=server.config)
        await node.start()
        assert server.udp_address is not None
        return cls(node, server, await node.connect_udp(*server.udp_address))

    async def send_paced(self, records: list[bytes], batch: int = 16) -> None:
        """Send ``records`` from the session's address, ``batch`` at a time, each batch read
        by the server before the next (nothing is lost in the socket buffers)."""
        udp, counters = self.node.udp_transport, self.server.endpoint.counters
        assert udp is not None
        assert self.server.udp_address is not None
        base = counters.packets_received
        for i, record in enumerate(records):
            udp.sendto(record, self.server.udp_address)
            if i % batch == batch - 1:
                await until(lambda: counters.packets_received - base >= i + 1)  # noqa: B023
        await until(lambda: counters.packets_received - base >= len(records))


class CPU:
    """The thread's CPU time the server's endpoint spends on what it receives and sends."""

    def __init__(self, node: STTNode) -> None:
        self.seconds = 0.0
        endpoint = node.endpoint
        receive, collect = endpoint.receive_datagram, endpoint.datagrams_to_send

        def timed_receive(data: bytes, addr: Hashable, now: float, link: Link) -> None:
            started = time.thread_time()
            try:
                receive(data, addr, now, link)
            finally:
                self.seconds += time.thread_time() - started

        def timed_collect(now: float) -> list[tuple[bytes, Any]]:
            started = time.thread_time()
            try:
                return collect(now)
            finally:
                self.seconds += time.thread_time() - started

        endpoint.receive_datagram = timed_receive  # type: ignore[method-assign]
        endpoint.datagrams_to_send = timed_collect  # type: ignore[method-assign]


# -- F1: the event loop under overlapping chunks --------------------------------------------------
async def stall(n: int) -> None:
    print(f"\n## Event-loop stall: n = {n:,} and 4n = {4 * n:,} overlapping 3-byte chunks (F1)\n")
    shared = generate_seed()
    server = STTNode(generate_seed(), shared, LOOPBACK, 0)
    await server.start(server_mode=True)
    member = await Member.connect(shared, server)
    cpu = CPU(server)
    rows = []
    try:
        for index, count in enumerate((n, 4 * n)):
            sid = index << 2
            content = bytes((7 * i) % 251 for i in range(2 * count + 2))
            frames: list[Frame] = [
                Stream(sid, 2 * i + 1, False, content[2 * i + 1 : 2 * i + 4]) for i in range(count)
            ]
            records = [forge(member.core, frames[k : k + 100]) for k in range(0, count, 100)]
            trigger = forge(member.core, [Stream(sid, 0, False, content[:1])])
            cpu.seconds = 0.0
            async with LoopLag() as lag:
                await member.send_paced(records)
                stored = cpu.seconds
                await member.send_paced([trigger])
            recv = server.endpoint.sessions[member.session.session_id].streams.recv[sid]
            assert recv.delivered == len(content), "the stream did not complete"
            sent = sum(map(len, records)) + len(trigger)
            rows.append((count, len(records) + 1, sent, lag.max_lag, cpu.seconds, stored))
    finally:
        await member.node.stop()
        await server.stop()
    print("| chunks | records | bytes sent | longest loop stall | node CPU | the last byte's |")
    print("|---:|---:|---:|---:|---:|---:|")
    for count, records_n, sent, lag_s, cpu_s, stored_s in rows:
        lag_ms, cpu_ms, last_ms = lag_s * 1e3, cpu_s * 1e3, (cpu_s - stored_s) * 1e3
        print(
            f"| {count:,} | {records_n} | {sent:,} | {lag_ms:.1f} ms | {cpu_ms:.1f} ms "
            f"| {last_ms:.2f} ms |"
        )
    (_, _, _, lag1, cpu1, _), (_, _, _, lag4, cpu4, _) = rows
    print(f"\n4n / n: CPU {cpu4 / cpu1:.1f}x, stall {lag4 / lag1:.1f}x (quadratic would be 16x).")
    print("The longest stall is a batch of 16 records of 100 frames read in one go; the last")
    print("column is the record of the one byte that makes the stream contiguous (the audit's")
    print("old node: 0.72 s of CPU for it after 8,000 chunks, 8.76 s after 32,000).")


# -- F2: memory against the windows ---------------------------------------------------------------
async def memory() -> None:
    print("\n## Memory for overlapping out-of-order chunks against the windows (F2)\n")
    shared = generate_seed()
    server = STTNode(generate_seed(), shared, LOOPBACK, 0)
    await server.start(server_mode=True)
    member = await Member.connect(shared, server)
    window = server.config.stream_window
    chunk, step, streams = 1100, 200, 2
    try:
        records = [
            forge(member.core, [Stream(index << 2, offset, False, bytes([index]) * chunk)])
            for index in range(streams)
            for offset in range(1, window - chunk, step)
        ]
        sent = sum(map(len, records))
        gc.collect()
        tracemalloc.start()
        base, _ = tracemalloc.get_traced_memory()
        await member.send_paced(records, batch=64)
        del records
        gc.collect()
        held, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        core = server.endpoint.sessions[member.session.session_id]
        stored = sum(core.streams.recv[i << 2].held_bytes for i in range(streams))
    finally:
        await member.node.stop()
        await server.stop()
    growth = held - base
    print(f"stream window {window:,} B, session window {server.config.session_window:,} B")
    windows = streams * window
    print(f"member sent {sent:,} B in chunks of {chunk:,} B every {step} B on {streams} streams")
    print(f"node holds {stored:,} B of out-of-order data: {stored / windows:.2f}x the windows")
    print(f"traced memory growth {growth:,} B (peak {peak - base:,} B):")
    print(f"{growth / windows:.2f}x the two stream windows, {growth / sent:.3f}x what was sent")
    print("(the audit's old node: 997x the window used; 52x with 2-byte chunks)")


# -- F3: amplification on roaming -----------------------------------------------------------------
class Relay:
    """client <-> relay <-> server over loopback UDP; ``divert`` takes client packets off the
    path (it returns True for those it took)."""

    def __init__(self, server: tuple[str, int]) -> None:
        self.loop = asyncio.get_running_loop()
        self.server = server
        self.client: tuple[str, int] | None = None
        self.divert: Callable[[bytes], bool] | None = None
        self.front = self._socket()
        self.back = self._socket()
        self.loop.add_reader(self.front.fileno(), self._from_client)
        self.loop.add_reader(self.back.fileno(), self._from_server)

    @staticmethod
    def _socket() -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.bind((LOOPBACK, 0))
        return sock

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.front.getsockname()
        return str(host), int(port)

    def _from_client(self) -> None:
        while True:
            try:
                data, addr = self.front.recvfrom(65535)
            except BlockingIOError:
                return
            self.client = (str(addr[0]), int(addr[1]))
            if self.divert is None or not self.divert(data):
                self.back.sendto(data, self.server)

    def _from_server(self) -> None:
        while True:
            try:
                data = self.back.recv(65535)
            except BlockingIOError:
                return
            if self.client is not None:
                self.front.sendto(data, self.client)

    def close(self) -> None:
        for sock in (self.front, self.back):
            self.loop.remove_reader(sock.fileno())
            sock.close()


class Spoofer:
    """The attacker's own UDP socket: counts what the node sends it."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.sock = Relay._socket()
        self.received = 0
        self.datagrams = 0
        self.loop.add_reader(self.sock.fileno(), self._read)

    def _read(self) -> None:
        while True:
            try:
                data = self.sock.recv(65535)
            except BlockingIOError:
                return
            self.received += len(data)
            self.datagrams += 1

    def close(self) -> None:
        self.loop.remove_reader(self.sock.fileno())
        self.sock.close()


async def amplification_over_sockets(attacker: str) -> tuple[int, int, int, bool, bool]:
    """(bytes received from the spoofed address, bytes sent to it, datagrams sent to it,
    whether the session moved, whether the download went on afterwards)."""
    shared = generate_seed()
    server = STTNode(generate_seed(), shared, LOOPBACK, 0)
    client = STTNode(generate_seed(), shared, LOOPBACK, 0)
    await server.start(server_mode=True)
    await client.start()
    assert server.udp_address is not None
    relay = Relay(server.udp_address)
    spoofer = Spoofer()
    moved: list[object] = []
    server.on("peer_address_changed", moved.append)
    sent: list[bytes] = []
    try:
        session = await client.connect_udp(*relay.address)
        peer = server.session_manager.get_session(session.session_id)
        assert peer is not None
        received = [0]

        async def serve() -> None:  # an endless download from the server
            stream = await peer.open_stream()
            chunk = bytes(MIB)
            while True:
                await stream.write(chunk)
                await stream.drain()

        async def download() -> None:
            async for stream in session.incoming_streams():
                while data := await stream.read(MIB):
                    received[0] += len(data)

        tasks = [asyncio.create_task(serve()), asyncio.create_task(download())]
        await asyncio.sleep(1.0)  # a normal download for 1 s: the congestion window grows

        def divert(data: bytes) -> bool:
            if not sent and len(data) > 1 and data[1] == 5:  # the client's next record
                if attacker == "member":
                    core = client.endpoint.sessions[session.session_id]
                    frames: list[Frame] = [MaxData(1 << 40)]
                    frames += [MaxStreamData(sid, 1 << 40) for sid in core.streams.recv]
                    data = forge(core, frames)
                sent.append(data)
                spoofer.sock.sendto(data, server.udp_address)  # type: ignore[arg-type]
            return bool(sent)  # from now on the client is silent (r13: the member is gone)

        relay.divert = divert
        await until(lambda: bool(sent))
        await asyncio.sleep(3.0)
        relay.divert = None  # the client's packets flow again: the download goes on
        before = received[0]
        await until(lambda: received[0] > before + 4 * MIB, timeout=30)
        completed = True
        for task in tasks:
            task.cancel()
    finally:
        spoofer.close()
        relay.close()
        await client.stop()
        await server.stop()
    return len(sent[0]), spoofer.received, spoofer.datagrams, bool(moved), completed


def amplification_r13(with_credit: bool) -> tuple[int, int, int]:
    """The audit's r13 in the sans-I/O simulator: (record size, datagrams, bytes sent to X)."""
    net = Net(seed=4, delay_s=(0.02, 0.02))  # 40 ms RTT
    victim = net.add_node("V")
    member = net.add_node("M")
    sid = net.establish(member, victim)
    stream_id = victim.session(sid).open_stream(net.now)
    victim.session(sid).write_stream(stream_id, bytes(64 * MIB), False, net.now)
    net.flush()
    net.run(1.0)  # a normal download for 1 s
    net.kill(member)  # from now on M only spoofs (and its real address gets nothing)
    frames: list[Frame] = [MaxData(1 << 40), MaxStreamData(stream_id, 1 << 40)]
    spoofed = forge(member.endpoint.sessions[sid], frames if with_credit else [])
    mark = len(net.log)
    net.inject(victim, spoofed, "X")
    net.run(20.0)  # X never answers
    to_x = [p for p in net.log[mark:] if p.sender == "V" and p.dst == "X"]
    return len(spoofed), len(to_x), sum(len(p.data) for p in to_x)


async def amplification() -> None:
    print("\n## Amplification on roaming: bytes sent to a spoofed address / bytes from it (F3)\n")
    print("| where | attacker | record | sent to the spoofed address | ratio | moved |")
    print("|---|---|---:|---:|---:|---|")
    for attacker in ("on-path", "member"):
        size, to_x, datagrams, moved, completed = await amplification_over_sockets(attacker)
        assert completed, "the download did not go on"
        print(
            f"| real sockets | {attacker} | {size} B | {to_x} B in {datagrams} datagrams "
            f"| {to_x / size:.2f} | {'yes' if moved else 'no'} |"
        )
    for with_credit in (False, True):
        size, datagrams, to_x = amplification_r13(with_credit)
        kind = "member, credit" if with_credit else "member, empty"
        print(
            f"| simulator (r13) | {kind} | {size} B | {to_x} B in {datagrams} datagrams "
            f"| {to_x / size:.2f} | no |"
        )
    print("\n(the audit's r13 on the old code: 0.53 MiB for 52 B (x10,613), 11.07 MiB for 68 B)")


# -- F8: WebSocket connections of outsiders -------------------------------------------------------
def other_hosts() -> list[str]:
    hosts = []
    for host in ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"):
        with socket.socket() as probe:
            try:
                probe.bind((host, 0))
            except OSError:
                continue
        hosts.append(host)
    return hosts


async def websocket_figures() -> None:
    print("\n## WebSocket connections of outsiders (F8, F14)\n")
    shared = generate_seed()
    server = STTNode(generate_seed(), shared, LOOPBACK, 0, ws_port=0)
    await server.start(server_mode=True)
    assert server.ws_url is not None
    url = server.ws_url

    def stats() -> dict[str, Any]:
        ws: dict[str, Any] = server.get_stats()["transports"]["websocket"]
        return ws

    config = server.config
    hosts = other_hosts() or [LOOPBACK]
    stranger = SharedSecrets.from_seed(generate_seed())
    held: list[ClientConnection] = []
    refused = 0
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        for host in hosts:
            for i in range(20):
                try:
                    ws = await ws_connect(
                        url, compression=None, proxy=None, local_addr=(host, 0), open_timeout=5
                    )
                except InvalidStatus:
                    refused += 1
                    continue
                held.append(ws)
                if i % 3 == 1:
                    await ws.send(os.urandom(300))  # garbage
                elif i % 3 == 2:  # an INIT of another group
                    identity = NodeIdentity.from_seed(generate_seed())
                    init = InitiatorHandshake(
                        identity,
                        stranger,
                        os.urandom(4),
                        capabilities=0,
                        timestamp_ns=time.time_ns(),
                        rng=os.urandom,
                    )
                    await ws.send(init.init_packet())
        pending_max = stats()["pending"]
        member = STTNode(generate_seed(), shared, LOOPBACK, 0)
        await member.start()
        t0 = loop.time()
        session = await member.connect_websocket(url)
        connect_s = loop.time() - t0
        opened = len(held)
        await until(lambda: stats()["closed_handshake_timeout"] >= opened, timeout=30)
        closed_after = loop.time() - started
        await until(lambda: stats()["connections"] == 1, timeout=30)  # the member's
        gone_after = loop.time() - started
        first = stats()
        # A connection whose session ended: idle, closed after websocket_idle_timeout_s (30 s by
        # default; here a node with 1 s).
        idle_config = NodeConfig(websocket_idle_timeout_s=1.0)
        idle_server = STTNode(generate_seed(), shared, LOOPBACK, 0, ws_port=0, config=idle_config)
        await idle_server.start(server_mode=True)
        assert idle_server.ws_url is not None
        idle_session = await member.connect_websocket(idle_server.ws_url)
        await idle_session.close()
        t1 = loop.time()
        idle_ws = idle_server.get_stats
        await until(lambda: idle_ws()["transports"]["websocket"]["closed_idle"] >= 1, timeout=30)
        idle_after = loop.time() - t1
        await session.close()
        await member.stop()
        await idle_server.stop()
    finally:
        for ws in held:
            with contextlib.suppress(Exception):
                await ws.close()
        await server.stop()
    print(
        f"outsider: {len(hosts)} hosts x 20 connections: {opened} accepted (pending at most "
        f"{pending_max}; per host {config.websocket_max_pending_per_source}), {refused} refused "
        f"(503); {first['refused_connections']} counted refused by the node"
    )
    print(
        f"accepted ones closed at the first-packet deadline: {first['closed_handshake_timeout']} "
        f"of {opened}, within {closed_after:.1f} s of the first "
        f"(websocket_handshake_timeout_s = {config.websocket_handshake_timeout_s:g} s); "
        f"their sockets gone {gone_after:.1f} s after the first (only the member's is left)"
    )
    print(f"a member connected over WebSocket meanwhile in {connect_s * 1e3:.0f} ms")
    print(
        f"a connection whose session ended was closed as idle after {idle_after:.1f} s "
        f"(websocket_idle_timeout_s = 1 s on that node; 30 s by default)"
    )


# -- main -----------------------------------------------------------------------------------------
FIGURES = ("stall", "memory", "amplification", "websocket")


async def main_async(only: list[str], n: int) -> None:
    if "stall" in only:
        await stall(n)
    if "memory" in only:
        await memory()
    if "amplification" in only:
        await amplification()
    if "websocket" in only:
        await websocket_figures()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(FIGURES), help="comma-separated figures")
    parser.add_argument("--n", type=int, default=8000, help="chunks of the smaller stall run")
    args = parser.parse_args(argv)
    only = args.only.split(",")
    unknown = set(only) - set(FIGURES)
    if unknown:
        parser.error(f"unknown figures: {', '.join(sorted(unknown))}")
    if not 0 < args.n <= 100_000:
        parser.error("--n must be within 1..100000")
    print(f"seigr_stt hostile figures ({', '.join(only)}), Python {sys.version.split()[0]}")
    asyncio.run(main_async(only, args.n))
    return 0


if __name__ == "__main__":
    sys.exit(main())
