"""Per-cell statistics of a segmentation metric: mean and spread over images, seeds and folds, CI, Wilcoxon p.

A cell is one (vendor, scenario) of a run. Definitions (documented in the report too):

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

The statistics themselves (mean and std, bootstrap, Wilcoxon) are :mod:`unetgan_core.stats`;
this module decides which values go into them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from unetgan_bench.reports.collect import Run
from unetgan_bench.reports.ordering import scenario_order, vendor_order
from unetgan_core import stats
from unetgan_core.hashing import derive_seed
from unetgan_core.training.health import FAILED as FAILED_TRAINING

METRIC_LABELS = {
    "dice_mean": "Dice (mean of blood pool and myocardium)",
    "dice_blood_pool": "Dice, LV blood pool",
    "dice_myo": "Dice, LV myocardium",
    "hd95_mm": "HD95 (mm)",
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
    "n_failed",
    "failed_note",
)
# Added after STATS_COLUMNS only for runs that cross-validate by subject (``[splits] folds``).
FOLD_COLUMNS = ("n_folds", "std_folds")
IMAGE_ID = ("subject", "slice_index", "phase")


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


def spread(means: list[float]) -> float:
    """Sample standard deviation of group means (seeds, folds); NaN with fewer than two."""
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
    return spread(seed_means), spread(fold_means), len(fold_means)


def _failed(rows: pd.DataFrame) -> pd.Series:
    """Which result rows come from a failed training (``status`` "failed_training")."""
    if "status" not in rows:
        return pd.Series(False, index=rows.index)
    return rows["status"] == FAILED_TRAINING


def _cell_rows(run: Run, vendor: str, scenario: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The cell's result rows and its per-image rows (either may be empty), without failed trainings.

    A replicate whose Unet or translator failed its training check is not a measurement of the
    method: its rows and images are left out of every statistic (``failed_replicates`` names them).
    """
    seg, per_image = run.segmentation, run.per_image
    rows = seg[(seg["vendor"] == vendor) & (seg["scenario"] == scenario)]
    failed = rows[_failed(rows)]
    images = per_image[(per_image["vendor"] == vendor) & (per_image["scenario"] == scenario)]
    if not failed.empty and "cell_id" in images:
        images = images[~images["cell_id"].isin(set(failed["cell_id"]))]
    return rows[~_failed(rows)], images


def _role(run: Run, vendor: str, scenario: str) -> str:
    seg = run.segmentation
    roles = seg.loc[(seg["vendor"] == vendor) & (seg["scenario"] == scenario), "role"].dropna()
    return str(roles.iloc[0]) if len(roles) else ""


def failed_replicates(run: Run, vendor: str, scenario: str) -> tuple[int, str]:
    """(number of failed seed/fold replicates, a note naming them and why) for one cell."""
    seg = run.segmentation
    rows = seg[(seg["vendor"] == vendor) & (seg["scenario"] == scenario)]
    failed = rows[_failed(rows)]
    if failed.empty:
        return 0, ""
    parts = []
    for _, row in failed.iterrows():
        fold = row.get("fold")
        where = f"seed {row['seed']}" + (f" fold {int(fold)}" if pd.notna(fold) else "")
        parts.append(f"{where}: {row.get('status_reason') or 'failed training'}")
    return len(failed), "failed training, left out: " + "; ".join(parts)


def cell_seed_means(run: Run, vendor: str, scenario: str, metric: str) -> dict[Any, float]:
    """Each seed's mean of ``metric`` on one cell, pooled over images as Table 1 pools them.

    From the per-image values where the cell has them (with folds a seed's mean pools every
    image it scored in any fold, each first averaged over its folds), else the mean of the
    seed's row-level metrics (over its folds, if any).
    """
    rows, per_image = _cell_rows(run, vendor, scenario)
    if per_image.empty:
        values = pd.to_numeric(rows[metric], errors="coerce").groupby(rows["seed"]).mean()
        return {seed: float(v) for seed, v in values.items()}
    table, _ = _image_by_replicate(per_image, metric)
    return _seed_means(table, has_folds(run))


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
    rows, per_image = _cell_rows(run, vendor, scenario)
    n_failed, failed_note = failed_replicates(run, vendor, scenario)
    if rows.empty and not n_failed:
        return None
    folds = has_folds(run)
    selections = sorted({str(s) for s in rows.get("selection", pd.Series(dtype=object)).dropna()})
    out: dict[str, Any] = {
        "vendor": vendor,
        "role": str(rows["role"].iloc[0]) if "role" in rows and rows["role"].notna().any() else "",
        "scenario": scenario,
        "metric": metric,
        "n_seeds": int(rows["seed"].nunique()),
        "selection": "+".join(selections),
        "std_images": float("nan"),
        "std_seeds": float("nan"),
        "ci95_low": float("nan"),
        "ci95_high": float("nan"),
        "p_vs_clean": float("nan"),
        "n_failed": n_failed,
        "failed_note": failed_note,
    }
    if rows.empty:  # every replicate failed its training: nothing to report but the failure
        return {**out, "role": _role(run, vendor, scenario), "n_images": 0, "n_undefined": 0, "mean": float("nan")}
    if folds:
        out.update(n_folds=int(rows["fold"].nunique()), std_folds=float("nan"))
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
    _, clean = _cell_rows(run, vendor, "clean")
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

    A report reads these through :class:`reports.runstats.RunStats`, which computes each
    metric once (the bootstrap is the expensive part).

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
