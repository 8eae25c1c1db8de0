"""``python -m seigr_stt``: the ``stt`` command line."""

from __future__ import annotations

import sys

from seigr_stt.cli import main

if __name__ == "__main__":  # pragma: no cover - exercised through subprocess tests
    sys.exit(main())
