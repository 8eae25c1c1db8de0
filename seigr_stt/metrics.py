"""Prometheus exporter for a running :class:`~seigr_stt.aio.node.STTNode` (optional extra).

Install with ``pip install -e '.[metrics]'`` from a checkout (``prometheus-client``). Everything
is read at scrape time from :meth:`STTNode.get_stats` and each live session's
:meth:`STTSession.get_statistics`, so the node itself keeps no Prometheus state::

    server = serve_metrics(node, 9100)        # http://127.0.0.1:9100/metrics
    ...
    server.close()

``stt node --metrics-port N`` does the same. Metric names start with ``stt_``. The node-wide
series form a bounded set whatever the number of sessions: counters, sessions by state, a
histogram of handshake durations by role (``stt_handshake_duration_seconds``) and a gauge
histogram of the live sessions' RTTs (``stt_sessions_rtt_seconds``).

Per-session series (22 per session: ``stt_session_*``) are off by default, since a node with
10,000 sessions would export 220,000 of them; ``per_session=True`` turns them on. They carry the
labels ``session`` (first 8 hex digits of the session id, as in log lines), ``peer`` (first 16 hex
digits of the peer's node id) and ``transport``. No key or seed is ever exported.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import start_http_server
from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from seigr_stt import __version__
from seigr_stt.constants import SessionState
from seigr_stt.core.stats import Histogram

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from seigr_stt import STTNode

__all__ = ["MetricsServer", "NodeCollector", "serve_metrics"]

#: How long a scrape from the HTTP thread waits for the node's event loop to take a snapshot.
SNAPSHOT_TIMEOUT_S = 5.0

_SESSION_LABELS = ("session", "peer", "transport")

#: Upper bounds (seconds) of the buckets of ``stt_sessions_rtt_seconds``.
RTT_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

# (statistics key, metric name without _total, help) of per-session counters
_SESSION_COUNTERS = (
    ("bytes_sent", "stt_session_bytes_sent", "Application payload bytes sent."),
    ("bytes_received", "stt_session_bytes_received", "Application payload bytes received."),
    ("packets_sent", "stt_session_packets_sent", "Records sent."),
    ("packets_received", "stt_session_packets_received", "Records received."),
    ("messages_sent", "stt_session_messages_sent", "Messages sent."),
    ("messages_received", "stt_session_messages_received", "Messages received."),
    ("packets_lost", "stt_session_packets_lost", "Records declared lost."),
    ("retransmitted_bytes", "stt_session_retransmitted_bytes", "Bytes sent again after a loss."),
    ("send_errors", "stt_session_send_errors", "Send errors."),
    ("receive_errors", "stt_session_receive_errors", "Receive errors."),
    ("replays_dropped", "stt_session_replays_dropped", "Records dropped as replays."),
    ("auth_failures", "stt_session_auth_failures", "Records failing authentication."),
    ("epoch_drops", "stt_session_epoch_drops", "Records dropped for an unknown key epoch."),
    ("streams_opened", "stt_session_streams_opened", "Byte streams opened."),
    ("datagrams_sent", "stt_session_datagrams_sent", "Unreliable datagrams sent."),
    ("datagrams_received", "stt_session_datagrams_received", "Unreliable datagrams received."),
)

# (statistics key, metric name, help) of per-session gauges; a None value is left out
_SESSION_GAUGES = (
    (
        "key_version",
        "stt_session_key_version",
        "Key epoch: 0 after the handshake, +1 per rotation.",
    ),
    ("rtt", "stt_session_rtt_seconds", "Smoothed round-trip time (once measured)."),
    ("uptime", "stt_session_uptime_seconds", "Seconds since the session was established."),
    (
        "state",
        "stt_session_state",
        "Session state: " + ", ".join(f"{int(s)} {s.name.lower()}" for s in SessionState) + ".",
    ),
    ("cwnd", "stt_session_cwnd_bytes", "Congestion window."),
    ("bytes_in_flight", "stt_session_bytes_in_flight", "Bytes sent and not yet acknowledged."),
)


def _short(hex_text: str, n: int) -> str:
    return hex_text[:n]


def take_snapshot(node: STTNode) -> dict[str, Any]:
    """The node's statistics and each live session's, read on the node's event loop thread."""
    sessions = [
        session.get_statistics()
        for state in SessionState
        for session in node.session_manager.get_sessions_by_state(state)
    ]
    counters = node.endpoint.counters
    handshake_s = {
        "initiator": counters.initiator_handshake_s.copy(),
        "responder": counters.responder_handshake_s.copy(),
    }
    return {"node": node.get_stats(), "sessions": sessions, "handshake_s": handshake_s}


class NodeCollector(Collector):
    """A ``prometheus_client`` collector reading one node's figures at each scrape.

    Register it in any registry (``registry.register(NodeCollector(node))``); with
    ``per_session=True`` it adds each live session's series (see the module docstring). A
    scrape from another thread (the HTTP server's) takes its snapshot on the node's event loop,
    so figures are consistent and never read while the loop mutates them.
    """

    def __init__(self, node: STTNode, *, per_session: bool = False) -> None:
        self._node = node
        #: Export the ``stt_session_*`` series of every live session (off: a bounded set).
        self.per_session = per_session

    def _snapshot(self) -> dict[str, Any]:
        loop = self._node.loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is None or loop.is_closed() or running is loop or not loop.is_running():
            return take_snapshot(self._node)
        future: concurrent.futures.Future[dict[str, Any]] = concurrent.futures.Future()

        def snap() -> None:
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(take_snapshot(self._node))
                except Exception as exc:  # pragma: no cover - get_stats does not raise
                    future.set_exception(exc)

        loop.call_soon_threadsafe(snap)
        try:
            return future.result(SNAPSHOT_TIMEOUT_S)
        finally:
            future.cancel()

    def describe(self) -> Iterator[Metric]:
        """What this collector exports (names, types and help), without reading the node."""
        return iter(())  # collected at scrape time only (no registration-time scrape)

    def collect(self) -> Iterator[Metric]:
        """The node's figures now, as Prometheus metric families."""
        snapshot = self._snapshot()
        yield from self._node_metrics(snapshot["node"])
        yield self._handshake_histogram(snapshot["handshake_s"])
        yield self._rtt_histogram(snapshot["sessions"])
        if self.per_session:
            yield from self._session_metrics(snapshot["sessions"])

    # -- per node -----------------------------------------------------------------------------
    @staticmethod
    def _node_metrics(stats: dict[str, Any]) -> Iterator[Metric]:
        transports = stats["transports"]
        udp_address = transports["udp"]["address"]
        info = GaugeMetricFamily(
            "stt_node_info",
            "The node: id (first 16 hex digits), addresses, server mode, library version.",
            labels=["node_id", "udp", "websocket", "server_mode", "version"],
        )
        info.add_metric(
            [
                _short(stats["node_id"], 16),
                f"{udp_address[0]}:{udp_address[1]}" if udp_address else "",
                transports["websocket"]["url"] or "",
                str(bool(stats["server_mode"])).lower(),
                __version__,
            ],
            1,
        )
        yield info
        yield GaugeMetricFamily(
            "stt_node_running", "1 while the node runs.", value=1 if stats["running"] else 0
        )

        sessions = stats["sessions"]
        by_state = GaugeMetricFamily("stt_sessions", "Live sessions by state.", labels=["state"])
        for state in ("handshake", "active", "closing"):
            by_state.add_metric([state], sessions[state])
        yield by_state
        yield CounterMetricFamily(
            "stt_sessions_created", "Sessions established since start.", value=sessions["total"]
        )
        yield CounterMetricFamily(
            "stt_sessions_closed", "Sessions closed since start.", value=sessions["closed"]
        )
        yield GaugeMetricFamily(
            "stt_sessions_max", "Live sessions allowed at once.", value=sessions["max_sessions"]
        )

        handshakes = stats["handshakes"]
        started = CounterMetricFamily(
            "stt_handshakes_started",
            "Handshakes started: as initiator (connect), as responder (an INIT answered).",
            labels=["role"],
        )
        started.add_metric(["initiator"], handshakes["started"])
        started.add_metric(["responder"], handshakes.get("accepted", 0))
        yield started
        yield CounterMetricFamily(
            "stt_handshakes_failed", "Handshakes that failed.", value=handshakes["failed"]
        )
        yield GaugeMetricFamily(
            "stt_handshakes_in_flight", "Handshakes in progress.", value=handshakes["in_flight"]
        )

        for key, help_text in (
            ("packets_sent", "Packets sent (both transports)."),
            ("packets_received", "Packets received (both transports)."),
            ("bytes_sent", "Bytes sent on the wire (both transports)."),
            ("bytes_received", "Bytes received on the wire (both transports)."),
        ):
            yield CounterMetricFamily(f"stt_{key}", help_text, value=stats[key])

        drops = CounterMetricFamily(
            "stt_drops", "Packets dropped before reaching a session, by reason.", labels=["reason"]
        )
        for reason, count in sorted(stats["drops"].items()):
            drops.add_metric([str(reason)], count)
        yield drops

        udp = transports["udp"]
        for key, help_text in (
            ("datagrams_sent", "UDP datagrams sent."),
            ("datagrams_received", "UDP datagrams received."),
            ("send_errors", "UDP send errors."),
            ("send_dropped", "UDP datagrams dropped because the send queue was full."),
            ("offloaded_sends", "UDP sends that carried several datagrams (segmentation offload)."),
            ("coalesced_reads", "UDP reads that returned several datagrams (receive offload)."),
        ):
            yield CounterMetricFamily(f"stt_udp_{key}", help_text, value=udp[key])
        ws = transports["websocket"]
        yield GaugeMetricFamily(
            "stt_websocket_connections", "Open WebSocket connections.", value=ws["connections"]
        )
        yield GaugeMetricFamily(
            "stt_websocket_pending",
            "WebSocket connections without an established session yet.",
            value=ws["pending"],
        )
        yield GaugeMetricFamily(
            "stt_websocket_send_queued_bytes",
            "Bytes queued for WebSocket peers now.",
            value=ws["send_queued_bytes"],
        )
        for key, help_text in (
            ("refused_connections", "WebSocket connections refused beyond the pending limits."),
            ("closed_handshake_timeout", "WebSocket connections closed for no handshake in time."),
            ("closed_idle", "WebSocket connections closed for carrying nothing."),
            ("text_frames_refused", "WebSocket connections closed for a text message."),
            ("oversized_refused", "WebSocket connections closed for an oversized message."),
            ("send_dropped", "Records dropped because a WebSocket send queue was full."),
        ):
            yield CounterMetricFamily(f"stt_websocket_{key}", help_text, value=ws[key])
        yield GaugeMetricFamily(
            "stt_receive_queue",
            "Messages received and not yet taken by the application.",
            value=stats["receive_queue"],
        )

    @staticmethod
    def _handshake_histogram(by_role: dict[str, Histogram]) -> Metric:
        family = HistogramMetricFamily(
            "stt_handshake_duration_seconds",
            "Completed handshakes: first INIT sent to RESPONSE received (initiator), first "
            "RESPONSE sent to FINAL received (responder), retransmissions included.",
            labels=["role"],
        )
        for role, histogram in by_role.items():
            buckets: list[tuple[str, float]] = []
            cumulative = 0
            for bound, count in zip(histogram.bounds, histogram.counts, strict=False):
                cumulative += count
                buckets.append((repr(bound), cumulative))
            buckets.append(("+Inf", histogram.count))
            family.add_metric([role], buckets, sum_value=histogram.total)
        return family

    @staticmethod
    def _rtt_histogram(sessions: list[dict[str, Any]]) -> Metric:
        rtts = sorted(s["rtt"] for s in sessions if s.get("rtt") is not None)
        buckets: list[tuple[str, float]] = []
        index = 0
        for bound in RTT_BUCKETS_S:
            while index < len(rtts) and rtts[index] <= bound:
                index += 1
            buckets.append((repr(bound), index))
        buckets.append(("+Inf", len(rtts)))
        return GaugeHistogramMetricFamily(
            "stt_sessions_rtt_seconds",
            "Smoothed RTT of the live sessions that measured one, now (a gauge histogram).",
            buckets=buckets,
            gsum_value=sum(rtts),
        )

    # -- per session --------------------------------------------------------------------------
    @staticmethod
    def _session_metrics(sessions: list[dict[str, Any]]) -> Iterator[Metric]:
        rows = [
            (
                [
                    _short(s["session_id"], 8),
                    _short(s["peer_node_id"], 16),
                    s["transport"] or "manual",
                ],
                s,
            )
            for s in sessions
        ]
        for key, name, help_text in _SESSION_COUNTERS:
            counter = CounterMetricFamily(name, help_text, labels=_SESSION_LABELS)
            for labels, s in rows:
                counter.add_metric(labels, s[key])
            yield counter
        for key, name, help_text in _SESSION_GAUGES:
            gauge = GaugeMetricFamily(name, help_text, labels=_SESSION_LABELS)
            for labels, s in rows:
                if s[key] is not None:
                    gauge.add_metric(labels, s[key])
            yield gauge


class MetricsServer:
    """The HTTP exporter :func:`serve_metrics` started; :meth:`close` stops it."""

    def __init__(
        self, server: WSGIServer, thread: threading.Thread, registry: CollectorRegistry
    ) -> None:
        self._server = server
        self._thread = thread
        self.registry = registry

    @property
    def address(self) -> tuple[str, int]:
        """The ``(host, port)`` the exporter is bound to."""
        host, port = self._server.server_address[:2]
        return (str(host), int(port))

    @property
    def url(self) -> str:
        """``http://host:port/metrics``."""
        host, port = self.address
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}/metrics"

    def __repr__(self) -> str:
        return f"MetricsServer({self.url})"

    def close(self) -> None:
        """Stop serving and release the port; idempotent."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(SNAPSHOT_TIMEOUT_S)
        self._server.server_close()


def serve_metrics(
    node: STTNode,
    port: int,
    host: str = "127.0.0.1",
    *,
    process_metrics: bool = True,
    per_session: bool = False,
) -> MetricsServer:
    """Serve ``node``'s figures in the Prometheus text format on ``http://host:port/metrics``.

    ``port=0`` picks a free port (see :attr:`MetricsServer.address`). The server runs in a
    daemon thread with its own registry, so several nodes in one process each get their own
    exporter; ``process_metrics`` adds the standard ``process_*``/``python_*`` series;
    ``per_session`` adds 22 series per live session (off by default: see the module docstring).
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodeCollector(node, per_session=per_session))
    if process_metrics:
        from prometheus_client import GC_COLLECTOR, PLATFORM_COLLECTOR, PROCESS_COLLECTOR

        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            registry.register(collector)
    server, thread = start_http_server(port, addr=host, registry=registry)
    return MetricsServer(server, thread, registry)
