"""pyzmq with CURVE (ZeroMQ's CurveZMQ: Curve25519 + XSalsa20-Poly1305) as a benchmark peer.

The issue asks for pyzmq with **blocking** sockets: each role runs its socket in a thread of its
own (a PAIR socket over TCP, CURVE keys made fresh per run) while the worker's event loop waits.
The sink counts messages with the same :class:`~seigr_stt.bench.common.Receiver` as the other
peers (rates measured at the receiver, from the first to the last arrival), and answers the
client's end marker with ``DONE`` so the run ends only once everything arrived.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from seigr_stt.bench.common import DONE, END, JSON, Ready, Receiver

__all__ = ["client_messages", "server"]

_HOST = "127.0.0.1"
_POLL_MS = 100  # how often a blocked receive looks at the stop flag
_LINGER_MS = 1000


def _zmq() -> Any:
    """pyzmq, or a clear error (the case then fails and the report says why)."""
    try:
        import zmq
    except ImportError:
        raise RuntimeError("pyzmq is not installed: pip install 'seigr-stt[bench]'") from None
    if not zmq.has("curve"):
        raise RuntimeError("this pyzmq's libzmq has no CURVE support")
    return zmq


async def server(params: JSON, ready: Ready, stop: asyncio.Event) -> JSON:
    """A CURVE PAIR sink bound on ``host``: counts messages until stopped."""
    zmq = _zmq()
    public, secret = zmq.curve_keypair()
    context = zmq.Context()
    sock = context.socket(zmq.PAIR)
    sock.curve_server = True
    sock.curve_secretkey = secret
    sock.curve_publickey = public
    sock.linger = _LINGER_MS
    host = str(params.get("host", _HOST))
    port = sock.bind_to_random_port(f"tcp://{host}")
    receiver = Receiver()
    halt = threading.Event()

    def sink() -> None:
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        while not halt.is_set():
            if not poller.poll(_POLL_MS):
                continue
            while True:
                try:
                    data = sock.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                if data[:4] == END:
                    sock.send(DONE)
                else:
                    receiver.add(data)

    thread = threading.Thread(target=sink, name="zmq-sink", daemon=True)
    thread.start()
    ready({"endpoint": f"tcp://{host}:{port}", "server_key": public.decode("ascii")})
    try:
        await stop.wait()
    finally:
        halt.set()
        await asyncio.to_thread(thread.join)
        sock.close()
        context.term()
    return {"messages": receiver.result()}


async def client_messages(params: JSON, info: JSON) -> JSON:
    """One-way messages of ``size`` bytes for ``duration_s`` (or ``count``), blocking sends."""
    zmq = _zmq()
    size, count, duration = int(params["size"]), int(params["count"]), float(params["duration_s"])
    finish_s = float(params.get("finish_s", 30.0))

    def run() -> JSON:
        public, secret = zmq.curve_keypair()
        context = zmq.Context()
        sock = context.socket(zmq.PAIR)
        sock.curve_serverkey = str(info["server_key"]).encode("ascii")
        sock.curve_publickey = public
        sock.curve_secretkey = secret
        sock.linger = _LINGER_MS
        sock.rcvtimeo = int(finish_s * 1000)
        try:
            sock.connect(str(info["endpoint"]))
            payload = bytes(size)
            sent = 0
            start = time.perf_counter()
            while sent < count and time.perf_counter() - start < duration:
                sock.send(payload)
                sent += 1
            send_s = time.perf_counter() - start
            sock.send(END + bytes(max(size - len(END), 0)))
            try:
                finished = sock.recv() == DONE
            except zmq.Again:
                finished = False
        finally:
            sock.close()
            context.term()
        return {"sent": sent, "send_s": send_s, "finished": finished}

    result: JSON = await asyncio.to_thread(run)
    return result
