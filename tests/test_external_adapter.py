"""Input adaptation (size, normalisation, channels) and output mapping of external models, on hand-checkable cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from unetgan_core.external import ExternalModelSpec
from unetgan_core.external.adapter import InputAdapter
from unetgan_core.external.loaders import LoadedModel
from unetgan_core.external.segmenter import ExternalSegmenter


def adapter(**changes):
    return InputAdapter(ExternalModelSpec(format="onnx", path="m.onnx", **changes), "m")


def segmenter(module, **changes):
    spec = ExternalModelSpec(format="python", factory="m:f", **changes)
    return ExternalSegmenter("m", spec, LoadedModel(module, ()))


class Threshold(nn.Module):
    """Per pixel: blood pool where the input is above 0.6, myocardium between 0.3 and 0.6 (pointwise)."""

    def forward(self, x):
        return torch.cat([(0.3 - x) * 10, (x - 0.6) * 10, 0.5 - (x - 0.45).abs() * 10], dim=1)


def test_padding_to_a_fixed_size_and_cropping_back_changes_no_label():
    images = torch.rand(3, 40, 36, generator=torch.Generator().manual_seed(1)).numpy()
    plain = segmenter(Threshold()).predict(images)
    padded = segmenter(Threshold(), input_size=64).predict(images)
    assert np.array_equal(plain, padded)
    assert set(np.unique(plain)) == {0, 1, 2}


def test_size_multiple_pads_up_and_describes_it():
    a = adapter(size_multiple=16)
    assert a.model_size(64, 70) == (64, 80)
    x = torch.ones(1, 1, 64, 70)
    y = a.to_model(x)
    assert y.shape == (1, 1, 64, 80) and float(y[..., :, :5].sum()) == 0.0 and float(y[..., :, 5:75].min()) == 1.0
    assert a.describe(64, 64).startswith("input any size that is a multiple of 16 px (64x64 px as is)")
    assert "zero-padded from 64x64 to 96x96 px, scores cropped back" in adapter(input_size=96).describe(64, 64)


def test_resample_goes_to_the_model_size_and_back():
    a = adapter(input_size=32, resize="resample")
    x = torch.rand(2, 1, 64, 64)
    assert a.to_model(x).shape == (2, 1, 32, 32)
    assert a.from_model(torch.zeros(2, 3, 32, 32), (64, 64)).shape == (2, 3, 64, 64)
    assert "resampled (bilinear) from 64x64 to 32x32 px, scores resampled back" in a.describe(64, 64)


def test_zscore_gives_mean_0_and_std_1_per_image():
    x = torch.rand(2, 1, 16, 16) * torch.tensor([1.0, 0.2]).view(2, 1, 1, 1)
    y = adapter(normalisation="zscore").to_model(x).flatten(1)
    assert torch.allclose(y.mean(1), torch.zeros(2), atol=1e-5)
    assert torch.allclose(y.std(1), torch.ones(2), atol=1e-4)


def test_percentile_clips_and_rescales_to_unit_range():
    x = torch.linspace(0, 1, 101).view(1, 1, 1, 101)
    y = adapter(normalisation="percentile", percentile=[10.0, 90.0]).to_model(x)
    # Values 0..0.1 clip to 0, 0.9..1 to 1, and 0.5 (the middle) maps to 0.5.
    assert float(y.min()) == 0.0 and float(y.max()) == pytest.approx(1.0, abs=1e-5)
    assert float(y[..., 50]) == pytest.approx(0.5, abs=1e-5) and float(y[..., 5]) == 0.0


def test_padding_is_dark_background_after_normalisation():
    x = torch.full((1, 1, 4, 4), 0.5)
    x[..., 0, 0] = 1.0
    y = adapter(normalisation="zscore", input_size=6).to_model(x)
    mean, std = x.mean(), x.std()
    assert float(y[0, 0, 0, 0]) == pytest.approx(float(-mean / (std + 1e-6)), rel=1e-5)


def test_grey_image_is_repeated_into_declared_channels():
    y = adapter(in_channels=3).to_model(torch.rand(2, 1, 8, 8))
    assert y.shape == (2, 3, 8, 8) and torch.equal(y[:, 0], y[:, 2])


def test_other_channels_merge_into_background():
    # Channels: 0 RV, 1 background, 2 myocardium, 3 blood pool.
    probs = torch.tensor([0.3, 0.3, 0.0, 0.4]).view(1, 4, 1, 1)
    a = adapter(out_channels=4, blood_pool_channel=3, myocardium_channel=2)
    merged = a.class_logits(probs.log()).softmax(dim=1).flatten()
    assert torch.allclose(merged, torch.tensor([0.6, 0.4, 0.0]), atol=1e-6)
    a_prob = adapter(out_channels=4, blood_pool_channel=3, myocardium_channel=2, output="probabilities")
    assert torch.allclose(a_prob.class_logits(probs).softmax(dim=1).flatten(), merged, atol=1e-6)
    assert "2 channels merged into background" in a.describe()


@pytest.mark.parametrize("normalisation", ["unit", "zscore", "percentile"])
@pytest.mark.parametrize("resize", ["pad", "resample"])
def test_gradient_reaches_the_image_through_every_adaptation(normalisation, resize):
    seg = segmenter(Threshold(), normalisation=normalisation, resize=resize, input_size=48)
    x = torch.rand(2, 1, 40, 40, generator=torch.Generator().manual_seed(2)).requires_grad_(True)
    seg.logits(x)[:, 1].sum().backward()
    assert torch.isfinite(x.grad).all() and float(x.grad.abs().sum()) > 0
