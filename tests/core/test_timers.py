"""Deadline bookkeeping (``docs/protocol.md`` §8): a session's named timers, moved by the hooks
named after events, and the heap of many owners' deadlines. Their use by sessions and endpoints
on the simulated network is tested in ``test_session_timeouts.py``."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seigr_stt.config import SessionConfig
from seigr_stt.constants import CLOSE_RETRANSMIT_S, DEAD_PEER_TIMEOUT_S
from seigr_stt.core.timers import DeadlineHeap, SessionTimers
from tests.profiles import scaled

T0 = 1000.0
CONFIG = SessionConfig(
    session_idle_timeout_s=30.0, keepalive_s=10.0, persistent_keepalive_s=25.0, ping_interval_s=5.0
)


# -- SessionTimers ---------------------------------------------------------------------------
def test_a_new_session_arms_idle_and_persistent_keepalive_only() -> None:
    timers = SessionTimers(CONFIG, T0)
    assert timers.created_at == T0
    assert timers.idle_at == T0 + 30.0
    assert timers.persistent_at == T0 + 25.0
    assert timers.heartbeat_at == T0 + 5.0
    assert (timers.keepalive_at, timers.dead_peer_at) == (None, None)
    assert (timers.close_retry_at, timers.drain_at) == (None, None)
    assert (timers.last_sent_at, timers.last_received_at, timers.last_active_at) == (None,) * 3
    assert sorted(timers.armed()) == [T0 + 5.0, T0 + 25.0, T0 + 30.0]


def test_none_disables_the_idle_timeout_and_the_persistent_keepalive() -> None:
    config = SessionConfig(
        session_idle_timeout_s=None, persistent_keepalive_s=None, ping_interval_s=None
    )
    timers = SessionTimers(config, T0)
    assert list(timers.armed()) == []
    timers.on_application_data(T0 + 1)
    timers.on_record_sent(T0 + 1, ack_eliciting=False)
    assert (timers.idle_at, timers.persistent_at) == (None, None)
    assert list(timers.armed()) == []


def test_application_data_moves_the_idle_timeout() -> None:
    timers = SessionTimers(CONFIG, T0)
    timers.on_application_data(T0 + 7)
    assert timers.idle_at == T0 + 37.0
    timers.on_record_sent(T0 + 8, ack_eliciting=True)  # a record is not application data
    timers.on_authenticated_received(T0 + 9)
    assert timers.idle_at == T0 + 37.0


def test_an_ack_eliciting_record_received_arms_the_keepalive_and_sending_disarms_it() -> None:
    timers = SessionTimers(CONFIG, T0)
    timers.on_ack_eliciting_received(T0 + 1)
    assert timers.keepalive_at == T0 + 11.0
    timers.on_ack_eliciting_received(T0 + 2)  # the latest one counts
    assert timers.keepalive_at == T0 + 12.0
    timers.on_record_sent(T0 + 3, ack_eliciting=False)  # an ACK is the answer
    assert timers.keepalive_at is None
    assert timers.last_sent_at == T0 + 3


def test_the_dead_peer_timer_runs_from_the_first_unanswered_eliciting_record() -> None:
    timers = SessionTimers(CONFIG, T0)
    timers.on_record_sent(T0 + 1, ack_eliciting=False)
    assert timers.dead_peer_at is None  # nothing to answer
    timers.on_record_sent(T0 + 2, ack_eliciting=True)
    assert timers.dead_peer_at == T0 + 2 + DEAD_PEER_TIMEOUT_S
    timers.on_record_sent(T0 + 5, ack_eliciting=True)  # does not push it back
    assert timers.dead_peer_at == T0 + 2 + DEAD_PEER_TIMEOUT_S
    timers.on_authenticated_received(T0 + 6)  # the peer answered
    assert timers.dead_peer_at is None
    assert timers.last_received_at == T0 + 6
    timers.on_record_sent(T0 + 7, ack_eliciting=True)
    assert timers.dead_peer_at == T0 + 7 + DEAD_PEER_TIMEOUT_S


def test_every_record_sent_moves_the_persistent_keepalive() -> None:
    timers = SessionTimers(CONFIG, T0)
    timers.on_record_sent(T0 + 4, ack_eliciting=False)
    assert timers.persistent_at == T0 + 29.0
    timers.on_authenticated_received(T0 + 5)  # receiving does not keep a NAT mapping open
    assert timers.persistent_at == T0 + 29.0


@pytest.mark.parametrize(("rtt", "retry"), [(0.01, CLOSE_RETRANSMIT_S), (2.0, 4.0)])
def test_close_retransmission_waits_for_two_rtts_at_least(rtt: float, retry: float) -> None:
    timers = SessionTimers(CONFIG, T0)
    timers.on_drain_started(T0, pto_s=0.1)
    timers.on_close_sent(T0 + 1, rtt)
    assert timers.close_retry_at == pytest.approx(T0 + 1 + retry)
    assert timers.drain_at is None  # sending the CLOSE ends the drain


@pytest.mark.parametrize(("pto", "wait"), [(0.1, 2.0), (0.5, 2.0), (1.0, 4.0)])
def test_a_draining_close_waits_two_seconds_or_four_ptos(pto: float, wait: float) -> None:
    timers = SessionTimers(CONFIG, T0)
    timers.on_drain_started(T0, pto)
    assert timers.drain_at == pytest.approx(T0 + wait)


def test_closing_keeps_only_the_close_deadlines_and_closed_keeps_none() -> None:
    timers = SessionTimers(CONFIG, T0)
    timers.on_ack_eliciting_received(T0)
    timers.on_record_sent(T0, ack_eliciting=True)
    timers.on_ack_eliciting_received(T0 + 1)
    timers.on_close_sent(T0 + 1, 0.1)
    timers.on_closing()
    assert list(timers.armed()) == [T0 + 1 + CLOSE_RETRANSMIT_S]
    timers.on_closed()
    assert list(timers.armed()) == []
    assert timers.close_retry_at is None


def test_due_compares_only_armed_deadlines() -> None:
    assert not SessionTimers.due(None, T0)
    assert not SessionTimers.due(T0 + 0.001, T0)
    assert SessionTimers.due(T0, T0)
    assert SessionTimers.due(T0 - 1, T0)


def test_last_active_is_the_later_of_sent_and_received() -> None:
    timers = SessionTimers(CONFIG, T0)
    timers.on_authenticated_received(T0 + 3)
    assert timers.last_active_at == T0 + 3
    timers.on_record_sent(T0 + 2, ack_eliciting=False)
    assert timers.last_active_at == T0 + 3
    timers.on_record_sent(T0 + 4, ack_eliciting=False)
    assert timers.last_active_at == T0 + 4


def test_repr_names_the_armed_deadlines() -> None:
    timers = SessionTimers(SessionConfig(session_idle_timeout_s=30.0), T0)
    assert repr(timers) == "SessionTimers(idle_at=1030.000, heartbeat_at=1015.000)"
    timers.on_record_sent(T0, ack_eliciting=True)
    assert "dead_peer_at=1010.000" in repr(timers)


def test_the_heartbeat_follows_the_last_record_received() -> None:
    timers = SessionTimers(SessionConfig(ping_interval_s=5.0, dead_peer_timeout_s=7.0), T0)
    assert timers.heartbeat_at == T0 + 5.0
    timers.on_record_sent(T0 + 2, ack_eliciting=True)  # sending does not move it...
    assert timers.heartbeat_at == T0 + 5.0
    assert timers.dead_peer_at == T0 + 2 + 7.0  # ...but arms the dead-peer timer
    timers.on_authenticated_received(T0 + 3)  # receiving does
    assert timers.heartbeat_at == T0 + 8.0
    assert timers.dead_peer_at is None
    timers.on_heartbeat_sent(T0 + 8)
    assert timers.heartbeat_at == T0 + 13.0
    timers.on_closing()
    assert timers.heartbeat_at is None


# -- DeadlineHeap ----------------------------------------------------------------------------
def test_one_deadline_per_key_and_the_earliest_first() -> None:
    heap: DeadlineHeap[str] = DeadlineHeap()
    assert heap.earliest() is None
    heap.set("a", 5.0)
    heap.set("b", 3.0)
    heap.set("c", 4.0)
    assert (len(heap), heap.earliest()) == (3, 3.0)
    heap.set("b", 9.0)  # replaces b's deadline
    assert (len(heap), heap.earliest(), heap.get("b")) == (3, 4.0, 9.0)
    heap.set("c", None)  # None disarms
    assert "c" not in heap
    assert heap.get("c") is None
    heap.discard("a")
    heap.discard("nothing")  # harmless
    assert (len(heap), heap.earliest()) == (1, 9.0)


def test_pop_due_yields_due_keys_in_deadline_order_and_disarms_them() -> None:
    heap: DeadlineHeap[str] = DeadlineHeap()
    for key, at in (("late", 10.0), ("b", 2.0), ("a", 1.0), ("tie1", 3.0), ("tie2", 3.0)):
        heap.set(key, at)
    heap.set("a", 2.5)  # its old entry (1.0) is stale: skipped
    assert list(heap.pop_due(3.0)) == ["b", "a", "tie1", "tie2"]
    assert len(heap) == 1
    assert heap.earliest() == 10.0
    assert list(heap.pop_due(9.999)) == []
    assert list(heap.pop_due(10.0)) == ["late"]
    assert heap.earliest() is None


def test_setting_the_same_deadline_again_adds_no_entry() -> None:
    heap: DeadlineHeap[int] = DeadlineHeap()
    heap.set(1, 5.0)
    size = heap.heap_size
    for _ in range(100):
        heap.set(1, 5.0)
    assert heap.heap_size == size == 1


def test_stale_entries_are_compacted() -> None:
    heap: DeadlineHeap[int] = DeadlineHeap()
    for step in range(10_000):
        heap.set(step % 3, float(step))  # three keys, each moved thousands of times
        assert heap.heap_size <= 4 * len(heap) + 64 + 1
    assert len(heap) == 3
    assert heap.earliest() == 9997.0


@settings(max_examples=scaled(1), deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["set", "discard", "pop"]),
            st.integers(0, 5),
            st.none() | st.floats(0, 100, allow_nan=False),
        ),
        max_size=200,
    )
)
def test_the_heap_agrees_with_a_dict_of_deadlines(
    ops: list[tuple[str, int, float | None]],
) -> None:
    heap: DeadlineHeap[int] = DeadlineHeap()
    model: dict[int, float] = {}
    for op, key, at in ops:
        if op == "set":
            heap.set(key, at)
            if at is None:
                model.pop(key, None)
            else:
                model[key] = at
        elif op == "discard":
            heap.discard(key)
            model.pop(key, None)
        else:
            now = at if at is not None else 50.0
            due = sorted((t, k) for k, t in model.items() if t <= now)
            popped = list(heap.pop_due(now))
            assert sorted(popped) == sorted(k for _, k in due)
            assert [model[k] for k in popped] == sorted(model[k] for k in popped)
            for k in popped:
                del model[k]
        assert len(heap) == len(model)
        assert heap.earliest() == min(model.values(), default=None)
        assert all(heap.get(k) == t for k, t in model.items())
