"""``ManualSession``: a tracked session with no peer (chapter 17's ``create_session``)."""

from __future__ import annotations

import pytest

from seigr_stt import (
    ConfigError,
    ManualSession,
    ProtocolError,
    SessionClosedError,
    SessionNotFound,
    SessionState,
    STTSession,
)
from seigr_stt.aio.manual import _LABEL_ROTATION
from seigr_stt.constants import CLOSE_NORMAL, STT_SESSION_STATE_ACTIVE
from seigr_stt.core import crypto
from tests.aio.helpers import NodeFactory


async def test_manual_session_statistics_follow_the_record_methods(
    make_node: NodeFactory,
) -> None:
    node = await make_node()
    session = await node.session_manager.create_session(b"12345678", b"\x07" * 32, 3)
    stats = session.get_statistics()
    assert stats["session_id"] == "3132333435363738"
    assert stats["peer_node_id"] == "07" * 32
    assert stats["state"] == STT_SESSION_STATE_ACTIVE
    assert stats["capabilities"] == 3
    assert (stats["bytes_sent"], stats["packets_sent"]) == (0, 0)
    first_active = session.last_active
    session.record_frame_sent(payload_size=1024)
    session.record_frame_sent(payload_size=1)
    session.record_frame_received(payload_size=2048)
    session.record_send_error()
    session.record_receive_error()
    session.record_receive_error()
    stats = session.get_statistics()
    assert (stats["bytes_sent"], stats["packets_sent"]) == (1025, 2)
    assert (stats["bytes_received"], stats["packets_received"]) == (2048, 1)
    assert (stats["send_errors"], stats["receive_errors"]) == (1, 2)
    assert session.last_active >= first_active
    assert stats["uptime"] >= 0.0


async def test_manual_session_rotate_key(make_node: NodeFactory) -> None:
    node = await make_node()
    session = await node.session_manager.create_session(b"12345678", bytes(32))
    keys = [session.session_key]
    for version in (1, 2, 3):
        new_key = await session.rotate_key()
        assert session.key_version == version
        assert new_key == session.session_key
        keys.append(new_key)
    assert len(set(keys)) == 4
    assert session.last_key_rotation >= session.created_at


async def test_manual_session_rotate_key_with_fresh_dh(make_node: NodeFactory) -> None:
    # No peer to agree a secret with: fresh random bytes are mixed in, so the new key is not the
    # one-way successor that a copy of the old key computes (it is after a hash rotation).
    node = await make_node()
    session = await node.session_manager.create_session(b"12345678", bytes(32))
    old = session.session_key
    assert await session.rotate_key() == crypto.kdf(old, _LABEL_ROTATION)
    old = session.session_key
    fresh = await session.rotate_key(fresh_dh=True)
    assert session.key_version == 2
    assert fresh == session.session_key
    assert fresh not in (old, crypto.kdf(old, _LABEL_ROTATION))


async def test_manual_session_send_raises_protocol_error(make_node: NodeFactory) -> None:
    node = await make_node()
    session = await node.session_manager.create_session(b"12345678", bytes(32))
    with pytest.raises(ProtocolError):
        await session.send(b"data")
    # send_to_sessions names it among the ids it could not send to: it has no transport.
    with pytest.raises(SessionNotFound) as info:
        await node.send_to_sessions([session.session_id], b"data")
    assert info.value.session_ids == (session.session_id,)
    assert await node.send_to_all(b"data") == 0


async def test_a_manual_session_is_an_stt_session_that_refuses_all_traffic(
    make_node: NodeFactory,
) -> None:
    node = await make_node()
    session = await node.session_manager.create_session(b"12345678", bytes(32))
    assert isinstance(session, ManualSession)
    assert isinstance(session, STTSession)
    assert session.max_datagram_size == 0
    assert session.rtt is None
    assert session.peer_addr is None
    for refused in (session.send_datagram(b"x"), session.ping(), session.open_stream()):
        with pytest.raises(ProtocolError, match="no peer"):
            await refused
    assert [d async for d in session.datagrams()] == []
    assert [s async for s in session.incoming_streams()] == []
    assert "ManualSession(id=3132333435363738, state=ACTIVE" in repr(session)


async def test_closing_a_manual_session_erases_its_key_and_checks_the_code(
    make_node: NodeFactory,
) -> None:
    node = await make_node()
    manager = node.session_manager
    session = await manager.create_session(b"12345678", bytes(32))
    with pytest.raises(ConfigError):
        await session.close(-1)
    assert session.is_active()
    async with session:
        pass  # closes on exit
    assert session.state == SessionState.CLOSED
    assert session.close_code == CLOSE_NORMAL
    with pytest.raises(SessionClosedError):
        _ = session.session_key
    with pytest.raises(SessionClosedError):
        await session.rotate_key()
    await session.close()  # no error: already closed
    await session.wait_closed()
    assert not manager.has_session(b"12345678")
    assert manager.get_stats()["closed"] == 1
