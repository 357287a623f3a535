"""The fast inference path and its accuracy check, on models whose answers are known by construction."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from unetgan_core.errors import DataError, UserError
from unetgan_core.throughput.fastpath import (
    FastPathDecision,
    check_fast_path,
    fast_predict,
    fp32_predict,
    speed_ratio,
)


class Thresholds(nn.Module):
    """Labels by intensity: < 0.4 background, 0.4-0.7 blood pool, >= 0.7 myocardium.

    Logits are minus squared distances to 0.2, 0.6, 0.8 (midpoints 0.4 and 0.7), so only pixels
    within bf16 rounding of a boundary can change class. With ``breaks_in_low_precision`` the model answers background
    everywhere whenever autocast is on: a 'fast' path that disagrees with fp32.
    """

    def __init__(self, breaks_in_low_precision: bool = False) -> None:
        super().__init__()
        self.centres = nn.Parameter(torch.tensor([0.2, 0.6, 0.8]).view(1, 3, 1, 1), requires_grad=False)
        self.breaks = breaks_in_low_precision

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = -((x - self.centres) ** 2)
        if self.breaks and torch.is_autocast_enabled(x.device.type):
            logits = torch.zeros_like(logits)
            logits[:, 0] = 1.0
        return logits


def _data(n: int = 6, size: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    images = np.random.default_rng(seed).random((n, size, size), dtype=np.float32)
    labels = np.digitize(images, [0.4, 0.7]).astype(np.uint8)
    return images, labels


def test_fast_predict_matches_fp32_on_a_well_behaved_model():
    images, labels = _data()
    model = Thresholds()
    fast = fast_predict(model, images, batch_size=4)
    assert fast.dtype == np.uint8 and fast.shape == labels.shape
    np.testing.assert_array_equal(fp32_predict(model, images, batch_size=4), labels)
    # Only pixels within bf16 rounding of a class boundary may differ.
    assert (fast == labels).mean() > 0.97


def test_check_accepts_an_agreeing_fast_path():
    images, labels = _data()
    decision = check_fast_path(Thresholds(), images, labels, tolerance=0.05)
    assert isinstance(decision, FastPathDecision)
    assert decision.use_fast and decision.dice_fp32 == 1.0
    assert decision.delta == pytest.approx(decision.dice_fast - decision.dice_fp32)
    assert abs(decision.delta) <= 0.05 and decision.speedup is None


def test_check_falls_back_when_the_fast_model_disagrees():
    images, labels = _data()
    decision = check_fast_path(Thresholds(breaks_in_low_precision=True), images, labels)
    assert not decision.use_fast
    assert decision.dice_fp32 == 1.0
    # All-background predictions against non-empty blood pool and myocardium: Dice 0.
    assert decision.dice_fast == 0.0 and decision.delta == -1.0
    assert "falling back to fp32" in decision.note


def test_measured_speed_is_reported():
    images, labels = _data(n=4)
    decision = check_fast_path(Thresholds(), images, labels, tolerance=0.05, measure_speed=True)
    assert decision.speedup is not None and decision.speedup > 0
    assert decision.use_fast == (decision.speedup > 1.0)
    rates = speed_ratio(Thresholds(), images, batch_size=2, repeats=1)
    assert rates["speedup"] == pytest.approx(rates["fast_images_per_s"] / rates["fp32_images_per_s"])


class LayoutProbe(nn.Module):
    """A conv that records whether its activations were channels_last and whether autocast was on."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 3, 3, padding=1)
        self.dropout = nn.Dropout(0.5)
        self.seen: list[tuple[bool, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(x)
        self.seen.append((y.is_contiguous(memory_format=torch.channels_last), torch.is_autocast_enabled("cpu")))
        return self.conv2(self.dropout(y))


def test_fast_path_runs_channels_last_under_autocast_and_restores_the_model():
    model = LayoutProbe().train()
    images, _ = _data(n=3)
    first = fast_predict(model, images, batch_size=2)
    assert model.seen == [(True, True), (True, True)]  # two batches
    np.testing.assert_array_equal(first, fast_predict(model, images, batch_size=2))  # eval: no dropout
    assert model.training
    assert model.conv1.weight.is_contiguous() and model.conv2.weight.is_contiguous()
    model.seen.clear()
    fp32_predict(model, images, batch_size=3)
    assert model.seen == [(False, False)]


@pytest.mark.parametrize(
    "images, labels, kwargs, error",
    [
        (np.zeros((2, 3, 4, 4), np.float32), np.zeros((2, 4, 4)), {}, DataError),
        (np.full((1, 4, 4), np.nan, np.float32), np.zeros((1, 4, 4)), {}, DataError),
        (np.zeros((2, 4, 4), np.float32), np.zeros((2, 5, 5)), {}, DataError),
        (np.zeros((2, 4, 4), np.float32), np.zeros((2, 4, 4)), {"tolerance": -1}, UserError),
        (np.zeros((2, 4, 4), np.float32), np.zeros((2, 4, 4)), {"batch_size": 0}, UserError),
    ],
)
def test_bad_input_is_rejected(images, labels, kwargs, error):
    with pytest.raises(error):
        check_fast_path(Thresholds(), images, labels, **kwargs)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fast_path_on_cuda():
    images, labels = _data()
    decision = check_fast_path(Thresholds().cuda(), images, labels, tolerance=0.05)
    assert decision.use_fast and decision.dice_fp32 == 1.0


def test_check_judges_a_pipelines_own_fast_path():
    """The suites pass a Pipeline: its predict(fast=True) is what is judged, and the note names the mode."""
    from unetgan_core.pipelines import UnetPipeline
    from unetgan_core.throughput.fastpath import fast_path_description

    images, labels = _data()
    decision = check_fast_path(UnetPipeline(Thresholds()), images, labels, tolerance=0.05)
    assert decision.use_fast and decision.dice_fp32 == 1.0
    assert fast_path_description("cpu") in decision.note
