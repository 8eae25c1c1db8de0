"""The seigr_stt exception tree.

Blame decides how an error travels (``docs/protocol.md`` §11): local misuse raises at once;
remote garbage is dropped and counted, never raised; an authenticated protocol violation closes
that session with a code. What reaches the caller::

    STTError
    ├── ConfigError (also ValueError)        a bad argument or setting: fix the call
    │   └── WeakSeedError                    a seed too short or with too little entropy
    ├── BindError (also OSError)             a socket could not be bound (address in the message)
    ├── HandshakeError                       the handshake failed (reason in the message; ``code``)
    │   ├── HandshakeTimeout (also TimeoutError)  no valid answer before the deadline
    │   └── RelayError                       a relay refused or did not answer a registration
    ├── SessionError
    │   ├── SessionNotFound (also KeyError)  no live session with that id
    │   ├── SessionClosedError               closing or closed (``code``, ``by_peer``)
    │   └── KeyRotationError                 a rotation could not complete
    ├── StreamError                          a stream was reset or misused
    ├── MessageTooLarge (also ValueError)    a message exceeds what the session can carry
    ├── ProtocolError                        the core refused an outbound operation
    └── NoiseError                           seigr_stt.core.noise refused a call or a message
        ├── NoiseConfigError (also ValueError)  a bad protocol name, key, PSK or key set
        ├── NoiseStateError                  a call out of turn, before or after completion
        │   └── NoiseNonceExhausted          a CipherState's nonce reached 2**64-1
        ├── NoiseMessageError                a handshake message of the wrong length
        ├── NoiseDecryptError                an AEAD tag did not verify
        └── NoiseInvalidKey                  a remote public key of low order

A Noise error reaches only a direct user of ``seigr_stt.core.noise``: the node drops the
handshake packet that caused it and counts it (``handshake_auth``).

The sans-I/O core signals what it found in received packets with its own exceptions, outside the
``STTError`` tree. They are caught inside the core and turned into a counted drop or a session
closed with ``CLOSE_PROTOCOL_ERROR``; they are never raised to you::

    CoreError (Sans-I/O, never raised to you)
    ├── PeerViolation                        an authenticated peer broke the protocol: close
    │   ├── FrameError (also ValueError)     a record's frames do not parse
    │   └── FlowControlError                 data beyond the credit, a changed final size
    ├── RecordError (also ValueError)        a malformed record (dropped) or bad padding (close)
    ├── DecryptError                         an AEAD tag did not verify (dropped, counted)
    ├── InvalidPublicKey                     a Diffie-Hellman public key of low order
    └── HandshakeFailed                      a refused handshake packet (``reason``: its drop)

A wrong *type* of argument (``send_datagram(123)``, a session id that is not bytes) raises the
built-in :class:`TypeError` naming the argument, as Python's own functions do; a bad *value*
raises :class:`ConfigError` (a :class:`ValueError`).

Exception text never contains key material or seeds.
"""

from __future__ import annotations

from seigr_stt.constants import CloseCode

__all__ = [
    "BindError",
    "ConfigError",
    "CoreError",
    "DecryptError",
    "FlowControlError",
    "FrameError",
    "HandshakeError",
    "HandshakeFailed",
    "HandshakeTimeout",
    "InvalidPublicKey",
    "KeyRotationError",
    "MessageTooLarge",
    "NoiseConfigError",
    "NoiseDecryptError",
    "NoiseError",
    "NoiseInvalidKey",
    "NoiseMessageError",
    "NoiseNonceExhausted",
    "NoiseStateError",
    "PeerViolation",
    "ProtocolError",
    "RecordError",
    "RelayError",
    "STTError",
    "SessionClosedError",
    "SessionError",
    "SessionNotFound",
    "StreamError",
    "TicketError",
    "WeakSeedError",
]


class STTError(Exception):
    """Base class of every error seigr_stt raises on purpose."""


class ConfigError(STTError, ValueError):
    """A constructor argument or configuration value is invalid (the caller's fault)."""


class WeakSeedError(ConfigError):
    """A seed is too short, not decodable, or has too little entropy to be a secret."""


class TicketError(ConfigError):
    """A node ticket could not be read: not a ticket, another version, truncated, oversized, or
    holding a value of the wrong kind (a ticket is untrusted input; docs/connecting-anywhere.md).
    """


class BindError(STTError, OSError):
    """A socket could not be bound: the address is busy, not local, or does not resolve.

    The message names the transport and the address; ``errno`` is the operating system's
    (``errno.EADDRINUSE`` for a busy port) and ``__cause__`` the original :class:`OSError`.
    """


def as_close_code(code: int | None) -> int | None:
    """``code`` as a :class:`CloseCode` when it is one of ours, else unchanged (an application's
    own code stays a plain int; None stays None)."""
    if code is None or isinstance(code, CloseCode):
        return code
    try:
        return CloseCode(code)
    except ValueError:
        return code


class HandshakeError(STTError):
    """A handshake could not complete; the message says why where that can be known.

    ``code`` is the close code of a responder that refused the session
    (``CloseCode.SERVER_FULL``: it holds ``max_sessions`` sessions), else None.
    """

    def __init__(self, message: str = "", code: int | None = None) -> None:
        super().__init__(message)
        self.code = as_close_code(code)


class HandshakeTimeout(HandshakeError, TimeoutError):
    """No valid handshake answer arrived before the deadline.

    A peer with a different shared seed never answers (it cannot tell us apart from an
    attacker), so a wrong shared seed surfaces as this error.
    """


class RelayError(HandshakeError):
    """A relay refused this node's registration, did not answer it, or cannot be reached
    (docs/relay.md); the message names the relay and says why."""


class SessionError(STTError):
    """Base class of errors about one session."""


class SessionNotFound(SessionError, KeyError):
    """No live session has this id (it never existed, or it was closed and cleaned up).

    ``session_ids`` lists every id the operation could not reach (``send_to_sessions`` raises
    this after sending to all the others).
    """

    def __init__(self, message: str, session_ids: tuple[bytes, ...] = ()) -> None:
        super().__init__(message)
        self.session_ids = session_ids

    def __str__(self) -> str:  # KeyError quotes its argument; keep the plain message
        return str(self.args[0]) if self.args else "session not found"


class SessionClosedError(SessionError):
    """The session is closing or closed; ``code`` and ``reason`` say how it ended.

    ``code`` is a :class:`~seigr_stt.constants.CloseCode` when it is one of the protocol's codes
    (an application's own code stays an int; None when not known yet). ``by_peer`` is True when
    the peer closed the session, False when this side did (by ``close()``, a timeout or
    ``stop()``).
    """

    def __init__(
        self, message: str, code: int | None = None, reason: str = "", by_peer: bool = False
    ) -> None:
        super().__init__(message)
        self.code = as_close_code(code)
        self.reason = reason
        self.by_peer = by_peer


class KeyRotationError(SessionError):
    """A key rotation could not be completed (the session closed or the peer never confirmed)."""


class StreamError(STTError):
    """A stream was reset by the peer or used after it was closed."""


class MessageTooLarge(STTError, ValueError):
    """A message is larger than the session can carry; the session stays usable."""


class ProtocolError(STTError):
    """The core refused an operation because of the session's protocol state."""


# -- Noise errors (seigr_stt.core.noise) -----------------------------------------------------------


class NoiseError(STTError):
    """Base class of every error the Noise engine (``seigr_stt.core.noise``) raises on purpose."""


class NoiseConfigError(NoiseError, ValueError):
    """A constructor argument is invalid: protocol name, key or PSK length, a key the pattern
    needs is missing, or a key the pattern transmits was supplied."""


class NoiseStateError(NoiseError):
    """The call does not fit the object's state (out of turn, before or after completion)."""


class NoiseNonceExhausted(NoiseStateError):
    """The CipherState's nonce reached 2**64-1: no further message may use this key."""


class NoiseMessageError(NoiseError):
    """A handshake message has the wrong length (too short for its tokens, or above 65535)."""


class NoiseDecryptError(NoiseError):
    """An AEAD tag did not verify: the message is forged, corrupted, or from another session."""


class NoiseInvalidKey(NoiseError):
    """A remote Diffie-Hellman public key is of low order (or otherwise unusable)."""


# -- end of Noise errors ---------------------------------------------------------------------------


# -- Sans-I/O core errors: caught inside the core, never raised to the caller --------------------


class CoreError(Exception):
    """(Sans-I/O, never raised to you) Base class of what the core finds in received packets."""


class PeerViolation(CoreError):
    """(Sans-I/O) An authenticated peer broke the protocol; the session closes with
    ``CLOSE_PROTOCOL_ERROR`` and this message as the reason."""


class FrameError(PeerViolation, ValueError):
    """(Sans-I/O) The plaintext of an authenticated record does not parse."""


class FlowControlError(PeerViolation):
    """(Sans-I/O) The peer sent beyond the credit we granted, or changed a stream's final size."""


class RecordError(CoreError, ValueError):
    """(Sans-I/O) A record is malformed (before authentication) or its padding is invalid
    (after)."""


class DecryptError(CoreError):
    """(Sans-I/O) An AEAD tag did not verify: the ciphertext, key, nonce or associated data is
    wrong."""


class InvalidPublicKey(CoreError):
    """(Sans-I/O) A Diffie-Hellman public key is of low order or otherwise unusable."""


class HandshakeFailed(CoreError):
    """(Sans-I/O) A handshake packet was refused; ``reason`` is its drop counter (§11)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason
