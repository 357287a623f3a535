"""Artifacts (trained models and their logs) addressed by a content hash.

``<root>/<kind>/<key>/`` holds one artifact; it is built in a temporary folder and renamed
into place, so it either exists whole or not at all. The key is a hash of everything that
determines the artifact, so any suite or process asking for the same thing finds it.

A temporary folder is named ``.<key>.<pid>.<random>``; one whose process is gone (killed in the
middle of a build) is removed the next time that artifact is built on the same machine.

Each artifact records the SHA-256 of its files in ``checksums.json`` when it is built. A folder
whose files no longer match (truncated, overwritten, a file gone), or that its reader rejects
with a ``DataError`` (``ArtifactStore.open``), is corrupt: it is reported in one line on stderr,
renamed to ``<key>.corrupt-<UTC time>`` (kept for inspection, never read again) and built anew,
so a damaged cache heals on the next run instead of failing every run until deleted by hand.
Folders from before checksums were recorded are accepted as they are; their reader still checks them.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from unetgan_core.errors import DataError
from unetgan_core.hashing import file_sha256
from unetgan_core.quarantine import set_aside

DEFAULT_ROOT = Path(os.environ.get("UNETGAN_CACHE", Path.home() / ".cache" / "unetgan-bench"))
CHECKSUMS = "checksums.json"
T = TypeVar("T")


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
        """Whether the artifact is built and its files match their checksums."""
        final = self.path(kind, key)
        return final.is_dir() and damage(final) is None

    def build(self, kind: str, key: str, make: Callable[[Path], None]) -> Path:
        """Return the artifact folder, calling ``make(tmp_dir)`` to fill it if it is missing or corrupt."""
        final = self.path(kind, key)
        if final.is_dir():
            problem = damage(final)
            if problem is None:
                return final
            set_aside(final, problem)
        final.parent.mkdir(parents=True, exist_ok=True)
        remove_abandoned(final.parent, key)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.{os.getpid()}.", dir=final.parent))
        try:
            make(tmp)
            (tmp / CHECKSUMS).write_text(json.dumps(checksums(tmp), indent=1, sort_keys=True))
            try:
                os.rename(tmp, final)
            except OSError:
                if not final.is_dir():  # another process finished the same artifact first: keep theirs
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return final

    def open(self, kind: str, key: str, make: Callable[[Path], None], read: Callable[[Path], T]) -> T:
        """``read(folder)`` of the artifact, built first if needed (see ``build``).

        An artifact that ``read`` rejects with a ``DataError`` (e.g. an unloadable checkpoint that
        predates checksums) is set aside and built once more; a second rejection is raised.
        """
        folder = self.build(kind, key, make)
        try:
            return read(folder)
        except DataError as exc:
            set_aside(folder, str(exc))
        return read(self.build(kind, key, make))


def checksums(folder: Path) -> dict[str, str]:
    """SHA-256 (hex) of every file in ``folder`` by relative path, except the checksum file itself."""
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != CHECKSUMS:
            out[path.relative_to(folder).as_posix()] = file_sha256(path)
    return out


def damage(folder: Path) -> str | None:
    """What is wrong with an artifact folder's files, or None if they match its recorded checksums.

    A folder without ``checksums.json`` (built before they were recorded) is not checked.
    """
    record = folder / CHECKSUMS
    if not record.exists():
        return None
    try:
        expected = json.loads(record.read_text())
        if not isinstance(expected, dict):
            raise ValueError("not a JSON object")
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return f"unreadable {CHECKSUMS} ({type(exc).__name__})"
    try:
        found = checksums(folder)
    except OSError as exc:
        return f"unreadable file ({exc.strerror or type(exc).__name__})"
    for name in sorted(expected.keys() | found.keys()):
        if name not in found:
            return f"{name} is missing"
        if name not in expected:
            return f"{name} was added after it was built"
        if expected.get(name) != found[name]:
            return f"{name} does not match the checksum recorded when it was built"
    return None


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
