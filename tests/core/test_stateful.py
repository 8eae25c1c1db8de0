"""A hypothesis state machine over two endpoints on the in-memory network (reliability.md).

The network is the adversary: every packet either endpoint sends is held, and hypothesis
chooses what happens to it (deliver now, in any order, drop, duplicate), when time moves, when
the applications send messages, write to a byte stream or rotate keys, and which mutated or
spliced packets are injected, from the peer's address or a stranger's.

Invariants after every step: no exception escapes the endpoints; every channel's received
messages are a prefix of what the peer sent on it (in order, no duplicates, nothing that was
never sent: no forgery), and the same for the byte stream; the session stays open on both
sides, on the peer's real address. At the end the network heals (everything held is delivered,
nothing else is lost) and every message and every stream byte must arrive.
"""

from __future__ import annotations

from collections.abc import Hashable

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
)

from seigr_stt.constants import STT_SESSION_STATE_ACTIVE
from seigr_stt.core.events import MessageReceived, SessionClosed, StreamDataReceived
from seigr_stt.testing import Net, Node, Packet
from tests.profiles import scaled

CHANNELS = 3
#: Each step moves time by at most this; with the step bound (50) the adversarial phase lasts
#: at most 10 simulated seconds: below the dead-peer (15 s), reject-after-time (180 s) and idle
#: (300 s) timeouts, so the session must survive whatever the network does.
MAX_STEP_S = 0.2
STRANGER: Hashable = "stranger"


def mutate(data: bytes, how: int, position: int, other: bytes) -> bytes:
    """One mutation of a captured packet: bit flip, truncation, extension or splice."""
    if not data:
        return other[:1] or b"\x01"
    where = position % len(data)
    if how == 0:  # flip one bit
        out = bytearray(data)
        out[where] ^= 1 << (position % 8)
        return bytes(out)
    if how == 1:  # truncate
        return data[:where]
    if how == 2:  # extend
        return data + bytes([position % 256]) * (1 + position % 17)
    # splice: the head of one packet on the tail of another
    return data[:where] + other[position % (len(other) + 1) :]


class TwoEndpoints(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.net = Net(seed=1)
        self.a = self.net.add_node("A")
        self.b = self.net.add_node("B")
        self.sid = self.net.establish(self.a, self.b)
        self.net.run(0.5)  # settle: confirmation and acknowledgements
        self.held: list[Packet] = []
        self.captured: list[bytes] = []  # every packet ever sent after the handshake
        self.net.filters.append(self._hold)
        self.sent: dict[tuple[str, int], list[bytes]] = {}
        self.seq = 0
        stream_id = self.a.endpoint.session(self.sid).open_stream(self.net.now)
        self.net.flush()
        self.stream_id = stream_id
        self.stream_written = b""
        self.steps = 0

    # -- the adversarial network ----------------------------------------------------------------
    def _hold(self, packet: Packet) -> bool:
        if packet.dst != STRANGER:  # a path challenge to the stranger goes nowhere
            self.held.append(packet)
        self.captured.append(packet.data)
        return True

    def node(self, name: str) -> Node:
        return self.a if name == "A" else self.b

    def peer(self, name: str) -> Node:
        return self.b if name == "A" else self.a

    @precondition(lambda self: self.held)
    @rule(index=st.integers(min_value=0), keep=st.booleans())
    def deliver(self, index: int, keep: bool) -> None:
        """Deliver one held packet (any of them: reordering); ``keep`` leaves a copy held
        (duplication)."""
        packet = self.held[index % len(self.held)]
        if not keep:
            self.held.remove(packet)
        self.net.deliver_held(packet)

    @precondition(lambda self: self.held)
    @rule(index=st.integers(min_value=0))
    def drop(self, index: int) -> None:
        del self.held[index % len(self.held)]

    @precondition(lambda self: self.held)
    @rule()
    def deliver_all_in_order(self) -> None:
        held, self.held = self.held, []
        for packet in held:
            self.net.deliver_held(packet)

    @rule(seconds=st.floats(min_value=0.0, max_value=MAX_STEP_S))
    def advance_time(self, seconds: float) -> None:
        self.net.run(seconds)

    @precondition(lambda self: self.captured)
    @rule(
        index=st.integers(min_value=0),
        other=st.integers(min_value=0),
        how=st.integers(min_value=0, max_value=3),
        position=st.integers(min_value=0, max_value=1 << 16),
        to_b=st.booleans(),
        stranger=st.booleans(),
    )
    def inject_mutated(
        self, index: int, other: int, how: int, position: int, to_b: bool, stranger: bool
    ) -> None:
        """A mutated or spliced copy of a packet seen on the wire, to the node it was for,
        from the real sender's address or from a stranger's."""
        source = self.captured[index % len(self.captured)]
        data = mutate(source, how, position, self.captured[other % len(self.captured)])
        target = self.b if to_b else self.a
        # An exact copy of a genuine packet (a splice can rebuild one) from a stranger's address
        # authenticates, but moves nothing: the stranger never answers the path challenge (§5.3).
        sender = STRANGER if stranger else self.peer(target.name).addr
        self.net.inject(target, data, sender)

    @rule(data=st.binary(max_size=64))
    def inject_random(self, data: bytes) -> None:
        self.net.inject(self.b, data, STRANGER)

    # -- the applications -----------------------------------------------------------------------
    @rule(
        side=st.sampled_from(["A", "B"]),
        channel=st.integers(min_value=0, max_value=CHANNELS - 1),
        size=st.sampled_from([0, 1, 40, 700, 3000]),
    )
    def send_message(self, side: str, channel: int, size: int) -> None:
        self.seq += 1
        tag = f"{side}:{channel}:{self.seq}:".encode()
        data = (tag * (size // len(tag) + 1))[: max(size, len(tag))]
        self.node(side).endpoint.session(self.sid).send_message(channel, data, self.net.now)
        self.sent.setdefault((side, channel), []).append(data)
        self.net.flush()

    @rule(size=st.integers(min_value=1, max_value=4000))
    def write_stream(self, size: int) -> None:
        start = len(self.stream_written)
        data = bytes((start + i) % 251 for i in range(size))
        self.a.endpoint.session(self.sid).write_stream(self.stream_id, data, False, self.net.now)
        self.stream_written += data
        self.net.flush()

    @rule(side=st.sampled_from(["A", "B"]))
    def rotate_key(self, side: str) -> None:
        self.node(side).endpoint.session(self.sid).request_rotation(self.net.now)
        self.net.flush()

    # -- invariants -----------------------------------------------------------------------------
    def received(self, node: Node) -> dict[int, list[bytes]]:
        out: dict[int, list[bytes]] = {}
        for event in node.events_of(MessageReceived):
            assert event.session_id == self.sid
            out.setdefault(event.channel, []).append(event.data)
        return out

    def stream_received(self) -> bytes:
        return b"".join(
            e.data for e in self.b.events_of(StreamDataReceived) if e.stream_id == self.stream_id
        )

    @invariant()
    def only_what_was_sent_in_order_once(self) -> None:
        for receiver in (self.a, self.b):
            sender = self.peer(receiver.name).name
            for channel, messages in self.received(receiver).items():
                sent = self.sent.get((sender, channel), [])
                assert messages == sent[: len(messages)], "forged, duplicated or reordered"
        assert self.stream_written.startswith(self.stream_received())

    @invariant()
    def the_session_stays_open_on_the_real_addresses(self) -> None:
        for node in (self.a, self.b):
            assert not node.events_of(SessionClosed)
            session = node.endpoint.sessions[self.sid]
            assert session.state == STT_SESSION_STATE_ACTIVE
            assert session.addr == self.peer(node.name).addr

    def teardown(self) -> None:
        # Heal the network: deliver what is held, then lose nothing more.
        self.net.filters.remove(self._hold)
        for packet in self.held:
            self.net.deliver_held(packet)
        self.held.clear()
        deadline = self.net.now + 120.0
        while self.net.now < deadline:
            self.net.run(1.0)
            done = all(
                self.received(self.peer(side)).get(channel, []) == messages
                for (side, channel), messages in self.sent.items()
            )
            if done and self.stream_received() == self.stream_written:
                break
        for (side, channel), messages in self.sent.items():
            got = self.received(self.peer(side)).get(channel, [])
            assert got == messages, f"{side} channel {channel}: {len(got)}/{len(messages)}"
        assert self.stream_received() == self.stream_written
        self.the_session_stays_open_on_the_real_addresses()


TwoEndpoints.TestCase.settings = settings(
    max_examples=scaled(1.5),
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_two_endpoints_under_an_adversarial_network = TwoEndpoints.TestCase
