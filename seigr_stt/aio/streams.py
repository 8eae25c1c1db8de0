"""``STTStream``: a reliable, ordered, bidirectional byte stream inside a session (api.md)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from seigr_stt.aio.driver import Driver
from seigr_stt.constants import STREAM_SEND_HIGH_WATER_BYTES
from seigr_stt.core.session import Session
from seigr_stt.exceptions import SessionClosedError, StreamError

__all__ = ["STTStream"]


class STTStream:
    """One byte stream: from :meth:`STTSession.open_stream` or
    :meth:`STTSession.incoming_streams`.

    Writing is buffered and delivered reliably and in order; :meth:`drain` waits while more than
    ``STREAM_SEND_HIGH_WATER_BYTES`` (1 MiB) are unacknowledged. Reading follows
    :class:`asyncio.StreamReader`: ``read(n)`` returns at most ``n`` bytes (``b""`` at the end),
    ``read()`` everything until the peer closes its side. What is read frees flow-control credit,
    so a slow reader slows the writer down instead of filling memory.
    """

    def __init__(self, driver: Driver, session_id: bytes, stream_id: int) -> None:
        self._driver = driver
        self._session_id = session_id
        self._stream_id = stream_id
        self._buffer = bytearray()
        self._eof = False
        self._fin_received = False  # the peer finished its side: every byte has arrived
        self._write_closed = False
        self._reset_code: int | None = None  # the peer reset its side: nothing more arrives
        self._stopped_code: int | None = None  # the peer asked us to stop writing
        self._reset_locally = False
        self._closed_error: SessionClosedError | None = None
        self._readable = asyncio.Event()

    def __repr__(self) -> str:
        return f"STTStream(id={self._stream_id}, session={self._session_id.hex()})"

    @property
    def stream_id(self) -> int:
        """The stream's id: ``index << 2 | side`` (side 0 = the session's initiator), §16.1."""
        return self._stream_id

    # -- events from the session --------------------------------------------------------------
    def handle_data(self, data: bytes, fin: bool) -> None:
        """Bytes arrived in order (``fin``: the peer finished its side)."""
        self._buffer += data
        if fin:
            self._eof = True
            self._fin_received = True
        self._readable.set()

    def handle_reset(self, code: int, sending: bool) -> None:
        """The peer reset its side (``sending`` False) or asked us to stop (True)."""
        if sending:
            self._stopped_code = code
        else:
            self._reset_code = code
            self._eof = True
        self._readable.set()

    def handle_session_closed(self, error: SessionClosedError) -> None:
        """The session closed: reads end, writes raise ``error``."""
        self._closed_error = error
        self._eof = True
        self._readable.set()

    # -- reading ------------------------------------------------------------------------------
    def _raise_if_failed(self) -> None:
        if self._reset_code is not None and not self._buffer:
            who = "locally" if self._reset_locally else "by the peer"
            raise StreamError(f"stream {self._stream_id} was reset {who} (code {self._reset_code})")
        if self._closed_error is not None and not self._buffer and not self._eof_by_fin():
            raise self._closed_error

    def _eof_by_fin(self) -> bool:
        # A stream the peer finished before the session closed ended cleanly: what arrived is
        # still read, then b"" (not SessionClosedError).
        return self._fin_received and self._reset_code is None

    def _take(self, n: int) -> bytes:
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        if not self._buffer and not self._eof:
            self._readable.clear()
        if data:
            session = self._driver.get_session(self._session_id)
            if session is not None and not self._driver.stopped:
                session.consume_stream(self._stream_id, len(data))
                self._driver.transmit_soon()
        return data

    async def _wait_readable(self) -> None:
        await self._readable.wait()

    async def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes (all until the end when ``n < 0``); ``b""`` once the peer closed.

        Raises :class:`StreamError` if the peer reset the stream and
        :class:`SessionClosedError` if the session closed before the stream ended.
        """
        if n == 0:
            return b""
        if n < 0:
            parts: list[bytes] = []
            while True:
                chunk = await self.read(STREAM_SEND_HIGH_WATER_BYTES)
                if not chunk:
                    return b"".join(parts)
                parts.append(chunk)
        while not self._buffer:
            if self._eof:
                self._raise_if_failed()
                return b""
            self._raise_if_failed()
            await self._wait_readable()
        return self._take(n)

    async def readexactly(self, n: int) -> bytes:
        """Exactly ``n`` bytes; :class:`asyncio.IncompleteReadError` if the stream ends first."""
        parts: list[bytes] = []
        got = 0
        while got < n:
            chunk = await self.read(n - got)
            if not chunk:
                raise asyncio.IncompleteReadError(b"".join(parts), n)
            parts.append(chunk)
            got += len(chunk)
        return b"".join(parts)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        while True:
            chunk = await self.read(STREAM_SEND_HIGH_WATER_BYTES)
            if not chunk:
                return
            yield chunk

    # -- writing ------------------------------------------------------------------------------
    def _check_writable(self) -> None:
        if self._closed_error is not None:
            raise self._closed_error
        if self._stopped_code is not None:
            raise StreamError(
                f"the peer stopped stream {self._stream_id} (code {self._stopped_code})"
            )
        if self._write_closed:
            raise StreamError(f"stream {self._stream_id} is closed for writing")

    def _session(self) -> Session:
        session = self._driver.get_session(self._session_id)
        if session is None:
            raise SessionClosedError(f"session {self._session_id.hex()} is closed")
        return session

    async def write(self, data: bytes) -> None:
        """Queue ``data`` for sending (call :meth:`drain` to respect backpressure)."""
        self._check_writable()
        self._session().write_stream(self._stream_id, bytes(data), False, self._driver.now())
        self._driver.transmit_soon()

    async def drain(self) -> None:
        """Wait while more than the high-water mark of written data is unacknowledged."""
        await asyncio.sleep(0)
        while True:
            self._check_writable_or_closed()
            session = self._driver.get_session(self._session_id)
            if (
                session is None
                or session.stream_buffered(self._stream_id) <= STREAM_SEND_HIGH_WATER_BYTES
            ):
                return
            await self._driver.wait_progress()

    def _check_writable_or_closed(self) -> None:
        if self._closed_error is not None:
            raise self._closed_error
        if self._stopped_code is not None:
            raise StreamError(
                f"the peer stopped stream {self._stream_id} (code {self._stopped_code})"
            )

    async def close(self) -> None:
        """Finish our side (FIN); reading goes on until the peer finishes its side."""
        if self._write_closed or self._closed_error is not None:
            return
        self._check_writable()
        session = self._session()
        self._write_closed = True
        session.write_stream(self._stream_id, b"", True, self._driver.now())
        self._driver.transmit_soon()

    def reset(self, code: int = 0) -> None:
        """Abort both directions with ``code``: unsent data is dropped, the peer is told."""
        if self._closed_error is not None or self._driver.stopped:
            return
        self._write_closed = True
        if self._reset_code is None:
            self._reset_code = code
            self._reset_locally = True
        self._eof = True
        self._readable.set()
        session = self._driver.get_session(self._session_id)
        if session is not None:
            # A stream finished in both directions is already forgotten by the core: there is
            # nothing left to abort or tell the peer, and reset() stays a quiet no-op.
            with contextlib.suppress(StreamError):
                session.reset_stream(self._stream_id, code, self._driver.now())
            self._driver.transmit_soon()
