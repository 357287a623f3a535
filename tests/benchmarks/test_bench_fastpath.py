"""The CPU inference fast path against fp32 eager, timed in the same run (pytest-benchmark; ``tox -e bench``).

    python -m pytest tests/benchmarks/test_bench_fastpath.py --benchmark-enable -q

pytest-benchmark times ``Pipeline.predict(..., fast=True)`` (what the suites run); the fp32 eager
reference, ``predict(..., fast=False)``, is timed in each round's untimed setup, so the two alternate
(eager, fast, eager, fast, ...) and see the same machine load. ``extra_info`` records both rates, their
ratio (``speedup``), what the fast path is on this machine, the CPU and the thread count: one thread,
and every core (where the fast path splits each batch over single-thread workers; eager runs each batch on
all threads). Nothing here asserts a time: read the ratio, and compare runs with ``pytest-benchmark compare``.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import torch

from unetgan_core.device import cpu_threads, device_name
from unetgan_core.models import create_model
from unetgan_core.pipelines import UnetPipeline
from unetgan_core.throughput.fastpath import fast_path_description

BATCH, N_IMAGES = 4, 8  # the throughput suite's batch; two batches per call


@pytest.mark.parametrize("threads", ["one", "all"])
@pytest.mark.parametrize("size", [96, 192])
def test_fast_path_vs_fp32_eager(benchmark, size, threads):
    with cpu_threads(1 if threads == "one" else os.cpu_count() or 1):
        _fast_vs_eager(benchmark, size)


def _fast_vs_eager(benchmark, size: int) -> None:
    torch.manual_seed(0)
    pipeline = UnetPipeline(create_model("lv_unet", width=8))  # the CPU suites' Unet
    images = np.random.default_rng(0).random((N_IMAGES, size, size), dtype=np.float32)
    eager_s: list[float] = []

    def time_eager() -> None:
        start = time.perf_counter()
        pipeline.predict(images, BATCH, fast=False)
        eager_s.append(time.perf_counter() - start)

    fast = benchmark.pedantic(
        lambda: pipeline.predict(images, BATCH, fast=True), setup=time_eager, rounds=7, warmup_rounds=1
    )
    reference = pipeline.predict(images, BATCH, fast=False)
    assert fast.shape == reference.shape == (N_IMAGES, size, size)
    assert (fast == reference).mean() > 0.999  # same labels up to rounding ties
    if benchmark.stats:  # None under --benchmark-disable (the default test run)
        eager, fast_median = float(np.median(eager_s[-7:])), benchmark.stats.stats.median
        benchmark.extra_info.update(
            fast_path=fast_path_description("cpu"),
            cpu=device_name("cpu"),
            capability=torch.backends.cpu.get_cpu_capability(),
            threads=torch.get_num_threads(),
            eager_images_per_s=N_IMAGES / eager,
            fast_images_per_s=N_IMAGES / fast_median,
            speedup=eager / fast_median,
        )
