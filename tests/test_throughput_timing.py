"""The timing harness, FLOP counting, matmul peak and memory probe, checked by hand-computable cases."""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given, settings

from unetgan_core.errors import UserError
from unetgan_core.throughput.flops import count_flops
from unetgan_core.throughput.memory import peak_memory_mb, process_peak_rss_mb
from unetgan_core.throughput.peak import PeakCache, dtype_of, measure_matmul_tflops
from unetgan_core.throughput.timing import Timing, measure, summarise


class FakeClock:
    """A clock that advances by scripted durations: each timed call 'takes' the next one."""

    def __init__(self, durations: list[float]) -> None:
        self.now = 0.0
        self.durations = list(durations)
        self.reads = 0

    def __call__(self) -> float:
        # Odd reads end an interval: advance by the scripted duration before answering.
        if self.reads % 2 == 1:
            self.now += self.durations[self.reads // 2]
        self.reads += 1
        return self.now


def test_measure_with_fake_clock_gives_exact_median_and_iqr():
    durations = [3.0, 1.0, 4.0, 1.0, 5.0]  # sorted 1, 1, 3, 4, 5: median 3, q25 1, q75 4
    calls = []
    timing = measure(lambda: calls.append(1), warmup=2, repeats=5, sync=lambda: None, clock=FakeClock(durations))
    assert timing == Timing(median_s=3.0, iqr_s=3.0, min_s=1.0, times=(3.0, 1.0, 4.0, 1.0, 5.0))
    assert len(calls) == 7  # 2 warm-up + 5 timed


def test_measure_synchronises_before_every_clock_read():
    events = []
    clock_values = iter(range(100))

    def clock():
        events.append("clock")
        return float(next(clock_values))

    measure(lambda: events.append("fn"), warmup=1, repeats=2, sync=lambda: events.append("sync"), clock=clock)
    assert events == ["fn"] + ["sync", "clock", "fn", "sync", "clock"] * 2


def test_even_number_of_repeats_interpolates():
    timing = summarise([1.0, 2.0, 3.0, 4.0])
    assert timing.median_s == 2.5
    assert timing.iqr_s == pytest.approx(3.25 - 1.75)


@pytest.mark.parametrize("warmup, repeats", [(-1, 3), (0, 0), (1.5, 3), (True, 3)])
def test_measure_rejects_bad_counts(warmup, repeats):
    with pytest.raises(UserError, match="warmup|repeats"):
        measure(lambda: None, warmup=warmup, repeats=repeats, sync=lambda: None)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(min_value=1e-6, max_value=1e3), min_size=1, max_size=30))
def test_summary_is_ordered(times):
    timing = summarise(times)
    assert timing.min_s <= timing.median_s <= max(times)
    assert timing.iqr_s >= 0
    assert timing.times == tuple(times)


def test_flops_of_a_conv_match_the_formula():
    conv = torch.nn.Conv2d(2, 4, 3, padding=1, bias=False)
    x = torch.zeros(3, 2, 8, 8)
    # 2 FLOPs per multiply-add, 4 output channels x 2 input channels x 9 taps per output pixel.
    assert count_flops(lambda: conv(x)) == 2 * 4 * 2 * 9 * 8 * 8 * 3


def test_flops_include_backward():
    lin = torch.nn.Linear(16, 8, bias=False)
    x = torch.zeros(4, 16, requires_grad=True)
    forward = 2 * 4 * 16 * 8
    # The backward pass computes the input gradient and the weight gradient: two more products.
    assert count_flops(lambda: lin(x).sum().backward()) == 3 * forward


def test_matmul_peak_is_positive_and_cached():
    assert measure_matmul_tflops(torch.float32, "cpu", sizes=(128,), repeats=2) > 0
    cache = PeakCache(sizes=(128,), repeats=2)
    first = cache.tflops(torch.float32, "cpu")
    assert first > 0
    assert cache.tflops(torch.float32, "cpu") == first  # measured once per run


def test_unknown_precision_is_a_user_error():
    with pytest.raises(UserError, match="fp8"):
        dtype_of("fp8")


def test_cpu_peak_memory_is_the_process_rss():
    torch.ones(1)
    assert peak_memory_mb("cpu") == process_peak_rss_mb() > 0


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_timing_peak_and_memory():
    from unetgan_core.throughput.memory import reset_peak_memory
    from unetgan_core.throughput.timing import device_sync

    reset_peak_memory("cuda")
    x = torch.ones(1024, 1024, device="cuda")
    timing = measure(lambda: x @ x, warmup=1, repeats=3, sync=device_sync("cuda"))
    assert timing.median_s > 0
    assert peak_memory_mb("cuda") >= 4.0  # two 4 MiB fp32 matrices
    for dtype in (torch.float32, torch.float16):
        assert measure_matmul_tflops(dtype, "cuda", sizes=(1024,), repeats=2) > 0


def test_flops_of_an_input_gradient():
    lin = torch.nn.Linear(16, 8, bias=False)
    x = torch.zeros(4, 16, requires_grad=True)  # a leaf, as in an FGSM step
    forward = 2 * 4 * 16 * 8
    # autograd.grad with respect to the input only: forward plus the input-gradient product.
    assert count_flops(lambda: torch.autograd.grad(lin(x).sum(), x, retain_graph=False)) in (2 * forward, 3 * forward)


class SteppedClock:
    """A clock that only moves when the measured function runs: each call 'takes' ``step_s``."""

    def __init__(self, step_s: float) -> None:
        self.now = 0.0
        self.step_s = step_s
        self.calls = 0

    def work(self) -> None:
        self.calls += 1
        self.now += self.step_s

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    "step_s, budget_s, expected_timed, expected_calls",
    [
        (1.0, 100.0, 5, 7),  # the cap is never reached: every warm-up and repeat runs
        (1.0, 4.5, 3, 5),  # 2 warm-ups + 3 repeats reach 5 s > 4.5 s: stop after the third
        (10.0, 4.5, 1, 2),  # one warm-up already spends the cap: skip the rest, time exactly one call
    ],
)
def test_measure_stops_at_its_time_budget(step_s, budget_s, expected_timed, expected_calls):
    clock = SteppedClock(step_s)
    timing = measure(clock.work, warmup=2, repeats=5, sync=lambda: None, clock=clock, budget_s=budget_s)
    assert len(timing.times) == expected_timed
    assert clock.calls == expected_calls
    assert timing.median_s == step_s


@pytest.mark.parametrize("budget_s", [0.0, -1.0])
def test_measure_rejects_a_non_positive_budget(budget_s):
    with pytest.raises(UserError, match="budget_s"):
        measure(lambda: None, warmup=0, repeats=1, sync=lambda: None, budget_s=budget_s)
