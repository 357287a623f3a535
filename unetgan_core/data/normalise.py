"""The network's input normalisation, shared by the phantom and every real-data loader."""

from __future__ import annotations

import numpy as np

LOW_PERCENTILE, HIGH_PERCENTILE = 1.0, 99.0
# What a source that uses ``normalise_images`` declares as its ``normalisation`` (compared across sources).
NORMALISATION = "per-image 1st-99th percentile clip to [0, 1]"


def normalise_images(images: np.ndarray) -> np.ndarray:
    """Clip each image to its own 1st-99th intensity percentile and scale that range to [0, 1].

    Args:
        images: ``[N, H, W]`` magnitudes in any unit.

    Returns:
        float32 ``[N, H, W]`` in [0, 1]. A constant image maps to all zeros.
    """
    x = np.asarray(images, dtype=np.float32)
    lo, hi = np.percentile(x.reshape(len(x), -1), [LOW_PERCENTILE, HIGH_PERCENTILE], axis=1)
    return _rescale(x, lo, hi)


def normalise_stored_integers(images: np.ndarray, levels: int) -> np.ndarray:
    """``normalise_images`` of images holding integers in ``[0, levels)``, e.g. a scanner's stored values.

    The same result bit for bit, with the two percentiles read from a histogram per image instead of
    a partial sort of its pixels (several times faster at 192 px).

    Args:
        images: ``[N, H, W]`` whole numbers in ``[0, levels)`` (any float or integer dtype).
        levels: the number of stored values, e.g. ``2**12``.

    Raises:
        ValueError: a value that is not a whole number in ``[0, levels)``.
    """
    x = np.asarray(images, dtype=np.float32)
    lo, hi = integer_percentiles(x.reshape(len(x), -1), levels)
    return _rescale(x, lo, hi)


def integer_percentiles(rows: np.ndarray, levels: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.percentile(rows, [LOW_PERCENTILE, HIGH_PERCENTILE], axis=1)`` of whole numbers in ``[0, levels)``.

    numpy's default ("linear") percentile interpolates between the order statistics at ranks
    ``floor(v)`` and ``floor(v) + 1``, ``v = (n - 1) q``; they are read from each row's cumulative
    histogram, and the interpolation repeats numpy's (``tests/test_normalise.py`` checks equality).

    Args:
        rows: float32 ``[N, n]``.
        levels: exclusive upper bound of the values.
    """
    count, n = rows.shape
    with np.errstate(invalid="ignore"):  # NaN or inf: refused just below
        codes = rows.astype(np.intp)
    if not np.array_equal(codes, rows) or codes.min(initial=0) < 0 or codes.max(initial=0) >= levels:
        raise ValueError(f"integer_percentiles needs whole numbers in [0, {levels})")
    codes += (np.arange(count) * levels)[:, None]
    cumulative = np.bincount(codes.ravel(), minlength=count * levels).reshape(count, levels).cumsum(axis=1)
    q = np.true_divide([LOW_PERCENTILE, HIGH_PERCENTILE], 100)
    virtual = (n - 1) * q
    below = np.floor(virtual)
    ranks = np.concatenate([below, np.minimum(below + 1, n - 1)]).astype(np.intp)
    # The value of rank k is the first level whose cumulative count exceeds k.
    stats = np.stack([np.searchsorted(row, ranks, side="right") for row in cumulative], axis=1).astype(rows.dtype)
    a, b = stats[:2], stats[2:]
    t = (virtual - below)[:, None]
    diff = b - a
    out = np.add(a, diff * t)
    np.subtract(b, diff * (1 - t), out=out, where=t >= 0.5)
    return out[0], out[1]


def _rescale(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Clip ``x`` (float32 ``[N, H, W]``) to ``[lo, hi]`` per image and scale it to [0, 1] (float64 math)."""
    span = np.where(hi - lo > 0, hi - lo, 1.0).astype(np.float32)
    out = np.subtract(x, lo[:, None, None])
    out /= span[:, None, None]
    return np.clip(out, 0.0, 1.0, out=out).astype(np.float32)
