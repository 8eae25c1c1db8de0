"""``--allow-peer`` and ``--allowed-peers`` (:mod:`seigr_stt.cli.pinning`) on every node command."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from seigr_stt.cli import main
from seigr_stt.cli.parser import build_parser
from seigr_stt.cli.pinning import parse_node_id, read_allowed_peers
from seigr_stt.core.identity import NodeIdentity
from tests.cli.helpers import NodeProcess, run

NODE_COMMANDS = (
    ["node"],
    ["connect", "h", "1"],
    ["send", "h", "1", "m"],
    ["send-file", "h", "1", "f"],
    ["ping", "h", "1"],
)


def _node_id(seed_file: Path) -> str:
    return NodeIdentity.from_seed(seed_file.read_text().strip()).node_id.hex()


@pytest.fixture
def members(tmp_path: Path) -> dict[str, Path]:
    """A shared seed and three member seeds: a, b and c."""
    paths = {name: tmp_path / f"{name}.seed" for name in ("shared", "a", "b", "c")}
    for path in paths.values():
        assert main(["keygen", str(path)]) == 0
    return paths


def test_a_pinned_node_accepts_listed_peers_and_refuses_others(
    members: dict[str, Path], tmp_path: Path
) -> None:
    allowed = tmp_path / "allowed-peers"
    allowed.write_text(f"# who may connect\n\n  {_node_id(members['a'])}  # a, with a comment\n\n")
    shared = ("--shared-seed", str(members["shared"]))
    short = ("--timeout", "1")  # c's handshake is never answered
    node = NodeProcess.start(
        *shared, "--no-ws", "--metrics-port", "0", "--allowed-peers", str(allowed),
        "--allow-peer", _node_id(members["b"]),
    )  # fmt: skip
    try:
        results = {
            name: run("connect", *node.target, *shared, *short, "--node-seed", str(members[name]))
            for name in ("a", "b", "c")
        }
        assert node.metrics_url is not None
        metrics = run("stats", "--url", node.metrics_url, "--raw")
    finally:
        code = node.stop()
    assert code == 0, node.err
    assert results["a"].returncode == 0, results["a"].stderr  # listed in the file
    assert results["b"].returncode == 0, results["b"].stderr  # listed with --allow-peer
    assert results["c"].returncode == 3  # not listed: the node never answers its handshake
    assert "does not allow our node id" in results["c"].stderr
    assert 'stt_drops_total{reason="peer_refused"} 1.0' in metrics.stdout
    log = "\n".join(node.err)
    assert "pinned: sessions only with 2 node id(s)" in log
    assert log.count("session established with") == 2
    assert f"session established with {_node_id(members['c'])[:16]}" not in log


def test_every_client_command_fails_against_an_unpinned_node(
    echo_node: NodeProcess, seeds: dict[str, Path], tmp_path: Path
) -> None:
    node_id = echo_node.lines[0].removeprefix("node ")
    shared = ("--shared-seed", str(seeds["shared"]))
    pinned = run("connect", *echo_node.target, *shared, "--allow-peer", node_id.upper())
    assert pinned.returncode == 0, pinned.stderr
    assert f"peer       {node_id}" in pinned.stdout
    source = tmp_path / "data.txt"
    source.write_text("not sent")
    other = ("--allow-peer", os.urandom(32).hex())
    for command in (
        ["connect", *echo_node.target],
        ["send", *echo_node.target, "not sent"],
        ["ping", *echo_node.target, "-c", "1"],
        ["send-file", *echo_node.target, str(source), "--no-progress"],
    ):
        result = run(*command, *shared, *other)
        assert result.returncode == 1, (command, result.stderr)
        assert f"the peer {node_id[:16]}… is not in allowed_peers" in result.stderr, command


@pytest.mark.parametrize("command", NODE_COMMANDS, ids=lambda c: c[0])
@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("xyz", "invalid node id 'xyz'"),
        ("ab" * 31 + "a", "invalid node id '" + "ab" * 31 + "a'"),  # 63 digits
        ("0x" + "ab" * 32, "invalid node id '0x" + "ab" * 32 + "'"),
        ("ab" * 32 + "00", "invalid node id '" + "ab" * 32 + "00'"),
    ],
)
def test_a_malformed_allow_peer_is_a_usage_error_naming_it(
    command: list[str], value: str, shown: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args([*command, "--allow-peer", "ab" * 32, "--allow-peer", value])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --allow-peer: {shown}: expected 64 hex digits" in err


def test_a_seed_given_as_a_node_id_is_not_shown(capsys: pytest.CaptureFixture[str]) -> None:
    seed = base64.b64encode(os.urandom(32)).decode()
    with pytest.raises(SystemExit):
        build_parser().parse_args(["connect", "h", "1", "--allow-peer", seed])
    err = capsys.readouterr().err
    assert "decodes as a seed, not a node id" in err
    assert seed[:12] not in err


def test_the_allowed_peers_file_format(tmp_path: Path) -> None:
    first, second = os.urandom(32), os.urandom(32)
    path = tmp_path / "peers"
    path.write_text(f"# comment\n\n{first.hex()}\n\t{second.hex().upper()}  # second\n# end")
    assert read_allowed_peers(None, str(path)) == frozenset({first, second})
    assert read_allowed_peers([first], None) == frozenset({first})
    third = os.urandom(32)
    assert read_allowed_peers([third, first], str(path)) == frozenset({first, second, third})
    assert read_allowed_peers(None, None) is None
    assert parse_node_id(f"  {first.hex()}\n") == first


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "No such file or directory"),
        ("# nobody\n\n", "lists no node id"),
        (f"{'ab' * 32}\n{'cd' * 32}\n00f51cf444c58e7a  # a log prefix\n",
         "line 3: invalid node id '00f51cf444c58e7a': expected 64 hex digits"),
        (f"{'ab' * 32} {'cd' * 32}\n", "line 1: invalid node id"),
    ],
)  # fmt: skip
def test_a_bad_allowed_peers_file_is_a_usage_error(
    members: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: str | None,
    message: str,
) -> None:
    path = tmp_path / "peers"
    if content is not None:
        path.write_text(content)
    for command in NODE_COMMANDS[1:]:  # `stt node` reads them the same way (read_seeds)
        argv = [*command, "--shared-seed", str(members["shared"]), "--allowed-peers", str(path)]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"stt {command[0]}: --allowed-peers {path}"), err
        assert message in err


def test_pinning_a_seed_instead_of_a_node_id_is_refused(
    members: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    node_seed = members["a"].read_text().strip()  # hex: it looks like a node id
    argv = ["node", "--node-seed", str(members["a"]), "--shared-seed", str(members["shared"])]
    assert main([*argv, "--allow-peer", node_seed]) == 2
    err = capsys.readouterr().err
    assert "a pinned node id is one of this command's seeds" in err
    assert node_seed[:16] not in err
