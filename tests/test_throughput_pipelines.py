"""Every registered workload runs on the real networks (tiny sizes) and gives a complete row."""

from __future__ import annotations

import pytest
import torch

from unetgan_core.throughput import pipelines
from unetgan_core.throughput.pipelines import WORKLOADS, WorkloadSpec, run_throughput

SMALL = {
    "image_sizes": [16],
    "batch_sizes": [2],
    "warmup": 0,
    "repeats": 1,
    "peak_sizes": [64],
    "unet": {"width": 2},
    "generator": {"width": 2, "n_blocks": 1},
    "discriminator": {"width": 4},
}


@pytest.mark.parametrize("name", WORKLOADS.names())
def test_workload_gives_a_row(name):
    (row,) = run_throughput({**SMALL, "pipelines": [name]}, "cpu")
    assert row["error"] is None, row["error"]
    assert row["pipeline"] == name and row["batch"] == 2
    assert row["images_per_s"] > 0 and row["flops_per_image"] > 0


def test_training_costs_more_flops_than_inference():
    rows = run_throughput({**SMALL, "pipelines": ["segment", "unet_train_step", "fgsm_step"]}, "cpu")
    segment, train, fgsm = (r["flops_per_image"] for r in rows)
    # Backward is about twice the forward; FGSM needs no weight gradients, so less than training.
    assert 2.5 * segment < train
    assert 2 * segment < fgsm < train + segment


def test_flops_are_reproducible_and_do_not_depend_on_precision():
    # "measure": bf16 rows even where the CPU only emulates bf16 (otherwise one skipped row, without FLOPs)
    section = {
        **SMALL,
        "pipelines": ["translate_segment"],
        "precisions": ["fp32", "bf16"],
        "emulated_precisions": "measure",
    }
    first = run_throughput(section, "cpu")
    second = run_throughput(section, "cpu")
    assert [r["flops_per_image"] for r in first] == [r["flops_per_image"] for r in second]
    assert first[0]["flops_per_image"] == first[1]["flops_per_image"]
    assert all(r["error"] is None for r in first)


def test_train_step_updates_weights():
    spec = WorkloadSpec(image_size=16, batch=2, unet={"width": 2})
    workload = WORKLOADS.get("unet_train_step")(spec)
    unet = workload.models["unet"]
    before = [p.detach().clone() for p in unet.parameters()]
    workload.step()
    assert any(not torch.equal(a, b) for a, b in zip(unet.parameters(), before, strict=True))


def test_unetgan_step_trains_translators_and_leaves_the_unet_alone():
    workload = WORKLOADS.get("unetgan_train_step")(
        WorkloadSpec(image_size=16, batch=2, unet={"width": 2}, generator={"width": 2, "n_blocks": 1})
    )
    snapshot = {k: [p.detach().clone() for p in m.parameters()] for k, m in workload.models.items()}
    workload.step()
    changed = {
        k: any(not torch.equal(a, b) for a, b in zip(m.parameters(), snapshot[k], strict=True))
        for k, m in workload.models.items()
    }
    assert changed == {"g_s": True, "g_t": True, "d_s": True, "d_t": True, "unet": False}


def test_compile_failure_is_an_error_row(monkeypatch):
    def refuse(module, *args, **kwargs):
        raise RuntimeError("inductor: no C++ compiler")

    monkeypatch.setattr(pipelines.torch, "compile", refuse)
    (row,) = run_throughput({**SMALL, "pipelines": ["segment"], "compile": [True]}, "cpu")
    assert row["compile"] is True and row["error"] == "RuntimeError: inductor: no C++ compiler"
    assert row["flops_per_image"] is None


@pytest.mark.slow
def test_compiled_segment_runs():
    (row,) = run_throughput({**SMALL, "pipelines": ["segment"], "compile": [True]}, "cpu")
    assert row["error"] is None and row["images_per_s"] > 0


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_rows_for_every_precision():
    section = {**SMALL, "pipelines": ["segment", "unet_train_step"], "precisions": ["fp32", "fp16", "bf16"]}
    rows = run_throughput(section, "cuda")
    assert len(rows) == 6
    for row in rows:
        if row["precision"] == "bf16" and not torch.cuda.is_bf16_supported():
            assert "bf16" in row["error"]
            continue
        assert row["error"] is None, row["error"]
        assert row["peak_mem_mb"] > 0 and row["peak_tflops"] > 0
        assert row["device_name"] == torch.cuda.get_device_name()
