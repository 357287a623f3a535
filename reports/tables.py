"""Run tables: Table 1 (Dice per vendor and scenario), per-class Dice, HD95, FGSM eps50, throughput.

Every table is computed here from a :class:`reports.collect.Run`, as numbers first and then
as text through :mod:`reports.format`; the HTML template, the CSV and the LaTeX export only
print what these functions return.

Statistics (documented in the report too):

- An image is identified by its subject, slice and phase (not by its row number in a cell's
  CSV). Its values are first averaged over the replicates that scored it (seeds, and with
  cross-validation the folds), so every test image counts once. With ``[splits] folds`` each
  source image is scored by one fold only: the folds' images are concatenated, never
  averaged by row number; a target image scored by every fold's Unet is averaged over them.
  ``mean`` and ``std_images`` are the mean and standard deviation of those per-image values
  (the paper's "mean +/- std"), ``ci95_low``/``ci95_high`` a 95% bootstrap interval of the
  mean over images, ``std_seeds`` the standard deviation of the per-seed means (undefined with
  one seed). Runs with folds add ``n_folds`` and ``std_folds``, the standard deviation of the
  per-fold means (Table 1 of a fold suite: mean over all test images of all folds, spread over
  folds).
- ``p_vs_clean`` is a paired Wilcoxon signed-rank test of the seed-averaged per-image values
  against the clean Unet on the same images of the same vendor (seeds present in both).
- HD95 values that are undefined (an empty mask) are counted in ``n_undefined`` and left out
  of the mean, never silently dropped.
- A cell without per-image CSVs falls back to its row-level metrics (mean over seeds only).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from unetgan_bench.reports import format as fmt
from unetgan_bench.reports.collect import Run, load_run
from unetgan_core import stats
from unetgan_core.hashing import derive_seed
from unetgan_core.robustness import eps50 as robustness_eps50

SCENARIO_ORDER = ("clean", "noisy", "histmatch", "cyclegan", "unetgan")
SCENARIO_LABELS = {
    "clean": "Clean Unet",
    "noisy": "Noisy Unet",
    "histmatch": "Histogram matching",
    "cyclegan": "CycleGAN",
    "unetgan": "Unet-GAN",
    "intensity_aug": "Intensity-aug. Unet",
    "appearance_aug": "Appearance-aug. Unet",
    "unetgan_nofeat": "Unet-GAN, no feature loss",
    "unetgan_nossim": "Unet-GAN, no SSIM loss",
    "unetgan_cyclepair": "Unet-GAN, cycle pairs",
    "unetgan_cycle_l1": "Unet-GAN + L1 cycle",
    "unetgan_cycle_l2": "Unet-GAN + L2 cycle",
}
METRIC_LABELS = {
    "dice_mean": "Dice (mean of blood pool and myocardium)",
    "dice_blood_pool": "Dice, LV blood pool",
    "dice_myo": "Dice, LV myocardium",
    "hd95_mm": "HD95 (mm)",
}
# Yan et al. 2019, Table 1: mean +/- std of Dice over test images (Philips source).
PAPER_TABLE1 = {
    ("philips", "clean"): (0.892, 0.032),
    ("philips", "noisy"): (0.877, 0.034),
    ("siemens", "clean"): (0.474, 0.071),
    ("siemens", "noisy"): (0.502, 0.064),
    ("siemens", "unetgan"): (0.805, 0.041),
    ("ge", "clean"): (0.727, 0.042),
    ("ge", "noisy"): (0.813, 0.040),
    ("ge", "unetgan"): (0.867, 0.035),
}
DEFAULT_BOOTSTRAP = 2000
STATS_COLUMNS = (
    "vendor",
    "role",
    "scenario",
    "metric",
    "n_images",
    "n_seeds",
    "n_undefined",
    "mean",
    "std_images",
    "std_seeds",
    "ci95_low",
    "ci95_high",
    "p_vs_clean",
    "selection",
)
# Added after STATS_COLUMNS only for runs that cross-validate by subject (``[splits] folds``).
FOLD_COLUMNS = ("n_folds", "std_folds")
IMAGE_ID = ("subject", "slice_index", "phase")


def _none_if_nan(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def vendor_order(run: Run) -> list[str]:
    """Vendors as the suite lists them (source first), then any others alphabetically."""
    config = run.manifest.get("suite_config") or {}
    vendors = config.get("vendors") or {}
    listed = [vendors.get("source"), *(vendors.get("targets") or [])]
    seen = set()
    for frame in (run.segmentation, run.fgsm):
        if "vendor" in frame:
            seen.update(str(v) for v in frame["vendor"].dropna())
    roles = {}
    if "role" in run.segmentation:
        roles = dict(zip(run.segmentation["vendor"], run.segmentation["role"], strict=False))
    ordered = [v for v in listed if isinstance(v, str) and v in seen]
    rest = sorted(seen - set(ordered), key=lambda v: (roles.get(v) != "source", v))
    return ordered + rest


def scenario_order(names: Any) -> list[str]:
    """Scenarios in the paper's order (clean, noisy, ..., Unet-GAN), unknown ones after, sorted."""
    names = {str(n) for n in names}
    known = [s for s in SCENARIO_ORDER if s in names]
    return known + sorted(names - set(known))


def scenario_label(name: str) -> str:
    """The paper's column title for a scenario (``"unetgan"`` -> ``"Unet-GAN"``)."""
    return SCENARIO_LABELS.get(name, name)


def bootstrap_samples(run: Run) -> int:
    """Bootstrap resamples from the suite's ``[metrics] bootstrap_samples`` (2000 when not recorded)."""
    metrics = (run.manifest.get("suite_config") or {}).get("metrics") or {}
    value = metrics.get("bootstrap_samples", DEFAULT_BOOTSTRAP)
    return int(value) if isinstance(value, int) and value > 0 else DEFAULT_BOOTSTRAP


def has_folds(run: Run) -> bool:
    """True when the run's segmentation rows come from subject-level cross-validation."""
    return "fold" in run.segmentation and bool(run.segmentation["fold"].notna().any())


def _image_keys(per_image: pd.DataFrame) -> pd.Series:
    """One key per image: subject, slice, phase and the occurrence of that triple within its cell.

    The same image gets the same key in every cell that scored it, whatever its row number, so
    folds (different subjects) are concatenated and seeds (same subjects) are matched.
    """
    ident = [per_image[c].astype(str) if c in per_image else pd.Series("", index=per_image.index) for c in IMAGE_ID]
    triple = ident[0] + "|" + ident[1] + "|" + ident[2]
    cell = per_image["cell_id"].astype(str) if "cell_id" in per_image else pd.Series("", index=per_image.index)
    occurrence = triple.groupby([cell, triple]).cumcount().astype(str)
    return triple + "|" + occurrence


def _replicates(per_image: pd.DataFrame) -> pd.Series:
    """The replicate of each per-image row: its seed, or ``(seed, fold)`` when folds are present."""
    if "fold" in per_image and per_image["fold"].notna().any():
        return pd.Series(list(zip(per_image["seed"], per_image["fold"], strict=True)), index=per_image.index)
    return per_image["seed"]


def _image_by_replicate(per_image: pd.DataFrame, metric: str) -> tuple[pd.DataFrame, int]:
    """Images as rows (first-seen order), replicates as columns, values of ``metric``.

    Returns:
        The table (NaN where a replicate did not score an image or the value is undefined) and
        the number of undefined values among the measured ones.
    """
    values = pd.DataFrame(
        {
            "image": _image_keys(per_image),
            "replicate": _replicates(per_image),
            "value": pd.to_numeric(per_image[metric], errors="coerce"),
        }
    )
    table = values.pivot_table(index="image", columns="replicate", values="value", aggfunc="mean", dropna=False)
    # First-seen order (the test set's own order) keeps the bootstrap's draws reproducible.
    return table.reindex(pd.unique(values["image"])), int(values["value"].isna().sum())


def _spread(means: list[float]) -> float:
    """Sample standard deviation of group means; NaN with fewer than two."""
    summary = stats.mean_std(np.asarray(means, float))
    return summary.std if summary.n > 1 else float("nan")


def _seed_means(table: pd.DataFrame, folds: bool) -> dict[Any, float]:
    """Each seed's mean of an images-by-replicates table (:func:`_image_by_replicate`).

    Without folds a seed's mean is over the images it scored. With folds it pools every image
    the seed scored in any fold, each first averaged over that seed's folds.
    """
    if not folds:
        return {s: stats.mean_std(table[s].to_numpy(float)).mean for s in table.columns}
    means = {}
    for seed in dict.fromkeys(c[0] for c in table.columns):
        per_image = table[[c for c in table.columns if c[0] == seed]].mean(axis=1, skipna=True)
        means[seed] = stats.mean_std(per_image.to_numpy(float)).mean
    return means


def _seed_and_fold_spread(table: pd.DataFrame, folds: bool) -> tuple[float, float, int]:
    """(std over seeds of the seed means, std over folds of the fold means, number of folds).

    A seed's mean pools every image it scored (all its folds); a fold's mean is over the images
    that fold scored, each averaged over the seeds first.
    """
    if not folds:
        seeds = {s: table[s].to_numpy(float) for s in table.columns}
        std = stats.seed_level(seeds).std if len(seeds) > 1 else float("nan")
        return std, float("nan"), 0
    fold_of = [c[1] for c in table.columns]
    seed_means = list(_seed_means(table, folds).values())
    fold_means = []
    for fold in dict.fromkeys(fold_of):
        part = table[[c for c in table.columns if c[1] == fold]].dropna(how="all")
        fold_means.append(stats.mean_std(part.mean(axis=1, skipna=True).to_numpy(float)).mean)
    return _spread(seed_means), _spread(fold_means), len(fold_means)


def _rows_only(out: dict[str, Any], rows: pd.DataFrame, metric: str, folds: bool) -> dict[str, Any]:
    """A cell without per-image CSVs: row-level metrics only (mean over seeds, and folds)."""
    row_values = pd.to_numeric(rows[metric], errors="coerce").to_numpy(float)
    summary = stats.mean_std(row_values)
    n_images = pd.to_numeric(rows["n_images"], errors="coerce") if "n_images" in rows else pd.Series(dtype=float)
    if folds and n_images.notna().any():
        per_fold = n_images.groupby(rows["fold"]).max()
        # Source folds test different subjects; a target's test set is the same in every fold.
        out["n_images"] = int(per_fold.sum() if out["role"] == "source" else per_fold.max())
        out["n_folds"] = int(per_fold.size)
    else:
        out["n_images"] = int(n_images.max()) if n_images.notna().any() else 0
    out["n_undefined"] = summary.n_nan
    out["mean"] = summary.mean
    if summary.n > 1 and not folds:
        out["std_seeds"] = summary.std
    return out


def _cell_stats(run: Run, vendor: str, scenario: str, metric: str, n_boot: int) -> dict[str, Any] | None:
    rows = run.segmentation[(run.segmentation["vendor"] == vendor) & (run.segmentation["scenario"] == scenario)]
    if rows.empty:
        return None
    folds = has_folds(run)
    selections = sorted({str(s) for s in rows.get("selection", pd.Series(dtype=object)).dropna()})
    n_seeds = int(rows["seed"].nunique())
    out: dict[str, Any] = {
        "vendor": vendor,
        "role": str(rows["role"].iloc[0]) if "role" in rows and rows["role"].notna().any() else "",
        "scenario": scenario,
        "metric": metric,
        "n_seeds": n_seeds,
        "selection": "+".join(selections),
        "std_images": float("nan"),
        "std_seeds": float("nan"),
        "ci95_low": float("nan"),
        "ci95_high": float("nan"),
        "p_vs_clean": float("nan"),
    }
    if folds:
        out.update(n_folds=int(rows["fold"].nunique()), std_folds=float("nan"))
    per_image = run.per_image[(run.per_image["vendor"] == vendor) & (run.per_image["scenario"] == scenario)]
    if per_image.empty:
        return _rows_only(out, rows, metric, folds)
    table, n_undefined = _image_by_replicate(per_image, metric)
    out["n_images"] = int(len(table))
    out["n_undefined"] = n_undefined
    # One seed (or fold) has no spread; the stats module calls that 0.0, the report says "one seed".
    out["std_seeds"], std_folds, n_folds = _seed_and_fold_spread(table, folds)
    if folds:
        out.update(n_folds=n_folds, std_folds=std_folds)
    image_values = table.mean(axis=1, skipna=True).to_numpy(float)  # all-NaN images stay NaN
    summary = stats.mean_std(image_values)
    out["mean"] = summary.mean
    if summary.n > 1:
        out["std_images"] = summary.std
        ci = stats.bootstrap_ci(
            image_values, level=0.95, n_boot=n_boot, seed=derive_seed("report", vendor, scenario, metric)
        )
        out["ci95_low"], out["ci95_high"] = ci.low, ci.high
    if scenario != "clean":
        out["p_vs_clean"] = _wilcoxon_vs_clean(run, vendor, table, metric)
    return out


def _wilcoxon_vs_clean(run: Run, vendor: str, table: pd.DataFrame, metric: str) -> float:
    clean = run.per_image[(run.per_image["vendor"] == vendor) & (run.per_image["scenario"] == "clean")]
    if clean.empty:
        return float("nan")
    clean_table, _ = _image_by_replicate(clean, metric)
    replicates = [s for s in table.columns if s in clean_table.columns]
    if not replicates:
        return float("nan")
    paired = pd.concat(
        {"new": table[replicates].mean(axis=1), "clean": clean_table[replicates].mean(axis=1)}, axis=1, join="inner"
    )
    return stats.wilcoxon_paired(paired["new"].to_numpy(float), paired["clean"].to_numpy(float)).p_value


def segmentation_stats(run: Run, metric: str = "dice_mean") -> pd.DataFrame:
    """Statistics of one segmentation metric for every (vendor, scenario) cell of a run.

    Args:
        run: the run, from :func:`reports.collect.load_run`.
        metric: ``"dice_mean"``, ``"dice_blood_pool"``, ``"dice_myo"`` (Dice in [0, 1]) or
            ``"hd95_mm"`` (millimetres).

    Returns:
        One row per cell in report order, columns :data:`STATS_COLUMNS`, plus
        :data:`FOLD_COLUMNS` when the run has folds (see the module docstring for what each
        statistic is).
    """
    if metric not in METRIC_LABELS:
        raise ValueError(f"unknown metric {metric!r}; known: {', '.join(METRIC_LABELS)}")
    columns = [*STATS_COLUMNS, *(FOLD_COLUMNS if has_folds(run) else ())]
    if run.segmentation.empty:
        return pd.DataFrame(columns=columns)
    n_boot = bootstrap_samples(run)
    cells = []
    for vendor in vendor_order(run):
        for scenario in scenario_order(run.segmentation["scenario"]):
            cell = _cell_stats(run, vendor, scenario, metric, n_boot)
            if cell is not None:
                cells.append(cell)
    return pd.DataFrame(cells, columns=columns)


# The paper's roles: a Philips-trained Unet, tested on Philips and on Siemens and GE.
PAPER_ROLES = {"philips": "source", "siemens": "target", "ge": "target"}


def _paper(vendor: str, role: str, scenario: str, metric: str, style: str) -> str:
    """The paper's value for a cell, only where the cell measures what the paper measured.

    A GE-trained Unet tested on GE (e.g. the Sunnybrook suite) is not the paper's GE column,
    whose Unet was trained on Philips, so the vendor must play the paper's role too.
    """
    comparable = metric == "dice_mean" and PAPER_ROLES.get(vendor.lower()) == role
    value = PAPER_TABLE1.get((vendor.lower(), scenario)) if comparable else None
    return fmt.format_mean_std(*value, style=style) if value else ""


def format_cell(cell: dict[str, Any] | pd.Series, style: str = "text", digits: int = 3) -> dict[str, str]:
    """The printed parts of one statistics row: main value, marker, seeds, CI, n, p, oracle flag.

    Args:
        cell: one row of :func:`segmentation_stats`.
        style: ``"text"``, ``"html"`` or ``"latex"`` (see :func:`reports.format.format_mean_std`).
        digits: decimals (3 for Dice, 1 suits HD95 in mm).
    """
    oracle = "oracle" in str(cell["selection"]).split("+")
    n_folds = cell.get("n_folds")
    folds = isinstance(n_folds, (int, float, np.integer)) and not math.isnan(n_folds) and n_folds > 0
    n = f"n={cell['n_images']} images x {cell['n_seeds']} seeds"
    if folds:
        n = f"n={cell['n_images']} images from {int(n_folds)} folds x {cell['n_seeds']} seeds"
    if cell["n_undefined"]:
        n += f", {cell['n_undefined']} undefined"
    spread = "one seed"
    if not math.isnan(cell["std_seeds"]):
        spread = "seeds sd " + fmt.format_number(_none_if_nan(cell["std_seeds"]), digits)
    if folds and not math.isnan(cell.get("std_folds", float("nan"))):
        # A fold suite's spread is over folds (different subjects); seeds only add to it.
        fold_sd = "folds sd " + fmt.format_number(_none_if_nan(cell["std_folds"]), digits)
        spread = fold_sd if spread == "one seed" else f"{fold_sd}, {spread}"
    return {
        "value": fmt.format_mean_std(_none_if_nan(cell["mean"]), cell["std_images"], digits, style),
        "marker": fmt.significance_marker(_none_if_nan(cell["p_vs_clean"])),
        "seeds": spread,
        "ci": "95% CI " + fmt.format_ci(_none_if_nan(cell["ci95_low"]), _none_if_nan(cell["ci95_high"]), digits),
        "n": n,
        "p": fmt.format_p(_none_if_nan(cell["p_vs_clean"])) if cell["scenario"] != "clean" else "",
        "oracle": "oracle" if oracle else "",
    }


def stats_csv_frame(stats: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """A statistics table ready for CSV: the numbers plus the formatted text and the paper's value.

    Args:
        stats: the output of :func:`segmentation_stats`.
        digits: decimals of the formatted text column.
    """
    frame = stats.copy()
    frame["formatted"] = [
        format_cell(row, "text", digits)["value"] + format_cell(row, "text", digits)["marker"]
        for _, row in stats.iterrows()
    ]
    frame["paper"] = [_paper(r["vendor"], r["role"], r["scenario"], r["metric"], "text") for _, r in stats.iterrows()]
    return frame


def wide_table(run: Run, stats: pd.DataFrame, style: str = "html", digits: int = 3) -> dict[str, Any]:
    """Vendors as rows and scenarios as columns, as in the paper's Table 1.

    Args:
        run: the run (for the source vendor's "(test)" label).
        stats: the output of :func:`segmentation_stats` for one metric.
        style: output style of the numbers.
        digits: decimals.

    Returns:
        ``{"columns": [scenario labels], "rows": [{"vendor": label, "cells": [parts or None]}]}``;
        a cell is None where the scenario does not apply (the paper's "-").
    """
    scenarios = scenario_order(stats["scenario"]) if not stats.empty else []
    rows = []
    for vendor in dict.fromkeys(stats["vendor"]):
        sub = stats[stats["vendor"] == vendor]
        role = str(sub["role"].iloc[0])
        cells = []
        for scenario in scenarios:
            match = sub[sub["scenario"] == scenario]
            if match.empty:
                cells.append(None)
                continue
            row = match.iloc[0]
            parts = format_cell(row, style, digits)
            parts["paper"] = _paper(vendor, role, scenario, str(row["metric"]), style)
            cells.append(parts)
        label = f"{vendor} (test)" if role == "source" else vendor
        rows.append({"vendor": label, "name": vendor, "cells": cells})
    return {"columns": [scenario_label(s) for s in scenarios], "rows": rows}


# ------------------------------------------------------------------------ recovery of the drop

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


def _cell_seed_means(run: Run, vendor: str, scenario: str, metric: str) -> dict[Any, float]:
    """Each seed's mean of ``metric`` on one cell, pooled over images as Table 1 pools them.

    From the per-image values where the cell has them (see :func:`_seed_means`), else the mean
    of the seed's row-level metrics (over its folds, if any).
    """
    per_image = run.per_image[(run.per_image["vendor"] == vendor) & (run.per_image["scenario"] == scenario)]
    if per_image.empty:
        rows = run.segmentation[(run.segmentation["vendor"] == vendor) & (run.segmentation["scenario"] == scenario)]
        values = pd.to_numeric(rows[metric], errors="coerce").groupby(rows["seed"]).mean()
        return {seed: float(v) for seed, v in values.items()}
    table, _ = _image_by_replicate(per_image, metric)
    return _seed_means(table, has_folds(run))


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


def recovery_table(run: Run, stats: pd.DataFrame | None = None) -> pd.DataFrame:
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
      means of the same per-image values (seeds present in all three cells). With folds a
      seed's mean pools all images it scored in any fold, each first averaged over its folds,
      exactly like Table 1's ``std_seeds``. A cell without per-image CSVs uses the mean of
      the seed's row-level metrics. ``recovery_seed_mean`` and ``recovery_seed_std`` (sample
      std, NaN with fewer than two) summarise the per-seed recoveries; ``n_seeds`` counts them.
      A seed whose own drop is at most ``MIN_DROP`` is left out and named in ``note``. The
      pooled ``recovery`` is not the mean of the per-seed values (a ratio of means).

    Args:
        run: the run.
        stats: :func:`segmentation_stats` of ``run`` for ``"dice_mean"`` if already computed.

    Returns:
        One row per (target vendor, scenario), vendors in :func:`vendor_order`, scenarios in
        :func:`scenario_order`; columns :data:`RECOVERY_COLUMNS` (Dice in [0, 1], recoveries as
        fractions, ``selection`` of S as in Table 1 so oracle rows stay flagged).

    Raises:
        ValueError: ``stats`` is for another metric.
    """
    dice = segmentation_stats(run, "dice_mean") if stats is None else stats
    if not dice.empty and set(dice["metric"]) != {"dice_mean"}:
        raise ValueError(f"recovery_table needs dice_mean statistics, got {sorted(set(dice['metric']))}")
    empty = pd.DataFrame(columns=list(RECOVERY_COLUMNS))
    cells = dice.set_index(["vendor", "scenario"])
    roles = dict(zip(dice["vendor"], dice["role"], strict=True))
    source = next((v for v in vendor_order(run) if roles.get(v) == "source"), None)
    if source is None or (source, "clean") not in cells.index:
        return empty
    source_mean = float(cells.loc[(source, "clean"), "mean"])
    source_seeds = _cell_seed_means(run, source, "clean", "dice_mean")
    rows = []
    for vendor in (v for v in vendor_order(run) if roles.get(v) == "target" and (v, "clean") in cells.index):
        clean_mean = float(cells.loc[(vendor, "clean"), "mean"])
        clean_seeds = _cell_seed_means(run, vendor, "clean", "dice_mean")
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
            if drop > MIN_DROP:
                method_seeds = _cell_seed_means(run, vendor, scenario, "dice_mean")
                per_seed, notes = _seed_recoveries(source_seeds, clean_seeds, method_seeds)
                row.update(
                    recovery=(row["dice"] - clean_mean) / drop,
                    recovery_seed_mean=float(np.mean(per_seed)) if per_seed else float("nan"),
                    recovery_seed_std=_spread(per_seed),
                    n_seeds=len(per_seed),
                    note="; ".join(notes),
                )
            rows.append(row)
    return pd.DataFrame(rows, columns=list(RECOVERY_COLUMNS)) if rows else empty


def paper_recovery(vendor: str) -> float | None:
    """The share of the drop the paper's Unet-GAN recovered on ``vendor`` (Siemens 0.79, GE 0.85), from its Table 1."""
    source, clean, unetgan = (
        PAPER_TABLE1.get(key) for key in (("philips", "clean"), (vendor.lower(), "clean"), (vendor.lower(), "unetgan"))
    )
    if not (source and clean and unetgan) or vendor.lower() == "philips":
        return None
    return (unetgan[0] - clean[0]) / (source[0] - clean[0])


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
    recovery = _none_if_nan(float(row["recovery"]))
    if recovery is None:
        note = str(row.get("note") or "")
        return escape(fmt.UNDEFINED + (f" ({note})" if note else ""))
    text = escape(fmt.format_percent(recovery, 0))
    n_seeds = int(row["n_seeds"])
    std = _none_if_nan(float(row["recovery_seed_std"]))
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


def recovery_latex(table: pd.DataFrame) -> str:
    """The recovery table as LaTeX: vendor, method, drop, clean -> method Dice, recovery.

    Args:
        table: the output of :func:`recovery_table`.
    """
    rows = []
    for _, row in table.iterrows():
        oracle = " (oracle)" if "oracle" in str(row["selection"]).split("+") else ""
        rows.append(
            [
                fmt.latex_escape(row["vendor"]),
                fmt.latex_escape(scenario_label(row["scenario"])),
                fmt.format_number(_none_if_nan(float(row["drop"]))),
                f"{fmt.format_number(_none_if_nan(float(row['dice_clean'])))} $\\rightarrow$ "
                f"{fmt.format_number(_none_if_nan(float(row['dice'])))}",
                recovery_text(row, "latex") + oracle,
            ]
        )
    return _latex_tabular(
        ["vendor", "method", "drop", "Dice clean, method", "recovery"],
        rows,
        "Recovery of the domain-shift drop: (Dice of the method - Dice clean) / (Dice clean on the source - on the target)",
        "tab:recovery",
    )


def eps50(eps: Any, dice: Any) -> float | None:
    """eps50 for the report: ``unetgan_core.robustness.eps50`` with "not reached" as ``math.inf``.

    Args:
        eps: perturbation sizes (units of the normalised [0, 1] input), including 0.
        dice: mean Dice at each size.

    Returns:
        eps50; ``math.inf`` when Dice never falls to half within the measured sizes; ``None``
        when there is no unattacked (eps 0) measurement or its Dice is 0.
    """
    eps = np.asarray(eps, float)
    dice = np.asarray(dice, float)
    clean = dice[eps == 0.0]
    if clean.size == 0 or not clean[0] > 0:
        return None
    value = robustness_eps50(eps, dice)
    return math.inf if value is None else float(value)


def fgsm_curves(run: Run) -> pd.DataFrame:
    """Attack curves: mean over seeds of Dice, PSNR (dB) and SSIM per (scenario, vendor, attack, eps).

    Args:
        run: the run.
    """
    columns = ["scenario", "vendor", "attack", "eps", "dice_mean", "dice_std_seeds", "n_seeds", "psnr_db", "ssim"]
    if run.fgsm.empty:
        return pd.DataFrame(columns=columns)
    frame = run.fgsm.copy()
    for name in ("dice_mean", "psnr_db", "ssim", "eps"):
        frame[name] = pd.to_numeric(frame[name], errors="coerce")
    grouped = frame.groupby(["scenario", "vendor", "attack", "eps"], sort=False)
    out = grouped.agg(
        dice_mean=("dice_mean", "mean"),
        dice_std_seeds=("dice_mean", lambda s: s.std(ddof=1) if len(s) > 1 else float("nan")),
        n_seeds=("seed", "nunique"),
        psnr_db=("psnr_db", "mean"),
        ssim=("ssim", "mean"),
    ).reset_index()
    vendors = {v: i for i, v in enumerate(vendor_order(run))}
    scenarios = {s: i for i, s in enumerate(scenario_order(out["scenario"]))}
    out["_order"] = [
        (scenarios[s], vendors.get(v, len(vendors)), a)
        for s, v, a in zip(out.scenario, out.vendor, out.attack, strict=True)
    ]
    out = out.sort_values(["_order", "eps"]).drop(columns="_order").reset_index(drop=True)
    return out[columns]


def eps50_table(run: Run) -> pd.DataFrame:
    """eps50 per (scenario, vendor, attack), from the seed-averaged attack curves.

    Args:
        run: the run.

    Returns:
        Columns scenario, vendor, attack, dice_eps0, eps50 (``inf`` when never reached, NaN
        when no eps 0 measurement), eps_max (largest measured size), eps50_text, selection.
    """
    curves = fgsm_curves(run)
    rows = []
    for (scenario, vendor, attack), group in curves.groupby(["scenario", "vendor", "attack"], sort=False):
        value = eps50(group["eps"], group["dice_mean"])
        eps_max = float(group["eps"].max())
        zero = group[group["eps"] == 0]
        measured = run.fgsm[
            (run.fgsm["scenario"] == scenario) & (run.fgsm["vendor"] == vendor) & (run.fgsm["attack"] == attack)
        ]
        selections = sorted({str(s) for s in measured.get("selection", pd.Series(dtype=object)).dropna()})
        if value is None:
            text = fmt.MISSING
        elif math.isinf(value):
            text = "> " + fmt.format_number(eps_max, 3)
        else:
            text = fmt.format_number(value, 4)
        rows.append(
            {
                "scenario": scenario,
                "vendor": vendor,
                "attack": attack,
                "dice_eps0": float(zero["dice_mean"].iloc[0]) if not zero.empty else float("nan"),
                "eps50": float("nan") if value is None else value,
                "eps_max": eps_max,
                "eps50_text": text,
                "selection": "+".join(selections),
            }
        )
    columns = ["scenario", "vendor", "attack", "dice_eps0", "eps50", "eps_max", "eps50_text", "selection"]
    return pd.DataFrame(rows, columns=columns)


THROUGHPUT_SETTING_COLUMNS = (
    "pipeline",
    "scenario",
    "batch_size",
    "size_px",
    "precision",
    "channels_last",
    "compile",
    "device",
)


def throughput_table(run: Run) -> pd.DataFrame:
    """Throughput rows with their settings, numbers and formatted text.

    Args:
        run: the run.

    Returns:
        The settings that vary or are set, ``images_per_s``, ``ms_per_batch_median``,
        ``ms_per_batch_iqr``, ``peak_mem_mb``, ``achieved_tflops``, ``fraction_of_peak``,
        ``error`` and a ``setting`` label per row.
    """
    frame = run.throughput
    if frame.empty:
        return pd.DataFrame(columns=["setting", "images_per_s"])
    settings = [c for c in THROUGHPUT_SETTING_COLUMNS if c in frame and frame[c].notna().any()]
    out = frame[settings].copy()
    for name in ("images_per_s", "ms_per_batch_median", "ms_per_batch_iqr", "peak_mem_mb", "achieved_tflops"):
        out[name] = pd.to_numeric(frame.get(name), errors="coerce")
    out["fraction_of_peak"] = pd.to_numeric(frame.get("fraction_of_peak"), errors="coerce")
    out["error"] = frame["error"].fillna("") if "error" in frame else ""
    varying = [c for c in settings if frame[c].astype(str).nunique() > 1] or settings
    out["setting"] = [" ".join(f"{c}={row[c]}" for c in varying) for _, row in frame.iterrows()]
    return out.reset_index(drop=True)


def throughput_text(table: pd.DataFrame) -> list[dict[str, str]]:
    """Throughput rows as printed cells (images/s, ms/batch, memory, fraction of peak).

    Args:
        table: the output of :func:`throughput_table`.
    """
    rows = []
    for _, row in table.iterrows():
        failed = bool(row.get("error"))
        rows.append(
            {
                "setting": str(row["setting"]),
                "images_per_s": fmt.MISSING if failed else fmt.format_number(_none_if_nan(row["images_per_s"]), 1),
                "ms_per_batch": fmt.MISSING
                if failed
                else fmt.format_mean_std(_none_if_nan(row["ms_per_batch_median"]), None, 2)
                + (" (IQR " + fmt.format_number(_none_if_nan(row["ms_per_batch_iqr"]), 2) + ")"),
                "peak_mem_mb": fmt.MISSING if failed else fmt.format_number(_none_if_nan(row["peak_mem_mb"]), 0),
                "achieved_tflops": fmt.MISSING
                if failed
                else fmt.format_number(_none_if_nan(row["achieved_tflops"]), 4),
                "fraction_of_peak": fmt.MISSING
                if failed
                else fmt.format_percent(_none_if_nan(row["fraction_of_peak"])),
                "error": str(row.get("error") or ""),
            }
        )
    return rows


STAGE_ORDER = ("data", "unet_training", "translator_training", "evaluation", "attacks", "throughput", "report")


def stage_table(manifest: dict[str, Any]) -> pd.DataFrame:
    """Wall time per stage of the run (seconds and share of the total), from the manifest.

    Args:
        manifest: the run's manifest (``stages``: {stage: seconds}).
    """
    stages = manifest.get("stages") or {}
    rows = [(str(k), float(v)) for k, v in stages.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    # Pipeline order, whatever order the manifest's JSON object happens to list them in.
    rows.sort(key=lambda kv: (STAGE_ORDER.index(kv[0]) if kv[0] in STAGE_ORDER else len(STAGE_ORDER), kv[0]))
    total = sum(v for _, v in rows)
    return pd.DataFrame(
        [{"stage": k, "seconds": v, "share": v / total if total > 0 else float("nan")} for k, v in rows],
        columns=["stage", "seconds", "share"],
    )


# --------------------------------------------------------------------------------- exports


def _latex_tabular(header: list[str], rows: list[list[str]], caption: str, label: str) -> str:
    columns = "l" + "c" * (len(header) - 1)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{fmt.latex_escape(caption)}}}",
        rf"\label{{{label}}}",
        rf"\begin{{tabular}}{{{columns}}}",
        r"\hline",
        " & ".join(fmt.latex_escape(h) for h in header) + r" \\",
        r"\hline",
    ]
    for row in rows:
        lines.append(r"\hline" if row == ["---"] else " & ".join(row) + r" \\")
    lines += [r"\hline", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)


def table_latex(run: Run, stats: pd.DataFrame, caption: str, label: str, digits: int = 3, paper: bool = False) -> str:
    """A statistics table as LaTeX: vendors as rows, scenarios as columns, mean $\\pm$ std over images.

    Significance markers follow the value as superscripts, "oracle" is written beside numbers
    from oracle selection, and with ``paper=True`` the paper's values follow under a rule.

    Args:
        run: the run.
        stats: the output of :func:`segmentation_stats`.
        caption: the table caption (escaped).
        label: the LaTeX label.
        digits: decimals.
        paper: also print the paper's Table 1 values (Dice only).
    """
    wide = wide_table(run, stats, "latex", digits)
    rows = []
    for row in wide["rows"]:
        cells = [fmt.latex_escape(row["vendor"])]
        for cell in row["cells"]:
            if cell is None:
                cells.append(fmt.MISSING.replace("\u2013", "--"))
                continue
            text = cell["value"] + (f"$^{{{cell['marker']}}}$" if cell["marker"] else "")
            cells.append(text + (" (oracle)" if cell["oracle"] else ""))
        rows.append(cells)
    if paper and any(c and c["paper"] for r in wide["rows"] for c in r["cells"]):
        rows.append(["---"])
        for row in wide["rows"]:
            cells = [fmt.latex_escape(row["name"]) + " (paper)"]
            cells += [(c["paper"] or "--") if c else "--" for c in row["cells"]]
            rows.append(cells)
    return _latex_tabular(["", *wide["columns"]], rows, caption, label)


def _simple_latex(frame: pd.DataFrame, caption: str, label: str) -> str:
    rows = [[fmt.latex_escape(v) for v in row] for row in frame.astype(str).to_numpy().tolist()]
    return _latex_tabular(list(map(str, frame.columns)), rows, caption, label)


def _json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if math.isnan(value):
            return None
        return "inf" if math.isinf(value) else value
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def summary(run: Run) -> dict[str, Any]:
    """A machine-readable summary of the run's tables (``summary.json``).

    Args:
        run: the run.
    """
    m = run.manifest
    dice = segmentation_stats(run, "dice_mean")
    throughput = throughput_table(run)
    ok = throughput[throughput["error"] == ""] if "error" in throughput else throughput
    return _json_ready(
        {
            "schema_version": 1,
            "suite": m.get("suite"),
            "commit": m.get("commit"),
            "dirty": m.get("dirty"),
            "synthetic": run.synthetic,
            "oracle": run.oracle,
            "data_source": m.get("data_source"),
            # The reference the data set asks to cite (the suite's ``[suite] citation``), or None.
            "citation": ((m.get("suite_config") or {}).get("suite") or {}).get("citation") or None,
            "folds": ((m.get("suite_config") or {}).get("splits") or {}).get("folds") or 0,
            "table1": dice.to_dict(orient="records"),
            "recovery": recovery_table(run, dice).to_dict(orient="records"),
            "per_class": pd.concat(
                [segmentation_stats(run, "dice_blood_pool"), segmentation_stats(run, "dice_myo")], ignore_index=True
            ).to_dict(orient="records"),
            "hd95_mm": segmentation_stats(run, "hd95_mm").to_dict(orient="records"),
            "eps50": eps50_table(run).drop(columns="eps50_text").to_dict(orient="records"),
            "throughput_best_images_per_s": float(ok["images_per_s"].max()) if len(ok) else None,
            "stages_s": m.get("stages") or {},
        }
    )


def write_exports(run_dir: Path | str, run: Run | None = None) -> dict[str, Path]:
    """Write every table as CSV and LaTeX under ``run_dir/tables/`` and ``run_dir/summary.json``.

    Files: ``table1``, ``recovery``, ``per_class``, ``hd95``, ``fgsm_curves``, ``eps50``,
    ``throughput``, ``stages`` (``.csv``; the first four and ``eps50`` also ``.tex``). A table
    with nothing measured is written with its header only.

    Args:
        run_dir: the run folder.
        run: the already loaded run (read from ``run_dir`` when None).

    Returns:
        Name -> path of every file written.
    """
    run_dir = Path(run_dir)
    run = run if run is not None else load_run(run_dir)
    out = run_dir / "tables"
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}

    def save(name: str, frame: pd.DataFrame, latex: str | None = None) -> None:
        path = out / f"{name}.csv"
        frame.to_csv(path, index=False, float_format="%.6g")
        written[f"{name}.csv"] = path
        if latex is not None:
            tex = out / f"{name}.tex"
            tex.write_text(latex, encoding="utf-8")
            written[f"{name}.tex"] = tex

    dice = segmentation_stats(run, "dice_mean")
    save(
        "table1", stats_csv_frame(dice), table_latex(run, dice, "Dice per vendor and scenario", "tab:dice", paper=True)
    )
    recovery = recovery_table(run, dice)
    save("recovery", recovery, recovery_latex(recovery))
    per_class = pd.concat([segmentation_stats(run, m) for m in ("dice_blood_pool", "dice_myo")], ignore_index=True)
    save(
        "per_class",
        stats_csv_frame(per_class),
        table_latex(run, segmentation_stats(run, "dice_blood_pool"), "Dice, LV blood pool", "tab:dice-bp")
        + table_latex(run, segmentation_stats(run, "dice_myo"), "Dice, LV myocardium", "tab:dice-myo"),
    )
    hd95 = segmentation_stats(run, "hd95_mm")
    save("hd95", stats_csv_frame(hd95, digits=1), table_latex(run, hd95, "HD95 (mm)", "tab:hd95", digits=1))
    save("fgsm_curves", fgsm_curves(run))
    eps = eps50_table(run)
    save(
        "eps50",
        eps,
        _simple_latex(
            eps[["scenario", "vendor", "attack", "eps50_text"]].rename(columns={"eps50_text": "eps50"}),
            "eps50: perturbation (normalised [0,1] intensity) halving Dice",
            "tab:eps50",
        ),
    )
    save("throughput", throughput_table(run))
    save("stages", stage_table(run.manifest))
    path = run_dir / "summary.json"
    path.write_text(json.dumps(summary(run), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    written["summary.json"] = path
    return written
