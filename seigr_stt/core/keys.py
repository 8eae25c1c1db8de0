"""Traffic keys of one session: epochs, key slots and rotation rules (``docs/protocol.md`` §7).

Each direction has a 32-byte key and an epoch. Rotating a direction replaces its key by
``REKEY(key)`` (Noise's one-way REKEY) and adds one to its epoch. The receiver holds three slots,
*previous*, *current* and *next* (= REKEY(current)), and picks one by the 8-bit epoch in the record
header. A record of the next epoch that authenticates promotes the slots; the receiver then follows
by rotating its own sending direction, so both directions stay on the same epoch (= the session's
``key_version``). Records echo the receiver's epoch; a sender rotates again only when the echo shows
the peer has switched, its own receive side has switched too, and a minimum interval has passed.

This object holds no clock: every time-dependent method takes ``now``.
"""

from __future__ import annotations

from seigr_stt.constants import (
    EPOCH_MODULUS,
    KEY_GRACE_MIN_S,
    KEY_GRACE_RTT_FACTOR,
    LABEL_SESSION_KEY,
    REJECT_AFTER_MESSAGES,
)
from seigr_stt.core import crypto
from seigr_stt.core.noise import rekey
from seigr_stt.core.replay import ReplayWindow

__all__ = ["SLOT_CURRENT", "SLOT_NEXT", "SLOT_PREVIOUS", "KeySchedule"]

SLOT_PREVIOUS = -1
SLOT_CURRENT = 0
SLOT_NEXT = 1


class KeySchedule:
    """Send and receive keys of one session, after the handshake's Split().

    ``send_key``/``recv_key`` are epoch-0 keys and ``exporter`` the handshake's third HKDF output
    (the root of :attr:`session_key`). Contract for the receive path (§5.3): call
    :meth:`select_receive_key` with the header's epoch *before* decrypting, and
    :meth:`after_authenticated` only after the AEAD verified and the replay window accepted.
    """

    __slots__ = (
        "_exporter",
        "_prev_expires_at",
        "_recv_current",
        "_recv_next",
        "_recv_prev",
        "_send_key",
        "epoch_started_at",
        "last_rotation_at",
        "peer_echo",
        "recv_epoch",
        "recv_epoch_started_at",
        "replay",
        "send_counter",
        "send_epoch",
        "sent_in_epoch",
    )

    def __init__(self, send_key: bytes, recv_key: bytes, exporter: bytes, now: float) -> None:
        self._send_key: bytes | None = send_key
        self._recv_current: bytes | None = recv_key
        self._recv_next: bytes | None = rekey(recv_key)
        self._recv_prev: bytes | None = None
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

    def __repr__(self) -> str:
        return (
            f"KeySchedule(send_epoch={self.send_epoch}, recv_epoch={self.recv_epoch}, "
            f"peer_echo={self.peer_echo}, send_counter={self.send_counter})"
        )

    # -- state ----------------------------------------------------------------------------------
    @property
    def erased(self) -> bool:
        """True once :meth:`erase` dropped every key."""
        return self._send_key is None

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
    def rotation_pending(self) -> bool:
        """True while the peer has not yet confirmed our latest send epoch."""
        return self.peer_echo != self.send_epoch or self.recv_epoch != self.send_epoch

    def can_rotate(self, now: float, min_interval_s: float) -> bool:
        """Whether :meth:`rotate` is allowed now: both sides on one epoch, interval elapsed."""
        return (
            not self.erased
            and not self.rotation_pending
            # Same expression as the deadline Session.get_timer() returns: ``now - last >=
            # interval`` can be false at ``now == last + interval`` in floating point.
            and now >= self.last_rotation_at + min_interval_s
        )

    # -- send path ------------------------------------------------------------------------------
    def next_send(self) -> tuple[bytes, int, int, int]:
        """Reserve a counter; return ``(key, epoch, echo, counter)`` for one record.

        Raises ``ValueError`` when the keys were erased or the counter reached the reject limit
        (the session must then be closed).
        """
        key = self._send_key
        if key is None:
            raise ValueError("keys erased")
        counter = self.send_counter
        if counter >= REJECT_AFTER_MESSAGES:
            raise ValueError("send counter exhausted")
        self.send_counter = counter + 1
        self.sent_in_epoch += 1
        return key, self.send_epoch, self.recv_epoch, counter

    def rotate(self, now: float) -> int:
        """Advance the sending direction to the next epoch; returns the new epoch.

        Call only when :meth:`can_rotate` is true (or when following the peer).
        """
        if self._send_key is None or self._exporter is None:
            raise ValueError("keys erased")
        old = self._send_key
        self._send_key = rekey(old)
        crypto.forget_key(old)
        self._exporter = crypto.kdf(self._exporter, b"next-epoch")
        self.send_epoch += 1
        self.sent_in_epoch = 0
        self.epoch_started_at = now
        self.last_rotation_at = now
        return self.send_epoch

    # -- receive path ---------------------------------------------------------------------------
    def select_receive_key(self, wire_epoch: int, now: float) -> tuple[int, bytes] | None:
        """Pick the key slot for a record's epoch byte; ``None`` means drop (reason "epoch")."""
        delta = (wire_epoch - self.recv_epoch) % EPOCH_MODULUS
        if delta == 0 and self._recv_current is not None:
            return SLOT_CURRENT, self._recv_current
        if delta == 1 and self._recv_next is not None:
            return SLOT_NEXT, self._recv_next
        if delta == EPOCH_MODULUS - 1 and self._recv_prev is not None:
            if self._prev_expires_at is not None and now >= self._prev_expires_at:
                self._drop_previous()
                return None
            return SLOT_PREVIOUS, self._recv_prev
        return None

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
        self._recv_next = rekey(self._recv_next)
        self.recv_epoch += 1
        self.recv_epoch_started_at = now
        if self.send_epoch < self.recv_epoch:
            self.rotate(now)
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
        if self._recv_prev is not None:
            crypto.forget_key(self._recv_prev)
        self._recv_prev = None
        self._prev_expires_at = None

    def erase(self) -> None:
        """Drop every key (close, expiry). The schedule refuses all use afterwards."""
        for key in (self._send_key, self._recv_current, self._recv_next):
            if key is not None:
                crypto.forget_key(key)
        self._send_key = None
        self._recv_current = None
        self._recv_next = None
        self._exporter = None
        self._drop_previous()
