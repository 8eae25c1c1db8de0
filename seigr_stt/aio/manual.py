"""``ManualSession``: a session the application creates itself (api.md, chapter 17).

``SessionManager.create_session(session_id, peer_node_id)`` makes one: it is tracked, counted by
state and keeps the statistics the application records (``record_frame_sent`` ...), as the
chapter's examples do, but no handshake made it and no transport carries it. Its key is random
and local; :meth:`ManualSession.rotate_key` derives the next one-way. Sending is refused with
:class:`~seigr_stt.exceptions.ProtocolError`.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from typing import NoReturn

from seigr_stt.aio.inbox import Inbox, InboxIterator
from seigr_stt.aio.session import ReceivedPacket, STTSession
from seigr_stt.aio.streams import STTStream
from seigr_stt.constants import CloseCode, SessionState
from seigr_stt.core import crypto
from seigr_stt.exceptions import ProtocolError, SessionClosedError

__all__ = ["ManualSession"]

_LABEL_ROTATION = b"manual-rotation"


class ManualSession(STTSession):
    """A tracked session with no peer or transport; see the module docstring."""

    def __init__(
        self,
        session_id: bytes,
        peer_node_id: bytes,
        *,
        capabilities: int,
        created_at: float,
        clock: Callable[[], float],
        on_closed: Callable[[STTSession], None] | None = None,
    ) -> None:
        super().__init__(
            session_id,
            peer_node_id,
            capabilities=capabilities,
            transport_type=None,
            created_at=created_at,
            on_closed=on_closed,
        )
        self._clock = clock
        self._state = SessionState.ACTIVE
        self._key: bytes | None = os.urandom(32)
        self._version = 0

    @property
    def state(self) -> SessionState:
        """ACTIVE until closed, then CLOSED."""
        return self._state

    @property
    def is_manual(self) -> bool:
        """True: ``SessionManager.create_session`` made this session."""
        return True

    @property
    def key_version(self) -> int:
        """0 at creation, +1 per :meth:`rotate_key`."""
        return self._version

    @property
    def session_key(self) -> bytes:
        """A random local key, advanced one-way by :meth:`rotate_key`; erased on close."""
        if self._key is None:
            raise SessionClosedError("session closed: its key was erased")
        return self._key

    @property
    def last_active(self) -> float:
        """Unix time of the last frame the application recorded (or the creation time)."""
        return self._recorded_at if self._recorded_at is not None else self.created_at

    def _now_unix(self) -> float:
        return self._clock()

    async def rotate_key(self, timeout: float = 10.0, *, fresh_dh: bool = False) -> bytes:
        """Advance the local key one-way (there is no peer to confirm); returns the new key.
        ``fresh_dh``: with no peer to agree a secret with, 32 fresh random bytes are mixed in
        instead, so the new key is again unrelated to any earlier state."""
        if self._key is None:
            raise SessionClosedError("session closed")
        self._key = crypto.kdf(self._key, _LABEL_ROTATION)
        if fresh_dh:
            self._key = crypto.kdf(os.urandom(32), _LABEL_ROTATION + b":" + self._key)
        self._version += 1
        self.last_key_rotation = self._clock()
        return self._key

    def _refuse(self) -> NoReturn:
        raise ProtocolError("a manual session has no peer or transport; nothing can be sent")

    async def send(self, data: bytes, stream_id: int = 0) -> None:
        """Refused: a manual session has no peer (ProtocolError)."""
        self._refuse()

    async def send_datagram(self, data: bytes) -> None:
        """Refused: a manual session has no peer (ProtocolError)."""
        self._refuse()

    async def ping(self, timeout: float = 5.0) -> float:
        """Refused: a manual session has no peer (ProtocolError)."""
        self._refuse()

    async def open_stream(self, *, unidirectional: bool = False) -> NoReturn:
        """Refused: a manual session has no peer (ProtocolError)."""
        self._refuse()

    async def datagrams(self) -> AsyncIterator[bytes]:
        """Nothing ever arrives on a manual session: the iteration ends at once."""
        return
        yield  # pragma: no cover - makes this an async generator

    async def incoming_streams(self) -> AsyncIterator[STTStream]:
        """No peer opens streams on a manual session: the iteration ends at once."""
        return
        yield  # pragma: no cover - makes this an async generator

    async def recv(self, timeout: float | None = None) -> ReceivedPacket:
        """Refused: a manual session has no peer, nothing arrives (ProtocolError)."""
        raise ProtocolError("a manual session has no peer or transport; nothing arrives")

    def __aiter__(self) -> AsyncIterator[ReceivedPacket]:
        """Nothing ever arrives on a manual session: the iteration ends at once."""
        nothing: Inbox[ReceivedPacket] = Inbox()
        nothing.close()
        return InboxIterator(nothing, _same)

    async def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Close at once (there is no peer to tell); the key is erased."""
        self._check_close_code(code, reason)
        self.end(code, reason)

    def end(self, code: int, reason: str) -> None:
        """Close now, without waiting (the node stopping ends its manual sessions)."""
        if self._state == SessionState.CLOSED:
            return
        self._state = SessionState.CLOSED
        self._key = None
        self._finish(code, reason)


def _same(packet: ReceivedPacket) -> ReceivedPacket:
    return packet
