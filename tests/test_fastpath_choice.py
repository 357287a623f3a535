"""The fast path takes reduced precision only where the hardware runs it faster, and says which it took."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from unetgan_core.pipelines import UnetPipeline
from unetgan_core.throughput import fastpath
from unetgan_core.throughput.fastpath import FastPath, choose_fast_path, fast_path_description, fast_predict
from unetgan_core.throughput.precision import PrecisionDecision


def _decide(measured: bool):
    """A bf16 decision known in advance, counting its calls."""
    calls = []

    def decide(device: torch.device, precision: str) -> PrecisionDecision:
        calls.append((torch.device(device).type, precision))
        return PrecisionDecision(precision, measured, "native (test)" if measured else "skipped: emulated (test)")

    decide.calls = calls
    return decide


@pytest.mark.parametrize(
    "measured, dtype, description",
    [(False, None, "channels_last fp32"), (True, torch.bfloat16, "channels_last+bf16")],
)
def test_cpu_takes_bf16_exactly_when_it_gets_throughput_rows(measured, dtype, description):
    decide = _decide(measured)
    choice = choose_fast_path("cpu", decide=decide)
    assert choice.dtype == dtype and choice.description == description
    assert choice.device_type == "cpu" and "(test)" in choice.reason  # the decision's reason is passed on
    assert decide.calls == [("cpu", "bf16")]


def test_the_real_cpu_choice_is_decided_once_per_process(monkeypatch):
    decide = _decide(False)
    monkeypatch.setattr(fastpath, "decide_precision", decide)
    fastpath._cached_choice.cache_clear()
    try:
        first = choose_fast_path("cpu")
        assert choose_fast_path(torch.device("cpu")) is first
        assert fast_path_description("cpu") == "channels_last fp32"
        assert decide.calls == [("cpu", "bf16")]  # one decision in all
    finally:
        fastpath._cached_choice.cache_clear()  # later tests measure the real machine


def test_this_machine_gets_a_valid_choice():
    choice = choose_fast_path("cpu")
    assert choice.description in ("channels_last fp32", "channels_last+bf16")
    assert choice.reason.startswith("bf16: " if choice.dtype else "fp32; bf16 ")


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
