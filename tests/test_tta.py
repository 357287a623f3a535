"""Test-time augmentation (unetgan_core.tta): rotations and their inverse line up, labels are averaged honestly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_suites import tiny_text
from torch import nn

from unetgan_bench.bench.plan import build_plan
from unetgan_bench.bench.registries import open_source
from unetgan_bench.bench.suite import parse_suite
from unetgan_core.data.sliceset import SliceSet
from unetgan_core.metrics import dice_scores
from unetgan_core.models.unet import LVUnet
from unetgan_core.pipelines import UnetPipeline
from unetgan_core.tta import ROTATION_ANGLES_DEG, RotationTTA, rotate, with_tta


def _disk_images(n: int = 3, size: int = 48) -> np.ndarray:
    """Smooth blobs of different radii and centres near the middle, values in [0, 1]."""
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    out = []
    for i in range(n):
        cy, cx, r = size / 2 + i - 1, size / 2 - i + 1, 8 + 2 * i
        out.append(1 / (1 + np.exp((np.hypot(yy - cy, xx - cx) - r) / 1.5)))
    return np.stack(out).astype(np.float32)


class Thresholds(nn.Module):
    """A pixelwise 'segmenter' (rotation-equivariant): background < 0.3 < myocardium < 0.7 < blood pool."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([20 * (0.3 - x), 20 * (0.5 - (x - 0.5).abs()) - 4, 20 * (x - 0.7)], dim=1)


def test_a_rotation_and_its_inverse_return_the_centre_of_the_image():
    x = torch.from_numpy(_disk_images())[:, None]
    for angle in ROTATION_ANGLES_DEG:
        back = rotate(rotate(x, angle), -angle)
        centre = (slice(None), slice(None), slice(8, 40), slice(8, 40))
        assert torch.allclose(back[centre], x[centre], atol=0.06)
    # Rotating by 90 degrees is an exact quarter turn of the square grid.
    turned = rotate(x, 90.0)
    assert torch.allclose(turned, torch.rot90(x, k=-1, dims=(2, 3)), atol=1e-5) or torch.allclose(
        turned, torch.rot90(x, k=1, dims=(2, 3)), atol=1e-5
    )


def test_tta_of_a_rotation_equivariant_segmenter_keeps_its_labels():
    images = _disk_images()
    plain = UnetPipeline(Thresholds()).predict(images)
    averaged = RotationTTA(UnetPipeline(Thresholds())).predict(images)
    centre = (slice(None), slice(6, 42), slice(6, 42))
    agree = (plain[centre] == averaged[centre]).mean()
    assert agree > 0.99
    assert set(np.unique(plain)) == {0, 1, 2}  # the test image has every class


def test_one_angle_of_zero_is_the_pipeline_itself_and_gradients_reach_the_input():
    torch.manual_seed(0)
    unet = LVUnet(width=4)
    images = _disk_images(2, 32)
    inner = UnetPipeline(unet)
    assert np.array_equal(RotationTTA(inner, (0.0,)).predict(images), inner.predict(images))
    x = torch.from_numpy(images)[:, None].requires_grad_(True)
    tta = RotationTTA(inner)
    tta.logits(x)[:, 1].sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert (tta.name, tta.differentiable) == (inner.name, inner.differentiable)
    # Log mean probabilities: their exponentials sum to one over the classes.
    with torch.no_grad():
        total = tta.logits(x).exp().sum(dim=1)
    assert torch.allclose(total, torch.ones_like(total), atol=1e-5)


def test_the_rule_names():
    inner = UnetPipeline(Thresholds())
    assert with_tta(inner, "none") is inner
    assert isinstance(with_tta(inner, "rotations"), RotationTTA)
    with pytest.raises(ValueError, match="tta: expected one of none, rotations"):
        with_tta(inner, "flips")


def _plan(text: str):
    suite = parse_suite(text, "tta.toml")
    return build_plan(suite, open_source(suite, "tta.toml"))


def test_the_rule_enters_measured_cells_keys_but_not_unets_and_none_changes_nothing():
    base = tiny_text(
        targets=(), scenarios=("clean",), extra='\n[corruptions]\ncorruptions = ["noise"]\nseverities = [1]\n'
    )
    plain, default = _plan(base), _plan(base + '\n[metrics]\ntta = "none"\n')
    rotated = _plan(base + '\n[metrics]\ntta = "rotations"\n')
    assert [t.key for t in plain.tasks] == [t.key for t in default.tasks]
    assert "tta" not in plain.suite.resolved()["metrics"]
    assert [t.key for t in plain.of_kind("unet")] == [t.key for t in rotated.of_kind("unet")]
    for kind in ("segmentation", "corruption"):
        before, after = plain.of_kind(kind), rotated.of_kind(kind)
        assert before and not {t.key for t in before} & {t.key for t in after}
        assert all(t.config["tta"] == "rotations" for t in after)


def test_a_segmentation_cell_scores_the_averaged_labels():
    from unetgan_bench.bench.steps import evaluate_segmentation

    images = _disk_images(2)
    pipeline = UnetPipeline(LVUnet(width=4))
    labels = RotationTTA(UnetPipeline(Thresholds())).predict(images)  # some reference label maps
    one = np.ones(2, bool)
    test = SliceSet(
        images, labels, np.array(["a", "b"]), "v", 2.0, one, one, np.arange(2), np.array(["ED", "ES"]), True
    )
    torch.manual_seed(0)
    table, _ = evaluate_segmentation(pipeline, test, {"hd95": False, "tta": "rotations"})
    expected = dice_scores(RotationTTA(pipeline).predict(images), labels, myo_labelled=one)
    np.testing.assert_allclose(table["dice_mean"], expected["dice_mean"])
    plain, _ = evaluate_segmentation(pipeline, test, {"hd95": False})
    np.testing.assert_allclose(
        plain["dice_mean"], dice_scores(pipeline.predict(images), labels, myo_labelled=one)["dice_mean"]
    )


def test_a_nested_candidate_that_only_averages_rotations_trains_nothing_new(tmp_path):
    from test_nested import NESTED_SUITE

    from unetgan_bench.bench.nested import parse_candidate, run_nested
    from unetgan_bench.bench.store import ArtifactStore

    path = tmp_path / "nested.toml"
    path.write_text(NESTED_SUITE.replace("FOLDS", "2"))
    notes: list[str] = []
    candidate = parse_candidate('metrics.tta="rotations"')
    result = run_nested(str(path), [candidate], ArtifactStore(tmp_path / "cache"), note=notes.append)
    inner = {(r["fold"], r["candidate"]): r for r in result["rows"] if r["phase"] == "inner"}
    for fold in (0, 1):
        plain, rotated = inner[(fold, "suite")], inner[(fold, candidate.name)]
        assert plain["unet_key"] == rotated["unet_key"]
    assert sum(n.startswith("  trained") for n in notes) == 4
