"""Failed-training detection: a model that did not learn is marked, never reported as a result.

After training, each trainer measures its model once and stores the measurement in its history under
``health``; ``training_status(history)`` turns that record into ``("ok", "")`` or
``("failed_training", reason)``. The trainers also store the verdict as ``history["status"]`` and
``history["status_reason"]`` (written to the artifact's ``history.json``).

- A segmenter fails when its mean Dice of either class (blood pool, myocardium; ``metrics.dice_scores``'
  rules) on the validation slices, or on its un-augmented training slices when there are no validation
  subjects, is below ``dice_floor`` (a Unet that never learned one class, e.g. one that calls the whole
  LV myocardium, can reach 0.8 on the other and 0.4 on their mean), or when it predicts no foreground at all on more than
  ``empty_fraction`` of the slices whose ground truth has a blood pool (a collapse to "background").
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
from unetgan_core.metrics import dice_scores
from unetgan_core.training.selection import segment

OK, FAILED = "ok", "failed_training"
# Intensity units (images span [0, 1]): far below the contrast of any anatomy, far above float rounding.
TRANSLATOR_MIN_SD = 1e-3


@dataclasses.dataclass(frozen=True)
class SegmenterLimits:
    """When a trained Unet counts as failed.

    Args:
        dice_floor: least acceptable mean Dice of each class on the checked slices (a credible LV-Unet scores
            well above 0.5 on both; a collapsed class near 0).
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
    scores = dice_scores(pred, slices.labels, slices.myo_labelled)
    myo = scores["dice_myo"][np.asarray(slices.myo_labelled, bool)]
    return {
        "kind": "segmenter",
        "checked_on": checked_on,
        "n_slices": len(slices),
        "dice_mean": float(np.mean(scores["dice_mean"])),
        "dice_blood_pool": float(np.mean(scores["dice_blood_pool"])),
        # NaN when no checked slice has a myocardium contour: then only the blood pool is judged.
        "dice_myo": float(np.mean(myo)) if len(myo) else float("nan"),
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
        for name, what in (("dice_blood_pool", "blood-pool"), ("dice_myo", "myocardium")):
            value = health[name]
            if name == "dice_myo" and not np.isfinite(value):
                continue  # no checked slice has a myocardium contour
            if not np.isfinite(value) or value < health["dice_floor"]:
                return FAILED, f"{what} Dice {value:.3f} on {where} is below the floor {health['dice_floor']}"
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
