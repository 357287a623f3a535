"""unetgan-bench: the runner (``unetgan_bench.bench``), the reports (``unetgan_bench.reports``) and the
built-in suites (``unetgan_bench.suites``) under one import name, beside the models and data in
``unetgan_core``.

In the repository, ``bench/``, ``reports/`` and ``suites/`` are top-level folders linked in here;
installed, they are subpackages, so nothing is ever importable as a top-level ``bench`` or ``reports``.
"""

from importlib import metadata

try:
    __version__ = metadata.version("unetgan-bench")
except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree that is not installed
    __version__ = "0+unknown"
