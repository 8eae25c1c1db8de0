"""Path validation before a session follows its peer to a new address (§5.3, RFC 9000 §8.2/§9).

An authenticated record from a new address does not move the session: it only makes that
address a *candidate*. The session challenges it with a PING sent to the candidate, whose token
is the session's next PING token plus a random 32-bit jump (so it stays in the one increasing
token space that PONG coalescing relies on, §6, and yet cannot be guessed), and moves there
only when the PONG echoing exactly that token comes back *from* the candidate. Until then
everything else still goes to the old address, and what the session sends to the candidate
stays below ``PATH_AMPLIFICATION_FACTOR`` times what it received from it, so a spoofed source
address never makes the node an amplifier. A candidate that does not answer
``PATH_CHALLENGE_ATTEMPTS`` challenges is forgotten (the session never left the old path).
Randomness comes in as ``rng``; nothing reads a clock.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Hashable

from seigr_stt.constants import (
    PATH_AMPLIFICATION_FACTOR,
    PATH_CHALLENGE_ATTEMPTS,
    PATH_CHALLENGE_MIN_INTERVAL_S,
    RECORD_MIN_SIZE,
)

__all__ = ["CHALLENGE_RECORD_BYTES", "PathValidator"]

#: The size of a challenge record: header, one padding block (a PING's type and token of at
#: most 8 bytes plus the inner type fit in one) and tag: the smallest record.
CHALLENGE_RECORD_BYTES = RECORD_MIN_SIZE


def _token_bytes(token: int) -> bytes:
    return token.to_bytes(8, "big")  # PING tokens are varints: below 2**62


class _Candidate:
    __slots__ = ("addr", "attempts", "next_at", "received", "sent", "token")

    def __init__(self, addr: Hashable, token: int, received: int, now: float) -> None:
        self.addr = addr
        self.token = token
        self.received = received  # bytes of authenticated records from it
        self.sent = 0  # bytes we sent to it
        self.attempts = 0
        self.next_at = now


class PathValidator:
    """The address a session is moving to, if any; see the module docstring."""

    __slots__ = ("_candidate", "_rng", "validated")

    def __init__(self, rng: Callable[[int], bytes]) -> None:
        self._rng = rng
        self._candidate: _Candidate | None = None
        self.validated = 0  # addresses moved to

    def __repr__(self) -> str:
        return f"PathValidator(validating={self._candidate is not None})"

    @property
    def candidate(self) -> Hashable | None:
        """The address being validated, or None."""
        return self._candidate.addr if self._candidate is not None else None

    def on_record(
        self, addr: Hashable, size: int, newest: bool, now: float, last_token: int
    ) -> int | None:
        """An authenticated record of ``size`` bytes came from ``addr``, which is not the
        session's address; ``newest`` when its counter is the highest seen (only the newest
        record starts a validation: a delayed one from an older address must not).
        ``last_token`` is the session's highest PING token so far; returns the new challenge's
        token when one starts (the session's PINGs continue above it), else None."""
        candidate = self._candidate
        if candidate is not None and candidate.addr == addr:
            candidate.received += size
            return None
        if not newest:
            return None
        token = last_token + 1 + int.from_bytes(self._rng(4), "big")
        self._candidate = _Candidate(addr, token, size, now)
        return token

    @staticmethod
    def _may_challenge(candidate: _Candidate) -> bool:
        if candidate.attempts >= PATH_CHALLENGE_ATTEMPTS:
            return False
        limit = PATH_AMPLIFICATION_FACTOR * candidate.received
        return candidate.sent + CHALLENGE_RECORD_BYTES <= limit

    def challenge_due(self, now: float) -> tuple[Hashable, int] | None:
        """``(address, token)`` of a challenge to send now, within the amplification limit."""
        candidate = self._candidate
        if candidate is None or now < candidate.next_at or not self._may_challenge(candidate):
            return None
        return candidate.addr, candidate.token

    def on_challenge_sent(self, size: int, now: float, pto_s: float) -> None:
        """The challenge went out as a record of ``size`` bytes."""
        candidate = self._candidate
        assert candidate is not None
        candidate.sent += size
        candidate.attempts += 1
        candidate.next_at = now + max(2 * pto_s, PATH_CHALLENGE_MIN_INTERVAL_S)

    def on_pong(self, token: int, addr: Hashable) -> Hashable | None:
        """A PONG with ``token`` came from ``addr``: the validated address, or None."""
        candidate = self._candidate
        if candidate is None or addr != candidate.addr:
            return None
        # The token is a secret of ours meeting input: compared in constant time (it arrives
        # authenticated, so only the peer could time it, but nothing is left to reason about).
        if not hmac.compare_digest(_token_bytes(token), _token_bytes(candidate.token)):
            return None
        self._candidate = None
        self.validated += 1
        return addr

    def get_timer(self) -> float | None:
        """When the next challenge is due, or when the validation gives up."""
        return self._candidate.next_at if self._candidate is not None else None

    def handle_timer(self, now: float) -> None:
        """Give up on a candidate that may not be challenged again (its attempts are used, or
        the amplification limit holds and it sent nothing more) once its time is up."""
        candidate = self._candidate
        if (
            candidate is not None
            and now >= candidate.next_at
            and not self._may_challenge(candidate)
        ):
            self._candidate = None

    def forget(self) -> None:
        """Stop validating (the session closed)."""
        self._candidate = None
