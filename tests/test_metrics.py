"""Dice and HD95: hand-checkable cases, empty-mask rules, and independent computations on random masks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.metrics import f1_score

from unetgan_core.errors import DataError, UserError
from unetgan_core.metrics import dice_scores, hd95_mm, hd95_scores

label_maps = arrays(
    np.uint8, st.tuples(st.integers(1, 3), st.integers(2, 9), st.integers(2, 9)), elements=st.integers(0, 3)
)


def test_two_by_two_dice_by_hand():
    pred = np.array([[[1, 1], [0, 2]]])
    gt = np.array([[[1, 0], [0, 2]]])
    scores = dice_scores(pred, gt)
    # Blood pool: overlap 1, sizes 2 + 1 -> 2/3. Myocardium: identical single pixel -> 1.
    assert scores["dice_blood_pool"][0] == pytest.approx(2 / 3)
    assert scores["dice_myo"][0] == 1.0
    assert scores["dice_mean"][0] == pytest.approx((2 / 3 + 1) / 2)


def test_a_single_2d_map_is_one_image():
    assert dice_scores(np.array([[1, 0], [0, 0]]), np.array([[1, 0], [0, 0]]))["dice_blood_pool"].shape == (1,)


def test_dice_empty_mask_rules():
    empty = np.zeros((1, 4, 4), dtype=np.uint8)
    some = empty.copy()
    some[0, 1:3, 1:3] = 1
    assert dice_scores(empty, empty)["dice_blood_pool"][0] == 1.0  # both empty
    assert dice_scores(some, empty)["dice_blood_pool"][0] == 0.0  # hallucinated
    assert dice_scores(empty, some)["dice_blood_pool"][0] == 0.0  # missed


def test_label_3_counts_as_background():
    gt = np.array([[[1, 1], [0, 0]]])
    pred_with_rv = np.array([[[1, 1], [3, 3]]])
    for key, value in dice_scores(pred_with_rv, gt).items():
        assert value[0] == 1.0, key
    assert hd95_mm(pred_with_rv, gt, 1.0)[0] == 0.0


def test_unlabelled_myocardium_is_nan_by_rule_and_mean_uses_blood_pool():
    pred = np.array([[[1, 1], [0, 2]], [[1, 1], [0, 2]]])
    gt = np.array([[[1, 0], [0, 0]], [[1, 0], [0, 0]]])
    scores = dice_scores(pred, gt, myo_labelled=[True, False])
    assert scores["dice_myo"][0] == 0.0
    assert np.isnan(scores["dice_myo"][1])
    assert scores["dice_mean"][0] == pytest.approx(1 / 3)
    assert scores["dice_mean"][1] == pytest.approx(2 / 3)


@settings(max_examples=40, deadline=None)
@given(pred=label_maps, gt_seed=st.integers(0, 2**32 - 1))
def test_dice_matches_scikit_learn_f1_on_random_masks(pred, gt_seed):
    gt = np.random.default_rng(gt_seed).integers(0, 4, size=pred.shape).astype(np.uint8)
    scores = dice_scores(pred, gt)
    for key, label in (("dice_blood_pool", 1), ("dice_myo", 2)):
        for i in range(len(pred)):
            # zero_division=1.0: both masks empty scores 1, as our rule says.
            expected = f1_score((gt[i] == label).ravel(), (pred[i] == label).ravel(), zero_division=1.0)
            assert scores[key][i] == pytest.approx(expected)
    np.testing.assert_allclose(scores["dice_mean"], (scores["dice_blood_pool"] + scores["dice_myo"]) / 2)


def _square(size: int, top: int, left: int, side: int, label: int = 1) -> np.ndarray:
    mask = np.zeros((size, size), dtype=np.uint8)
    mask[top : top + side, left : left + side] = label
    return mask


@pytest.mark.parametrize("k", [1, 2, 3, 5])
@pytest.mark.parametrize("pixel_mm", [1.0, 1.25])
def test_hd95_of_squares_offset_by_k_pixels_is_k_pixels(k, pixel_mm):
    gt = _square(40, 10, 10, 12)
    pred_right = _square(40, 10, 10 + k, 12)
    pred_down = _square(40, 10 + k, 10, 12)
    for pred in (pred_right, pred_down):
        scores = hd95_scores(pred[None], gt[None], pixel_mm)
        assert scores["hd95_blood_pool_mm"][0] == pytest.approx(k * pixel_mm)
        assert scores["hd95_myo_mm"][0] == 0.0  # both empty
        assert scores["hd95_mm"][0] == pytest.approx(k * pixel_mm / 2)


def test_hd95_honours_anisotropic_pixels():
    gt = _square(40, 10, 10, 12)
    down = _square(40, 13, 10, 12)  # 3 rows
    right = _square(40, 10, 13, 12)  # 3 columns
    assert hd95_scores(down[None], gt[None], (2.0, 0.5))["hd95_blood_pool_mm"][0] == pytest.approx(6.0)
    assert hd95_scores(right[None], gt[None], (2.0, 0.5))["hd95_blood_pool_mm"][0] == pytest.approx(1.5)


def test_hd95_empty_mask_rules():
    empty = np.zeros((1, 10, 10), dtype=np.uint8)
    some = _square(10, 2, 2, 4)[None]
    assert hd95_mm(empty, empty, 1.0)[0] == 0.0
    assert np.isnan(hd95_scores(some, empty, 1.0)["hd95_blood_pool_mm"][0])
    assert np.isnan(hd95_scores(empty, some, 1.0)["hd95_blood_pool_mm"][0])
    # The mean is NaN as well: an undefined class is not hidden by the other one.
    assert np.isnan(hd95_mm(some, empty, 1.0)[0])


def test_hd95_unlabelled_myocardium_is_nan_and_mean_is_blood_pool():
    gt = _square(30, 5, 5, 10)
    pred = _square(30, 5, 7, 10)
    pred[20:25, 20:25] = 2  # myocardium predicted where none is annotated
    scores = hd95_scores(pred[None], gt[None], 1.0, myo_labelled=[False])
    assert np.isnan(scores["hd95_myo_mm"][0])
    assert scores["hd95_mm"][0] == pytest.approx(2.0)


def _brute_force_hd95(a: np.ndarray, b: np.ndarray) -> float:
    """Surface pixels by explicit 4-neighbour checks, all pairwise distances, max of directed 95th percentiles."""

    def surface(mask):
        padded = np.pad(mask, 1)
        inner = padded[1:-1, 1:-1]
        neighbours_all_in = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
        return np.argwhere(inner & ~neighbours_all_in)

    sa, sb = surface(a), surface(b)
    dist = np.sqrt(((sa[:, None, :] - sb[None, :, :]) ** 2).sum(-1))
    return max(np.percentile(dist.min(axis=1), 95), np.percentile(dist.min(axis=0), 95))


@settings(max_examples=40, deadline=None)
@given(pred=label_maps, gt_seed=st.integers(0, 2**32 - 1))
def test_hd95_matches_a_brute_force_computation_on_random_masks(pred, gt_seed):
    gt = np.random.default_rng(gt_seed).integers(0, 4, size=pred.shape).astype(np.uint8)
    scores = hd95_scores(pred, gt, 1.0)
    for key, label in (("hd95_blood_pool_mm", 1), ("hd95_myo_mm", 2)):
        for i in range(len(pred)):
            p, g = pred[i] == label, gt[i] == label
            if p.any() and g.any():
                assert scores[key][i] == pytest.approx(_brute_force_hd95(p, g))
            elif p.any() or g.any():
                assert np.isnan(scores[key][i])
            else:
                assert scores[key][i] == 0.0


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_hd95_of_small_masks_anywhere_matches_brute_force(seed):
    """Masks that fill a small part of the image (the bounding-box crop's case), at the edges too."""
    rng = np.random.default_rng(seed)
    masks = []
    for _ in range(2):
        mask = np.zeros((24, 24), bool)
        for _ in range(rng.integers(1, 3)):  # one or two blobs, perhaps far apart
            y, x = rng.integers(0, 24, 2)
            h, w = rng.integers(1, 6, 2)
            mask[y : y + h, x : x + w] |= rng.random((len(range(24)[y : y + h]), len(range(24)[x : x + w]))) < 0.8
        masks.append(mask)
    p, g = masks
    if not (p.any() and g.any()):
        return
    pred, gt = p[None].astype(np.uint8), g[None].astype(np.uint8)
    assert hd95_scores(pred, gt, 1.0)["hd95_blood_pool_mm"][0] == pytest.approx(_brute_force_hd95(p, g))


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: dice_scores(np.zeros((1, 2, 2), int), np.zeros((1, 2, 3), int)), UserError, "must both be"),
        (lambda: dice_scores(np.full((1, 2, 2), 4), np.zeros((1, 2, 2), int)), DataError, "labels 0..3"),
        (lambda: dice_scores(np.zeros((1, 2, 2)), np.zeros((1, 2, 2), int)), DataError, "integer"),
        (lambda: dice_scores(np.zeros((2, 2, 2), int), np.zeros((2, 2, 2), int), [True]), UserError, "myo_labelled"),
        (lambda: hd95_mm(np.zeros((1, 2, 2), int), np.zeros((1, 2, 2), int), 0.0), UserError, "pixel_mm"),
        (lambda: hd95_mm(np.zeros((1, 2, 2), int), np.zeros((1, 2, 2), int), (1, 2, 3)), UserError, "pixel_mm"),
    ],
)
def test_bad_metric_inputs_name_the_problem(call, error, match):
    with pytest.raises(error, match=match):
        call()
