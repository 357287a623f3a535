"""Recovery of the domain-shift drop: how much of the source-to-target Dice drop each method wins back."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from unetgan_bench.reports import format as fmt
from unetgan_bench.reports.cellstats import cell_seed_means, spread
from unetgan_bench.reports.collect import Run
from unetgan_bench.reports.ordering import scenario_label, scenario_order, vendor_order

# Below this source-minus-target drop in Dice there is nothing real to recover: dividing by it
# would turn noise into a huge "recovery".
MIN_DROP = 0.01
NO_DROP = "no drop to recover"
# A method "recovers half" when its recovery is at least 0.5 up to floating-point rounding,
# so a hand-made 0.9 / 0.5 / 0.7 (exactly half) is not 0.4999999999999999 and left out.
_RECOVERY_TOLERANCE = 1e-9
RECOVERY_COLUMNS = (
    "vendor",
    "scenario",
    "dice_source",
    "dice_clean",
    "dice",
    "drop",
    "recovery",
    "recovery_seed_mean",
    "recovery_seed_std",
    "n_seeds",
    "selection",
    "note",
)
_SPREAD_SIGN = {"text": "+/-", "html": "\u00b1", "latex": r"$\pm$"}


def _seed_recoveries(
    source: dict[Any, float], clean: dict[Any, float], method: dict[Any, float]
) -> tuple[list[float], list[str]]:
    """Per-seed recoveries for the seeds present in all three cells, and notes on seeds left out."""
    values, notes = [], []
    for seed in method:
        if seed not in source or seed not in clean:
            continue
        drop = source[seed] - clean[seed]
        if not drop > MIN_DROP:  # also NaN
            notes.append(f"seed {seed} left out: {NO_DROP}")
            continue
        values.append((method[seed] - clean[seed]) / drop)
    return values, notes


def _failure_notes(cells: pd.DataFrame, keys: list[tuple[str, str]]) -> list[str]:
    """Notes on replicates left out of the cells ``keys`` because their training failed."""
    notes = []
    for vendor, scenario in dict.fromkeys(keys):
        if (vendor, scenario) in cells.index and int(cells.loc[(vendor, scenario)].get("n_failed") or 0):
            notes.append(f"{scenario_label(scenario)} on {vendor}: {cells.loc[(vendor, scenario), 'failed_note']}")
    return notes


def recovery_table(run: Run, dice: pd.DataFrame) -> pd.DataFrame:
    """How much of the source-to-target Dice drop each method wins back, per target vendor.

    For a target vendor V (role ``"target"``) and a scenario S other than ``"clean"``, on
    ``dice_mean``::

        drop(V)        = Dice(clean, source) - Dice(clean, V)
        recovery(S, V) = (Dice(S, V) - Dice(clean, V)) / drop(V)

    where Dice is Table 1's ``mean`` (over images, each first averaged over seeds and, with
    folds, pooled over folds as Table 1 pools them). 1.0 means S brings V up to the clean Unet's
    Dice on the source, 0.0 no better than the clean Unet on V; below 0 is worse, above 1 beats
    the source level.

    Rules:

    - ``drop(V) <= MIN_DROP`` (0.01): recovery is undefined, NaN with the note "no drop to
      recover" (never a huge number from a tiny denominator).
    - No clean row on the source or on V: no row for V. Scenarios on the source vendor are not
      part of the table.
    - Per seed (replicate seed), the same formula on that seed's clean-source, clean-V and S-V
      means of the same per-image values (seeds present in all three cells; see
      :func:`reports.cellstats.cell_seed_means`), exactly like Table 1's ``std_seeds``.
      ``recovery_seed_mean`` and ``recovery_seed_std`` (sample std, NaN with fewer than two)
      summarise the per-seed recoveries; ``n_seeds`` counts them. A seed whose own drop is at
      most ``MIN_DROP`` is left out and named in ``note``. The pooled ``recovery`` is not the
      mean of the per-seed values (a ratio of means).

    Args:
        run: the run.
        dice: :func:`reports.cellstats.segmentation_stats` of ``run`` for ``"dice_mean"``.

    Returns:
        One row per (target vendor, scenario), vendors in :func:`reports.ordering.vendor_order`,
        scenarios in :func:`reports.ordering.scenario_order`; columns :data:`RECOVERY_COLUMNS`
        (Dice in [0, 1], recoveries as fractions, ``selection`` of S as in Table 1 so oracle
        rows stay flagged).

    Raises:
        ValueError: ``dice`` is for another metric.
    """
    if not dice.empty and set(dice["metric"]) != {"dice_mean"}:
        raise ValueError(f"recovery_table needs dice_mean statistics, got {sorted(set(dice['metric']))}")
    empty = pd.DataFrame(columns=list(RECOVERY_COLUMNS))
    cells = dice.set_index(["vendor", "scenario"])
    roles = dict(zip(dice["vendor"], dice["role"], strict=True))
    source = next((v for v in vendor_order(run) if roles.get(v) == "source"), None)
    if source is None or (source, "clean") not in cells.index:
        return empty
    source_mean = float(cells.loc[(source, "clean"), "mean"])
    source_seeds = cell_seed_means(run, source, "clean", "dice_mean")
    rows = []
    for vendor in (v for v in vendor_order(run) if roles.get(v) == "target" and (v, "clean") in cells.index):
        clean_mean = float(cells.loc[(vendor, "clean"), "mean"])
        clean_seeds = cell_seed_means(run, vendor, "clean", "dice_mean")
        drop = source_mean - clean_mean
        for scenario in scenario_order(dice.loc[dice["vendor"] == vendor, "scenario"]):
            if scenario == "clean":
                continue
            cell = cells.loc[(vendor, scenario)]
            row = {
                "vendor": vendor,
                "scenario": scenario,
                "dice_source": source_mean,
                "dice_clean": clean_mean,
                "dice": float(cell["mean"]),
                "drop": drop,
                "recovery": float("nan"),
                "recovery_seed_mean": float("nan"),
                "recovery_seed_std": float("nan"),
                "n_seeds": 0,
                "selection": cell["selection"],
                "note": NO_DROP,
            }
            failed = _failure_notes(cells, [(source, "clean"), (vendor, "clean"), (vendor, scenario)])
            if drop > MIN_DROP:
                method_seeds = cell_seed_means(run, vendor, scenario, "dice_mean")
                per_seed, notes = _seed_recoveries(source_seeds, clean_seeds, method_seeds)
                row.update(
                    recovery=(row["dice"] - clean_mean) / drop,
                    recovery_seed_mean=float(np.mean(per_seed)) if per_seed else float("nan"),
                    recovery_seed_std=spread(per_seed),
                    n_seeds=len(per_seed),
                    note="; ".join([*failed, *notes]),
                )
            elif failed:
                row["note"] = "; ".join([*failed, NO_DROP])
            rows.append(row)
    return pd.DataFrame(rows, columns=list(RECOVERY_COLUMNS)) if rows else empty


def recovery_text(row: dict[str, Any] | pd.Series, style: str = "text") -> str:
    """A recovery as printed: ``"62% (+/-8, 3 seeds)"``; the spread is in percentage points.

    Args:
        row: one row of :func:`recovery_table`.
        style: ``"text"``, ``"html"`` (a real \u00b1 sign) or ``"latex"`` (escaped, ``$\\pm$``).

    Example:
        >>> recovery_text({"recovery": 0.62, "recovery_seed_std": 0.08, "n_seeds": 3, "note": ""})
        '62% (+/-8, 3 seeds)'
    """
    if style not in _SPREAD_SIGN:
        raise ValueError(f"unknown style {style!r}; known: {', '.join(_SPREAD_SIGN)}")
    escape = fmt.latex_escape if style == "latex" else str
    recovery = fmt.none_if_nan(float(row["recovery"]))
    if recovery is None:
        note = str(row.get("note") or "")
        return escape(fmt.UNDEFINED + (f" ({note})" if note else ""))
    text = escape(fmt.format_percent(recovery, 0))
    n_seeds = int(row["n_seeds"])
    std = fmt.none_if_nan(float(row["recovery_seed_std"]))
    if n_seeds > 1 and std is not None:
        return f"{text} ({_SPREAD_SIGN[style]}{fmt.format_number(100.0 * std, 0)}, {n_seeds} seeds)"
    return f"{text} (one seed)" if n_seeds == 1 else text


def recovering_methods(table: pd.DataFrame, at_least: float = 0.5) -> tuple[list[str], list[str]]:
    """Scenarios that recover at least ``at_least`` of the drop on every target vendor with a drop.

    Args:
        table: the output of :func:`recovery_table`.
        at_least: the fraction of the drop to recover (0.5: half).

    Returns:
        (the scenarios in table order, the vendors left out of the test because they have no
        drop to recover). A scenario missing on a vendor with a drop does not qualify; with no
        vendor that has a drop, no scenario does.
    """
    has_drop = table["drop"].astype(float) > MIN_DROP
    vendors = list(dict.fromkeys(table.loc[has_drop, "vendor"]))
    left_out = [v for v in dict.fromkeys(table["vendor"]) if v not in vendors]
    if not vendors:
        return [], left_out
    methods = []
    for scenario in dict.fromkeys(table["scenario"]):
        recovery = table[table["scenario"] == scenario].set_index("vendor")["recovery"].astype(float)
        if all(v in recovery.index and recovery[v] >= at_least - _RECOVERY_TOLERANCE for v in vendors):
            methods.append(scenario)
    return methods, left_out
