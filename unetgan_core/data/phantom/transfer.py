"""The vendor intensity transfer curve and integer quantisation, the last step of the acquisition chain.

The stored integer is ``floor(levels * y ** gamma + 0.5)`` with the power taken in float64 as
``exp(gamma * log(y))``. Most pixels are far from a rounding boundary, where a float32 estimate
(vectorised log and exp, several times cheaper) already decides the integer; only pixels whose
estimate lies within a proven error bound of a boundary, or whose ``y`` is too small for float32,
are computed again in float64. So the result equals the float64 formula exactly, pixel for pixel.
"""

from __future__ import annotations

import numpy as np

# Error of the float32 estimate of z = levels * y ** g + 0.5, in units of levels * 2**-24 (float32's
# unit roundoff): rounding y (3: magnitude, scale, product) is amplified by g; rounding g, log
# (numpy's vectorised float32 log and exp are within 4 ulp) and the product g log y are amplified
# by y ** g |log y ** g| <= 1/e; exp adds 4 and the last product and sum 2: about 3 g + 9 in all.
# The margin below, 32 (g + 3) + 4, is ten times that.
_ULPS = 32.0
_EPS32 = 2.0**-24
_TINY = 1e-30  # below this, y would lose relative precision in float32 (subnormals start near 1e-38)


def transfer_and_quantise(
    magnitude: np.ndarray, full_scale: np.ndarray, gamma: np.ndarray, bits: np.ndarray
) -> np.ndarray:
    """Map magnitudes through the vendor's gamma curve to stored integers.

    ``round(clip(m / full_scale, 0, 1) ** gamma * (2**bits - 1))``; brighter pixels clip.

    Args:
        magnitude: ``[B, H, W]`` magnitudes.
        full_scale: ``[B]`` magnitude stored as the largest integer.
        gamma: ``[B]`` exponent of the transfer curve.
        bits: ``[B]`` stored bit depth.

    Returns:
        float32 ``[B, H, W]`` of integer values in [0, 2**bits - 1].
    """
    scale = 1.0 / np.where(full_scale > 0, full_scale, 1.0)
    gamma = np.asarray(gamma, dtype=np.float64)
    levels = 2.0 ** np.asarray(bits, dtype=np.float64) - 1.0
    # Distance from a rounding boundary that the float32 estimate must keep: its error bound
    # (relative error times the largest value, ``levels``) plus float32 rounding of z itself.
    margin = levels * _EPS32 * (_ULPS * (gamma + 3.0) + 4.0)
    if margin.max(initial=0.0) >= 0.25:  # too coarse to decide many pixels: float64 throughout
        return _exact(magnitude, scale[:, None, None], gamma[:, None, None], levels[:, None, None])
    col = (slice(None), None, None)
    y = np.multiply(magnitude, scale.astype(np.float32)[col], dtype=np.float32)
    tiny = y < _TINY
    np.minimum(y, np.float32(1.0), out=y)
    with np.errstate(divide="ignore"):  # log(0) = -inf gives exp(-inf) = 0, as 0 ** gamma
        np.log(y, out=y)
    y *= gamma.astype(np.float32)[col]
    np.exp(y, out=y)
    y *= levels.astype(np.float32)[col]
    y += np.float32(0.5)
    stored = np.floor(y)
    y -= stored  # the fraction: exact in float32 (Sterbenz)
    y -= np.float32(0.5)
    np.abs(y, out=y)
    unsure = y > (0.5 - margin).astype(np.float32)[col]
    unsure |= tiny
    where = np.flatnonzero(unsure)
    image = where // (unsure.size // len(unsure))
    values = np.asarray(magnitude).reshape(-1)[where]
    stored.reshape(-1)[where] = _exact(values, scale[image], gamma[image], levels[image])
    return stored


def _exact(magnitude: np.ndarray, scale: np.ndarray, gamma: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """The float64 formula (arguments broadcast elementwise), as float32 integers."""
    # One float64 buffer, updated in place: the same operations in the same order as the formula.
    y = np.multiply(magnitude, scale, dtype=np.float64)
    np.minimum(y, 1.0, out=y)
    with np.errstate(divide="ignore"):
        np.log(y, out=y)
    y *= gamma
    np.exp(y, out=y)
    y *= levels
    y += 0.5
    return np.floor(y, out=y).astype(np.float32)
