"""Segmentation pipelines: shapes, gradients and what each attack goes through."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from unetgan_core.device import seed_everything
from unetgan_core.errors import DataError
from unetgan_core.histmatch import HistogramMatcher
from unetgan_core.models import create_model
from unetgan_core.pipelines import HistMatchPipeline, TranslatedPipeline, UnetPipeline

SIZE = 32


@pytest.fixture(scope="module")
def unet() -> nn.Module:
    seed_everything(0)
    return create_model("lv_unet", width=4)


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 1, (5, SIZE, SIZE)).astype(np.float32)


class Brighten(nn.Module):
    """A generator with a known, differentiable effect: ``clamp(x + 0.1)``."""

    def __init__(self) -> None:
        super().__init__()
        self.shift = nn.Parameter(torch.tensor(0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x + self.shift).clamp(0, 1)


def test_unet_pipeline_predicts_uint8_labels_equal_to_the_argmax_of_its_logits(unet, images):
    pipe = UnetPipeline(unet)
    pred = pipe.predict(images, batch_size=2)
    assert pred.shape == images.shape and pred.dtype == np.uint8
    assert set(np.unique(pred)) <= {0, 1, 2}
    with torch.no_grad():
        expected = pipe.logits(torch.from_numpy(images)[:, None]).argmax(1).numpy()
    assert np.array_equal(pred, expected)
    assert not unet.training


def test_translated_pipeline_segments_the_translation_and_passes_gradients_through_the_generator(unet, images):
    gen = Brighten()
    pipe = TranslatedPipeline(gen, unet, name="unetgan")
    shifted = np.clip(images + 0.1, 0, 1)
    assert np.array_equal(pipe.predict(images), UnetPipeline(unet).predict(shifted))
    x = torch.from_numpy(images[:2])[:, None].requires_grad_(True)
    pipe.logits(x)[:, 1].sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    assert gen.shift.grad is not None and float(gen.shift.grad.abs()) > 0
    assert pipe.differentiable and "generator" in pipe.attack_note


def test_histmatch_pipeline_is_straight_through_the_matching(unet, images):
    matcher = HistogramMatcher.fit(images**2)
    pipe = HistMatchPipeline(matcher, unet)
    matched = matcher.transform(images)
    assert np.array_equal(pipe.predict(images), UnetPipeline(unet).predict(matched))

    x = torch.from_numpy(images[:2])[:, None].requires_grad_(True)
    pipe.logits(x)[:, 1].sum().backward()
    # The gradient is the Unet's gradient at the matched image (the matching has an identity Jacobian).
    m = torch.from_numpy(matched[:2])[:, None].requires_grad_(True)
    unet(m)[:, 1].sum().backward()
    assert torch.allclose(x.grad, m.grad, atol=1e-6)
    assert not pipe.differentiable and "straight-through" in pipe.attack_note


def test_fast_path_keeps_shape_dtype_and_restores_the_memory_layout(unet, images):
    pipe = UnetPipeline(unet)
    fast = pipe.predict(images, fast=True)
    assert fast.shape == images.shape and fast.dtype == np.uint8
    assert all(p.is_contiguous() for p in unet.parameters())


def test_predict_rejects_wrong_shapes_and_handles_an_empty_stack(unet):
    pipe = UnetPipeline(unet)
    with pytest.raises(DataError, match=r"predict expects \[N, H, W\]"):
        pipe.predict(np.zeros((SIZE, SIZE), np.float32))
    with pytest.raises(DataError, match=r"logits expects \[N, 1, H, W\]"):
        pipe.logits(torch.zeros(2, SIZE, SIZE))
    empty = pipe.predict(np.zeros((0, SIZE, SIZE), np.float32))
    assert empty.shape == (0, SIZE, SIZE) and empty.dtype == np.uint8


def test_inference_helpers_agree_with_the_pipelines(unet, images) -> None:
    """``inference.segment``/``translate`` (selection, validation, figures) give what the pipelines predict."""
    from unetgan_core.inference import segment, translate

    assert np.array_equal(segment(unet, images, batch_size=2), UnetPipeline(unet).predict(images))
    brighten = Brighten()
    translated = translate(brighten, images, batch_size=2)
    assert translated.shape == (len(images), 1, SIZE, SIZE)
    assert torch.allclose(translated[:, 0], torch.from_numpy(images + 0.1).clamp(0, 1))
    assert np.array_equal(segment(unet, translated), TranslatedPipeline(brighten, unet).predict(images))
    assert translate(brighten, images[:0]).shape == (0, 1, SIZE, SIZE)
    assert segment(unet, images[:0]).shape == (0, SIZE, SIZE)
