"""Name the files an external model came from by content, so a results row says which network it measured."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20  # bytes read at a time, so a large model file is hashed without loading it whole


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_record(role: str, path: Path) -> dict[str, Any]:
    """``{"role", "file", "path", "size_bytes", "sha256"}`` of one file.

    Args:
        role: what the file is to the model: ``model``, ``weights`` or ``factory_source``.
        path: the file.
    """
    path = Path(path)
    return {
        "role": role,
        "file": path.name,
        "path": str(path),
        "size_bytes": path.stat().st_size,
        "sha256": file_sha256(path),
    }
