"""Running the suite: one run of one case, its measured quantities, the environment, and every
case of every metric round after round.

Every case is a server, a client and sometimes an impairing relay, each in a fresh subprocess
(``python -m seigr_stt.bench.worker``) on a fresh event loop, bounded by a timeout; smoke mode runs
them in this process, still on a fresh event loop per case. The real-path cases (``Case.netns``)
run their server in one network namespace and their client in the other, across the veth pair
that :func:`run_suite` creates for the run and deletes after it (:mod:`seigr_stt.bench.netns`).
Rounds are interleaved: round 1 of every case of a metric, then round 2, ... so slow drifts of a
shared machine hit every system alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import platform
import sys
import time
from collections.abc import Iterator, Sequence
from importlib import metadata
from typing import IO

from seigr_stt.bench.common import JSON, run_loop
from seigr_stt.bench.model import Case, CaseResult, Metric, Suite
from seigr_stt.bench.netns import NetnsError, VethPath, veth_path
from seigr_stt.bench.report import format_value
from seigr_stt.bench.worker import MARK, run_case_inprocess

__all__ = ["environment", "measure", "run_case", "run_suite"]


# -- measures ------------------------------------------------------------------------------------
def measure(case: Case, raw: JSON) -> dict[str, float]:
    """The quantities of one run, from what its server and client reported."""
    server, client = raw["server"], raw["client"]
    kind = case.client.split(":", 1)[1]
    if kind == "handshakes":
        return {"rate": float(client["rate"])}
    if kind == "rtt":
        return {"p50_us": float(client["p50_us"]), "p99_us": float(client["p99_us"])}
    if kind == "scale":
        return {
            "kib_per_session": float(server["kib_per_session"]),
            "last_vs_first": float(client["last_vs_first"]),
            "sessions": float(server["sessions"]),
            "rate": float(client["rate"]),
        }
    if kind == "bulk":
        got = server["stream"]
        values = {"mbps": float(got["mbps"]), "lost_bytes": float(client["bytes"] - got["bytes"])}
        if case.params.get("check") and client.get("crc") != got.get("crc"):
            values["lost_bytes"] = max(values["lost_bytes"], 1.0)  # same length, other bytes
        values["rotations"] = float(client.get("rotations", 0))
        if not client.get("finished", False):
            raise RuntimeError("the server never confirmed the end of the stream")
        return values
    got = (
        server["datagrams"] if kind == "datagrams" and case.server != "raw" else server["messages"]
    )
    if case.server != "raw" and kind != "datagrams" and not client.get("finished", False):
        raise RuntimeError("the server never confirmed the end of the run")
    sent = max(int(client.get("sent", 0)), 1)
    return {
        "rate": float(got["rate"]),
        "mbps": float(got["mbps"]),
        "delivered_pct": 100.0 * min(got["count"] / sent, 1.0),
    }


# -- running one case ----------------------------------------------------------------------------
class _Proc:
    """One worker subprocess and its marked stdout lines."""

    def __init__(self, proc: asyncio.subprocess.Process, label: str) -> None:
        self.proc = proc
        self.label = label
        self.stderr = b""
        assert proc.stderr is not None
        self._stderr_task = asyncio.ensure_future(self._collect(proc.stderr))

    async def _collect(self, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(65536):
            self.stderr = (self.stderr + chunk)[-4000:]

    async def expect(self, kind: str, timeout: float) -> JSON:
        assert self.proc.stdout is not None
        try:
            async with asyncio.timeout(timeout):
                while line := await self.proc.stdout.readline():
                    text = line.decode(errors="replace")
                    if not text.startswith(MARK):
                        continue
                    message = json.loads(text[len(MARK) :])
                    if "error" in message:
                        raise RuntimeError(f"{self.label}: {message['error']['error']}")
                    if kind in message:
                        value: JSON = message[kind]
                        return value
        except TimeoutError:
            raise RuntimeError(f"{self.label}: no {kind} within {timeout:g} s") from None
        await asyncio.sleep(0.05)
        tail = self.stderr.decode(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"{self.label} exited without {kind}: {' | '.join(tail)}")

    async def tell_stop(self) -> None:
        if self.proc.stdin is not None and self.proc.returncode is None:
            with contextlib.suppress(OSError):
                self.proc.stdin.write(b"stop\n")
                await self.proc.stdin.drain()

    async def end(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), 5.0)
        if self.proc.returncode is None:
            self.proc.kill()  # our own child, by its handle
            await self.proc.wait()
        self._stderr_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._stderr_task


async def _spawn(spec: JSON, label: str, prefix: Sequence[str] = ()) -> _Proc:
    """Start ``python -m seigr_stt.bench.worker SPEC`` (after ``prefix``: ``ip netns exec NS``)."""
    proc = await asyncio.create_subprocess_exec(
        *prefix,
        sys.executable,
        "-m",
        "seigr_stt.bench.worker",
        json.dumps(spec),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    return _Proc(proc, label)


def _sides(case: Case, path: VethPath | None) -> tuple[JSON, JSON, list[str], list[str]]:
    """The server's and client's params and argv prefixes: across ``path`` for a real-path case
    (each binds to its own end's address), else both on loopback."""
    if not case.netns:
        return case.params, case.params, [], []
    if path is None:
        raise RuntimeError("a real-path case needs the veth path (run_suite creates it)")
    if case.relay is not None:
        raise ValueError("a real-path case cannot have a relay")
    return (
        {**case.params, "host": path.server_addr},
        {**case.params, "host": path.client_addr},
        path.exec_prefix("server"),
        path.exec_prefix("client"),
    )


async def _run_subprocess(case: Case, loop: str, path: VethPath | None = None) -> JSON:
    base: JSON = {"loop": loop, "pin": list(case.pin) if case.pin else None}
    timeout = case.timeout_s
    server_params, client_params, server_prefix, client_prefix = _sides(case, path)
    procs: list[_Proc] = []
    try:
        server = await _spawn(
            {**base, "role": "server", "server": case.server, "params": server_params},
            "server",
            server_prefix,
        )
        procs.append(server)
        info = await server.expect("ready", 30.0)
        relay: _Proc | None = None
        if case.relay is not None:
            relay_params = {**case.relay, "target": info["udp"]}
            relay = await _spawn(
                {**base, "pin": None, "role": "server", "server": "relay", "params": relay_params},
                "relay",
            )
            procs.append(relay)
            info = {**info, "udp": (await relay.expect("ready", 30.0))["udp"]}
        client = await _spawn(
            {
                **base,
                "role": "client",
                "client": case.client,
                "params": client_params,
                "info": info,
            },
            "client",
            client_prefix,
        )
        procs.append(client)
        client_result = await client.expect("result", timeout)
        if relay is not None:
            await relay.tell_stop()
        await server.tell_stop()
        server_result = await server.expect("result", 30.0)
        return {"server": server_result, "client": client_result}
    finally:
        for proc in procs:
            await proc.end()


def run_case(case: Case, loop: str, inprocess: bool, path: VethPath | None = None) -> JSON:
    """One run of one case: fresh event loop(s), bounded by the case's timeout; a real-path case
    (``case.netns``) across ``path``, in subprocesses whatever ``inprocess`` says. ``loop`` is
    the run's event loop; a case that names its own (``case.loop``) runs on that one."""
    loop = case.loop or loop
    if inprocess and not case.netns:
        spec: JSON = {
            "server": case.server,
            "client": case.client,
            "params": case.params,
            "relay": case.relay,
            "timeout_s": case.timeout_s,
        }
        return run_loop(run_case_inprocess(spec), loop)
    return run_loop(_run_subprocess(case, loop, path), "asyncio")


# -- the suite -----------------------------------------------------------------------------------
def _cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover - not available
        return "?"


def environment(loop: str, inprocess: bool) -> JSON:
    from seigr_stt.core import crypto

    return {
        "nproc": os.cpu_count(),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "loop": loop,
        "aead": crypto.AEAD_BACKEND,
        "mode": "in-process (smoke)" if inprocess else "one subprocess per peer",
        "load_before": _load(),
        "versions": {
            name: _version(name)
            for name in ("seigr-stt", "websockets", "aioquic", "pyzmq", "cryptography", "uvloop")
        },
    }


@contextlib.contextmanager
def _path_for(metrics: Sequence[Metric], env: JSON) -> Iterator[VethPath | None]:
    """The veth path when a case needs it (deleted on the way out), else None; ``env["path"]``
    says which path the real-path cases ran on, or why they could not."""
    if not any(case.netns for metric in metrics for case in metric.cases):
        yield None
        return
    try:
        with veth_path() as path:
            env["path"] = path.describe()
            env["path_namespaces"] = [path.server_ns, path.client_ns]
            yield path
    except NetnsError as exc:
        env["path"] = f"not created: {exc}"
        yield None


def run_suite(
    metrics: Sequence[Metric],
    *,
    loop: str,
    inprocess: bool,
    command: str,
    log: IO[str] | None = None,
) -> Suite:
    """Run every metric's cases, rounds interleaved (A B C A B C ...); the real-path cases across
    a veth pair between two network namespaces made for this run and deleted after it."""
    suite = Suite(list(metrics), {}, environment(loop, inprocess), command)
    started = time.perf_counter()
    total = sum(m.rounds * len(m.cases) for m in metrics)
    done = 0
    with _path_for(metrics, suite.env) as path:
        if log is not None and "path" in suite.env:
            log.write(f"real path: {suite.env['path']}\n")
        for metric in metrics:
            for case in metric.cases:
                suite.results[(metric.key, case.name)] = CaseResult(case)
            for round_index in range(metric.rounds):
                for case in metric.cases:
                    done += 1
                    result = suite.results[(metric.key, case.name)]
                    if case.skip_reason:
                        continue
                    t0 = time.perf_counter()
                    try:
                        if case.netns and path is None:
                            raise RuntimeError(f"no real path: {suite.env['path']}")
                        raw = run_case(case, loop, inprocess, path)
                        values = measure(case, raw)
                    except Exception as exc:
                        result.values.append(None)
                        result.raw.append(None)
                        result.errors.append(f"round {round_index + 1}: {exc}")
                        note = f"FAILED: {exc}"
                    else:
                        result.values.append(values)
                        result.raw.append(raw)
                        q = metric.quantities[0]
                        note = f"{format_value(values.get(q.key, math.nan), q.digits)} {q.unit}"
                    if log is not None:
                        log.write(
                            f"[{done}/{total}] {metric.key} round {round_index + 1}: "
                            f"{case.name}: {note} ({time.perf_counter() - t0:.1f} s)\n"
                        )
                        log.flush()
    suite.elapsed_s = time.perf_counter() - started
    suite.env["load_after"] = _load()
    return suite
