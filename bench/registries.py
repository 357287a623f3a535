"""What is registered (data sources, styles, models, Unet training variants, scenarios, attacks, corruptions,
throughput pipelines), with the plugins of installed distributions loaded first, and the suite's data source.

This module knows nothing of suite files: ``bench.suite`` imports it to check a suite's names, never
the other way round.
"""

from __future__ import annotations

from typing import Any

from unetgan_core.errors import UserError
from unetgan_core.registry import Registry


def _registries() -> dict[str, Registry]:
    from unetgan_core.attacks import ATTACKS
    from unetgan_core.corruptions import CORRUPTIONS
    from unetgan_core.data.phantom.styles import STYLES
    from unetgan_core.data.sources import DATA_SOURCES, import_loaders
    from unetgan_core.models import MODELS
    from unetgan_core.plugins import load_entry_points
    from unetgan_core.scenarios import ADAPTATIONS, SCENARIOS
    from unetgan_core.throughput.pipelines import WORKLOADS
    from unetgan_core.training.augment import VARIANTS

    # The real-data sources register on import; list them before any source is created.
    import_loaders()
    load_entry_points()
    return {
        "data sources": DATA_SOURCES,
        "vendor styles (phantom)": STYLES,
        "models": MODELS,
        "Unet training variants": VARIANTS,
        "scenarios": SCENARIOS,
        "adaptation methods": ADAPTATIONS,
        "attacks": ATTACKS,
        "corruptions": CORRUPTIONS,
        "throughput pipelines": WORKLOADS,
    }


def registry(kind: str) -> Registry:
    """The registry of ``kind`` (a key of ``registered()``, e.g. ``"scenarios"``)."""
    return _registries()[kind]


def registered() -> dict[str, list[str]]:
    """Every registry's names, for ``unetgan-bench list``."""
    return {kind: reg.names() for kind, reg in _registries().items()}


def known(where: str, key: str, names: list[str], allowed: list[str]) -> None:
    """Raise ``UserError`` for the first of ``names`` that is not in ``allowed``, listing what is."""
    for name in names:
        if name not in allowed:
            raise UserError(f"{where} {key}: unknown name {name!r}; allowed: {', '.join(allowed)}")


def open_source(suite: Any, where: str):
    """Create a suite's data source from its ``[data]`` table(s) and declared styles (cheap: nothing is read yet).

    With several ``[data.NAME]`` tables the source is a ``MultiSource`` of them (vendors ``NAME:vendor``),
    refused when their preprocessing differs.

    Args:
        suite: a loaded ``bench.suite.Suite`` (its ``data``, ``sources`` and ``vendors.styles`` are read).
        where: names the suite file in error messages.
    """
    from unetgan_core.data.multisource import MultiSource

    tables = getattr(suite, "sources", None) or {None: suite.data}
    styles = suite.vendors.styles
    if styles and not any(t["source"] == "phantom" for t in tables.values()):
        raise UserError(f"{where}: [vendors] styles: declared styles need the phantom data source")
    parts = {}
    for name, table in tables.items():
        options = {k: v for k, v in table.items() if k != "source"}
        if styles and table["source"] == "phantom":
            options["styles"] = styles
        label = "[data]" if name is None else f"[data.{name}]"
        parts[name] = _create(table["source"], options, f"{where}: {label}")
    return parts[None] if None in parts else MultiSource(parts, f"{where}:")


def _create(name: str, options: dict[str, Any], where: str):
    from unetgan_core.data.sources import create_source

    try:
        return create_source(name, **options)
    except (UserError, TypeError) as exc:
        raise UserError(f"{where} {exc}") from None
