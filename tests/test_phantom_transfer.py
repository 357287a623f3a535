"""The float32 estimate of the transfer curve decides only pixels it provably gets right: every stored
integer equals the float64 formula's, at rounding boundaries too."""

import numpy as np
import pytest

from unetgan_core.data.phantom.transfer import _exact, transfer_and_quantise


def _float64_formula(magnitude, full_scale, gamma, bits):
    col = (slice(None), None, None)
    return _exact(magnitude, (1.0 / full_scale)[col], gamma[col], (2.0**bits - 1.0)[col])


@pytest.mark.parametrize(
    "gamma_range, bits", [((0.45, 0.55), 12), ((0.05, 10.0), 12), ((0.3, 3.0), 8), ((0.9, 1.1), 16)]
)
def test_equals_the_float64_formula_next_to_rounding_boundaries(gamma_range, bits):
    rng = np.random.default_rng(bits)
    count, levels = 6, 2.0**bits - 1.0
    gamma = rng.uniform(*gamma_range, count)
    full_scale = rng.uniform(0.2, 5.0, count)
    bits = np.full(count, bits)
    # Magnitudes whose exact z = levels * y**gamma + 0.5 lies within ~1e-7 (relative) of an integer.
    k = rng.integers(1, int(levels), (count, 48, 48))
    y = ((k - 0.5) / levels) ** (1.0 / gamma[:, None, None]) * (1.0 + rng.normal(0.0, 1e-7, k.shape))
    magnitude = (y * full_scale[:, None, None]).astype(np.float32)
    magnitude[:, :6] = rng.uniform(0.0, 7.0, (count, 6, 48)) * full_scale[:, None, None]  # ordinary and clipped
    magnitude[:, 6, :4] = [0.0, 1e-40, 1e-32, 1e-20]  # zero and values too small for float32's precision
    out = transfer_and_quantise(magnitude, full_scale, gamma, bits)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, _float64_formula(magnitude, full_scale, gamma, bits))
