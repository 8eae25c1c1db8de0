"""The real path's namespaces (seigr_stt.bench.netns): created with a veth pair of MTU 1500 and
deleted afterwards whatever happens (an exception, a failed set-up, SIGINT, SIGTERM), with unique
names per run, and nothing left behind (``ip netns list``, ``ip link``). The tests that create
namespaces need root on Linux and are skipped elsewhere."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from seigr_stt.bench import netns
from seigr_stt.bench.netns import NetnsError, VethPath, veth_path

REASON = netns.unavailable_reason()
needs_netns = pytest.mark.skipif(bool(REASON), reason=f"no network namespaces here: {REASON}")


def _ip(*args: str) -> str:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=True).stdout


def _left_over(path: VethPath) -> list[str]:
    """What of ``path`` still exists: its namespaces (``ip netns list``) and its interfaces in
    this namespace (``ip link``)."""
    namespaces = set(netns.list_namespaces())
    links = _ip("-o", "link", "show")
    return [n for n in (path.server_ns, path.client_ns) if n in namespaces] + [
        i for i in (path.server_if, path.client_if) if i in links
    ]


@pytest.fixture
def made() -> Iterator[list[VethPath]]:
    """The paths a test made: checked gone at the end, whatever the test did."""
    paths: list[VethPath] = []
    yield paths
    for path in paths:
        assert _left_over(path) == [], path


def test_unavailable_reason_says_root_is_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert netns.unavailable_reason() == (
        "creating network namespaces needs root (this run is uid 1000)"
    )
    with pytest.raises(NetnsError, match="needs root"), veth_path():
        pytest.fail("no path without root")  # pragma: no cover
    monkeypatch.setattr(sys, "platform", "darwin")
    assert "Linux only" in netns.unavailable_reason()


def test_a_path_side_is_server_or_client() -> None:
    path = VethPath("a", "b", "ia", "ib", "10.0.0.1", "10.0.0.2", 1500)
    assert path.exec_prefix("client") == ["ip", "netns", "exec", "b"]
    assert path.address("server") == "10.0.0.1"
    with pytest.raises(ValueError, match="side"):
        path.namespace("relay")


@needs_netns
def test_the_pair_joins_two_fresh_namespaces_at_mtu_1500_and_is_deleted_after(
    made: list[VethPath],
) -> None:
    with veth_path() as path, veth_path() as other:
        made += [path, other]
        assert {path.server_ns, path.client_ns} <= set(netns.list_namespaces())
        server = _ip("-n", path.server_ns, "-o", "address", "show", "dev", path.server_if)
        assert f"inet {path.server_addr}/30" in server
        link = _ip("-n", path.client_ns, "-o", "link", "show", "dev", path.client_if)
        assert "mtu 1500" in link
        assert ",UP" in link
        assert path.server_if not in _ip("-o", "link", "show")  # never in this namespace
        # a second path of the same run (or of another run) shares no name
        assert not {path.server_ns, path.client_ns, path.server_if} & {
            other.server_ns,
            other.client_ns,
            other.server_if,
        }
        assert path.server_ns.startswith(f"{netns.PREFIX}-{os.getpid()}-")


@needs_netns
@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()], ids=repr)
def test_an_exception_or_ctrl_c_inside_deletes_the_namespaces(
    error: BaseException, made: list[VethPath]
) -> None:
    def run() -> None:
        with veth_path() as path:
            made.append(path)
            raise error

    with pytest.raises(type(error)):
        run()


@needs_netns
def test_a_set_up_that_fails_half_way_deletes_what_it_made(made: list[VethPath]) -> None:
    calls: list[tuple[str, ...]] = []

    def failing_ip(*args: str) -> str:
        calls.append(args)
        if "address" in args:  # after both namespaces and the pair exist
            raise NetnsError("injected failure")
        return netns._ip(*args)

    with pytest.raises(NetnsError, match="injected"), veth_path(ip=failing_ip):
        pytest.fail("the set-up failed")  # pragma: no cover
    assert [c[:2] for c in calls[:3]] == [("netns", "add"), ("netns", "add"), ("link", "add")]
    pair = calls[2]
    made.append(
        VethPath(calls[0][2], calls[1][2], pair[2], pair[pair.index("name") + 1], "", "", 1500)
    )


@needs_netns
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_to_the_run_deletes_its_namespaces(signum: int, made: list[VethPath]) -> None:
    code = (
        "import json, signal, sys, time\n"
        "from dataclasses import asdict\n"
        # As a run started from a terminal: a background job (the suite run with `&`) starts
        # its children with SIGINT ignored, and Python then keeps ignoring it.
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "from seigr_stt.bench.netns import veth_path\n"
        "with veth_path() as path:\n"
        "    print(json.dumps(asdict(path)), flush=True)\n"
        "    time.sleep(30)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, proc.communicate(timeout=10)[1]
        path = VethPath(**json.loads(line))
        made.append(path)
        assert path.server_ns in netns.list_namespaces()
        proc.send_signal(signum)  # our own child
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:  # pragma: no cover - only when the test failed
            proc.kill()
            proc.wait()
    assert proc.returncode != 0


@needs_netns
def test_the_probe_makes_a_path_or_says_why_not(monkeypatch: pytest.MonkeyPatch) -> None:
    assert netns.probe() == ""  # (and deleted it: veth_path, tested above)

    real_ip = netns._ip

    def no_veth(*args: str) -> str:
        if args[:2] == ("link", "add"):
            raise NetnsError("`ip link add ...` failed: Operation not supported")
        return real_ip(*args)

    monkeypatch.setattr(netns, "_ip", no_veth)  # the set-up's own ip runner, this time
    assert netns.probe() == "`ip link add ...` failed: Operation not supported"


@needs_netns
def test_namespaces_of_a_dead_run_are_swept_and_a_live_runs_are_not() -> None:
    with open("/proc/sys/kernel/pid_max", encoding="ascii") as handle:
        dead_pid = int(handle.read()) + 1  # no process has it
    dead = f"{netns.PREFIX}-{dead_pid}-abcdef-s"
    alive = f"{netns.PREFIX}-{os.getpid()}-abcdef-s"
    for name in (dead, alive):
        _ip("netns", "add", name)
    try:
        netns.sweep_stale()  # (a run in another test worker may sweep it first)
        names = netns.list_namespaces()
        assert dead not in names
        assert alive in names
    finally:
        for name in (dead, alive):
            subprocess.run(["ip", "netns", "delete", name], capture_output=True, check=False)
