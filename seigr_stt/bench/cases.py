"""The case catalogue: every metric with its cases, the metric keys, the targets of
docs/performance.md and the extra ratios shown in the table.

The real-path metrics (``path_*``, :data:`PATH_METRIC_KEYS`) run the same workloads with the server
in one network namespace and the client in another, across a veth pair with MTU 1500
(:mod:`seigr_stt.bench.netns`); they are built only when asked for (``real_path=True``).

Nothing here runs anything: :func:`build_suite` describes the work (which server, client, relay
and parameters, how many rounds) and :mod:`seigr_stt.bench.orchestrate` runs it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

from seigr_stt import generate_seed
from seigr_stt.bench.common import JSON
from seigr_stt.bench.model import Case, Metric, Quantity, Target

__all__ = [
    "AIOQUIC",
    "ASYNCIO_TWIN",
    "EXTRA_RATIOS",
    "LIBP2P_BULK_MBPS",
    "LOOPBACK_METRIC_KEYS",
    "LOOP_PARITY",
    "METRIC_KEYS",
    "PATH_METRIC_KEYS",
    "PATH_PEERS",
    "PATH_TARGETS",
    "PYZMQ",
    "RAW",
    "SEIGR_UDP",
    "SEIGR_WS",
    "TARGETS",
    "WEBSOCKETS",
    "WEBSOCKETS_TLS",
    "build_suite",
    "loop_targets",
    "with_asyncio_twins",
]

SEIGR_UDP = "seigr_stt UDP"
SEIGR_WS = "seigr_stt WebSocket"
RAW = "raw UDP + ChaCha20-Poly1305"
WEBSOCKETS = "websockets"
WEBSOCKETS_TLS = "websockets + TLS"
AIOQUIC = "aioquic"
PYZMQ = "pyzmq + CURVE"

#: The peers of the real-path table, in its column order (seigr_stt UDP is divided by each).
PATH_PEERS = (WEBSOCKETS, WEBSOCKETS_TLS, AIOQUIC, RAW, PYZMQ)

#: py-libp2p 0.8 (TCP, Noise, yamux) bulk MB/s from docs/performance.md: not run here (its
#: stack is not a dependency), so targets against it compare with this recorded figure.
LIBP2P_BULK_MBPS = 100.0


# -- the cases ----------------------------------------------------------------------------------
def build_suite(
    smoke: bool, rounds: int, only: Sequence[str] | None = None, *, real_path: bool = False
) -> list[Metric]:
    """Every metric with its cases; ``smoke`` makes every case tiny and one round. With
    ``real_path`` the ``path_*`` metrics come first (across the veth pair: the caller checks that
    namespaces can be made here, :func:`seigr_stt.bench.netns.unavailable_reason`); without it
    they are left out. ``only`` keeps the named metrics (``ValueError`` for unknown names)."""
    shared = generate_seed().hex()

    def p(**kw: Any) -> JSON:
        return {"shared": shared, **kw}

    s = smoke
    dur = 0.05 if s else 2.0
    bulk_dur = 0.1 if s else 3.0
    hs = {"count": 2 if s else 300, "duration_s": 1.0 if s else 3.0}
    rtt: JSON = {"size": 64, "warmup": 1 if s else 200, "count": 5 if s else 3000}
    rtt["duration_s"] = 1.0 if s else 4.0
    big = 1 << 40
    plot_rounds = 1 if s else min(rounds, 3)
    rounds = 1 if s else rounds

    def seigr(metric: str, transport: str, client: str, **kw: Any) -> Case:
        system = SEIGR_UDP if transport == "udp" else SEIGR_WS
        timeout = kw.pop("timeout_s", 60.0)
        variant = kw.pop("variant", "")
        pin = kw.pop("pin", None)
        relay = kw.pop("relay", None)
        mode = kw.pop("mode", "sink")
        netns = kw.pop("netns", False)
        params = p(transport=transport, mode=mode, **kw)
        return Case(
            metric, system, "seigr", f"seigr:{client}", params, variant, pin, relay, timeout, netns
        )

    def other(metric: str, system: str, server: str, client: str, **kw: Any) -> Case:
        timeout = kw.pop("timeout_s", 60.0)
        variant = kw.pop("variant", "")
        pin = kw.pop("pin", None)
        relay = kw.pop("relay", None)
        mode = kw.pop("mode", "sink")
        netns = kw.pop("netns", False)
        params = p(mode=mode, **kw)
        return Case(
            metric,
            system,
            server,
            f"{server}:{client}",
            params,
            variant,
            pin,
            relay,
            timeout,
            netns,
        )

    mbps = Quantity("mbps", "throughput", "MB/s", digits=1)
    p50 = Quantity("p50_us", "RTT p50", "µs", higher_is_better=False)
    p99 = Quantity("p99_us", "RTT p99", "µs", higher_is_better=False)
    delivered = Quantity("delivered_pct", "delivered", "%", digits=1)
    msg = {"count": big, "duration_s": dur}

    metrics: list[Metric] = []
    if real_path:
        metrics += _path_metrics(s, rounds, seigr, other)
    metrics.append(
        Metric(
            "handshakes",
            "Handshakes / connection setups per second (sequential connects)",
            (Quantity("rate", "handshakes", "/s"),),
            (
                seigr("handshakes", "udp", "handshakes", **hs),
                seigr("handshakes", "ws", "handshakes", **hs),
                other("handshakes", AIOQUIC, "aioquic", "handshakes", **hs),
                other("handshakes", WEBSOCKETS, "websockets", "handshakes", **hs),
                other("handshakes", WEBSOCKETS_TLS, "websockets", "handshakes", tls=True, **hs),
            ),
            rounds,
        )
    )
    metrics.append(
        Metric(
            "msg64",
            "64 B one-way messages per second (reliable; raw UDP: datagrams the receiver got)",
            (Quantity("rate", "64 B messages", "/s"),),
            (
                seigr("msg64", "udp", "messages", size=64, **msg),
                seigr("msg64", "ws", "messages", size=64, **msg),
                other("msg64", WEBSOCKETS, "websockets", "messages", size=64, **msg),
                other("msg64", WEBSOCKETS_TLS, "websockets", "messages", size=64, tls=True, **msg),
                other("msg64", RAW, "raw", "blast", size=64, **msg),
            ),
            rounds,
        )
    )
    metrics.append(
        Metric(
            "dgram1000",
            "1000 B unreliable datagrams per second delivered",
            (Quantity("rate", "1000 B datagrams", "/s"), delivered),
            (
                seigr("dgram1000", "udp", "datagrams", size=1000, **msg),
                other("dgram1000", AIOQUIC, "aioquic", "datagrams", size=1000, **msg),
                other("dgram1000", RAW, "raw", "blast", size=1000, **msg),
            ),
            rounds,
        )
    )
    bulk = {"chunk": 65536, "bytes": big, "duration_s": bulk_dur}
    ws_bulk = {"size": 16384, "count": big, "duration_s": bulk_dur}
    metrics.append(
        Metric(
            "bulk_udp",
            "Bulk stream over UDP (64 KiB writes; raw UDP: 1200 B datagrams delivered)",
            (mbps,),
            (
                seigr("bulk_udp", "udp", "bulk", **bulk),
                other("bulk_udp", AIOQUIC, "aioquic", "bulk", **bulk),
                other("bulk_udp", RAW, "raw", "blast", size=1200, count=big, duration_s=bulk_dur),
            ),
            rounds,
        )
    )
    metrics.append(
        Metric(
            "bulk_ws",
            "Bulk stream over WebSocket (websockets: 16 KiB messages, plain and over TLS)",
            (mbps,),
            (
                seigr("bulk_ws", "ws", "bulk", **bulk),
                other("bulk_ws", WEBSOCKETS, "websockets", "messages", **ws_bulk),
                other("bulk_ws", WEBSOCKETS_TLS, "websockets", "messages", tls=True, **ws_bulk),
            ),
            rounds,
        )
    )
    for key, pin, title in (
        ("rtt", None, "Round-trip time of 64 B echoes (each peer free on 2 CPUs)"),
        ("rtt_pinned", (0,), "Round-trip time of 64 B echoes, both peers pinned to one CPU"),
    ):
        metrics.append(
            Metric(
                key,
                title,
                (p50, p99),
                (
                    seigr(key, "udp", "rtt", mode="echo", pin=pin, **rtt),
                    seigr(key, "ws", "rtt", mode="echo", pin=pin, **rtt),
                    other(key, RAW, "raw", "rtt", mode="echo", pin=pin, **rtt),
                    other(key, AIOQUIC, "aioquic", "rtt", mode="echo", pin=pin, **rtt),
                    other(key, WEBSOCKETS, "websockets", "rtt", mode="echo", pin=pin, **rtt),
                    other(
                        key,
                        WEBSOCKETS_TLS,
                        "websockets",
                        "rtt",
                        mode="echo",
                        pin=pin,
                        tls=True,
                        **rtt,
                    ),
                ),
                rounds,
            )
        )
    sessions = 20 if s else 10_000
    metrics.append(
        Metric(
            "scale",
            f"{sessions:,} concurrent sessions on one server node (8 client nodes connecting)",
            (
                Quantity("kib_per_session", "memory per idle session", "KiB", False, 2),
                Quantity("last_vs_first", "last/first 1,000 handshake speed", "x", digits=2),
                Quantity("sessions", "sessions established", ""),
                Quantity("rate", "handshakes while filling", "/s"),
            ),
            (
                seigr(
                    "scale",
                    "udp",
                    "scale",
                    sessions=sessions,
                    nodes=2 if s else 8,
                    hold_s=0.2 if s else 1.5,
                    window=5 if s else 1000,
                    passive=True,
                    timeout_s=600.0,
                ),
            ),
            1 if s else min(rounds, 3),
        )
    )
    rot = {**bulk, "duration_s": 0.5 if s else 5.0, "check": True}
    rotate_s = 0.15 if s else 1.0
    metrics.append(
        Metric(
            "rotation",
            f"Bulk stream over UDP with rotate_key() every {rotate_s:g} s vs without",
            (
                mbps,
                Quantity("lost_bytes", "bytes lost or corrupted", "B", False),
                Quantity("rotations", "rotations done", ""),
            ),
            (
                seigr("rotation", "udp", "bulk", variant="no rotation", **rot),
                seigr("rotation", "udp", "bulk", variant="rotating", rotate_s=rotate_s, **rot),
            ),
            rounds,
        )
    )
    losses = (0.05,) if s else (0.0, 0.01, 0.02, 0.05, 0.10)
    loss_cases: list[Case] = []
    for loss in losses:
        relay = {"loss": loss, "seed": 7}
        variant = f"loss {loss:.0%}"
        loss_bulk = {**bulk, "finish_s": 60.0, "timeout_s": 120.0}
        loss_cases.append(seigr("loss", "udp", "bulk", variant=variant, relay=relay, **loss_bulk))
        loss_cases.append(
            other("loss", AIOQUIC, "aioquic", "bulk", variant=variant, relay=relay, **loss_bulk)
        )
    metrics.append(
        Metric(
            "loss",
            "Bulk stream over UDP through seigr_stt.testing.UDPRelay losing datagrams both ways",
            (mbps,),
            tuple(loss_cases),
            plot_rounds,
            plot="loss",
        )
    )
    sizes = (64, 65536) if s else (64, 256, 1024, 4096, 16384, 65536, 262144, 1048576)
    size_cases: list[Case] = []
    for size in sizes:
        variant = f"{size} B"
        size_msg = {"size": size, "count": big, "duration_s": 0.05 if s else 1.5}
        size_cases.append(seigr("size", "udp", "messages", variant=variant, **size_msg))
        size_cases.append(seigr("size", "ws", "messages", variant=variant, **size_msg))
        size_cases.append(
            other("size", WEBSOCKETS, "websockets", "messages", variant=variant, **size_msg)
        )
    metrics.append(
        Metric(
            "size",
            "One-way reliable message throughput against message size",
            (mbps, Quantity("rate", "messages", "/s")),
            tuple(size_cases),
            plot_rounds,
            plot="size",
        )
    )
    if only:
        unknown = set(only) - set(METRIC_KEYS)
        if unknown:
            raise ValueError(f"unknown metric(s): {', '.join(sorted(unknown))}")
        metrics = [m for m in metrics if m.key in only]
    return metrics


PATH_METRIC_KEYS = ("path_bulk", "path_rtt", "path_handshakes", "path_msgs")
LOOPBACK_METRIC_KEYS = (
    "handshakes",
    "msg64",
    "dgram1000",
    "bulk_udp",
    "bulk_ws",
    "rtt",
    "rtt_pinned",
    "scale",
    "rotation",
    "loss",
    "size",
)
METRIC_KEYS = PATH_METRIC_KEYS + LOOPBACK_METRIC_KEYS


def _path_metrics(
    smoke: bool,
    rounds: int,
    seigr: Callable[..., Case],
    other: Callable[..., Case],
) -> list[Metric]:
    """The real-path metrics: bulk, RTT and handshakes across the veth pair (``netns=True``).
    Smoke sizes: a 256 KiB stream, a few echoes and connects (a few seconds in all)."""
    bulk_dur = 1.0 if smoke else 3.0
    total = 256 * 1024 if smoke else 1 << 40
    bulk = {"chunk": 65536, "bytes": total, "duration_s": bulk_dur, "netns": True}
    ws_bulk = {"size": 16384, "count": total // 16384, "duration_s": bulk_dur, "netns": True}
    hs = {"count": 3 if smoke else 300, "duration_s": 1.0 if smoke else 3.0, "netns": True}
    rtt: JSON = {"size": 64, "warmup": 2 if smoke else 200, "count": 10 if smoke else 3000}
    rtt.update(duration_s=1.0 if smoke else 4.0, mode="echo", netns=True)
    raw_bulk = {"size": 1200, "count": total // 1200, "duration_s": bulk_dur, "netns": True}
    msgs = {"size": 64, "count": 1 << 40, "duration_s": bulk_dur, "netns": True}
    return [
        Metric(
            "path_bulk",
            "Real path, MTU 1500: bulk stream (seigr_stt and aioquic: 64 KiB writes; websockets: "
            "16 KiB messages; raw UDP: 1200 B datagrams delivered)",
            (Quantity("mbps", "throughput", "MB/s", digits=1),),
            (
                seigr("path_bulk", "udp", "bulk", **bulk),
                seigr("path_bulk", "ws", "bulk", **bulk),
                other("path_bulk", WEBSOCKETS, "websockets", "messages", **ws_bulk),
                other("path_bulk", WEBSOCKETS_TLS, "websockets", "messages", tls=True, **ws_bulk),
                other("path_bulk", AIOQUIC, "aioquic", "bulk", **bulk),
                other("path_bulk", RAW, "raw", "blast", **raw_bulk),
            ),
            rounds,
        ),
        Metric(
            "path_rtt",
            "Real path, MTU 1500: round-trip time of 64 B echoes",
            (
                Quantity("p50_us", "RTT p50", "µs", higher_is_better=False),
                Quantity("p99_us", "RTT p99", "µs", higher_is_better=False),
            ),
            (
                seigr("path_rtt", "udp", "rtt", **rtt),
                seigr("path_rtt", "ws", "rtt", **rtt),
                other("path_rtt", WEBSOCKETS, "websockets", "rtt", **rtt),
                other("path_rtt", WEBSOCKETS_TLS, "websockets", "rtt", tls=True, **rtt),
                other("path_rtt", AIOQUIC, "aioquic", "rtt", **rtt),
                other("path_rtt", RAW, "raw", "rtt", **rtt),
            ),
            rounds,
        ),
        Metric(
            "path_handshakes",
            "Real path, MTU 1500: handshakes / connection setups per second (sequential)",
            (Quantity("rate", "handshakes", "/s"),),
            (
                seigr("path_handshakes", "udp", "handshakes", **hs),
                seigr("path_handshakes", "ws", "handshakes", **hs),
                other("path_handshakes", WEBSOCKETS, "websockets", "handshakes", **hs),
                other(
                    "path_handshakes", WEBSOCKETS_TLS, "websockets", "handshakes", tls=True, **hs
                ),
                other("path_handshakes", AIOQUIC, "aioquic", "handshakes", **hs),
            ),
            rounds,
        ),
        Metric(
            "path_msgs",
            "Real path, MTU 1500: 64 B one-way reliable messages per second (pyzmq: blocking "
            "PAIR sockets over TCP with CURVE)",
            (Quantity("rate", "64 B messages", "/s"),),
            (
                seigr("path_msgs", "udp", "messages", **msgs),
                seigr("path_msgs", "ws", "messages", **msgs),
                other("path_msgs", WEBSOCKETS, "websockets", "messages", **msgs),
                other("path_msgs", WEBSOCKETS_TLS, "websockets", "messages", tls=True, **msgs),
                other("path_msgs", PYZMQ, "zmq", "messages", **msgs),
            ),
            rounds,
        ),
    ]


#: The targets of the performance issue (issue 12) on the real path: numbered P1a ... so that
#: they do not mix with those of docs/performance.md.
PATH_TARGETS = (
    Target(
        "P1a",
        "real-path bulk >= 0.30x websockets + TLS",
        "path_bulk",
        "mbps",
        SEIGR_UDP,
        ">=",
        0.30,
        WEBSOCKETS_TLS,
    ),
    Target("P1b", "real-path bulk >= 8x aioquic", "path_bulk", "mbps", SEIGR_UDP, ">=", 8, AIOQUIC),
    Target(
        "P2a",
        "real-path RTT p50 <= 1.0x websockets",
        "path_rtt",
        "p50_us",
        SEIGR_UDP,
        "<=",
        1.0,
        WEBSOCKETS,
    ),
    Target(
        "P2b", "real-path RTT p50 <= 2.0x raw UDP", "path_rtt", "p50_us", SEIGR_UDP, "<=", 2.0, RAW
    ),
    Target(
        "P3a",
        "real-path handshakes >= 1.0x websockets",
        "path_handshakes",
        "rate",
        SEIGR_UDP,
        ">=",
        1.0,
        WEBSOCKETS,
    ),
    Target(
        "P3b",
        "real-path handshakes >= 5x aioquic",
        "path_handshakes",
        "rate",
        SEIGR_UDP,
        ">=",
        5,
        AIOQUIC,
    ),
    Target(
        "P4",
        "real-path bulk over WebSocket >= 0.8x websockets + TLS",
        "path_bulk",
        "mbps",
        SEIGR_WS,
        ">=",
        0.8,
        WEBSOCKETS_TLS,
    ),
    Target(
        "P5a",
        "real-path 64 B msgs >= 2.0x websockets",
        "path_msgs",
        "rate",
        SEIGR_UDP,
        ">=",
        2.0,
        WEBSOCKETS,
    ),
    Target(
        "P5b",
        "real-path 64 B msgs >= 1.0x pyzmq + CURVE",
        "path_msgs",
        "rate",
        SEIGR_UDP,
        ">=",
        1.0,
        PYZMQ,
    ),
    Target(
        "P8", "memory per idle session <= 6 KiB", "scale", "kib_per_session", SEIGR_UDP, "<=", 6
    ),
)

TARGETS = (
    *PATH_TARGETS,
    Target("1a", "handshakes >= 8x aioquic", "handshakes", "rate", SEIGR_UDP, ">=", 8, AIOQUIC),
    Target(
        "1b",
        "handshakes >= 1.5x websockets",
        "handshakes",
        "rate",
        SEIGR_UDP,
        ">=",
        1.5,
        WEBSOCKETS,
    ),
    Target("2", "64 B msgs >= 1.2x websockets", "msg64", "rate", SEIGR_UDP, ">=", 1.2, WEBSOCKETS),
    Target("3a", "bulk UDP >= 4x aioquic", "bulk_udp", "mbps", SEIGR_UDP, ">=", 4, AIOQUIC),
    Target(
        "3b",
        "bulk UDP >= py-libp2p TCP (moonshot)",
        "bulk_udp",
        "mbps",
        SEIGR_UDP,
        ">=",
        1,
        reference=LIBP2P_BULK_MBPS,
        reference_name="py-libp2p (recorded)",
    ),
    Target(
        "4",
        "bulk WebSocket >= 2x py-libp2p",
        "bulk_ws",
        "mbps",
        SEIGR_WS,
        ">=",
        2,
        reference=LIBP2P_BULK_MBPS,
        reference_name="py-libp2p (recorded)",
    ),
    Target("5", "1000 B datagrams >= 4x aioquic", "dgram1000", "rate", SEIGR_UDP, ">=", 4, AIOQUIC),
    Target(
        "6a", "RTT p50 (1 CPU) <= 1.5x raw UDP", "rtt_pinned", "p50_us", SEIGR_UDP, "<=", 1.5, RAW
    ),
    Target(
        "6b",
        "RTT p50 (1 CPU) <= 0.5x aioquic",
        "rtt_pinned",
        "p50_us",
        SEIGR_UDP,
        "<=",
        0.5,
        AIOQUIC,
    ),
    Target(
        "7a", "memory per idle session <= 8 KiB", "scale", "kib_per_session", SEIGR_UDP, "<=", 8
    ),
    Target(
        "7b",
        "last 1,000 handshakes as fast as the first (>= 0.9x)",
        "scale",
        "last_vs_first",
        SEIGR_UDP,
        ">=",
        0.9,
    ),
    Target(
        "8a",
        "rotation every 1 s costs <= 5% throughput",
        "rotation",
        "mbps",
        SEIGR_UDP + " [rotating]",
        ">=",
        0.95,
        system_b=SEIGR_UDP + " [no rotation]",
    ),
    Target(
        "8b",
        "rotation loses nothing (worst round)",
        "rotation",
        "lost_bytes",
        SEIGR_UDP + " [rotating]",
        "<=",
        0,
        worst=True,
    ),
)

#: Ratios shown next to peers in the results table (besides those of the targets).
EXTRA_RATIOS = {
    "path_bulk": (WEBSOCKETS, WEBSOCKETS_TLS, AIOQUIC, RAW),
    "path_rtt": (WEBSOCKETS, WEBSOCKETS_TLS, AIOQUIC, RAW),
    "path_handshakes": (WEBSOCKETS, WEBSOCKETS_TLS, AIOQUIC),
    "path_msgs": (WEBSOCKETS, WEBSOCKETS_TLS, PYZMQ),
    "msg64": (RAW,),
    "dgram1000": (RAW,),
    "bulk_udp": (RAW,),
    "bulk_ws": (WEBSOCKETS, WEBSOCKETS_TLS),
    "handshakes": (WEBSOCKETS_TLS,),
    "rtt": (RAW, AIOQUIC),
    "rtt_pinned": (),
}


# -- both event loops in one run (--loop both) -----------------------------------------------------
#: The variant naming a seigr_stt case's twin on asyncio, run beside it (on uvloop) with
#: ``--loop both``.
ASYNCIO_TWIN = "asyncio"

#: The performance issue's floor for uvloop against asyncio, on every figure.
LOOP_PARITY = 0.95


def _asyncio_twin(case: Case) -> Case:
    """``case`` on asyncio, its variant naming the loop."""
    variant = f"{case.variant}, {ASYNCIO_TWIN}" if case.variant else ASYNCIO_TWIN
    return replace(case, loop="asyncio", variant=variant)


def with_asyncio_twins(metrics: Iterable[Metric]) -> list[Metric]:
    """The suite for ``--loop both``: every seigr_stt case runs on uvloop and has a twin on
    asyncio (variant :data:`ASYNCIO_TWIN`) right after it in each round, so both loops meet the
    same machine load; the peers run on uvloop."""
    out: list[Metric] = []
    for metric in metrics:
        cases: list[Case] = []
        for case in metric.cases:
            if case.server != "seigr":
                cases.append(case)
                continue
            cases += [replace(case, loop="uvloop"), _asyncio_twin(case)]
        out.append(replace(metric, cases=tuple(cases)))
    return out


def loop_targets(metrics: Iterable[Metric]) -> tuple[Target, ...]:
    """One target per figure of every case with an asyncio twin: uvloop at least
    :data:`LOOP_PARITY` times as fast as asyncio (per-round ratios of the twins; for a figure
    where lower is better, such as an RTT, uvloop's at most ``1 / LOOP_PARITY`` times asyncio's).
    """
    targets: list[Target] = []
    for metric in metrics:
        names = {case.name for case in metric.cases}
        for case in metric.cases:
            if case.loop != "uvloop":
                continue
            twin = _asyncio_twin(case).name
            if twin not in names:
                continue
            for quantity in metric.quantities:
                better = quantity.higher_is_better
                targets.append(
                    Target(
                        "P6",
                        f"{case.name}: uvloop >= {LOOP_PARITY:g}x asyncio, {metric.key} "
                        f"{quantity.label}",
                        metric.key,
                        quantity.key,
                        case.name,
                        ">=" if better else "<=",
                        LOOP_PARITY if better else round(1 / LOOP_PARITY, 3),
                        system_b=twin,
                    )
                )
    return tuple(targets)
