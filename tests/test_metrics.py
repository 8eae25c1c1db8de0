"""The Prometheus exporter (``seigr_stt.metrics``), scraped over HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
import urllib.error
import urllib.request
from collections.abc import AsyncIterator

import pytest

pytest.importorskip("prometheus_client", reason="the metrics extra (prometheus-client) is needed")

from prometheus_client import generate_latest

from seigr_stt import SessionState, STTNode, generate_seed
from seigr_stt.cli.stats import parse_metrics
from seigr_stt.metrics import MetricsServer, NodeCollector, serve_metrics
from tests.timing import SECOND

Samples = dict[str, list[tuple[dict[str, str], float]]]

_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _get(url: str) -> str:
    with _DIRECT.open(url, timeout=10 * SECOND) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        body: bytes = response.read()
    return body.decode()


async def scrape(server: MetricsServer) -> Samples:
    """GET /metrics from another thread, as Prometheus would (the loop keeps running)."""
    return parse_metrics(await asyncio.to_thread(_get, server.url))


def value(samples: Samples, name: str, **labels: str) -> float:
    matches = [
        v for l_, v in samples.get(name, []) if all(l_.get(k) == x for k, x in labels.items())
    ]
    assert len(matches) == 1, (name, labels, samples.get(name))
    return matches[0]


@pytest.fixture
async def nodes() -> AsyncIterator[tuple[STTNode, STTNode]]:
    shared = generate_seed()
    server = STTNode(generate_seed(), shared, "127.0.0.1", 0, ws_port=0)
    client = STTNode(generate_seed(), shared, "127.0.0.1", 0)
    await server.start(server_mode=True)
    await client.start()
    yield server, client
    await client.stop()
    await server.stop()


async def test_scrape_shows_node_and_session_figures(nodes: tuple[STTNode, STTNode]) -> None:
    server, client = nodes
    exporter = serve_metrics(server, 0, per_session=True)
    try:
        assert exporter.address[0] == "127.0.0.1"
        assert exporter.url == f"http://127.0.0.1:{exporter.address[1]}/metrics"
        samples = await scrape(exporter)
        info = samples["stt_node_info"][0][0]
        assert info["node_id"] == server.node_id.hex()[:16]
        assert server.udp_address is not None
        assert info["udp"] == "{}:{}".format(*server.udp_address)
        assert info["websocket"] == server.ws_url
        assert info["server_mode"] == "true"
        assert value(samples, "stt_node_running") == 1
        assert value(samples, "stt_sessions", state="active") == 0
        assert "process_cpu_seconds_total" in samples or "python_info" in samples

        assert server.ws_url is not None
        udp = await client.connect_udp(*server.udp_address)
        ws = await client.connect_websocket(server.ws_url)
        await udp.send(b"x" * 5000)
        await ws.send(b"y" * 300, stream_id=2)
        received = 0
        async with asyncio.timeout(10 * SECOND):
            async for _ in server.receive():
                received += 1
                if received == 2:
                    break
        await udp.rotate_key()
        server_udp = server.session_manager.get_session(udp.session_id)
        assert server_udp is not None
        await server_udp.send(b"reply")  # acknowledged by the client: an RTT sample
        async with asyncio.timeout(10 * SECOND):
            async for _ in client.receive():
                break
            while server_udp.rtt is None:  # noqa: ASYNC110 (a property, no event)
                await asyncio.sleep(0.01)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stray:
            stray.sendto(b"?", server.udp_address)  # too short to be a packet: dropped
        async with asyncio.timeout(10 * SECOND):
            while server.get_stats()["drops"].get("short", 0) == 0:  # noqa: ASYNC110 (a counter)
                await asyncio.sleep(0.01)

        samples = await scrape(exporter)
        assert value(samples, "stt_sessions", state="active") == 2
        assert value(samples, "stt_sessions_created_total") == 2
        assert value(samples, "stt_drops_total", reason="short") == 1
        assert value(samples, "stt_packets_received_total") > 0
        assert value(samples, "stt_bytes_received_total") > 5300
        assert value(samples, "stt_udp_datagrams_received_total") > 0
        assert value(samples, "stt_websocket_connections") == 1
        assert value(samples, "stt_websocket_pending") == 0  # the one connection has a session
        assert value(samples, "stt_websocket_refused_connections_total") == 0
        assert value(samples, "stt_websocket_send_dropped_total") == 0
        peer = client.node_id.hex()[:16]
        for session, transport, size in ((udp, "udp", 5000), (ws, "websocket", 300)):
            labels = {
                "session": session.session_id.hex()[:8],
                "peer": peer,
                "transport": transport,
            }
            assert value(samples, "stt_session_bytes_received_total", **labels) >= size
            assert value(samples, "stt_session_messages_received_total", **labels) == 1
            assert value(samples, "stt_session_packets_received_total", **labels) > 0
            assert value(samples, "stt_session_packets_sent_total", **labels) > 0
            assert value(samples, "stt_session_packets_lost_total", **labels) == 0
            assert value(samples, "stt_session_state", **labels) == SessionState.ACTIVE
        udp_labels = {"session": udp.session_id.hex()[:8], "peer": peer, "transport": "udp"}
        assert value(samples, "stt_session_key_version", **udp_labels) == 1
        assert value(samples, "stt_session_rtt_seconds", **udp_labels) > 0
        # a server accepts handshakes: its "started" figure says so, by role
        assert value(samples, "stt_handshakes_started_total", role="responder") == 2
        assert value(samples, "stt_handshakes_started_total", role="initiator") == 0
        measured = sum(1 for s in (udp, ws) if server.session_manager.get_session(s.session_id))
        assert value(samples, "stt_sessions_rtt_seconds_gcount") >= 1
        assert value(samples, "stt_sessions_rtt_seconds_bucket", le="+Inf") <= measured
        assert value(samples, "stt_sessions_rtt_seconds_gsum") > 0

        await udp.close()
        samples = await scrape(exporter)
        assert value(samples, "stt_sessions", state="active") == 1
        assert value(samples, "stt_sessions_closed_total") == 1
        sessions = {labels["session"] for labels, _ in samples["stt_session_bytes_sent_total"]}
        assert sessions == {ws.session_id.hex()[:8]}
    finally:
        await asyncio.to_thread(exporter.close)
    with pytest.raises(urllib.error.URLError):
        await asyncio.to_thread(_get, exporter.url)
    exporter.close()  # idempotent


async def test_collector_works_inside_the_loop_and_after_stop(
    nodes: tuple[STTNode, STTNode],
) -> None:
    server, _ = nodes
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodeCollector(server))
    text = generate_latest(registry).decode()  # on the loop's own thread: no hop
    assert "stt_node_running 1.0" in text
    await server.stop()
    text = generate_latest(registry).decode()
    assert "stt_node_running 0.0" in text


async def test_exports_no_secret(nodes: tuple[STTNode, STTNode]) -> None:
    server, client = nodes
    assert server.udp_address is not None
    session = await client.connect_udp(*server.udp_address)
    exporter = serve_metrics(server, 0, process_metrics=False, per_session=True)
    try:
        text = await asyncio.to_thread(_get, exporter.url)
    finally:
        await asyncio.to_thread(exporter.close)
    assert session.session_key.hex() not in text
    assert session.session_key.hex()[:16] not in text
    assert server._identity.static_private.hex()[:16] not in text
    assert server._secrets.psk.hex()[:16] not in text
    assert session.session_id.hex()[:8] in text
    assert "process_" not in text


async def test_per_session_series_are_off_by_default_and_bounded(
    nodes: tuple[STTNode, STTNode],
) -> None:
    """Without per_session, the set of series does not grow with the number of sessions."""
    server, client = nodes
    assert server.udp_address is not None
    exporter = serve_metrics(server, 0, process_metrics=False)
    try:
        before = await scrape(exporter)
        sessions = [await client.connect_udp(*server.udp_address) for _ in range(3)]
        for session in sessions:
            await session.ping()  # an RTT sample on both sides
        after = await scrape(exporter)
    finally:
        await asyncio.to_thread(exporter.close)
    assert not any(name.startswith("stt_session_") for name in after)
    assert sorted(before) == sorted(after)
    assert sum(len(v) for v in before.values()) == sum(len(v) for v in after.values())
    assert value(after, "stt_sessions", state="active") == 3
    assert value(after, "stt_sessions_rtt_seconds_bucket", le="+Inf") == 3
    assert value(after, "stt_sessions_rtt_seconds_bucket", le="0.001") <= 3
    buckets = [v for labels, v in after["stt_sessions_rtt_seconds_bucket"]]
    assert buckets == sorted(buckets)  # cumulative
    assert value(after, "stt_handshakes_started_total", role="responder") == 3
    # handshake durations by role: a server's three are the responder's
    assert value(after, "stt_handshake_duration_seconds_count", role="responder") == 3
    assert value(after, "stt_handshake_duration_seconds_count", role="initiator") == 0
    assert value(after, "stt_handshake_duration_seconds_bucket", role="responder", le="+Inf") == 3
    assert 0 < value(after, "stt_handshake_duration_seconds_sum", role="responder") < 30
