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
    flat = x.reshape(len(x), -1)
    lo, hi = np.percentile(flat, [LOW_PERCENTILE, HIGH_PERCENTILE], axis=1)
    span = np.where(hi - lo > 0, hi - lo, 1.0).astype(np.float32)
    out = (x - lo[:, None, None]) / span[:, None, None]
    return np.clip(out, 0.0, 1.0).astype(np.float32)
