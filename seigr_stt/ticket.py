"""Node tickets: everything needed to dial a node, in one pasteable word.

A ticket names a node by its node id (what the handshake proves) and lists where it may be
reached: UDP addresses (its own, and those relays observed), WebSocket URLs and relay URLs. It
holds no secret: dialling by ticket still needs the shared seed, and a node at a listed address
that proves another node id is refused. Anyone may hand out a ticket; a ticket is therefore
untrusted input, parsed strictly (:class:`~seigr_stt.exceptions.TicketError`).

Text form (docs/connecting-anywhere.md): ``stt`` followed by the lowercase, unpadded base32 of the
msgpack array ``[1, node_id, [[host, port], ...], [ws_url, ...], [relay_url, ...]]``; ``1`` is the
format's version. Base32 keeps the ticket one word (a double-click selects all of it) and free of
characters that shells or chat programs alter.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeGuard
from urllib.parse import urlsplit

import msgpack

from seigr_stt.constants import NODE_ID_BYTES
from seigr_stt.exceptions import TicketError

__all__ = ["TICKET_PREFIX", "TICKET_VERSION", "NodeTicket"]

#: What every ticket's text starts with.
TICKET_PREFIX = "stt"
#: The format version this code writes and reads.
TICKET_VERSION = 1
#: The most characters a ticket's text may have (a ticket with every list full fits well below).
TICKET_MAX_CHARS = 4096
#: The most entries in each of a ticket's lists.
TICKET_MAX_ENTRIES = 16
#: The longest host name or URL a ticket may hold.
TICKET_MAX_NAME = 253


#: What each of msgpack's limits, as the parser sets them, refuses.
_LIMITS = {
    "max_array_len": f"a list of more than {TICKET_MAX_ENTRIES} entries",
    "max_str_len": f"a text longer than {TICKET_MAX_NAME} characters",
    "max_bin_len": f"bytes longer than a node id ({NODE_ID_BYTES} bytes)",
}


def _check_host(host: object, where: str) -> str:
    if not isinstance(host, str) or not host:
        raise TicketError(f"{where}: a host is a non-empty string")
    if len(host) > TICKET_MAX_NAME:
        raise TicketError(f"{where}: host longer than {TICKET_MAX_NAME} characters")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        labels = host.rstrip(".").split(".")
        if not all(label and len(label) <= 63 for label in labels) or not all(
            ch.isalnum() or ch in "-." for ch in host
        ):
            raise TicketError(
                f"{where}: {host!r} is neither an IP address nor a host name"
            ) from None
    return host


def _check_port(port: object, where: str) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise TicketError(f"{where}: a port is an integer in 1..65535")
    return port


def _check_url(url: object, schemes: tuple[str, ...], where: str) -> str:
    if not isinstance(url, str) or len(url) > TICKET_MAX_NAME:
        raise TicketError(f"{where}: a URL is a string of at most {TICKET_MAX_NAME} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TicketError(f"{where}: {url!r} is not a URL: {exc}") from None
    if parts.scheme not in schemes or not parts.hostname:
        raise TicketError(f"{where}: {url!r} is not a {' or '.join(schemes)} URL with a host")
    if parts.scheme == "udp" and port is None:
        raise TicketError(f"{where}: {url!r} needs a port")
    return url


def _entries(value: object, where: str) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise TicketError(f"{where}: expected a list")
    if len(value) > TICKET_MAX_ENTRIES:
        raise TicketError(f"{where}: more than {TICKET_MAX_ENTRIES} entries")
    return list(value)


@dataclass(frozen=True, slots=True)
class NodeTicket:
    """Where a node may be reached, and which node it must prove to be.

    ``node_id``: 32 bytes. ``addresses``: UDP ``(host, port)`` pairs. ``websockets``:
    ``ws://``/``wss://`` URLs. ``relays``: relay URLs (``udp://``, ``ws://``, ``wss://``;
    docs/relay.md). Construct it directly, with :meth:`STTNode.ticket` on a running node, or
    with :meth:`parse` from its text (``str(ticket)``). Every value is checked on construction:
    :class:`TicketError` for a bad one."""

    node_id: bytes
    addresses: tuple[tuple[str, int], ...] = ()
    websockets: tuple[str, ...] = ()
    relays: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.node_id, bytes) or len(self.node_id) != NODE_ID_BYTES:
            raise TicketError(f"node_id: {NODE_ID_BYTES} bytes")
        addresses = []
        for i, entry in enumerate(_entries(self.addresses, "addresses")):
            pair = _entries(entry, f"addresses[{i}]")
            if len(pair) != 2:
                raise TicketError(f"addresses[{i}]: a (host, port) pair")
            where = f"addresses[{i}]"
            addresses.append((_check_host(pair[0], where), _check_port(pair[1], where)))
        websockets = [
            _check_url(url, ("ws", "wss"), f"websockets[{i}]")
            for i, url in enumerate(_entries(self.websockets, "websockets"))
        ]
        relays = [
            _check_url(url, ("udp", "ws", "wss"), f"relays[{i}]")
            for i, url in enumerate(_entries(self.relays, "relays"))
        ]
        object.__setattr__(self, "addresses", tuple(addresses))
        object.__setattr__(self, "websockets", tuple(websockets))
        object.__setattr__(self, "relays", tuple(relays))

    def __str__(self) -> str:
        packed = msgpack.packb(
            [
                TICKET_VERSION,
                self.node_id,
                [list(pair) for pair in self.addresses],
                list(self.websockets),
                list(self.relays),
            ],
            use_bin_type=True,
        )
        return TICKET_PREFIX + base64.b32encode(packed).decode("ascii").rstrip("=").lower()

    def __repr__(self) -> str:
        return (
            f"NodeTicket(node_id={self.node_id.hex()[:16]}…, addresses={list(self.addresses)}, "
            f"websockets={list(self.websockets)}, relays={list(self.relays)})"
        )

    @property
    def is_empty(self) -> bool:
        """True when the ticket lists nowhere to dial."""
        return not (self.addresses or self.websockets or self.relays)

    @classmethod
    def parse(cls, text: str) -> NodeTicket:
        """The ticket written as ``text`` (surrounding white space ignored). Raises
        :class:`TicketError` for anything that is not a well-formed ticket of this version, and
        TypeError for a non-str."""
        if not isinstance(text, str):
            raise TypeError(f"a ticket is a str, not {type(text).__name__}")
        text = text.strip()
        if len(text) > TICKET_MAX_CHARS:
            raise TicketError(f"a ticket has at most {TICKET_MAX_CHARS} characters")
        if not text.lower().startswith(TICKET_PREFIX):
            raise TicketError(f"not a node ticket: it does not start with {TICKET_PREFIX!r}")
        body = text[len(TICKET_PREFIX) :].upper()
        try:
            packed = base64.b32decode(body + "=" * (-len(body) % 8))
        except (binascii.Error, ValueError):
            raise TicketError("not a node ticket: not base32 after the prefix") from None
        try:
            fields = msgpack.unpackb(
                packed,
                raw=False,
                strict_map_key=True,
                max_bin_len=NODE_ID_BYTES,
                max_str_len=TICKET_MAX_NAME,
                max_array_len=TICKET_MAX_ENTRIES,
                max_map_len=0,
                max_ext_len=0,
            )
        except ValueError as exc:
            for limit, why in _LIMITS.items():  # msgpack says "17 exceeds max_array_len(16)"
                if f"exceeds {limit}(" in str(exc):
                    raise TicketError(f"not a node ticket: {why}") from None
            raise TicketError("not a node ticket: truncated or malformed") from None
        except (msgpack.UnpackException, TypeError):
            raise TicketError("not a node ticket: truncated or malformed") from None
        if not isinstance(fields, list) or not fields:
            raise TicketError("not a node ticket: not a list")
        if fields[0] != TICKET_VERSION or isinstance(fields[0], bool):
            raise TicketError(
                f"a ticket of format version {fields[0]!r}; this version reads {TICKET_VERSION}"
            )
        if len(fields) != 5:
            raise TicketError(f"a version {TICKET_VERSION} ticket has 5 fields, not {len(fields)}")
        _, node_id, addresses, websockets, relays = fields
        if not isinstance(node_id, bytes):
            raise TicketError("node_id: 32 bytes")
        return cls(
            node_id,
            tuple(
                tuple(pair) if isinstance(pair, list) else pair
                for pair in _entries(addresses, "addresses")
            ),
            tuple(_entries(websockets, "websockets")),
            tuple(_entries(relays, "relays")),
        )

    @classmethod
    def coerce(cls, value: NodeTicket | str) -> NodeTicket:
        """``value`` if it is a ticket, else :meth:`parse` of it."""
        return value if isinstance(value, NodeTicket) else cls.parse(value)


def looks_like_ticket(value: object) -> TypeGuard[NodeTicket | str]:
    """Whether ``value`` is a ticket or text that claims to be one (a node id in hex does not:
    hex digits never spell the prefix)."""
    return isinstance(value, NodeTicket) or (
        isinstance(value, str) and value.strip().lower().startswith(TICKET_PREFIX)
    )


def unique(items: Iterable[Any]) -> list[Any]:
    """``items`` without repeats, in order."""
    return list(dict.fromkeys(items))
