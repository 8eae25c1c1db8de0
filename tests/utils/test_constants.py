"""``seigr_stt.utils.constants``: the chapter's import path gives the very objects of
``seigr_stt.constants``."""

from __future__ import annotations

import seigr_stt.constants
import seigr_stt.utils.constants


def test_the_chapters_import_path_works() -> None:
    from seigr_stt.utils.constants import (
        STT_SESSION_STATE_ACTIVE,
        STT_SESSION_STATE_CLOSED,
        STT_SESSION_STATE_CLOSING,
        STT_SESSION_STATE_HANDSHAKE,
    )

    assert (
        STT_SESSION_STATE_HANDSHAKE,
        STT_SESSION_STATE_ACTIVE,
        STT_SESSION_STATE_CLOSING,
        STT_SESSION_STATE_CLOSED,
    ) == (0x00, 0x01, 0x02, 0x03)


def test_every_public_constant_is_re_exported() -> None:
    public = [name for name in vars(seigr_stt.constants) if name.isupper() or name[0].isupper()]
    assert public
    for name in public:
        assert getattr(seigr_stt.utils.constants, name) is getattr(seigr_stt.constants, name)
