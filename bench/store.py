"""Artifacts (trained models and their logs) addressed by a content hash.

``<root>/<kind>/<key>/`` holds one artifact; it is built in a temporary folder and renamed
into place, so it either exists whole or not at all. The key is a hash of everything that
determines the artifact, so any suite or process asking for the same thing finds it.

A temporary folder is named ``.<key>.<pid>.<random>``; one whose process is gone (killed in the
middle of a build) is removed the next time that artifact is built on the same machine.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

DEFAULT_ROOT = Path(os.environ.get("UNETGAN_CACHE", Path.home() / ".cache" / "unetgan-bench"))


class ArtifactStore:
    """Content-addressed folders of artifacts.

    Args:
        root: the cache folder (default ``$UNETGAN_CACHE`` or ``~/.cache/unetgan-bench``).
    """

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else DEFAULT_ROOT

    def path(self, kind: str, key: str) -> Path:
        return self.root / kind / key

    def exists(self, kind: str, key: str) -> bool:
        return self.path(kind, key).is_dir()

    def build(self, kind: str, key: str, make: Callable[[Path], None]) -> Path:
        """Return the artifact folder, calling ``make(tmp_dir)`` to fill it if it is missing."""
        final = self.path(kind, key)
        if final.is_dir():
            return final
        final.parent.mkdir(parents=True, exist_ok=True)
        remove_abandoned(final.parent, key)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.{os.getpid()}.", dir=final.parent))
        try:
            make(tmp)
            try:
                os.rename(tmp, final)
            except OSError:
                if not final.is_dir():  # another process finished the same artifact first: keep theirs
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return final


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def remove_abandoned(folder: Path, key: str) -> list[Path]:
    """Remove ``key``'s temporary build folders in ``folder`` whose building process no longer runs.

    Folders of live processes (another run building the same artifact right now) are left alone.

    Returns:
        The folders removed.
    """
    removed = []
    for tmp in folder.glob(f".{key}.*"):
        pid = tmp.name[len(key) + 2 :].split(".", 1)[0]
        if tmp.is_dir() and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp)
    return removed
