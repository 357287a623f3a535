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
    """Create a suite's data source from its ``[data]`` table and declared styles (cheap: nothing is read yet).

    Args:
        suite: a loaded ``bench.suite.Suite`` (its ``data`` and ``vendors.styles`` are read).
        where: names the suite file in error messages.
    """
    from unetgan_core.data.sources import create_source

    options = {k: v for k, v in suite.data.items() if k != "source"}
    if suite.vendors.styles:
        if suite.data["source"] != "phantom":
            raise UserError(f"{where}: [vendors] styles: declared styles need the phantom data source")
        options["styles"] = suite.vendors.styles
    try:
        return create_source(suite.data["source"], **options)
    except (UserError, TypeError) as exc:
        raise UserError(f"{where}: [data] {exc}") from None
