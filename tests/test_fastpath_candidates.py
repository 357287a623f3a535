"""tools/fastpath_candidates.py: its cheap candidates run and agree with fp32 eager, and its summary is arithmetic."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from unetgan_core.device import cpu_threads
from unetgan_core.models import create_model

TOOL = Path(__file__).resolve().parents[1] / "tools" / "fastpath_candidates.py"


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("fastpath_candidates", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_model("lv_unet", width=4).eval()


@pytest.mark.parametrize(
    "name",
    [
        "channels_last",
        "channels_last+workers",
        "onnxruntime",
        "onnxruntime+workers",
        "onnxruntime_no_layout",
        "jit_freeze",
    ],
)
def test_an_fp32_candidate_gives_eager_logits(tool, model, name):
    if name.startswith("onnxruntime"):
        pytest.importorskip("onnxruntime")
    x = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    with cpu_threads(2):  # the +workers candidates split a batch over two single-thread workers
        candidate = tool.candidates(model, x, calibration=x)[name]()
    reference = tool._eager(model)(x)
    torch.testing.assert_close(candidate(x), reference, atol=1e-4, rtol=1e-4)
    assert candidate(x[:1]).shape == (1, 3, 32, 32)  # another batch size runs as well


def test_the_int8_candidate_runs_on_its_calibration(tool, model):
    pytest.importorskip("onnxruntime")
    x = torch.rand(4, 1, 32, 32, generator=torch.Generator().manual_seed(2))
    candidate = tool.candidates(model, x, calibration=x)["onnxruntime_int8_static"]()
    out = candidate(x)
    assert out.shape == (4, 3, 32, 32) and torch.isfinite(out).all()


def test_interleaved_ratio_and_the_fp32_ceiling(tool, model):
    x = torch.rand(1, 1, 16, 16)
    eager = tool._eager(model)
    ratio = tool.interleaved_ratio(eager, eager, x, rounds=2)
    assert ratio["reference_s"] > 0 and ratio["candidate_s"] > 0
    assert ratio["speedup"] == pytest.approx(ratio["reference_s"] / ratio["candidate_s"])
    ceiling = tool.fp32_ceiling(eager, x, rounds=2, peak=lambda: 1e-3)  # a 1 GFLOP/s "peak"
    assert ceiling["fp32_matmul_peak_gflops"] == pytest.approx(1.0)
    assert ceiling["eager_fraction_of_peak"] == pytest.approx(1 / ceiling["fp32_ceiling_speedup"])
    assert ceiling["gflop_per_image"] > 0 and ceiling["eager_gflops"] > 0


def test_best_vs_best_compares_each_side_at_its_own_fastest_batch(tool):
    rows = [
        {"candidate": "c", "batch": 1, "images_per_s": 30.0, "eager_images_per_s": 20.0},
        {"candidate": "c", "batch": 16, "images_per_s": 60.0, "eager_images_per_s": 15.0},
    ]
    assert tool.best_vs_best(rows) == {"candidate": "c", "best_batch": 16, "eager_best_batch": 1, "best_vs_best": 3.0}
    assert tool.best_vs_best([{"candidate": "c", "error": "RuntimeError: x"}]) is None
