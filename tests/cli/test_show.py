"""``stt show`` (:mod:`seigr_stt.cli.show`) over a real ``stt node`` and its control socket
(:mod:`seigr_stt.cli.control`), the node configured by a ``--config`` file."""

from __future__ import annotations

import asyncio
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from seigr_stt import STTNode, generate_seed
from seigr_stt.cli import main
from seigr_stt.cli.show import format_age, format_bytes, format_duration
from tests.cli.helpers import NodeProcess, clean_env
from tests.timing import SECOND


def test_human_units() -> None:
    assert format_bytes(0) == "0 B"
    assert format_bytes(1023) == "1023 B"
    assert format_bytes(1536) == "1.50 KiB"
    assert format_bytes(3 * 1024**3) == "3.00 GiB"
    assert format_duration(0) == "0 seconds"
    assert format_duration(0.4) == "less than a second"
    assert format_duration(3723) == "1 hour, 2 minutes, 3 seconds"
    assert format_duration(86400 + 1) == "1 day, 1 second"
    assert format_age(61) == "1 minute, 1 second ago"
    assert format_age(None) == "never"


async def test_show_reads_a_configured_node(
    seeds: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "node.toml"
    config.write_text(
        f'node_seed = "{seeds["node"]}"\nshared_seed = "{seeds["shared"]}"\n'
        "port = 9\necho = true\nws = false\n[endpoint]\nmax_sessions = 7\n"
        "[session]\npersistent_keepalive_s = 25\n"
    )
    runtime = tmp_path / "run"
    runtime.mkdir()
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    # --port 0 on the command line wins over the file's port 9
    node = NodeProcess.start("--config", str(config), XDG_RUNTIME_DIR=str(runtime))
    try:
        assert node.ws_url is None  # ws = false
        assert node.control == str(runtime / f"stt-{node.port}.sock")
        control = Path(node.control)
        assert stat.S_IMODE(os.stat(control).st_mode) == 0o600
        client = STTNode(generate_seed(), seeds["shared"].read_text().strip())
        async with client:
            session = await client.connect_udp(node.host, node.port, timeout=5 * SECOND)
            await session.send(b"x" * 3000)
            async with asyncio.timeout(5 * SECOND):
                async for packet in client.receive():  # the echo
                    assert len(packet.data) == 3000
                    break
            assert await asyncio.to_thread(main, ["show", "--socket", str(control), "--json"]) == 0
            snapshot = json.loads(capsys.readouterr().out)
            assert await asyncio.to_thread(main, ["show", str(node.port)]) == 0
            text = capsys.readouterr().out
            assert await asyncio.to_thread(main, ["show"]) == 0  # every node of this user
            every = capsys.readouterr().out
            assert every.startswith(f"node: {snapshot['node_id']}\n")
            assert f"\npeer: {client.node_id.hex()}\n" in every
            client_addr = client.udp_address
        # the node's figures, from the control socket
        assert snapshot["node_id"] == node.lines[0].removeprefix("node ")
        assert snapshot["udp"] == f"{node.host}:{node.port}"
        assert snapshot["websocket"] is None
        assert snapshot["sessions"]["max_sessions"] == 7  # from the file's [endpoint]
        assert snapshot["uptime_s"] > 0
        assert snapshot["bytes_received"] > 3000
        (peer,) = snapshot["peers"]
        assert peer["peer"] == client.node_id.hex()
        assert peer["session"] == session.session_id.hex()
        assert client_addr is not None
        assert peer["endpoint"] == f"{client_addr[0]}:{client_addr[1]}"
        assert peer["state"] == "active"
        assert peer["bytes_received"] > 3000
        assert peer["bytes_sent"] > 3000
        assert peer["latest_rotation_age_s"] is None
        assert peer["rtt_s"] is None or 0 < peer["rtt_s"] < 1
        # and in words, like wg show
        assert f"node: {snapshot['node_id']}\n" in text
        assert f"  listening udp: {node.host}:{node.port}\n" in text
        assert "  sessions: 1 active, 0 handshaking, 0 closing (1 created, 0 closed)\n" in text
        assert f"\npeer: {client.node_id.hex()}\n" in text
        assert f"  endpoint: {client_addr[0]}:{client_addr[1]}\n" in text
        assert re.search(r"  latest handshake: (\d+ seconds?|less than a second) ago\n", text)
        assert "  latest key rotation: never\n" in text
        assert re.search(r"  transfer: \d\.\d\d KiB received, \d\.\d\d KiB sent\n", text)
        assert re.search(r"  uptime: (\d+ seconds?|less than a second)\n", text)
    finally:
        assert node.stop() == 0, node.err
    assert control.name not in os.listdir(runtime)  # removed on stop
    assert main(["show", "--socket", str(control)]) == 1
    assert f"stt show: no control socket {control} (is `stt node` running?)" in (
        capsys.readouterr().err
    )
    assert main(["show"]) == 1
    assert "no running stt node found" in capsys.readouterr().err


def test_a_second_node_on_the_same_control_socket_is_refused(
    echo_node: NodeProcess, seeds: dict[str, Path]
) -> None:
    assert echo_node.control is not None
    result = subprocess.run(
        [sys.executable, "-m", "seigr_stt", "node", "--port", "0", "--no-ws",
         "--shared-seed", str(seeds["shared"]), "--control-socket", echo_node.control],
        capture_output=True, text=True, timeout=30 * SECOND, check=False, env=clean_env(),
    )  # fmt: skip
    assert result.returncode == 1
    assert f"stt node: another node already serves the control socket {echo_node.control}" in (
        result.stderr
    )


@pytest.mark.parametrize("command", ["show", "stats"])
def test_output_into_a_closed_pipe_ends_quietly(echo_node: NodeProcess, command: str) -> None:
    assert echo_node.control is not None
    assert echo_node.metrics_url is not None
    target = (
        ["--socket", echo_node.control] if command == "show" else ["--url", echo_node.metrics_url]
    )
    read, write = os.pipe()
    os.close(read)  # `stt show | head` after head has exited
    try:
        result = subprocess.run(
            [sys.executable, "-m", "seigr_stt", command, *target],
            stdout=write, stderr=subprocess.PIPE, text=True, timeout=30 * SECOND, check=False,
            env=clean_env(),
        )  # fmt: skip
    finally:
        os.close(write)
    assert result.returncode == 1
    assert result.stderr == ""
