"""Failed-training detection: training_status on recorded health, and trainers that record it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from test_training import TINY_UNET, toy_slices
from torch import nn

from unetgan_core.errors import UserError
from unetgan_core.training import SegTrainConfig, train_segmenter, training_status
from unetgan_core.training.health import SegmenterLimits, segmenter_health, translator_health


def _segmenter(dice, empty, myo=None):
    myo = dice if myo is None else myo
    return {
        "health": {
            "kind": "segmenter",
            "checked_on": "val",
            "n_slices": 10,
            "dice_mean": (dice + myo) / 2,
            "dice_blood_pool": dice,
            "dice_myo": myo,
            "empty_fraction": empty,
            "dice_floor": 0.3,
            "empty_fraction_limit": 0.5,
        }
    }


def test_segmenter_verdicts():
    assert training_status(_segmenter(0.8, 0.0)) == ("ok", "")
    status, reason = training_status(_segmenter(0.01, 0.0))
    assert status == "failed_training" and reason == "blood-pool Dice 0.010 on val slices is below the floor 0.3"
    # One class never learned (quick's noisy Unet, seed 1, calls the blood pool myocardium: blood pool 0.0,
    # myocardium 0.83); their mean 0.41 would pass a floor on the mean.
    status, reason = training_status(_segmenter(0.0, 0.0, myo=0.83))
    assert status == "failed_training" and reason == "blood-pool Dice 0.000 on val slices is below the floor 0.3"
    status, reason = training_status(_segmenter(0.83, 0.0, myo=0.0))
    assert status == "failed_training" and reason == "myocardium Dice 0.000 on val slices is below the floor 0.3"
    assert training_status(_segmenter(0.9, 0.0, myo=float("nan"))) == ("ok", "")  # no myocardium contour checked
    status, reason = training_status(_segmenter(0.6, 0.7))
    assert status == "failed_training" and "empty prediction on 70% of the val slices" in reason
    assert training_status(_segmenter(float("nan"), 0.0))[0] == "failed_training"
    with pytest.raises(UserError, match="no health record"):
        training_status({"epochs": []})


def test_translator_verdicts():
    fine = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    assert training_status({"health": translator_health(fine)}) == ("ok", "")
    nan = fine.clone()
    nan[0, 0, 0, 0] = float("nan")
    assert training_status({"health": translator_health(nan)}) == (
        "failed_training",
        "translated images contain NaN or infinity (4 target images)",
    )
    status, reason = training_status({"health": translator_health(torch.full((4, 1, 8, 8), 0.5))})
    assert status == "failed_training" and reason.startswith("translated images are constant")


class _Background(nn.Module):
    """A collapsed Unet: every pixel is background."""

    def forward(self, x):
        logits = torch.zeros(x.shape[0], 3, *x.shape[2:])
        logits[:, 0] = 1.0
        return logits


def test_a_collapsed_unet_is_measured_as_empty_and_failed():
    health = segmenter_health(_Background(), toy_slices(4, 32, 0), "val", SegmenterLimits())
    assert health["empty_fraction"] == 1.0 and health["dice_blood_pool"] == 0.0 and health["dice_myo"] == 0.0
    assert training_status({"health": health})[0] == "failed_training"


def test_train_segmenter_records_its_status():
    train, val = toy_slices(16, 32, 0), toy_slices(8, 32, 1)
    cfg = {"model_kwargs": TINY_UNET, "batch_size": 4}
    # Barely trained (one epoch at a tiny learning rate): the untrained Unet's Dice is far below the floor.
    _, failed = train_segmenter(train, val, SegTrainConfig(**cfg, epochs=1, lr=1e-7), seed=0, progress=False)
    assert failed["status"] == "failed_training" and failed["health"]["checked_on"] == "val"
    assert "Dice" in failed["status_reason"] and "below the floor 0.3" in failed["status_reason"]
    # Trained long enough to learn both classes (width 4 and 12 epochs learns the ring but calls the disc
    # myocardium too: a failure the per-class floor catches), the verdict is ok.
    wider = {**cfg, "model_kwargs": {"width": 8}}
    _, trained = train_segmenter(train, val, SegTrainConfig(**wider, epochs=20, lr=3e-3), seed=0, progress=False)
    assert min(trained["health"]["dice_blood_pool"], trained["health"]["dice_myo"]) > 0.9, trained["health"]
    assert (trained["status"], trained["status_reason"]) == ("ok", "")
    assert np.isclose(trained["health"]["dice_mean"], trained["best_val_dice"])


def test_health_limits_are_checked():
    with pytest.raises(UserError, match="fail_dice_floor: expected a value <= 1.0"):
        SegTrainConfig(fail_dice_floor=1.5)


def test_a_failed_training_is_repeated_from_derived_seeds_up_to_restarts():
    train, val = toy_slices(8, 32, 0), toy_slices(4, 32, 1)
    # A floor no Unet reaches: every attempt fails, so all 1 + restarts attempts run.
    cfg = SegTrainConfig(model_kwargs=TINY_UNET, epochs=1, batch_size=4, fail_dice_floor=1.0, restarts=2)
    _, history = train_segmenter(train, val, cfg, seed=5, progress=False)
    seeds = [a["seed"] for a in history["attempts"]]
    assert len(seeds) == 3 and seeds[0] == 5 and len(set(seeds)) == 3
    assert all(a["status"] == "failed_training" for a in history["attempts"])
    assert history["status"] == "failed_training"
    _, once = train_segmenter(train, val, dataclasses.replace(cfg, restarts=0), seed=5, progress=False)
    assert [a["seed"] for a in once["attempts"]] == [5]
    with pytest.raises(UserError, match="restarts: expected a value >= 0"):
        SegTrainConfig(restarts=-1)
