"""``run_throughput`` rows: schema, exact FLOPs, out-of-memory step-down and error rows, on tiny workloads."""

from __future__ import annotations

import json

import pytest
import torch

from unetgan_core.errors import UserError
from unetgan_core.registry import Registry
from unetgan_core.throughput.pipelines import (
    ROW_KEYS,
    WORKLOADS,
    Workload,
    WorkloadSpec,
    autocast_context,
    is_out_of_memory,
    parse_section,
    run_throughput,
)

TINY = {"image_sizes": [8], "repeats": 2, "warmup": 1, "peak_sizes": [64]}


def tiny_conv(spec: WorkloadSpec) -> Workload:
    """One 3x3 conv, 1 -> 4 channels, no bias: 2 * 4 * 9 FLOPs per output pixel."""
    conv = torch.nn.Conv2d(1, 4, 3, padding=1, bias=False)
    x = torch.rand(spec.batch, 1, spec.image_size, spec.image_size)
    if spec.channels_last:
        conv, x = conv.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)

    def step():
        with torch.inference_mode(), autocast_context(spec.device, spec.precision):
            return conv(x)

    return Workload(step, spec.batch)


def oom_above(limit: int, error: Exception):
    """A workload that raises ``error`` whenever its batch exceeds ``limit`` (a simulated OOM)."""

    def build(spec: WorkloadSpec) -> Workload:
        if spec.batch > limit:

            def fail():
                raise error

            return Workload(fail, spec.batch)
        return tiny_conv(spec)

    return build


@pytest.fixture
def registry():
    reg = Registry("throughput pipeline")
    reg.add("tiny", tiny_conv)
    reg.add("oom4", oom_above(4, torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")))
    reg.add("oom_runtime", oom_above(4, RuntimeError("DefaultCPUAllocator: can't allocate memory: out of memory")))
    reg.add("broken", oom_above(0, ValueError("shape mismatch\nsecond line")))
    return reg


def test_row_schema_and_types(registry):
    rows = run_throughput({**TINY, "pipelines": ["tiny"], "batch_sizes": [2, 3]}, "cpu", workloads=registry)
    assert len(rows) == 2
    for row in rows:
        assert tuple(row) == ROW_KEYS
        assert row["error"] is None
        for key in (
            "images_per_s",
            "ms_per_batch_median",
            "ms_per_batch_iqr",
            "peak_mem_mb",
            "flops_per_image",
            "achieved_tflops",
            "peak_tflops",
        ):
            assert isinstance(row[key], float) and row[key] >= 0, key
        assert row["images_per_s"] > 0 and row["peak_tflops"] > 0
        assert row["images_per_s"] == pytest.approx(row["batch"] / (row["ms_per_batch_median"] / 1e3))
        if row["achieved_tflops"] <= row["peak_tflops"]:
            assert row["fraction_of_peak"] == pytest.approx(row["achieved_tflops"] / row["peak_tflops"])
        else:  # a tiny 64 x 64 "peak" can be beaten; then there is no fraction (see the peak tests)
            assert row["fraction_of_peak"] is None
        assert row["repeats_done"] == 2
        assert row["flops_per_image"] == 2 * 4 * 9 * 8 * 8
        assert isinstance(row["device_name"], str) and row["device_name"]
        assert row["torch_version"] == torch.__version__
        assert isinstance(row["threads"], int) and row["threads"] >= 1
        assert row["batch"] == row["requested_batch"]
    json.dumps(rows)  # rows go to results.jsonl as they are


def test_out_of_memory_halves_the_batch(registry):
    rows = run_throughput(
        {**TINY, "pipelines": ["oom4", "oom_runtime"], "batch_sizes": [16]}, "cpu", workloads=registry
    )
    for row in rows:
        assert row["error"] is None
        assert (row["requested_batch"], row["batch"]) == (16, 4)
        assert row["images_per_s"] > 0


def test_out_of_memory_at_min_batch_is_an_error_row_and_the_run_goes_on(registry):
    rows = run_throughput(
        {**TINY, "pipelines": ["oom4", "tiny"], "batch_sizes": [16], "min_batch": 8}, "cpu", workloads=registry
    )
    failed, ok = rows
    assert failed["error"].startswith("out of memory at batch 8: OutOfMemoryError: CUDA out of memory")
    assert failed["batch"] == 8 and failed["images_per_s"] is None and failed["fraction_of_peak"] is None
    assert ok["error"] is None and ok["images_per_s"] > 0


def test_other_errors_are_not_retried(registry):
    (row,) = run_throughput({**TINY, "pipelines": ["broken"], "batch_sizes": [4]}, "cpu", workloads=registry)
    assert row["error"] == "ValueError: shape mismatch"
    assert row["batch"] == 4


def test_unsupported_precision_gives_an_error_row(registry):
    rows = run_throughput(
        {
            **TINY,
            "pipelines": ["tiny"],
            "batch_sizes": [2],
            "precisions": ["fp16", "bf16"],
            "emulated_precisions": "measure",
        },
        "cpu",
        workloads=registry,
    )
    fp16, bf16 = rows
    assert "fp16 is not supported on cpu" in fp16["error"] and fp16["images_per_s"] is None
    assert bf16["error"] is None and bf16["precision"] == "bf16" and bf16["peak_tflops"] > 0


def test_channels_last_and_compile_are_row_settings(registry):
    rows = run_throughput(
        {**TINY, "pipelines": ["tiny"], "batch_sizes": [2], "channels_last": [False, True]}, "cpu", workloads=registry
    )
    assert [r["channels_last"] for r in rows] == [False, True]
    assert all(r["compile"] is False and r["error"] is None for r in rows)


@pytest.mark.parametrize(
    "section, match",
    [
        ({"pipelinez": ["segment"]}, "unknown key"),
        ({"pipelines": ["nope"]}, "unknown throughput pipeline 'nope'"),
        ({"batch_sizes": [0]}, "batch_sizes"),
        ({"batch_sizes": [True]}, "batch_sizes"),
        ({"precisions": ["fp8"]}, "fp8"),
        ({"repeats": 0}, "repeats"),
        ({"unet": 3}, "unet"),
    ],
)
def test_bad_sections_are_user_errors(section, match):
    with pytest.raises(UserError, match=match):
        parse_section(section)


def test_single_values_are_accepted_for_lists():
    parsed = parse_section({"pipelines": "segment", "batch_sizes": 4, "channels_last": True})
    assert parsed.pipelines == ("segment",) and parsed.batch_sizes == (4,) and parsed.channels_last == (True,)


def test_registered_workloads():
    assert WORKLOADS.names() == sorted(
        ["segment", "translate_segment", "unet_train_step", "unetgan_train_step", "fgsm_step"]
    )


def test_out_of_memory_recognition():
    assert is_out_of_memory(torch.OutOfMemoryError("x"))
    assert is_out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate"))
    assert is_out_of_memory(MemoryError())
    assert not is_out_of_memory(RuntimeError("size mismatch"))
    assert not is_out_of_memory(ValueError("out of memory"))
