"""The argparse tree (:mod:`seigr_stt.cli.parser`): usage errors, help, numeric argument types."""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
from collections.abc import Callable

import pytest

from seigr_stt.cli.parser import build_parser, number
from tests.cli.helpers import clean_env, run
from tests.timing import SECOND

COMMANDS = (
    "keygen", "id", "node", "connect", "send", "send-file", "ping", "show", "stats", "bench",
    "demo",
)  # fmt: skip
CLIENTS = ("connect", "send", "send-file", "ping")  # they handshake: exit code 3 applies


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
            env=clean_env(),
        )
        for command in commands
    ]
    results = [(*proc.communicate(timeout=60 * SECOND), proc.returncode) for proc in procs]
    top_out = results[0][0]
    for command, (out, err, code) in zip(COMMANDS, results[1:], strict=True):
        assert command in top_out
        assert code == 0, (command, err)
        assert "usage:" in out, command
        assert "exit codes:" in out, command
        assert "\n\nexit codes:\n" in out, command  # a paragraph of its own
        assert ("3    handshake timeout" in out) == (command in CLIENTS), command
        if command in CLIENTS:
            assert f"usage: stt {command} [options] (HOST PORT | --ws URL | TICKET)" in out
        if command in ("bench", "node", "stats", "connect"):
            assert "--log-level" in out, command
    stats = results[1 + COMMANDS.index("stats")][0]
    assert "usage: stt stats [options] (HOST PORT | --url URL)" in stats
    keygen = results[1 + COMMANDS.index("keygen")][0]
    assert "how the 32 random bytes are written" in keygen  # --format


PORT = number(int, name="port", minimum=0, maximum=65535)
POSITIVE_INT = number(int, positive=True)
NON_NEGATIVE_INT = number(int, minimum=0)
POSITIVE_FLOAT = number(float, positive=True)


@pytest.mark.parametrize(
    ("parse", "text", "value"),
    [
        (PORT, "0", 0),
        (PORT, "65535", 65535),
        (POSITIVE_INT, "1", 1),
        (POSITIVE_INT, " 7 ", 7),
        (NON_NEGATIVE_INT, "0", 0),
        (POSITIVE_FLOAT, "0.25", 0.25),
        (POSITIVE_FLOAT, "5", 5.0),
        (POSITIVE_FLOAT, "inf", math.inf),
        (number(int, minimum=3, maximum=3), "3", 3),
        (number(float, maximum=1.5), "-4", -4.0),
    ],
)
def test_number_accepts_values_within_its_bounds(
    parse: Callable[[str], float], text: str, value: float
) -> None:
    got = parse(text)
    assert got == value
    assert type(got) is type(value)


@pytest.mark.parametrize(
    ("parse", "text", "message"),
    [
        (PORT, "x", "invalid port 'x'"),
        (PORT, "-1", "port -1 is not within 0..65535"),
        (PORT, "65536", "port 65536 is not within 0..65535"),
        (POSITIVE_INT, "0", "0 is not positive"),
        (POSITIVE_INT, "-3", "-3 is not positive"),
        (POSITIVE_INT, "1.5", "invalid number '1.5'"),
        (NON_NEGATIVE_INT, "-1", "-1 is negative"),
        (NON_NEGATIVE_INT, "", "invalid number ''"),
        (POSITIVE_FLOAT, "0", "0 is not positive"),
        (POSITIVE_FLOAT, "-2.5", "-2.5 is not positive"),
        (POSITIVE_FLOAT, "1e-400", "0 is not positive"),  # underflows to 0.0
        (POSITIVE_FLOAT, "nan", "nan is not positive"),
        (POSITIVE_FLOAT, "abc", "invalid number 'abc'"),
        (number(int, minimum=3), "2", "2 is less than 3"),
        (number(float, maximum=1.5), "2", "2 is greater than 1.5"),
        (number(float, name="ratio", minimum=0.0, maximum=1.0), "nan",
         "ratio nan is not within 0.0..1.0"),
    ],
)  # fmt: skip
def test_number_rejects_with_its_message(
    parse: Callable[[str], float], text: str, message: str
) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as info:
        parse(text)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["node", "--port", "70000"], "argument --port: port 70000 is not within 0..65535"),
        (["node", "--metrics-port", "x"], "argument --metrics-port: invalid port 'x'"),
        (["stats", "127.0.0.1", "-1"], "argument PORT: port -1 is not within 0..65535"),
        (["send-file", "h", "1", "f", "--chunk-size", "0"],
         "argument --chunk-size: 0 is not positive"),
        (["ping", "h", "1", "-c", "1.5"], "argument --count/-c: invalid number '1.5'"),
        (["send", "h", "1", "m", "--stream", "-1"], "argument --stream: -1 is negative"),
        (["connect", "h", "1", "--timeout", "nan"], "argument --timeout: nan is not positive"),
        (["stats", "--timeout", "-2.5"], "argument --timeout: -2.5 is not positive"),
    ],
)  # fmt: skip
def test_numeric_options_reject_bad_values_with_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(argv)
    assert info.value.code == 2
    assert capsys.readouterr().err.rstrip().endswith(f"error: {message}")


def test_numeric_options_parse_their_values() -> None:
    parser = build_parser()
    node = parser.parse_args(["node", "--port", "0", "--ws-port", "65535"])
    assert (node.port, node.ws_port, node.metrics_port) == (0, 65535, None)
    ping = parser.parse_args(["ping", "h", "9", "-c", "3", "--stream", "0", "--timeout", "0.5"])
    assert (ping.port, ping.count, ping.stream, ping.timeout) == (9, 3, 0, 0.5)
    send_file = parser.parse_args(["send-file", "h", "9", "f"])
    assert (send_file.chunk_size, send_file.timeout) == (65536, 5.0)
