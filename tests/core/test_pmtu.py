"""Path-MTU probing (``docs/protocol.md`` §12.1): the prober on its own, then sessions whose link
allows probing on the simulated network."""

from __future__ import annotations

from seigr_stt.constants import (
    AEAD_TAG_BYTES,
    PMTU_BLACK_HOLE_PTOS,
    PMTU_MAX_PROBES,
    PMTU_PROBE_AFTER_RECORDS,
    PMTU_REPROBE_AFTER_S,
    RECORD_HEADER_SIZE,
    RECORD_PAD_MULTIPLE_BYTES,
)
from seigr_stt.core.crypto import Aead
from seigr_stt.core.events import StreamDataReceived
from seigr_stt.core.frames import Ping, Stream, parse_frames
from seigr_stt.core.link import Link, TransportKind
from seigr_stt.core.pmtu import PathMtuProber
from seigr_stt.core.record import open_record, parse_header
from seigr_stt.testing import Net, Node
from tests.core.net import DATA, Pair

BULK = 10**6  # bytes waiting to be sent: enough to probe at any size
T0 = 1000.0


def padded(size: int) -> int:
    """The largest record of at most ``size`` bytes (its body is padded to 16 bytes)."""
    return size - (size - RECORD_HEADER_SIZE - AEAD_TAG_BYTES) % RECORD_PAD_MULTIPLE_BYTES


# -- the prober ------------------------------------------------------------------------------
def test_the_ladder_lies_between_the_base_and_the_ceiling() -> None:
    prober = PathMtuProber(1232, 8192)
    sizes = []
    counter = 0
    while (size := prober.probe_size(BULK, T0)) is not None:
        sizes.append(size)
        prober.on_probe_sent(counter)
        assert prober.on_acked(counter, size)
        assert prober.size == size
        counter += 1
    assert sizes == [1452, 4096, 8192]
    assert PathMtuProber(1232, 0).probe_size(BULK, T0) is None  # probing off
    assert PathMtuProber(1232, 1232).probe_size(BULK, T0) is None
    assert PathMtuProber(65536, 65536).probe_size(BULK, T0) is None  # nothing above the base


def test_probes_go_out_only_while_bulk_data_waits_and_one_at_a_time() -> None:
    prober = PathMtuProber(1232, 8192)
    assert prober.probe_size(PMTU_PROBE_AFTER_RECORDS * 1232, T0) is None  # chatty, not bulk
    assert prober.probe_size(PMTU_PROBE_AFTER_RECORDS * 1232 + 1, T0) == 1452
    prober.on_probe_sent(7)
    assert prober.probe_counter == 7
    assert prober.probe_size(BULK, T0) is None  # one probe in flight at a time


def test_only_the_probe_counts_as_a_probe() -> None:
    prober = PathMtuProber(1232, 8192)
    prober.on_probe_sent(7)
    assert not prober.on_acked(6, 1452)
    assert not prober.on_lost(8)
    assert (prober.size, prober.probe_counter) == (1232, 7)


def test_lost_probes_stop_probing_after_max_probes() -> None:
    prober = PathMtuProber(1232, 8192)
    for attempt in range(PMTU_MAX_PROBES):
        assert prober.probe_size(BULK, T0) == 1452  # the same size again
        prober.on_probe_sent(attempt)
        assert prober.on_lost(attempt)  # not a congestion signal: the caller skips it
    assert prober.probe_size(BULK, T0 + 100) is None
    assert prober.size == 1232


def test_an_acknowledged_probe_resets_the_failures_of_the_next_size() -> None:
    prober = PathMtuProber(1232, 8192)
    for attempt in range(PMTU_MAX_PROBES - 1):
        prober.on_probe_sent(attempt)
        prober.on_lost(attempt)
    prober.on_probe_sent(10)
    assert prober.on_acked(10, 1452)
    for attempt in range(PMTU_MAX_PROBES - 1):  # 4096 may fail twice and still be tried
        assert prober.probe_size(BULK, T0) == 4096
        prober.on_probe_sent(20 + attempt)
        prober.on_lost(20 + attempt)
    assert prober.probe_size(BULK, T0) == 4096


def test_a_black_hole_falls_back_to_the_base_and_probes_again_later() -> None:
    prober = PathMtuProber(1232, 8192)
    prober.on_probe_sent(0)
    prober.on_acked(0, 1452)
    prober.on_probe_sent(1)  # the 4096 probe is in flight when the path changes
    for count in range(1, PMTU_BLACK_HOLE_PTOS):
        assert not prober.on_probe_timeout(count, T0)
    assert prober.size == 1452
    assert prober.on_probe_timeout(PMTU_BLACK_HOLE_PTOS, T0)
    assert (prober.size, prober.probe_counter) == (1232, None)
    assert prober.probe_size(BULK, T0 + PMTU_REPROBE_AFTER_S - 0.001) is None  # a pause first
    assert prober.probe_size(BULK, T0 + PMTU_REPROBE_AFTER_S) == 1452  # from the bottom
    assert not prober.on_probe_timeout(PMTU_BLACK_HOLE_PTOS + 1, T0)  # at the base: nothing


# -- on the network --------------------------------------------------------------------------
def probing_pair(*, max_delivered: int | None = None) -> Pair:
    """Two nodes whose links allow probing up to 8192 bytes; the network drops packets larger
    than ``max_delivered`` (a path with a smaller MTU)."""
    net = Net(seed=3, delay_s=(0.01, 0.01))
    nodes: list[Node] = []
    for name in ("A", "B"):
        node = net.add_node(name)
        node.link = Link(TransportKind.UDP, 1232, probe_max=8192)
        nodes.append(node)
    if max_delivered is not None:
        limit = max_delivered
        net.filters.append(lambda packet: len(packet.data) > limit)
    a, b = nodes
    sid = net.establish(a, b)
    return Pair(net, a, b, sid)


def bulk_transfer(pair: Pair, size: int) -> bytes:
    data = bytes(i % 251 for i in range(size))
    session = pair.sa
    stream_id = session.open_stream(pair.net.now)
    session.write_stream(stream_id, data, True, pair.net.now)
    pair.net.flush()
    pair.net.run(20.0)
    received = b"".join(e.data for e in pair.b.events_of(StreamDataReceived))
    assert received == data
    return data


def test_a_path_that_carries_large_records_gets_them() -> None:
    pair = probing_pair()
    assert pair.sa.max_record_size == 1232
    bulk_transfer(pair, 2 * 10**6)
    assert padded(8192) == 8180
    assert pair.sa.max_record_size == padded(8192)  # the size of the probe that got through
    assert pair.sa.snapshot().max_record_size == padded(8192)
    records = pair.net.sent_by(pair.a, DATA)
    sizes = [len(p.data) for p in records]
    assert max(sizes) == padded(8192)
    assert sum(1 for s in sizes if s > 4096) > 100  # the transfer used the larger records
    # Each rung is first reached by a probe: a PING padded to the size it tests.
    for rung in (1452, 4096, 8192):
        first = next(p for p in records if len(p.data) == padded(rung))
        header = parse_header(first.data)
        frames = parse_frames(open_record(_recv_aead(pair), first.data, header.counter))
        assert Ping(0) in frames
        assert not any(isinstance(f, Stream) for f in frames)  # data never rides on a probe


def test_a_path_with_a_smaller_mtu_loses_only_the_probes() -> None:
    pair = probing_pair(max_delivered=1500)
    cwnd_cuts_before = pair.sa.packetizer.cc.ssthresh
    bulk_transfer(pair, 10**6)
    assert pair.sa.max_record_size == padded(1452)  # 4096 never made it
    lost = [p for p in pair.net.log if p.fate == "filtered"]
    assert len(lost) == PMTU_MAX_PROBES  # three tries at 4096, then probing stopped
    assert all(len(p.data) == padded(4096) for p in lost)
    assert pair.sa.packetizer.cc.ssthresh == cwnd_cuts_before  # no congestion response
    assert pair.sa.counters.packets_lost == 0  # a lost probe is not counted as a lost record


def _recv_aead(pair: Pair) -> Aead:
    """B's cipher for A's epoch-0 records (how B opens them)."""
    selected = pair.sb.keys.select_receive_key(0, pair.net.now)
    assert selected is not None
    return selected[1]


def test_a_black_hole_mid_transfer_falls_back_to_the_base_size_and_the_transfer_completes() -> None:
    pair = probing_pair()
    net = pair.net
    data = bytes(i % 253 for i in range(4 * 10**6))
    stream_id = pair.sa.open_stream(net.now)
    pair.sa.write_stream(stream_id, data, True, net.now)
    net.flush()
    while pair.sa.max_record_size < padded(8192):
        net.run(0.05)
    assert pair.sa.max_record_size == padded(8192)
    net.filters.append(lambda packet: len(packet.data) > 1500)  # the route changes
    net.run(30.0)
    received = b"".join(e.data for e in pair.b.events_of(StreamDataReceived))
    assert received == data
    assert pair.sa.max_record_size <= padded(1452)  # fell back to the base size
    assert pair.sa.is_active
    # More bulk data: probing resumed from the bottom finds what the new path carries.
    more = bytes(10**6)
    pair.sa.write_stream(pair.sa.open_stream(net.now), more, True, net.now)
    net.flush()
    net.run(20.0)
    assert pair.sa.max_record_size == padded(1452)
    assert pair.sa.packetizer.cc.max_datagram == padded(1452)
