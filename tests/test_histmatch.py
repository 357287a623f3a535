"""Histogram matching of target images onto the source intensity distribution."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unetgan_core.errors import DataError, UserError
from unetgan_core.histmatch import HistogramMatcher

LEVELS = np.linspace(0.05, 0.95, 19)


def _tissue(n: int, size: int, seed: int, gamma: float, scale: float) -> np.ndarray:
    """Dark background with a bright, textured body: ``scale * texture ** gamma`` inside a disc."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    body = np.hypot(yy - size / 2, xx - size / 2) < 0.4 * size
    texture = rng.uniform(0.2, 1.0, (n, size, size))
    return np.where(body, scale * texture**gamma, 0.0).astype(np.float32)


def _foreground_quantiles(images: np.ndarray, threshold: float = 0.05) -> np.ndarray:
    pixels = images.ravel()
    return np.quantile(pixels[pixels > threshold], LEVELS)


def test_matching_maps_the_target_quantiles_onto_the_sources():
    source = _tissue(6, 48, 0, gamma=1.0, scale=0.9)
    target = _tissue(6, 48, 1, gamma=2.5, scale=0.6)
    matcher = HistogramMatcher.fit(source)
    matched = matcher.transform(target)
    before = np.abs(_foreground_quantiles(target) - _foreground_quantiles(source)).max()
    after = np.abs(_foreground_quantiles(matched) - _foreground_quantiles(source)).max()
    assert before > 0.15
    assert after < 0.02
    assert matched.dtype == np.float32 and matched.shape == target.shape


def test_background_stays_dark_and_output_stays_in_unit_range():
    target = _tissue(2, 32, 1, gamma=0.5, scale=1.0)
    matched = HistogramMatcher.fit(_tissue(2, 32, 0, gamma=1.0, scale=0.5)).transform(target)
    assert np.all(matched[target == 0] == 0)
    assert matched.min() >= 0.0 and matched.max() <= 1.0


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), gamma=st.floats(0.3, 3.0), scale=st.floats(0.2, 1.0))
def test_the_map_is_monotone_within_each_image(seed, gamma, scale):
    matcher = HistogramMatcher.fit(_tissue(2, 24, 99, gamma=1.0, scale=0.8))
    target = _tissue(1, 24, seed, gamma=gamma, scale=scale)
    matched = matcher.transform(target)
    order = np.argsort(target.ravel(), kind="stable")
    assert np.all(np.diff(matched.ravel()[order]) >= -1e-6)


def test_a_nearly_empty_image_falls_back_to_all_pixels_without_error():
    matcher = HistogramMatcher.fit(_tissue(2, 32, 0, gamma=1.0, scale=0.9))
    dark = np.zeros((1, 32, 32), np.float32)
    dark[0, 0, :5] = 0.5
    out = matcher.transform(dark)
    assert np.isfinite(out).all() and out.shape == dark.shape


def test_save_and_load_round_trip(tmp_path):
    matcher = HistogramMatcher.fit(_tissue(2, 32, 0, gamma=1.0, scale=0.9), n_quantiles=11)
    matcher.save(tmp_path / "m.json")
    assert HistogramMatcher.load(tmp_path / "m.json") == matcher
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(DataError, match="bad.json: not a readable histogram matcher"):
        HistogramMatcher.load(tmp_path / "bad.json")


def test_bad_input_is_rejected_with_one_line():
    with pytest.raises(DataError, match=r"expected a non-empty \[N, H, W\]"):
        HistogramMatcher.fit(np.zeros((32, 32)))
    with pytest.raises(DataError, match="NaN"):
        HistogramMatcher.fit(np.full((1, 8, 8), np.nan))
    with pytest.raises(UserError, match="n_quantiles must be >= 2"):
        HistogramMatcher.fit(np.zeros((1, 8, 8)), n_quantiles=1)
