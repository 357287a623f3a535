"""Histogram matching: the classical, training-free baseline for vendor adaptation.

The source training set's intensity distribution is summarised by quantiles; each target image is mapped so that
its own quantiles land on the source's (a monotone piecewise linear map), then segmented by the source Unet.

Which pixels: only "foreground-ish" pixels, those above ``foreground_threshold`` (default 0.05 of the normalised
range), are used for the quantiles. The dark air around the body covers a varying share of a slice (field of view,
body size), so quantiles over all pixels would spend most of their knots on the background and shift the tissue
mapping with the patient's size. The map is anchored at 0 -> 0, threshold -> threshold and 1 -> 1, so background
pixels stay background (and dark), foreground stays foreground, and the output stays in [0, 1]. An image with
fewer than ``MIN_FOREGROUND_PIXELS`` bright pixels falls back to the quantiles of all its pixels.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from unetgan_core.errors import DataError, UserError

# Fewer bright pixels than this and a per-image quantile estimate is too noisy to trust.
MIN_FOREGROUND_PIXELS = 64


def _checked_images(images: np.ndarray, what: str) -> np.ndarray:
    x = np.asarray(images, dtype=np.float32)
    if x.ndim != 3 or len(x) == 0:
        raise DataError(f"{what}: expected a non-empty [N, H, W] image stack, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise DataError(f"{what}: images contain NaN or infinite values")
    return x


def _foreground(pixels: np.ndarray, threshold: float) -> tuple[np.ndarray, bool]:
    """The pixels above ``threshold`` and True, or all pixels and False when too few are bright."""
    bright = pixels[pixels > threshold]
    return (bright, True) if bright.size >= MIN_FOREGROUND_PIXELS else (pixels, False)


def _strictly_increasing(knots: np.ndarray) -> np.ndarray:
    """Make ``knots`` strictly increasing by nudging ties apart (flat stretches of an image's histogram)."""
    out = np.maximum.accumulate(knots.astype(np.float64))
    step = 1e-7
    for i in range(1, len(out)):
        if out[i] <= out[i - 1]:
            out[i] = out[i - 1] + step
    return out


@dataclasses.dataclass(frozen=True)
class HistogramMatcher:
    """Maps images onto the source intensity distribution, one image at a time.

    Args:
        levels: the quantile levels in (0, 1) at which the distributions are compared.
        source_quantiles: the source intensities at ``levels`` (normalised units, non-decreasing).
        foreground_threshold: pixels above this intensity count as foreground (normalised units).

    Example:
        >>> matcher = HistogramMatcher.fit(source.images)
        >>> matched = matcher.transform(target.images)
    """

    levels: tuple[float, ...]
    source_quantiles: tuple[float, ...]
    foreground_threshold: float = 0.05

    def __post_init__(self) -> None:
        if len(self.levels) != len(self.source_quantiles) or len(self.levels) < 2:
            raise UserError(
                f"histogram matcher needs >= 2 levels and one source quantile per level, "
                f"got {len(self.levels)} levels and {len(self.source_quantiles)} quantiles"
            )

    @classmethod
    def fit(cls, images: np.ndarray, n_quantiles: int = 101, foreground_threshold: float = 0.05) -> HistogramMatcher:
        """Summarise the source training images by ``n_quantiles`` quantiles of their foreground pixels.

        Args:
            images: source ``[N, H, W]`` in [0, 1] (normalised).
            n_quantiles: number of quantile levels spread evenly over [0.5%, 99.5%] (the extremes are left out:
                single hot or dead pixels would set them).
            foreground_threshold: intensity above which a pixel counts as foreground (normalised units).
        """
        x = _checked_images(images, "histogram matching source")
        if n_quantiles < 2:
            raise UserError(f"n_quantiles must be >= 2, got {n_quantiles}")
        levels = np.linspace(0.005, 0.995, n_quantiles)
        q = np.quantile(_foreground(x.ravel(), foreground_threshold)[0], levels)
        return cls(tuple(float(v) for v in levels), tuple(float(v) for v in q), float(foreground_threshold))

    def transform(self, images: np.ndarray) -> np.ndarray:
        """Map each image so its foreground quantiles equal the source's.

        Args:
            images: ``[N, H, W]`` in [0, 1].

        Returns:
            float32 ``[N, H, W]`` in [0, 1]; the map is monotone, so the order of intensities within an image is
            kept.
        """
        x = _checked_images(images, "histogram matching input")
        levels = np.asarray(self.levels)
        t = self.foreground_threshold
        src = np.concatenate([self.source_quantiles, [1.0]])
        out = np.empty_like(x)
        for i, image in enumerate(x):
            pixels, is_foreground = _foreground(image.ravel(), t)
            own = np.concatenate([np.quantile(pixels, levels), [1.0]])
            # With a foreground, the knot t -> t keeps background pixels at or below t and foreground above it,
            # so the matched image has the same foreground pixels and their quantiles are the source's.
            low_x, low_y = ([0.0, t], [0.0, t]) if is_foreground else ([0.0], [0.0])
            knots = _strictly_increasing(np.concatenate([low_x, own]))
            targets = np.maximum.accumulate(np.concatenate([low_y, src]))
            out[i] = np.interp(image, knots, targets)
        return np.clip(out, 0.0, 1.0).astype(np.float32)

    def save(self, path: Path) -> None:
        """Write the fitted quantiles as JSON (a small, readable artifact)."""
        Path(path).write_text(json.dumps(dataclasses.asdict(self), indent=1))

    @classmethod
    def load(cls, path: Path) -> HistogramMatcher:
        """Read a matcher written by ``save``."""
        try:
            raw = json.loads(Path(path).read_text())
            return cls(tuple(raw["levels"]), tuple(raw["source_quantiles"]), float(raw["foreground_threshold"]))
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise DataError(f"{path}: not a readable histogram matcher ({exc})") from None
