"""The noise-aware regression gate: is a drop in Dice larger than training and test-image noise explain?

A change to training code (or another CPU) sends every training down another float path, so a
run's Dice moves by training noise even when the method is as good as before. Per cell
(scenario, vendor) the gate pairs the per-image values of the two runs (the same test images,
matched by fold, image index and subject) within each replicate (a seed, or a seed and fold),
and summarises the differences ``d = new - base``:

- ``mean``: the mean over replicates of each replicate's mean difference (Dice units);
- ``se``: its standard error, two parts added in quadrature: test-image sampling (a bootstrap
  over images of the per-image difference averaged over replicates: the uncertainty about the
  image population) and training noise (the spread of the replicates' mean differences over
  ``sqrt(S)``, with ``S`` replicates);
- the CI: ``mean +/- c * se``, ``c`` Student's t quantile at the Welch-Satterthwaite degrees of
  freedom of those two parts. When training noise dominates, that is about ``S - 1`` degrees of
  freedom (``c`` = 4.30 for 3 seeds at 95%), because a spread estimated from 3 seeds is itself
  uncertain. With one replicate the training noise cannot be estimated: the CI covers image
  sampling only, and ``method`` says so.

A cell **regressed** when the whole CI lies below ``-margin``; **improved** when it lies above
``+margin``; otherwise the change is **within noise** (``equal`` when every difference is 0).

Power: a true drop ``delta`` is found with probability about ``Phi((delta - margin) / se - c)``,
so the drop found 80% of the time, the **minimum detectable drop**, is
``mdd = margin + (c + 0.84) * se``. It grows with the seed-to-seed spread, shrinks with the
square root of the number of seeds (and ``c`` falls fast from 1 to 5 seeds), and the image
count only matters while image sampling dominates. Every decision reports its ``mdd``.
"""

from __future__ import annotations

import dataclasses
import math

import pandas as pd
from scipy import stats as scipy_stats

from unetgan_core.stats import bootstrap_se

LEVEL = 0.95  # two-sided CI coverage
POWER = 0.80  # the power at which the minimum detectable drop is stated
N_BOOT = 2000
_EXACT = 1e-12


@dataclasses.dataclass(frozen=True)
class GateDecision:
    """One cell's decision.

    Attributes:
        mean: mean paired difference new - base (metric units).
        ci_low, ci_high: the CI of ``mean`` at :data:`LEVEL`.
        se: standard error of ``mean``.
        mdd: minimum detectable drop at :data:`POWER` (metric units, > 0).
        n_replicates: replicates (seeds x folds) present in both runs.
        n_images: paired images over all replicates.
        status: ``regressed``, ``improved``, ``noise`` (within noise) or ``equal``.
        method: how the CI was formed, one line.
    """

    mean: float
    ci_low: float
    ci_high: float
    se: float
    mdd: float
    n_replicates: int
    n_images: int
    status: str
    method: str


def critical_value(df: float, level: float = LEVEL) -> float:
    """The CI half-width in standard errors: Student's t quantile with ``df`` degrees of freedom."""
    q = (1 + level) / 2
    return float(scipy_stats.norm.ppf(q)) if math.isinf(df) else float(scipy_stats.t.ppf(q, df))


def decide(pairs: pd.DataFrame, margin: float, seed: int = 0) -> GateDecision:
    """The gate's decision for one cell.

    Args:
        pairs: one row per paired image: ``replicate`` (seed, or seed and fold), ``image`` (the
            test image: fold, index and subject) and ``diff`` (new - base of one metric, finite).
        margin: the drop (metric units, >= 0) a regression must exceed with confidence.
        seed: bootstrap seed.

    Raises:
        ValueError: no pair.
    """
    if pairs.empty:
        raise ValueError("decide: no paired values")
    by_replicate = pairs.groupby("replicate", sort=True)["diff"].mean()
    n_rep, n_images = len(by_replicate), len(pairs)
    mean = float(by_replicate.mean())
    per_image = pairs.groupby("image", sort=True)["diff"].mean().to_numpy(float)
    se_images = bootstrap_se(per_image, N_BOOT, seed)
    se_seeds = float(by_replicate.std(ddof=1)) / math.sqrt(n_rep) if n_rep >= 2 else 0.0
    se = math.hypot(se_images, se_seeds)
    df = _welch_df(se_images, len(per_image) - 1, se_seeds, n_rep - 1)
    c = critical_value(df)
    low, high = mean - c * se, mean + c * se
    if (pairs["diff"].abs() <= _EXACT).all():
        status = "equal"
    elif high < -margin:
        status = "regressed"
    elif low > margin:
        status = "improved"
    else:
        status = "noise"
    if n_rep >= 2:
        method = f"{len(per_image)} images x {n_rep} replicates, image bootstrap + seed spread, t({df:.1f})"
    else:
        method = f"{len(per_image)} images, 1 replicate: CI covers test-image sampling only, not training noise"
    mdd = margin + (c + float(scipy_stats.norm.ppf(POWER))) * se
    return GateDecision(mean, low, high, se, mdd, n_rep, n_images, status, method)


def _welch_df(se_a: float, df_a: float, se_b: float, df_b: float) -> float:
    """Welch-Satterthwaite degrees of freedom of ``se_a**2 + se_b**2`` (inf when both are 0)."""
    parts = [(se**4 / df) for se, df in ((se_a, df_a), (se_b, df_b)) if df > 0 and se > 0]
    total = se_a**2 + se_b**2
    return total**2 / sum(parts) if parts else math.inf
