"""The append-only results file of a run: one JSON row per measured cell.

Rows are written with a single ``write`` of one line followed by ``fsync``, so a run killed
at any moment leaves at most one partial last line. That line never counts: the next run
cuts it off before appending, and its cell is measured again. A cell whose id already
appears in the file is never measured twice. Rows are read back through ``reports.rundir``;
they are built by ``bench.rows``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from unetgan_bench.reports import rundir


class ResultsFile:
    """``results.jsonl`` of one run folder.

    Args:
        path: the file; created on the first append.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def repair(self) -> int:
        """Drop a partial last line left by a killed run; returns the bytes removed."""
        if not self.path.exists():
            return 0
        with open(self.path, "rb+") as f:
            data = f.read()
            if not data or data.endswith(b"\n"):
                return 0
            keep = data.rfind(b"\n") + 1
            f.truncate(keep)
            return len(data) - keep

    def append(self, rows: list[dict[str, Any]]) -> None:
        """Append rows of one cell in one write (all or, after a crash, none count).

        Raises:
            DataError: a row is not one that ``reports.rundir.read_rows`` would read back.
        """
        if not rows:
            return
        for number, row in enumerate(rows, 1):
            rundir.parse_row(dict(row), f"row {number} to append to {self.path}")
        text = "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
