"""The worker protocol (seigr_stt.bench.worker): a role runs as ``python -m
seigr_stt.bench.worker SPEC``, writes ``@@bench {"ready": ...}`` once listening and
``@@bench {"result": ...}`` at the end, stops a server on a line on stdin, and reports a failure
as ``@@bench {"error": ...}`` with exit code 1."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest

from seigr_stt.bench import worker
from seigr_stt.bench.common import JSON


def _marked(line: str) -> JSON:
    assert line.startswith(worker.MARK), line
    message: JSON = json.loads(line[len(worker.MARK) :])
    return message


def _worker(spec: JSON) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "seigr_stt.bench.worker", json.dumps(spec)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_server_process_says_ready_serves_a_client_and_stops_on_a_line() -> None:
    params: JSON = {"mode": "echo", "size": 64, "warmup": 1, "count": 5, "duration_s": 1.0}
    base: JSON = {"loop": "asyncio", "pin": None, "params": params}
    server = _worker({**base, "role": "server", "server": "raw"})
    try:
        assert server.stdout is not None
        assert server.stdin is not None
        ready = _marked(server.stdout.readline())["ready"]
        host, port = ready["udp"]
        assert host == "127.0.0.1"
        assert port > 0
        result = asyncio.run(worker.CLIENTS["raw:rtt"](params, ready))  # the client, here
        assert result["samples"] == 5
        assert result["lost"] == 0
        assert 0 < result["p50_us"] <= result["p99_us"]
        server.stdin.write("stop\n")
        server.stdin.flush()
        served = _marked(server.stdout.readline())["result"]
        assert served["bad"] == 0
        assert server.wait(timeout=10) == 0
    finally:
        if server.poll() is None:  # pragma: no cover - only when the test failed
            server.kill()
            server.wait()


def test_a_failing_role_reports_its_error_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    spec: JSON = {"loop": "asyncio", "role": "client", "client": "raw:rtt", "params": {}}
    assert worker.main([json.dumps({**spec, "info": {"udp": ["127.0.0.1", 9]}})]) == 1
    error = _marked(capsys.readouterr().out.strip())["error"]
    assert error["error"] == "KeyError: 'size'"
    assert "Traceback" in error["trace"]
