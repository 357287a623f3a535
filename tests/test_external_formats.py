"""Each external format loads and predicts, and the formats agree on the same trained network."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from external_nets import export_all, phantom_slices, trained_tiny_net

from unetgan_core.errors import UserError
from unetgan_core.external import ExternalModelSpec, ExternalSegmenter, load_external
from unetgan_core.metrics import dice_scores
from unetgan_core.pipelines import Pipeline

SPECS = {
    "torchscript": ExternalModelSpec(format="torchscript", path="net.ts", size_multiple=2),
    "onnx": ExternalModelSpec(format="onnx", path="net.onnx", size_multiple=2),
    "python": ExternalModelSpec(
        format="python", factory="external_nets:tiny_net", weights="weights.pt", size_multiple=2
    ),
}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny net trained on phantom slices, exported in every format, and the slices."""
    root = tmp_path_factory.mktemp("external")
    slices = phantom_slices(root / "cache")
    net = trained_tiny_net(slices)
    export_all(net, root / "models")
    return root / "models", slices


def _load(fmt, folder):
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
        pytest.importorskip("onnx")
    return load_external(SPECS[fmt], folder, name=f"tiny_{fmt}")


@pytest.mark.parametrize("fmt", ["torchscript", "onnx", "python"])
def test_each_format_loads_and_predicts(exported, fmt):
    folder, slices = exported
    seg = _load(fmt, folder)
    assert isinstance(seg, ExternalSegmenter) and isinstance(seg, Pipeline)
    pred = seg.predict(slices.images)
    assert pred.shape == slices.images.shape and pred.dtype == np.uint8
    assert set(np.unique(pred)) <= {0, 1, 2}
    # Trained for a few steps: it finds the blood pool somewhere, so Dice comparisons below are not 0 = 0.
    assert dice_scores(pred, slices.labels)["dice_blood_pool"].mean() > 0.0
    assert seg.name == f"tiny_{fmt}" and seg.device == torch.device("cpu")


@pytest.mark.parametrize("fmt", ["torchscript", "onnx", "python"])
def test_provenance_names_files_by_size_and_sha256(exported, fmt):
    folder, _ = exported
    record = _load(fmt, folder).provenance()
    assert record["format"] == fmt and record["contracts"]["output"]["blood_pool_channel"] == 1
    roles = {f["role"]: f for f in record["files"]}
    main = {"torchscript": "net.ts", "onnx": "net.onnx", "python": "weights.pt"}[fmt]
    entry = roles["weights" if fmt == "python" else "model"]
    assert entry["file"] == main
    data = (folder / main).read_bytes()
    assert entry["size_bytes"] == len(data) and entry["sha256"] == hashlib.sha256(data).hexdigest()
    if fmt == "python":
        assert roles["factory_source"]["file"] == "external_nets.py" and record["factory"] == "external_nets:tiny_net"


def test_torchscript_and_python_factory_give_identical_predictions(exported):
    folder, slices = exported
    ts = _load("torchscript", folder)
    py = _load("python", folder)
    pred_ts, pred_py = ts.predict(slices.images), py.predict(slices.images)
    assert np.array_equal(pred_ts, pred_py)
    dice_ts, dice_py = dice_scores(pred_ts, slices.labels), dice_scores(pred_py, slices.labels)
    assert all(np.array_equal(dice_ts[k], dice_py[k]) for k in dice_ts)


def test_onnx_agrees_with_torchscript_within_1e3_dice(exported):
    folder, slices = exported
    ts = _load("torchscript", folder)
    ox = _load("onnx", folder)
    dice_ts = dice_scores(ts.predict(slices.images), slices.labels)["dice_mean"].mean()
    dice_ox = dice_scores(ox.predict(slices.images), slices.labels)["dice_mean"].mean()
    assert abs(dice_ts - dice_ox) <= 1e-3
    x = torch.from_numpy(slices.images[:4])[:, None]
    with torch.no_grad():
        assert torch.allclose(ts.logits(x), ox.logits(x), atol=1e-4)


def test_onnx_is_forward_only_and_says_so(exported):
    folder, slices = exported
    ox = _load("onnx", folder)
    assert ox.differentiable is False and ox.has_gradient is False
    assert ox.attack_note.startswith("not differentiable")
    x = torch.from_numpy(slices.images[:2])[:, None].requires_grad_(True)
    with pytest.raises(UserError, match="not differentiable") as info:
        ox.logits(x)
    assert "\n" not in str(info.value) and "tiny_onnx" in str(info.value)


@pytest.mark.parametrize("fmt", ["torchscript", "python"])
def test_logits_carry_gradients_to_the_image(exported, fmt):
    folder, slices = exported
    seg = _load(fmt, folder)
    assert seg.differentiable is True and seg.has_gradient is True
    x = torch.from_numpy(slices.images[:2])[:, None].requires_grad_(True)
    logits = seg.logits(x)
    assert logits.shape == (2, 3, 64, 64)
    logits[:, 1].sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0


def test_fast_path_predicts_the_same_shape(exported):
    folder, slices = exported
    seg = _load("torchscript", folder)
    fast = seg.predict(slices.images, fast=True)
    assert fast.shape == slices.images.shape and set(np.unique(fast)) <= {0, 1, 2}
    # The network is back in the default memory layout afterwards.
    assert np.array_equal(seg.predict(slices.images), _load("python", folder).predict(slices.images))
