"""Natural-corruption tables: Dice per corruption and severity, and the per-pipeline summary with the
mean corruption error (ImageNet-C's mCE adapted to Dice).

For a pipeline f on one vendor, with D(f, c, s) its Dice under corruption c at severity s (mean over
images, then over seeds):

- mean corruption Dice: the mean of D(f, c, s) over the measured corruptions c and severities s >= 1;
- corruption error CE(f, c) = sum_s (1 - D(f, c, s)) / sum_s (1 - D(ref, c, s)), the sums over s >= 1 and
  ``ref`` the suite's reference pipeline (``[corruptions] reference``, the clean Unet) on the same vendor;
  mCE(f) is its mean over corruptions (the reference scores 1, i.e. 100%; lower is more robust);
- relative mCE: the same with the degradation from each pipeline's own uncorrupted Dice,
  sum_s (D(f, c, 0) - D(f, c, s)) over the reference's sum (ImageNet-C's relative mCE).

A ratio whose reference sum is 0 (a reference that never errs) is undefined (NaN) and left out of the mean.
Rows of a replicate whose training failed its health check (``status`` "failed_training") are no
measurement of the method: they are left out, and the summary counts them in ``n_failed``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from unetgan_bench.reports.collect import Run
from unetgan_bench.reports.ordering import scenario_order, vendor_order
from unetgan_core.training.health import FAILED as FAILED_TRAINING

DICE_COLUMNS = ("scenario", "vendor", "corruption", "severity", "level", "level_unit", "dice_mean", "n_seeds")
SUMMARY_COLUMNS = (
    "scenario",
    "vendor",
    "dice_clean",
    "mean_corruption_dice",
    "mce",
    "relative_mce",
    "worst_corruption",
    "worst_corruption_dice",
    "reference",
    "n_seeds",
    "n_failed",
    "selection",
)
DEFAULT_REFERENCE = "clean"


def reference_pipeline(run: Run) -> str:
    """The pipeline corruption errors are normalised by: the suite's ``[corruptions] reference``, else ``clean``."""
    section = (run.manifest.get("suite_config") or {}).get("corruptions") or {}
    return str(section.get("reference") or DEFAULT_REFERENCE)


def _ordered(run: Run, frame: pd.DataFrame, extra: list[str]) -> pd.DataFrame:
    vendors = {v: i for i, v in enumerate(vendor_order(run))}
    scenarios = {s: i for i, s in enumerate(scenario_order(frame["scenario"]))}
    key = [(scenarios[s], vendors.get(v, len(vendors))) for s, v in zip(frame.scenario, frame.vendor, strict=True)]
    return frame.assign(_order=key).sort_values(["_order", *extra]).drop(columns="_order").reset_index(drop=True)


def _failed(frame: pd.DataFrame) -> pd.Series:
    return frame["status"] == FAILED_TRAINING if "status" in frame else pd.Series(False, index=frame.index)


def corruption_dice(run: Run) -> pd.DataFrame:
    """Mean Dice over seeds per (scenario, vendor, corruption, severity), failed trainings left out;
    columns :data:`DICE_COLUMNS`."""
    frame = run.corruption[~_failed(run.corruption)].copy()
    if frame.empty:
        return pd.DataFrame(columns=list(DICE_COLUMNS))
    frame["dice_mean"] = pd.to_numeric(frame["dice_mean"], errors="coerce")
    for name in ("level", "level_unit"):
        if name not in frame:
            frame[name] = None
    grouped = frame.groupby(["scenario", "vendor", "corruption", "severity"], sort=False, dropna=False)
    out = grouped.agg(
        level=("level", "first"),
        level_unit=("level_unit", "first"),
        dice_mean=("dice_mean", "mean"),
        n_seeds=("seed", "nunique"),
    ).reset_index()
    return _ordered(run, out, ["corruption", "severity"])[list(DICE_COLUMNS)]


def _error_sums(dice: pd.DataFrame) -> pd.DataFrame:
    """Per (scenario, vendor, corruption): sum over severities >= 1 of 1 - Dice and of the drop from severity 0."""
    corrupted = dice[dice["severity"] > 0]
    clean = dice[dice["severity"] == 0].set_index(["scenario", "vendor", "corruption"])["dice_mean"]
    sums = corrupted.groupby(["scenario", "vendor", "corruption"], sort=False)["dice_mean"]
    out = pd.DataFrame({"error": sums.apply(lambda d: float((1.0 - d).sum())), "n_severities": sums.size()})
    out["drop"] = [
        float(clean.get(key, np.nan)) * n - (n - error)
        for key, error, n in zip(out.index, out.error, out.n_severities, strict=True)
    ]
    return out


def _sums_of(sums: pd.DataFrame, scenario: str, vendor: str) -> pd.DataFrame | None:
    """The error sums of one pipeline on one vendor, indexed by corruption, or None when not measured."""
    if sums.empty or (scenario, vendor) not in sums.index.droplevel(2):
        return None
    return sums.loc[(scenario, vendor)]


def _ratio(values: pd.Series, reference: pd.Series) -> float:
    """Mean over corruptions of ``values / reference`` (each aligned by corruption); NaN where undefined."""
    ratios = [v / r for c, v in values.items() if (r := reference.get(c, np.nan)) > 0 and np.isfinite(v)]
    return float(np.mean(ratios)) if ratios else float("nan")


def corruption_summary(run: Run, dice: pd.DataFrame) -> pd.DataFrame:
    """One row per (scenario, vendor): the uncorrupted and mean corruption Dice, mCE, relative mCE, and the
    corruption with the lowest mean Dice over severities >= 1; columns :data:`SUMMARY_COLUMNS`.

    Args:
        run: the run (for the reference pipeline and the rows' model selection).
        dice: :func:`corruption_dice` of ``run``.
    """
    if run.corruption.empty:
        return pd.DataFrame(columns=list(SUMMARY_COLUMNS))
    reference = reference_pipeline(run)
    sums = _error_sums(dice) if not dice.empty else pd.DataFrame(columns=["error", "drop"])
    rows = []
    cells = _ordered(run, run.corruption[["scenario", "vendor"]].drop_duplicates(), [])
    for scenario, vendor in zip(cells["scenario"], cells["vendor"], strict=True):
        group = dice[(dice["scenario"] == scenario) & (dice["vendor"] == vendor)]
        corrupted = group[group["severity"] > 0]
        per_corruption = corrupted.groupby("corruption")["dice_mean"].mean()
        own, ref = _sums_of(sums, scenario, vendor), _sums_of(sums, reference, vendor)
        measured = run.corruption[(run.corruption["scenario"] == scenario) & (run.corruption["vendor"] == vendor)]
        selections = sorted({str(s) for s in measured.get("selection", pd.Series(dtype=object)).dropna()})
        worst = per_corruption.idxmin() if per_corruption.notna().any() else None
        rows.append(
            {
                "scenario": scenario,
                "vendor": vendor,
                "dice_clean": float(group.loc[group["severity"] == 0, "dice_mean"].mean()),
                "mean_corruption_dice": float(corrupted["dice_mean"].mean()),
                "mce": _ratio(own["error"], ref["error"]) if own is not None and ref is not None else float("nan"),
                "relative_mce": _ratio(own["drop"], ref["drop"])
                if own is not None and ref is not None
                else float("nan"),
                "worst_corruption": worst,
                "worst_corruption_dice": float(per_corruption[worst]) if worst is not None else float("nan"),
                "reference": reference,
                "n_seeds": int(group["n_seeds"].max()) if len(group) else 0,
                "n_failed": int(measured.loc[_failed(measured), "seed"].nunique()),
                "selection": "+".join(selections),
            }
        )
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def severity_levels(rows: pd.DataFrame) -> pd.DataFrame:
    """The severity table of a run: one row per corruption, its unit and the level at each severity >= 1.

    Args:
        rows: corruption rows (``Run.corruption``) or :func:`corruption_dice`.
    """
    measured = rows[rows["severity"] > 0].drop_duplicates(["corruption", "severity"]) if len(rows) else rows
    if measured.empty:
        return pd.DataFrame(columns=["corruption", "level_unit"])
    wide = measured.pivot(index="corruption", columns="severity", values="level")
    wide.columns = [f"severity {s}" for s in wide.columns]
    units = measured.drop_duplicates("corruption").set_index("corruption")["level_unit"]
    return wide.assign(level_unit=units).reset_index()[["corruption", "level_unit", *wide.columns]]
