"""Dose-response of a swept setting: Dice and recovery per target vendor against the setting's value.

A ``[sweep]`` cell's rows carry the swept settings (``"translator.lambda_unet": 15``), which
``reports.collect`` turns into columns of the segmentation table. For each swept setting with numeric values,
each target vendor and each value, this joins Table 1's Dice statistics (mean over images, 95% bootstrap CI,
spread of the seed means) with the recovery table (share of the drop recovered, spread of the per-seed
recoveries); the paper's value of the setting, where it gives one, is marked.
"""

from __future__ import annotations

import pandas as pd

from unetgan_bench.reports.collect import Run

# Column prefixes of swept settings in the segmentation table (a suite's [unet] and [translator] keys).
SETTING_PREFIXES = ("unet.", "translator.")
# The paper's value of a setting (Yan et al. 2019, section 3.2: lambda_1 = 15, lambda_2 = 5, lr 1e-5, no cycle).
PAPER_SETTINGS = {
    "translator.lambda_unet": 15.0,
    "translator.lambda_ssim": 5.0,
    "translator.lambda_cycle": 0.0,
    "translator.lr": 1e-5,
}
DOSE_COLUMNS = (
    "setting",
    "value",
    "paper",
    "vendor",
    "scenario",
    "dice",
    "ci95_low",
    "ci95_high",
    "std_seeds",
    "n_seeds",
    "recovery",
    "recovery_seed_std",
)


def swept_settings(run: Run) -> list[str]:
    """The swept settings of a run's segmentation rows, in column order."""
    return [c for c in run.segmentation.columns if str(c).startswith(SETTING_PREFIXES)]


def _numeric(value) -> bool:
    """A number other than NaN (rows of scenarios outside the sweep hold NaN in its columns)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def dose_response_table(run: Run, dice: pd.DataFrame, recovery: pd.DataFrame) -> pd.DataFrame:
    """One row per (swept setting, target vendor, value), sorted by setting, vendor and value.

    A scenario counts for a setting when its rows hold a number for it (a sweep over several settings gives each
    scenario a value of each). Columns :data:`DOSE_COLUMNS`: ``paper`` is True on the row whose value is the
    paper's; ``dice`` and the CI are Table 1's (over images, seed-averaged); ``recovery`` is the recovery table's.

    Args:
        run: the run (its segmentation table names each scenario's settings).
        dice: :func:`reports.cellstats.segmentation_stats` for ``dice_mean``.
        recovery: :func:`reports.recovery.recovery_table` of the same run.
    """
    rows = []
    seg = run.segmentation
    cells = dice.set_index(["vendor", "scenario"]) if not dice.empty else None
    recovered = recovery.set_index(["vendor", "scenario"]) if not recovery.empty else None
    for setting in swept_settings(run):
        values = seg.loc[seg[setting].map(_numeric), ["scenario", setting]].drop_duplicates("scenario")
        for scenario, value in zip(values["scenario"], values[setting], strict=True):
            for vendor in dict.fromkeys(seg.loc[(seg["scenario"] == scenario) & (seg["role"] == "target"), "vendor"]):
                if cells is None or (vendor, scenario) not in cells.index:
                    continue
                cell = cells.loc[(vendor, scenario)]
                rec = (
                    recovered.loc[(vendor, scenario)]
                    if recovered is not None and (vendor, scenario) in recovered.index
                    else None
                )
                rows.append(
                    {
                        "setting": setting,
                        "value": float(value),
                        "paper": PAPER_SETTINGS.get(setting) == float(value),
                        "vendor": vendor,
                        "scenario": scenario,
                        "dice": float(cell["mean"]),
                        "ci95_low": float(cell["ci95_low"]),
                        "ci95_high": float(cell["ci95_high"]),
                        "std_seeds": float(cell["std_seeds"]),
                        "n_seeds": int(cell["n_seeds"]),
                        "recovery": float("nan") if rec is None else float(rec["recovery"]),
                        "recovery_seed_std": float("nan") if rec is None else float(rec["recovery_seed_std"]),
                    }
                )
    if not rows:
        return pd.DataFrame(columns=list(DOSE_COLUMNS))
    return pd.DataFrame(rows, columns=list(DOSE_COLUMNS)).sort_values(["setting", "vendor", "value"], ignore_index=True)
