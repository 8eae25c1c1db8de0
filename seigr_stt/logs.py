"""Logging helpers: structured fields, a JSON formatter and rate-limited refusal lines.

The library logs through stdlib loggers under ``seigr_stt`` and installs no handler; see
``docs/logging.md`` for what is logged at which level. Records about a session carry these
attributes (``extra`` fields), besides the ``[sid]`` prefix of their text:

* ``stt_session``: the session id, 16 hex digits (the text prefix shows its first 8);
* ``stt_peer``: the first 16 hex digits of the peer's node id (as in metrics);
* ``stt_transport``: ``"udp"``, ``"websocket"`` or None (a manual session);
* ``stt_addr``: the peer's ``host:port`` (over WebSocket, the connection's remote address),
  or None.

Node records (start, stop, handshakes, refusals) carry ``stt_transport`` and ``stt_addr`` where
they concern one. :class:`JSONFormatter` writes every record as one JSON object per line with
these fields; it uses only the standard library::

    handler = logging.StreamHandler()
    handler.setFormatter(JSONFormatter())
    logging.getLogger("seigr_stt").addHandler(handler)
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from typing import Any, Final

from seigr_stt.core.stats import DropReason

__all__ = [
    "REFUSAL_INTERVAL_S",
    "STRUCTURED_FIELDS",
    "JSONFormatter",
    "RefusalLog",
    "format_addr",
]

#: The ``extra`` attributes the library sets on its records.
STRUCTURED_FIELDS: Final = ("stt_session", "stt_peer", "stt_transport", "stt_addr")

#: A refusal or drop reason is logged at most once per this many seconds, with the count.
REFUSAL_INTERVAL_S: Final = 10.0

#: Handshake INITs sent again for want of an answer: counted with the drops, logged the same way.
HANDSHAKE_RETRY: Final = "handshake_retry"

# (level, what it means to an operator) of each counter RefusalLog reports; the reasons not
# listed (per-record drops: replays, unknown sessions, ...) are logged at DEBUG.
_REFUSALS: Final[dict[str, tuple[int, str]]] = {
    DropReason.MAC1: (
        logging.WARNING,
        "handshake packets without a valid mac1: a sender with another shared_seed, or garbage",
    ),
    DropReason.SESSION_LIMIT: (
        logging.WARNING,
        "handshakes refused: the server is full (max_sessions)",
    ),
    DropReason.PEER_REFUSED: (
        logging.WARNING,
        "handshakes refused: the peer's node id is not in allowed_peers, or not the node dialled",
    ),
    DropReason.HALF_OPEN_FULL: (
        logging.WARNING,
        "handshakes refused: too many in flight (max_half_open)",
    ),
    DropReason.RATE_LIMITED: (
        logging.INFO,
        "handshakes refused: the sender exceeded its rate limit",
    ),
    DropReason.COOKIE_REQUIRED: (
        logging.INFO,
        "handshakes answered with a cookie: the node is under load",
    ),
    DropReason.HANDSHAKE_AUTH: (
        logging.INFO,
        "handshake packets that failed Noise authentication",
    ),
    DropReason.STALE_TIMESTAMP: (
        logging.INFO,
        "handshakes refused: no newer than the last one from that peer (a replay)",
    ),
    HANDSHAKE_RETRY: (
        logging.INFO,
        "handshake INITs sent again: no answer yet",
    ),
}


def format_addr(addr: object) -> str | None:
    """``host:port`` of a UDP address (``[host]:port`` for IPv6), else None."""
    if isinstance(addr, tuple) and len(addr) >= 2:
        host = str(addr[0])
        return f"[{host}]:{addr[1]}" if ":" in host else f"{host}:{addr[1]}"
    return None


class RefusalLog:
    """Turns the core's drop counters into at most one log line per reason per interval.

    The sans-I/O core only counts (``EndpointCounters.drops``); the asyncio driver calls
    :meth:`update` with the counters after each drain. A reason seen for the first time in an
    interval is logged at once; more of it within the interval are counted and logged, with the
    count, when the interval ends (a timer on ``loop``). Reasons of :data:`_REFUSALS` are logged
    at their level (WARNING or INFO), every other drop reason at DEBUG.
    """

    def __init__(
        self,
        logger: logging.Logger,
        loop: asyncio.AbstractEventLoop | None = None,
        *,
        interval_s: float = REFUSAL_INTERVAL_S,
    ) -> None:
        self._logger = logger
        self._loop = loop
        self.interval_s = interval_s
        self._seen: dict[str, int] = {}  # the counter values already accounted for
        self._pending: dict[str, int] = {}  # counted, not yet logged
        self._window_end: dict[str, float] = {}  # no line for the reason before this time
        self._flush: asyncio.TimerHandle | None = None
        self.lines = 0  # lines written (for tests and figures)

    def _now(self) -> float:
        return self._loop.time() if self._loop is not None else time.monotonic()

    def update(self, counters: Mapping[str, int]) -> None:
        """Account for the counters' growth since the last call (a reason absent counts 0)."""
        now = self._now()
        for reason, value in counters.items():
            grown = value - self._seen.get(reason, 0)
            if grown <= 0:
                continue
            self._seen[reason] = value
            level = _REFUSALS.get(reason, (logging.DEBUG, ""))[0]
            if not self._logger.isEnabledFor(level):
                continue
            self._pending[reason] = self._pending.get(reason, 0) + grown
            if now >= self._window_end.get(reason, 0.0):
                self._emit(reason, now)
            elif self._flush is None and self._loop is not None:
                delay = max(0.0, self._window_end[reason] - now)
                self._flush = self._loop.call_later(delay, self._on_flush)

    def _on_flush(self) -> None:
        self._flush = None
        self.flush()

    def flush(self, *, force: bool = False) -> None:
        """Log what is pending whose interval is over (every pending reason when ``force``)."""
        now = self._now()
        later: float | None = None
        for reason in list(self._pending):
            end = self._window_end.get(reason, 0.0)
            if force or now >= end:
                self._emit(reason, now)
            else:
                later = end if later is None else min(later, end)
        if later is not None and self._flush is None and self._loop is not None:
            self._flush = self._loop.call_later(max(0.0, later - now), self._on_flush)

    def _emit(self, reason: str, now: float) -> None:
        count = self._pending.pop(reason, 0)
        if count <= 0:
            return
        level, meaning = _REFUSALS.get(reason, (logging.DEBUG, "packets dropped"))
        self._window_end[reason] = now + self.interval_s
        self.lines += 1
        self._logger.log(
            level,
            "%s: %d in the last %g s (reason %s)",
            meaning,
            count,
            self.interval_s,
            reason,
            extra={"stt_reason": str(reason), "stt_count": count},
        )

    def close(self) -> None:
        """Log what is pending and cancel the timer (the node stops)."""
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        self.flush(force=True)


class JSONFormatter(logging.Formatter):
    """One JSON object per record: ``time`` (ISO 8601, UTC), ``level``, ``logger``,
    ``message``, the ``stt_*`` fields present on the record, and ``exception`` (the formatted
    traceback) when there is one. Standard library only; non-JSON values are written as text.
    """

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        document: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in record.__dict__.items():
            if name.startswith("stt_") and value is not None:
                document[name] = value
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            document["stack"] = self.formatStack(record.stack_info)
        return json.dumps(document, default=str, ensure_ascii=False)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """ISO 8601 in UTC with milliseconds (``datefmt`` as strftime, if given)."""
        if datefmt is not None:
            return time.strftime(datefmt, time.gmtime(record.created))
        seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{seconds}.{int(record.msecs):03d}Z"
