"""The Unet's learning-rate schedule: linear warm-up, then constant or cosine."""

import pytest

from unetgan_core.errors import UserError
from unetgan_core.schema import load_table
from unetgan_core.training import SegTrainConfig
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
    with pytest.raises(UserError, match="lr_decay: expected one of constant, cosine"):
        load_table(SegTrainConfig, {"lr_decay": "linear"}, "[unet]")
