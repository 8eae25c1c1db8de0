"""Events are small frozen dataclasses; the receive path's fast constructor makes the same."""

from __future__ import annotations

from dataclasses import FrozenInstanceError

import pytest

from seigr_stt.core.events import StreamDataReceived, stream_data_received


def test_stream_data_received_fast_constructor_makes_the_same_event() -> None:
    fast = stream_data_received(b"12345678", 5, b"bytes", False)
    assert fast == StreamDataReceived(b"12345678", 5, b"bytes", False)
    assert repr(fast) == repr(StreamDataReceived(b"12345678", 5, b"bytes", False))
    assert isinstance(fast, StreamDataReceived)
    with pytest.raises(FrozenInstanceError):
        fast.fin = True  # type: ignore[misc]
