#!/usr/bin/env python3
"""Mutation fuzzer for every parser of seigr_stt, for a live node's UDP endpoint, and for the
stream and control frames of an authenticated session.

One command (from the repository root, with the project installed)::

    python fuzz/run.py --packets 1000000 [--seed N] [--targets parsers,endpoint,node,frames]

Targets (each gets ``--packets`` mutated inputs):

``parsers``
    ``frames.parse_frames``, ``record.parse_header``, ``handshake.parse_handshake_header`` and
    the handshake payload decoder (bounded msgpack and field checks). Each may only raise its
    own error type (``FrameError``, ``RecordError``, ``HandshakeFailed``).
``endpoint``
    ``Endpoint.receive_datagram`` on two sans-I/O endpoints with an established session, with
    genuine traffic (messages on several channels, a byte stream, datagrams, pings, key
    rotations) flowing between the mutated packets, and a pending handshake on the initiator
    that holds a cookie, so cookie replies and RESPONSEs reach their decryption.
``node``
    A live ``STTNode`` on 127.0.0.1 over UDP, with an established session that keeps exchanging
    messages (the server echoes); mutated packets come from the client's own address and from a
    stranger's socket.
``frames``
    A hostile member: records sealed with a live session's real keys, carrying generated
    sequences of STREAM (in order, overlapping, out of order, at and beyond the credit and the
    final size), ACK, MAX_DATA, MAX_STREAM_DATA, MAX_STREAMS, RESET_STREAM, STOP_SENDING, PING,
    PONG, DATAGRAM and (rarely) CLOSE frames, or their mutated encoding, handed to a sans-I/O
    endpoint. Each must be accepted or close the session cleanly (a protocol violation, or the
    member's CLOSE); a closed session is replaced by a new one. What the endpoint holds
    (out-of-order bytes, incomplete messages, fragments, streams, queued frames) is checked
    against the windows and limits every 16 records.

Every input of the first three targets is a mutation of captured valid packets of every type
(INIT, RESPONSE, FINAL, COOKIE_REPLY, records) or plaintexts (frames, handshake payloads): bit
flips, interesting bytes, truncation, extension, insertion, deletion, random ranges, splicing of
two packets, exact replays and random bytes behind a valid two-byte prefix, one to three stacked.

Asserted throughout: no exception escapes; no forgery is accepted (the application never
receives a byte that the legitimate peer did not send, nothing twice, nothing out of order;
no session is created or closed by the fuzz); the session still works at the end (everything
sent arrives); under valid keys (``frames``), no authentic record is dropped, no session closes
but cleanly, and memory stays within the flow-control windows. Figures are printed: inputs,
time, rate, drops or closes by reason. Exit status 1 on any failure; crashing inputs are
written to ``fuzz/crashes/``.

Loopback only. Every loop is bounded by ``--packets`` and by ``--max-seconds`` per target.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import socket
import sys
import time
import traceback
from collections import Counter, deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

from seigr_stt import NodeConfig, STTError, STTNode, generate_seed
from seigr_stt.constants import (
    PACKET_COOKIE_REPLY,
    PACKET_DATA,
    PACKET_HANDSHAKE_FINAL,
    PACKET_HANDSHAKE_INIT,
    PACKET_HANDSHAKE_RESPONSE,
    PROTOCOL_VERSION,
    CloseCode,
    SessionState,
)
from seigr_stt.core import handshake as handshake_module
from seigr_stt.core.events import (
    DatagramReceived,
    Event,
    HandshakeAborted,
    MessageReceived,
    SessionClosed,
    SessionEstablished,
    StreamDataReceived,
)
from seigr_stt.core.frames import (
    Ack,
    Close,
    Datagram,
    Frame,
    FrameError,
    MaxData,
    MaxStreamData,
    MaxStreams,
    Ping,
    Pong,
    ResetStream,
    StopSending,
    Stream,
    encode_varint,
    parse_frames,
    serialize_frames,
)
from seigr_stt.core.handshake import HandshakeFailed, parse_handshake_header
from seigr_stt.core.record import RecordError, pack_header, parse_header, seal_record
from seigr_stt.testing import Net, Node, Packet, make_seed

LOOPBACK = "127.0.0.1"
CRASH_DIR = Path(__file__).resolve().parent / "crashes"
PACKET_NAMES: dict[int, str] = {
    PACKET_HANDSHAKE_INIT: "init",
    PACKET_HANDSHAKE_RESPONSE: "response",
    PACKET_HANDSHAKE_FINAL: "final",
    PACKET_COOKIE_REPLY: "cookie",
    PACKET_DATA: "record",
}
INTERESTING: tuple[int, ...] = (
    0x00,
    0x01,
    0x02,
    0x03,
    0x04,
    0x05,
    0x06,
    0x07,
    0x0C,
    0x0D,
    0x3F,
    0x40,
    0x7F,
)
INTERESTING += (0x80, 0x81, 0xBF, 0xC0, 0xC4, 0xC6, 0xDD, 0xDF, 0xFE, 0xFF)


class FuzzFailure(AssertionError):
    """An invariant broke (not a crash of the code under test: a wrong result)."""


# -- mutation -------------------------------------------------------------------------------------
class Mutator:
    """Mutations of seed inputs; ``replay`` keeps exact copies among the outputs."""

    def __init__(self, rng: random.Random, *, replay: bool) -> None:
        self.rng = rng
        self.replay = replay
        self.ops = Counter[str]()

    def one(self, data: bytes, other: bytes) -> bytes:
        rng = self.rng
        op = rng.randrange(10)
        n = len(data)
        if op == 0 and n:  # flip 1-4 bits
            out = bytearray(data)
            for _ in range(rng.randint(1, 4)):
                bit = rng.randrange(n * 8)
                out[bit // 8] ^= 1 << (bit % 8)
            self.ops["flip"] += 1
            return bytes(out)
        if op == 1 and n:  # interesting bytes
            out = bytearray(data)
            for _ in range(rng.randint(1, 3)):
                out[rng.randrange(n)] = rng.choice(INTERESTING)
            self.ops["byte"] += 1
            return bytes(out)
        if op == 2:  # truncate
            self.ops["truncate"] += 1
            return data[: rng.randrange(n + 1)]
        if op == 3:  # extend
            self.ops["extend"] += 1
            tail = rng.randbytes(rng.randint(1, 64)) if rng.random() < 0.5 else bytes(16)
            return data + tail
        if op == 4:  # splice two inputs
            self.ops["splice"] += 1
            return data[: rng.randrange(n + 1)] + other[rng.randrange(len(other) + 1) :]
        if op == 5 and n:  # insert or delete one byte
            self.ops["indel"] += 1
            at = rng.randrange(n)
            if rng.random() < 0.5:
                return data[:at] + data[at + 1 :]
            return data[:at] + bytes([rng.randrange(256)]) + data[at:]
        if op == 6 and n:  # a random range
            self.ops["range"] += 1
            start = rng.randrange(n)
            end = min(n, start + rng.randint(1, 32))
            return data[:start] + rng.randbytes(end - start) + data[end:]
        if op == 7:  # random bytes behind a valid prefix
            self.ops["random"] += 1
            prefix = bytes([PROTOCOL_VERSION, rng.randint(0, 6)])
            return prefix + rng.randbytes(rng.choice((0, 10, 40, 60, 200, 300, 1100)))
        if op == 8 and self.replay:  # an exact copy
            self.ops["replay"] += 1
            return data
        self.ops["flip"] += 1
        if not n:
            return bytes([rng.randrange(256)])
        out = bytearray(data)
        out[rng.randrange(n)] ^= 1 << rng.randrange(8)
        return bytes(out)

    def mutate(self, seeds: list[bytes]) -> bytes:
        rng = self.rng
        data = rng.choice(seeds)
        for _ in range(1 if rng.random() < 0.7 else rng.randint(2, 3)):
            data = self.one(data, rng.choice(seeds))
        return data


# -- failures -------------------------------------------------------------------------------------
@dataclass
class Report:
    """What one target did: inputs, time, outcomes, failures."""

    name: str
    inputs: int = 0
    seconds: float = 0.0
    outcomes: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def fail(self, what: str, data: bytes | None = None) -> None:
        self.failures.append(what)
        if data is not None:
            CRASH_DIR.mkdir(exist_ok=True)
            name = f"{self.name}-{len(self.failures)}-{os.getpid()}.bin"
            (CRASH_DIR / name).write_bytes(data)
            self.failures[-1] += f" (input saved to fuzz/crashes/{name})"

    def print(self) -> None:
        rate = self.inputs / self.seconds if self.seconds else 0.0
        print(f"[{self.name}] {self.inputs:,} inputs in {self.seconds:.1f} s ({rate:,.0f}/s)")
        for key, value in sorted(self.outcomes.items()):
            print(f"    {key}: {value:,}")
        for note in self.notes:
            print(f"    {note}")
        print(f"    failures: {len(self.failures)}")
        for failure in self.failures[:20]:
            print(f"      {failure}")


# -- the corpus -----------------------------------------------------------------------------------
def frames_corpus() -> list[bytes]:
    """Plaintexts of records: every frame type, alone and together."""
    frames: list[Any] = [
        Ping(7),
        Pong(7),
        Datagram(b"datagram"),
        Close(0, "bye"),
        Ack(3, ((10, 12), (5, 7), (0, 2))),
        Stream(2, 0, False, b"\x05hello"),
        Stream(0, 1000, True, b"stream bytes"),
        ResetStream(4, 9, 100),
        StopSending(4, 9),
        MaxData(1 << 22),
        MaxStreamData(0, 1 << 20),
        MaxStreams(256),
    ]
    out = [serialize_frames([f]) for f in frames]
    out.append(serialize_frames(frames))
    out.append(serialize_frames([Ack(0, ((5, 5),)), Stream(6, 0, False, b"\x03abc\x01d")]))
    return out


def payload_corpus() -> list[bytes]:
    """Handshake payloads (msgpack maps) as the three messages carry them."""
    index, other = os.urandom(4), os.urandom(4)
    payloads: list[dict[str, Any]] = [
        {"i": index, "t": time.time_ns(), "c": 0, "p": bytes(200)},
        {"i": index, "r": other, "c": 3},
        {"i": index, "r": other},
        {"i": index, "t": 1, "c": 1 << 63, "p": b"", "x": [1, 2, {"y": "z"}]},
    ]
    return [msgpack.packb(p, use_bin_type=True) for p in payloads]


def genuine_key(data: bytes) -> bytes:
    """What makes a packet genuine: all of it, except the mac2 of a handshake packet (only an
    INIT's, and only under load, is ever checked: a RESPONSE or FINAL with another mac2 is the
    same packet to its receiver, and so is an INIT to a responder not under load)."""
    if len(data) >= 48 and data[1] in (1, 2, 3):
        return b"hs" + data[:-16]
    return data


@dataclass
class Wire:
    """Genuine packets: their bytes and, for replays, where they went (by :func:`genuine_key`)."""

    packets: list[bytes] = field(default_factory=list)
    route: dict[bytes, tuple[Hashable, Hashable]] = field(default_factory=dict)
    kinds: Counter[str] = field(default_factory=Counter)

    def add(self, data: bytes, src: Hashable, dst: Hashable) -> None:
        key = genuine_key(data)
        if key not in self.route:
            self.packets.append(data)
            self.kinds[PACKET_NAMES.get(data[1] if len(data) > 1 else -1, "other")] += 1
        self.route[key] = (src, dst)

    def route_of(self, data: bytes) -> tuple[Hashable, Hashable] | None:
        return self.route.get(genuine_key(data))


def capture(net: Net, wire: Wire) -> None:
    """Record every packet the net launches, without taking it."""

    def record(packet: Packet) -> bool:
        wire.add(packet.data, packet.src, packet.dst)
        return False

    net.filters.insert(0, record)


# -- target: parsers ------------------------------------------------------------------------------
def payload_decoder(data: bytes) -> None:
    """The handshake payload path: bounded msgpack, then the field checks of the three
    messages (handshake.py's private helpers: this is the code a payload goes through)."""
    payload = handshake_module._unpack(data)
    header_index = data[:4].ljust(4, b"\x00")
    for check in (
        lambda: handshake_module._int_field(payload, "t"),
        lambda: handshake_module._int_field(payload, "c"),
        lambda: handshake_module._index_field(payload, "i", header_index),
        lambda: handshake_module._index_field(payload, "r", header_index),
    ):
        with contextlib.suppress(HandshakeFailed):
            check()


def fuzz_parsers(n: int, seed: int, wire: Wire, max_seconds: float) -> Report:
    report = Report("parsers")
    rng = random.Random(seed)
    mutator = Mutator(rng, replay=False)
    handshakes = [p for p in wire.packets if p[1] in (1, 2, 3)]
    targets: list[tuple[str, Callable[[bytes], object], type[Exception], list[bytes]]] = [
        ("parse_frames", parse_frames, FrameError, frames_corpus()),
        ("parse_header", parse_header, RecordError, wire.packets),
        ("parse_handshake_header", parse_handshake_header, HandshakeFailed, handshakes),
        ("handshake_payload", payload_decoder, HandshakeFailed, payload_corpus()),
    ]
    started = time.perf_counter()
    deadline = started + max_seconds
    for name, parse, allowed, seeds in targets:
        t0 = time.perf_counter()
        done = 0
        for i in range(n):
            if i % 4096 == 0 and time.perf_counter() > deadline:
                report.notes.append(f"{name}: stopped by --max-seconds after {i:,}")
                break
            data = mutator.mutate(seeds)
            try:
                parse(data)
                report.outcomes[f"{name} accepted"] += 1
            except allowed:
                report.outcomes[f"{name} refused"] += 1
            except Exception as exc:
                report.fail(f"{name}: {type(exc).__name__}: {exc}", data)
            done += 1
        report.inputs += done
        report.notes.append(f"{name}: {done:,} in {time.perf_counter() - t0:.1f} s")
    report.seconds = time.perf_counter() - started
    report.notes.append("mutations: " + ", ".join(f"{k} {v:,}" for k, v in mutator.ops.items()))
    return report


# -- application-level bookkeeping ----------------------------------------------------------------
@dataclass
class Ledger:
    """What one side's application sent, and what the other side's application received."""

    messages: dict[int, list[bytes]] = field(default_factory=dict)
    received: dict[int, int] = field(default_factory=dict)
    stream: bytearray = field(default_factory=bytearray)
    stream_received: int = 0
    datagrams: set[bytes] = field(default_factory=set)
    datagrams_received: set[bytes] = field(default_factory=set)

    def sent_message(self, channel: int, data: bytes) -> None:
        self.messages.setdefault(channel, []).append(data)

    def got_message(self, channel: int, data: bytes) -> None:
        """In order, once, and only what was sent."""
        at = self.received.get(channel, 0)
        sent = self.messages.get(channel, [])
        if at >= len(sent) or sent[at] != data:
            raise FuzzFailure(
                f"message on channel {channel} was not the next one sent "
                f"({at} of {len(sent)} received; got {data[:40]!r})"
            )
        self.received[channel] = at + 1

    def got_stream(self, data: bytes) -> None:
        end = self.stream_received + len(data)
        if bytes(self.stream[self.stream_received : end]) != data:
            raise FuzzFailure(f"stream bytes at {self.stream_received} were never written")
        self.stream_received = end

    def got_datagram(self, data: bytes) -> None:
        if data not in self.datagrams or data in self.datagrams_received:
            raise FuzzFailure(f"datagram {data[:40]!r} never sent, or received twice")
        self.datagrams_received.add(data)

    def complete(self) -> bool:
        return all(
            self.received.get(c, 0) == len(m) for c, m in self.messages.items()
        ) and self.stream_received == len(self.stream)

    def missing(self) -> str:
        parts = [
            f"channel {c}: {self.received.get(c, 0)}/{len(m)}"
            for c, m in self.messages.items()
            if self.received.get(c, 0) != len(m)
        ]
        if self.stream_received != len(self.stream):
            parts.append(f"stream {self.stream_received}/{len(self.stream)}")
        return ", ".join(parts)


# -- target: sans-I/O endpoints -------------------------------------------------------------------
class EndpointFuzz:
    """Two endpoints A (initiator) and B (responder) with a session on an in-memory net."""

    def __init__(self, seed: int, shared_seed: bytes) -> None:
        self.rng = random.Random(seed)
        self.net = net = Net(seed=seed)
        self.wire = Wire()
        capture(net, self.wire)
        self.a = net.add_node("A", shared_seed=shared_seed)
        self.b = net.add_node("B", shared_seed=shared_seed)
        self.sid = net.establish(self.a, self.b)
        net.run(0.5)
        # A pending handshake on A that holds a cookie, toward C, a responder under load (one
        # half-open handshake from D, whose FINAL never arrives, is its load).
        c = net.add_node(
            "C",
            shared_seed=shared_seed,
            config=NodeConfig(handshake_load_threshold=1, handshake_half_open_max=8),
        )
        d = net.add_node("D", shared_seed=shared_seed)
        net.drop(lambda p: p.sender == "D" and p.type == PACKET_HANDSHAKE_FINAL, times=1 << 30)
        net.drop(
            lambda p: p.sender == "C" and p.dst == "A" and p.type == PACKET_HANDSHAKE_RESPONSE,
            times=1 << 30,
        )
        net.connect(d, c)
        net.run(0.2)
        net.connect(self.a, c, timeout_s=90.0)
        net.run(2.0)  # COOKIE_REPLY to A, A's INIT with mac2, C's RESPONSE (held back)
        self.held_response = next(
            p.data for p in net.sent_by(c, PACKET_HANDSHAKE_RESPONSE) if p.dst == "A"
        )
        assert any(p.type == PACKET_COOKIE_REPLY for p in net.sent_by(c))
        net.kill(c)
        net.kill(d)
        self.stream_id = self.a.endpoint.session(self.sid).open_stream(net.now)
        net.flush()
        self.ledgers = {"A": Ledger(), "B": Ledger()}  # by sender
        self.seen = {n.name: len(n.events) for n in (self.a, self.b)}
        self.created = {n.name: n.endpoint.counters.sessions_created for n in (self.a, self.b)}
        self.drops_before = {n.name: Counter(n.endpoint.drops) for n in (self.a, self.b)}
        self.seq = 0

    def other(self, node: Node) -> Node:
        return self.b if node is self.a else self.a

    def traffic(self) -> None:
        """A burst of genuine application traffic, then a few simulated milliseconds."""
        rng, net = self.rng, self.net
        for node in (self.a, self.b):
            session = node.endpoint.sessions.get(self.sid)
            if session is None or not session.is_active:
                reason = session.close_reason if session is not None else "gone"
                raise FuzzFailure(f"{node.name}: the session is no longer active ({reason})")
        for _ in range(rng.randint(1, 3)):
            sender = self.a if rng.random() < 0.6 else self.b
            ledger = self.ledgers[sender.name]
            self.seq += 1
            kind = rng.random()
            if kind < 0.6:
                channel = rng.randrange(4)
                data = b"%s:%d:%d:" % (sender.name.encode(), channel, self.seq)
                data += rng.randbytes(rng.choice((0, 10, 100, 1500)))
                sender.endpoint.session(self.sid).send_message(channel, data, net.now)
                ledger.sent_message(channel, data)
            elif kind < 0.75 and sender is self.a:
                data = rng.randbytes(rng.randint(1, 3000))
                sender.endpoint.session(self.sid).write_stream(self.stream_id, data, False, net.now)
                ledger.stream += data
            elif kind < 0.9:
                data = b"dg:%d:" % self.seq + rng.randbytes(rng.randint(0, 60))
                sender.endpoint.session(self.sid).send_datagram(data, net.now)
                ledger.datagrams.add(data)
            elif kind < 0.97:
                sender.endpoint.session(self.sid).ping(net.now)
            else:
                sender.endpoint.session(self.sid).request_rotation(net.now)
        net.flush()
        net.run(0.002)

    def check_events(self) -> None:
        for node in (self.a, self.b):
            events = node.events
            ledger = self.ledgers[self.other(node).name]
            for _, event in events[self.seen[node.name] :]:
                self.check_event(node, ledger, event)
            self.seen[node.name] = len(events)
            if len(events) > 10_000:
                node.events.clear()
                self.seen[node.name] = 0
        if len(self.net.log) > 10_000:
            self.net.log.clear()
            self.net.deliveries.clear()

    def check_event(self, node: Node, ledger: Ledger, event: Event) -> None:
        if isinstance(event, MessageReceived):
            ledger.got_message(event.channel, event.data)
        elif isinstance(event, StreamDataReceived):
            ledger.got_stream(event.data)
        elif isinstance(event, DatagramReceived):
            ledger.got_datagram(event.data)
        elif isinstance(event, SessionEstablished | SessionClosed) or (
            isinstance(event, HandshakeAborted) and not event.timeout
        ):
            raise FuzzFailure(f"{node.name}: unexpected {event!r}")

    def inject(self, data: bytes) -> str:
        """Send one mutated packet; an exact copy of a genuine packet goes only where the
        genuine one went (a replay), never to open the held-back handshake."""
        rng = self.rng
        route = self.wire.route_of(data)
        if route is not None:
            if genuine_key(data) == genuine_key(self.held_response):
                return "skipped genuine"
            src, dst = route
            target = self.a if dst == "A" else self.b if dst == "B" else None
            if target is None:
                return "skipped genuine"
        else:
            target = self.b if rng.random() < 0.6 else self.a
            r = rng.random()
            src = self.other(target).addr if r < 0.6 else "stranger" if r < 0.9 else "C"
        out = self.net.inject(target, data, src)
        for packet in out:
            if packet.dst not in ("A", "B") and packet.type not in (
                PACKET_HANDSHAKE_RESPONSE,
                PACKET_COOKIE_REPLY,
            ):
                raise FuzzFailure(f"{target.name} answered a stranger with type {packet.type}")
        return "to " + target.name

    def heal(self) -> None:
        """Deliver everything, then check that every message sent has arrived."""
        net = self.net
        for sender in (self.a, self.b):
            self.seq += 1
            data = b"final from %s" % sender.name.encode()
            sender.endpoint.session(self.sid).send_message(0, data, net.now)
            self.ledgers[sender.name].sent_message(0, data)
        net.flush()
        for _ in range(60):
            net.run(0.5)
            self.check_events()
            if all(ledger.complete() for ledger in self.ledgers.values()):
                break
        for name, ledger in self.ledgers.items():
            if not ledger.complete():
                raise FuzzFailure(f"after healing, {name}'s data is missing: {ledger.missing()}")
        for node in (self.a, self.b):
            if node.endpoint.counters.sessions_created != self.created[node.name]:
                raise FuzzFailure(f"{node.name}: a session was created by the fuzz")
            if self.sid not in node.endpoint.sessions:
                raise FuzzFailure(f"{node.name}: the session is gone")


def fuzz_endpoint(n: int, seed: int, shared_seed: bytes, max_seconds: float) -> Report:
    report = Report("endpoint")
    fuzz = EndpointFuzz(seed, shared_seed)
    mutator = Mutator(random.Random(seed + 1), replay=True)
    recent: deque[bytes] = deque(maxlen=256)
    corpus = list(fuzz.wire.packets)
    started = time.perf_counter()
    deadline = started + max_seconds
    done = 0
    try:
        for i in range(2 * n):  # exact copies that may not be sent do not count
            if done >= n:
                break
            if i % 25 == 0:
                fuzz.traffic()
                recent.extend(fuzz.wire.packets[-8:])
            if i % 1000 == 0:
                fuzz.check_events()
                if time.perf_counter() > deadline:
                    report.notes.append(f"stopped by --max-seconds after {i:,}")
                    break
            seeds = list(recent) if recent and mutator.rng.random() < 0.7 else corpus
            data = mutator.mutate(seeds)
            try:
                outcome = fuzz.inject(data)
            except FuzzFailure as exc:
                report.fail(str(exc), data)
                break
            except Exception as exc:
                report.fail(f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}", data)
                break
            report.outcomes[outcome] += 1
            if outcome != "skipped genuine":
                done += 1
        fuzz.check_events()
        fuzz.heal()
    except FuzzFailure as exc:
        report.fail(str(exc))
    except Exception as exc:
        report.fail(f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
    report.inputs = done
    report.seconds = time.perf_counter() - started
    for node in (fuzz.a, fuzz.b):
        moved = Counter(node.endpoint.drops) - fuzz.drops_before[node.name]
        report.outcomes.update({f"{node.name} drop {k}": v for k, v in moved.items()})
    sent = {k: sum(len(m) for m in v.messages.values()) for k, v in fuzz.ledgers.items()}
    report.notes.append(
        f"genuine traffic: messages {sent}, stream {len(fuzz.ledgers['A'].stream):,} bytes, "
        f"datagrams {sum(len(v.datagrams_received) for v in fuzz.ledgers.values())} received "
        f"of {sum(len(v.datagrams) for v in fuzz.ledgers.values())}, "
        f"key version {fuzz.a.endpoint.sessions[fuzz.sid].key_version}, "
        f"simulated {fuzz.net.now - 1000:.1f} s; every message arrived after healing"
    )
    report.notes.append(f"corpus: {dict(fuzz.wire.kinds)}")
    report.notes.append("mutations: " + ", ".join(f"{k} {v:,}" for k, v in mutator.ops.items()))
    return report


# -- target: stream and control frames under valid keys -----------------------------------------
#: Small windows and limits, so that the fuzz reaches them within a few records.
FRAMES_CONFIG = NodeConfig(
    stream_window=64 * 1024,
    session_window=256 * 1024,
    max_message_size=96 * 1024,
    max_channels=8,
)
_PATTERN = random.Random("frames-pattern").randbytes(1 << 20)


class StreamContent:
    """The bytes the member means to send on one of its streams, made as they are needed: slices
    of a random pattern on a byte stream (its final size chosen up front), length-prefixed
    messages on a message channel (now and then one beyond ``max_message_size``)."""

    __slots__ = ("data", "final", "high", "messages", "rng")

    def __init__(self, rng: random.Random, messages: bool, window: int) -> None:
        self.rng = rng
        self.messages = messages
        self.data = bytearray()
        self.high = 0  # the highest offset sent so far
        self.final: int | None = None
        if not messages:
            self.final = rng.choice((0, rng.randrange(1, 4096), rng.randrange(1, 3 * window)))

    def slice(self, offset: int, length: int) -> bytes:
        end = offset + length
        if self.final is not None:
            end = min(end, self.final)
        rng = self.rng
        while len(self.data) < end:
            if not self.messages:
                start = rng.randrange(len(_PATTERN) - 8192)
                self.data += _PATTERN[start : start + rng.randint(1, 8192)]
                continue
            r = rng.random()
            size = (
                rng.randint(0, 64)
                if r < 0.6
                else rng.randint(65, 4096)
                if r < 0.95
                else rng.randint(4097, FRAMES_CONFIG.max_message_size)
                if r < 0.999
                else FRAMES_CONFIG.max_message_size + rng.randint(1, 1 << 20)
            )
            self.data += encode_varint(size)
            start = rng.randrange(len(_PATTERN) - 4096)
            while size > 0:  # the pattern, repeated as far as the message needs
                piece = _PATTERN[start : start + min(size, 4096)]
                self.data += piece
                size -= len(piece)
        return bytes(self.data[offset:end])


class FrameFuzz:
    """A member M with a genuine session to V (the endpoint under test) on an in-memory net.
    Each input is one record of generated frames, or of their mutated encoding, sealed with the
    session's real keys (as a member's own implementation could) and handed to V from M's
    address. M is a genuine endpoint that answers V (acknowledgements, CLOSE), except that it
    ignores what V's answers say about streams it never opened itself. A session that V closes
    is replaced by a new one."""

    def __init__(self, seed: int, shared_seed: bytes) -> None:
        self.rng = random.Random(seed)
        self.mutator = Mutator(random.Random(seed + 4), replay=False)
        self.net = Net(seed=seed)
        self.v = self.net.add_node("V", shared_seed=shared_seed, config=FRAMES_CONFIG)
        self.m = self.net.add_node("M", shared_seed=shared_seed, config=FRAMES_CONFIG)
        self.sessions = 0
        self.rotations = 0
        self.peaks: Counter[str] = Counter()
        self.new_session()

    def new_session(self) -> None:
        net = self.net
        self.sid = net.establish(self.m, self.v)
        self.mcore = self.m.endpoint.session(self.sid)
        # A hostile member ignores V's answers about streams it never opened (RESET_STREAM
        # after its STOP_SENDING, ...): its session stays open whatever V says.
        self.mcore._protocol_violation = lambda now, detail: None  # type: ignore[method-assign]
        self.vcore = self.v.endpoint.session(self.sid)
        self.content: dict[int, StreamContent] = {}
        self.planned = 0
        self.sessions += 1

    # -- generation -------------------------------------------------------------------------------
    def stream_id(self, kind: str) -> int:
        """One of the member's byte streams (mostly the last ones opened, rarely one beyond the
        limit) or message channels (rarely one beyond ``max_channels``), or very rarely a stream
        of V's side."""
        rng = self.rng
        r = rng.random()
        if r < 0.0005:
            return (rng.randrange(8) << 2) | rng.choice((1, 3))  # V's side: never the member's
        if kind == "channel" or (kind == "any" and r < 0.3):
            channel = rng.randrange(8) if rng.random() < 0.999 else rng.randrange(8, 16)
            return (channel << 2) | 2
        opened = self.vcore.streams.peer_streams_opened
        r = rng.random()
        if r < 0.7:
            index = max(0, opened + rng.randint(-3, 1))
        elif r < 0.999:
            index = rng.randrange(opened + 1)
        else:
            index = rng.randrange(400)  # beyond the stream limit (256) at times
        return index << 2

    def content_of(self, sid: int) -> StreamContent:
        content = self.content.get(sid)
        if content is None:
            content = StreamContent(self.rng, bool(sid & 2), FRAMES_CONFIG.stream_window)
            self.content[sid] = content
        return content

    def stream_frame(self) -> Frame:
        """A STREAM frame of the member's content: mostly the next bytes, or old ones again,
        or bytes ahead within the credit; rarely beyond the credit or the final size."""
        rng = self.rng
        sid = self.stream_id("channel" if rng.random() < 0.3 else "bytes")
        content = self.content_of(sid)
        recv = self.vcore.streams.recv.get(sid)
        base = recv.delivered if recv is not None else 0
        credit = recv.credit if recv is not None else FRAMES_CONFIG.stream_window
        if content.final is not None:
            credit = min(credit, content.final)
        r = rng.random()
        if r < 0.6:  # the next bytes, in order or nearly
            offset = base + (rng.randrange(64) if rng.random() < 0.3 else 0)
        elif r < 0.8:  # old bytes again: duplicates and overlaps
            offset = max(0, base - rng.randrange(1, 4096))
        elif r < 0.9995:  # ahead, out of order, within the credit
            offset = rng.randrange(base, max(base + 1, credit))
        elif r < 0.9998:  # beyond the credit (or the final size)
            offset = credit + rng.randrange(-8, 64)
        else:
            offset = rng.randrange(1 << rng.choice((16, 32, 61)))
        offset = max(0, offset)
        length = rng.choice((0, 1, rng.randint(1, 64), rng.randint(64, 1200)))
        if rng.random() < 0.01:
            length = rng.randint(1200, 16_000)
        if r < 0.9995:  # within the credit and the final size, and the session's credit
            session = self.vcore.streams.max_data
            room = session.value - session.used - self.planned  # what this record may still add
            end = min(credit, max(content.high, content.high + room))  # not even a 0-byte frame
            offset = max(0, min(offset, end))  # beyond: it would raise the highest offset too
            length = max(0, min(length, end - offset))
        made = 4 * FRAMES_CONFIG.session_window  # no content is made beyond this offset
        data = content.slice(offset, length) if offset + length < made else bytes(length)
        end = offset + len(data)
        self.planned += max(0, end - content.high)
        content.high = max(content.high, end)
        fin = content.final is not None and end == content.final and rng.random() < 0.7
        if rng.random() < 0.0005:
            fin = not fin  # a final size that moves
        return Stream(sid, offset, fin, data)

    def reset_frame(self) -> Frame:
        """RESET_STREAM of a byte stream at the data received so far (rarely below it, or
        beyond the credit); the member sends nothing beyond it from then on."""
        rng = self.rng
        sid = self.stream_id("bytes")
        recv = self.vcore.streams.recv.get(sid)
        content = self.content_of(sid)
        high = max(content.high, recv.highest if recv is not None else 0)
        if recv is not None and recv.final_size is not None:
            final = recv.final_size
        else:  # a little beyond what was sent, within the stream's and the session's credit
            room = (recv.credit if recv is not None else FRAMES_CONFIG.stream_window) - high
            if content.final is not None:
                room = min(room, content.final - high)
            session = self.vcore.streams.max_data
            room = min(room, session.value - session.used - self.planned, 64)
            final = high + (rng.randrange(room + 1) if room > 0 and rng.random() < 0.3 else 0)
        r = rng.random()
        if r < 0.003:
            final -= 1  # below what was received
        elif r < 0.006:
            final += FRAMES_CONFIG.stream_window  # beyond the credit
        final = max(0, final)
        self.planned += max(0, final - high)
        content.high = max(content.high, final)
        if content.final is None or final < content.final:
            content.final = final
        return ResetStream(sid, self.varint(), final)

    def varint(self) -> int:
        rng = self.rng
        return rng.choice((0, 1, rng.randrange(64), rng.randrange(1 << 20), rng.randrange(1 << 62)))

    def ack_frame(self) -> Ack | None:
        rng = self.rng
        sent = self.vcore.keys.send_counter  # counters V used so far: 0 .. sent - 1
        if sent == 0:
            return None
        if rng.random() < 0.002:
            largest = sent + rng.randrange(8)  # a record never sent
        else:
            largest = rng.randrange(max(0, sent - 64), sent)
        ranges = []
        high = largest
        for _ in range(rng.choice((1, 1, 2, 3, rng.randint(1, 40)))):
            low = max(0, high - rng.randrange(4))
            ranges.append((low, high))
            high = low - 2 - rng.randrange(4)
            if high < 0:
                break
        return Ack(rng.randrange(1 << rng.choice((3, 14))), tuple(ranges))

    def frame(self) -> Frame:
        rng = self.rng
        r = rng.random()
        if r < 0.45:
            return self.stream_frame()
        if r < 0.52:
            return MaxData(self.vcore.streams.peer_max_data + rng.randint(-100, 1 << 20))
        if r < 0.57:
            return MaxData(self.varint())
        if r < 0.64:
            return MaxStreamData(self.stream_id("any") | rng.choice((0, 0, 1)), self.varint())
        if r < 0.68:
            return MaxStreams(self.varint())
        if r < 0.72:
            return self.reset_frame()
        if r < 0.76:
            return StopSending(self.stream_id("bytes"), self.varint())
        if r < 0.84:
            return Ping(self.varint())
        if r < 0.88:
            return Pong(self.varint())
        return Datagram(_PATTERN[: rng.choice((0, 1, rng.randrange(300)))])

    def frames(self) -> list[Frame]:
        rng = self.rng
        r = rng.random()
        count = (
            1
            if r < 0.35
            else rng.randint(2, 8)
            if r < 0.85
            else rng.randint(9, 64)
            if r < 0.98
            else rng.randint(65, 256)
            if r < 0.998
            else rng.randint(257, 300)
        )
        frames: list[Frame] = []
        size = 0
        self.planned = 0  # session credit the record's STREAM frames use up
        for _ in range(count):
            frame = self.frame()
            size += len(frame.data) if isinstance(frame, Stream | Datagram) else 8
            if size > 60_000:
                break
            frames.append(frame)
        if rng.random() < 0.3:
            ack = self.ack_frame()
            if ack is not None:
                frames.insert(rng.randrange(len(frames) + 1), ack)
        if rng.random() < 0.0005:
            frames.append(Close(self.varint(), "fuzz"))
        return frames

    # -- one input --------------------------------------------------------------------------------
    def one(self, report: Report) -> None:
        """Seal one generated (and maybe mutated) record, hand it to V, check what V made of it."""
        rng, net, vcore = self.rng, self.net, self.vcore
        frames = self.frames()
        plaintext = serialize_frames(frames)
        mutated = rng.random() < 0.01
        if mutated:
            plaintext = self.mutator.one(plaintext, serialize_frames([self.frame()]))
        aead, epoch, echo, counter = self.mcore.keys.next_send()
        header = pack_header(epoch, echo, self.sid, counter)
        if rng.random() < 0.0005:  # no inner type: a plaintext the peer cannot have written
            record = header + aead.encrypt(counter, header, bytes(16 * rng.randint(1, 4)))
        else:
            record = seal_record(aead, header, counter, plaintext)
        drops = sum(self.v.endpoint.drops.values())
        try:
            net.inject(self.v, record, self.m.addr)
        except Exception as exc:
            report.fail(f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}", plaintext)
            raise FuzzFailure("V raised") from exc
        if sum(self.v.endpoint.drops.values()) != drops:
            moved = Counter(self.v.endpoint.drops)
            report.fail(f"an authentic record was dropped (drops now {dict(moved)})", plaintext)
            raise FuzzFailure("dropped")
        if vcore.state == SessionState.ACTIVE:
            report.outcomes["accepted" + (" (mutated)" if mutated else "")] += 1
            return
        if vcore.closed_by_peer:
            try:
                has_close = any(isinstance(f, Close) for f in parse_frames(plaintext))
            except FrameError:
                has_close = False
            if not has_close:
                report.fail("V closed as if the member sent CLOSE, which it did not", plaintext)
                raise FuzzFailure("close")
            report.outcomes["closed: the member's CLOSE"] += 1
        elif vcore.close_code == CloseCode.PROTOCOL_ERROR:
            reason = _HEX.sub("…", vcore.close_reason)
            report.outcomes[f"closed: protocol violation: {reason}"] += 1
        else:
            report.fail(f"closed with code {vcore.close_code}: {vcore.close_reason}", plaintext)
            raise FuzzFailure("close code")
        self.restart()

    def restart(self) -> None:
        """The session closed: let the CLOSE exchange finish (and time pass, so that new
        handshakes stay within V's per-source rate), then establish a new one."""
        self.net.run(0.1)
        for node in (self.m, self.v):
            old = node.endpoint.sessions.get(self.sid)
            if old is not None and old.state != SessionState.CLOSED:
                raise FuzzFailure(f"{node.name}: the closed session is still {old.state.name}")
        self.new_session()

    def check_bounds(self) -> None:
        """What V holds stays within the windows, the caps and the stream limits."""
        cfg = FRAMES_CONFIG
        core = self.vcore
        streams = core.streams
        held = 0
        worst = 0
        for stream in streams.recv.values():
            held += stream.held_bytes
            worst = max(worst, stream.held_bytes)
        partial = sum(len(p.buffer) for p in core.channels.parsers.values())
        peaks = self.peaks
        for name, value in (
            ("out-of-order bytes held (all streams)", held),
            ("out-of-order bytes held (one stream)", worst),
            ("incomplete message bytes held", partial),
            ("fragments", streams.fragments),
            ("receive streams", len(streams.recv)),
            ("send streams", len(streams.send)),
            ("queued control frames", len(streams.control or ())),
            ("queued one-shot frames", len(core.packetizer.pending)),
            ("V sessions", len(self.v.endpoint.sessions)),
        ):
            peaks[name] = max(peaks[name], value)
        bound = 2 * (cfg.session_window + cfg.max_channels * cfg.stream_window)
        if held + partial > bound + cfg.max_message_size or worst > 2 * cfg.stream_window:
            raise FuzzFailure(f"V holds {held} + {partial} bytes (one stream {worst})")
        if streams.fragments > max(64, cfg.session_window // 1024):
            raise FuzzFailure(f"V holds {streams.fragments} fragments")
        if len(streams.recv) > streams.max_streams.value + cfg.max_channels:
            raise FuzzFailure(f"V holds {len(streams.recv)} receive streams")
        control = len(streams.control or ())
        if control > 2 * (len(streams.send) + len(streams.recv)) + 16:
            raise FuzzFailure(f"V queues {control} control frames")
        if len(self.v.endpoint.sessions) > 2 or len(self.m.endpoint.sessions) > 2:
            raise FuzzFailure("sessions pile up")

    def tick(self, i: int) -> None:
        """Between inputs: time passes (V's answers reach M and M's answers V), now and then
        M rotates its keys; the net's logs are trimmed."""
        net = self.net
        if i % 8 == 7:
            net.run(0.001)
            if self.vcore.state != SessionState.ACTIVE:  # closed by a timer
                code = self.vcore.close_code
                if code not in (CloseCode.IDLE_TIMEOUT, CloseCode.KEY_EXPIRED):
                    raise FuzzFailure(f"V closed the session by itself: {code}")
                self.restart()
        if i % 3000 == 2999 and self.mcore.state == SessionState.ACTIVE:
            self.mcore.request_rotation(net.now)
            net.flush()
            self.rotations += 1
        if i % 1024 == 0:
            for node in (self.m, self.v):
                node.events.clear()
            net.log.clear()
            net.deliveries.clear()


_HEX = re.compile(r"0x[0-9a-f]+|\b\d{2,}\b")  # the numbers in close reasons


def fuzz_frames(n: int, seed: int, shared_seed: bytes, max_seconds: float) -> Report:
    report = Report("frames")
    fuzz = FrameFuzz(seed, shared_seed)
    started = time.perf_counter()
    deadline = started + max_seconds
    done = 0
    try:
        for i in range(n):
            if i % 4096 == 0 and time.perf_counter() > deadline:
                report.notes.append(f"stopped by --max-seconds after {i:,}")
                break
            fuzz.one(report)
            done += 1
            if i % 16 == 0:
                fuzz.check_bounds()
            fuzz.tick(i)
        fuzz.check_bounds()
    except FuzzFailure as exc:
        if not report.failures:
            report.fail(str(exc))
    except Exception as exc:
        report.fail(f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
    report.inputs = done
    report.seconds = time.perf_counter() - started
    cfg = FRAMES_CONFIG
    report.notes.append(
        f"sessions: {fuzz.sessions:,} (a new one after each close); key rotations asked "
        f"{fuzz.rotations}; simulated {fuzz.net.now - 1000:.1f} s"
    )
    report.notes.append(
        f"windows: stream {cfg.stream_window:,}, session {cfg.session_window:,}; "
        "peaks: " + ", ".join(f"{k} {v:,}" for k, v in fuzz.peaks.items())
    )
    report.notes.append(f"peak RSS of the process: {_max_rss_mib():.0f} MiB")
    report.notes.append(
        "mutations: " + ", ".join(f"{k} {v:,}" for k, v in fuzz.mutator.ops.items())
    )
    return report


def _max_rss_mib() -> float:
    """The process's peak resident set size in MiB (0 where it cannot be read)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return 0.0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1 << 20) if sys.platform == "darwin" else rss / 1024


# -- target: a live node --------------------------------------------------------------------------
MAX_UDP_PAYLOAD = 65507


class Pacer:
    """Keeps the datagrams on their way to the node within its socket buffer: the sender and
    the node share one event loop, and a datagram the kernel drops would never be fuzzed."""

    MAX_DATAGRAMS = 256
    MAX_BYTES = 1 << 20

    def __init__(self, received: Callable[[], tuple[int, int]]) -> None:
        self.received = received
        self.base = received()
        self.count = 0
        self.bytes = 0
        self.lost = 0
        self.lost_bytes = 0

    def sent(self, size: int) -> None:
        self.count += 1
        self.bytes += size

    def outstanding(self) -> tuple[int, int]:
        count, size = self.received()
        return (
            self.count - self.lost - (count - self.base[0]),
            self.bytes - self.lost_bytes - (size - self.base[1]),
        )

    async def wait(self) -> None:
        last, since = self.outstanding(), time.perf_counter()
        while True:
            count, size = self.outstanding()
            if count <= self.MAX_DATAGRAMS and size <= self.MAX_BYTES:
                return
            if (count, size) != last:
                last, since = (count, size), time.perf_counter()
            elif time.perf_counter() - since > 0.5:  # no progress: the kernel dropped them
                self.lost += count
                self.lost_bytes += size
                return
            await asyncio.sleep(0)


async def fuzz_node(n: int, seed: int, shared_seed: bytes, max_seconds: float) -> Report:
    report = Report("node")
    rng = random.Random(seed + 2)
    mutator = Mutator(random.Random(seed + 3), replay=True)
    loop = asyncio.get_running_loop()
    loop_errors: list[str] = []
    loop.set_exception_handler(lambda _loop, ctx: loop_errors.append(str(ctx)))
    server = STTNode(generate_seed(), shared_seed, LOOPBACK, 0)
    client = STTNode(generate_seed(), shared_seed, LOOPBACK, 0)
    await server.start(server_mode=True)
    await client.start()
    assert server.udp_transport is not None
    assert client.udp_transport is not None
    server_addr = server.udp_transport.address
    client_udp = client.udp_transport
    wire = Wire()
    recent: deque[bytes] = deque(maxlen=256)
    # Capture genuine packets both ways (the transports' send calls).
    client_send, server_send = client_udp.sendto, server.udp_transport.sendto

    def client_sendto(data: bytes, addr: tuple[str, int]) -> None:
        wire.add(data, "client", "server")
        recent.append(data)
        errors = client_udp.send_errors
        client_send(data, addr)
        if client_udp.send_errors == errors:
            pacer.sent(len(data))

    def server_sendto(data: bytes, addr: tuple[str, int]) -> None:
        wire.add(data, "server", "client")
        recent.append(data)
        server_send(data, addr)

    client_udp.sendto = client_sendto  # type: ignore[method-assign]
    server.udp_transport.sendto = server_sendto  # type: ignore[method-assign]
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger.setblocking(False)
    stranger.bind((LOOPBACK, 0))
    server_ep = server.endpoint
    pacer = Pacer(lambda: (server_ep.counters.packets_received, server_ep.counters.bytes_received))
    ledger = Ledger()  # what the client sent; the server receives
    echoes = Ledger()  # what the server sent back
    app_failures: list[str] = []
    try:
        session = await client.connect_udp(*server_addr, timeout=10)
        # Handshake packets of other members, too: INITs the server answers.
        extra = STTNode(generate_seed(), shared_seed, LOOPBACK, 0)
        await extra.start()
        assert extra.udp_transport is not None
        extra_send = extra.udp_transport.sendto

        def extra_sendto(data: bytes, addr: tuple[str, int]) -> None:
            wire.add(data, "extra", "server")
            extra_send(data, addr)

        extra.udp_transport.sendto = extra_sendto  # type: ignore[method-assign]
        extra_session = await extra.connect_udp(*server_addr, timeout=10)
        await extra_session.close()
        await extra.stop()

        async def serve() -> None:
            async for packet in server.receive():
                try:
                    ledger.got_message(packet.stream_id, packet.data)
                except FuzzFailure as exc:
                    app_failures.append(f"server application: {exc}")
                    continue
                peer = server.session_manager.get_session(packet.session_id)
                if peer is not None and peer.is_active():
                    reply = b"echo:" + packet.data
                    echoes.sent_message(packet.stream_id, reply)
                    await peer.send(reply, stream_id=packet.stream_id)

        async def listen() -> None:
            async for packet in client.receive():
                try:
                    echoes.got_message(packet.stream_id, packet.data)
                except FuzzFailure as exc:
                    app_failures.append(f"client application: {exc}")

        tasks = [asyncio.create_task(serve()), asyncio.create_task(listen())]
        created = server_ep.counters.sessions_created
        drops_before = Counter(server_ep.drops)
        received_before = server_ep.counters.packets_received
        corpus = list(wire.packets)
        started = time.perf_counter()
        deadline = started + max_seconds
        seq = 0
        for i in range(2 * n):  # skipped inputs (exact copies, oversized) do not count
            if report.inputs >= n:
                break
            if i % 200 == 0:
                seq += 1
                channel = seq % 4
                data = b"msg:%d:" % seq + rng.randbytes(rng.choice((0, 20, 300)))
                ledger.sent_message(channel, data)
                try:
                    await session.send(data, stream_id=channel)
                except STTError as exc:
                    raise FuzzFailure(f"the session stopped working: {exc!r}") from exc
            if i % 64 == 63:
                await pacer.wait()
            if i % 256 == 255:
                if loop_errors or app_failures:
                    break
                if time.perf_counter() > deadline:
                    report.notes.append(f"stopped by --max-seconds after {i:,}")
                    break
            seeds = list(recent) if recent and rng.random() < 0.7 else corpus
            data = mutator.mutate(seeds)
            route = wire.route_of(data)
            if route is not None and route[0] == "server":
                report.outcomes["skipped genuine"] += 1
                continue  # an exact copy goes only where its original went, from its sender
            if len(data) > MAX_UDP_PAYLOAD:
                report.outcomes["too large for a datagram (not sent)"] += 1
                continue
            if route is not None or rng.random() < 0.6:
                errors = client_udp.send_errors
                client_send(data, server_addr)
                if client_udp.send_errors == errors:
                    pacer.sent(len(data))
                report.outcomes["from the client's address"] += 1
            else:
                try:
                    stranger.sendto(data, server_addr)
                    pacer.sent(len(data))
                except OSError:
                    report.outcomes["stranger send errors"] += 1
                report.outcomes["from a stranger"] += 1
            report.inputs += 1
        report.seconds = time.perf_counter() - started
        # The session still works: a last message each way, and everything arrives.
        final = b"final message"
        ledger.sent_message(0, final)
        await session.send(final, stream_id=0)
        limit = time.perf_counter() + 30
        # Polling: completion is a pair of counters with no event to await.
        while not (ledger.complete() and echoes.complete()) and time.perf_counter() < limit:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        for task in tasks:
            task.cancel()
        if loop_errors:
            report.fail("exception in the event loop: " + loop_errors[0])
        for failure in app_failures[:5]:
            report.fail(failure)
        if not ledger.complete():
            report.fail(f"the server did not receive everything: {ledger.missing()}")
        if not echoes.complete():
            report.fail(f"the client did not receive every echo: {echoes.missing()}")
        if server_ep.counters.sessions_created != created:
            report.fail("a session was created by the fuzz")
        if not session.is_active() or len(server_ep.sessions) != 1:
            report.fail("the session did not survive")
        moved = Counter(server_ep.drops) - drops_before
        report.outcomes.update({f"drop {k}": v for k, v in moved.items()})
        report.outcomes["datagrams read by the node"] = (
            server_ep.counters.packets_received - received_before
        )
        if pacer.lost:
            report.outcomes["datagrams lost before the node (kernel)"] = pacer.lost
        sent_packets = server_ep.counters.packets_sent
        report.notes.append(
            f"session kept working: {sum(len(m) for m in ledger.messages.values())} messages "
            f"sent, all received and echoed; server sent {sent_packets:,} packets"
        )
        report.notes.append(f"corpus: {dict(wire.kinds)}")
        report.notes.append("mutations: " + ", ".join(f"{k} {v:,}" for k, v in mutator.ops.items()))
    except FuzzFailure as exc:
        report.fail(str(exc))
    except Exception as exc:
        report.fail(f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
    finally:
        stranger.close()
        await client.stop()
        await server.stop()
    return report


# -- main -----------------------------------------------------------------------------------------
def run(
    packets: int, seed: int, targets: list[str], max_seconds: float, *, quiet: bool = False
) -> list[Report]:
    """Run the chosen targets; returns their reports (also printed unless ``quiet``)."""
    shared_seed = make_seed(f"fuzz-shared:{seed}")
    reports: list[Report] = []
    wire = EndpointFuzz(seed, shared_seed).wire
    for target in targets:
        if target == "parsers":
            reports.append(fuzz_parsers(packets, seed, wire, max_seconds))
        elif target == "endpoint":
            reports.append(fuzz_endpoint(packets, seed, shared_seed, max_seconds))
        elif target == "node":
            reports.append(asyncio.run(fuzz_node(packets, seed, shared_seed, max_seconds)))
        elif target == "frames":
            reports.append(fuzz_frames(packets, seed, shared_seed, max_seconds))
        else:
            raise SystemExit(f"unknown target {target!r}")
        if not quiet:
            reports[-1].print()
    return reports


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, default=100_000, help="inputs per target")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--targets", default="parsers,endpoint,node,frames")
    parser.add_argument(
        "--max-seconds", type=float, default=3600.0, help="time bound of each target"
    )
    args = parser.parse_args(argv)
    if args.packets < 0:
        parser.error("--packets must not be negative")
    print(f"seigr_stt fuzz: {args.packets:,} inputs per target, seed {args.seed}")
    started = time.perf_counter()
    reports = run(args.packets, args.seed, args.targets.split(","), args.max_seconds)
    failures = sum(len(r.failures) for r in reports)
    total = sum(r.inputs for r in reports)
    print(
        f"total: {total:,} inputs in {time.perf_counter() - started:.1f} s; {failures} failure(s)"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
