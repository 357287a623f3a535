"""Scenarios a suite declares itself: ``[scenarios.NAME]`` variants and the cells of a ``[sweep]``.

A variant starts from a base scenario (registered, or declared earlier in the file) and overrides typed
settings: ``unet`` (``SegTrainConfig`` keys, on top of the suite's ``[unet]``), ``translator``
(``TranslatorConfig`` keys, on top of the base's overrides) and ``unet_variant``. A sweep expands lists of values
of such settings into one variant per cell, as a product (every combination) or a zip (the i-th value of every
list together), named ``<name>-<value>[-<value>...]``.

Both become ordinary :class:`unetgan_core.scenarios.Scenario` objects that the suite looks up before the registry,
so the planner hashes their Unets and translators like any other: a variant that leaves the Unet settings alone
shares the suite's trained Unets, and one whose settings equal its base's shares the base's translators. A
variant's translators draw their seeds from its base's name (``Scenario.seed_name``), so cells of one sweep differ
only in the swept settings.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from typing import Any

from unetgan_bench.bench.schema import field, load_table
from unetgan_core.errors import UserError
from unetgan_core.names import check_name
from unetgan_core.scenarios import Scenario

SWEEP_MODES = ("product", "zip")
SWEPT_TABLES = ("unet", "translator")  # the settings a sweep may vary: [unet] and [translator] keys
MAX_SWEEP_CELLS = 256


@dataclasses.dataclass(frozen=True)
class VariantTable:
    base: str = field(doc="the scenario it starts from (registered, or a [scenarios.NAME] declared above it)")
    label: str = field("", doc="short title in reports (default: the name)")
    description: str = field("", doc="one line for reports (default: the base's, with the overrides)")
    unet_variant: str = field("", doc="Unet training variant (default: the base's)")
    unet: dict = field({}, doc="[unet] settings overridden for this scenario's Unet")
    translator: dict = field({}, doc="[translator] settings overridden for this scenario's translator")


@dataclasses.dataclass(frozen=True)
class SweepSection:
    base: str = field(doc="the scenario every cell starts from (registered or a [scenarios.NAME])")
    name: str = field(doc="prefix of the cell names, NAME-<value>")
    mode: str = field("product", doc="product (every combination) or zip (i-th values together)", choices=SWEEP_MODES)
    unet: dict = field({}, doc="[unet] setting -> list of values")
    translator: dict = field({}, doc="[translator] setting -> list of values")

    def __post_init__(self) -> None:
        check_name("sweep name", self.name, "name")

    def axes(self) -> list[tuple[str, list[Any]]]:
        """``("translator.lambda_unet", [0, 15])`` for every swept setting, in the file's order."""
        return [(f"{table}.{key}", values) for table in SWEPT_TABLES for key, values in getattr(self, table).items()]


def _describe_overrides(overrides: dict[str, Any]) -> str:
    return ", ".join(f"{k} = {v!r}" for k, v in overrides.items())


def make_variant(
    name: str, base: Scenario, table: VariantTable, where: str, settings: dict[str, Any] | None = None
) -> Scenario:
    """The scenario ``name``: ``base`` with the table's overrides, checked like every other scenario.

    Raises:
        UserError: translator settings on a base without a learned translator, or settings the typed loaders
            reject (an unknown key, a wrong type, a value out of bounds); one line naming ``where``.
    """
    if table.translator and not base.learned_translator:
        raise UserError(f"{where} translator: base scenario {base.name!r} trains no translator to override")
    translator = {**base.translator, **table.translator} if base.learned_translator else base.translator
    overrides = {**table.unet, **({"translator": table.translator} if table.translator else {})}
    try:
        return Scenario(
            name=name,
            unet_variant=table.unet_variant or base.unet_variant,
            translator=translator,
            description=table.description or f"{base.description}; {_describe_overrides(overrides)}",
            label=table.label or name,
            unet={**base.unet, **table.unet},
            settings=dict(settings or {}),
            seed_name=base.seed_name or base.name,
        )
    except UserError as exc:
        raise UserError(f"{where} {exc}") from None


def _value_name(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def sweep_cells(section: SweepSection, where: str) -> list[tuple[str, dict[str, Any]]]:
    """The sweep's cells in order: ``(name, {"translator.lambda_unet": 15, ...})``.

    Raises:
        UserError: nothing swept, a setting that is not a list or an empty list, a zip over lists of unequal
            length, more than ``MAX_SWEEP_CELLS`` cells, or two cells with one name.
    """
    axes = section.axes()
    if not axes:
        raise UserError(f"{where}: nothing to sweep; give lists of values under translator or unet")
    for key, values in axes:
        if not isinstance(values, list) or not values:
            raise UserError(f"{where} {key}: expected a non-empty list of values, got {values!r}")
    lists = [values for _, values in axes]
    if section.mode == "zip":
        if len({len(v) for v in lists}) != 1:
            sizes = ", ".join(f"{k} {len(v)}" for k, v in axes)
            raise UserError(f"{where}: mode = 'zip' needs lists of one length; got {sizes}")
        combos = list(zip(*lists, strict=True))
    else:
        combos = list(itertools.product(*lists))
    if len(combos) > MAX_SWEEP_CELLS:
        raise UserError(f"{where}: {len(combos)} cells; at most {MAX_SWEEP_CELLS}")
    cells = []
    for combo in combos:
        name = "-".join([section.name, *(_value_name(v) for v in combo)])
        check_name("sweep cell name", name, where)
        cells.append((name, {key: value for (key, _), value in zip(axes, combo, strict=True)}))
    names = [n for n, _ in cells]
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise UserError(f"{where}: two cells are named {twice!r}; a value is listed twice")
    return cells


def _table_of(settings: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{"translator.lambda_unet": 15}`` -> ``{"translator": {"lambda_unet": 15}}``."""
    out: dict[str, dict[str, Any]] = {table: {} for table in SWEPT_TABLES}
    for key, value in settings.items():
        table, _, name = key.partition(".")
        out[table][name] = value
    return out


def declared_scenarios(
    variants: dict[str, Any], sweep: Any, lookup: Callable[[str], Scenario], reserved: set[str], where: str
) -> tuple[dict[str, Scenario], list[str]]:
    """The suite's own scenarios, and the names of the sweep's cells (measured after the ``run`` list).

    Args:
        variants: ``[scenarios.NAME]`` tables by name, in the file's order.
        sweep: the ``[sweep]`` table, or None.
        lookup: a registered scenario by name (raises ``UserError`` for an unknown one).
        reserved: names a variant may not take (the registered scenarios, the keys of ``[scenarios]``).
        where: ``"<file>"`` for messages.

    Raises:
        UserError: a bad name, an unknown base, a setting its table does not declare; one line each.
    """
    out: dict[str, Scenario] = {}

    def base_of(name: str, at: str) -> Scenario:
        if name in out:
            return out[name]
        try:
            return lookup(name)
        except UserError:
            raise UserError(f"{at} base: unknown scenario {name!r}") from None

    for name, raw in variants.items():
        at = f"{where}: [scenarios.{name}]"
        check_name("scenario name", name, f"{where}: [scenarios]")
        if name in reserved:
            raise UserError(f"{at}: the name {name!r} is taken by a registered scenario or a [scenarios] key")
        table = load_table(VariantTable, raw, at)
        out[name] = make_variant(name, base_of(table.base, at), table, at)
    cells: list[str] = []
    if sweep is not None:
        at = f"{where}: [sweep]"
        section = load_table(SweepSection, sweep, at)
        base = base_of(section.base, at)
        for name, settings in sweep_cells(section, at):
            if name in reserved or name in out:
                raise UserError(f"{at}: cell name {name!r} is taken by another scenario")
            tables = _table_of(settings)
            table = VariantTable(base=base.name, label=name, unet=tables["unet"], translator=tables["translator"])
            out[name] = make_variant(name, base, table, f"{at} (cell {name})", settings)
            cells.append(name)
    return out, cells


def describe_declared(suite: Any) -> list[str]:
    """Lines for ``validate``: each declared scenario with its base and overrides, sweep cells marked."""
    lines = []
    for name, scenario in suite.variants.items():
        kind = "sweep cell" if name in suite.sweep else "variant"
        changed = scenario.settings or {
            **{f"unet.{k}": v for k, v in scenario.unet.items()},
            **{
                f"translator.{k}": v
                for k, v in (scenario.translator or {}).items()
                if isinstance(scenario.translator, dict)
            },
        }
        base = scenario.seed_name or "-"
        lines.append(f"{kind} {name} (base {base}): {_describe_overrides(changed) or 'no overrides'}")
    return lines
