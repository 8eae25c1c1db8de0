"""Runs one role of one benchmark case: in this process, or as ``python -m seigr_stt.bench.worker``.

A case is a server, an optional impairing relay and a client. Run as a subprocess, a role reads
its spec (JSON) from argv, pins itself to the CPUs in ``pin``, runs on a fresh event loop and
writes ``@@bench {json}`` lines on stdout: ``{"ready": address}`` once a server or relay is
listening, then ``{"result": ...}``. A server or relay stops when a line arrives on stdin.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import sys
import threading
import traceback
from collections.abc import Sequence
from typing import Any

from seigr_stt.bench import baselines, quic, seigr, zmqcurve
from seigr_stt.bench.common import JSON, ClientFn, Ready, ServerFn, run_loop
from seigr_stt.testing import Impairment, UDPRelay

__all__ = ["CLIENTS", "MARK", "SERVERS", "main", "run_case_inprocess"]

MARK = "@@bench "


async def relay_server(params: JSON, ready: Ready, stop: asyncio.Event) -> JSON:
    """seigr_stt.testing.UDPRelay to ``target`` losing ``loss`` of the datagrams each way."""
    host, port = params["target"]
    impairment = Impairment(loss=float(params["loss"]), seed=int(params.get("seed", 0)))
    async with UDPRelay((str(host), int(port)), impairment) as relay:
        ready({"udp": list(relay.address)})
        await stop.wait()
        return {
            "up": dataclasses.asdict(relay.stats_up),
            "down": dataclasses.asdict(relay.stats_down),
        }


SERVERS: dict[str, ServerFn] = {
    "seigr": seigr.server,
    "raw": baselines.raw_server,
    "websockets": baselines.ws_server,
    "aioquic": quic.server,
    "relay": relay_server,
    "zmq": zmqcurve.server,
}

CLIENTS: dict[str, ClientFn] = {
    "seigr:handshakes": seigr.client_handshakes,
    "seigr:messages": seigr.client_messages,
    "seigr:datagrams": seigr.client_datagrams,
    "seigr:bulk": seigr.client_bulk,
    "seigr:rtt": seigr.client_rtt,
    "seigr:scale": seigr.client_scale,
    "raw:blast": baselines.raw_client_blast,
    "raw:rtt": baselines.raw_client_rtt,
    "websockets:handshakes": baselines.ws_client_handshakes,
    "websockets:messages": baselines.ws_client_messages,
    "websockets:rtt": baselines.ws_client_rtt,
    "aioquic:handshakes": quic.client_handshakes,
    "aioquic:bulk": quic.client_bulk,
    "aioquic:datagrams": quic.client_datagrams,
    "aioquic:rtt": quic.client_rtt,
    "zmq:messages": zmqcurve.client_messages,
}


class CaseFailed(Exception):
    """A role failed or timed out; the message says which and why."""


async def _start(fn: ServerFn, params: JSON, timeout: float) -> tuple[JSON, asyncio.Event, Any]:
    loop = asyncio.get_running_loop()
    address: asyncio.Future[JSON] = loop.create_future()
    stop = asyncio.Event()

    def ready(info: JSON) -> None:
        if not address.done():
            address.set_result(info)

    task = asyncio.ensure_future(fn(params, ready, stop))
    done, _ = await asyncio.wait({address, task}, timeout=timeout, return_when="FIRST_COMPLETED")
    if address not in done:
        task.cancel()
        if task in done and task.exception() is not None:
            raise CaseFailed(f"server failed: {task.exception()!r}")
        raise CaseFailed("server did not start in time")
    return address.result(), stop, task


async def run_case_inprocess(spec: JSON) -> JSON:
    """Run server, relay and client of one case in this event loop (smoke mode)."""
    timeout = float(spec["timeout_s"])
    info, stop, server_task = await _start(SERVERS[spec["server"]], spec["params"], timeout)
    relay_stop: asyncio.Event | None = None
    relay_task: Any = None
    try:
        if spec.get("relay"):
            relay_params = {**spec["relay"], "target": info["udp"]}
            relay_info, relay_stop, relay_task = await _start(
                SERVERS["relay"], relay_params, timeout
            )
            info = {**info, "udp": relay_info["udp"]}
        client = await asyncio.wait_for(CLIENTS[spec["client"]](spec["params"], info), timeout)
    finally:
        if relay_stop is not None:
            relay_stop.set()
            await asyncio.wait_for(relay_task, timeout)
        stop.set()
        server = await asyncio.wait_for(server_task, timeout)
    return {"server": server, "client": client}


def _emit(kind: str, value: JSON) -> None:
    sys.stdout.write(MARK + json.dumps({kind: value}) + "\n")
    sys.stdout.flush()


async def _serve_role(fn: ServerFn, params: JSON) -> JSON:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def wait_for_line() -> None:  # a daemon thread: never holds the process up at exit
        sys.stdin.readline()
        with contextlib.suppress(RuntimeError):  # the loop is already closed
            loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=wait_for_line, daemon=True).start()
    return await fn(params, lambda info: _emit("ready", info), stop)


def main(argv: Sequence[str] | None = None) -> int:
    """Subprocess entry: ``python -m seigr_stt.bench.worker SPEC_JSON``."""
    args = list(sys.argv[1:] if argv is None else argv)
    spec: JSON = json.loads(args[0])
    pin = spec.get("pin")
    if pin and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(pin))
    try:
        if spec["role"] == "client":
            coro = CLIENTS[spec["client"]](spec["params"], spec["info"])
        else:
            coro = _serve_role(SERVERS[spec["server"]], spec["params"])
        result = run_loop(coro, spec["loop"])
    except BaseException as exc:
        _emit("error", {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()})
        return 1
    _emit("result", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
