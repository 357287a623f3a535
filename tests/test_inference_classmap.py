"""``class_map``: the argmax over classes, in either memory format, and the evaluation's reuse of fast-path maps."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from unetgan_core.inference import class_map


def test_class_map_equals_argmax_in_both_memory_formats():
    logits = torch.randn(5, 3, 17, 9, generator=torch.Generator().manual_seed(0))
    expected = logits.argmax(dim=1)
    assert torch.equal(class_map(logits), expected)
    assert torch.equal(class_map(logits.contiguous(memory_format=torch.channels_last)), expected)
    assert class_map(logits).shape == (5, 17, 9) and class_map(logits).dtype == torch.int64


def test_class_map_breaks_ties_towards_the_lower_class_like_argmax():
    logits = torch.zeros(2, 4, 3, 3)
    logits[0, 2:] = 1.0  # classes 2 and 3 tie
    got = class_map(logits)
    assert torch.equal(got, logits.argmax(dim=1))
    assert (got[0] == 2).all() and (got[1] == 0).all()


class _Intensity(nn.Module):
    """Logits from intensity: < 0.4 background, 0.4-0.7 blood pool, >= 0.7 myocardium (known answers)."""

    def __init__(self, breaks_when_channels_last: bool = False) -> None:
        super().__init__()
        self.centres = nn.Parameter(torch.tensor([0.2, 0.6, 0.8]).view(1, 3, 1, 1), requires_grad=False)
        self.breaks = breaks_when_channels_last
        # A 4D weight that Pipeline.predict(fast=True) stores channels_last: how the module knows the path.
        self.probe = nn.Parameter(torch.zeros(3, 2, 3, 3), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = -((x - self.centres) ** 2)
        if self.breaks and not self.probe.is_contiguous():
            logits = torch.zeros_like(logits)
            logits[:, 0] = 1.0  # the "fast" path answers background everywhere
        return logits


def _cell(n: int = 70, size: int = 8):
    images = np.random.default_rng(1).random((n, size, size), dtype=np.float32)
    labels = np.digitize(images, [0.4, 0.7]).astype(np.uint8)
    return images, labels, np.ones(n, dtype=bool)


def test_evaluation_keeps_the_fast_maps_when_the_check_passes():
    from unetgan_bench.bench.steps import FAST_PATH_CHECK_IMAGES, _predict
    from unetgan_core.pipelines import UnetPipeline

    images, labels, myo = _cell()
    pipeline = UnetPipeline(_Intensity())
    pred, info = _predict(pipeline, images, labels, myo, use_fast=True)
    assert info["used"] and info["checked_images"] == min(FAST_PATH_CHECK_IMAGES, len(images))
    np.testing.assert_array_equal(pred, pipeline.predict(images, fast=True))
    np.testing.assert_array_equal(pred, labels)


def test_evaluation_falls_back_to_fp32_for_every_image_when_the_check_fails():
    from unetgan_bench.bench.steps import _predict
    from unetgan_core.pipelines import UnetPipeline

    images, labels, myo = _cell()
    pipeline = UnetPipeline(_Intensity(breaks_when_channels_last=True))
    pred, info = _predict(pipeline, images, labels, myo, use_fast=True)
    assert not info["used"] and info["delta"] < -0.5
    # The checked images' fp32 maps and the rest's: all of them fp32, none from the broken path.
    np.testing.assert_array_equal(pred, pipeline.predict(images))
    np.testing.assert_array_equal(pred, labels)
