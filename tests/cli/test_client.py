"""The client side (:mod:`seigr_stt.cli.client`): handshake failures become exit codes."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from seigr_stt.cli import main
from seigr_stt.ticket import NodeTicket
from tests.cli.helpers import NodeProcess, run


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


def test_an_unknown_host_is_named_without_python_names(seeds: dict[str, Path]) -> None:
    result = run("connect", "nosuchhost.invalid", "9000", "--shared-seed", str(seeds["shared"]))
    assert result.returncode == 1
    assert result.stderr.startswith(
        "stt connect: cannot resolve the host 'nosuchhost.invalid': "
    ), result.stderr
    assert "Error" not in result.stderr
    assert "Traceback" not in result.stderr


def _ticket_of(node: NodeProcess) -> str:
    """The ticket `stt node` printed after its addresses."""
    lines = [line for line in node.lines if line.startswith("ticket ")]
    assert lines, node.lines
    return lines[0].removeprefix("ticket ")


def test_connect_by_the_ticket_the_node_printed(
    echo_node: NodeProcess, seeds: dict[str, Path]
) -> None:
    ticket = _ticket_of(echo_node)
    assert ticket.startswith("stt")
    result = run("connect", ticket, "--shared-seed", str(seeds["shared"]))
    assert result.returncode == 0, result.stderr
    node_id = NodeTicket.parse(ticket).node_id.hex()
    assert node_id[:16] in result.stdout, result.stdout


def test_a_damaged_ticket_is_a_usage_error_that_says_why(
    seeds: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    ticket = str(NodeTicket(os.urandom(32), (("127.0.0.1", 9000),)))
    shared = ("--shared-seed", str(seeds["shared"]))
    assert main(["connect", ticket[:-9], *shared]) == 2
    err = capsys.readouterr().err
    assert err.startswith("stt connect: not a usable ticket: "), err
    assert "Traceback" not in err
    assert main(["connect", ticket, "9000", *shared]) == 2
    assert "give a TICKET alone" in capsys.readouterr().err
    assert main(["connect", ticket, "--ws", "ws://127.0.0.1:9001/stt", *shared]) == 2
    assert "give a TICKET alone" in capsys.readouterr().err
    assert main(["connect", ticket[:-9], "--ws", "ws://127.0.0.1:9001/stt", *shared]) == 2
    assert "not a usable ticket" in capsys.readouterr().err


def test_a_host_name_starting_with_stt_is_a_host(
    seeds: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # "sttgw" is no ticket; with a PORT it is the host to dial, not a damaged ticket.
    host = "sttgw.invalid"
    assert main(["connect", host, "9000", "--shared-seed", str(seeds["shared"])]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"stt connect: cannot resolve the host {host!r}"), err
