"""Robustness measures: eps50 and AUC on hand-made curves, perturbation size, sweeps on a model
whose answer is known: a per-pixel intensity threshold on a two-ring phantom."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from unetgan_core.attacks import fgsm
from unetgan_core.errors import DataError, UserError
from unetgan_core.robustness import (
    auc_dice_eps,
    eps50,
    evaluate_sweep,
    fig1_panels,
    perturbation_ssim,
    psnr_db,
    summarise_curve,
)

BACKGROUND_LEVEL, MYO_LEVEL, BLOOD_LEVEL = 0.1, 0.45, 0.8


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny tensors gain nothing from threads, and on a shared 2-core machine OpenMP spin-waiting
    makes them many times slower; restore the setting for the other test modules."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def threshold_segmenter(sharpness: float = 20.0) -> torch.nn.Conv2d:
    """1x1 conv whose argmax is: background below 0.3, myocardium 0.3-0.6, blood pool above 0.6.

    Logits (background, blood pool, myocardium) = k (0.3 - x), k (x - 0.6), 0.
    """
    conv = torch.nn.Conv2d(1, 3, kernel_size=1)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([-sharpness, sharpness, 0.0]).view(3, 1, 1, 1))
        conv.bias.copy_(torch.tensor([0.3 * sharpness, -0.6 * sharpness, 0.0]))
    return conv.eval()


def ring_phantom(n: int = 6, size: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Blood-pool disk inside a myocardium ring, small intensity noise; the threshold model is exact on it."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images = np.empty((n, size, size), np.float32)
    labels = np.zeros((n, size, size), np.uint8)
    for i in range(n):
        cy, cx = rng.uniform(size * 0.4, size * 0.6, 2)
        r = np.hypot(yy - cy, xx - cx)
        labels[i][r < 9] = 2
        labels[i][r < 6] = 1
        level = np.choose(labels[i], [BACKGROUND_LEVEL, BLOOD_LEVEL, MYO_LEVEL])
        images[i] = np.clip(level + rng.uniform(-0.02, 0.02, (size, size)), 0, 1)
    return images, labels


@dataclasses.dataclass
class NamedPipeline:
    """The attributes of a scenario pipeline that the sweep reads."""

    logits: torch.nn.Module
    name: str = "threshold"
    differentiable: bool = False
    attack_note: str = "attacked through a stand-in"


EPS_GRID = [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3]


# --- eps50 and the area under the curve, by hand -------------------------------------------


def test_eps50_interpolates_between_the_grid_points_around_the_crossing():
    # Half of 0.8 is 0.4, reached halfway between 0.1 (Dice 0.6) and 0.2 (Dice 0.2).
    assert eps50([0.0, 0.1, 0.2], [0.8, 0.6, 0.2]) == pytest.approx(0.15)


def test_eps50_on_a_grid_point_and_first_crossing_only():
    assert eps50([0.0, 0.1, 0.2], [0.8, 0.4, 0.1]) == pytest.approx(0.1)
    # Dice recovers after falling below half: the first crossing counts.
    assert eps50([0.0, 0.1, 0.2, 0.3], [0.8, 0.7, 0.2, 0.9]) == pytest.approx(0.1 + 0.1 * (0.3 / 0.5))


def test_eps50_not_reached_is_none():
    assert eps50([0.0, 0.1, 0.2], [0.8, 0.7, 0.41]) is None
    assert eps50([0.0], [0.8]) is None


def test_eps50_ignores_the_order_of_the_grid():
    assert eps50([0.2, 0.0, 0.1], [0.2, 0.8, 0.6]) == pytest.approx(0.15)


def test_eps50_of_a_model_that_already_fails_is_zero():
    assert eps50([0.0, 0.1], [0.0, 0.0]) == 0.0


@settings(max_examples=50, deadline=None)
@given(
    clean=st.floats(0.05, 1.0),
    span=st.floats(0.01, 1.0),
    n=st.integers(2, 12),
)
def test_eps50_of_a_straight_line_to_zero_is_half_its_span(clean, span, n):
    eps = np.linspace(0.0, span, n)
    assert eps50(eps, clean * (1 - eps / span)) == pytest.approx(span / 2, rel=1e-9)


def test_eps50_rejects_bad_curves():
    with pytest.raises(UserError, match="eps = 0"):
        eps50([0.1, 0.2], [0.8, 0.3])
    with pytest.raises(UserError, match="repeat"):
        eps50([0.0, 0.1, 0.1], [0.8, 0.3, 0.2])
    with pytest.raises(UserError, match="finite"):
        eps50([0.0, 0.1], [0.8, float("nan")])
    with pytest.raises(UserError, match="equal-length"):
        eps50([0.0, 0.1], [0.8])


def test_auc_is_a_mean_dice_over_the_eps_range():
    assert auc_dice_eps([0.0, 0.1, 0.3], [0.7, 0.7, 0.7]) == pytest.approx(0.7)
    assert auc_dice_eps([0.0, 0.5, 1.0], [1.0, 0.5, 0.0]) == pytest.approx(0.5)
    # Uneven grid: (0.1 * (1.0 + 0.5) / 2 + 0.3 * (0.5 + 0.1) / 2) / 0.4 = (0.075 + 0.09) / 0.4.
    assert auc_dice_eps([0.0, 0.1, 0.4], [1.0, 0.5, 0.1]) == pytest.approx(0.4125)
    with pytest.raises(UserError, match="two eps"):
        auc_dice_eps([0.0], [1.0])


# --- perturbation size ----------------------------------------------------------------------


def test_psnr_by_hand():
    x = np.zeros((2, 4, 4))
    x_adv = np.stack([np.full((4, 4), 0.1), np.zeros((4, 4))])
    psnr = psnr_db(x, x_adv)
    assert psnr[0] == pytest.approx(20.0)  # MSE 0.01 with a peak of 1
    assert math.isinf(psnr[1])
    with pytest.raises(DataError, match="one shape"):
        psnr_db(x, x_adv[:1])


def test_ssim_of_the_perturbation_is_one_only_when_unchanged():
    images, _ = ring_phantom(n=2)
    x = torch.from_numpy(images)[:, None]
    assert perturbation_ssim(x, x.clone()) == pytest.approx([1.0, 1.0])
    assert (perturbation_ssim(x, (x + 0.05).clamp(0, 1)) < 1.0).all()


# --- sweeps on the threshold model ---------------------------------------------------------


def test_sweep_on_the_threshold_model():
    images, labels = ring_phantom()
    result = evaluate_sweep(threshold_segmenter(), images, labels, EPS_GRID, "fgsm", batch_size=4, seed=0)
    by_eps = {row["eps"]: row["metrics"] for row in result.per_eps}
    assert [row["eps"] for row in result.per_eps] == EPS_GRID
    assert len(result.per_image) == len(images) * len(EPS_GRID)
    clean = by_eps[0.0]
    assert clean["dice_mean"] == 1.0 and clean["ssim"] == 1.0 and clean["psnr_db"] is None
    assert clean["n_images"] == len(images)
    # No pixel is within 0.15 of a threshold, and the noise is +-0.02, so nothing flips up to eps 0.13.
    assert by_eps[0.05]["dice_mean"] == 1.0 and by_eps[0.1]["dice_mean"] == 1.0
    # Every pixel moves by exactly eps without clipping at eps 0.05: PSNR = -20 log10(eps).
    assert by_eps[0.05]["psnr_db"] == pytest.approx(-20 * math.log10(0.05), rel=1e-4)
    # Past 0.22 every pixel is pushed across its threshold.
    assert by_eps[0.25]["dice_mean"] < 0.05
    dice = [by_eps[e]["dice_mean"] for e in EPS_GRID]
    assert dice == sorted(dice, reverse=True)
    # Myocardium (0.15 +- 0.02 from both thresholds) starts flipping between 0.1 and 0.15.
    assert 0.1 < eps50(EPS_GRID, dice) <= 0.15


def test_gradient_attack_is_more_damaging_than_random_signs():
    images, labels = ring_phantom()
    curves = {
        name: summarise_curve(evaluate_sweep(threshold_segmenter(), images, labels, EPS_GRID, name, 4, 0).per_eps)
        for name in ("fgsm", "random_sign")
    }
    assert curves["fgsm"]["auc_dice_eps"] < curves["random_sign"]["auc_dice_eps"]
    assert curves["random_sign"]["eps50"] is None or curves["fgsm"]["eps50"] < curves["random_sign"]["eps50"]


def test_fgsm_sweep_does_not_depend_on_the_batch_size():
    images, labels = ring_phantom(n=5)
    a = evaluate_sweep(threshold_segmenter(), images, labels, [0.0, 0.2], "fgsm", batch_size=2)
    b = evaluate_sweep(threshold_segmenter(), images, labels, [0.0, 0.2], "fgsm", batch_size=5)
    assert a == b


def test_random_sweeps_are_deterministic_for_a_seed():
    images, labels = ring_phantom(n=3)
    model = threshold_segmenter()
    run = [evaluate_sweep(model, images, labels, [0.0, 0.2], "random_sign", 2, seed=s) for s in (1, 1, 2)]
    assert run[0] == run[1]
    assert run[0].per_image != run[2].per_image


def test_prediction_target_and_pgd_options_reach_the_attack():
    images, labels = ring_phantom(n=2)
    rows = evaluate_sweep(
        threshold_segmenter(),
        images,
        labels,
        [0.0, 0.25],
        "pgd",
        attack_options={"target": "prediction", "steps": 3, "random_start": True},
    ).per_eps
    assert rows[1]["target"] == "prediction"
    assert rows[1]["attack_options"] == {"target": "prediction", "steps": 3, "random_start": True}
    assert rows[1]["metrics"]["dice_mean"] < rows[0]["metrics"]["dice_mean"]


def test_rows_carry_the_pipeline_attack_note():
    images, labels = ring_phantom(n=2)
    rows = evaluate_sweep(NamedPipeline(threshold_segmenter()), images, labels, [0.0, 0.1]).per_eps
    for row in rows:
        assert row["attack"] == "fgsm"
        assert row["pipeline"] == "threshold"
        assert row["differentiable"] is False
        assert row["attack_note"] == "attacked through a stand-in"


def test_real_unet_pipeline_is_attacked_through_its_logits():
    pipelines = pytest.importorskip("unetgan_core.pipelines")
    images, labels = ring_phantom(n=2)
    pipeline = pipelines.UnetPipeline(threshold_segmenter(), name="clean")
    rows = evaluate_sweep(pipeline, images, labels, [0.0, 0.25]).per_eps
    assert rows[0]["pipeline"] == "clean" and rows[0]["attack_note"] == pipeline.attack_note
    assert rows[0]["metrics"]["dice_mean"] == 1.0 > rows[1]["metrics"]["dice_mean"]


def test_unscored_myocardium_is_counted_not_hidden():
    images, labels = ring_phantom(n=3)
    result = evaluate_sweep(threshold_segmenter(), images, labels, [0.0], myo_labelled=[True, False, True])
    metrics = result.per_eps[0]["metrics"]
    assert metrics["dice_myo"] == 1.0 and metrics["dice_myo_n_unscored"] == 1
    assert "dice_mean_n_unscored" not in metrics
    assert [row["dice_myo"] for row in result.per_image] == [1.0, None, 1.0]


def test_sweep_rejects_bad_arguments():
    images, labels = ring_phantom(n=2)
    model = threshold_segmenter()
    with pytest.raises(UserError, match="repeats"):
        evaluate_sweep(model, images, labels, [0.0, 0.1, 0.1])
    with pytest.raises(UserError, match="seed"):
        evaluate_sweep(model, images, labels, [0.0], "random_sign", attack_options={"seed": 3})
    with pytest.raises(UserError, match="batch_size"):
        evaluate_sweep(model, images, labels, [0.0], batch_size=0)
    with pytest.raises(UserError, match="unknown attack"):
        evaluate_sweep(model, images, labels, [0.0], "cw")
    with pytest.raises(DataError, match="labels"):
        evaluate_sweep(model, images, labels[:1], [0.0])
    with pytest.raises(DataError, match="myo_labelled"):
        evaluate_sweep(model, images, labels, [0.0], myo_labelled=[True])
    with pytest.raises(DataError, match="no images"):
        evaluate_sweep(model, images[:0], labels[:0], [0.0])


# --- Fig. 1 panels -------------------------------------------------------------------------


def test_fig1_panels():
    images, labels = ring_phantom(n=1)
    model = threshold_segmenter()
    panels = fig1_panels(model, images[0], labels[0], 0.25)
    assert set(panels) == {"image", "perturbation", "adversarial", "pred_before", "pred_after", "label", "eps"}
    assert panels["eps"].shape == () and float(panels["eps"]) == 0.25
    assert all(a.shape == (32, 32) for name, a in panels.items() if name != "eps")
    expected = fgsm(model, torch.from_numpy(images[:1])[:, None], torch.from_numpy(labels[:1]), 0.25)
    np.testing.assert_array_equal(panels["adversarial"], expected[0, 0].numpy())
    np.testing.assert_array_equal(panels["pred_before"], labels[0])
    np.testing.assert_array_equal(panels["label"], labels[0])
    assert (panels["pred_after"] != labels[0]).mean() > 0.9
    # Amplified for display: -eps -> 0, +eps -> 1; at eps 0.25 no pixel of this phantom is clipped.
    shown = panels["perturbation"]
    assert (np.isclose(shown, 0.0, atol=1e-5) | np.isclose(shown, 1.0, atol=1e-5)).all()
    np.testing.assert_array_equal(shown > 0.5, panels["adversarial"] > panels["image"])
    assert panels["pred_before"].dtype == np.uint8 and panels["image"].dtype == np.float32


def test_fig1_panels_at_eps_zero_show_no_perturbation():
    images, labels = ring_phantom(n=1)
    panels = fig1_panels(threshold_segmenter(), images[0], labels[0], 0.0)
    assert (panels["perturbation"] == 0.5).all()
    np.testing.assert_array_equal(panels["adversarial"], panels["image"])
    with pytest.raises(DataError, match=r"\[H, W\]"):
        fig1_panels(threshold_segmenter(), images, labels, 0.1)
