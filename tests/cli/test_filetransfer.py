"""The send-file protocol (:mod:`seigr_stt.cli.filetransfer`): header, sender and receiver."""

from __future__ import annotations

import hashlib
import os
import stat
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
    assert stat.S_IMODE((receive_dir / "payload.bin").stat().st_mode) & 0o077 == 0  # 0600
    # stderr is not a terminal here: plain progress lines, no bar drawn
    assert "━" not in result.stderr
    assert "payload.bin: 700000/700000 bytes (100%)" in result.stderr
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


def test_progress_into_a_file_prints_plain_lines(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("rich")
    from seigr_stt.cli.filetransfer import Progress

    with Progress("data.bin", 100, enabled=True) as progress:  # stderr is captured: no terminal
        progress.advance(100)
    assert capsys.readouterr().err == "data.bin: 100/100 bytes (100%)\n"


def test_send_file_header_layout() -> None:
    from seigr_stt.cli.filetransfer import encode_file_header

    assert encode_file_header("a.txt", 5) == b"STTF\x01\x00\x05a.txt" + (5).to_bytes(8, "big")
    with pytest.raises(ValueError, match="file name"):
        encode_file_header("", 1)
    with pytest.raises(ValueError, match="file name"):
        encode_file_header("x" * 1025, 1)


@pytest.mark.parametrize(
    ("announced", "stored"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("/etc/shadow", "shadow"),
        ("a\\b\\..", "a_b_.."),
        ("..", "received"),
        ("x/..", "received"),
        ("  ", "received"),
        ("\x1b]0;owned\x07../evil\nname\x9b2J\x7f.txt", "evil_name_2J_.txt"),
        ("tab\there\x00nul\x85nel\u2028ls", "tab_here_nul_nel_ls"),
        (".stt-1f44aee4-0.part", "_.stt-1f44aee4-0.part"),
        ("héllo wörld.txt", "héllo wörld.txt"),
    ],
)  # fmt: skip
def test_safe_file_name_keeps_a_base_name_without_control_characters(
    announced: str, stored: str
) -> None:
    from seigr_stt.cli.filetransfer import safe_file_name

    name = safe_file_name(announced)
    assert name == stored
    assert "/" not in name
    assert name.isprintable()


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain name.txt", "plain name.txt"),
        ("é ü 名前", "é ü 名前"),
        ("\x1b[2J\x1b]0;owned\x07", "\\x1b[2J\\x1b]0;owned\\x07"),
        ("a\nb\rc\td", "a\\x0ab\\x0dc\\x09d"),
        ("\x7f\x9b\x85", "\\x7f\\x9b\\x85"),
        ("rtl\u202etxt.exe", "rtl\\u202etxt.exe"),
        ("back\\slash\\x1b", "back\\\\slash\\\\x1b"),  # a literal "\x1b" stays distinguishable
    ],
)  # fmt: skip
def test_printable_escapes_every_non_printable_character(text: str, shown: str) -> None:
    from seigr_stt.cli.console import printable

    assert printable(text) == shown
    assert "\x1b" not in printable(text)


def test_a_hostile_file_name_is_escaped_on_screen_and_sanitized_on_disk(
    seeds: dict[str, Path], tmp_path: Path
) -> None:
    """F17: ESC sequences, newlines, ``..`` and ``/`` in a peer's file name."""
    inbox = tmp_path / "inbox"
    source = tmp_path / "source.txt"
    source.write_bytes(b"payload")
    name = "\x1b[2J\x1b]0;owned\x07../../evil\nname\x9b31m\x7f.txt"
    node = NodeProcess.start(
        "--shared-seed", str(seeds["shared"]), "--no-ws", "--receive-dir", str(inbox)
    )
    try:
        sent = run(
            "send-file", *node.target, str(source), "--name", name, "--no-progress",
            "--shared-seed", str(seeds["shared"]),
        )  # fmt: skip
        assert sent.returncode == 0, sent.stderr
        line = node.expect("received file ")
    finally:
        assert node.stop() == 0, node.err
    node.expect("stopped")
    escaped = "\\x1b[2J\\x1b]0;owned\\x07../../evil\\x0aname\\x9b31m\\x7f.txt"
    assert line.startswith(f"received file {escaped} (7 bytes) from ")
    assert line.endswith(f"-> {inbox / 'evil_name_31m_.txt'}")
    assert "sending " + escaped in sent.stdout
    for text in [*node.lines, *node.err, sent.stdout, sent.stderr]:
        assert "\x1b" not in text
        assert "\x9b" not in text
    assert [p.name for p in inbox.iterdir()] == ["evil_name_31m_.txt"]
    assert (inbox / "evil_name_31m_.txt").read_bytes() == b"payload"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inbox", "source.txt"]
