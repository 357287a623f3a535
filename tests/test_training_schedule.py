"""The Unet's schedules: learning rate (linear warm-up, then constant or cosine) and the noisy variant's noise ramp."""

import pytest
from test_training import TINY_UNET, toy_slices

from unetgan_core.errors import UserError
from unetgan_core.training import SegTrainConfig, train_segmenter
from unetgan_core.training.segmentation import lr_factor


def test_warmup_ramps_linearly_then_constant_or_cosine():
    assert [lr_factor(s, 10, 4, "constant") for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    cosine = [lr_factor(s, 10, 4, "cosine") for s in range(10)]
    assert cosine[:4] == [0.25, 0.5, 0.75, 1.0]
    # (1 + cos(pi k / 6)) / 2 over the 6 steps after the ramp, k = 0..5
    assert cosine[4:] == pytest.approx([1.0, 0.9330127, 0.75, 0.5, 0.25, 0.0669873])
    assert all(a >= b for a, b in zip(cosine[3:], cosine[4:], strict=False)) and 0 < cosine[-1] < 0.1
    assert [lr_factor(s, 5, 0, "constant") for s in range(5)] == [1.0] * 5  # the old constant rate, exactly


def test_schedule_settings_are_checked():
    with pytest.raises(UserError, match=r"warmup_epochs must be within 0..epochs - 1 = 2"):
        SegTrainConfig(epochs=3, warmup_epochs=3)
    with pytest.raises(UserError, match="lr_decay: 'linear' is not allowed"):
        SegTrainConfig.from_dict({"lr_decay": "linear"})


def test_noise_ramp_starts_the_noisy_unet_on_clean_images():
    train, val = toy_slices(8, 32, 0), toy_slices(0, 32, 1)
    base = {"model_kwargs": TINY_UNET, "epochs": 2, "batch_size": 4, "lr": 1e-3}
    _, clean = train_segmenter(train, val, SegTrainConfig(**base), seed=0, progress=False)
    _, ramped = train_segmenter(
        train, val, SegTrainConfig(**base, variant="noisy", noise_ramp_epochs=1), seed=0, progress=False
    )
    _, noisy = train_segmenter(train, val, SegTrainConfig(**base, variant="noisy"), seed=0, progress=False)
    # Epoch 1 of the ramp adds noise of sd 0: the same batches, the same loss as the clean Unet.
    assert ramped["epochs"][0]["loss"] == clean["epochs"][0]["loss"] != noisy["epochs"][0]["loss"]
    assert ramped["epochs"][1]["loss"] != clean["epochs"][1]["loss"]
    with pytest.raises(UserError, match="noise_ramp_epochs must be within 0..epochs - 1 = 1"):
        SegTrainConfig(**base, noise_ramp_epochs=2)
