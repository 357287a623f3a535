"""Summary statistics on hand-checkable inputs; NaN is counted, never dropped silently."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats

from unetgan_core.errors import UserError
from unetgan_core.stats import bootstrap_ci, mean_std, seed_level, wilcoxon_paired


def test_mean_std_by_hand():
    result = mean_std([1.0, 2.0, 3.0, 4.0])
    assert result.mean == 2.5
    assert result.std == pytest.approx(math.sqrt(5 / 3))  # sample std, ddof=1
    assert (result.n, result.n_nan) == (4, 0)


def test_mean_std_counts_nan_instead_of_dropping_it_silently():
    result = mean_std([1.0, float("nan"), 3.0, float("nan")])
    assert (result.mean, result.n, result.n_nan) == (2.0, 2, 2)
    assert result.as_dict() == {"mean": 2.0, "std": pytest.approx(math.sqrt(2)), "n": 2, "n_nan": 2}


def test_mean_std_edge_cases():
    assert mean_std([5.0]).std == 0.0
    all_nan = mean_std([float("nan")] * 3)
    assert math.isnan(all_nan.mean) and (all_nan.n, all_nan.n_nan) == (0, 3)
    empty = mean_std([])
    assert math.isnan(empty.mean) and empty.n == 0
    with pytest.raises(UserError, match="infinity"):
        mean_std([1.0, float("inf")])


def test_bootstrap_ci_is_deterministic_and_brackets_the_mean():
    values = np.linspace(0.5, 0.9, 41)
    a = bootstrap_ci(values, seed=3)
    b = bootstrap_ci(values, seed=3)
    assert a == b
    assert a.mean == pytest.approx(0.7)
    assert a.low < a.mean < a.high
    assert bootstrap_ci(values, seed=4) != a


def test_bootstrap_ci_of_constant_values_is_a_point():
    ci = bootstrap_ci([0.8] * 10, n_boot=50)
    assert ci.low == pytest.approx(0.8) and ci.high == pytest.approx(0.8)


def test_bootstrap_ci_width_matches_the_normal_approximation():
    # For n = 400 draws the percentile interval is close to mean +/- 1.96 sd / sqrt(n).
    values = np.random.default_rng(0).normal(0.0, 1.0, size=400)
    ci = bootstrap_ci(values, n_boot=2000, seed=0)
    half_width = 1.96 * values.std(ddof=1) / math.sqrt(len(values))
    assert (ci.high - ci.low) / 2 == pytest.approx(half_width, rel=0.1)


def test_bootstrap_ci_counts_nan_and_checks_arguments():
    ci = bootstrap_ci([0.1, float("nan"), 0.3], n_boot=100)
    assert (ci.n, ci.n_nan, ci.level) == (2, 1, 0.95)
    assert math.isnan(bootstrap_ci([float("nan")]).low)
    with pytest.raises(UserError, match="level"):
        bootstrap_ci([1.0], level=1.5)
    with pytest.raises(UserError, match="n_boot"):
        bootstrap_ci([1.0], n_boot=0)


@settings(max_examples=20, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=30), st.integers(0, 1000))
def test_bootstrap_interval_lies_within_the_data_range(values, seed):
    ci = bootstrap_ci(values, n_boot=200, seed=seed)
    assert min(values) - 1e-12 <= ci.low <= ci.high <= max(values) + 1e-12


def test_seed_level_uses_per_seed_means():
    result = seed_level({0: [0.8, 0.9], 1: [0.6, 0.7, float("nan")], 2: [0.7]})
    # per-seed means 0.85, 0.65, 0.7
    assert result.mean == pytest.approx(0.7333333333)
    assert result.std == pytest.approx(np.std([0.85, 0.65, 0.7], ddof=1))
    assert (result.n, result.n_nan) == (3, 0)
    assert seed_level({0: [float("nan")], 1: [0.5]}).n_nan == 1
    with pytest.raises(UserError, match="no seeds"):
        seed_level({})


def test_wilcoxon_paired_matches_scipy_and_drops_nan_pairs_with_a_count():
    a = [0.81, 0.75, 0.92, 0.66, 0.70, 0.88, 0.79, float("nan")]
    b = [0.78, 0.70, 0.93, 0.60, 0.61, 0.80, 0.72, 0.5]
    result = wilcoxon_paired(a, b)
    expected = scipy_stats.wilcoxon(a[:-1], b[:-1])
    assert result.statistic == expected.statistic
    assert result.p_value == pytest.approx(expected.pvalue)
    assert (result.n, result.n_dropped) == (7, 1)


def test_wilcoxon_all_one_sided_differences_by_hand():
    # Six pairs, every difference positive: W- = 0, exact two-sided p = 2 / 2**6.
    result = wilcoxon_paired([2, 3, 4, 5, 6, 7], [1, 1, 1, 1, 1, 1])
    assert result.statistic == 0.0
    assert result.p_value == pytest.approx(2 / 64)


def test_wilcoxon_all_equal_inputs_give_p_one():
    result = wilcoxon_paired([0.5, 0.7, 0.9], [0.5, 0.7, 0.9])
    assert (result.statistic, result.p_value, result.n) == (0.0, 1.0, 3)


def test_wilcoxon_bad_inputs():
    with pytest.raises(UserError, match="pairs must match"):
        wilcoxon_paired([1, 2], [1])
    empty = wilcoxon_paired([float("nan")], [1.0])
    assert math.isnan(empty.p_value) and empty.n_dropped == 1


def test_wilcoxon_with_ties_matches_scipy_exact_permutation() -> None:
    """Tied and zero differences take the fast exact sign-flip path; it must equal scipy's."""
    from scipy import stats as scipy_stats

    a = np.array([0.9, 0.8, 0.85, 0.7, 0.7, 0.95, 0.6, 0.82])
    b = np.array([0.8, 0.8, 0.75, 0.6, 0.8, 0.85, 0.5, 0.80])
    ours = wilcoxon_paired(a, b)
    ref = scipy_stats.wilcoxon(a, b)
    assert ours.statistic == pytest.approx(float(ref.statistic))
    assert ours.p_value == pytest.approx(float(ref.pvalue), abs=1e-12)
