"""``stt keygen`` and ``stt id`` (:mod:`seigr_stt.cli.keys`): seed files and node ids."""

from __future__ import annotations

import asyncio
import errno
import io
import os
import socket
import stat
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from seigr_stt.cli import keys, main
from seigr_stt.cli.errors import CLIError
from seigr_stt.core.identity import NodeIdentity, parse_seed
from tests.cli.helpers import NodeProcess, run

OLD = "old seed text, never a real one\n"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_keygen_writes_a_private_valid_seed(tmp_path: Path) -> None:
    target = tmp_path / "node.seed"
    assert main(["keygen", str(target)]) == 0
    assert _mode(target) == 0o600
    seed = parse_seed(target.read_text().strip())
    assert len(seed) == 32
    assert main(["keygen", str(target)]) == 1  # refuses to overwrite
    assert parse_seed(target.read_text().strip()) == seed
    assert main(["keygen", str(target), "--force", "--format", "base64"]) == 0
    assert parse_seed(target.read_text().strip()) != seed
    assert [p.name for p in tmp_path.iterdir()] == ["node.seed"]  # no temporary file left


def test_keygen_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keygen", "-"]) == 0
    assert len(bytes.fromhex(capsys.readouterr().out.strip())) == 32


def test_force_replaces_the_file_instead_of_writing_into_it(tmp_path: Path) -> None:
    """F13: an open reader keeps the old seed; the new file is 0600 whatever the old mode."""
    target = tmp_path / "shared.seed"
    target.write_text(OLD)
    target.chmod(0o644)
    old_inode = target.stat().st_ino
    with target.open() as reader:  # e.g. another user, or a process that kept it open
        assert main(["keygen", "--force", str(target)]) == 0
        assert reader.read() == OLD
    new_text = target.read_text()
    assert new_text != OLD
    assert len(parse_seed(new_text.strip())) == 32
    assert _mode(target) == 0o600
    assert target.stat().st_ino != old_inode
    assert [p.name for p in tmp_path.iterdir()] == ["shared.seed"]


@pytest.mark.parametrize("force", [True, False])
def test_a_symlink_target_is_refused_and_its_target_untouched(
    tmp_path: Path, force: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    real = tmp_path / "elsewhere"
    real.write_text(OLD)
    real.chmod(0o644)
    link = tmp_path / "node.seed"
    link.symlink_to(real)
    assert main(["keygen", str(link), *(["--force"] if force else [])]) == 2
    assert "is a symbolic link" in capsys.readouterr().err
    assert real.read_text() == OLD
    assert _mode(real) == 0o644
    assert link.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "node.seed"]


def test_a_dangling_symlink_is_refused_and_nothing_is_created(tmp_path: Path) -> None:
    link = tmp_path / "node.seed"
    link.symlink_to(tmp_path / "missing")
    assert main(["keygen", "--force", str(link)]) == 2
    assert not (tmp_path / "missing").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["node.seed"]


def _failing(error: int) -> Callable[..., None]:
    def fail(*args: object, **kwargs: object) -> None:
        raise OSError(error, os.strerror(error))

    return fail


@pytest.mark.parametrize("step", ["fsync", "replace", "write"])
def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    target = tmp_path / "node.seed"
    target.write_text(OLD)
    target.chmod(0o600)
    monkeypatch.setattr(os, step, _failing(errno.EIO))
    with pytest.raises(CLIError) as info:
        keys.write_private_file(target, b"new\n", force=True)
    monkeypatch.undo()
    assert info.value.code == 1
    assert "Input/output error" in str(info.value)
    assert target.read_text() == OLD
    assert [p.name for p in tmp_path.iterdir()] == ["node.seed"]


def test_an_unwritable_directory_is_a_usage_error(tmp_path: Path) -> None:
    assert main(["keygen", str(tmp_path / "no-such-dir" / "node.seed")]) == 2
    assert list(tmp_path.iterdir()) == []


def test_a_file_made_meanwhile_is_not_overwritten_without_force(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --force the final step fails if the name was taken after the existence check."""
    target = tmp_path / "node.seed"
    create_temp = keys._create_temp

    def racing(directory: Path, name: str) -> tuple[int, Path]:
        target.write_text(OLD)  # another process wins the race
        return create_temp(directory, name)

    monkeypatch.setattr(keys, "_create_temp", racing)
    with pytest.raises(CLIError, match="exists") as info:
        keys.write_private_file(target, b"new\n", force=False)
    assert info.value.code == 1
    assert target.read_text() == OLD
    assert [p.name for p in tmp_path.iterdir()] == ["node.seed"]


def test_without_hard_links_a_new_file_is_still_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "node.seed"
    monkeypatch.setattr(os, "link", _failing(errno.EPERM))
    keys.write_private_file(target, b"new\n", force=False)
    assert target.read_bytes() == b"new\n"
    assert _mode(target) == 0o600
    with pytest.raises(CLIError, match="exists"):
        keys.write_private_file(target, b"newer\n", force=False)
    assert target.read_bytes() == b"new\n"
    assert [p.name for p in tmp_path.iterdir()] == ["node.seed"]


def test_the_mode_is_0600_whatever_the_umask(tmp_path: Path) -> None:
    target = tmp_path / "node.seed"
    previous = os.umask(0o277)  # would leave 0400 on a file created 0600
    try:
        keys.write_private_file(target, b"x\n", force=False)
    finally:
        os.umask(previous)
    assert _mode(target) == 0o600


# -- stt id ------------------------------------------------------------------------------------
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any socket or event loop fail the test: ``stt id`` must need neither."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("stt id opened a socket or an event loop")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(asyncio, "new_event_loop", refuse)
    monkeypatch.setattr(asyncio, "Runner", refuse)


def test_id_prints_the_node_id_of_a_seed_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "node.seed"
    assert main(["keygen", str(target)]) == 0
    capsys.readouterr()
    text = target.read_text().strip()
    expected = NodeIdentity.from_seed(text).node_id.hex()
    monkeypatch.delenv("STT_NODE_SEED", raising=False)
    _no_network(monkeypatch)
    assert main(["id", str(target)]) == 0
    out, err = capsys.readouterr()
    assert out == expected + "\n"
    assert err == ""
    monkeypatch.setenv("STT_NODE_SEED", text)  # the environment, as the other commands read it
    assert main(["id"]) == 0
    assert capsys.readouterr().out == expected + "\n"
    monkeypatch.setattr(sys, "stdin", io.StringIO(text + "\n"))
    assert main(["id", "-"]) == 0
    out, err = capsys.readouterr()
    assert out == expected + "\n"
    assert text not in out + err


def test_id_matches_the_id_a_running_node_prints(
    echo_node: NodeProcess, seeds: dict[str, Path]
) -> None:
    result = run("id", str(seeds["node"]))
    assert result.returncode == 0, result.stderr
    assert f"node {result.stdout.strip()}" == echo_node.lines[0]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "No such file or directory"),
        ("00" * 32, "node_seed has too little entropy"),
        (bytes(range(32)).hex(), "node_seed is structured"),
        ("not a seed", "node_seed text is neither hex nor base64"),
    ],
)
def test_id_refuses_a_missing_or_weak_seed_with_exit_2(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    content: str | None,
    message: str,
) -> None:
    path = tmp_path / "node.seed"
    if content is not None:
        path.write_text(content + "\n")
        path.chmod(0o600)
    assert main(["id", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"stt id: {path}: ")
    assert message in err
    if content is not None:
        assert content[:16] not in err


def test_id_without_a_seed_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("STT_NODE_SEED", raising=False)
    assert main(["id"]) == 2
    assert "no node seed" in capsys.readouterr().err
