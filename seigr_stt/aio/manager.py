"""``SessionManager``: tracks a node's sessions and counts them by state (api.md)."""

from __future__ import annotations

import asyncio
import socket
from types import MappingProxyType, TracebackType
from typing import Any, Self

from seigr_stt.aio.driver import Driver
from seigr_stt.aio.manual import ManualSession
from seigr_stt.aio.session import STTSession
from seigr_stt.aio.stats import SessionCountStats
from seigr_stt.aio.udp import ip_version
from seigr_stt.constants import NODE_ID_BYTES, SESSION_ID_BYTES, CloseCode, SessionState
from seigr_stt.exceptions import ConfigError, SessionError, SessionNotFound

__all__ = ["SessionManager"]


class SessionManager:
    """Every live session of one node, by id; closed ones leave the table but stay counted.

    The node creates one (``node.session_manager``); sessions made by handshakes are tracked by
    the node, manual ones by :meth:`create_session`. Idle expiry
    (``NodeConfig.session_idle_timeout_s``) and the cleanup of closed sessions run by themselves.
    """

    def __init__(self, driver: Driver, max_sessions: int) -> None:
        self._driver = driver
        self._max_sessions = max_sessions
        self._sessions: dict[bytes, STTSession] = {}
        self._created = 0
        self._closed = 0
        self._max_concurrent = 0  # high-water mark of live sessions

    def __repr__(self) -> str:
        return f"SessionManager(live={len(self._sessions)}, total={self._created})"

    @property
    def max_sessions(self) -> int:
        """Live sessions allowed at once (``NodeConfig.max_sessions``)."""
        return self._max_sessions

    def track(self, session: STTSession) -> None:
        """Count and track ``session`` until it closes (the node calls this for every session a
        handshake makes; applications use :meth:`create_session`)."""
        self._sessions[session.session_id] = session
        self._created += 1
        self._max_concurrent = max(self._max_concurrent, len(self._sessions))

    def forget(self, session: STTSession) -> None:
        """``session`` closed: it leaves the live table and is counted as closed."""
        if self._sessions.get(session.session_id) is session:
            del self._sessions[session.session_id]
            self._closed += 1

    async def create_session(
        self, session_id: bytes, peer_node_id: bytes, capabilities: int = 0
    ) -> ManualSession:
        """Create and track a *manual* session (no handshake, no transport).

        Raises :class:`ConfigError` for a malformed id or a duplicate, and
        :class:`SessionError` when ``max_sessions`` live sessions exist.
        """
        if not isinstance(session_id, bytes) or len(session_id) != SESSION_ID_BYTES:
            raise ConfigError(f"session_id must be {SESSION_ID_BYTES} bytes")
        if not isinstance(peer_node_id, bytes) or len(peer_node_id) != NODE_ID_BYTES:
            raise ConfigError(f"peer_node_id must be {NODE_ID_BYTES} bytes")
        if isinstance(capabilities, bool) or not isinstance(capabilities, int) or capabilities < 0:
            raise ConfigError("capabilities must be a non-negative int")
        if session_id in self._sessions or self._driver.get_session(session_id) is not None:
            raise ConfigError(f"a session with id {session_id.hex()} already exists")
        if len(self._sessions) >= self._max_sessions:
            raise SessionError(f"max_sessions ({self._max_sessions}) reached")
        session = ManualSession(
            session_id,
            peer_node_id,
            capabilities=capabilities,
            created_at=self._driver.unix_now(),
            clock=self._driver.unix_now,
            on_closed=self.forget,
        )
        self.track(session)
        return session

    def get_session(self, session_id: bytes) -> STTSession | None:
        """The live session with this id, or None."""
        return self._sessions.get(session_id)

    def has_session(self, session_id: bytes) -> bool:
        """Whether a live session has this id."""
        return session_id in self._sessions

    def get_all_sessions(self) -> list[STTSession]:
        """Every live session, in any state but CLOSED (closed ones leave the table)."""
        return list(self._sessions.values())

    def get_active_sessions(self) -> list[STTSession]:
        """Live sessions in the ACTIVE state."""
        return [s for s in self._sessions.values() if s.state == SessionState.ACTIVE]

    def get_sessions_by_state(self, state: int) -> list[STTSession]:
        """Live sessions in ``state`` (a :class:`SessionState` or its int)."""
        return [s for s in self._sessions.values() if s.state == state]

    def get_sessions_by_peer(self, node_id: bytes) -> list[STTSession]:
        """Live sessions with the peer whose node id is ``node_id`` (32 bytes), oldest first
        (a peer may hold several sessions with us, over UDP and WebSocket)."""
        if not isinstance(node_id, bytes | bytearray) or len(node_id) != NODE_ID_BYTES:
            raise ConfigError(f"node_id must be {NODE_ID_BYTES} bytes")
        return [s for s in self._sessions.values() if s.peer_node_id == node_id]

    async def get_sessions_by_address(self, host: str, port: int) -> list[STTSession]:
        """Live sessions whose peer is at ``(host, port)`` (:attr:`STTSession.peer_addr`),
        oldest first.

        ``host`` is resolved as :meth:`STTNode.connect_udp` resolves it (``"localhost"`` finds
        the sessions with ``127.0.0.1``), hence the ``await``; an IP literal is used as it is.
        A WebSocket session's address is the far end of its connection (for a client, the
        server's WebSocket port). Raises :class:`ConfigError` for a bad host or port and
        :class:`OSError` when the name does not resolve.
        """
        if not isinstance(host, str) or not host:
            raise ConfigError("host must be a non-empty string")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ConfigError(f"port must be an int within 0..65535, not {port!r}")
        udp = self._driver.udp
        if udp is not None:
            address = await udp.resolve(host, port)
        else:
            address = await _resolve(host, port)
        return [s for s in self._sessions.values() if s.peer_addr == address]

    async def close_session(
        self, session_id: bytes, code: int = CloseCode.NORMAL, reason: str = ""
    ) -> None:
        """Close one session and wait until it is CLOSED; raises :class:`SessionNotFound`
        (:class:`TypeError` for an id that is not bytes)."""
        if not isinstance(session_id, bytes):
            raise TypeError(f"session_id must be bytes, not {type(session_id).__name__}")
        session = self._sessions.get(session_id)
        if session is None:
            raise SessionNotFound(f"no live session {session_id.hex()}", (session_id,))
        await session.close(code, reason)

    async def remove_session(
        self, session_id: bytes, code: int = CloseCode.NORMAL, reason: str = ""
    ) -> STTSession | None:
        """Close the session (the peer is told ``code`` and ``reason``), wait until it is
        CLOSED, and forget it; returns it, or None when no live session has this id (removing
        twice is not an error). Raises :class:`TypeError` for an id that is not bytes."""
        if not isinstance(session_id, bytes):
            raise TypeError(f"session_id must be bytes, not {type(session_id).__name__}")
        session = self._sessions.get(session_id)
        if session is None:
            return None
        await session.close(code, reason)
        self.forget(session)
        return session

    async def close_all_sessions(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Close every live session concurrently and wait for all of them."""
        sessions = list(self._sessions.values())
        if sessions:
            await asyncio.gather(*(s.close(code, reason) for s in sessions))

    async def shutdown(self) -> None:
        """Close every live session (code ``GOING_AWAY``) and wait for all of them. The manager
        and its node stay usable: new sessions may follow (``node.stop()`` ends the node)."""
        await self.close_all_sessions(CloseCode.GOING_AWAY, "session manager shut down")

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Leaving ``async with node.session_manager:`` runs :meth:`shutdown`."""
        await self.shutdown()

    def end_manual_sessions(self, code: int, reason: str) -> None:
        """Close every manual session now (the node is stopping)."""
        for session in list(self._sessions.values()):
            if isinstance(session, ManualSession):
                session.end(code, reason)

    def get_session_count(self) -> int:
        """Every session ever created on this node, closed ones included."""
        return self._created

    def stats(self) -> SessionCountStats:
        """A frozen snapshot of the session counts (see :class:`SessionCountStats`)."""
        counts = dict.fromkeys(SessionState, 0)
        for session in self._sessions.values():
            counts[session.state] += 1
        return SessionCountStats(
            created_total=self._created,
            closed_total=self._closed,
            live=len(self._sessions),
            by_state=MappingProxyType(counts),
            max_concurrent=self._max_concurrent,
            handshakes_in_flight=self._driver.endpoint.live_handshakes(),
            max_sessions=self._max_sessions,
        )

    def get_stats(self, snapshot: SessionCountStats | None = None) -> dict[str, Any]:
        """The chapter's dict, built from :meth:`stats` (or ``snapshot``): ``total`` (ever
        created), ``handshake`` (handshakes in progress: a session is handed out ACTIVE),
        ``active``, ``closing`` (live, by state), ``closed`` (ever closed), plus ``live``,
        ``handshakes_in_flight`` (the same figure as ``handshake``), ``max_sessions``,
        ``max_concurrent`` (the high-water mark of ``live``) and ``by_state`` (live sessions by
        state name)."""
        st = snapshot if snapshot is not None else self.stats()
        in_flight = st.handshakes_in_flight
        return {
            "total": st.created_total,
            "handshake": st.by_state[SessionState.HANDSHAKE] + in_flight,
            "active": st.by_state[SessionState.ACTIVE],
            "closing": st.by_state[SessionState.CLOSING],
            "closed": st.closed_total,
            "live": st.live,
            "handshakes_in_flight": in_flight,
            "max_sessions": st.max_sessions,
            "max_concurrent": st.max_concurrent,
            "by_state": {state.name: n for state, n in st.by_state.items()},
        }


async def _resolve(host: str, port: int) -> tuple[str, int]:
    """``(host, port)`` with a name resolved to its first address (no socket to match)."""
    if ip_version(host) is not None:
        return (host, port)
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    sockaddr = infos[0][4]
    return (str(sockaddr[0]), int(sockaddr[1]))
