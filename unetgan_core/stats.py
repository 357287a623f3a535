"""Summary statistics over per-image or per-seed metric values.

NaN values (e.g. an HD95 with one empty mask, or a myocardium Dice where none was annotated)
are never dropped silently: every summary reports ``n`` (finite values used) and ``n_nan``
(values left out), so a table can show how many images a number rests on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats as scipy_stats

from unetgan_core.errors import UserError

_BOOT_CHUNK = 256  # bootstrap resamples drawn per batch, to bound memory for large inputs
# Up to this many pairs, scipy's Wilcoxon test with tied or zero differences is an exact test over
# all 2^n sign flips (scipy.stats.wilcoxon, method="auto").
EXACT_SIGN_FLIP_MAX_N = 13


@dataclass(frozen=True)
class MeanStd:
    """Mean and sample standard deviation (ddof=1; 0.0 for a single value) of the finite values.

    Attributes:
        mean: mean of the finite values (NaN when there are none).
        std: sample standard deviation of the finite values.
        n: number of finite values used.
        n_nan: number of NaN values left out.
    """

    mean: float
    std: float
    n: int
    n_nan: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ConfidenceInterval:
    """A percentile-bootstrap interval of the mean.

    Attributes:
        mean: mean of the finite values.
        low: lower bound.
        high: upper bound.
        level: coverage, e.g. 0.95.
        n: finite values used.
        n_nan: NaN values left out.
    """

    mean: float
    low: float
    high: float
    level: float
    n: int
    n_nan: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PairedTest:
    """Result of a paired test.

    Attributes:
        statistic: the test statistic (Wilcoxon: the smaller signed-rank sum).
        p_value: two-sided p-value.
        n: pairs used (both values finite).
        n_dropped: pairs left out because a value was NaN.
    """

    statistic: float
    p_value: float
    n: int
    n_dropped: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _split_nan(values: Sequence[float] | np.ndarray) -> tuple[np.ndarray, int]:
    arr = np.asarray(values, dtype=float).reshape(-1)
    if np.isinf(arr).any():
        raise UserError("statistics: values contain infinity; only finite values or NaN are allowed")
    finite = arr[~np.isnan(arr)]
    return finite, int(len(arr) - len(finite))


def mean_std(values: Sequence[float] | np.ndarray) -> MeanStd:
    """Mean and sample std of the non-NaN values, with counts of used and NaN values.

    Args:
        values: numbers (any unit); NaN marks an undefined value.

    Returns:
        ``MeanStd(mean, std, n, n_nan)``; mean and std are NaN when no value is finite.

    Example:
        >>> mean_std([1.0, 3.0, float("nan")])
        MeanStd(mean=2.0, std=1.4142135623730951, n=2, n_nan=1)
    """
    finite, n_nan = _split_nan(values)
    if len(finite) == 0:
        return MeanStd(float("nan"), float("nan"), 0, n_nan)
    std = float(np.std(finite, ddof=1)) if len(finite) > 1 else 0.0
    return MeanStd(float(np.mean(finite)), std, len(finite), n_nan)


def bootstrap_ci(
    values: Sequence[float] | np.ndarray, level: float = 0.95, n_boot: int = 2000, seed: int = 0
) -> ConfidenceInterval:
    """Percentile-bootstrap confidence interval of the mean of the non-NaN values.

    Resamples the values with replacement ``n_boot`` times (numpy ``default_rng(seed)``, so the
    same inputs and seed give the same interval) and takes the ``(1 - level) / 2`` and
    ``(1 + level) / 2`` quantiles of the resampled means.

    Args:
        values: numbers (any unit); NaN values are left out and counted.
        level: coverage in (0, 1).
        n_boot: number of resamples (>= 1).
        seed: seed of the resampling.

    Returns:
        ``ConfidenceInterval(mean, low, high, level, n, n_nan)`` (NaN bounds when no value is finite).
    """
    if not 0 < level < 1:
        raise UserError(f"bootstrap_ci: level must lie in (0, 1), got {level}")
    if n_boot < 1:
        raise UserError(f"bootstrap_ci: n_boot must be >= 1, got {n_boot}")
    finite, n_nan = _split_nan(values)
    n = len(finite)
    if n == 0:
        return ConfidenceInterval(float("nan"), float("nan"), float("nan"), level, 0, n_nan)
    means = _bootstrap_means(finite, n_boot, seed)
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return ConfidenceInterval(float(np.mean(finite)), float(low), float(high), level, n, n_nan)


def _bootstrap_means(finite: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """``n_boot`` means of ``finite`` resampled with replacement (numpy ``default_rng(seed)``)."""
    rng = np.random.default_rng(seed)
    n = len(finite)
    means = np.empty(n_boot)
    for start in range(0, n_boot, _BOOT_CHUNK):
        count = min(_BOOT_CHUNK, n_boot - start)
        means[start : start + count] = finite[rng.integers(0, n, size=(count, n))].mean(axis=1)
    return means


def bootstrap_se(values: Sequence[float] | np.ndarray, n_boot: int = 2000, seed: int = 0) -> float:
    """Bootstrap standard error of the mean of the non-NaN values (std of ``n_boot`` resampled means).

    Args:
        values: numbers (any unit); NaN values are left out.
        n_boot: number of resamples (>= 2).
        seed: seed of the resampling (the same inputs and seed give the same value).

    Returns:
        The standard error in the values' unit; 0.0 for fewer than two finite values.
    """
    if n_boot < 2:
        raise UserError(f"bootstrap_se: n_boot must be >= 2, got {n_boot}")
    finite, _ = _split_nan(values)
    if len(finite) < 2:
        return 0.0
    return float(_bootstrap_means(finite, n_boot, seed).std(ddof=1))


def seed_level(values_by_seed: Mapping[Any, Sequence[float] | np.ndarray]) -> MeanStd:
    """Mean and std over seeds of each seed's mean (the spread due to training randomness).

    Each seed's mean is over its non-NaN values; a seed with no finite value gives NaN and is
    counted in ``n_nan`` of the result.

    Args:
        values_by_seed: ``{seed: per-image values}``.

    Returns:
        ``MeanStd`` over the per-seed means (``n`` = seeds with a finite mean).
    """
    if not values_by_seed:
        raise UserError("seed_level: no seeds given")
    return mean_std([mean_std(v).mean for _, v in sorted(values_by_seed.items(), key=lambda kv: str(kv[0]))])


def wilcoxon_paired(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> PairedTest:
    """Two-sided Wilcoxon signed-rank test of paired values ``a[i]`` vs ``b[i]`` (``scipy.stats.wilcoxon``).

    Pairs where either value is NaN are left out and counted in ``n_dropped``. Zero differences
    are dropped by scipy's default ``zero_method="wilcox"``. When every difference is zero
    (including identical inputs) there is no evidence of a difference: statistic 0.0, p = 1.0
    (scipy itself would fail there). With no pairs left, statistic and p are NaN.

    Args:
        a: values of method A per image (e.g. Dice).
        b: values of method B for the same images, same length.

    Returns:
        ``PairedTest(statistic, p_value, n, n_dropped)``.
    """
    a = np.asarray(a, dtype=float).reshape(-1)
    b = np.asarray(b, dtype=float).reshape(-1)
    if a.shape != b.shape:
        raise UserError(f"wilcoxon_paired: a has {len(a)} values and b has {len(b)}; pairs must match")
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    n, dropped = int(keep.sum()), int((~keep).sum())
    if n == 0:
        return PairedTest(float("nan"), float("nan"), 0, dropped)
    if np.all(a == b):
        return PairedTest(0.0, 1.0, n, dropped)
    d = a - b
    nonzero = d[d != 0]
    if n <= EXACT_SIGN_FLIP_MAX_N and (len(nonzero) < n or len(np.unique(np.abs(nonzero))) < len(nonzero)):
        # scipy would run permutation_test here, evaluating the statistic once per sign pattern
        # (~1 s per call at n = 13); the same exact test as one matrix product gives the same p.
        statistic, p_value = _signed_rank_sign_flip(nonzero)
        return PairedTest(statistic, p_value, n, dropped)
    result = scipy_stats.wilcoxon(a, b)
    return PairedTest(float(result.statistic), float(result.pvalue), n, dropped)


def _signed_rank_sign_flip(nonzero: np.ndarray) -> tuple[float, float]:
    """Wilcoxon statistic and two-sided exact p over all 2^m sign flips of m non-zero differences.

    Zero differences are left out before ranking (scipy's ``zero_method="wilcox"``); flipping
    them would only repeat every pattern, so the p-value is unchanged. The comparisons, with
    scipy's rounding allowance, are those of ``scipy.stats.permutation_test``.

    Args:
        nonzero: the non-zero paired differences (at most ``EXACT_SIGN_FLIP_MAX_N``, at least one).
    """
    ranks = scipy_stats.rankdata(np.abs(nonzero))  # average ranks for ties
    r_plus, r_minus = ranks[nonzero > 0].sum(), ranks[nonzero < 0].sum()
    signs = (np.arange(2 ** len(nonzero))[:, None] >> np.arange(len(nonzero))) & 1  # every sign pattern
    null = signs @ ranks  # r_plus under each pattern
    allowance = abs(r_plus) * np.finfo(float).eps * 100
    p_less, p_greater = np.mean(null <= r_plus + allowance), np.mean(null >= r_plus - allowance)
    return float(min(r_plus, r_minus)), float(min(1.0, 2 * min(p_less, p_greater)))
