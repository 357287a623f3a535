"""Apply the noise-aware gate (``bench.gate``) to every cell two runs share.

Segmentation cells (scenario, vendor) are decided on paired per-image values; FGSM cells
(scenario, vendor, attack, eps), which have no per-image values, on their per-seed Dice when at
least two seeds are shared. Replicates whose training failed its health check in either run are
left out (their numbers measure no method; the comparison reports them as failed on their own).
A cell the gate cannot decide (no per-image file, a single FGSM seed) is not in the returned
``covered`` set, and ``bench.compare`` compares its rows against a fixed threshold instead.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from unetgan_bench.bench.gate import decide
from unetgan_bench.reports.collect import Run
from unetgan_core.training.health import FAILED as FAILED_TRAINING

DICE_METRICS = ("dice_mean", "dice_blood_pool", "dice_myo")
GATE_COLUMNS = ("ci_low", "ci_high", "mdd", "n_seeds", "n_images", "method")
_NO_FOLD = -1


def _replicate_key(frame: pd.DataFrame) -> pd.Series:
    fold = frame["fold"].fillna(_NO_FOLD).astype(int) if "fold" in frame else _NO_FOLD
    return frame["seed"].astype(int).astype(str) + "/" + pd.Series(fold, index=frame.index).astype(str)


def _failed(run: Run, kind: str) -> set[tuple]:
    frame = getattr(run, kind)
    if frame.empty or "status" not in frame:
        return set()
    bad = frame[frame["status"] == FAILED_TRAINING]
    return set(zip(bad["scenario"], bad["vendor"], _replicate_key(bad), strict=True))


def _row(kind: str, key: str, metric: str, base: float, new: float, decision) -> dict[str, Any]:
    return {
        "kind": kind,
        "key": key,
        "metric": metric,
        "base": base,
        "new": new,
        "delta": decision.mean,
        "ratio": new / base if base else math.nan,
        "status": decision.status,
        "gated": True,
        "ci_low": decision.ci_low,
        "ci_high": decision.ci_high,
        "mdd": decision.mdd,
        "n_seeds": decision.n_replicates,
        "n_images": decision.n_images,
        "method": decision.method,
    }


def segmentation_cells(base: Run, new: Run, margin: float) -> tuple[list[dict[str, Any]], set[tuple[str, str]]]:
    """Gate rows for every (scenario, vendor) with paired per-image values, and the cells covered."""
    if base.per_image.empty or new.per_image.empty:
        return [], set()
    frames = []
    for run in (base, new):
        frame = run.per_image.copy()
        frame["replicate"] = _replicate_key(frame)
        frame["image"] = frame["replicate"].str.split("/").str[1] + "/" + frame["index"].astype(str)
        frame["image"] += "/" + frame["subject"].astype(str)
        frames.append(frame)
    keys = ["scenario", "vendor", "replicate", "image"]
    pairs = frames[0].merge(frames[1], on=keys, suffixes=("_base", "_new"))
    failed = _failed(base, "segmentation") | _failed(new, "segmentation")
    if failed:
        pairs = pairs[
            [k not in failed for k in zip(pairs["scenario"], pairs["vendor"], pairs["replicate"], strict=True)]
        ]
    rows, covered = [], set()
    for (scenario, vendor), cell in pairs.groupby(["scenario", "vendor"], sort=False):
        for metric in DICE_METRICS:
            both = cell[cell[f"{metric}_base"].notna() & cell[f"{metric}_new"].notna()]
            if both.empty:
                continue
            diffs = pd.DataFrame(
                {
                    "replicate": both["replicate"],
                    "image": both["image"],
                    "diff": both[f"{metric}_new"] - both[f"{metric}_base"],
                }
            )
            decision = decide(diffs, margin)
            base_mean = both.groupby("replicate")[f"{metric}_base"].mean().mean()
            new_mean = both.groupby("replicate")[f"{metric}_new"].mean().mean()
            rows.append(_row("segmentation", f"{scenario} / {vendor}", metric, base_mean, new_mean, decision))
            covered.add((scenario, vendor))
    return rows, covered


def fgsm_cells(base: Run, new: Run, margin: float) -> tuple[list[dict[str, Any]], set[tuple]]:
    """Gate rows for every FGSM (scenario, vendor, attack, eps) with at least two shared seeds."""
    if base.fgsm.empty or new.fgsm.empty:
        return [], set()
    keys = ["scenario", "vendor", "attack", "eps", "seed"]
    pairs = base.fgsm.merge(new.fgsm, on=keys, suffixes=("_base", "_new"))
    pairs = pairs[pd.to_numeric(pairs["dice_mean_base"], errors="coerce").notna()]
    pairs = pairs[pd.to_numeric(pairs["dice_mean_new"], errors="coerce").notna()]
    for suffix in ("_base", "_new"):
        if f"status{suffix}" in pairs:
            pairs = pairs[pairs[f"status{suffix}"] != FAILED_TRAINING]
    rows, covered = [], set()
    for (scenario, vendor, attack, eps), cell in pairs.groupby(["scenario", "vendor", "attack", "eps"], sort=False):
        if cell["seed"].nunique() < 2:
            continue
        b, n = cell["dice_mean_base"].astype(float), cell["dice_mean_new"].astype(float)
        diffs = pd.DataFrame({"replicate": cell["seed"].astype(str), "image": "cell", "diff": n - b})
        decision = decide(diffs, margin)
        key = f"{scenario} / {vendor} / {attack} / eps={float(eps):g}"
        rows.append(_row("fgsm", key, "dice_mean", b.mean(), n.mean(), decision))
        covered.add((scenario, vendor, attack, float(eps)))
    return rows, covered
