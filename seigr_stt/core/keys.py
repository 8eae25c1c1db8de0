"""Traffic keys of one session: epochs, key slots and rotation rules (``docs/protocol.md`` §7).

Each direction has a 32-byte key and an epoch. Rotating a direction replaces its key by
``REKEY(key)`` (Noise's one-way REKEY) and adds one to its epoch. The receiver holds three slots,
*previous*, *current* and *next* (= REKEY(current)), and picks one by the 8-bit epoch in the record
header. A record of the next epoch that authenticates promotes the slots; the receiver then follows
by rotating its own sending direction, so both directions stay on the same epoch (= the session's
``key_version``). Records echo the receiver's epoch; a sender rotates again only when the echo shows
the peer has switched, its own receive side has switched too, and a minimum interval has passed.

A DH ratchet (§7.1, :mod:`~seigr_stt.core.ratchet`) agrees a Diffie-Hellman secret for one
transition, ``base -> base + 1``, with :meth:`KeySchedule.install_mix`; that transition then mixes
it into both directions' keys and the exporter (``MIX(REKEY(k), dh)``), and the secret is erased
once both directions are past it. While a ratchet is being agreed, :attr:`rotation_hold` keeps
this side from rotating on its own.

This object holds no clock: every time-dependent method takes ``now``.
"""

from __future__ import annotations

from seigr_stt.constants import (
    EPOCH_MODULUS,
    KEY_GRACE_MIN_S,
    KEY_GRACE_RTT_FACTOR,
    LABEL_SESSION_KEY,
    REJECT_AFTER_MESSAGES,
    REJECT_AFTER_TIME_S,
)
from seigr_stt.core import crypto
from seigr_stt.core.noise import rekey
from seigr_stt.core.ratchet import mix_key
from seigr_stt.core.replay import ReplayWindow

__all__ = ["SLOT_CURRENT", "SLOT_NEXT", "SLOT_PREVIOUS", "KeySchedule", "RotationPolicy"]

SLOT_PREVIOUS = -1
SLOT_CURRENT = 0
SLOT_NEXT = 1


class _Key:
    """One traffic key and its cipher object: both go when the key is erased. ``forgeries``
    counts the records that failed authentication under it (receive keys)."""

    __slots__ = ("aead", "forgeries", "key")

    def __init__(self, key: bytes) -> None:
        self.key = key
        self.aead = crypto.make_aead(key)
        self.forgeries = 0

    def __repr__(self) -> str:
        return "_Key(<secret>)"

    def __deepcopy__(self, memo: dict[int, object]) -> _Key:
        """A working copy (a new cipher object for the same key): ``copy.deepcopy`` of a key
        schedule or a session then copies every secret, as an attacker's snapshot would."""
        twin = _Key(self.key)
        twin.forgeries = self.forgeries
        return twin

    def next(self, mix: bytearray | None = None) -> _Key:
        """The next epoch's key: ``REKEY(key)`` (one-way), or ``MIX(REKEY(key), dh)`` when the
        transition carries a DH ratchet's secret ``mix`` (§7.1)."""
        key = rekey(self.key)
        return _Key(key if mix is None else mix_key(key, mix))


class KeySchedule:
    """Send and receive keys of one session, after the handshake's Split().

    ``send_key``/``recv_key`` are epoch-0 keys and ``exporter`` the handshake's third HKDF output
    (the root of :attr:`session_key`). Contract for the receive path (§5.3): call
    :meth:`select_receive_key` with the header's epoch *before* decrypting, and
    :meth:`after_authenticated` only after the AEAD verified and the replay window accepted.
    Each key is held with its cipher object (:func:`crypto.make_aead`); erasing a key drops both.
    """

    __slots__ = (
        "_exporter",
        "_mix",
        "_mix_base",
        "_prev_expires_at",
        "_recv_current",
        "_recv_next",
        "_recv_prev",
        "_send",
        "epoch_started_at",
        "last_rotation_at",
        "peer_echo",
        "recv_epoch",
        "recv_epoch_started_at",
        "replay",
        "rotation_hold",
        "send_counter",
        "send_epoch",
        "sent_in_epoch",
    )

    def __init__(self, send_key: bytes, recv_key: bytes, exporter: bytes, now: float) -> None:
        self._send: _Key | None = _Key(send_key)
        self._recv_current: _Key | None = _Key(recv_key)
        self._recv_next: _Key | None = self._recv_current.next()
        self._recv_prev: _Key | None = None
        self._prev_expires_at: float | None = None
        self._exporter: bytes | None = exporter
        self.send_epoch = 0
        self.recv_epoch = 0
        self.peer_echo = 0
        self.send_counter = 0
        self.sent_in_epoch = 0
        self.epoch_started_at = now
        self.recv_epoch_started_at = now
        self.last_rotation_at = float("-inf")  # the first rotation may come at once
        self.replay = ReplayWindow()
        #: The DH secret of the transition out of epoch ``_mix_base`` (§7.1), until both
        #: directions have made that transition.
        self._mix: bytearray | None = None
        self._mix_base = -1
        #: Set by the DH ratchet while it is being agreed: no rotation on our own initiative.
        self.rotation_hold = False

    def __repr__(self) -> str:
        return (
            f"KeySchedule(send_epoch={self.send_epoch}, recv_epoch={self.recv_epoch}, "
            f"peer_echo={self.peer_echo}, send_counter={self.send_counter})"
        )

    # -- state ----------------------------------------------------------------------------------
    def fingerprint(self) -> bytes:
        """A digest of every key held and its epoch bookkeeping: equal fingerprints mean nothing
        changed (for tests and debugging; it reveals none of the keys)."""
        parts = [
            slot.key if slot is not None else b"-"
            for slot in (self._send, self._recv_prev, self._recv_current, self._recv_next)
        ]
        parts.append(self._exporter or b"-")
        parts.append(bytes(self._mix) if self._mix is not None else b"-")
        parts.append(repr((self._prev_expires_at, self.send_epoch, self.recv_epoch)).encode())
        return crypto.hash_(b"|".join(parts))[:16]

    @property
    def erased(self) -> bool:
        """True once :meth:`erase` dropped every key."""
        return self._send is None

    @property
    def session_key(self) -> bytes:
        """32 bytes equal on both peers at the same ``send_epoch``; reveals no traffic key."""
        if self._exporter is None:
            raise ValueError("keys erased")
        return crypto.kdf(self._exporter, LABEL_SESSION_KEY)

    @property
    def keys_started_at(self) -> float:
        """When the older of the current send and receive keys came into use.

        Reject-after-time (§8) applies to both directions: a rotation of our sending side that
        the peer never confirms must not extend the life of the receive key.
        """
        return min(self.epoch_started_at, self.recv_epoch_started_at)

    @property
    def reject_at(self) -> float:
        """When the current keys expire (§8): ``REJECT_AFTER_TIME_S`` past ``keys_started_at``."""
        return self.keys_started_at + REJECT_AFTER_TIME_S

    @property
    def rotation_pending(self) -> bool:
        """True while the peer has not yet confirmed our latest send epoch."""
        return self.peer_echo != self.send_epoch or self.recv_epoch != self.send_epoch

    def can_rotate(self, now: float, min_interval_s: float) -> bool:
        """Whether :meth:`rotate` is allowed now: both sides on one epoch, interval elapsed."""
        return (
            not self.erased
            and not self.rotation_pending
            and not self.rotation_hold
            # Same expression as the deadline RotationPolicy.get_timer() returns: ``now - last >=
            # interval`` can be false at ``now == last + interval`` in floating point.
            and now >= self.last_rotation_at + min_interval_s
        )

    # -- send path ------------------------------------------------------------------------------
    def next_send(self) -> tuple[crypto.Aead, int, int, int]:
        """Reserve a counter; return ``(aead, epoch, echo, counter)`` for one record.

        Raises ``ValueError`` when the keys were erased or the counter reached the reject limit
        (the session must then be closed).
        """
        send = self._send
        if send is None:
            raise ValueError("keys erased")
        counter = self.send_counter
        if counter >= REJECT_AFTER_MESSAGES:
            raise ValueError("send counter exhausted")
        self.send_counter = counter + 1
        self.sent_in_epoch += 1
        return send.aead, self.send_epoch, self.recv_epoch, counter

    def rotate(self, now: float) -> int:
        """Advance the sending direction to the next epoch; returns the new epoch.

        Call only when :meth:`can_rotate` is true (or when following the peer).
        """
        if self._send is None or self._exporter is None:
            raise ValueError("keys erased")
        mix = self._mix if self.send_epoch == self._mix_base else None
        self._send = self._send.next(mix)
        exporter = crypto.kdf(self._exporter, b"next-epoch")
        self._exporter = exporter if mix is None else mix_key(exporter, mix)
        self.send_epoch += 1
        self.sent_in_epoch = 0
        self.epoch_started_at = now
        self.last_rotation_at = now
        self._forget_mix_when_used()
        return self.send_epoch

    # -- DH ratchet hooks (§7.1) ----------------------------------------------------------------
    @property
    def mix_base(self) -> int | None:
        """The epoch whose outgoing transition carries an agreed DH secret, or None."""
        return self._mix_base if self._mix is not None else None

    def install_mix(self, base: int, secret: bytearray) -> None:
        """Mix ``secret`` (a DH ratchet's shared secret) into the transition ``base -> base+1``
        of both directions and of the exporter. Only while both directions are on ``base`` and no
        other secret is pending (the ratchet module checks; ``ValueError`` otherwise). The schedule
        takes ``secret`` over and wipes it once both directions have made the transition."""
        if (
            self._recv_current is None
            or self._mix is not None
            or not self.send_epoch == self.recv_epoch == base
        ):
            raise ValueError("a DH secret needs both directions on its base epoch")
        self._mix = secret
        self._mix_base = base
        # The peer's next-epoch records will be sealed with the mixed key.
        self._recv_next = self._recv_current.next(secret)

    def _forget_mix_when_used(self) -> None:
        mix = self._mix
        if mix is not None and self.send_epoch > self._mix_base < self.recv_epoch:
            crypto.wipe(mix)
            self._mix = None

    # -- receive path ---------------------------------------------------------------------------
    def select_receive_key(self, wire_epoch: int, now: float) -> tuple[int, crypto.Aead] | None:
        """Pick the key slot for a record's epoch byte; ``None`` means drop (reason "epoch")."""
        delta = (wire_epoch - self.recv_epoch) % EPOCH_MODULUS
        if delta == 0 and self._recv_current is not None:
            return SLOT_CURRENT, self._recv_current.aead
        if delta == 1 and self._recv_next is not None:
            return SLOT_NEXT, self._recv_next.aead
        if delta == EPOCH_MODULUS - 1 and self._recv_prev is not None:
            if self._prev_expires_at is not None and now >= self._prev_expires_at:
                self._drop_previous()
                return None
            return SLOT_PREVIOUS, self._recv_prev.aead
        return None

    def count_forgery(self, slot: int) -> int:
        """A record selected ``slot`` (by :meth:`select_receive_key`) and failed
        authentication: returns how many have failed under that key, this one included."""
        key = {
            SLOT_PREVIOUS: self._recv_prev,
            SLOT_CURRENT: self._recv_current,
            SLOT_NEXT: self._recv_next,
        }[slot]
        assert key is not None  # select_receive_key returned it
        key.forgeries += 1
        return key.forgeries

    def after_authenticated(self, slot: int, wire_echo: int, now: float, rtt_s: float) -> bool:
        """Record that a record of ``slot`` authenticated; returns True if the slots were promoted.

        On promotion the sending direction follows (rotates) if it is behind, so the caller should
        send a record soon to carry the new echo.
        """
        delta = (self.send_epoch - wire_echo) % EPOCH_MODULUS
        if delta <= 1:
            echo = self.send_epoch - delta
            if echo > self.peer_echo:
                self.peer_echo = echo
        if slot != SLOT_NEXT:
            return False
        assert self._recv_next is not None  # select_receive_key returned it
        self._drop_previous()
        self._recv_prev = self._recv_current
        self._prev_expires_at = now + max(KEY_GRACE_MIN_S, KEY_GRACE_RTT_FACTOR * rtt_s)
        self._recv_current = self._recv_next
        self.recv_epoch += 1
        mix = self._mix if self.recv_epoch == self._mix_base else None
        self._recv_next = self._recv_next.next(mix)
        self.recv_epoch_started_at = now
        if self.send_epoch < self.recv_epoch:
            self.rotate(now)
        else:
            self._forget_mix_when_used()
        return True

    # -- timers ---------------------------------------------------------------------------------
    def get_timer(self) -> float | None:
        """When the previous receive key must be erased, or ``None``."""
        return self._prev_expires_at

    def handle_timer(self, now: float) -> None:
        """Erase the previous receive key once its grace period is over."""
        if self._prev_expires_at is not None and now >= self._prev_expires_at:
            self._drop_previous()

    def _drop_previous(self) -> None:
        self._recv_prev = None
        self._prev_expires_at = None

    def erase(self) -> None:
        """Drop every key and cipher object (close, expiry). The schedule refuses all use
        afterwards."""
        self._send = None
        self._recv_current = None
        self._recv_next = None
        self._exporter = None
        if self._mix is not None:
            crypto.wipe(self._mix)
            self._mix = None
        self._drop_previous()


class RotationPolicy:
    """When a session rotates its keys (§7): on request, or when due by time or by count; never
    before both sides are on one epoch and a minimum interval has passed. Reports each version
    the peer confirmed once."""

    __slots__ = (
        "confirmed_version",
        "rekey_after_messages",
        "rekey_after_s",
        "requested",
        "target",
    )

    def __init__(self, rekey_after_s: float, rekey_after_messages: int) -> None:
        self.rekey_after_s = rekey_after_s
        self.rekey_after_messages = rekey_after_messages
        self.requested = False
        self.target = 0
        self.confirmed_version = 0

    def request(self, keys: KeySchedule) -> int:
        """Ask for one rotation; returns the key version that will satisfy it."""
        if self.requested and self.target > keys.send_epoch:
            return self.target  # a rotation still to come serves this request too
        # (A request whose target was reached by following the peer must not satisfy this one.)
        self.requested = True
        self.target = keys.send_epoch + 1
        return self.target

    def may_act(self, keys: KeySchedule, now: float) -> bool:
        """Whether :meth:`maybe_rotate` could rotate at ``now``: a rotation is requested, or due
        by time or by count. False means it would do nothing (callers skip working out the
        interval it takes)."""
        return (
            self.requested
            or now >= keys.epoch_started_at + self.rekey_after_s
            or keys.sent_in_epoch >= self.rekey_after_messages
        )

    def maybe_rotate(self, keys: KeySchedule, now: float, interval_s: float) -> bool:
        """Rotate the sending keys if a rotation is requested or due and allowed now; returns
        True when it rotated (the caller sends a record to carry the new epoch)."""
        if not self.requested:
            due_by_time = now >= keys.epoch_started_at + self.rekey_after_s
            due_by_count = keys.sent_in_epoch >= self.rekey_after_messages
            if due_by_time or due_by_count:
                self.requested = True
                self.target = keys.send_epoch + 1
        if not (self.requested and keys.can_rotate(now, interval_s)):
            return False
        rotated = keys.send_epoch < self.target
        if rotated:
            keys.rotate(now)
        self.requested = False
        return rotated

    def newly_confirmed(self, keys: KeySchedule) -> int | None:
        """The send epoch, the first time the peer is seen to use it too; else None."""
        version = keys.send_epoch
        if version > self.confirmed_version and not keys.rotation_pending:
            self.confirmed_version = version
            return version
        return None

    def get_timer(self, keys: KeySchedule, interval_s: float) -> float | None:
        """When :meth:`maybe_rotate` may next act. While the peer has not confirmed the last
        rotation, its record (not a timer) unblocks the next one: None then."""
        if self.requested:
            if keys.rotation_pending or keys.rotation_hold:
                return None  # a record (or the ratchet's progress) unblocks it
            return keys.last_rotation_at + interval_s
        return keys.epoch_started_at + self.rekey_after_s
