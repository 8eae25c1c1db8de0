"""Fixtures of the CLI tests: seed files and one echoing ``stt node`` shared by the package."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from seigr_stt.cli import main
from tests.cli.helpers import NodeProcess


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """main() run in-process configures logging as the CLI does; undo it after each test."""
    root, package = logging.getLogger(), logging.getLogger("seigr_stt")
    saved = (list(root.handlers), root.level, package.level)
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    package.setLevel(saved[2])


@pytest.fixture(scope="package")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("seeds")
    paths = {name: directory / f"{name}.seed" for name in ("shared", "node", "other")}
    for path in paths.values():
        assert main(["keygen", str(path)]) == 0
    return paths


@pytest.fixture(scope="package")
def receive_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("received")


@pytest.fixture(scope="package")
def echo_node(seeds: dict[str, Path], receive_dir: Path) -> Iterator[NodeProcess]:
    """One echoing node with a receive directory and a metrics port, shared by the package."""
    node = NodeProcess.start(
        "--node-seed",
        str(seeds["node"]),
        "--shared-seed",
        str(seeds["shared"]),
        "--echo",
        "--receive-dir",
        str(receive_dir),
        "--metrics-port",
        "0",
    )
    yield node
    assert node.stop() == 0, node.err
    node.expect("stopped")
