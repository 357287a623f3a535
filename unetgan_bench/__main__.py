"""``python -m unetgan_bench``: the same as the ``unetgan-bench`` command."""

import sys

from unetgan_bench.bench.cli import main

sys.exit(main())
