"""Every name of :mod:`seigr_stt.constants`, at the chapter's path.

``from seigr_stt.utils.constants import STT_SESSION_STATE_ACTIVE`` gives the very objects
``from seigr_stt.constants import ...`` gives (the chapter's
``seigr_toolset_transmissions.utils.constants`` after the package rename). New code imports
:mod:`seigr_stt.constants`.
"""

from __future__ import annotations

from seigr_stt.constants import *  # noqa: F403
