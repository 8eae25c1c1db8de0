"""Helpers of the CLI tests: running ``stt`` in a subprocess, and an ``stt node`` process."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import IO

from tests.timing import SECOND

__all__ = ["LISTENING", "NodeProcess", "clean_env", "run"]

LISTENING = re.compile(r"^listening udp (\S+):(\d+)(?: ws (\S+))?(?: metrics (\S+))?$")


def clean_env(**extra: str) -> dict[str, str]:
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
        env=clean_env(**env),
    )


@dataclass
class NodeProcess:
    """``stt node`` (or another command) in a subprocess; its output lines are collected by
    threads."""

    proc: subprocess.Popen[str]
    out: queue.Queue[str] = field(default_factory=queue.Queue)
    lines: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)
    host: str = ""
    port: int = 0
    ws_url: str | None = None
    metrics_url: str | None = None
    control: str | None = None

    @classmethod
    def spawn(cls, *args: str, **env: str) -> NodeProcess:
        """Run ``stt ARGS`` (any command), its output lines collected as they come."""
        proc = subprocess.Popen(
            [sys.executable, "-m", "seigr_stt", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(**env),
        )
        node = cls(proc)
        assert proc.stdout is not None
        assert proc.stderr is not None
        threading.Thread(target=node._read, args=(proc.stdout, node.out), daemon=True).start()
        threading.Thread(target=node._collect, args=(proc.stderr,), daemon=True).start()
        return node

    @classmethod
    def start(cls, *args: str, ports: bool = True, **env: str) -> NodeProcess:
        """Start ``stt node ARGS`` (with ``--port 0 --ws-port 0`` first when ``ports``)."""
        first = ("--port", "0", "--ws-port", "0") if ports else ()
        node = cls.spawn("node", *first, *args, **env)
        match = LISTENING.match(node.expect("listening "))
        assert match is not None
        node.host, node.port = match[1], int(match[2])
        node.ws_url, node.metrics_url = match[3], match[4]
        if "none" not in args:  # else no control socket: --control-socket none
            node.control = node.expect("control ").removeprefix("control ")
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

    def stop(self, signum: int = signal.SIGTERM) -> int:
        """Send ``signum`` (unless it has exited) and wait for the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        try:
            return self.proc.wait(timeout=15 * SECOND)
        finally:
            if self.proc.poll() is None:  # pragma: no cover - only when the test failed
                self.proc.kill()
