"""One knob for every test that waits on a real clock: ``STT_TESTS_TIMEOUT_FACTOR``.

The asyncio tests (``tests/aio/``) and the process-level tests (``tests/test_*.py``) bound
their waits with real timeouts: upper bounds that only keep a broken test from hanging, and
the short timeouts a test expects to expire (a connect to a silent peer). Written as multiples
of :data:`SECOND` or :data:`MS`, they all grow together on a slow or loaded machine::

    STT_TESTS_TIMEOUT_FACTOR=3 make pytest

The default factor 1 keeps every wait as it was written. Protocol timers set through
``NodeConfig`` (idle timeouts, keepalives) are not scaled: they are the behaviour under test,
not a bound on it. Like ``WEBSOCKETS_TESTS_TIMEOUT_FACTOR`` in the websockets test suite.
"""

from __future__ import annotations

import math
import os

__all__ = ["MS", "SECOND", "TIMEOUT_FACTOR"]

TIMEOUT_FACTOR = float(os.environ.get("STT_TESTS_TIMEOUT_FACTOR", "1"))
"""How much longer than written every real-clock wait of the tests may take."""
if not (math.isfinite(TIMEOUT_FACTOR) and TIMEOUT_FACTOR > 0):
    raise ValueError(f"STT_TESTS_TIMEOUT_FACTOR must be positive, not {TIMEOUT_FACTOR!r}")

SECOND = TIMEOUT_FACTOR
"""One second of test timeout, scaled: ``asyncio.timeout(10 * SECOND)``."""

MS = SECOND / 1000
"""One millisecond of test timeout, scaled: ``asyncio.sleep(50 * MS)``."""
