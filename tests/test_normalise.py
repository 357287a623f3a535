"""The histogram percentiles of stored integers equal numpy's percentiles, so both normalisations agree bit for bit."""

import numpy as np
import pytest

from unetgan_core.data.normalise import integer_percentiles, normalise_images, normalise_stored_integers


@pytest.mark.parametrize("side, levels", [(1, 16), (5, 4), (17, 256), (64, 4096), (96, 65536)])
def test_histogram_percentiles_equal_numpys(side, levels):
    rng = np.random.default_rng(side)
    images = np.floor(rng.gamma(1.5, levels / 6, (6, side, side))).clip(0, levels - 1).astype(np.float32)
    images[0] = 3 % levels  # a constant image
    images[1, : side // 2] = 0  # many ties at the low end
    rows = images.reshape(len(images), -1)
    lo, hi = integer_percentiles(rows, levels)
    expected_lo, expected_hi = np.percentile(rows, [1.0, 99.0], axis=1)
    assert lo.dtype == expected_lo.dtype
    np.testing.assert_array_equal(lo, expected_lo)
    np.testing.assert_array_equal(hi, expected_hi)
    np.testing.assert_array_equal(normalise_stored_integers(images, levels), normalise_images(images))


@pytest.mark.parametrize("bad", [0.5, -1.0, 16.0, np.nan])
def test_values_that_are_not_stored_integers_are_refused(bad):
    images = np.zeros((2, 4, 4), dtype=np.float32)
    images[1, 2, 3] = bad
    with pytest.raises(ValueError, match=r"whole numbers in \[0, 16\)"):
        normalise_stored_integers(images, 16)
