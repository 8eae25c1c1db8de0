"""The ``Driver``: one drain point, calls in one loop turn sharing a drain, events routed to the
session that owns them, one timer."""

from __future__ import annotations

import asyncio
from itertools import pairwise

from seigr_stt import STTNode
from seigr_stt.aio.driver import YIELD_EVERY_SENDS, Driver
from seigr_stt.aio.peer import PeerSession
from seigr_stt.core.events import Event
from tests.aio.helpers import NodeFactory, connect, receive_n
from tests.timing import SECOND


def sent(node: STTNode) -> int:
    assert node.udp_transport is not None
    return node.udp_transport.datagrams_sent


async def test_the_first_call_of_a_turn_drains_at_once_and_later_ones_share_one_drain(
    make_node: NodeFactory,
) -> None:
    server = await make_node()
    client = await make_node(server_mode=False)
    session, _ = await connect(client, server, "udp")
    await asyncio.sleep(0.05)  # let the handshake's last records go
    before = sent(client)
    await session.send(b"first")  # the first call of this turn: on the wire already
    after_first = sent(client)
    assert after_first == before + 1
    for i in range(5):  # the same turn: they wait for the drain at its end
        await session.send(b"more %d" % i)
    assert sent(client) == after_first
    await asyncio.sleep(0)  # the turn ends: one drain, one record for all five
    assert sent(client) == after_first + 1
    packets = await receive_n(server, 6)
    assert [p.data for p in packets] == [b"first"] + [b"more %d" % i for i in range(5)]


async def test_a_task_that_only_sends_lets_the_loop_run_every_yield_every_sends(
    make_node: NodeFactory,
) -> None:
    # A sender that never waits for backpressure (small messages, far below the high-water
    # mark) still yields to the loop: another task runs at least every YIELD_EVERY_SENDS sends,
    # and not after every send (the sends of one turn share its drain).
    server = await make_node()
    client = await make_node(server_mode=False)
    session, _ = await connect(client, server, "udp")
    sends = 0
    seen: list[int] = []
    done = False

    async def ticker() -> None:
        while not done:
            seen.append(sends)
            await asyncio.sleep(0)

    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(0)  # the ticker's first turn
    for _ in range(4 * YIELD_EVERY_SENDS):
        await session.send(b"m")
        sends += 1
    done = True
    await ticking
    gaps = [b - a for a, b in pairwise(seen)] + [sends - seen[-1]]
    assert max(gaps) <= YIELD_EVERY_SENDS
    assert len(seen) <= 4 + 2  # about one turn per YIELD_EVERY_SENDS sends, not one per send


async def test_events_go_to_the_session_bound_to_their_id(make_node: NodeFactory) -> None:
    server = await make_node()
    client = await make_node(server_mode=False)
    session, peer = await connect(client, server, "udp")
    other, other_peer = await connect(client, server, "udp")
    driver = client_driver(client)
    seen: list[Event] = []
    arrived = asyncio.Event()

    class Recorder:
        def handle_event(self, event: Event) -> None:
            seen.append(event)
            arrived.set()

    driver.bind(other.session_id, Recorder())  # replaces the handle of the second session
    stream = await peer.open_stream()
    await stream.write(b"to the first session")
    other_stream = await other_peer.open_stream()
    await other_stream.write(b"to the second")
    incoming = await anext(aiter(session.incoming_streams()))
    assert await incoming.read(20) == b"to the first session"
    async with asyncio.timeout(5 * SECOND):
        await arrived.wait()
    assert {getattr(e, "session_id", None) for e in seen} == {other.session_id}
    # The session's own handle back: it closes normally at teardown (no wait for a lost close).
    assert isinstance(other, PeerSession)
    driver.bind(other.session_id, other)


def client_driver(node: STTNode) -> Driver:
    """The node's driver (white-box: the seam under test)."""
    driver = node._driver
    assert isinstance(driver, Driver)
    return driver


async def test_one_timer_follows_the_endpoints_earliest_deadline(make_node: NodeFactory) -> None:
    server = await make_node()
    client = await make_node(server_mode=False)
    await connect(client, server, "udp")
    driver = client_driver(client)
    deadline = client.endpoint.get_timer()
    assert deadline is not None
    assert driver.timer_at == deadline
    await client.stop()
    assert driver.timer_at is None
    assert driver.stopped


async def test_a_reply_to_a_received_message_goes_out_in_the_same_turn(
    make_node: NodeFactory,
) -> None:
    # Taking the message returns its credit, which owes the peer nothing yet: that must not use
    # up the turn's immediate drain, so the reply sent next is on the wire when send returns.
    server = await make_node()
    client = await make_node(server_mode=False)
    session, _ = await connect(client, server, "udp")
    await asyncio.sleep(0.05)  # let the handshake's last records go
    await session.send(b"request")
    request = await anext(server.receive())
    before = sent(server)
    await server.send_to_sessions([request.session_id], b"reply")
    assert sent(server) == before + 1
    [reply] = await receive_n(client, 1)
    assert reply.data == b"reply"
