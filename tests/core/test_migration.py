"""Transport migration in the core (§18), in the simulator: a session moves between a UDP path,
a WebSocket-like link and a relay-like link, keeping its id, keys and streams; every move is
validated first; a path that stops answering falls back to another one."""

from __future__ import annotations

import hashlib

import pytest

from seigr_stt.config import NodeConfig
from seigr_stt.core.events import (
    PathChanged,
    PathDegraded,
    PathsAnnounced,
    SessionEstablished,
    StreamDataReceived,
)
from seigr_stt.core.frames import FrameError, Paths, parse_frames, serialize_frames
from seigr_stt.core.link import TransportKind
from seigr_stt.testing import NAT, NATConfig, Net, Node, seeded_rng
from seigr_stt.testing.sim import Packet

CONFIG = NodeConfig(path_reprobe_interval_s=0.5, stream_window=64 * 1024, session_window=256 * 1024)


def received(node: Node, stream_id: int) -> bytes:
    return b"".join(e.data for e in node.events_of(StreamDataReceived) if e.stream_id == stream_id)


def transports(node: Node) -> list[str]:
    return [e.transport for e in node.events_of(PathChanged)]


# -- the PATHS frame ----------------------------------------------------------------------------
def test_paths_round_trips_and_refuses_garbage() -> None:
    frame = Paths((("203.0.113.7", 4000), ("2001:db8::1", 443)), ("wss://relay.example/stt",))
    assert parse_frames(serialize_frames([frame])) == [frame]
    with pytest.raises(ValueError, match="IPv4 or IPv6"):
        serialize_frames([Paths((("example.com", 1),))])
    with pytest.raises(ValueError, match="at most"):
        serialize_frames([Paths(tuple(("10.0.0.1", p) for p in range(1, 10)))])
    for bad in (
        b"\x18",  # no count
        b"\x18\x09",  # too many
        b"\x18\x01\x01\x7f\x00",  # truncated address
        b"\x18\x01\x01\x7f\x00\x00\x01\x00\x00",  # port 0
        b"\x18\x01\x03\x05http:",  # not a WebSocket URL
        b"\x18\x01\x03\x02\xff\xfe",  # not UTF-8
        b"\x18\x01\x09\x00",  # unknown kind
    ):
        with pytest.raises(FrameError):
            parse_frames(bad)


# -- UDP -> WebSocket -> UDP ----------------------------------------------------------------------
def ws_pair(config: NodeConfig = CONFIG) -> tuple[Net, Node, Node, bytes]:
    net = Net(seed=7, delay_s=(0.005, 0.005))
    a = net.add_node("A", config=config)
    b = net.add_node("B", config=config)
    net.add_link(a, "A/ws", TransportKind.WEBSOCKET, 16_000)
    net.add_link(b, "B/ws", TransportKind.WEBSOCKET, 16_000)
    sid = net.establish(a, b)
    net.run(0.1)
    return net, a, b, sid


def test_a_blocked_udp_path_moves_to_websocket_and_back_with_the_stream_intact() -> None:
    net, a, b, sid = ws_pair()
    sa, sb = a.session(sid), b.session(sid)
    keys_before = sa.keys.send_epoch
    sa.add_path("B/ws", a.links["A/ws"], net.now, probe=False)  # the adapter opened it
    data = hashlib.shake_256(b"migration").digest(256 * 1024)
    stream = sa.open_stream(net.now)
    sa.write_stream(stream, data[: len(data) // 2], False, net.now)
    net.flush()
    net.run(0.02)

    def udp(p: Packet) -> bool:
        return p.dst in ("A", "B")

    net.filters.append(udp)  # UDP blocked: only the WebSocket link carries anything
    net.run(3.0)
    assert sa.transport == sb.transport == "websocket"
    assert a.events_of(PathDegraded)
    assert a.events_of(PathDegraded)[0].transport == "udp"
    assert (sa.addr, sb.addr) == ("B/ws", "A/ws")
    sa.write_stream(stream, data[len(data) // 2 :], True, net.now)
    net.flush()
    net.run(2.0)
    net.filters.remove(udp)  # UDP back: the re-probe finds it and both sides return
    net.run(2.0)
    assert sa.transport == sb.transport == "udp"
    assert (sa.addr, sb.addr) == ("B", "A")
    assert transports(a) == ["websocket", "udp"]
    assert transports(b) == ["websocket", "udp"]
    assert received(b, stream) == data
    assert sa.session_id == sid
    assert sa.keys.send_epoch == keys_before


def test_a_session_that_moves_fills_records_to_the_new_links_record_size() -> None:
    # The WebSocket-like links carry 16,000-byte packets but fill records to 12,000 (as a real
    # connection does to fit one TCP burst, §12.2): after the move the session's record size is
    # the new link's, and back on UDP it is UDP's again.
    net = Net(seed=7, delay_s=(0.005, 0.005))
    a = net.add_node("A", config=CONFIG)
    b = net.add_node("B", config=CONFIG)
    net.add_link(a, "A/ws", TransportKind.WEBSOCKET, 16_000, record_size=12_000)
    net.add_link(b, "B/ws", TransportKind.WEBSOCKET, 16_000, record_size=12_000)
    sid = net.establish(a, b)
    net.run(0.1)
    sa = a.session(sid)
    udp_size = sa.max_record_size
    assert udp_size < 12_000
    sa.add_path("B/ws", a.links["A/ws"], net.now, probe=False)

    def udp(p: Packet) -> bool:
        return p.dst in ("A", "B")

    net.filters.append(udp)
    stream = sa.open_stream(net.now)
    sa.write_stream(stream, bytes(100_000), True, net.now)
    net.flush()
    net.run(3.0)
    assert sa.transport == "websocket"
    assert sa.max_record_size == 12_000
    assert received(b, stream) == bytes(100_000)
    net.filters.remove(udp)
    net.run(2.0)
    assert sa.transport == "udp"
    assert sa.max_record_size == udp_size


def test_without_migration_a_record_by_another_link_is_dropped() -> None:
    net, a, b, sid = ws_pair(NodeConfig(migration=False))
    sa = a.session(sid)
    sa.add_path("B/ws", a.links["A/ws"], net.now)
    assert sa.standby == ()
    assert sa.path.probes == ()
    # A record of the session by B's WebSocket link is not even opened.
    sb = b.session(sid)
    sb.send_datagram(b"x", net.now)
    [packet] = [p for p in net.flush() if p.sender == "B"]
    link = a.links["A/ws"]
    a.endpoint.receive_datagram(packet.data, "B/ws", net.now, link)
    assert a.endpoint.drops["wrong_link"] == 1
    assert sa.path.candidate is None


def test_a_worse_path_is_not_followed_while_the_current_one_works() -> None:
    """A straggler by the WebSocket link while UDP still carries records starts nothing."""
    net, a, b, sid = ws_pair()
    sa, sb = a.session(sid), b.session(sid)
    sb.probe_path("A/ws", b.links["B/ws"], net.now)  # B validates the WebSocket: it answers
    net.flush()
    net.run(0.5)
    # Validated, but worse than UDP and UDP works: B keeps UDP and remembers the WebSocket.
    assert sb.transport == "udp"
    assert ("A/ws", b.links["B/ws"]) in sb.standby
    assert sa.transport == "udp"  # A answered without following
    assert transports(a) == transports(b) == []


# -- relay -> direct (hole punching) -------------------------------------------------------------
def natted(kind: str, seed: int = 3) -> tuple[Net, Node, Node, bytes, tuple[object, object]]:
    """Two nodes behind two NATs of ``kind``, in a session through a relay-like link; returns
    their public addresses as a STUN server (or the relay) observes them."""
    net = Net(seed=seed, delay_s=(0.010, 0.010))
    make = getattr(NATConfig, kind)
    nat_a = net.add_nat(NAT(make(), "203.0.113.1", seeded_rng("nat-a")))
    nat_b = net.add_nat(NAT(make(), "203.0.113.2", seeded_rng("nat-b")))
    stun = net.add_node("S", addr=("192.0.2.1", 3478))
    a = net.add_node("A", addr=("10.0.0.2", 4000), behind=nat_a, config=CONFIG)
    b = net.add_node("B", addr=("10.0.1.2", 4000), behind=nat_b, config=CONFIG)
    net.add_link(a, "R/A", TransportKind.RELAY, 1198)
    net.add_link(b, "R/B", TransportKind.RELAY, 1198)
    a_public = net.send_raw(a, b"stun?", stun.addr).src
    b_public = net.send_raw(b, b"stun?", stun.addr).src
    net.run(0.05)
    sid = net.establish(a, b, to="R/B")
    net.run(0.1)
    assert a.session(sid).transport == "relay"
    return net, a, b, sid, (a_public, b_public)


def punch(net: Net, a: Node, b: Node, sid: bytes, publics: tuple[object, object]) -> None:
    a.session(sid).announce_paths(((str(publics[0][0]), publics[0][1]),))  # type: ignore[index]
    b.session(sid).announce_paths(((str(publics[1][0]), publics[1][1]),))  # type: ignore[index]
    net.flush()
    net.run(0.05)
    # Each adapter probes what the other announced, on its UDP link (both at once).
    for node in (a, b):
        [event] = node.events_of(PathsAnnounced)
        node.session(sid).probe_path(event.udp[0], node.link, net.now)
    net.flush()


@pytest.mark.parametrize("kind", ["full_cone", "port_restricted_cone"])
def test_cone_nats_move_from_the_relay_to_the_direct_path_keeping_the_stream(kind: str) -> None:
    net, a, b, sid, publics = natted(kind)
    sa, sb = a.session(sid), b.session(sid)
    data = hashlib.shake_256(kind.encode()).digest(128 * 1024)
    stream = sa.open_stream(net.now)
    sa.write_stream(stream, data, True, net.now)
    net.flush()
    net.run(0.03)  # part of it went through the relay
    punch(net, a, b, sid, publics)
    net.run(2.0)
    assert sa.transport == sb.transport == "udp"
    assert (sa.addr, sb.addr) == (publics[1], publics[0])
    assert transports(a) == transports(b) == ["udp"]
    assert received(b, stream) == data
    assert ("R/B", a.links["R/A"]) in sa.standby  # the relay stays the fallback


def test_symmetric_nats_stay_relayed() -> None:
    net, a, b, sid, publics = natted("symmetric")
    punch(net, a, b, sid, publics)
    net.run(2.0)
    sa, sb = a.session(sid), b.session(sid)
    assert sa.transport == sb.transport == "relay"
    assert transports(a) == transports(b) == []
    # Still tried now and then (a NAT may change its mind), never validated.
    assert sa.path.validated == sb.path.validated == 0
    assert a.nat is not None
    assert a.nat.stats.dropped_filtered > 0


def test_a_broken_direct_path_falls_back_to_the_relay() -> None:
    net, a, b, sid, publics = natted("port_restricted_cone")
    punch(net, a, b, sid, publics)
    net.run(1.0)
    sa, sb = a.session(sid), b.session(sid)
    assert sa.transport == sb.transport == "udp"

    def direct(p: Packet) -> bool:
        return p.dst not in ("R/A", "R/B")

    net.filters.append(direct)  # the direct path breaks; the relay still works
    data = hashlib.shake_256(b"fallback").digest(64 * 1024)
    stream = sa.open_stream(net.now)
    sa.write_stream(stream, data, True, net.now)
    net.flush()
    net.run(3.0)
    assert sa.transport == sb.transport == "relay"
    assert transports(a) == transports(b) == ["udp", "relay"]
    assert received(b, stream) == data
    assert a.events_of(SessionEstablished)  # the one session throughout
    assert set(a.endpoint.sessions) == {sid}
