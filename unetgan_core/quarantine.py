"""Corrupt cache entries are moved aside, reported once, and rebuilt by their caller.

Shared by the artifact store (trained models) and the slice-set caches (phantom, preprocessed
real subjects): a damaged entry is renamed, not deleted, so it can still be looked at, and it is
never read again.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from unetgan_core.errors import DataError


def set_aside(path: Path, problem: str) -> Path | None:
    """Rename a corrupt artifact (folder or file) to ``<name>.corrupt-<UTC time>`` and say so on stderr.

    Returns:
        The new path, or None if another process moved it first (then it has reported it).

    Raises:
        DataError: it cannot be renamed (e.g. a read-only cache); the message says to delete it.
    """
    problem = " ".join(problem.split())
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    if aside.exists():
        aside = aside.with_name(f"{aside.name}-{os.getpid()}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DataError(
            f"{path} is corrupt ({problem}) and cannot be moved aside ({exc.strerror}); delete it and run again"
        ) from None
    print(f"warning: {path} is corrupt ({problem}); moved aside to {aside.name} and rebuilding", file=sys.stderr)
    return aside
