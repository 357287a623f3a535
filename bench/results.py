"""The append-only results file of a run: one JSON row per measured cell.

Rows are written with a single ``write`` of one line followed by ``fsync``, so a run killed
at any moment leaves at most one partial last line. That line never counts: the next run
cuts it off before appending, and its cell is measured again. A cell whose id already
appears in the file is never measured twice.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from unetgan_core.errors import UserError

SCHEMA_VERSION = 1


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

    def rows(self) -> Iterator[dict[str, Any]]:
        """Complete rows, in the order they were written."""
        if not self.path.exists():
            return
        with open(self.path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.endswith("\n"):
                    return  # partial last line of a killed run
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    raise UserError(f"{self.path}:{number}: not a JSON row") from None
                if row.get("schema_version") != SCHEMA_VERSION:
                    raise UserError(
                        f"{self.path}:{number}: schema_version {row.get('schema_version')!r}, expected {SCHEMA_VERSION}"
                    )
                yield row

    def completed_cells(self) -> set[str]:
        return {row["cell_id"] for row in self.rows()}

    def append(self, rows: list[dict[str, Any]]) -> None:
        """Append rows of one cell in one write (all or, after a crash, none count)."""
        if not rows:
            return
        text = "".join(json.dumps({"schema_version": SCHEMA_VERSION, **row}, sort_keys=True) + "\n" for row in rows)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
