"""The send-file protocol (:mod:`seigr_stt.cli.filetransfer`): header, sender and receiver."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import pytest

from tests.cli.helpers import NodeProcess, run


def test_send_file_stores_it_with_the_same_sha256(
    echo_node: NodeProcess, seeds: dict[str, Path], receive_dir: Path, tmp_path: Path
) -> None:
    source = tmp_path / "payload.bin"
    data = os.urandom(700_000)
    source.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    result = run(
        "send-file", *echo_node.target, str(source), "--chunk-size", "50000",
        "--shared-seed", str(seeds["shared"]),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"sha256 {digest}" in result.stdout
    assert "stored by the node (sha256 matches, 700000 bytes)" in result.stdout
    line = echo_node.expect("received file payload.bin")
    assert f"sha256 {digest}" in line
    assert (receive_dir / "payload.bin").read_bytes() == data
    # A name that exists gets a suffix; only the base name of what the sender says is used.
    again = run(
        "send-file", *echo_node.target, str(source), "--name", "../payload.bin", "--no-progress",
        "--shared-seed", str(seeds["shared"]),
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert again.stderr == ""
    echo_node.expect("received file ../payload.bin")
    assert (receive_dir / "payload.bin.1").read_bytes() == data
    assert sorted(p.name for p in receive_dir.iterdir()) == ["payload.bin", "payload.bin.1"]


def test_progress_without_rich_prints_plain_lines(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from seigr_stt.cli.filetransfer import Progress

    monkeypatch.setitem(sys.modules, "rich.console", None)  # import fails as if not installed
    monkeypatch.setitem(sys.modules, "rich.progress", None)
    with Progress("data.bin", 1000, enabled=True) as progress:
        for _ in range(10):
            progress.advance(100)
    err = capsys.readouterr().err.splitlines()
    assert err == [f"data.bin: {n}/1000 bytes ({n // 10}%)" for n in (300, 500, 800, 1000)]


def test_send_file_header_layout() -> None:
    from seigr_stt.cli.filetransfer import encode_file_header

    assert encode_file_header("a.txt", 5) == b"STTF\x01\x00\x05a.txt" + (5).to_bytes(8, "big")
    with pytest.raises(ValueError, match="file name"):
        encode_file_header("", 1)
    with pytest.raises(ValueError, match="file name"):
        encode_file_header("x" * 1025, 1)
