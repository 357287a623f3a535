"""Outside code that adds scenarios, Unet training variants, translators, attacks and data sources.

A plugin is a Python module that registers what it adds when it is imported, through the existing
registries (``SCENARIOS``, ``VARIANTS``, ``ATTACKS``, ``DATA_SOURCES``, ``MODELS``; see
docs/architecture.md, "Plugins"). It comes in two ways:

- a suite's ``[suite] plugins = ["my_package.my_methods"]``: imported before the suite's names are
  checked (``import_plugins``), and again wherever the suite's plan is built (worker processes);
- the ``unetgan_bench.plugins`` entry-point group of an installed distribution: every entry point is
  loaded once, before a registry is listed or a suite is checked (``load_entry_points``).

``plugin_versions`` names each plugin module with the distribution and version it came from, for the
run's provenance.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Sequence
from typing import Any

from unetgan_core.errors import UserError

ENTRY_POINT_GROUP = "unetgan_bench.plugins"

# module name -> how it came in ("suite" or "entry point <name>"), in import order.
_IMPORTED: dict[str, str] = {}
_ENTRY_POINTS_LOADED = False


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def import_plugins(modules: Sequence[str], where: str) -> None:
    """Import each plugin module (once per process), so its registrations exist before names are checked.

    Args:
        modules: dotted module names, e.g. ``["my_package.my_methods"]``.
        where: ``"<file>: [suite] plugins"``, the prefix of error messages.

    Raises:
        UserError: a module that is not found, fails on import, or registers a name that is taken.
    """
    for module in modules:
        if module in _IMPORTED:
            continue
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and module.startswith(exc.name):
                raise UserError(f"{where}: module {module!r} not found (is its package installed?)") from None
            raise UserError(f"{where}: importing {module!r} failed: {_one_line(exc)}") from None
        except Exception as exc:  # the plugin's own error, or a name it registers twice
            raise UserError(f"{where}: importing {module!r} failed: {_one_line(exc)}") from None
        _IMPORTED[module] = "suite"


def load_entry_points() -> None:
    """Load every ``unetgan_bench.plugins`` entry point of the installed distributions, once per process.

    Raises:
        UserError: an entry point that fails to load, naming it and its distribution.
    """
    global _ENTRY_POINTS_LOADED
    if _ENTRY_POINTS_LOADED:
        return
    _ENTRY_POINTS_LOADED = True
    for entry in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if entry.module in _IMPORTED:
            continue
        try:
            entry.load()
        except Exception as exc:
            dist = entry.dist.name if entry.dist is not None else "an installed distribution"
            raise UserError(
                f"plugin entry point {entry.name!r} ({entry.value}) of {dist} failed to load: {_one_line(exc)}"
            ) from None
        _IMPORTED[entry.module] = f"entry point {entry.name}"


def entry_point_modules() -> list[str]:
    """The plugin modules loaded through the ``unetgan_bench.plugins`` entry points in this process."""
    return [module for module, via in _IMPORTED.items() if via != "suite"]


def _distribution(module: str) -> tuple[str | None, str | None]:
    """The distribution that installs ``module``'s top-level package, and its version (None, None if none)."""
    top = module.split(".")[0]
    for dist in importlib.metadata.packages_distributions().get(top, []):
        try:
            return dist, importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None, None


def plugin_versions(modules: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Plugin modules with where they came from, their distribution and version (JSON-ready).

    Args:
        modules: the modules to describe (default: every plugin imported in this process).

    Returns:
        ``[{"module", "via", "distribution", "version"}]``; ``distribution`` and ``version`` are None for a
        module that is not part of an installed distribution, ``version`` falls back to its ``__version__``.
    """
    out = []
    for module in _IMPORTED if modules is None else modules:
        dist, version = _distribution(module)
        if version is None:
            version = getattr(importlib.import_module(module), "__version__", None)
        out.append({"module": module, "via": _IMPORTED.get(module, "suite"), "distribution": dist, "version": version})
    return out
