"""The example examples/audit_external_model in its toy mode: MONAI trains, exports three formats, the audit loads them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "audit_external_model"


def _module(name):
    spec = importlib.util.spec_from_file_location(f"audit_example_{name}", EXAMPLE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_toy_example_trains_exports_and_audits(tmp_path):
    pytest.importorskip("monai")
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    out = tmp_path / "monai"
    result = _module("train_monai").train(out, "toy")
    assert 0.0 <= result["val_dice_blood_pool"] <= 1.0
    assert {p.name for p in out.iterdir()} >= {
        "weights.pt",
        "model.ts",
        "model.onnx",
        "models.toml",
        "monai_factory.py",
        "audit_suite.toml",
    }
    # The written suite names the three exported files and validates (every model loaded and probed).
    from unetgan_bench.bench.suite import load_suite

    suite = load_suite(str(out / "audit_suite.toml"))
    assert set(suite.models) == {"monai_torchscript", "monai_onnx", "monai_python"}
    assert {e.model for e in suite.scenarios.entries()} == set(suite.models)
    # It measures eps50 (FGSM up to eps 0.3) and the built-in LV-Unet's images/s beside every model's, in one run.
    from unetgan_bench.bench.plan import build_plan
    from unetgan_bench.bench.registries import open_source

    timed = build_plan(suite, open_source(suite, suite.path)).of_kind("throughput")
    assert [t.config.get("model") is None for t in timed].count(True) == 1 and len(timed) == 1 + len(suite.models)
    assert max(suite.fgsm.eps) >= 0.3 and "fgsm" in suite.fgsm.attacks

    report = _module("audit").audit(out, toy=True)
    assert list(report) == ["monai_torchscript", "monai_onnx", "monai_python"]
    # The same weights in three formats: TorchScript and the Python factory agree exactly, ONNX to 1e-3.
    assert report["monai_python"]["pixels_equal_to_first"] == 1.0
    assert report["monai_onnx"]["pixels_equal_to_first"] >= 0.999
    for vendor, dice in report["monai_onnx"]["dice"].items():
        assert abs(dice["dice_mean"] - report["monai_torchscript"]["dice"][vendor]["dice_mean"]) <= 1e-3
    assert report["monai_python"]["feature_layers"] == "ok"
    assert "no forward hooks" in report["monai_onnx"]["feature_layers"]
    files = {f["role"]: f for f in report["monai_python"]["provenance"]["files"]}
    assert files["weights"]["file"] == "weights.pt" and len(files["weights"]["sha256"]) == 64

    speed_module = _module("compare_speed")
    speed = speed_module.interleaved_images_per_s(speed_module.workloads(out), rounds=2, warmup=1)
    assert list(speed) == ["lv_unet (width 8)", "monai_torchscript", "monai_onnx", "monai_python"]
    assert all(value > 0 for value in speed.values())
