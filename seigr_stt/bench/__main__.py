"""``python -m seigr_stt.bench``: run the benchmark suite."""

import sys

from seigr_stt.bench import main

sys.exit(main())
