"""Name the files an external model came from by content, so a results row says which network it measured."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

from unetgan_core.hashing import file_sha256


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


def factory_file(factory: str, base_dir: Path) -> Path | None:
    """The source file of a ``"package.module:function"`` factory's module (looked up in ``base_dir``, then
    ``sys.path``, as the loader imports it), or None when it has no file or cannot be found."""
    module_name = factory.split(":")[0]
    loaded = sys.modules.get(module_name)
    if loaded is not None:
        origin = getattr(loaded, "__file__", None)
    else:
        sys.path.insert(0, str(base_dir))
        try:
            found = importlib.util.find_spec(module_name)
        except (ImportError, ValueError):
            found = None
        finally:
            sys.path.remove(str(base_dir))
        origin = found.origin if found is not None else None
    return Path(origin).resolve() if origin and Path(origin).is_file() else None


def declared_files(spec: Any, base_dir: Path) -> list[tuple[str, Path]]:
    """``(role, path)`` of the files that determine an external model's outputs, without loading it.

    Args:
        spec: its ``ExternalModelSpec``; ``path`` and ``weights`` are relative to ``base_dir``.
        base_dir: the suite file's folder.
    """
    base = Path(base_dir)
    out = [(role, base / relative) for role, relative in (("model", spec.path), ("weights", spec.weights)) if relative]
    source = factory_file(spec.factory, base) if spec.factory else None
    if source is not None:
        out.append(("factory_source", source))
    return out
