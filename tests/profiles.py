"""Example counts relative to the hypothesis profile loaded by ``tests/conftest.py``."""

from __future__ import annotations

from hypothesis import settings

__all__ = ["scaled"]


def scaled(factor: float) -> int:
    """``factor`` times the loaded profile's ``max_examples`` (at least 1).

    For a property whose input space is large (random or mutated packets, a reference model) use
    a factor above 1; for one whose examples are costly (a whole simulated transfer) a factor
    below 1. Call it in the ``@settings(...)`` decorator: test modules are imported after the
    conftest has loaded the profile.
    """
    return max(1, round(settings().max_examples * factor))
