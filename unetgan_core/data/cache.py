"""On-disk cache of generated ``SliceSet``s, addressed by the hash of their config.

A second request for the same config loads the ``.npz`` instead of generating. Files are
written to a unique temporary name and renamed into place, so a killed process never leaves
a half-written file under the final name. A cached file that cannot be read (truncated,
damaged: each ``.npz`` member carries the zip format's CRC-32, which ``np.load`` checks) is moved
aside as ``<name>.corrupt-<UTC time>``, reported in one line on stderr, and built again.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from unetgan_core.data.sliceset import SliceSet
from unetgan_core.errors import DataError
from unetgan_core.hashing import config_hash
from unetgan_core.quarantine import set_aside

CACHE_ENV = "UNETGAN_CACHE"


def default_cache_dir() -> Path:
    """``$UNETGAN_CACHE`` if set, else ``~/.cache/unetgan-bench``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "unetgan-bench"


def cache_path(key: Any, kind: str = "sliceset", cache_dir: str | Path | None = None) -> Path:
    """Where the slice set of config ``key`` lives: ``<cache_dir>/<kind>/<config_hash(key)>.npz``.

    Args:
        key: everything that determines the content (JSON-able; see ``hashing.canonical``).
        kind: a subfolder, e.g. ``"phantom"``.
        cache_dir: the cache root (default ``default_cache_dir()``).
    """
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return root / kind / f"{config_hash(key)}.npz"


def cached_sliceset(
    key: Any, build: Callable[[], SliceSet], kind: str = "sliceset", cache_dir: str | Path | None = None
) -> SliceSet:
    """Load the slice set cached under ``key``, or ``build()`` it and store it.

    Args:
        key: everything that determines the content; its ``config_hash`` names the file.
        build: makes the slice set when it is not cached.
        kind: subfolder of the cache root.
        cache_dir: cache root (default ``$UNETGAN_CACHE`` or ``~/.cache/unetgan-bench``).

    Returns:
        The slice set (loaded, or freshly built and saved; an unreadable cached file is set aside).
    """
    path = cache_path(key, kind, cache_dir)
    if path.exists():
        try:
            return SliceSet.load(path)
        except (DataError, zipfile.BadZipFile, EOFError) as exc:
            set_aside(path, str(exc) or type(exc).__name__)
    result = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".npz", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        result.save(tmp)
        os.replace(tmp, path)  # atomic on POSIX: readers see the old state or the whole file
    finally:
        tmp.unlink(missing_ok=True)
    return result
