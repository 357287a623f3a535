"""Per-image segmentation metrics: Dice and the 95th-percentile Hausdorff distance (mm).

Classes scored: 1 = LV blood pool, 2 = LV myocardium. Label 3 (RV) and 0 count as background
in both prediction and ground truth. Every function takes label maps ``[N, H, W]`` (a single
``[H, W]`` map is read as ``N = 1``) and returns one value per image, so statistics can be
recomputed from the per-image numbers.

Rules for empty masks (a class absent from the prediction, the ground truth or both):

- Dice, both empty: 1.0 (nothing to find and nothing found is a perfect answer).
- Dice, exactly one empty: 0.0 (what the formula gives; a miss or a hallucination).
- HD95, both empty: 0.0 mm.
- HD95, exactly one empty: NaN. A distance to nothing is undefined; the NaN is kept in the
  per-image array and ``unetgan_core.stats.mean_std`` counts it (``n_nan``), never dropping it
  silently.

Myocardium not annotated (``myo_labelled[i]`` False, e.g. Sunnybrook frames without an
epicardial contour): ``dice_myo`` and ``hd95_myo_mm`` are NaN *by rule* for that image (not
scored), and ``dice_mean`` / ``hd95_mm`` are the blood-pool values alone. Otherwise
``dice_mean`` and ``hd95_mm`` are the mean of the two classes; ``hd95_mm`` is NaN when either
scored class is NaN, so an undefined distance is not hidden by the other class.

HD95 follows MONAI's definition (``compute_hausdorff_distance(percentile=95)``): the surface of
a mask is its pixels that touch the background (the mask minus its binary erosion, 4-connected
structuring element, pixels outside the image counting as background); for each surface pixel
of one mask take the Euclidean distance (in mm, honouring anisotropic pixels) to the nearest
surface pixel of the other; HD95 is the larger of the two directed 95th percentiles.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from unetgan_core.errors import DataError, UserError

BLOOD_POOL, MYOCARDIUM, RIGHT_VENTRICLE = 1, 2, 3
SCORED = {"blood_pool": BLOOD_POOL, "myo": MYOCARDIUM}
HD_PERCENTILE = 95.0


def _as_label_maps(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.ndim == 2 and gt.ndim == 2:
        pred, gt = pred[None], gt[None]
    if pred.shape != gt.shape or pred.ndim != 3:
        raise UserError(f"metrics: prediction {pred.shape} and ground truth {gt.shape} must both be [N, H, W]")
    for name, arr in (("prediction", pred), ("ground truth", gt)):
        if arr.size and (not np.issubdtype(arr.dtype, np.integer) or arr.min() < 0 or arr.max() > RIGHT_VENTRICLE):
            raise DataError(f"metrics: {name} must hold integer labels 0..3, got dtype {arr.dtype}")
    return pred, gt


def _myo_mask(myo_labelled: Sequence[bool] | np.ndarray | None, n: int) -> np.ndarray:
    if myo_labelled is None:
        return np.ones(n, dtype=bool)
    mask = np.asarray(myo_labelled, dtype=bool).reshape(-1)
    if len(mask) != n:
        raise UserError(f"metrics: myo_labelled has {len(mask)} entries for {n} images")
    return mask


def _combine(first: np.ndarray, second: np.ndarray, second_scored: np.ndarray) -> np.ndarray:
    """Mean of two per-image values where the second is scored, else the first alone (NaN propagates)."""
    return np.where(second_scored, (first + second) / 2, first)


def dice_scores(
    pred: np.ndarray, gt: np.ndarray, myo_labelled: Sequence[bool] | np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Per-image Dice of the blood pool and myocardium, and their mean.

    Args:
        pred: predicted labels ``[N, H, W]`` (0..3; 3 scored as background).
        gt: ground-truth labels ``[N, H, W]``.
        myo_labelled: bool ``[N]``; False where the myocardium was not annotated (default: all True).

    Returns:
        ``{"dice_blood_pool", "dice_myo", "dice_mean"}``, each float64 ``[N]`` in [0, 1]
        (``dice_myo`` NaN where not annotated; see the module's rules).

    Example:
        >>> dice_scores(np.array([[1, 1], [0, 0]]), np.array([[1, 0], [0, 0]]))["dice_blood_pool"]
        array([0.66666667])
    """
    pred, gt = _as_label_maps(pred, gt)
    scored_myo = _myo_mask(myo_labelled, len(pred))
    out = {}
    for name, label in SCORED.items():
        p = (pred == label).reshape(len(pred), -1)
        g = (gt == label).reshape(len(gt), -1)
        overlap = (p & g).sum(axis=1)
        total = p.sum(axis=1) + g.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[f"dice_{name}"] = np.where(total == 0, 1.0, 2.0 * overlap / total)
    out["dice_myo"] = np.where(scored_myo, out["dice_myo"], np.nan)
    out["dice_mean"] = _combine(out["dice_blood_pool"], out["dice_myo"], scored_myo)
    return out


def _surface(mask: np.ndarray) -> np.ndarray:
    # border_value=0: a mask touching the image edge has its edge pixels on the surface.
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def _hd95_one(pred: np.ndarray, gt: np.ndarray, sampling: tuple[float, float]) -> float:
    has_pred, has_gt = pred.any(), gt.any()
    if not has_pred and not has_gt:
        return 0.0
    if has_pred != has_gt:
        return float("nan")
    # Every surface pixel lies in the bounding box of both masks, so the distances within it are the
    # distances in the whole image (the pixels around the box are background either way): same numbers, less work.
    both = pred | gt
    rows, cols = np.flatnonzero(both.any(axis=1)), np.flatnonzero(both.any(axis=0))
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    surface_pred, surface_gt = _surface(pred[box]), _surface(gt[box])
    # Distance from every pixel to the nearest surface pixel of the other mask, in mm.
    to_gt = ndimage.distance_transform_edt(~surface_gt, sampling=sampling)[surface_pred]
    to_pred = ndimage.distance_transform_edt(~surface_pred, sampling=sampling)[surface_gt]
    return float(max(np.percentile(to_gt, HD_PERCENTILE), np.percentile(to_pred, HD_PERCENTILE)))


def _sampling(pixel_mm: float | Sequence[float]) -> tuple[float, float]:
    try:
        values = np.broadcast_to(np.asarray(pixel_mm, dtype=float), (2,))
    except (TypeError, ValueError):
        values = np.array([np.nan])
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise UserError(f"metrics: pixel_mm must be a positive size in mm (or a (row, column) pair), got {pixel_mm!r}")
    return float(values[0]), float(values[1])


def hd95_scores(
    pred: np.ndarray,
    gt: np.ndarray,
    pixel_mm: float | Sequence[float],
    myo_labelled: Sequence[bool] | np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Per-image HD95 (mm) of the blood pool and myocardium, and their mean.

    Args:
        pred: predicted labels ``[N, H, W]`` (0..3; 3 scored as background).
        gt: ground-truth labels ``[N, H, W]``.
        pixel_mm: pixel size in mm, one number or a (row, column) pair.
        myo_labelled: bool ``[N]``; False where the myocardium was not annotated.

    Returns:
        ``{"hd95_blood_pool_mm", "hd95_myo_mm", "hd95_mm"}``, each float64 ``[N]`` in mm
        (NaN where exactly one side is empty or the myocardium is not annotated; see the module).
    """
    pred, gt = _as_label_maps(pred, gt)
    sampling = _sampling(pixel_mm)
    scored_myo = _myo_mask(myo_labelled, len(pred))
    out = {}
    for name, label in SCORED.items():
        out[f"hd95_{name}_mm"] = np.array(
            [_hd95_one(p == label, g == label, sampling) for p, g in zip(pred, gt, strict=True)]
        )
    out["hd95_myo_mm"] = np.where(scored_myo, out["hd95_myo_mm"], np.nan)
    out["hd95_mm"] = _combine(out["hd95_blood_pool_mm"], out["hd95_myo_mm"], scored_myo)
    return out


def hd95_mm(
    pred: np.ndarray,
    gt: np.ndarray,
    pixel_mm: float | Sequence[float],
    myo_labelled: Sequence[bool] | np.ndarray | None = None,
) -> np.ndarray:
    """Per-image HD95 in mm, the mean over the scored classes (``hd95_scores(...)["hd95_mm"]``).

    Args:
        pred: predicted labels ``[N, H, W]``.
        gt: ground-truth labels ``[N, H, W]``.
        pixel_mm: pixel size in mm, one number or a (row, column) pair.
        myo_labelled: bool ``[N]``; False where the myocardium was not annotated.

    Returns:
        float64 ``[N]`` in mm.
    """
    return hd95_scores(pred, gt, pixel_mm, myo_labelled)["hd95_mm"]
