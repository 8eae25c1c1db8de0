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

A session also validates paths of its own choosing (§18): ``probe`` makes an address on any link
a *probe*, challenged the same way but without the amplification limit (the address came from
the peer, authenticated, or from the adapter, not from a packet's source). A PING that arrives
from a candidate or a probe is answered there too, in the next challenge record (``PONG`` then
``PING``), so that two peers validating each other's new path (hole punching, a transport
switch) each get their answer by the path being tested.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from seigr_stt.constants import (
    PATH_AMPLIFICATION_FACTOR,
    PATH_CHALLENGE_ATTEMPTS,
    PATH_CHALLENGE_MIN_INTERVAL_S,
    PATH_PROBES_MAX,
    RECORD_MIN_SIZE,
)

__all__ = ["CHALLENGE_RECORD_BYTES", "PathProbe", "PathValidator"]

#: The size of a challenge record: header, one padding block (a PING's type and token of at
#: most 8 bytes plus the inner type fit in one) and tag: the smallest record.
CHALLENGE_RECORD_BYTES = RECORD_MIN_SIZE


def _token_bytes(token: int) -> bytes:
    return token.to_bytes(8, "big")  # PING tokens are varints: below 2**62


class _Candidate:
    __slots__ = (
        "addr",
        "answered",
        "attempts",
        "link",
        "local",
        "next_at",
        "pong",
        "received",
        "sent",
        "token",
    )

    def __init__(
        self,
        addr: Hashable,
        token: int,
        received: int,
        now: float,
        link: object = None,
        local: bool = False,
    ) -> None:
        self.addr = addr
        self.link = link  # the link the address is reached by (None: the session's)
        self.local = local  # a probe of our choosing: no amplification limit
        self.token = token
        self.received = received  # bytes of authenticated records from it
        self.sent = 0  # bytes we sent to it
        self.attempts = 0
        self.next_at = now
        self.pong = 0  # the latest PING token it sent us, to answer there (0: none owed)
        self.answered = 0  # the latest PING token answered there


@dataclass(frozen=True, slots=True)
class PathProbe:
    """A record due on a path being validated: ``pong`` (0: none) answers the PING the peer
    sent from there, ``ping`` (0: none) is our challenge; ``counted`` when it uses an attempt."""

    addr: Hashable
    link: object
    ping: int
    pong: int
    counted: bool


class PathValidator:
    """The addresses a session is validating, if any; see the module docstring."""

    __slots__ = ("_candidate", "_probes", "_rng", "validated")

    def __init__(self, rng: Callable[[int], bytes]) -> None:
        self._rng = rng
        self._candidate: _Candidate | None = None  # the peer's new address (one at a time)
        #: Paths of our choosing; None until the first (most sessions never probe one, and an
        #: empty dict costs 64 bytes per idle session: docs/performance.md).
        self._probes: dict[Hashable, _Candidate] | None = None
        self.validated = 0  # addresses moved to

    def __repr__(self) -> str:
        return (
            f"PathValidator(validating={self._candidate is not None}, "
            f"probes={len(self._probes or ())})"
        )

    @property
    def candidate(self) -> Hashable | None:
        """The peer's new address being validated, or None."""
        return self._candidate.addr if self._candidate is not None else None

    @property
    def probes(self) -> tuple[Hashable, ...]:
        """The addresses of our choosing being validated."""
        return tuple(self._probes or ())

    def _validating(self, addr: Hashable) -> _Candidate | None:
        """The probe of ours, else the peer's candidate, being validated at ``addr``."""
        found = self._probes.get(addr) if self._probes else None
        if found is None and self._candidate is not None and self._candidate.addr == addr:
            found = self._candidate
        return found

    def _new_token(self, last_token: int) -> int:
        return last_token + 1 + int.from_bytes(self._rng(4), "big")

    def on_record(
        self,
        addr: Hashable,
        size: int,
        newest: bool,
        now: float,
        last_token: int,
        link: object = None,
    ) -> int | None:
        """An authenticated record of ``size`` bytes came from ``addr`` (by ``link``, None: the
        session's), which is not the session's address; ``newest`` when its counter is the
        highest seen (only the newest record starts a validation: a delayed one from an older
        address must not). ``last_token`` is the session's highest PING token so far; returns
        the new challenge's token when one starts (the session's PINGs continue above it),
        else None. A record from a probe only raises what it has received."""
        known = self._validating(addr)
        if known is not None:
            known.received += size
            return None
        if not newest:
            return None
        token = self._new_token(last_token)
        self._candidate = _Candidate(addr, token, size, now, link)
        return token

    def probe(self, addr: Hashable, link: object, now: float, last_token: int) -> int | None:
        """Validate ``addr`` (reached by ``link``), a path of our choosing (§18). Returns the
        new challenge's token, or None when ``addr`` is being validated already (its attempts
        then start over). At most ``PATH_PROBES_MAX`` at once: the oldest makes room."""
        known = self._validating(addr)
        if known is not None:
            known.attempts = 0
            known.next_at = now
            return None
        probes = self._probes
        if probes is None:
            probes = self._probes = {}
        if len(probes) >= PATH_PROBES_MAX:
            del probes[next(iter(probes))]
        token = self._new_token(last_token)
        probes[addr] = _Candidate(addr, token, 0, now, link, local=True)
        return token

    def on_ping(self, addr: Hashable, token: int) -> None:
        """A PING with ``token`` came from ``addr``: if it is being validated, answer there."""
        target = self._validating(addr)
        if target is not None and token > target.answered:
            target.pong = max(target.pong, token)

    @staticmethod
    def _may_challenge(candidate: _Candidate) -> bool:
        if candidate.attempts >= PATH_CHALLENGE_ATTEMPTS:
            return False
        return _within_limit(candidate, CHALLENGE_RECORD_BYTES)

    def challenge_due(self, now: float) -> tuple[Hashable, int] | None:
        """``(address, token)`` of the peer's candidate to challenge now, within the
        amplification limit (without answers owed there: see :meth:`probes_due`)."""
        candidate = self._candidate
        if candidate is None or now < candidate.next_at or not self._may_challenge(candidate):
            return None
        return candidate.addr, candidate.token

    def probes_due(self, now: float) -> list[PathProbe]:
        """Every record due now on a path being validated: challenges whose time has come (the
        peer's candidate within the amplification limit), and answers owed to PINGs that came
        from one (within the limit too for the peer's candidate)."""
        due: list[PathProbe] = []
        candidates = list(self._probes.values()) if self._probes else []
        if self._candidate is not None:
            candidates.append(self._candidate)
        for c in candidates:
            challenge = now >= c.next_at and self._may_challenge(c)
            answer = c.pong > c.answered and _within_limit(c, CHALLENGE_RECORD_BYTES)
            if challenge or answer:
                ping = c.token if c.attempts < PATH_CHALLENGE_ATTEMPTS else 0
                due.append(PathProbe(c.addr, c.link, ping, c.pong if answer else 0, challenge))
        return due

    def on_probe_sent(self, probe: PathProbe, size: int, now: float, pto_s: float) -> None:
        """The record of ``probe`` went out, ``size`` bytes."""
        c = self._validating(probe.addr)
        if c is None:  # pragma: no cover - probes_due just listed it
            return
        c.sent += size
        if probe.pong:
            c.answered = max(c.answered, probe.pong)
        if probe.counted:
            c.attempts += 1
            c.next_at = now + max(2 * pto_s, PATH_CHALLENGE_MIN_INTERVAL_S)

    def on_challenge_sent(self, size: int, now: float, pto_s: float) -> None:
        """The challenge of :meth:`challenge_due` went out as a record of ``size`` bytes."""
        candidate = self._candidate
        assert candidate is not None
        self.on_probe_sent(
            PathProbe(candidate.addr, candidate.link, candidate.token, 0, True), size, now, pto_s
        )

    def on_pong(self, token: int, addr: Hashable) -> Hashable | None:
        """A PONG with ``token`` came from ``addr``: the validated address, or None."""
        found = self.validate(token, addr)
        return found[0] if found is not None else None

    def validate(self, token: int, addr: Hashable) -> tuple[Hashable, object, bool] | None:
        """A PONG with ``token`` came from ``addr``: ``(address, link, local)`` of the path it
        validates (``local``: a probe of ours), or None."""
        # The token is a secret of ours meeting input: compared in constant time (it arrives
        # authenticated, so only the peer could time it, but nothing is left to reason about).
        probes = self._probes
        probe = probes.get(addr) if probes else None
        if (
            probes
            and probe is not None
            and hmac.compare_digest(_token_bytes(token), _token_bytes(probe.token))
        ):
            del probes[addr]
            if self._candidate is not None and self._candidate.addr == addr:
                self._candidate = None
            self.validated += 1
            return addr, probe.link, True
        candidate = self._candidate
        if candidate is None or addr != candidate.addr:
            return None
        if not hmac.compare_digest(_token_bytes(token), _token_bytes(candidate.token)):
            return None
        self._candidate = None
        self.validated += 1
        return addr, candidate.link, False

    def discard(self, addr: Hashable) -> None:
        """Stop validating ``addr`` (its link closed, or the session moved there)."""
        if self._probes:
            self._probes.pop(addr, None)
        if self._candidate is not None and self._candidate.addr == addr:
            self._candidate = None

    def get_timer(self) -> float | None:
        """When the next challenge is due, or when a validation gives up."""
        times = [c.next_at for c in self._probes.values()] if self._probes else []
        if self._candidate is not None:
            times.append(self._candidate.next_at)
        return min(times, default=None)

    def handle_timer(self, now: float) -> None:
        """Give up on a candidate or probe that may not be challenged again (its attempts are
        used, or the amplification limit holds and it sent nothing more) once its time is up."""
        candidate = self._candidate
        if (
            candidate is not None
            and now >= candidate.next_at
            and not self._may_challenge(candidate)
        ):
            self._candidate = None
        probes = self._probes
        if probes:
            for addr, probe in list(probes.items()):
                if now >= probe.next_at and probe.attempts >= PATH_CHALLENGE_ATTEMPTS:
                    del probes[addr]

    def forget(self) -> None:
        """Stop validating (the session closed)."""
        self._candidate = None
        self._probes = None


def _within_limit(candidate: _Candidate, size: int) -> bool:
    if candidate.local:
        return True
    return candidate.sent + size <= PATH_AMPLIFICATION_FACTOR * candidate.received
