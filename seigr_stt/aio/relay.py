"""A node's links to relays (§17): register, renew, and carry sessions by node id.

A :class:`RelayLink` is one relay as the node uses it: a WebSocket connection of its own
(``ws://`` / ``wss://``), or the node's UDP socket with the relay's address (``udp://``, so the
address the relay observes is the one a direct path would use). It registers this node under
its node id (HELLO, CHALLENGE, REGISTER, REGISTERED), renews the registration before it
expires, and is a core :class:`~seigr_stt.core.link.Link` of kind ``relay`` whose addresses are
:class:`~seigr_stt.core.link.RelayAddress` (the relay and a peer's node id). Outgoing records
go out as SEND; every DELIVER goes to the endpoint as a packet from the sender's node id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl as ssl_module
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from seigr_stt.aio.udp import UDPTransport
from seigr_stt.aio.websocket import WSLink, open_client_link
from seigr_stt.constants import (
    NODE_ID_BYTES,
    RELAY_FORWARD_HEADER_SIZE,
    RELAY_MAX_RECORD_SIZE,
    RELAY_PROTOCOL_VERSION,
    RELAY_REGISTER_RETRY_S,
    RELAY_REGISTER_TIMEOUT_S,
    RELAY_RENEW_FRACTION,
    WEBSOCKET_PATH,
    RelayPacketType,
    RelayRefusal,
)
from seigr_stt.core.identity import NodeIdentity
from seigr_stt.core.link import Link, RelayAddress, TransportKind
from seigr_stt.exceptions import ConfigError, RelayError
from seigr_stt.relay.client import Registrar
from seigr_stt.relay.wire import RelayWireError, parse_unreachable

__all__ = ["RelayLink", "normalize_relay_url"]

_log = logging.getLogger("seigr_stt.relay")

#: Receives one relayed STT packet: ``(packet, address, link)``; the caller drains.
Deliver = Callable[[bytes, RelayAddress, Link], None]


def normalize_relay_url(url: object) -> str:
    """``url`` checked and in its one spelling: ``udp://host:port``, or ``ws(s)://host:port/path``
    (path ``/stt`` when none is given). TypeError for a non-str, ConfigError otherwise."""
    if not isinstance(url, str):
        raise TypeError(f"a relay URL must be a str, not {type(url).__name__}")
    parts = urlsplit(url)
    if parts.scheme not in ("udp", "ws", "wss"):
        raise ConfigError(f"a relay URL starts with udp://, ws:// or wss://, not {url!r}")
    try:
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"bad port in relay URL {url!r}") from exc
    if not parts.hostname or (parts.scheme == "udp" and port is None):
        raise ConfigError(f"a relay URL needs a host (and a port for udp://): {url!r}")
    if parts.scheme == "udp":
        return f"udp://{parts.netloc}"
    return f"{parts.scheme}://{parts.netloc}{parts.path or WEBSOCKET_PATH}"


class RelayLink:
    """One relay as this node uses it; see the module docstring. ``register()`` before use."""

    def __init__(
        self,
        url: str,
        identity: NodeIdentity,
        deliver: Deliver,
        drain: Callable[[], None],
        *,
        udp: UDPTransport | None = None,
        ssl: ssl_module.SSLContext | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.url = normalize_relay_url(url)
        self.kind = "udp" if self.url.startswith("udp://") else "websocket"
        self._identity = identity
        self._deliver = deliver
        self._drain = drain
        self._udp = udp
        self._ssl = ssl
        self.logger = logger or _log
        self._registrar = Registrar(identity, os.urandom)
        self._ws: WSLink | None = None
        self._udp_addr: tuple[str, int] | None = None
        self._answer: asyncio.Future[bytes] | None = None
        self._renew_task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.closed = False
        #: The link sessions through this relay run on (kind ``relay``), once registered.
        self.link: Link | None = None
        #: Our source address as the relay observed it over UDP (for hole punching), or None.
        self.observed: tuple[str, int] | None = None
        #: When the registration expires (time.monotonic()), or None when not registered.
        self.expires_at: float | None = None
        #: Peers the relay said are not registered there, and when (time.monotonic()).
        self.unreachable: dict[bytes, float] = {}
        #: Relayed packets dropped here: malformed, or sent while the link was down.
        self.dropped = 0

    def __repr__(self) -> str:
        return f"RelayLink({self.url}, registered={self.registered})"

    @property
    def registered(self) -> bool:
        """Whether the registration holds now."""
        return self.expires_at is not None and time.monotonic() < self.expires_at

    @property
    def udp_address(self) -> tuple[str, int] | None:
        """The relay's resolved UDP address (``udp://`` relays), once registering began."""
        return self._udp_addr

    # -- registering ----------------------------------------------------------------------------
    async def register(self, timeout: float = RELAY_REGISTER_TIMEOUT_S) -> None:
        """Register (or renew) this node at the relay; raises :class:`RelayError` when the
        relay refuses or does not answer within ``timeout`` seconds. Starts renewing."""
        async with self._lock:
            try:
                async with asyncio.timeout(timeout):
                    await self._register_once()
            except TimeoutError:
                raise RelayError(
                    f"relay {self.url} did not answer the registration within {timeout:g} s"
                ) from None
        if self._renew_task is None:
            self._renew_task = asyncio.get_running_loop().create_task(self._renew_loop())

    async def open(self) -> None:
        """Resolve the relay's UDP address, or open the WebSocket (RelayError if not)."""
        if self.kind == "udp":
            if self._udp_addr is None:
                assert self._udp is not None, "a udp:// relay needs the node's UDP socket"
                parts = urlsplit(self.url)
                assert parts.hostname is not None
                assert parts.port is not None
                try:
                    self._udp_addr = await self._udp.resolve(parts.hostname, parts.port)
                except OSError as exc:
                    raise RelayError(f"cannot resolve relay {self.url}: {exc}") from exc
            return
        if self._ws is None or self._ws.closed:
            try:
                self._ws, _ = await open_client_link(
                    self.url,
                    self._on_ws_packet,
                    self._on_ws_closed,
                    max_size=RELAY_MAX_RECORD_SIZE * 64,
                    ssl=self._ssl,
                    open_timeout=RELAY_REGISTER_TIMEOUT_S,
                )
            except Exception as exc:  # OSError, websockets' InvalidURI / InvalidHandshake
                raise RelayError(f"cannot open a WebSocket to relay {self.url}: {exc}") from exc

    async def _exchange(self, packet: bytes) -> bytes:
        """Send ``packet`` until an answer for this attempt comes (UDP retries)."""
        loop = asyncio.get_running_loop()
        while True:
            self._answer = loop.create_future()
            self._send_raw(packet)
            try:
                retry = RELAY_REGISTER_RETRY_S if self.kind == "udp" else None
                async with asyncio.timeout(retry):
                    return await self._answer
            except TimeoutError:
                continue
            finally:
                self._answer = None

    async def _register_once(self) -> None:
        await self.open()
        registrar = self._registrar
        hello = registrar.hello()
        while True:
            answer = await self._exchange(hello)
            register = registrar.on_challenge(answer)
            if register is not None:
                break
        while True:
            answer = await self._exchange(register)
            if answer[1] == RelayPacketType.REFUSED:
                code = registrar.on_refused(answer)
                if code is not None:
                    raise RelayError(f"relay {self.url} refused the registration: {_why(code)}")
                continue
            registered = registrar.on_registered(answer)
            if registered is not None:
                break
        self.observed = registered.observed
        self.expires_at = time.monotonic() + registered.lifetime_s
        self._lifetime_s = float(registered.lifetime_s)
        if self.link is None:
            size = min(registered.max_record, RELAY_MAX_RECORD_SIZE)
            self.link = Link(TransportKind.RELAY, size, peer=self.url)
        self.logger.info(
            "registered at relay %s (observed %s, for %d s)",
            self.url,
            self.observed,
            registered.lifetime_s,
        )

    async def _renew_loop(self) -> None:
        while not self.closed:
            await asyncio.sleep(self._lifetime_s * RELAY_RENEW_FRACTION)
            if self.closed:
                return
            try:
                await self.register()
            except RelayError as exc:
                self.logger.warning("renewing the registration at %s failed: %s", self.url, exc)

    # -- packets --------------------------------------------------------------------------------
    def _send_raw(self, packet: bytes) -> None:
        if self.kind == "udp":
            if self._udp is None or self._udp_addr is None:
                self.dropped += 1
                return
            self._udp.sendto(packet, self._udp_addr)
        elif self._ws is None or self._ws.closed:
            self.dropped += 1
        else:
            self._ws.send(packet)

    async def wait_writable(self) -> None:
        """Return once the WebSocket to the relay has room in its send queue (at once over UDP,
        whose socket the driver waits for)."""
        if self._ws is not None and not self._ws.closed:
            await self._ws.wait_writable()

    def send_to(self, node_id: bytes, packet: bytes) -> None:
        """Send one STT packet to ``node_id`` through the relay (SEND)."""
        self._send_raw(bytes((RELAY_PROTOCOL_VERSION, RelayPacketType.SEND)) + node_id + packet)

    def receive(self, data: bytes) -> None:
        """One relay packet from the relay (the caller drains after the batch)."""
        kind = data[1] if len(data) > 1 else -1
        if kind == RelayPacketType.DELIVER and len(data) > RELAY_FORWARD_HEADER_SIZE:
            if self.link is None:
                self.dropped += 1
                return
            source = bytes(data[2:RELAY_FORWARD_HEADER_SIZE])
            self._deliver(
                bytes(data[RELAY_FORWARD_HEADER_SIZE:]), RelayAddress(self.url, source), self.link
            )
        elif kind in (
            RelayPacketType.CHALLENGE,
            RelayPacketType.REGISTERED,
            RelayPacketType.REFUSED,
        ):
            if self._answer is not None and not self._answer.done():
                self._answer.set_result(bytes(data))
        elif kind == RelayPacketType.UNREACHABLE:
            try:
                node_id = parse_unreachable(data)
            except RelayWireError:
                self.dropped += 1
                return
            self.unreachable[node_id] = time.monotonic()
            while len(self.unreachable) > 1024:
                self.unreachable.pop(next(iter(self.unreachable)))
        else:
            self.dropped += 1

    def _on_ws_packet(self, data: bytes, link: WSLink) -> None:
        self.receive(data)
        self._drain()

    def _on_ws_closed(self, link: WSLink) -> None:
        if link is self._ws:
            self.expires_at = None
            if not self.closed:
                self.logger.info("relay connection %s closed", self.url)

    async def aclose(self) -> None:
        """Stop renewing and close the connection (idempotent)."""
        self.closed = True
        self.expires_at = None
        if self._renew_task is not None:
            self._renew_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renew_task
        if self._ws is not None:
            await self._ws.aclose()


def _why(code: int) -> str:
    reasons: dict[int, str] = {
        RelayRefusal.BAD_PROOF: "the proof of the node's key did not verify",
        RelayRefusal.STALE_COOKIE: "the challenge expired",
        RelayRefusal.RELAY_FULL: "the relay is full",
        RelayRefusal.SOURCE_LIMIT: "too many registrations from this address",
    }
    return reasons.get(code, f"code {code}")


def check_node_id(value: object) -> bytes:
    """A peer's node id: 32 bytes, or 64 hex digits. TypeError / ConfigError otherwise."""
    if isinstance(value, str):
        try:
            value = bytes.fromhex(value)
        except ValueError as exc:
            raise ConfigError("a node id in text is 64 hex digits") from exc
    if not isinstance(value, bytes):
        raise TypeError(f"a node id is bytes or hex text, not {type(value).__name__}")
    if len(value) != NODE_ID_BYTES:
        raise ConfigError(f"a node id is {NODE_ID_BYTES} bytes, not {len(value)}")
    return value
