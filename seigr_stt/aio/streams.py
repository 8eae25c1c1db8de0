"""``STTStream``: a reliable, ordered, bidirectional byte stream inside a session (api.md)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from typing import Any

from seigr_stt.aio.driver import Driver, high_water
from seigr_stt.constants import STREAM_CODE_UNIDIRECTIONAL, STREAM_SEND_HIGH_WATER_BYTES
from seigr_stt.core.session import Session
from seigr_stt.core.streams import ReadQueue
from seigr_stt.exceptions import ConfigError, SessionClosedError, StreamError

__all__ = ["STREAM_READ_LIMIT", "STTStream"]

#: :meth:`STTStream.readuntil` gives up (``asyncio.LimitOverrunError``) when this many bytes
#: arrived without the separator (asyncio's default ``limit``).
STREAM_READ_LIMIT = 64 * 1024


class _Done(Awaitable[None]):
    """What :meth:`STTStream.write` returns: the work is done, awaiting it is optional."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return
        yield  # pragma: no cover - makes this a generator that finishes at once


_DONE = _Done()


def _check_count(n: object) -> None:
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be an int, not {type(n).__name__}")


class STTStream:
    """One byte stream: from :meth:`STTSession.open_stream` or
    :meth:`STTSession.incoming_streams`.

    Writing is buffered and delivered reliably and in order; :meth:`drain` waits while more than
    ``STREAM_SEND_HIGH_WATER_BYTES`` (1 MiB, or the stream window when larger) are
    unacknowledged. Reading follows
    :class:`asyncio.StreamReader`: ``read(n)`` returns at most ``n`` bytes (``b""`` at the end),
    ``read()`` everything until the peer closes its side. What is read frees flow-control credit,
    so a slow reader slows the writer down instead of filling memory.

    As with :class:`asyncio.StreamWriter`, :meth:`write` (and :meth:`close`) do their work when
    called: ``stream.write(data)`` without ``await`` sends, and ``await stream.write(data)``
    (as api.md writes it) works too.
    """

    def __init__(
        self,
        driver: Driver,
        session_id: bytes,
        stream_id: int,
        *,
        send_only: bool = False,
        opened_by_peer: bool = False,
        info: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self._driver = driver
        self._info = info  # the session's side of get_extra_info()
        self._opened_by_peer = opened_by_peer
        self._send_only = send_only  # we opened it unidirectional: we only write
        self._receive_only = False  # the peer opened it unidirectional: we only read
        self._session_id = session_id
        self._stream_id = stream_id
        self._buffer = ReadQueue()
        self._eof = False
        self._fin_received = False  # the peer finished its side: every byte has arrived
        self._write_closed = False
        self._reset_code: int | None = None  # the peer reset its side: nothing more arrives
        self._stopped_code: int | None = None  # the peer asked us to stop writing
        self._reset_locally = False
        self._closed_error: SessionClosedError | None = None
        self._readable = asyncio.Event()
        self._finished: asyncio.Future[None] | None = None  # for wait_closed()
        self._ended = False  # released by the core, reset, or the session closed

    def __repr__(self) -> str:
        return f"STTStream(id={self._stream_id}, session={self._session_id.hex()})"

    @property
    def stream_id(self) -> int:
        """The stream's id: ``index << 2 | side`` (side 0 = the session's initiator), §16.1."""
        return self._stream_id

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """As :meth:`asyncio.StreamWriter.get_extra_info`: ``"peername"`` (the peer's
        ``(host, port)``), ``"transport"`` (``"udp"`` or ``"websocket"``), ``"session_id"``,
        ``"peer_node_id"``, ``"stream_id"``; ``default`` for any other name."""
        if name == "stream_id":
            return self._stream_id
        if name == "session_id":
            return self._session_id
        info = self._info() if self._info is not None else {}
        return info.get(name, default)

    @property
    def is_unidirectional(self) -> bool:
        """True for a stream only one side sends on: we opened it with
        ``open_stream(unidirectional=True)`` (we only write), or the peer did (we only read;
        known once its announcement arrived, normally before ``incoming_streams()`` yields
        it)."""
        return self._send_only or self._receive_only

    # -- events from the session --------------------------------------------------------------
    def handle_data(self, data: bytes, fin: bool) -> None:
        """Bytes arrived in order (``fin``: the peer finished its side)."""
        self._buffer.append(data)
        if fin:
            self._eof = True
            self._fin_received = True
        self._readable.set()

    def handle_reset(self, code: int, sending: bool) -> None:
        """The peer reset its side (``sending`` False) or asked us to stop (True)."""
        if sending:
            self._stopped_code = code
            if code == STREAM_CODE_UNIDIRECTIONAL and self._opened_by_peer:
                self._receive_only = True
        else:
            self._reset_code = code
            self._eof = True
            self._end()
        self._readable.set()

    def handle_session_closed(self, error: SessionClosedError) -> None:
        """The session closed: reads end, writes raise ``error``."""
        self._closed_error = error
        self._eof = True
        self._readable.set()
        self._end()

    def handle_released(self) -> None:
        """Both directions finished (the core forgot the stream)."""
        self._end()

    def _end(self) -> None:
        self._ended = True
        if self._finished is not None and not self._finished.done():
            self._finished.set_result(None)

    # -- state --------------------------------------------------------------------------------
    def at_eof(self) -> bool:
        """True when everything the peer sent has been read and it finished (or reset) its side,
        or the session closed (as :meth:`asyncio.StreamReader.at_eof`); always True on a
        unidirectional stream we opened (nothing arrives on it)."""
        return self._send_only or (self._eof and not self._buffer)

    def is_closing(self) -> bool:
        """True once our side is finished or reset, the peer stopped it, or the session closed
        (as :meth:`asyncio.StreamWriter.is_closing`): :meth:`write` would raise."""
        return (
            self._write_closed
            or self._closed_error is not None
            or self._stopped_code is not None
            or (self._reset_code is not None and self._reset_locally)
        )

    async def wait_closed(self) -> None:
        """Wait until the stream is over: finished in both directions, reset, or its session
        closed. Reading what arrived stays possible afterwards."""
        if self._ended:
            return
        if self._finished is None:
            self._finished = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._finished)

    # -- reading ------------------------------------------------------------------------------
    def _raise_if_failed(self) -> None:
        if self._reset_code is not None and not self._buffer:
            who = "locally" if self._reset_locally else "by the peer"
            raise StreamError(f"stream {self._stream_id} was reset {who} (code {self._reset_code})")
        if self._closed_error is not None and not self._buffer and not self._eof_by_fin():
            raise self._closed_error

    def _check_readable(self) -> None:
        if self._send_only:
            raise StreamError(
                f"stream {self._stream_id} is unidirectional: only this side sends on it"
            )

    def _eof_by_fin(self) -> bool:
        # A stream the peer finished before the session closed ended cleanly: what arrived is
        # still read, then b"" (not SessionClosedError).
        return self._fin_received and self._reset_code is None

    def _take(self, n: int) -> bytes:
        # One copy at most (ReadQueue.take): a reader behind a bulk stream takes up to a window
        # at a time.
        buffer = self._buffer
        data = buffer.take(n)
        if not buffer and not self._eof:
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
        _check_count(n)
        self._check_readable()
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
            # Nothing buffered and not at the end: wait for the next change (an event with no
            # bytes, such as the peer stopping our half, must not make this loop spin).
            self._readable.clear()
            await self._wait_readable()
        return self._take(n)

    async def readuntil(self, separator: bytes = b"\n", *, limit: int = STREAM_READ_LIMIT) -> bytes:
        """Read up to and including ``separator`` (as :meth:`asyncio.StreamReader.readuntil`).

        Raises :class:`asyncio.IncompleteReadError` (with what arrived) if the stream ends first
        and :class:`asyncio.LimitOverrunError` when ``limit`` bytes arrived without the
        separator (they stay buffered); ``separator`` must be non-empty bytes.
        """
        if not isinstance(separator, bytes | bytearray) or not separator:
            raise ValueError("separator must be non-empty bytes")
        self._check_readable()
        searched = 0
        while True:
            at = self._buffer.find(separator, searched)
            if at >= 0:
                return self._take(at + len(separator))
            if len(self._buffer) >= limit:
                raise asyncio.LimitOverrunError(
                    f"{limit} bytes arrived without the separator", len(self._buffer)
                )
            searched = max(len(self._buffer) - len(separator) + 1, 0)
            if self._eof:
                self._raise_if_failed()
                partial = self._take(len(self._buffer))
                raise asyncio.IncompleteReadError(partial, None)
            self._raise_if_failed()
            self._readable.clear()  # everything buffered was searched: wait for more
            await self._wait_readable()

    async def readline(self) -> bytes:
        """Read one line, ``b"\n"`` included; at the end, what is left (``b""`` when nothing
        is), as :meth:`asyncio.StreamReader.readline`."""
        try:
            return await self.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            return exc.partial

    async def readexactly(self, n: int) -> bytes:
        """Exactly ``n`` bytes; :class:`asyncio.IncompleteReadError` if the stream ends first
        (:class:`ValueError` for a negative ``n``, as asyncio)."""
        _check_count(n)
        if n < 0:
            raise ValueError("readexactly size can not be less than zero")
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
        if self._receive_only:
            raise StreamError(
                f"stream {self._stream_id} is unidirectional: only the peer sends on it"
            )
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

    def write(self, data: bytes | bytearray | memoryview) -> Awaitable[None]:
        """Queue ``data`` for sending now (call :meth:`drain` to respect backpressure).

        The data is queued before this returns, so ``stream.write(data)`` needs no ``await``;
        the awaitable it returns is already done (``await stream.write(data)`` works too).
        Raises :class:`TypeError` unless ``data`` is bytes-like, :class:`StreamError` once our
        side is finished or the peer stopped the stream, :class:`SessionClosedError` once the
        session closed.
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"data must be bytes, not {type(data).__name__}")
        self._check_writable()
        self._session().write_stream(self._stream_id, bytes(data), False, self._driver.now())
        self._driver.transmit_soon()
        return _DONE

    def write_eof(self) -> None:
        """Finish our side (FIN), as :meth:`close`, without awaiting."""
        self.close()

    async def drain(self) -> None:
        """Wait while more than the high-water mark of written data is unacknowledged:
        ``STREAM_SEND_HIGH_WATER_BYTES`` (1 MiB), or the session's stream window when larger."""
        await asyncio.sleep(0)
        while True:
            self._check_writable_or_closed()
            session = self._driver.get_session(self._session_id)
            if session is None or session.stream_buffered(self._stream_id) <= high_water(
                STREAM_SEND_HIGH_WATER_BYTES, session
            ):
                return
            await self._driver.wait_progress()

    def _check_writable_or_closed(self) -> None:
        if self._closed_error is not None:
            raise self._closed_error
        if self._receive_only:
            raise StreamError(
                f"stream {self._stream_id} is unidirectional: only the peer sends on it"
            )
        if self._stopped_code is not None:
            raise StreamError(
                f"the peer stopped stream {self._stream_id} (code {self._stopped_code})"
            )

    def close(self) -> Awaitable[None]:
        """Finish our side (FIN); reading goes on until the peer finishes its side.

        Done when called (``await stream.close()`` works too; :meth:`wait_closed` waits for
        both sides). No error when already finished or the session closed.
        """
        if self._write_closed or self._closed_error is not None:
            return _DONE
        self._check_writable()
        session = self._session()
        self._write_closed = True
        session.write_stream(self._stream_id, b"", True, self._driver.now())
        self._driver.transmit_soon()
        return _DONE

    def reset(self, code: int = 0) -> None:
        """Abort both directions with ``code``: unsent data is dropped, the peer is told.
        ``code`` is an int within 0..2**62-1 (:class:`TypeError` / :class:`ConfigError`)."""
        if isinstance(code, bool) or not isinstance(code, int):
            raise TypeError(f"code must be an int, not {type(code).__name__}")
        if not 0 <= code < STREAM_CODE_UNIDIRECTIONAL:
            raise ConfigError(
                "reset code must be within 0..2**62-2 (2**62-1 marks unidirectional streams)"
            )
        if self._closed_error is not None or self._driver.stopped:
            return
        self._write_closed = True
        if self._reset_code is None:
            self._reset_code = code
            self._reset_locally = True
        self._eof = True
        self._readable.set()
        self._end()
        session = self._driver.get_session(self._session_id)
        if session is not None:
            # A stream finished in both directions is already forgotten by the core: there is
            # nothing left to abort or tell the peer, and reset() stays a quiet no-op.
            with contextlib.suppress(StreamError):
                session.reset_stream(self._stream_id, code, self._driver.now())
            self._driver.transmit_soon()
