"""The relay's asyncio adapter: :class:`RelayServer` on UDP and WebSocket (§17).

One :class:`~seigr_stt.relay.core.RelayCore` serves both transports; this module only moves
bytes and time. UDP uses the node's own :class:`~seigr_stt.aio.udp.UDPTransport`; WebSocket
the node's :class:`~seigr_stt.aio.websocket.WebSocketServer` (path ``/stt``, compression off,
bounded messages, pending-connection limits per host and in total, a bounded send queue per
connection). A WebSocket connection that has not registered within
``websocket_handshake_timeout_s`` is closed; so is one whose registration expired.

Embedding::

    async with RelayServer(host="0.0.0.0", udp_port=3478, ws_port=8443) as relay:
        print(relay.udp_url, relay.ws_url)
        await relay.serve_forever()

Behind a TLS-terminating reverse proxy the relay serves plain ``ws://`` and nodes dial
``wss://``; the relay never needs TLS itself (docs/relay.md).
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl as ssl_module
import time
from dataclasses import dataclass
from types import MappingProxyType, TracebackType

from seigr_stt.aio.udp import UDPTransport
from seigr_stt.aio.websocket import WebSocketServer, WSLink
from seigr_stt.config import TransportConfig
from seigr_stt.constants import RELAY_FORWARD_HEADER_SIZE, WEBSOCKET_PATH
from seigr_stt.core import crypto
from seigr_stt.core.link import Link, TransportKind
from seigr_stt.exceptions import ProtocolError
from seigr_stt.relay.core import RelayConfig, RelayCore

__all__ = ["RelayServer", "RelayStats"]

_log = logging.getLogger("seigr_stt.relay")


@dataclass(frozen=True, slots=True)
class RelayStats:
    """The relay's figures at one moment."""

    registrations: int
    registrations_accepted: int
    packets_forwarded: int
    bytes_forwarded: int
    websocket_connections: int
    sources_tracked: int
    drops: MappingProxyType[str, int]


class RelayServer:
    """A relay listening on UDP ``host:udp_port`` and/or WebSocket ``host:ws_port`` (None
    disables a transport; 0 picks a free port). ``static_private`` is the relay's X25519 key
    (32 bytes; random by default: nodes do not pin it, §17.3). Nothing is bound until
    :meth:`start` (or ``async with``)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        udp_port: int | None = 0,
        ws_port: int | None = None,
        *,
        config: RelayConfig | None = None,
        static_private: bytes | None = None,
        ssl: ssl_module.SSLContext | None = None,
        transport_config: TransportConfig | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        if udp_port is None and ws_port is None:
            raise ValueError("a relay needs udp_port or ws_port")
        for name, value in (("udp_port", udp_port), ("ws_port", ws_port)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535
            ):
                raise ValueError(f"{name} must be None or an int within 0..65535, not {value!r}")
        if static_private is not None and len(static_private) != 32:
            raise ValueError("static_private must be 32 bytes")
        self.host = host
        self.udp_port = udp_port
        self.ws_port = ws_port
        self.config = config or RelayConfig()
        packet_max = self.config.max_record_size + RELAY_FORWARD_HEADER_SIZE
        self._transport_config = transport_config or TransportConfig(
            websocket_max_record_size=packet_max,
            websocket_max_pending=1024,
            websocket_max_pending_per_source=64,
            websocket_send_queue_bytes=256 * packet_max,
        )
        self.core = RelayCore(static_private or os.urandom(32), os.urandom, self.config)
        self._ssl = ssl
        self.logger = logger or _log
        self._udp: UDPTransport | None = None
        self._udp_link = Link(TransportKind.UDP, packet_max)
        self._ws: WebSocketServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._stopped = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()  # closing connections (kept referenced)

    def __repr__(self) -> str:
        return f"RelayServer(udp={self.udp_url}, ws={self.ws_url}, registrations={len(self.core)})"

    # -- addresses ------------------------------------------------------------------------------
    @property
    def static_public(self) -> bytes:
        """The relay's public key (sent in every CHALLENGE)."""
        return self.core.static_public

    @property
    def udp_address(self) -> tuple[str, int] | None:
        """The bound UDP ``(host, port)``, once started."""
        return self._udp.address if self._udp is not None else None

    @property
    def udp_url(self) -> str | None:
        """``udp://host:port`` once started (what nodes pass in ``relays=``)."""
        address = self.udp_address
        return None if address is None else f"udp://{_hostport(*address)}"

    @property
    def ws_url(self) -> str | None:
        """``ws://host:port/stt`` (``wss://`` with ``ssl``) once started."""
        if self._ws is None:
            return None
        scheme = "wss" if self._ssl is not None else "ws"
        return f"{scheme}://{_hostport(*self._ws.address)}{WEBSOCKET_PATH}"

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        """Bind the transports; raises OSError when a port is busy."""
        if self._loop is not None:
            raise ProtocolError("relay already started")
        self._loop = asyncio.get_running_loop()
        try:
            if self.udp_port is not None:
                self._udp = await UDPTransport.bind(
                    self.host, self.udp_port, self._on_udp, self._transmit
                )
            if self.ws_port is not None:
                self._ws = WebSocketServer(
                    self._on_ws, self._on_ws_link, self._on_ws_closed, self._transport_config
                )
                await self._ws.start(self.host, self.ws_port, self._ssl)
        except BaseException:
            await self.stop()
            raise
        self.logger.info(
            "relay %s… serving udp %s, websocket %s",
            crypto.hash_(self.static_public).hex()[:16],
            self.udp_url,
            self.ws_url,
        )

    async def stop(self) -> None:
        """Close every connection and the sockets (idempotent)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._ws is not None:
            await self._ws.close()
            self._ws = None
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        self._stopped.set()

    async def serve_forever(self) -> None:
        """Wait until :meth:`stop` is called (from another task or a signal handler)."""
        await self._stopped.wait()

    async def __aenter__(self) -> RelayServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def stats(self) -> RelayStats:
        """The relay's figures now."""
        core = self.core
        return RelayStats(
            registrations=len(core),
            registrations_accepted=core.registrations_accepted,
            packets_forwarded=core.packets_forwarded,
            bytes_forwarded=core.bytes_forwarded,
            websocket_connections=len(self._ws.links) if self._ws is not None else 0,
            sources_tracked=core.sources_tracked,
            drops=MappingProxyType(dict(core.drops)),
        )

    # -- the drain point ------------------------------------------------------------------------
    def _transmit(self) -> None:
        core = self.core
        udp = self._udp
        for packet, addr in core.datagrams_to_send():
            if isinstance(addr, WSLink):
                if not addr.established and core.registered_at(addr):
                    addr.mark_established()
                    addr.set_timer(None)
                addr.send(packet)
            elif udp is not None and isinstance(addr, tuple):
                udp.sendto(packet, addr)
        self._rearm(core.get_timer())

    def _rearm(self, at: float | None) -> None:
        if at == self._timer_at and self._timer is not None:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = at
        if at is not None and self._loop is not None:
            self._timer = self._loop.call_later(max(0.0, at - time.monotonic()), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        for addr in self.core.handle_timer(time.monotonic()):
            if isinstance(addr, WSLink):
                self._close_soon(addr)
        self._transmit()

    # -- entries --------------------------------------------------------------------------------
    def _on_udp(self, data: bytes, addr: tuple[str, int]) -> None:
        self.core.receive(data, addr, time.monotonic(), self._udp_link)

    def _on_ws(self, data: bytes, link: WSLink) -> None:
        self.core.receive(data, link, time.monotonic(), link.link)
        self._transmit()

    def _on_ws_link(self, link: WSLink) -> None:
        assert self._loop is not None
        delay = self._transport_config.websocket_handshake_timeout_s
        link.set_timer(self._loop.call_later(delay, self._unregistered_deadline, link))

    def _unregistered_deadline(self, link: WSLink) -> None:
        if not self.core.registered_at(link):
            self._close_soon(link)

    def _close_soon(self, link: WSLink) -> None:
        assert self._loop is not None
        task = self._loop.create_task(link.aclose(1008, "timeout"))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_ws_closed(self, link: WSLink) -> None:
        self.core.forget_address(link)


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
