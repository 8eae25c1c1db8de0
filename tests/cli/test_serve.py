"""``stt node`` (:mod:`seigr_stt.cli.serve`): sessions logged, no seed logged, clean stop."""

from __future__ import annotations

import re
import socket
from pathlib import Path

from tests.cli.helpers import NodeProcess, run


def test_node_logs_sessions_refuses_files_and_stops_on_sigterm(
    seeds: dict[str, Path], tmp_path: Path
) -> None:
    node = NodeProcess.start(
        "--node-seed", str(seeds["node"]), "--shared-seed", str(seeds["shared"]), "--no-ws",
        "--log-level", "debug",
    )  # fmt: skip
    try:
        assert node.ws_url is None
        shared = ("--shared-seed", str(seeds["shared"]))
        sent = run("send", *node.target, "ping me", *shared)
        assert sent.returncode == 0, sent.stderr
        assert "(7 bytes): b'ping me'" in node.expect("message from ")
        rotated = run("connect", *node.target, *shared, "--rotate")
        assert rotated.returncode == 0, rotated.stderr
        sid = re.search(r"^session +([0-9a-f]{16})", rotated.stdout, re.M)
        assert sid is not None
        source = tmp_path / "refused.txt"
        source.write_text("nobody takes this")
        refused = run("send-file", *node.target, str(source), *shared)
        assert refused.returncode == 1
        assert "refused: the node runs without --receive-dir" in refused.stderr
    finally:
        code = node.stop()
    assert code == 0, node.err
    node.expect("stopped")
    log = "\n".join(node.err)
    short = sid[1][:8]
    assert f"[{short}] session established with" in log
    assert f"[{short}] key rotated to version 1" in log
    assert f"[{short}] session closed (code 0, by peer)" in log
    for name in ("node", "shared"):
        text = seeds[name].read_text().strip()
        assert text not in log
        assert text[:16] not in log


def test_a_busy_port_is_named(seeds: dict[str, Path]) -> None:
    shared = ("--shared-seed", str(seeds["shared"]), "--control-socket", "none")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        port = udp.getsockname()[1]
        result = run("node", "--port", str(port), "--no-ws", *shared)
    assert result.returncode == 1
    assert (
        f"stt node: cannot start the node: UDP port {port} on 127.0.0.1 (--port) already in use"
    ) in result.stderr, result.stderr
    with socket.socket() as tcp:
        tcp.bind(("127.0.0.1", 0))
        tcp.listen()
        port = tcp.getsockname()[1]
        result = run("node", "--port", "0", "--ws-port", str(port), *shared)
    assert result.returncode == 1
    assert (
        f"stt node: cannot start the node: WebSocket (TCP) port {port} on 127.0.0.1 (--ws-port) "
        "already in use"
    ) in result.stderr, result.stderr
