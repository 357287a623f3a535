"""Failed-training detection: a model that did not learn is marked, never reported as a result.

After training, each trainer measures its model once and stores the measurement in its history under
``health``; ``training_status(history)`` turns that record into ``("ok", "")`` or
``("failed_training", reason)``. The trainers also store the verdict as ``history["status"]`` and
``history["status_reason"]`` (written to the artifact's ``history.json``).

- A segmenter fails when its mean Dice (blood pool and myocardium, ``metrics.dice_scores``' rules) on the
  validation slices, or on its un-augmented training slices when there are no validation subjects, is below
  ``dice_floor``, or when it predicts no foreground at all on more than ``empty_fraction`` of the slices whose
  ground truth has a blood pool (a collapsed Unet that answers "background" everywhere).
- A translator fails when its output on target images is not finite anywhere or is constant (standard
  deviation over all output pixels below ``TRANSLATOR_MIN_SD``): such a generator erased the anatomy.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from torch import nn

from unetgan_core.data.sliceset import BLOOD_POOL, SliceSet
from unetgan_core.errors import UserError
from unetgan_core.training.selection import mean_dice, segment

OK, FAILED = "ok", "failed_training"
# Intensity units (images span [0, 1]): far below the contrast of any anatomy, far above float rounding.
TRANSLATOR_MIN_SD = 1e-3


@dataclasses.dataclass(frozen=True)
class SegmenterLimits:
    """When a trained Unet counts as failed.

    Args:
        dice_floor: least acceptable mean Dice on the checked slices (a credible LV-Unet scores well above 0.5;
            a collapsed one near 0).
        empty_fraction: largest acceptable fraction of blood-pool slices with an empty prediction.
    """

    dice_floor: float = 0.3
    empty_fraction: float = 0.5

    def __post_init__(self) -> None:
        for name in ("dice_floor", "empty_fraction"):
            if not 0 <= getattr(self, name) <= 1:
                raise UserError(f"fail_{name}: must be within 0..1, got {getattr(self, name)}")


HEALTH_DEFAULTS = SegmenterLimits()


def segmenter_health(model: nn.Module, slices: SliceSet, checked_on: str, limits: SegmenterLimits) -> dict[str, Any]:
    """Measure a trained Unet for ``training_status``.

    Args:
        model: the Unet with its selected weights.
        slices: labelled slices to measure on (validation, or training without augmentation).
        checked_on: ``"val"`` or ``"train"``, recorded.
        limits: the thresholds, recorded beside the measurements so the verdict can be recomputed.
    """
    pred = segment(model, slices.images)
    has_blood = (slices.labels == BLOOD_POOL).any(axis=(1, 2))
    empty = ~(pred > 0).any(axis=(1, 2))
    return {
        "kind": "segmenter",
        "checked_on": checked_on,
        "n_slices": len(slices),
        "dice_mean": mean_dice(pred, slices.labels, slices.myo_labelled),
        "empty_fraction": float(empty[has_blood].mean()) if has_blood.any() else 0.0,
        "dice_floor": limits.dice_floor,
        "empty_fraction_limit": limits.empty_fraction,
    }


def translator_health(outputs: torch.Tensor) -> dict[str, Any]:
    """Measure a trained generator's output on target images for ``training_status``.

    Args:
        outputs: ``[N, 1, H, W]`` translated images.
    """
    values = outputs.detach().double().cpu()
    finite = bool(torch.isfinite(values).all())
    return {
        "kind": "translator",
        "n_images": len(values),
        "finite": finite,
        "output_sd": float(values.std()) if finite and values.numel() > 1 else 0.0,
        "min_sd": TRANSLATOR_MIN_SD,
    }


def training_status(history: dict[str, Any]) -> tuple[str, str]:
    """``("ok", "")`` or ``("failed_training", reason)`` from a training history's ``health`` record.

    Args:
        history: the dict a trainer returns (the artifact's ``history.json``).

    Raises:
        UserError: the history has no ``health`` record of a known kind (trained before the check existed).
    """
    health = history.get("health") if isinstance(history, dict) else None
    kind = health.get("kind") if isinstance(health, dict) else None
    if kind == "segmenter":
        where = f"{health['checked_on']} slices"
        if not np.isfinite(health["dice_mean"]) or health["dice_mean"] < health["dice_floor"]:
            return FAILED, f"mean Dice {health['dice_mean']:.3f} on {where} is below the floor {health['dice_floor']}"
        if health["empty_fraction"] > health["empty_fraction_limit"]:
            return FAILED, (
                f"empty prediction on {health['empty_fraction']:.0%} of the {where} with a blood pool "
                f"(limit {health['empty_fraction_limit']:.0%})"
            )
        return OK, ""
    if kind == "translator":
        if not health["finite"]:
            return FAILED, f"translated images contain NaN or infinity ({health['n_images']} target images)"
        if health["output_sd"] < health["min_sd"]:
            return FAILED, f"translated images are constant (sd {health['output_sd']:.2g} < {health['min_sd']})"
        return OK, ""
    raise UserError("training history has no health record; retrain with this version to check it")
