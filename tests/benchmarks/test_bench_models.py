"""Micro-benchmarks of the measured workloads (pytest-benchmark; run by ``tox -e bench``).

    pytest tests/benchmarks --benchmark-enable --benchmark-json=bench.json
    pytest-benchmark compare bench_old.json bench.json

Each case times one ``step()`` of a workload from ``unetgan_core.throughput.pipelines`` at
the paper's 96 px (the LV-Unet at default width), and records its counted FLOPs per image
so a comparison can be read as a rate as well as a time.
"""

from __future__ import annotations

import pytest

from unetgan_core.throughput.flops import count_flops
from unetgan_core.throughput.pipelines import WORKLOADS, WorkloadSpec

CASES = {
    "segment-fp32": WorkloadSpec(image_size=96, batch=8),
    "segment-bf16-channels_last": WorkloadSpec(image_size=96, batch=8, precision="bf16", channels_last=True),
    "translate_segment-fp32": WorkloadSpec(image_size=96, batch=8),
    "unet_train_step-fp32": WorkloadSpec(image_size=96, batch=4),
    "unetgan_train_step-fp32": WorkloadSpec(image_size=96, batch=2),
    "fgsm_step-fp32": WorkloadSpec(image_size=96, batch=4),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_workload_step(benchmark, case):
    pipeline = case.split("-", 1)[0]
    spec = CASES[case]
    build = WORKLOADS.get(pipeline)
    benchmark.extra_info.update(
        pipeline=pipeline,
        image_size=spec.image_size,
        batch=spec.batch,
        precision=spec.precision,
        channels_last=spec.channels_last,
        flops_per_image=count_flops(build(spec).step) / spec.batch,
    )
    step = build(spec).step
    benchmark.pedantic(step, rounds=5, warmup_rounds=1, iterations=1)
