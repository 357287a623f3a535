"""The fast path takes reduced precision only where the hardware runs it faster, and says which it took."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from unetgan_core.pipelines import UnetPipeline
from unetgan_core.throughput import fastpath
from unetgan_core.throughput.fastpath import FastPath, choose_fast_path, fast_path_description, fast_predict


def _probe(bf16_tflops: float, fp32_tflops: float = 1.0):
    """A matmul 'measurement' with known rates (TFLOP/s), counting its calls."""
    calls = []

    def probe(dtype: torch.dtype) -> float:
        calls.append(dtype)
        return bf16_tflops if dtype == torch.bfloat16 else fp32_tflops

    probe.calls = calls
    return probe


@pytest.mark.parametrize(
    "bf16, dtype, description",
    [
        (0.28, None, "channels_last fp32"),  # emulated bf16 (this CI machine: ~3.6x slower convolutions)
        (1.0, None, "channels_last fp32"),  # no gain: not worth the rounding
        (1.19, None, "channels_last fp32"),  # just under the x1.2 margin
        (1.2, torch.bfloat16, "channels_last+bf16"),
        (8.0, torch.bfloat16, "channels_last+bf16"),  # AMX
    ],
)
def test_cpu_takes_bf16_only_when_its_matmul_is_clearly_faster(bf16, dtype, description):
    choice = choose_fast_path("cpu", probe=_probe(bf16))
    assert choice.dtype == dtype and choice.description == description
    assert choice.device_type == "cpu" and f"x{bf16:.2f}" in choice.reason


def test_the_real_cpu_choice_is_measured_once_per_process(monkeypatch):
    probe = _probe(0.5)
    monkeypatch.setattr(fastpath, "_matmul_probe", probe)
    fastpath._cached_choice.cache_clear()
    try:
        first = choose_fast_path("cpu")
        assert choose_fast_path(torch.device("cpu")) is first
        assert fast_path_description("cpu") == "channels_last fp32"
        assert probe.calls == [torch.bfloat16, torch.float32]  # one bf16 and one fp32 timing in all
    finally:
        fastpath._cached_choice.cache_clear()  # later tests measure the real machine


def test_this_machine_gets_a_valid_choice():
    choice = choose_fast_path("cpu")
    assert choice.description in ("channels_last fp32", "channels_last+bf16")
    assert "bf16 matmul runs x" in choice.reason


class Probe(nn.Module):
    """A conv that records, per call, whether it ran channels_last and whether autocast was on."""

    def __init__(self) -> None:
        super().__init__()
        # 3x3 kernels: a 1x1 kernel from one channel has the same strides in both layouts.
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 3, 3, padding=1)
        self.seen: list[tuple[bool, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(x)
        self.seen.append((y.is_contiguous(memory_format=torch.channels_last), torch.is_autocast_enabled("cpu")))
        return self.conv2(y)


@pytest.mark.parametrize(
    "choice, autocast_on",
    [(FastPath("cpu", None, "test"), False), (FastPath("cpu", torch.bfloat16, "test"), True)],
)
def test_pipeline_fast_predict_follows_the_choice(monkeypatch, choice, autocast_on):
    import unetgan_core.pipelines as pipelines

    monkeypatch.setattr(pipelines, "choose_fast_path", lambda device: choice)
    model = Probe()
    images = np.random.default_rng(0).random((3, 8, 8), dtype=np.float32)
    fast = UnetPipeline(model).predict(images, batch_size=2, fast=True)
    assert model.seen == [(True, autocast_on)] * 2  # two batches, channels_last either way
    assert model.conv1.weight.is_contiguous()  # the layout is restored afterwards
    if not autocast_on:  # fp32 channels_last: the same arithmetic as the reference path
        np.testing.assert_array_equal(fast, UnetPipeline(model).predict(images))


def test_fast_predict_takes_an_explicit_fp32_path():
    model = Probe()
    images = np.random.default_rng(1).random((2, 8, 8), dtype=np.float32)
    fast_predict(model, images, batch_size=2, path=FastPath("cpu", None, "test"))
    fast_predict(model, images, batch_size=2)  # default: the reduced-precision candidate
    assert model.seen == [(True, False), (True, True)]
