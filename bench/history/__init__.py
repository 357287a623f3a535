"""A results history across commits: an SQL database of runs (``unetgan-bench history``).

``schema`` defines the tables and migrates older databases, ``store`` adds run folders and
queries them, ``cli`` is the ``history`` command line.
"""

from pathlib import Path

DEFAULT_DB = Path("runs") / "history.sqlite"  # the history database when --db is not given
