"""The STT handshake: ``Noise_XXpsk3_25519_ChaChaPoly_BLAKE2b`` in three packets (§4).

::

    INIT      v=2 t=1 00 00 | sender index (4) | Noise msg 1 (-> e)          | mac1 | mac2
    RESPONSE  v=2 t=2 00 00 | sender (4) | receiver (4) | msg 2 (<- e ee s es) | mac1 | mac2
    FINAL     v=2 t=3 00 00 | sender (4) | receiver (4) | msg 3 (-> s se psk)  | mac1 | mac2

``mac1 = BLAKE2b-128(mac1_key, packet up to mac1)`` with ``mac1_key`` from the shared seed; it is
checked before any Diffie-Hellman. ``mac2`` is zero unless the sender holds a cookie (§10). Each
Noise payload is a bounded msgpack map that repeats the clear indexes, so both peers hold the same
authenticated session id = initiator index || responder index.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack

from seigr_stt.constants import (
    AEAD_TAG_BYTES,
    DH_PUBLIC_BYTES,
    HANDSHAKE_INIT_HEADER_SIZE,
    HANDSHAKE_INIT_MIN_SIZE,
    HANDSHAKE_MESSAGE_MAX_SIZE,
    HANDSHAKE_PAYLOAD_MAX_BYTES,
    HANDSHAKE_REPLY_HEADER_SIZE,
    LABEL_EXPORTER,
    MAC_BYTES,
    NOISE_PROTOCOL_NAME,
    PACKET_HANDSHAKE_FINAL,
    PACKET_HANDSHAKE_INIT,
    PACKET_HANDSHAKE_RESPONSE,
    PROLOGUE,
    PROTOCOL_VERSION,
)
from seigr_stt.core import crypto
from seigr_stt.core.cookie import finish_packet
from seigr_stt.core.identity import NodeIdentity, SharedSecrets, node_id_from_static
from seigr_stt.core.noise import HandshakeState, NoiseError
from seigr_stt.exceptions import HandshakeFailed

__all__ = [
    "HandshakeFailed",
    "HandshakeRefused",
    "HandshakeResult",
    "InitiatorHandshake",
    "ResponderHandshake",
    "derive_exporter",
    "parse_handshake_header",
]

_MACS = 2 * MAC_BYTES


@dataclass(frozen=True, slots=True)
class HandshakeResult:
    """What a completed handshake yields: ids, the peer's identity and the traffic keys."""

    session_id: bytes
    local_index: bytes
    peer_index: bytes
    initiator: bool
    peer_static: bytes
    peer_node_id: bytes
    peer_capabilities: int
    peer_timestamp_ns: int
    handshake_hash: bytes
    send_key: bytes = field(repr=False)
    recv_key: bytes = field(repr=False)
    exporter: bytes = field(repr=False)


def parse_handshake_header(packet: bytes) -> tuple[int, bytes, bytes]:
    """Return ``(type, sender index, receiver index or b"")``; raises :class:`HandshakeFailed`.

    Checks only sizes, version and the reserved bytes: nothing here is authenticated.
    """
    if len(packet) < HANDSHAKE_INIT_HEADER_SIZE + _MACS or len(packet) > HANDSHAKE_MESSAGE_MAX_SIZE:
        raise HandshakeFailed("size")
    if packet[0] != PROTOCOL_VERSION:
        raise HandshakeFailed("version")
    if packet[2] or packet[3]:
        raise HandshakeFailed("malformed")
    ptype = packet[1]
    if ptype == PACKET_HANDSHAKE_INIT:
        if len(packet) < HANDSHAKE_INIT_MIN_SIZE:
            raise HandshakeFailed("size")
        return ptype, packet[4:8], b""
    if ptype in (PACKET_HANDSHAKE_RESPONSE, PACKET_HANDSHAKE_FINAL):
        if len(packet) < HANDSHAKE_REPLY_HEADER_SIZE + _MACS:
            raise HandshakeFailed("size")
        return ptype, packet[4:8], packet[8:12]
    raise HandshakeFailed("type")


class HandshakeRefused(Exception):
    """An authentic RESPONSE that refuses the session with close code ``code`` (for example
    ``CloseCode.SERVER_FULL``): the responder proved its identity, so the initiator can say
    why instead of timing out."""

    def __init__(self, code: int) -> None:
        super().__init__(f"the responder refused the session (code {code})")
        self.code = code


def derive_exporter(k1: bytes, k2: bytes, handshake_hash: bytes) -> bytes:
    """``exporter_0 = KDF(k1 || k2, "exporter" || h)`` (§2.3): the root of ``session_key`` and of
    every later exporter, from the two keys of Noise's ``Split()`` (``k1`` initiator to
    responder) and the final handshake hash, values every Noise implementation exposes."""
    return crypto.kdf(k1 + k2, LABEL_EXPORTER + handshake_hash)


def _pack(payload: dict[str, Any]) -> bytes:
    return msgpack.packb(payload, use_bin_type=True)  # type: ignore[no-any-return]


def _unpack(data: bytes) -> dict[str, Any]:
    if len(data) > HANDSHAKE_PAYLOAD_MAX_BYTES:
        raise HandshakeFailed("payload", "handshake payload too large")
    try:
        value = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            max_str_len=64,
            max_bin_len=HANDSHAKE_PAYLOAD_MAX_BYTES,
            max_array_len=16,
            max_map_len=16,
            max_ext_len=0,
        )
    except Exception as exc:  # msgpack raises several unrelated types on bad input
        raise HandshakeFailed("payload", "handshake payload is not valid msgpack") from exc
    if not isinstance(value, dict):
        raise HandshakeFailed("payload", "handshake payload is not a map")
    return value


def _int_field(payload: dict[str, Any], key: str) -> int:
    value = payload.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0 or value >= 1 << 64:
        raise HandshakeFailed("payload", f"handshake payload field {key!r} is missing or invalid")
    return value


def _index_field(payload: dict[str, Any], key: str, expected: bytes) -> None:
    if payload.get(key) != expected:
        raise HandshakeFailed("payload", "handshake index does not match the clear header")


def _new_state(
    initiator: bool, identity: NodeIdentity, secrets: SharedSecrets, rng: Callable[[int], bytes]
) -> HandshakeState:
    return HandshakeState(
        NOISE_PROTOCOL_NAME,
        initiator=initiator,
        prologue=PROLOGUE,
        s=identity.static_private,
        psks=(secrets.psk,),
        rng=rng,
        s_public=identity.static_public,
    )


def _result(
    state: HandshakeState,
    *,
    initiator: bool,
    local_index: bytes,
    peer_index: bytes,
    capabilities: int,
    timestamp_ns: int,
) -> HandshakeResult:
    peer_static = state.remote_static
    assert peer_static is not None  # XX always transmits both statics
    send, recv, _ = state.split_keys()  # the Noise engine's own exporter is not STT's (§2.3)
    k1, k2 = (send, recv) if initiator else (recv, send)
    handshake_hash = state.handshake_hash
    session_id = local_index + peer_index if initiator else peer_index + local_index
    return HandshakeResult(
        session_id=session_id,
        local_index=local_index,
        peer_index=peer_index,
        initiator=initiator,
        peer_static=peer_static,
        peer_node_id=node_id_from_static(peer_static),
        peer_capabilities=capabilities,
        peer_timestamp_ns=timestamp_ns,
        handshake_hash=handshake_hash,
        send_key=send,
        recv_key=recv,
        exporter=derive_exporter(k1, k2, handshake_hash),
    )


class InitiatorHandshake:
    """The initiator's side: :meth:`init_packet`, then :meth:`receive_response`.

    ``timestamp_ns`` must increase across the initiator's handshakes (wall-clock nanoseconds);
    the responder refuses a handshake whose timestamp is not newer than the last one it accepted
    from the same static key (a replayed first message).
    """

    def __init__(
        self,
        identity: NodeIdentity,
        secrets: SharedSecrets,
        local_index: bytes,
        *,
        capabilities: int,
        timestamp_ns: int,
        rng: Callable[[int], bytes],
    ) -> None:
        self.identity = identity
        self.secrets = secrets
        self.local_index = local_index
        self.capabilities = capabilities
        self._state = _new_state(True, identity, secrets, rng)
        self._body = b""
        self.result: HandshakeResult | None = None
        self.final_packet: bytes | None = None
        header = bytes([PROTOCOL_VERSION, PACKET_HANDSHAKE_INIT, 0, 0]) + local_index
        payload = {"i": local_index, "t": timestamp_ns, "c": capabilities, "p": b""}
        # Message 1 is ``e`` (32 bytes) || payload || tag (16): pad the payload so INIT is never
        # smaller than any RESPONSE (no amplification). ``p`` stays a msgpack bin 8 (< 256
        # bytes), whose encoding grows by exactly the padding length.
        plain = _pack(payload)
        shortfall = HANDSHAKE_INIT_MIN_SIZE - (
            len(header) + DH_PUBLIC_BYTES + len(plain) + AEAD_TAG_BYTES + _MACS
        )
        if shortfall > 0:
            payload["p"] = bytes(shortfall)
            plain = _pack(payload)
        message = self._state.write_message(plain)
        self._body = header + message
        self.ephemeral_public = message[:32]

    def __repr__(self) -> str:
        return f"InitiatorHandshake(index={self.local_index.hex()})"

    def init_packet(self, cookie: bytes | None = None) -> bytes:
        """The INIT packet (same bytes on every retry; mac2 set when a cookie is held)."""
        return finish_packet(self._body, self.secrets.mac1_key, cookie)

    def receive_response(self, packet: bytes) -> bytes:
        """Process a RESPONSE (mac1 already checked); return the FINAL packet to send.

        Afterwards :attr:`result` holds the keys. Raises :class:`HandshakeFailed`, or
        :class:`HandshakeRefused` for an authentic RESPONSE that refuses the session (§4.4).
        """
        ptype, sender, receiver = parse_handshake_header(packet)
        if ptype != PACKET_HANDSHAKE_RESPONSE or receiver != self.local_index:
            raise HandshakeFailed("handshake_state")
        if self.result is not None:
            raise HandshakeFailed("handshake_state", "response already processed")
        # A RESPONSE can pass Noise and still be refused below (its clear indexes, payload or
        # static key): work on a copy so a forged one cannot spoil the genuine one (§4.4).
        state = self._state.copy()
        try:
            payload = _unpack(state.read_message(packet[HANDSHAKE_REPLY_HEADER_SIZE:-_MACS]))
        except NoiseError as exc:
            raise HandshakeFailed("handshake_auth", str(exc)) from exc
        _index_field(payload, "i", sender)
        _index_field(payload, "r", self.local_index)
        capabilities = _int_field(payload, "c")
        if state.remote_static == self.identity.static_public:
            raise HandshakeFailed("reflection", "the peer has our own static key")
        if "x" in payload:
            # The responder authenticated itself (es) and refuses: no FINAL, no session.
            raise HandshakeRefused(_int_field(payload, "x"))
        self._state = state
        header = bytes([PROTOCOL_VERSION, PACKET_HANDSHAKE_FINAL, 0, 0]) + self.local_index + sender
        message = self._state.write_message(_pack({"i": self.local_index, "r": sender}))
        self.final_packet = finish_packet(header + message, self.secrets.mac1_key, None)
        self.result = _result(
            self._state,
            initiator=True,
            local_index=self.local_index,
            peer_index=sender,
            capabilities=capabilities,
            timestamp_ns=0,
        )
        return self.final_packet


class ResponderHandshake:
    """The responder's side: construct from an INIT (mac1 already checked), send
    :attr:`response_packet`, then :meth:`receive_final`."""

    def __init__(
        self,
        identity: NodeIdentity,
        secrets: SharedSecrets,
        local_index: bytes,
        init_packet: bytes,
        *,
        capabilities: int,
        rng: Callable[[int], bytes],
        refuse: int | None = None,
    ) -> None:
        ptype, sender, _ = parse_handshake_header(init_packet)
        if ptype != PACKET_HANDSHAKE_INIT:
            raise HandshakeFailed("type")
        self.identity = identity
        self.secrets = secrets
        self.local_index = local_index
        self.peer_index = sender
        self._state = _new_state(False, identity, secrets, rng)
        try:
            payload = _unpack(
                self._state.read_message(init_packet[HANDSHAKE_INIT_HEADER_SIZE:-_MACS])
            )
        except NoiseError as exc:
            raise HandshakeFailed("handshake_auth", str(exc)) from exc
        _index_field(payload, "i", sender)
        self.peer_timestamp_ns = _int_field(payload, "t")
        self.peer_capabilities = _int_field(payload, "c")
        self.peer_ephemeral = init_packet[
            HANDSHAKE_INIT_HEADER_SIZE : HANDSHAKE_INIT_HEADER_SIZE + 32
        ]
        header = bytes([PROTOCOL_VERSION, PACKET_HANDSHAKE_RESPONSE, 0, 0]) + local_index + sender
        try:
            # Message 2 does the first DH (ee) with the INIT's ephemeral: a low-order point
            # surfaces here, not in read_message (message 1 carries no DH).
            fields: dict[str, Any] = {"i": local_index, "r": sender, "c": capabilities}
            if refuse is not None:
                fields["x"] = refuse  # a refusal: the initiator sends no FINAL (§4.4)
            message = self._state.write_message(_pack(fields))
        except NoiseError as exc:
            raise HandshakeFailed("handshake_auth", str(exc)) from exc
        self.response_packet = finish_packet(header + message, secrets.mac1_key, None)
        self.result: HandshakeResult | None = None
        self.final_digest: bytes | None = None

    def __repr__(self) -> str:
        return f"ResponderHandshake(index={self.local_index.hex()})"

    def receive_final(self, packet: bytes) -> HandshakeResult:
        """Process FINAL (mac1 already checked): authenticates the initiator's membership (PSK)
        and identity. Raises :class:`HandshakeFailed`."""
        ptype, sender, receiver = parse_handshake_header(packet)
        if (
            ptype != PACKET_HANDSHAKE_FINAL
            or receiver != self.local_index
            or sender != self.peer_index
        ):
            raise HandshakeFailed("handshake_state")
        if self.result is not None:
            raise HandshakeFailed("handshake_state", "final already processed")
        state = self._state.copy()  # as in receive_response: refusal changes nothing
        try:
            payload = _unpack(state.read_message(packet[HANDSHAKE_REPLY_HEADER_SIZE:-_MACS]))
        except NoiseError as exc:
            raise HandshakeFailed("handshake_auth", str(exc)) from exc
        _index_field(payload, "i", self.peer_index)
        _index_field(payload, "r", self.local_index)
        if state.remote_static == self.identity.static_public:
            raise HandshakeFailed("reflection", "the peer has our own static key")
        self._state = state
        self.final_digest = crypto.mac(self.secrets.mac1_key, packet)
        self.result = _result(
            self._state,
            initiator=False,
            local_index=self.local_index,
            peer_index=self.peer_index,
            capabilities=self.peer_capabilities,
            timestamp_ns=self.peer_timestamp_ns,
        )
        return self.result
