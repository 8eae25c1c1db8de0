"""The endpoint: handshakes over an in-memory network, the session table, limits and cookies."""

from __future__ import annotations

import pytest

from seigr_stt.config import NodeConfig
from seigr_stt.constants import (
    CLOSE_SERVER_FULL,
    COOKIE_REPLY_SIZE,
    HANDSHAKE_RETRY_INITIAL_S,
    HANDSHAKE_RETRY_JITTER_S,
    MAC_BYTES,
    RESPONDER_HALF_OPEN_TIMEOUT_S,
    SESSION_ID_BYTES,
    STT_SESSION_STATE_ACTIVE,
    STT_SESSION_STATE_HANDSHAKE,
)
from seigr_stt.core import endpoint as endpoint_module
from seigr_stt.core import handshakes as handshakes_module
from seigr_stt.core.cookie import check_mac2
from seigr_stt.core.endpoint import Endpoint
from seigr_stt.core.events import (
    DatagramReceived,
    HandshakeAborted,
    MessageReceived,
    SessionClosed,
    SessionEstablished,
)
from seigr_stt.core.frames import Close, serialize_frames
from seigr_stt.core.handshake import parse_handshake_header
from seigr_stt.core.handshakes import CONNECTION_CLOSED
from seigr_stt.core.identity import NodeIdentity, SharedSecrets
from seigr_stt.core.link import Link, TransportKind
from seigr_stt.core.stats import DropReason
from seigr_stt.core.timers import DeadlineHeap
from seigr_stt.exceptions import ProtocolError, SessionNotFound
from tests.core.net import (
    COOKIE,
    DATA,
    FINAL,
    INIT,
    RESPONSE,
    SHARED_SEED,
    Net,
    Node,
    Pair,
    authentic_record,
    dgram,
    handshake_table,
    make_pair,
    make_seed,
    seeded_rng,
)

UDP = Link(TransportKind.UDP, 1232)


def initiating(node: Node) -> dict[bytes, tuple[bool, float, float]]:
    """The node's handshakes waiting for a RESPONSE: index -> (has a cookie, retry, deadline)."""
    return handshake_table(node.endpoint, "initiating")


def established(node: Node) -> list[SessionEstablished]:
    return node.events_of(SessionEstablished)


def two(net: Net, **kw: NodeConfig) -> tuple[Node, Node]:
    return net.add_node("A", config=kw.get("a")), net.add_node("B", config=kw.get("b"))


def test_full_handshake(net: Net) -> None:
    a, b = two(net)
    handle = net.connect(a, b)
    net.run(0.0)
    [ea] = established(a)
    [eb] = established(b)
    assert ea.session_id == eb.session_id
    assert len(ea.session_id) == SESSION_ID_BYTES
    assert (ea.initiator, ea.handle, ea.addr) == (True, handle, "B")
    assert (eb.initiator, eb.handle, eb.addr) == (False, None, "A")
    assert ea.peer_node_id == b.endpoint.identity.node_id
    assert eb.peer_node_id == a.endpoint.identity.node_id
    assert [p.type for p in net.log] == [INIT, RESPONSE, FINAL, DATA]
    sa, sb = a.session(ea.session_id), b.session(eb.session_id)
    assert sa.state == sb.state == STT_SESSION_STATE_ACTIVE
    assert sa.peer_index == sb.local_index
    assert sb.peer_index == sa.local_index
    assert a.endpoint.live_handshakes() == b.endpoint.live_handshakes() == 0
    assert a.endpoint.counters.sessions_created == b.endpoint.counters.sessions_created == 1
    assert a.endpoint.counters.handshakes_started == 1
    assert not a.endpoint.drops
    assert not b.endpoint.drops
    assert a.endpoint.counters.packets_sent == 2
    assert b.endpoint.counters.packets_sent == 2
    assert a.endpoint.counters.packets_received == b.endpoint.counters.packets_received == 2
    assert (
        a.endpoint.counters.bytes_sent
        == b.endpoint.counters.bytes_received
        == sum(len(p.data) for p in net.sent_by(a))
    )


def test_initiator_is_confirmed_only_by_the_responders_record(net: Net) -> None:
    a, b = two(net)
    net.drop(lambda p: p.type == DATA)
    net.connect(a, b)
    net.run(0.0)
    [sa] = a.endpoint.sessions.values()
    assert sa.state == STT_SESSION_STATE_HANDSHAKE
    assert established(a) == []
    assert len(established(b)) == 1
    with pytest.raises(Exception, match="not active"):
        a.endpoint.session(sa.session_id).send_message(0, b"early", net.now)


def test_wrong_shared_seed(net: Net) -> None:
    a = net.add_node("A")
    b = net.add_node("B", shared_seed=make_seed("another group"))
    handle = net.connect(a, b, timeout_s=7.0)
    start = net.now
    net.run(30.0)
    assert net.sent_by(b) == []
    assert b.endpoint.drops["mac1"] == len(net.sent_by(a, INIT)) > 1
    assert set(b.endpoint.drops) == {"mac1"}
    [(t, failed)] = a.timed_events_of(HandshakeAborted)
    assert failed == HandshakeAborted(handle, "no valid answer", timeout=True)
    assert t == pytest.approx(start + 7.0)
    assert a.endpoint.counters.handshakes_failed == 1
    assert not a.endpoint.sessions
    assert not b.endpoint.sessions
    assert a.endpoint.live_handshakes() == b.endpoint.live_handshakes() == 0
    assert established(a) == established(b) == []


def test_dialling_by_node_id_refuses_any_other_responder(net: Net) -> None:
    a, b = net.add_node("A"), net.add_node("B")
    dialled = bytes(32)  # not b's node id
    handle = a.endpoint.connect(
        b.addr,
        net.now,
        link=a.link,
        timestamp_ns=net.timestamp_ns(),
        timeout_s=5.0,
        peer_node_id=dialled,
    )
    net.flush_node(a)
    net.run(1.0)
    [failed] = a.events_of(HandshakeAborted)
    assert failed.handle == handle
    assert not failed.timeout
    assert "not the node dialled" in failed.reason
    assert a.endpoint.drops["peer_refused"] == 1
    assert not a.endpoint.sessions
    assert net.sent_by(a, FINAL) == []
    # The right id completes.
    a.endpoint.connect(
        b.addr,
        net.now,
        link=a.link,
        timestamp_ns=net.timestamp_ns(),
        timeout_s=5.0,
        peer_node_id=b.endpoint.identity.node_id,
    )
    net.flush_node(a)
    net.run(1.0)
    assert len(a.endpoint.sessions) == 1


def test_lost_init_is_retransmitted(net: Net) -> None:
    a, b = two(net)
    net.drop(lambda p: p.type == INIT)
    start = net.now
    net.connect(a, b)
    net.run(3.0)
    inits = net.sent_by(a, INIT)
    assert [p.fate for p in inits] == ["filtered", "delivered"]
    assert inits[0].data == inits[1].data
    assert (
        HANDSHAKE_RETRY_INITIAL_S
        <= inits[1].sent_at - start
        <= HANDSHAKE_RETRY_INITIAL_S + HANDSHAKE_RETRY_JITTER_S
    )
    assert len(established(a)) == len(established(b)) == 1


def test_lost_response_gets_the_same_response_again(net: Net) -> None:
    a, b = two(net)
    net.drop(lambda p: p.type == RESPONSE)
    net.connect(a, b)
    net.run(3.0)
    responses = net.sent_by(b, RESPONSE)
    assert [p.fate for p in responses] == ["filtered", "delivered"]
    assert responses[0].data == responses[1].data
    assert b.endpoint.counters.sessions_created == 1
    assert len(established(a)) == len(established(b)) == 1
    assert not b.endpoint.drops


def test_lost_final_is_retransmitted_by_the_session(net: Net) -> None:
    a, b = two(net)
    net.drop(lambda p: p.type == FINAL)
    net.connect(a, b)
    net.run(0.5)
    assert established(a) == established(b) == []
    net.run(1.0)
    finals = net.sent_by(a, FINAL)
    assert [p.fate for p in finals] == ["filtered", "delivered"]
    assert finals[0].data == finals[1].data
    assert finals[1].sent_at - finals[0].sent_at == pytest.approx(HANDSHAKE_RETRY_INITIAL_S)
    assert len(established(a)) == len(established(b)) == 1


def test_lost_confirmation_duplicate_final_is_answered(net: Net) -> None:
    a, b = two(net)
    net.drop(lambda p: p.type == DATA)
    net.connect(a, b)
    net.run(1.5)
    assert b.endpoint.drops["duplicate_final"] == 1
    confirmations = net.sent_by(b, DATA)
    assert [p.fate for p in confirmations] == ["filtered", "delivered"]
    assert len(established(a)) == 1
    sid = established(a)[0].session_id
    assert a.session(sid).is_active


def test_network_duplicated_final_gets_a_confirmation_record(net: Net) -> None:
    a, b = two(net)
    net.connect(a, b)
    net.run(0.0)
    [final] = net.sent_by(a, FINAL)
    before = len(net.sent_by(b, DATA))
    sent = net.deliver_held(final)
    assert [p.type for p in sent] == [DATA]
    assert len(net.sent_by(b, DATA)) == before + 1
    assert b.endpoint.drops["duplicate_final"] == 1
    # A FINAL for that session with other bytes is not a duplicate.
    forged = final.data[:-1] + bytes([final.data[-1] ^ 1])  # mac2 only: mac1 still valid
    assert net.inject(b, forged, "A") == []
    assert b.endpoint.drops["handshake_state"] == 1


def test_simultaneous_connects_both_ways(net: Net) -> None:
    a, b = two(net)
    ha = net.connect(a, b)
    hb = net.connect(b, a)
    net.run(1.0)
    assert len(a.endpoint.sessions) == len(b.endpoint.sessions) == 2
    assert {e.handle for e in established(a) if e.initiator} == {ha}
    assert {e.handle for e in established(b) if e.initiator} == {hb}
    assert set(a.endpoint.sessions) == set(b.endpoint.sessions)
    for sid in a.endpoint.sessions:
        a.endpoint.session(sid).send_message(1, b"from a " + sid, net.now)
        b.endpoint.session(sid).send_message(1, b"from b " + sid, net.now)
    net.flush()
    net.run(0.1)
    assert {e.data for e in b.events_of(MessageReceived)} == {
        b"from a " + sid for sid in a.endpoint.sessions
    }
    assert {e.data for e in a.events_of(MessageReceived)} == {
        b"from b " + sid for sid in a.endpoint.sessions
    }


def test_max_sessions_refusal(net: Net) -> None:
    a = net.add_node("A")
    b = net.add_node("B", config=NodeConfig(max_sessions=1))
    c = net.add_node("C")
    net.establish(a, b)
    handle = net.connect(c, b, timeout_s=3.0)
    net.run(0.0)
    # The member gets a RESPONSE that refuses (§4.4): it fails at once, sends no FINAL, and
    # the full endpoint keeps no state for it.
    assert b.endpoint.drops["session_limit"] == 1
    assert len(b.endpoint.sessions) == 1
    assert b.endpoint.live_handshakes() == 0
    assert [p.type for p in net.sent_by(b) if p.dst == "C"] == [RESPONSE]
    assert net.sent_by(c, FINAL) == []
    assert c.events_of(HandshakeAborted) == [
        HandshakeAborted(
            handle,
            "the server is full (it holds max_sessions sessions)",
            timeout=False,
            code=CLOSE_SERVER_FULL,
        )
    ]
    assert c.endpoint.live_handshakes() == 0
    # The full endpoint also refuses to initiate.
    with pytest.raises(ProtocolError, match="max_sessions"):
        b.endpoint.connect("C", net.now, timestamp_ns=1, link=UDP, timeout_s=1)


def test_connect_counts_live_handshakes_against_max_sessions(net: Net) -> None:
    a = net.add_node("A", config=NodeConfig(max_sessions=2))
    a.endpoint.connect("X", net.now, timestamp_ns=1, link=UDP, timeout_s=5)
    a.endpoint.connect("Y", net.now, timestamp_ns=2, link=UDP, timeout_s=5)
    with pytest.raises(ProtocolError):
        a.endpoint.connect("Z", net.now, timestamp_ns=3, link=UDP, timeout_s=5)
    assert a.endpoint.live_handshakes() == 2


def load_with_half_open(net: Net, b: Node, count: int = 1) -> None:
    """Leave ``count`` half-open handshakes on ``b`` (their initiators vanish)."""
    for i in range(count):
        ghost = net.add_node(f"ghost{i}")
        net.connect(ghost, b)
        net.kill(ghost)
        net.run(0.0)
    assert b.endpoint.handshakes.half_open == count


def test_cookie_under_load(net: Net) -> None:
    a = net.add_node("A")
    b = net.add_node("B", config=NodeConfig(handshake_load_threshold=1, handshake_half_open_max=8))
    load_with_half_open(net, b)
    net.connect(a, b)
    net.run(0.0)
    [cookie_reply] = net.sent_by(b, COOKIE)
    assert len(cookie_reply.data) == COOKIE_REPLY_SIZE == 64
    assert cookie_reply.dst == "A"
    assert b.endpoint.drops["cookie_required"] == 1
    assert net.sent_by(b, RESPONSE)[1:] == []  # only the ghost got a RESPONSE
    [(has_cookie, _, _)] = initiating(a).values()
    assert has_cookie
    cookie = b.endpoint.handshakes.cookies.cookie_for(b.link.cookie_input("A"), net.now)
    net.run(2.0)
    inits = net.sent_by(a, INIT)
    assert len(inits) == 2
    assert inits[0].data[-MAC_BYTES:] == bytes(MAC_BYTES)
    assert inits[1].data[-MAC_BYTES:] != bytes(MAC_BYTES)
    assert check_mac2(inits[1].data, cookie)  # the cookie b sent, 16 bytes as b made it
    assert inits[1].data[:-MAC_BYTES] == inits[0].data[:-MAC_BYTES]
    assert len(established(a)) == len(established(b)) == 1
    assert b.endpoint.drops["cookie_required"] == 1


def test_cookie_reply_checks(net: Net) -> None:
    a = net.add_node("A")
    b = net.add_node("B", config=NodeConfig(handshake_load_threshold=1, handshake_half_open_max=8))
    load_with_half_open(net, b)
    net.drop(lambda p: p.type == COOKIE)
    net.connect(a, b)
    net.run(0.0)
    [reply] = net.sent_by(b, COOKIE)
    data = reply.data
    cases = [
        (data[:-1], "size"),
        (data + b"\x00", "size"),
        (data[:2] + b"\x00\x01" + data[4:], "size"),
        (data[:4] + b"\xde\xad\xbe\xef" + data[8:], "unknown_index"),
        (data[:-1] + bytes([data[-1] ^ 1]), "cookie"),
        (data[:10] + bytes([data[10] ^ 1]) + data[11:], "cookie"),
    ]
    for packet, reason in cases:
        before = a.endpoint.drops[reason]
        assert net.inject(a, packet, "B") == []
        assert a.endpoint.drops[reason] == before + 1
        [(has_cookie, _, _)] = initiating(a).values()
        assert not has_cookie
    net.deliver_held(reply)
    [(has_cookie, _, _)] = initiating(a).values()
    assert has_cookie


def test_half_open_table_full(net: Net) -> None:
    a = net.add_node("A")
    b = net.add_node("B", config=NodeConfig(handshake_load_threshold=1, handshake_half_open_max=1))
    load_with_half_open(net, b)
    net.connect(a, b)
    net.run(0.0)
    assert b.endpoint.drops["half_open_full"] == 1
    assert [p for p in net.sent_by(b) if p.dst == "A"] == []


def test_stale_timestamp(net: Net) -> None:
    a, b = two(net)
    first = net.establish(a, b)
    old_ts = net._timestamp_ns  # the timestamp of the handshake b accepted
    handle = a.endpoint.connect("B", net.now, timestamp_ns=old_ts, link=UDP, timeout_s=4)
    net.flush()
    net.run(0.0)
    assert b.endpoint.drops["stale_timestamp"] == 1
    assert len(b.endpoint.sessions) == 1
    net.run(5.0)
    failed = a.events_of(HandshakeAborted)
    assert [(f.handle, f.timeout) for f in failed] == [(handle, True)]
    assert set(a.endpoint.sessions) == {first}
    # A newer timestamp from the same peer is accepted.
    second = net.establish(a, b)
    assert second != first
    assert set(b.endpoint.sessions) == {first, second}


def test_refusing_incoming(net: Net) -> None:
    a = net.add_node("A")
    b = net.add_node("B", accept_incoming=False)
    net.connect(a, b, timeout_s=2.0)
    net.run(3.0)
    assert b.endpoint.drops["handshake_state"] >= 1
    assert net.sent_by(b) == []
    assert len(a.events_of(HandshakeAborted)) == 1


def test_cancel_connect_while_initiating(net: Net) -> None:
    a, b = two(net)
    net.drop(lambda p: p.type == INIT, times=100)
    handle = net.connect(a, b)
    a.endpoint.cancel_connect(handle, net.now)
    assert a.endpoint.live_handshakes() == 0
    net.run(120.0)
    assert len(net.sent_by(a, INIT)) == 1
    assert a.events_of(HandshakeAborted) == []


def test_cancel_connect_while_awaiting_confirmation(net: Net) -> None:
    a, b = two(net)
    net.drop(lambda p: p.type == DATA, times=100)
    handle = net.connect(a, b)
    net.run(0.0)
    [sa] = a.endpoint.sessions.values()
    assert sa.state == STT_SESSION_STATE_HANDSHAKE
    a.endpoint.cancel_connect(handle, net.now)
    net.flush()
    assert a.events_of(HandshakeAborted) == [
        HandshakeAborted(handle, "connect cancelled", timeout=False)
    ]
    assert sa.session_id not in a.endpoint.sessions
    [closed] = a.events_of(SessionClosed)
    assert closed.session_id == sa.session_id
    assert not closed.by_peer


def test_unknown_session_lookups(pair: Pair) -> None:
    ep = pair.a.endpoint
    unknown = b"\x00" * 8
    with pytest.raises(SessionNotFound, match=unknown.hex()) as info:
        ep.session(unknown)
    assert isinstance(info.value, KeyError)
    assert unknown.hex() in str(info.value)
    for call in (
        lambda: ep.session(unknown).send_message(0, b"x", pair.net.now),
        lambda: ep.session(unknown).send_datagram(b"x", pair.net.now),
        lambda: ep.session(unknown).ping(pair.net.now),
        lambda: ep.session(unknown).request_rotation(pair.net.now),
        lambda: ep.session(unknown).close(0, "", pair.net.now),
    ):
        with pytest.raises(SessionNotFound):
            call()
    assert ep.session(pair.sid) is pair.sa


def test_handshake_replies_for_unknown_indexes(pair: Pair) -> None:
    net, a, b = pair.net, pair.a, pair.b
    [response] = net.sent_by(b, RESPONSE)
    [final] = net.sent_by(a, FINAL)
    assert net.inject(a, response.data, "B") == []  # its handshake is over
    assert a.endpoint.drops["unknown_index"] == 1
    orphan = final.data[:8] + b"\x77\x77\x77\x77" + final.data[12:]
    assert net.inject(b, orphan, "A") == []
    assert b.endpoint.drops["mac1"] == 1  # the receiver index is covered by mac1
    assert set(a.endpoint.drops) | set(b.endpoint.drops) == {"unknown_index", "mac1"}


def test_final_for_a_forgotten_half_open(net: Net) -> None:
    a, b = two(net)
    net.drop(lambda p: p.type == FINAL, times=1000)  # FINAL and its retransmissions
    net.connect(a, b)
    net.run(0.0)
    assert b.endpoint.handshakes.half_open == 1
    net.run(RESPONDER_HALF_OPEN_TIMEOUT_S)  # b forgets the handshake
    assert b.endpoint.handshakes.half_open == 0
    final = net.sent_by(a, FINAL)[0]
    assert final.fate == "filtered"
    assert net.deliver_held(final) == []
    assert b.endpoint.drops["unknown_index"] == 1
    assert not b.endpoint.sessions


def test_drop_reasons_are_documented() -> None:
    assert len(set(tuple(DropReason))) == len(tuple(DropReason))
    assert {"mac1", "auth", "replay", "epoch", "tombstone", "reflection"} <= set(tuple(DropReason))


class ScriptedRng:
    """Deterministic randomness whose 4-byte draws (session indexes) follow a script."""

    def __init__(self, indexes: list[bytes]) -> None:
        self.indexes = indexes
        self.fallback = seeded_rng("scripted")

    def __call__(self, n: int) -> bytes:
        if n == 4 and self.indexes:
            return self.indexes.pop(0)
        return self.fallback(n)


def test_local_indexes_are_never_zero_and_never_reused() -> None:
    first, second = b"\x00\x00\x00\x07", b"\x00\x00\x00\x09"
    rng = ScriptedRng([bytes(4), first, first, bytes(4), second])
    ep = Endpoint(
        NodeIdentity.from_seed(make_seed("scripted")),
        SharedSecrets.from_seed(SHARED_SEED),
        NodeConfig(),
        rng,
    )
    ep.connect("X", 0.0, timestamp_ns=1, link=UDP, timeout_s=5)
    ep.connect("Y", 0.0, timestamp_ns=2, link=UDP, timeout_s=5)
    assert set(handshake_table(ep, "initiating")) == {first, second}
    assert rng.indexes == []
    inits = ep.datagrams_to_send(0.0)
    assert [packet[4:8] for packet, _ in inits] == [first, second]


def test_cancel_connect_only_touches_its_handle(pair: Pair) -> None:
    net, a = pair.net, pair.a
    h1 = a.endpoint.connect("X", net.now, timestamp_ns=1, link=UDP, timeout_s=5)
    h2 = a.endpoint.connect("Y", net.now, timestamp_ns=2, link=UDP, timeout_s=5)
    index = {addr: packet[4:8] for packet, addr in a.endpoint.datagrams_to_send(net.now)}
    assert h1 != h2
    a.endpoint.cancel_connect(h1, net.now)
    assert set(initiating(a)) == {index["Y"]}  # h2's handshake (to Y) is left
    a.endpoint.cancel_connect(12345, net.now)  # unknown: nothing happens
    assert set(initiating(a)) == {index["Y"]}
    assert pair.sa.is_active  # the established session (another handle) is untouched


def test_abort_sends_nothing(pair: Pair) -> None:
    net = pair.net
    sa = pair.sa
    before = len(net.log)
    pair.a.endpoint.session(pair.sid).abort(1, "transport gone")
    assert net.flush() == []
    assert len(net.log) == before
    assert pair.a.events_of(SessionClosed) == [SessionClosed(pair.sid, 1, "transport gone", False)]
    assert sa.keys.erased
    assert pair.a.endpoint.recently_closed(pair.sid)
    sa.abort(2, "again")  # a closed session ignores it
    assert sa.close_code == 1


def test_abort_keeps_the_close_code_of_a_closing_session(pair: Pair) -> None:
    pair.a.endpoint.session(pair.sid).close(7, "first", pair.net.now)
    pair.a.endpoint.session(pair.sid).abort(1, "then the link died")
    pair.net.flush()
    [closed] = pair.a.events_of(SessionClosed)
    assert (closed.code, closed.reason) == (7, "first")


def test_abort_address(net: Net) -> None:
    a, b, c = net.add_node("A"), net.add_node("B"), net.add_node("C")
    ab = net.establish(a, b)
    ac = net.establish(a, c)
    handle = a.endpoint.connect(
        "B", net.now, timestamp_ns=net.timestamp_ns(), link=UDP, timeout_s=5
    )
    a.endpoint.connect("Z", net.now, timestamp_ns=net.timestamp_ns(), link=UDP, timeout_s=5)
    for name, src in (("D", "B"), ("E", "Z")):
        other = net.add_node(name)
        other.endpoint.connect("A", net.now, timestamp_ns=1, link=UDP, timeout_s=5)
        for packet, _ in other.endpoint.datagrams_to_send(net.now):
            a.endpoint.receive_datagram(packet, src, net.now, a.link)  # a half-open bound to src
    assert a.endpoint.handshakes.half_open == 2
    # Which local index serves which address: a's INITs and RESPONSEs (sender index) say so.
    init_to: dict[object, bytes] = {}
    response_to: dict[object, bytes] = {}
    for packet, addr in a.endpoint.datagrams_to_send(net.now):
        ptype, sender, _ = parse_handshake_header(packet)
        (init_to if ptype == INIT else response_to)[addr] = sender
    assert set(init_to) == set(response_to) == {"B", "Z"}
    a.endpoint.abort_address("B", 9, "link closed")
    out = net.flush_node(a)
    assert [p for p in out if p.type == DATA] == []
    assert set(a.endpoint.sessions) == {ac}
    assert set(handshake_table(a.endpoint, "half_open")) == {response_to["Z"]}
    assert set(initiating(a)) == {init_to["Z"]}
    assert HandshakeAborted(handle, CONNECTION_CLOSED, timeout=False) in a.events_of(
        HandshakeAborted
    )
    assert SessionClosed(ab, 9, "link closed", False) in a.events_of(SessionClosed)


def test_peer_timestamp_table_is_bounded(net: Net, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(handshakes_module, "PEER_TIMESTAMP_TABLE_MAX", 2)
    b = net.add_node("B")
    peers = [net.add_node(f"P{i}") for i in range(3)]
    for peer in peers:
        net.establish(peer, b)
    statics = [p.endpoint.identity.static_public for p in peers]
    table = handshake_table(b.endpoint, "peer_timestamps")
    assert list(table) == statics[1:]  # the oldest was forgotten


def test_schedule_heap_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    heaps: list[DeadlineHeap[bytes]] = []

    class Recorded(DeadlineHeap[bytes]):
        def __init__(self) -> None:
            super().__init__()
            heaps.append(self)

    monkeypatch.setattr(endpoint_module, "DeadlineHeap", Recorded)
    pair = make_pair(config=NodeConfig(session_idle_timeout_s=5.0, keepalive_s=1000.0))
    ep, peer = pair.a.endpoint, pair.b.endpoint
    heap = heaps[0]  # the session deadlines of A's endpoint

    def shuttle(src: Endpoint, dst: Endpoint, src_addr: str, now: float) -> None:
        # Carry packets by hand: the net would call get_timer(), which prunes the heap itself.
        for data, _ in src.datagrams_to_send(now):
            dst.receive_datagram(data, src_addr, now, UDP)

    now = pair.net.now
    deadlines = set()
    for i in range(500):
        now += 0.01  # every message moves the loss-detection deadline: a new heap entry
        ep.session(pair.sid).send_message(0, b"%d" % i, now)
        shuttle(ep, peer, "A", now)
        shuttle(peer, ep, "B", now)  # an ACK every second record
        deadlines.add(pair.sa.get_timer())
    assert len(deadlines) >= 450
    assert len(heap) == 1
    assert heap.heap_size <= 4 * len(heap) + 64 + 1
    assert ep.datagrams_to_send(now) == []
    assert ep.get_timer() == pair.sa.get_timer()
    now += 0.05
    peer.handle_timer(now)  # the last, delayed ACK
    shuttle(peer, ep, "B", now)
    ep.datagrams_to_send(now)
    assert pair.sa.all_acknowledged
    assert ep.get_timer() == pair.sa.get_timer() == pytest.approx(now - 0.05 + 5.0)


def test_records_after_close_before_draining_are_dropped(pair: Pair) -> None:
    close = authentic_record(pair.sb, serialize_frames([Close(3, "bye")]))
    after = authentic_record(pair.sb, dgram(b"after the close"))
    ep = pair.a.endpoint
    ep.receive_datagram(close, "B", pair.net.now, pair.a.link)
    ep.receive_datagram(after, "B", pair.net.now, pair.a.link)  # the adapter has not drained yet
    assert ep.drops == {"closed_session": 1}
    pair.net.flush()
    assert pair.a.events_of(DatagramReceived) == []
