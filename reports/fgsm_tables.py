"""FGSM attack tables: Dice, PSNR and SSIM against perturbation size, and eps50 per attacked pipeline."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from unetgan_bench.reports import format as fmt
from unetgan_bench.reports.collect import Run
from unetgan_bench.reports.ordering import scenario_order, vendor_order
from unetgan_core.robustness import eps50 as robustness_eps50

CURVE_COLUMNS = ("scenario", "vendor", "attack", "eps", "dice_mean", "dice_std_seeds", "n_seeds", "psnr_db", "ssim")
EPS50_COLUMNS = ("scenario", "vendor", "attack", "dice_eps0", "eps50", "eps_max", "eps50_text", "selection")


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

    Returns:
        Columns :data:`CURVE_COLUMNS`, in report order and by increasing eps.
    """
    columns = list(CURVE_COLUMNS)
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


def eps50_table(run: Run, curves: pd.DataFrame) -> pd.DataFrame:
    """eps50 per (scenario, vendor, attack), from the seed-averaged attack curves.

    Args:
        run: the run (for the rows' model selection).
        curves: :func:`fgsm_curves` of ``run``.

    Returns:
        Columns :data:`EPS50_COLUMNS`: dice_eps0, eps50 (``inf`` when never reached, NaN when
        no eps 0 measurement), eps_max (largest measured size), eps50_text, selection.
    """
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
    return pd.DataFrame(rows, columns=list(EPS50_COLUMNS))
