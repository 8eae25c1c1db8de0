"""``stt stats``: read a running node's metrics endpoint and print its summary.

The endpoint is the Prometheus exporter of ``stt node --metrics-port`` (:mod:`seigr_stt.metrics`).
``prometheus-client`` is imported only to parse a summary, never for ``--raw``.
"""

from __future__ import annotations

import argparse
import sys
from urllib.parse import urlsplit

from seigr_stt.cli.console import say
from seigr_stt.cli.errors import EXIT_OK, EXIT_USAGE, CLIError
from seigr_stt.cli.show import format_bytes

__all__ = ["cmd_stats", "parse_metrics"]


def _fetch(url: str, timeout: float) -> str:
    """The text at ``url``, read without any proxy.

    Raises :class:`CLIError`: exit 2 unless ``url`` is http(s), exit 1 when it cannot be read.
    """
    import urllib.error
    import urllib.request

    if urlsplit(url).scheme not in ("http", "https"):
        raise CLIError("--url must start with http:// or https://", EXIT_USAGE)
    # Straight to the node: metrics ports are local, so proxy variables are not used.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            body: bytes = response.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CLIError(
            f"cannot read {url}: {reason} (does the node run with --metrics-port?)"
        ) from None
    return body.decode("utf-8", "replace")


def parse_metrics(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Prometheus text → {sample name: [(labels, value), ...]} (needs prometheus-client)."""
    from prometheus_client.parser import text_string_to_metric_families

    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return samples


def _summary(samples: dict[str, list[tuple[dict[str, str], float]]]) -> list[str]:
    """The lines ``stt stats`` prints for an stt node's samples (with ``stt_node_info``)."""

    def one(name: str) -> int:
        return int(sum(value for _, value in samples.get(name, [])))  # summed over labels

    def labelled(name: str, label: str) -> dict[str, float]:
        return {labels[label]: value for labels, value in samples.get(name, [])}

    info = samples["stt_node_info"][0][0]
    # started by role when the exporter labels them (initiator / responder), else one figure
    roles = {
        labels.get("role", ""): int(value)
        for labels, value in samples.get("stt_handshakes_started_total", [])
    }
    handshakes = [f"initiated {roles.get('initiator', roles.get('', 0))}"]
    if "responder" in roles:
        handshakes.append(f"accepted {roles['responder']}")
    handshakes += [
        f"{kind} {one(f'stt_handshakes_{kind}_total')}"
        for kind in ("accepted", "rejected")
        if f"stt_handshakes_{kind}_total" in samples
    ]
    handshakes += [
        f"failed {one('stt_handshakes_failed_total')}",
        f"in flight {one('stt_handshakes_in_flight')}",
    ]
    state = labelled("stt_sessions", "state")
    drops = labelled("stt_drops_total", "reason")
    drop_text = ", ".join(f"{k} {int(v)}" for k, v in sorted(drops.items()) if v) or "none"
    lines = [
        f"node       {info['node_id']}… version {info.get('version', '?')}"
        + ("" if one("stt_node_running") else " (stopped)"),
        f"udp        {info['udp'] or '-'}",
        f"websocket  {info['websocket'] or '-'}",
        f"server     {info['server_mode']}",
        "sessions   "
        + " ".join(f"{s} {int(state.get(s, 0))}" for s in ("active", "handshake", "closing"))
        + f" (created {one('stt_sessions_created_total')}, "
        f"closed {one('stt_sessions_closed_total')})",
        "handshakes " + ", ".join(handshakes),
        f"packets    sent {one('stt_packets_sent_total')}, "
        f"received {one('stt_packets_received_total')}",
        f"bytes      sent {format_bytes(one('stt_bytes_sent_total'))}, "
        f"received {format_bytes(one('stt_bytes_received_total'))}",
        f"drops      {int(sum(drops.values()))} ({drop_text})",
    ]
    per: dict[tuple[str, str, str], dict[str, float]] = {}
    for name, values in samples.items():
        if not name.startswith("stt_session_"):
            continue
        for labels, value in values:
            key = (labels["session"], labels["peer"], labels["transport"])
            per.setdefault(key, {})[name.removeprefix("stt_session_")] = value
    if per:
        head = ("SESSION", "PEER", "TRANSPORT", "KEY", "RTT", "SENT", "RECEIVED", "LOST")
        rows = [head]
        for (sid, peer, transport), v in sorted(per.items()):
            rtt = v.get("rtt_seconds")
            rows.append(
                (
                    sid,
                    peer,
                    transport,
                    str(int(v.get("key_version", 0))),
                    "-" if rtt is None else f"{rtt * 1000:.3f} ms",
                    format_bytes(v.get("bytes_sent_total", 0)),
                    format_bytes(v.get("bytes_received_total", 0)),
                    str(int(v.get("packets_lost_total", 0))),
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
        lines.append("")
        lines.extend(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in rows
        )
    else:
        lines.append("no live sessions")
    return lines


def cmd_stats(args: argparse.Namespace) -> int:
    """``stt stats``: fetch a node's metrics endpoint and print its summary (``--raw``: the text).

    Raises :class:`CLIError`: exit 2 without a target, with two, or with a ``--url`` that is not
    http(s); exit 1 when nothing answers there, the answer is not an stt node's exporter, or
    prometheus-client is missing.
    """
    if args.url:
        if args.host is not None:
            raise CLIError("give HOST PORT or --url URL, not both", EXIT_USAGE)
        url: str = args.url
    elif args.host is not None and args.port is not None:
        host = f"[{args.host}]" if ":" in args.host else args.host
        url = f"http://{host}:{args.port}/metrics"
    else:
        raise CLIError(
            "give the metrics HOST and PORT (stt node --metrics-port), or --url", EXIT_USAGE
        )
    text = _fetch(url, args.timeout)
    if args.raw:
        sys.stdout.write(text)
        return EXIT_OK
    try:
        samples = parse_metrics(text)
    except ImportError:
        raise CLIError(
            "reading metrics needs prometheus-client: pip install -e '.[metrics]' from a checkout "
            "(or use --raw)"
        ) from None
    except ValueError as exc:
        raise CLIError(f"{url} did not answer Prometheus text: {exc}") from None
    if "stt_node_info" not in samples:
        raise CLIError(f"{url} is not an stt node's exporter (no stt_node_info)")
    for line in _summary(samples):
        say(line)
    return EXIT_OK
