"""Cheap checks of real-data files, for ``validate``: headers opened, sizes compared, no voxels decoded.

A truncated or corrupt file should stop ``unetgan-bench validate`` with one line naming it, not
a run hours later when the first cell reads it. Each real-data source knows which files a
subject needs (``check_subject_files``); ``sources.check_files`` walks the subjects.

What is caught cheaply: a header that does not parse, a file shorter than its header says
(a ``.gz`` is compared through the uncompressed size in its trailer, and decompressed in full
only when that disagrees), a path that is a file where a folder is expected. Corruption inside
the voxel data of a file of the right length is found when the data is read.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

from unetgan_core.errors import DataError

_CHUNK = 1 << 20


def require_folder(root: Path, source: str, layout: str) -> None:
    """Raise ``DataError`` unless ``root`` is a folder; a file gets its own message.

    Args:
        root: the data root of a source.
        source: the source's name, e.g. ``"mnms"``.
        layout: the expected layout, for the message.
    """
    if root.is_file():
        raise DataError(f"{source}: data root {root} is a file, expected a folder; expected {layout}")
    if not root.is_dir():
        raise DataError(f"{source}: data root {root} does not exist; expected {layout}")


def _gzip_size(path: Path, expected: int) -> int:
    """The uncompressed size of a ``.gz`` file; the trailer is trusted only when it says ``expected``."""
    with path.open("rb") as fh:
        fh.seek(0, 2)
        if fh.tell() >= 18:  # a gzip header (10 bytes) and trailer (8 bytes) at the least
            fh.seek(-4, 2)
            if int.from_bytes(fh.read(4), "little") == expected % 2**32:
                return expected
    # The trailer disagrees (a cut file ends inside the data): count by decompressing.
    size = 0
    with gzip.open(path, "rb") as stream:
        for block in iter(lambda: stream.read(_CHUNK), b""):
            size += len(block)
    return size


def check_stored_size(path: Path, expected: int, what: str) -> None:
    """Raise ``DataError`` if ``path`` (uncompressed, for ``.gz``) holds fewer than ``expected`` bytes.

    Args:
        path: the file.
        expected: bytes its header promises (header plus data).
        what: the format, for the message (e.g. ``"NIfTI"``).
    """
    try:
        size = _gzip_size(path, expected) if path.suffix == ".gz" else path.stat().st_size
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(
            f"{path}: truncated or corrupt {what} ({' '.join(str(exc).split()) or type(exc).__name__})"
        ) from None
    if size < expected:
        raise DataError(f"{path}: truncated {what}: {size} bytes, its header needs {expected}")
