"""Fixtures of the core tests: the in-memory network of :mod:`seigr_stt.testing`, through the
test helpers of :mod:`tests.core.net`."""

from __future__ import annotations

import pytest

from tests.core.net import Net, Pair, make_pair


@pytest.fixture
def net() -> Net:
    return Net()


@pytest.fixture
def pair() -> Pair:
    """Two endpoints with an established session and no traffic in flight."""
    return make_pair()
