"""Checks a suite's names against the registries, and lists what is registered."""

from __future__ import annotations

from typing import TYPE_CHECKING

from unetgan_core.errors import UserError

if TYPE_CHECKING:
    from unetgan_bench.bench.suite import Suite


def _registries() -> dict:
    from unetgan_core.attacks import ATTACKS
    from unetgan_core.data.phantom.styles import STYLES
    from unetgan_core.data.sources import DATA_SOURCES, import_loaders
    from unetgan_core.models import MODELS
    from unetgan_core.scenarios import SCENARIOS
    from unetgan_core.throughput.pipelines import WORKLOADS

    import_loaders()
    return {
        "data sources": DATA_SOURCES,
        "vendor styles (phantom)": STYLES,
        "models": MODELS,
        "scenarios": SCENARIOS,
        "attacks": ATTACKS,
        "throughput pipelines": WORKLOADS,
    }


def registered() -> dict[str, list[str]]:
    """Every registry's names, for ``unetgan-bench list``."""
    return {kind: reg.names() for kind, reg in _registries().items()}


def _known(where: str, key: str, names: list[str], allowed: list[str]) -> None:
    for name in names:
        if name not in allowed:
            raise UserError(f"{where} {key}: unknown name {name!r}; allowed: {', '.join(allowed)}")


def check_names(suite: Suite, where: str) -> None:
    """Reject names a suite uses that nothing registers, and invalid training settings."""
    from unetgan_core.training import SegTrainConfig, TranslatorConfig

    regs = _registries()
    _known(f"{where}: [data]", "source", [suite.data["source"]], regs["data sources"].names())
    _known(f"{where}: [scenarios]", "run", suite.scenarios.run, regs["scenarios"].names())
    if suite.fgsm is not None:
        _known(f"{where}: [fgsm]", "attacks", suite.fgsm.attacks, regs["attacks"].names())
        _known(f"{where}: [fgsm]", "scenarios", suite.fgsm.scenarios, suite.scenarios.run)
        _known(f"{where}: [fgsm]", "vendors", suite.fgsm.vendors, suite.all_vendors)
        _known(f"{where}: [fgsm]", "seeds", [str(s) for s in suite.fgsm.seeds], [str(s) for s in suite.suite.seeds])
    if suite.throughput is not None:
        from unetgan_core.throughput.pipelines import parse_section

        try:
            parse_section(suite.throughput)
        except UserError as exc:
            raise UserError(f"{where}: [throughput] {str(exc).removeprefix('[throughput]: ')}") from None
    for table, cls in (("unet", SegTrainConfig), ("translator", TranslatorConfig)):
        try:
            cls.from_dict(getattr(suite, table))
        except UserError as exc:
            raise UserError(f"{where}: [{table}] {exc}") from None
    source = open_source(suite, where)
    _known(f"{where}: [vendors]", "source/targets", suite.all_vendors, source.vendors())


def open_source(suite: Suite, where: str):
    """Create the suite's data source (cheap: nothing is generated or read yet)."""
    from unetgan_core.data.sources import create_source

    options = {k: v for k, v in suite.data.items() if k != "source"}
    if suite.vendors.styles:
        if suite.data["source"] != "phantom":
            raise UserError(f"{where}: [vendors] styles: declared styles need the phantom data source")
        options["styles"] = suite.vendors.styles
    try:
        return create_source(suite.data["source"], **options)
    except UserError as exc:
        raise UserError(f"{where}: [data] {exc}") from None
    except TypeError as exc:
        raise UserError(f"{where}: [data] {exc}") from None
