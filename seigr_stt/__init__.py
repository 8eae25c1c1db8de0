"""seigr_stt: an encrypted peer-to-peer node runtime (Noise XXpsk3 over UDP and WebSocket)."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
