"""Content hashes that address artifacts (data sets, checkpoints, cells).

A hash is taken over a canonical JSON form of a config (sorted keys, no spaces), so the
same settings give the same address on any machine and in any process.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

# Field metadata flag: a setting added after artifacts were cached is left out of the canonical form while it has
# its default value, so adding it does not change the address of anything trained before (``schema.field``).
OMIT_DEFAULT = "omit_default"


def _at_default(f: dataclasses.Field, value: Any) -> bool:
    if not f.metadata.get(OMIT_DEFAULT):
        return False
    default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    return value == default


def canonical(obj: Any) -> Any:
    """Turn dataclasses, tuples and numpy scalars into plain JSON-able values.

    A dataclass field whose metadata sets :data:`OMIT_DEFAULT` is left out while it holds its default.
    """
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = [
            (f.name, getattr(obj, f.name)) for f in dataclasses.fields(obj) if not _at_default(f, getattr(obj, f.name))
        ]
        return {name: canonical(value) for name, value in sorted(fields)}
    if isinstance(obj, dict):
        return {str(k): canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [canonical(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy / torch scalars
        return obj.item()
    return obj


def config_hash(obj: Any, length: int = 16) -> str:
    """Hex digest (``length`` characters) of the canonical JSON of ``obj``."""
    text = json.dumps(canonical(obj), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def derive_seed(*parts: Any) -> int:
    """A 31-bit seed derived from ``parts`` (so nothing depends on one global seed)."""
    return int(config_hash(list(parts), 8), 16) & 0x7FFFFFFF


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read ``chunk`` bytes at a time (a large file is never loaded whole)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()
