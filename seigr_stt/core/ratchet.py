"""The DH ratchet of a live session: fresh X25519 keys mixed into the next epoch (§7.1).

The hash rotation of :mod:`~seigr_stt.core.keys` (``k' = REKEY(k)``) gives forward secrecy but
not post-compromise security: whoever copied a session's keys once computes every later key. A
DH ratchet closes that gap. Inside the encrypted session one peer sends ``RATCHET_INIT(base,
E_i)`` with a fresh ephemeral public key, the other answers ``RATCHET_REPLY(base, E_r)`` with one
of its own, and both compute ``dh = X25519(e, E_peer)``. The transition out of epoch ``base`` then
uses ``MIX(REKEY(k), dh)`` for both directions and ``MIX(KDF(exporter, "next-epoch"), dh)`` for
the exporter (:func:`mix_key`, Noise's MixKey: ``HKDF(chain, dh, 2)[0][0:32]``). A copy of all
session state taken before the exchange lacks both ephemeral private keys, so it cannot compute
``dh`` nor any key after the transition.

The transition itself is an ordinary rotation of §7 (epoch byte, next/current/previous receive
slots, echo), started by the initiator of the ratchet once it has the reply; the replier only
follows. Ordering rules that keep it lossless:

* a ratchet starts only when both sides are on one epoch (the rotation conditions of §7 without
  the interval); while it is being agreed (INIT sent and not answered, or REPLY sent and the
  initiator not yet moved) neither side rotates on its own (:attr:`KeySchedule.rotation_hold`);
* an INIT whose base is below our epoch is stale (the peer will follow our rotation and start
  again): ignored; two INITs of one base cross: the session's initiator's ratchet wins, the other
  side abandons its own and answers;
* INIT and REPLY are retransmitted while they are still current (:meth:`DhRatchet.on_delivery`),
  and a repeated INIT is answered with the same REPLY.

Randomness comes only from the ``rng`` given by the endpoint. Each private key and each shared
secret lives only in a ``bytearray`` that is overwritten with zeros (:func:`crypto.wipe`) as soon
as it is spent: the private key when the secret is computed, the secret when both directions have
made the transition. Python cannot promise more: see docs/security.md, "Erasure".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from seigr_stt.constants import KEY_BYTES, RATCHET_INITIATOR_FACTOR, RATCHET_RESPONDER_FACTOR
from seigr_stt.core import crypto
from seigr_stt.core.frames import Frame, RatchetInit, RatchetReply
from seigr_stt.exceptions import ConfigError, InvalidPublicKey, PeerViolation

if TYPE_CHECKING:
    from seigr_stt.core.keys import KeySchedule, RotationPolicy

__all__ = ["DhRatchet", "mix_key"]

Handler = Callable[[Frame, bool], None]


def mix_key(chain: bytes, secret: bytearray) -> bytes:
    """``MIX(chain, dh) = HKDF(chain, dh, 2)[0][0:32]`` (Noise's MixKey; Signal's root KDF): the
    next epoch's key from the REKEY-chain value and a DH ratchet's shared secret."""
    return crypto.hkdf(chain, secret, 2)[0][:KEY_BYTES]  # type: ignore[arg-type]


class _Reply:
    """What the replier keeps until the initiator moves: the INIT answered and our REPLY."""

    __slots__ = ("base", "frame", "peer_public")

    def __init__(self, base: int, peer_public: bytes, frame: RatchetReply) -> None:
        self.base = base
        self.peer_public = peer_public
        self.frame = frame


class DhRatchet:
    """The DH ratchet of one session; see the module docstring.

    Driving contract (all from :class:`~seigr_stt.core.session.Session`, in state ACTIVE):
    :meth:`poll` whenever rotation conditions may have changed (after a record, a timer, before
    sending); :meth:`on_init` / :meth:`on_reply` for the frames, after the record authenticated
    and its epoch was promoted; :meth:`on_confirmed` when a key version is confirmed. Frames to
    send go to ``out`` with :meth:`on_delivery` as their delivery handler.

    A ratchet is *wanted* while :attr:`target` exceeds :attr:`completed`: a request needs a
    ratchet whose local ephemeral key is made after the request (numbered by :attr:`generated`),
    so that the state of this side at the time of the request cannot derive the result.
    """

    __slots__ = (
        "_base",
        "_installed",
        "_private",
        "_public",
        "_reply",
        "_rng",
        "completed",
        "count",
        "generated",
        "initiator",
        "interval_s",
        "last_at",
        "out",
        "target",
    )

    def __init__(
        self,
        rng: Callable[[int], bytes] | None,
        out: list[tuple[Frame, Handler]],
        now: float,
        *,
        initiator: bool,
        interval_s: float | None,
    ) -> None:
        self._rng = rng
        self.out = out
        self.initiator = initiator
        #: Automatic ratchet interval (None: only on request). The session's responder waits
        #: RATCHET_RESPONDER_FACTOR times as long, so two default peers rarely cross; the
        #: initiator RATCHET_INITIATOR_FACTOR times as long, so that with rekey_after_s equal to
        #: the interval its INIT reaches the responder before the responder's hash-rotation clock
        #: (started when it followed the last transition, one delay later) fires.
        self.interval_s = (
            None
            if interval_s is None or rng is None
            else interval_s * (RATCHET_INITIATOR_FACTOR if initiator else RATCHET_RESPONDER_FACTOR)
        )
        self.last_at = now  # when the last DH secret was agreed (or the session began)
        self.generated = 0  # ephemeral keys made by this side
        self.target = 0  # a ratchet with a local ephemeral numbered >= target is wanted
        self.completed = 0  # the newest local ephemeral number of a confirmed ratchet
        self.count = 0  # ratchets confirmed
        # Initiating: our private key, public key and base epoch until the REPLY comes.
        self._private: bytearray | None = None
        self._public = b""
        self._base = -1
        # Replying: what we answered, until the initiator's next-epoch record arrives.
        self._reply: _Reply | None = None
        # (epoch entered with the secret, our ephemeral's number) until that epoch is confirmed.
        self._installed: tuple[int, int] | None = None

    def __repr__(self) -> str:
        return (
            f"DhRatchet(count={self.count}, wanted={self.wanted}, "
            f"initiating={self._private is not None}, replying={self._reply is not None})"
        )

    # -- state ----------------------------------------------------------------------------------
    @property
    def wanted(self) -> bool:
        """A ratchet is requested (by the application or the interval) and not yet done."""
        return self.target > self.completed

    @property
    def in_progress(self) -> bool:
        """An INIT awaits its REPLY, or our REPLY awaits the initiator's next epoch."""
        return self._private is not None or self._reply is not None

    @property
    def holds_private_key(self) -> bool:
        """An ephemeral private key is alive (only between INIT and REPLY)."""
        return self._private is not None

    def due_at(self) -> float | None:
        """When the automatic ratchet is next requested; None while one is wanted or when the
        interval is off."""
        if self.interval_s is None or self.target > self.completed:
            return None
        return self.last_at + self.interval_s

    # -- requests -------------------------------------------------------------------------------
    def request(self) -> int:
        """Ask for one ratchet; returns the :attr:`completed` value that satisfies it. Raises
        ConfigError for a session made without randomness."""
        if self._rng is None:
            raise ConfigError("this session was made without randomness: it cannot ratchet")
        self.target = max(self.target, self.generated + 1)
        return self.target

    def poll(self, keys: KeySchedule, now: float) -> None:
        """Forget what is stale, start a wanted ratchet when allowed, and set the rotation hold.
        Cheap when nothing is going on (called per record)."""
        self._expire(keys)
        interval_s = self.interval_s
        if (
            interval_s is not None
            and self.target <= self.completed
            and now >= self.last_at + interval_s
        ):
            self.target = self.generated + 1  # the automatic ratchet is due
        if (
            self.target > self.completed
            and self._private is None
            and self._reply is None
            and keys.mix_base is None
            and not keys.rotation_pending
            and not keys.erased
        ):
            self._start(keys.send_epoch)
        keys.rotation_hold = self._private is not None or self._reply is not None

    def _expire(self, keys: KeySchedule) -> None:
        if self._private is not None and not keys.send_epoch == keys.recv_epoch == self._base:
            self._abandon()  # the peer rotated first and ignored our INIT: start again
        reply = self._reply
        if reply is not None and keys.recv_epoch > reply.base:
            self._reply = None  # the initiator moved: the ratchet is in both directions' keys

    def _start(self, base: int) -> None:
        assert self._rng is not None  # a ratchet is never wanted without it
        private = bytearray(self._rng(KEY_BYTES))
        self._private = private
        self._public = crypto.public_key_of(private)
        self._base = base
        self.generated += 1
        frame = RatchetInit(base, self._public)
        self.out.append((frame, self.on_delivery))

    def _abandon(self) -> None:
        private = self._private
        if private is not None:
            crypto.wipe(private)
        self._private = None
        self._public = b""
        self._base = -1

    # -- frames ---------------------------------------------------------------------------------
    def on_init(self, frame: RatchetInit, keys: KeySchedule, now: float) -> None:
        """The peer starts a ratchet out of ``frame.base_epoch``: answer it, ignore it (stale, or
        crossed with ours and ours wins), or raise PeerViolation (an epoch not reached, a second
        ratchet in one epoch, a low-order key)."""
        base = frame.base_epoch
        self._expire(keys)  # the record may have promoted an epoch: drop stale state first
        if base < keys.send_epoch or base < keys.recv_epoch:
            return  # sent before a rotation that crossed it
        if base > keys.send_epoch or base > keys.recv_epoch:
            raise PeerViolation("ratchet from an epoch not reached")
        reply = self._reply
        if reply is not None:  # we answered an INIT of this very epoch (_expire dropped older)
            if reply.peer_public != frame.public:
                raise PeerViolation("second ratchet in one epoch")
            if not any(f is reply.frame for f, _ in self.out):
                self.out.append((reply.frame, self.on_delivery))  # the INIT was sent again
            return
        if keys.mix_base == base:
            return  # our ratchet of this epoch is agreed already; this INIT crossed it
        if self._private is not None:
            if self.initiator:
                return  # crossed INITs: the session initiator's ratchet wins (§7.1)
            self._abandon()
        if self._rng is None:
            return  # a session made without randomness (tests only) cannot answer
        private = bytearray(self._rng(KEY_BYTES))
        public = crypto.public_key_of(private)
        secret = bytearray(KEY_BYTES)
        try:
            crypto.dh_into(private, frame.public, secret)
        except InvalidPublicKey as exc:
            raise PeerViolation("ratchet public key of low order") from exc
        finally:
            crypto.wipe(private)
        self.generated += 1
        self._agreed(keys, base, secret, now)
        reply_frame = RatchetReply(base, public)
        self._reply = _Reply(base, frame.public, reply_frame)
        self.out.append((reply_frame, self.on_delivery))
        keys.rotation_hold = True

    def on_reply(
        self, frame: RatchetReply, keys: KeySchedule, rotation: RotationPolicy, now: float
    ) -> None:
        """The peer answered our INIT: compute the secret, erase our private key, install the
        secret for the next transition and ask for that rotation. A REPLY that matches no INIT
        of ours (late, repeated) is ignored."""
        private = self._private
        if private is None or frame.base_epoch != self._base:
            return
        if not keys.send_epoch == keys.recv_epoch == self._base:  # pragma: no cover - poll()
            return
        secret = bytearray(KEY_BYTES)
        try:
            crypto.dh_into(private, frame.public, secret)
        except InvalidPublicKey as exc:
            raise PeerViolation("ratchet public key of low order") from exc
        finally:
            self._abandon()  # the private key is spent either way
        self._agreed(keys, frame.base_epoch, secret, now)
        keys.rotation_hold = False
        rotation.request(keys)  # the transition itself: an ordinary rotation (§7)

    def _agreed(self, keys: KeySchedule, base: int, secret: bytearray, now: float) -> None:
        keys.install_mix(base, secret)  # the schedule owns and wipes the secret from now on
        self._installed = (base + 1, self.generated)
        self.last_at = now

    def on_delivery(self, frame: Frame, acked: bool) -> None:
        """Delivery handler of INIT and REPLY: a lost one is sent again while still current."""
        if acked:
            return
        if isinstance(frame, RatchetInit):
            current = self._private is not None and frame.public == self._public
        else:
            current = self._reply is not None and frame is self._reply.frame
        if current:
            self.out.append((frame, self.on_delivery))

    def on_confirmed(self, version: int) -> bool:
        """Key version ``version`` is confirmed by the peer: returns True when this completes
        a ratchet (the version is then the first whose keys hold the new secret)."""
        installed = self._installed
        if installed is None or version < installed[0]:
            return False
        self._installed = None
        self.completed = max(self.completed, installed[1])
        self.count += 1
        return True

    def erase(self) -> None:
        """The session ends: wipe the private key and forget everything."""
        self._abandon()
        self._reply = None
        self._installed = None
        self.target = self.completed
