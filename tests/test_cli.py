"""The ``stt`` command line, run as users run it: subprocesses on 127.0.0.1 only."""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest

from seigr_stt.cli import main
from seigr_stt.core.identity import parse_seed
from tests.timing import SECOND

COMMANDS = ("keygen", "node", "connect", "send", "send-file", "ping", "stats", "bench", "demo")
LISTENING = re.compile(r"^listening udp (\S+):(\d+)(?: ws (\S+))?(?: metrics (\S+))?$")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STT_")}
    env.update(extra)
    return env


def run(*args: str, timeout: float = 30 * SECOND, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "seigr_stt", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=_env(**env),
    )


@dataclass
class NodeProcess:
    """``stt node`` running in a subprocess; its output lines are collected by threads."""

    proc: subprocess.Popen[str]
    out: queue.Queue[str] = field(default_factory=queue.Queue)
    lines: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)
    host: str = ""
    port: int = 0
    ws_url: str | None = None
    metrics_url: str | None = None

    @classmethod
    def start(cls, *args: str) -> NodeProcess:
        proc = subprocess.Popen(
            [sys.executable, "-m", "seigr_stt", "node", "--port", "0", "--ws-port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        node = cls(proc)
        assert proc.stdout is not None
        assert proc.stderr is not None
        threading.Thread(target=node._read, args=(proc.stdout, node.out), daemon=True).start()
        threading.Thread(target=node._collect, args=(proc.stderr,), daemon=True).start()
        match = LISTENING.match(node.expect("listening "))
        assert match is not None
        node.host, node.port = match[1], int(match[2])
        node.ws_url, node.metrics_url = match[3], match[4]
        return node

    @staticmethod
    def _read(stream: IO[str], out: queue.Queue[str]) -> None:
        for line in stream:
            out.put(line.rstrip("\n"))

    def _collect(self, stream: IO[str]) -> None:
        for line in stream:
            self.err.append(line.rstrip("\n"))

    def expect(self, prefix: str, timeout: float = 15 * SECOND) -> str:
        """The next stdout line starting with ``prefix`` (earlier lines are kept in .lines)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.out.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                self.proc.kill()
                raise AssertionError(
                    f"no line {prefix!r}; stdout {self.lines}, stderr {self.err}"
                ) from None
            self.lines.append(line)
            if line.startswith(prefix):
                return line

    @property
    def target(self) -> tuple[str, str]:
        return (self.host, str(self.port))

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=15 * SECOND)
        finally:
            if self.proc.poll() is None:  # pragma: no cover - only when the test failed
                self.proc.kill()


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """main() run in-process configures logging as the CLI does; undo it after each test."""
    root, package = logging.getLogger(), logging.getLogger("seigr_stt")
    saved = (list(root.handlers), root.level, package.level)
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    package.setLevel(saved[2])


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("seeds")
    paths = {name: directory / f"{name}.seed" for name in ("shared", "node", "other")}
    for path in paths.values():
        assert main(["keygen", str(path)]) == 0
    return paths


@pytest.fixture(scope="module")
def receive_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("received")


@pytest.fixture(scope="module")
def echo_node(seeds: dict[str, Path], receive_dir: Path) -> Iterator[NodeProcess]:
    """One echoing node with a receive directory and a metrics port, shared by the module."""
    node = NodeProcess.start(
        "--node-seed",
        str(seeds["node"]),
        "--shared-seed",
        str(seeds["shared"]),
        "--echo",
        "--receive-dir",
        str(receive_dir),
        "--metrics-port",
        "0",
    )
    yield node
    assert node.stop() == 0, node.err
    node.expect("stopped")


# -- demo, keygen, usage (the original tests) --------------------------------------------------
def test_demo_shows_the_whole_lifecycle() -> None:
    result = run("demo")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for step in (
        "1. handshake over UDP",
        "2. data both ways over UDP",
        "3. handshake over WebSocket",
        "4. data both ways over WebSocket",
        "5. key rotation",
        "6. statistics",
        "7. close",
        "both nodes stopped",
    ):
        assert step in out
    assert "received b'hello over udp'" in out
    assert "received b'hello over websocket'" in out
    assert out.count("(intact: True)") == 2
    assert out.count("key version 0 -> 1 (server 1; keys equal: True)") == 2
    assert "udp session state CLOSED" in out
    assert "websocket session state CLOSED" in out
    assert "server drops: 0" in out


def test_keygen_writes_a_private_valid_seed(tmp_path: Path) -> None:
    target = tmp_path / "node.seed"
    assert main(["keygen", str(target)]) == 0
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    seed = parse_seed(target.read_text().strip())
    assert len(seed) == 32
    assert main(["keygen", str(target)]) == 1  # refuses to overwrite
    assert main(["keygen", str(target), "--force", "--format", "base64"]) == 0
    assert parse_seed(target.read_text().strip()) != seed


def test_keygen_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keygen", "-"]) == 0
    assert len(bytes.fromhex(capsys.readouterr().out.strip())) == 32


def test_usage_errors_exit_2() -> None:
    result = run("no-such-command")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr
    assert run("--help").returncode == 0
    assert run("demo", "--help").returncode == 0


def test_every_command_has_help() -> None:
    commands = [[], *([command] for command in COMMANDS)]
    procs = [  # all at once: each is a fresh interpreter
        subprocess.Popen(
            [sys.executable, "-m", "seigr_stt", *command, "--help"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        for command in commands
    ]
    results = [(*proc.communicate(timeout=60 * SECOND), proc.returncode) for proc in procs]
    top_out = results[0][0]
    for command, (out, err, code) in zip(COMMANDS, results[1:], strict=True):
        assert command in top_out
        assert code == 0, (command, err)
        assert "usage:" in out, command
        if command != "bench":  # bench passes --help on to the benchmarks
            assert "exit codes:" in out, command
            assert "3    handshake timeout" in out, command


# -- seeds -------------------------------------------------------------------------------------
def test_missing_or_weak_seeds_are_usage_errors(tmp_path: Path, seeds: dict[str, Path]) -> None:
    result = run("connect", "127.0.0.1", "9", "--timeout", "1")
    assert result.returncode == 2
    assert "no shared seed" in result.stderr
    weak = tmp_path / "weak.seed"
    weak.write_text("00" * 32)
    weak.chmod(0o600)
    result = run("connect", "127.0.0.1", "9", "--shared-seed", str(weak))
    assert result.returncode == 2
    assert "entropy" in result.stderr
    assert "00" * 16 not in result.stderr
    result = run("connect", "127.0.0.1", "--shared-seed", str(seeds["shared"]))
    assert result.returncode == 2
    assert "HOST and PORT" in result.stderr
    result = run("connect", "127.0.0.1", "notaport", "--shared-seed", str(seeds["shared"]))
    assert result.returncode == 2


# -- against a running node --------------------------------------------------------------------
def test_connect_over_udp_and_websocket(echo_node: NodeProcess, seeds: dict[str, Path]) -> None:
    node_id = echo_node.lines[0].removeprefix("node ")
    shared = ("--shared-seed", str(seeds["shared"]))
    udp = run("connect", *echo_node.target, *shared, "--rotate")
    assert udp.returncode == 0, udp.stderr
    assert re.search(r"^session +[0-9a-f]{16} over udp$", udp.stdout, re.M)
    assert f"peer       {node_id}" in udp.stdout
    assert "key        version 0" in udp.stdout
    assert "rotated    key version 0 -> 1" in udp.stdout
    assert re.search(r"^rtt +[0-9.]+ ms$", udp.stdout, re.M)
    assert udp.stdout.rstrip().endswith("closed")
    assert echo_node.ws_url is not None
    ws = run("connect", "--ws", echo_node.ws_url, *shared)
    assert ws.returncode == 0, ws.stderr
    assert "over websocket" in ws.stdout
    assert f"peer       {node_id}" in ws.stdout


def test_wrong_shared_seed_times_out_with_exit_3(
    echo_node: NodeProcess, seeds: dict[str, Path]
) -> None:
    result = run(
        "connect", *echo_node.target, "--shared-seed", str(seeds["other"]), "--timeout", "1"
    )
    assert result.returncode == 3
    assert "does not share our shared seed" in result.stderr


def test_unreachable_websocket_exits_1(seeds: dict[str, Path]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again below: nothing listens there
    result = run(
        "connect", "--ws", f"ws://127.0.0.1:{port}/stt", "--shared-seed", str(seeds["shared"])
    )
    assert result.returncode == 1
    assert "cannot open a WebSocket" in result.stderr


def test_send_with_reply_and_seeds_from_the_environment(
    echo_node: NodeProcess, seeds: dict[str, Path]
) -> None:
    shared_text = seeds["shared"].read_text().strip()
    result = run(
        "send", *echo_node.target, "héllo stt", "--stream", "3", "--wait-reply",
        STT_SHARED_SEED=shared_text,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "sent 10 bytes on channel 3" in result.stdout
    assert "reply on channel 3 (10 bytes): héllo stt" in result.stdout
    assert shared_text not in result.stdout + result.stderr


def test_ping_prints_rtt_statistics(echo_node: NodeProcess, seeds: dict[str, Path]) -> None:
    result = run(
        "ping", *echo_node.target, "-c", "3", "--interval", "0",
        "--shared-seed", str(seeds["shared"]),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("reply seq=") == 3
    assert "3 sent, 3 received, 0% loss" in result.stdout
    assert re.search(r"rtt min/avg/p50/max = [0-9.]+/[0-9.]+/[0-9.]+/[0-9.]+ ms", result.stdout)


def test_send_file_stores_it_with_the_same_sha256(
    echo_node: NodeProcess, seeds: dict[str, Path], receive_dir: Path, tmp_path: Path
) -> None:
    source = tmp_path / "payload.bin"
    data = os.urandom(700_000)
    source.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    result = run(
        "send-file", *echo_node.target, str(source), "--chunk-size", "50000",
        "--shared-seed", str(seeds["shared"]),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"sha256 {digest}" in result.stdout
    assert "stored by the node (sha256 matches, 700000 bytes)" in result.stdout
    line = echo_node.expect("received file payload.bin")
    assert f"sha256 {digest}" in line
    assert (receive_dir / "payload.bin").read_bytes() == data
    # A name that exists gets a suffix; only the base name of what the sender says is used.
    again = run(
        "send-file", *echo_node.target, str(source), "--name", "../payload.bin", "--no-progress",
        "--shared-seed", str(seeds["shared"]),
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert again.stderr == ""
    echo_node.expect("received file ../payload.bin")
    assert (receive_dir / "payload.bin.1").read_bytes() == data
    assert sorted(p.name for p in receive_dir.iterdir()) == ["payload.bin", "payload.bin.1"]


def test_stats_summarises_the_metrics_endpoint(
    echo_node: NodeProcess, seeds: dict[str, Path]
) -> None:
    assert echo_node.metrics_url is not None
    port = echo_node.metrics_url.rsplit(":", 1)[1].split("/")[0]
    result = run("stats", "127.0.0.1", port)
    assert result.returncode == 0, result.stderr
    node_id = echo_node.lines[0].removeprefix("node ")
    assert f"node       {node_id[:16]}…" in result.stdout
    assert f"udp        {echo_node.host}:{echo_node.port}" in result.stdout
    assert re.search(r"sessions   active 0 .*\(created \d+, closed \d+\)", result.stdout)
    raw = run("stats", "--url", echo_node.metrics_url, "--raw")
    assert raw.returncode == 0
    assert "stt_node_info{" in raw.stdout
    assert "# TYPE stt_drops_total counter" in raw.stdout


def test_stats_without_an_exporter_exits_1() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run("stats", "127.0.0.1", str(port), "--timeout", "2")
    assert result.returncode == 1
    assert "--metrics-port" in result.stderr


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


def test_progress_without_rich_prints_plain_lines(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from seigr_stt.cli import _Progress

    monkeypatch.setitem(sys.modules, "rich.console", None)  # import fails as if not installed
    monkeypatch.setitem(sys.modules, "rich.progress", None)
    with _Progress("data.bin", 1000, enabled=True) as progress:
        for _ in range(10):
            progress.advance(100)
    err = capsys.readouterr().err.splitlines()
    assert err == [f"data.bin: {n}/1000 bytes ({n // 10}%)" for n in (300, 500, 800, 1000)]


def test_send_file_header_layout() -> None:
    from seigr_stt.cli import encode_file_header

    assert encode_file_header("a.txt", 5) == b"STTF\x01\x00\x05a.txt" + (5).to_bytes(8, "big")
    with pytest.raises(ValueError, match="file name"):
        encode_file_header("", 1)
    with pytest.raises(ValueError, match="file name"):
        encode_file_header("x" * 1025, 1)
