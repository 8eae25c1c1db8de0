"""``stt keygen`` (:mod:`seigr_stt.cli.keys`): a new file of mode 0600, written atomically."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from seigr_stt.cli import keys, main
from seigr_stt.cli.errors import CLIError
from seigr_stt.core.identity import parse_seed

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
