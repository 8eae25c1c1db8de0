"""The relay's wire format (``docs/protocol.md`` §17): codecs, and the registration proof.

Every relay packet starts like an STT packet, ``version`` then ``type``, with a type of
:class:`~seigr_stt.constants.RelayPacketType` (0x20..0x2F), so a node's UDP socket can carry its
relay traffic next to its direct sessions. Multi-byte integers are big-endian. Codecs are
symmetric (``serialize`` / ``parse``); ``parse`` raises :class:`RelayWireError` and nothing else,
for any bytes.

The proof (§17.3): the node and the relay both compute ``K = kdf(X25519(own static, other
static), LABEL_RELAY_KEY)``. The node MACs the REGISTER with it; the relay, which can compute
``K`` only from the node's *public* key and its own private key, learns that the sender holds the
node's static private key. The relay MACs REGISTERED with the same key, so the node knows the
observed address comes from the relay it registered with.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field

from seigr_stt.constants import (
    LABEL_RELAY_KEY,
    MAC_BYTES,
    NODE_ID_BYTES,
    RELAY_CHALLENGE_SIZE,
    RELAY_FORWARD_HEADER_SIZE,
    RELAY_HELLO_SIZE,
    RELAY_NONCE_BYTES,
    RELAY_PROTOCOL_VERSION,
    RELAY_REFUSED_SIZE,
    RELAY_REGISTER_SIZE,
    RELAY_REGISTERED_SIZE,
    RELAY_UNREACHABLE_SIZE,
    RelayPacketType,
)
from seigr_stt.core import crypto
from seigr_stt.exceptions import InvalidPublicKey

__all__ = [
    "Challenge",
    "Hello",
    "Refused",
    "Register",
    "Registered",
    "RelayWireError",
    "forward_packet",
    "parse_forward",
    "proof_key",
    "register_proof",
    "registered_proof",
]

_KEY = 32


class RelayWireError(ValueError):
    """Bytes that are not a well-formed relay packet (Sans-I/O, never raised to you)."""


def _head(kind: RelayPacketType) -> bytes:
    return bytes((RELAY_PROTOCOL_VERSION, kind))


def _check(data: bytes, kind: RelayPacketType, size: int) -> None:
    if len(data) != size:
        raise RelayWireError(f"{kind.name} is {size} bytes, not {len(data)}")
    if data[0] != RELAY_PROTOCOL_VERSION or data[1] != kind:
        raise RelayWireError(f"not a {kind.name} packet")


@dataclass(frozen=True, slots=True)
class Hello:
    """Node -> relay: asks for a CHALLENGE (padded to ``RELAY_HELLO_SIZE``: no amplification)."""

    nonce: bytes

    def serialize(self) -> bytes:
        """The packet's bytes."""
        out = _head(RelayPacketType.HELLO) + bytes(2) + self.nonce
        return out + bytes(RELAY_HELLO_SIZE - len(out))

    @classmethod
    def parse(cls, data: bytes) -> Hello:
        """Parse a HELLO; RelayWireError if malformed."""
        _check(data, RelayPacketType.HELLO, RELAY_HELLO_SIZE)
        return cls(bytes(data[4 : 4 + RELAY_NONCE_BYTES]))


@dataclass(frozen=True, slots=True)
class Challenge:
    """Relay -> node: the relay's static key and a stateless cookie bound to the source."""

    relay_static: bytes
    nonce: bytes
    issued: int  # the relay's clock, whole seconds mod 2**32
    cookie: bytes

    def serialize(self) -> bytes:
        """The packet's bytes."""
        return (
            _head(RelayPacketType.CHALLENGE)
            + bytes(2)
            + self.relay_static
            + self.nonce
            + struct.pack(">I", self.issued & 0xFFFFFFFF)
            + self.cookie
        )

    @classmethod
    def parse(cls, data: bytes) -> Challenge:
        """Parse a CHALLENGE; RelayWireError if malformed."""
        _check(data, RelayPacketType.CHALLENGE, RELAY_CHALLENGE_SIZE)
        (issued,) = struct.unpack_from(">I", data, 52)
        return cls(bytes(data[4:36]), bytes(data[36:52]), issued, bytes(data[56:72]))


@dataclass(frozen=True, slots=True)
class Register:
    """Node -> relay: the node's static key, the echoed challenge and the proof."""

    node_static: bytes
    nonce: bytes
    issued: int
    cookie: bytes
    proof: bytes = field(default=bytes(MAC_BYTES))

    def signed_part(self) -> bytes:
        """The bytes the proof covers (everything before it)."""
        return (
            _head(RelayPacketType.REGISTER)
            + bytes(2)
            + self.node_static
            + self.nonce
            + struct.pack(">I", self.issued & 0xFFFFFFFF)
            + self.cookie
        )

    def serialize(self) -> bytes:
        """The packet's bytes."""
        return self.signed_part() + self.proof

    @classmethod
    def parse(cls, data: bytes) -> Register:
        """Parse a REGISTER; RelayWireError if malformed."""
        _check(data, RelayPacketType.REGISTER, RELAY_REGISTER_SIZE)
        (issued,) = struct.unpack_from(">I", data, 52)
        return cls(
            bytes(data[4:36]), bytes(data[36:52]), issued, bytes(data[56:72]), bytes(data[72:88])
        )


def _encode_addr(observed: tuple[str, int] | None) -> bytes:
    if observed is None:
        return bytes(19)
    ip = ipaddress.ip_address(observed[0].split("%", 1)[0])
    raw = ip.packed
    return bytes((ip.version,)) + struct.pack(">H", observed[1]) + raw + bytes(16 - len(raw))


def _decode_addr(raw: bytes) -> tuple[str, int] | None:
    family = raw[0]
    (port,) = struct.unpack_from(">H", raw, 1)
    if family == 0:
        return None
    if family == 4:
        return str(ipaddress.IPv4Address(raw[3:7])), port
    if family == 6:
        return str(ipaddress.IPv6Address(raw[3:19])), port
    raise RelayWireError(f"unknown address family {family}")


@dataclass(frozen=True, slots=True)
class Registered:
    """Relay -> node: the registration holds ``lifetime_s`` seconds; the relay forwards STT
    packets of up to ``max_record`` bytes; ``observed`` is the node's source address as the relay
    sees it over UDP (None over WebSocket)."""

    lifetime_s: int
    max_record: int
    nonce: bytes
    observed: tuple[str, int] | None
    proof: bytes = field(default=bytes(MAC_BYTES))

    def signed_part(self) -> bytes:
        """The bytes the proof covers (everything before it)."""
        return (
            _head(RelayPacketType.REGISTERED)
            + bytes(2)
            + struct.pack(">HH", self.lifetime_s, self.max_record)
            + self.nonce
            + _encode_addr(self.observed)
        )

    def serialize(self) -> bytes:
        """The packet's bytes."""
        return self.signed_part() + self.proof

    @classmethod
    def parse(cls, data: bytes) -> Registered:
        """Parse a REGISTERED; RelayWireError if malformed."""
        _check(data, RelayPacketType.REGISTERED, RELAY_REGISTERED_SIZE)
        lifetime, max_record = struct.unpack_from(">HH", data, 4)
        return cls(
            lifetime, max_record, bytes(data[8:24]), _decode_addr(data[24:43]), bytes(data[43:59])
        )


@dataclass(frozen=True, slots=True)
class Refused:
    """Relay -> node: the REGISTER for ``nonce`` was refused with ``code``
    (:class:`~seigr_stt.constants.RelayRefusal`)."""

    code: int
    nonce: bytes

    def serialize(self) -> bytes:
        """The packet's bytes."""
        return _head(RelayPacketType.REFUSED) + bytes((self.code, 0)) + self.nonce

    @classmethod
    def parse(cls, data: bytes) -> Refused:
        """Parse a REFUSED; RelayWireError if malformed."""
        _check(data, RelayPacketType.REFUSED, RELAY_REFUSED_SIZE)
        return cls(data[2], bytes(data[4:20]))


def unreachable_packet(node_id: bytes) -> bytes:
    """Relay -> node: ``node_id`` is not registered here (a hint, not authenticated)."""
    return _head(RelayPacketType.UNREACHABLE) + node_id


def parse_unreachable(data: bytes) -> bytes:
    """The node id of an UNREACHABLE; RelayWireError if malformed."""
    _check(data, RelayPacketType.UNREACHABLE, RELAY_UNREACHABLE_SIZE)
    return bytes(data[2:])


def forward_packet(kind: RelayPacketType, node_id: bytes, payload: bytes) -> bytes:
    """SEND (``node_id`` is the destination) or DELIVER (``node_id`` is the source)."""
    return _head(kind) + node_id + payload


def parse_forward(data: bytes) -> tuple[bytes, bytes]:
    """``(node_id, payload)`` of a SEND or DELIVER; RelayWireError if it has no payload."""
    if len(data) <= RELAY_FORWARD_HEADER_SIZE:
        raise RelayWireError("a forwarded packet carries a node id and a payload")
    return bytes(data[2 : 2 + NODE_ID_BYTES]), bytes(data[RELAY_FORWARD_HEADER_SIZE:])


def proof_key(own_private: bytes, other_public: bytes) -> bytes:
    """``K`` of the registration (module docstring). RelayWireError for a low-order key."""
    if len(other_public) != _KEY:
        raise RelayWireError("static keys are 32 bytes")
    try:
        shared = crypto.dh(own_private, other_public)
    except InvalidPublicKey as exc:
        raise RelayWireError("low-order static key") from exc
    return crypto.kdf(shared, LABEL_RELAY_KEY)


def register_proof(key: bytes, relay_static: bytes, register: Register) -> bytes:
    """The proof of a REGISTER: a MAC over the relay's static key and the REGISTER."""
    return crypto.mac(key, relay_static + register.signed_part())


def registered_proof(key: bytes, registered: Registered) -> bytes:
    """The proof of a REGISTERED: a MAC over it, with the registration's key."""
    return crypto.mac(key, registered.signed_part())
