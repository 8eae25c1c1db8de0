"""Settings shared by the whole suite: the hypothesis profiles.

``HYPOTHESIS_PROFILE`` chooses the profile; without it, ``ci`` when ``CI=true`` (CI sets it) and
``dev`` otherwise. ``pytest --hypothesis-profile NAME`` overrides both. A test that needs more
(or, being costly, fewer) examples than the profile's count asks for
:func:`tests.profiles.scaled`, never for a fixed number, so one knob sets the whole suite.
"""

from __future__ import annotations

import os

from hypothesis import settings

# dev: the edit-and-rerun loop on a laptop (also `make test` outside CI). Every property still
# runs on 50 examples, enough to catch a regression on a common path within seconds; the
# default deadline stays on, so a property that suddenly got slow shows up locally.
settings.register_profile("dev", max_examples=50)

# ci: the gate every change passes. 200 examples, twice hypothesis's own default and as many as
# the least thorough property had before the profiles (properties that need more scale it up:
# up to 700 for the hostile-packet fuzzers). No deadline: the CI machine is shared, and a slow
# moment there must not fail a test. print_blob: a failure prints the @reproduce_failure line.
settings.register_profile("ci", max_examples=200, deadline=None, print_blob=True)


def _profile_name() -> str:
    chosen = os.environ.get("HYPOTHESIS_PROFILE")
    if chosen:
        return chosen
    return "ci" if os.environ.get("CI", "").lower() in {"1", "true", "yes"} else "dev"


settings.load_profile(_profile_name())
