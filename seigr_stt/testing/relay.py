"""The lossy UDP relay: real datagrams between real nodes, lost, delayed, reordered, duplicated.

Public through :mod:`seigr_stt.testing`, which re-exports every name of ``__all__``.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from seigr_stt.aio.udp import UDPTransport

__all__ = ["Impairment", "RelayStats", "UDPRelay"]

Address = tuple[str, int]


# -- the UDP relay ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Impairment:
    """What the network does to each datagram, independently per direction.

    ``loss`` and ``duplicate`` are probabilities; ``delay_s`` is a fixed one-way delay and
    ``jitter_s`` a uniform extra delay in ``[0, jitter_s)`` (jitter reorders datagrams);
    ``rate_bytes_per_s`` (0 = unlimited) serialises datagrams like a link of that speed, dropping
    those that would wait more than ``queue_s``. ``seed`` makes every run identical.
    """

    loss: float = 0.0
    duplicate: float = 0.0
    delay_s: float = 0.0
    jitter_s: float = 0.0
    rate_bytes_per_s: float = 0.0
    queue_s: float = 0.25
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("loss", "duplicate"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be within [0, 1)")
        for name in ("delay_s", "jitter_s", "rate_bytes_per_s", "queue_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")


@dataclass(slots=True)
class RelayStats:
    """What the relay did, per run."""

    received: int = 0
    forwarded: int = 0
    lost: int = 0
    duplicated: int = 0
    queue_dropped: int = 0


class _Link:
    """One direction of the relay: impairment state and a send function."""

    def __init__(
        self,
        impairment: Impairment,
        rng: random.Random,
        stats: RelayStats,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.impairment = impairment
        self.rng = rng
        self.stats = stats
        self.loop = loop
        self.link_free_at = 0.0

    def carry(self, data: bytes, send: Callable[[bytes], None]) -> None:
        imp = self.impairment
        self.stats.received += 1
        if imp.loss and self.rng.random() < imp.loss:
            self.stats.lost += 1
            return
        copies = 2 if imp.duplicate and self.rng.random() < imp.duplicate else 1
        if copies == 2:
            self.stats.duplicated += 1
        now = self.loop.time()
        for _ in range(copies):
            delay = imp.delay_s + (self.rng.random() * imp.jitter_s if imp.jitter_s else 0.0)
            if imp.rate_bytes_per_s:
                start = max(now, self.link_free_at)
                if start - now > imp.queue_s:
                    self.stats.queue_dropped += 1
                    continue
                self.link_free_at = start + len(data) / imp.rate_bytes_per_s
                delay += self.link_free_at - now
            if delay <= 0:
                self.stats.forwarded += 1
                send(data)
            else:
                self.loop.call_later(delay, self._deliver, data, send)

    def _deliver(self, data: bytes, send: Callable[[bytes], None]) -> None:
        self.stats.forwarded += 1
        send(data)


class UDPRelay:
    """A loopback UDP relay to ``target`` with impairments in both directions.

    Every client address seen on :attr:`address` gets its own upstream socket, so the target sees
    one stable address per client. ``client_to_server`` and ``server_to_client`` may differ; by
    default both use ``impairment`` (with different random streams).
    """

    def __init__(
        self,
        target: Address | None,
        impairment: Impairment | None = None,
        *,
        server_to_client: Impairment | None = None,
    ) -> None:
        if target is None:
            raise ValueError("the relay needs a target address (the node must be started)")
        host = str(target[0])
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError("the relay forwards to loopback addresses only")
        self.target: Address = (host, int(target[1]))
        self.upstream_impairment = impairment or Impairment()
        self.downstream_impairment = server_to_client or self.upstream_impairment
        self.stats_up = RelayStats()
        self.stats_down = RelayStats()
        self._front: UDPTransport | None = None
        self._uplinks: dict[Address, UDPTransport] = {}
        self._connecting: dict[Address, list[bytes]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._up: _Link | None = None
        self._down: _Link | None = None

    @property
    def address(self) -> Address:
        """Where clients should send: the relay's own loopback address."""
        assert self._front is not None
        return self._front.address

    async def start(self) -> None:
        """Bind the relay's sockets on 127.0.0.1 and start forwarding."""
        self._loop = asyncio.get_running_loop()
        seed = self.upstream_impairment.seed
        self._up = _Link(
            self.upstream_impairment, random.Random(f"{seed}:up"), self.stats_up, self._loop
        )
        self._down = _Link(
            self.downstream_impairment,
            random.Random(f"{self.downstream_impairment.seed}:down"),
            self.stats_down,
            self._loop,
        )
        self._front = await UDPTransport.bind("127.0.0.1", 0, self._from_client)

    def _from_client(self, data: bytes, client: Address) -> None:
        uplink = self._uplinks.get(client)
        if uplink is not None:
            self._forward_up(uplink, data)
            return
        waiting = self._connecting.get(client)
        if waiting is not None:
            waiting.append(data)
            return
        self._connecting[client] = [data]
        assert self._loop is not None
        task = self._loop.create_task(self._open_uplink(client))
        task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)

    def _forward_up(self, uplink: UDPTransport, data: bytes) -> None:
        assert self._up is not None
        if not uplink.closed:
            self._up.carry(data, lambda d: uplink.sendto(d, self.target))

    async def _open_uplink(self, client: Address) -> None:
        uplink = await UDPTransport.bind(
            "127.0.0.1", 0, lambda data, _addr: self._from_server(client, data)
        )
        self._uplinks[client] = uplink
        for data in self._connecting.pop(client, []):
            self._forward_up(uplink, data)

    def _from_server(self, client: Address, data: bytes) -> None:
        assert self._down is not None
        front = self._front
        if front is not None and not front.closed:
            self._down.carry(data, lambda d: front.sendto(d, client))

    def close(self) -> None:
        """Close every socket (datagrams still delayed in the relay are dropped)."""
        if self._front is not None:
            self._front.close()
        for uplink in self._uplinks.values():
            uplink.close()
        self._uplinks.clear()

    async def __aenter__(self) -> UDPRelay:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
