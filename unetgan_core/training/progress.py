"""Run bookkeeping shared by the training loops: a progress bar and an append-only JSON-lines log."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from unetgan_core.hashing import canonical


def progress_bar(total: int, desc: str, enabled: bool = True) -> tqdm:
    """A tqdm bar over ``total`` steps, silent when ``enabled`` is False or stderr is not a terminal.

    Args:
        total: number of updates expected (steps or batches).
        desc: short label shown before the bar.
        enabled: the caller's wish; a bar is also off in batch jobs, where it would only fill the log.
    """
    on = enabled and sys.stderr.isatty()
    return tqdm(total=total, desc=desc, disable=not on, leave=False, dynamic_ncols=True)


class JsonlLog:
    """Appends one JSON object per line to ``path`` (never truncates: earlier runs stay readable).

    Args:
        path: the log file, or None to keep nothing on disk (records are still returned by ``write``).
    """

    def __init__(self, path: str | Path | None) -> None:
        self.path = None if path is None else Path(path)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, record: dict[str, Any]) -> dict[str, Any]:
        """Append ``record`` (made JSON-safe) and return it."""
        clean = canonical(record)
        if self.path is not None:
            with self.path.open("a") as fh:
                fh.write(json.dumps(clean, sort_keys=True) + "\n")
        return clean
