"""Seeds (:mod:`seigr_stt.cli.seeds`): files, environment variables, and never shown."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from seigr_stt.cli.errors import CLIError
from seigr_stt.cli.seeds import Seeds, read_seeds
from seigr_stt.core.identity import parse_seed
from tests.cli.helpers import run


def _args(node_seed: str | None = None, shared_seed: str | None = None) -> argparse.Namespace:
    """What read_seeds reads: the seed options and the pinning options (none given)."""
    return argparse.Namespace(
        node_seed=node_seed, shared_seed=shared_seed, allow_peer=None, allowed_peers=None
    )


def test_missing_or_weak_seeds_are_usage_errors(tmp_path: Path, seeds: dict[str, Path]) -> None:
    result = run("connect", "127.0.0.1", "9", "--timeout", "1")
    assert result.returncode == 2
    assert "no shared seed" in result.stderr
    weak = tmp_path / "weak.seed"
    weak.write_text("00" * 32)
    weak.chmod(0o600)
    result = run("connect", "127.0.0.1", "9", "--shared-seed", str(weak))
    assert result.returncode == 2
    assert "entropy" in result.stderr
    assert "00" * 16 not in result.stderr
    assert "`stt keygen FILE`" in result.stderr  # the CLI's remedy, not the library's function
    assert "generate_seed" not in result.stderr
    result = run("connect", "127.0.0.1", "--shared-seed", str(seeds["shared"]))
    assert result.returncode == 2
    assert "HOST and PORT" in result.stderr
    result = run("connect", "127.0.0.1", "notaport", "--shared-seed", str(seeds["shared"]))
    assert result.returncode == 2


def test_seeds_from_files_before_the_environment(
    seeds: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    shared_text = seeds["shared"].read_text().strip()
    monkeypatch.setenv("STT_SHARED_SEED", seeds["other"].read_text().strip())
    monkeypatch.delenv("STT_NODE_SEED", raising=False)
    from_env = read_seeds(_args())
    assert from_env.shared == parse_seed(seeds["other"].read_text().strip())
    assert from_env.node is None
    from_files = read_seeds(_args(node_seed=str(seeds["node"]), shared_seed=str(seeds["shared"])))
    assert from_files.shared == parse_seed(shared_text)
    assert from_files.node == parse_seed(seeds["node"].read_text().strip())


def test_a_seed_never_shows_in_a_repr_or_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    node, shared = bytes(range(32)), bytes(range(100, 132))
    for text in (repr(Seeds(node, shared)), str(Seeds(None, shared))):
        assert node.hex()[:8] not in text
        assert shared.hex()[:8] not in text
    weak = "00" * 32
    monkeypatch.setenv("STT_SHARED_SEED", weak)
    with pytest.raises(CLIError) as info:
        read_seeds(_args())
    assert info.value.code == 2
    assert str(info.value).startswith("STT_SHARED_SEED: ")
    assert "00" * 8 not in str(info.value)
