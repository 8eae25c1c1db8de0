"""Test-only helpers around the public in-memory network of :mod:`seigr_stt.testing`.

The simulator itself (:class:`~seigr_stt.testing.Net`, :class:`~seigr_stt.testing.Node`,
:class:`~seigr_stt.testing.Packet`) is public; this module adds what only the core tests need:
packet-type constants, an established :class:`Pair`, forged INITs and records sealed with a
session's real keys, and snapshots of every piece of state an unauthenticated packet must not
change.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass
from typing import Any

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
from seigr_stt.core.frames import Datagram, serialize_frames
from seigr_stt.core.identity import SharedSecrets
from seigr_stt.core.noise import SymmetricState
from seigr_stt.core.record import pack_header, seal_record
from seigr_stt.core.session import Session
from seigr_stt.core.timers import SessionTimers
from seigr_stt.testing import SHARED_SEED, START, Net, Node, Packet, make_seed, seeded_rng

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
    "handshake_table",
    "init_payload",
    "make_pair",
    "make_seed",
    "packet_type",
    "seeded_rng",
    "session_snapshot",
]

INIT = PACKET_HANDSHAKE_INIT
RESPONSE = PACKET_HANDSHAKE_RESPONSE
FINAL = PACKET_HANDSHAKE_FINAL
COOKIE = PACKET_COOKIE_REPLY
DATA = PACKET_DATA


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
        frm.endpoint.session(self.sid).send_message(channel, data, self.net.now)
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
    real_aead, real_epoch, real_echo, real_counter = session.keys.next_send()
    aead = real_aead if key is None else crypto.make_aead(key)
    epoch = real_epoch if epoch is None else epoch
    echo = real_echo if echo is None else echo
    counter = real_counter if counter is None else counter
    header = pack_header(epoch, echo, session.session_id, counter)
    if plaintext is not None:
        return header + aead.encrypt(counter, header, plaintext)
    return seal_record(aead, header, counter, frames)


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
        "key_slots": keys.fingerprint(),
        "replay": keys.replay.snapshot(),
        "timers": {
            name: getattr(session.timers, name)
            for name in SessionTimers.__slots__
            if not name.startswith("_")
        },
        "acks": (session.acks.inclusive_ranges(), session.acks.ack_due_at),
        "in_flight": (session.recovery.bytes_in_flight, session.recovery.get_timer()),
        "rtt_s": session.rtt_s,
        "cwnd": session.packetizer.cc.cwnd,
        "pending_frames": list(session.packetizer.pending),
        "want_record": session.packetizer.want_record,
        "has_output": session.packetizer.has_output(float("inf")),  # a delayed ACK included
        "send_buffered": session.send_buffered,
        "pending_events": len(session.events),
        "close_code": session.close_code,
        "timer": session.get_timer(),
    }


def handshake_table(endpoint: Endpoint, name: str) -> dict[Any, Any]:
    """One table of ``endpoint.handshakes.snapshot()`` (``initiating``, ``half_open``,
    ``confirming``, ``peer_timestamps``, ...), keyed as the snapshot documents."""
    table = endpoint.handshakes.snapshot()[name]
    assert isinstance(table, dict)
    return table


def endpoint_snapshot(endpoint: Endpoint) -> dict[str, Any]:
    """The endpoint's tables, figures and every session's :func:`session_snapshot`."""
    # The endpoint's figures but those that count every packet (received, dropped).
    snap = endpoint.snapshot()
    counters = dataclasses.replace(
        snap.counters, drops=Counter(), packets_received=0, bytes_received=0
    )
    figures = dataclasses.replace(snap, counters=counters)
    return {
        "sessions": {sid: session_snapshot(s) for sid, s in endpoint.sessions.items()},
        "local_indexes": sorted(s.local_index for s in endpoint.sessions.values()),
        "handshakes": endpoint.handshakes.snapshot(),
        "figures": figures,  # sessions, tombstones, handshakes, sessions created and closed...
        "timer": endpoint.get_timer(),
    }
