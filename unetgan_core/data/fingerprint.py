"""Content fingerprints of data files, so cached slices and trained models follow the data, not where it lies.

A file's fingerprint is its name relative to the data set's folder, its size and the SHA-256 of its bytes. The
same data set copied to another folder or machine (a fresh clone, a cluster worker with its own mount) gives the
same keys, and a file rewritten with new content gives new ones; touching a file changes nothing.

Hashing is done once per file version: the digest is remembered under the file's absolute path, size,
modification time and inode, in this process and in ``<cache>/digests/`` (one small text file each, written
atomically, when a subject is loaded; planning and ``validate`` only read them, so they write nothing), so a
large data set is read in full only the first time.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from unetgan_core.data.cache import default_cache_dir
from unetgan_core.errors import DataError
from unetgan_core.hashing import config_hash, file_sha256

_seen: dict[tuple, str] = {}


def _stat(path: Path) -> os.stat_result:
    try:
        return os.stat(path)
    except OSError:
        raise DataError(f"{path}: file is missing or unreadable") from None


def file_digest(
    path: Path, cache_dir: str | Path | None = None, remember: bool = True, st: os.stat_result | None = None
) -> str:
    """SHA-256 (hex) of ``path``'s bytes, remembered per file version (module docstring); ``remember=False``
    reads the on-disk memo but does not write it; ``st``: the file's ``os.stat`` if the caller has it."""
    st = st or _stat(path)
    version = (os.path.abspath(path), st.st_size, st.st_mtime_ns, st.st_ino)
    if version in _seen:
        return _seen[version]
    memo = (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / "digests" / config_hash(version)
    try:
        digest = memo.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        digest = ""
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        digest = _hash_file(path)
        if remember:
            _remember(memo, digest)
    _seen[version] = digest
    return digest


def _hash_file(path: Path) -> str:
    try:
        return file_sha256(path)
    except OSError:
        raise DataError(f"{path}: file is missing or unreadable") from None


def _remember(memo: Path, digest: str) -> None:
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=memo.parent, prefix=".tmp-")
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(digest)
        os.replace(tmp, memo)
    except OSError:
        pass  # a read-only cache only costs hashing again next time


def file_fingerprint(
    paths: Sequence[Path], root: str | Path | None = None, cache_dir: str | Path | None = None, remember: bool = True
) -> list[list]:
    """``[name, size in bytes, SHA-256]`` per file; the name is relative to ``root`` where the file lies under it.

    Args:
        paths: the files.
        root: the data set's folder (a file outside it keeps its absolute path as its name).
        cache_dir: where digests are remembered (default ``$UNETGAN_CACHE`` or ``~/.cache/unetgan-bench``).
        remember: write new digests to ``cache_dir`` (False: only read them).
    """
    base = os.path.abspath(root) if root is not None else None
    out = []
    for path in paths:
        st = _stat(Path(path))
        digest = file_digest(Path(path), cache_dir, remember, st)
        name = os.path.abspath(path)
        if base is not None and (name == base or name.startswith(base.rstrip(os.sep) + os.sep)):
            name = Path(os.path.relpath(name, base)).as_posix()
        out.append([name, st.st_size, digest])
    return out
