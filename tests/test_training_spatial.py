"""Spatial augmentation (rotation, zoom, elastic, flips) and training with partial labels."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from scipy import ndimage
from test_training import TINY_UNET, toy_slices

from unetgan_core.errors import UserError
from unetgan_core.training import AugmentSettings, SegTrainConfig, spatial_augment, train_segmenter

NEUTRAL = {"rotation_deg": 0.0, "scale_range": (1.0, 1.0), "elastic_px": 0.0, "flip_probability": 0.0}


def _batch(n=6, size=40, seed=0):
    slices = toy_slices(n, size, seed)
    return torch.from_numpy(slices.images)[:, None], torch.from_numpy(slices.labels.astype(np.int64))


def test_neutral_settings_leave_images_and_labels_unchanged():
    x, y = _batch()
    gen = torch.Generator().manual_seed(0)
    out_x, out_y = spatial_augment(x, y, AugmentSettings(spatial=True, **NEUTRAL), gen)
    torch.testing.assert_close(out_x, x, rtol=0, atol=1e-5)
    assert torch.equal(out_y, y) and out_y.dtype == y.dtype


def test_flip_probability_one_mirrors_images_and_labels_exactly():
    x, y = _batch()
    settings = AugmentSettings(spatial=True, **{**NEUTRAL, "flip_probability": 1.0})
    out_x, out_y = spatial_augment(x, y, settings, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out_x, x.flip(-1), rtol=0, atol=1e-5)
    assert torch.equal(out_y, y.flip(-1))


def test_labels_stay_aligned_with_the_image_after_rotation_zoom_and_elastic_deformation():
    """An image equal to labels / 2 is warped bilinearly, the labels by nearest neighbour, on one grid:
    away from label boundaries (a 5 x 5 output neighbourhood spans the four bilinear neighbours at these zooms) the two agree exactly."""
    _, y = _batch(8, 48, 3)
    x = (y.double() / 2)[:, None]
    settings = AugmentSettings(spatial=True, rotation_deg=30.0, scale_range=(0.8, 1.25), elastic_px=3.0)
    out_x, out_y = spatial_augment(x, y, settings, torch.Generator().manual_seed(1))
    assert set(torch.unique(out_y).tolist()) <= {0, 1, 2}
    assert not torch.equal(out_y, y)  # it did move
    mismatch = (out_x[:, 0] - out_y.double() / 2).abs() > 1e-6
    labels = out_y.numpy()
    boundary = np.stack([ndimage.maximum_filter(lab, size=5) != ndimage.minimum_filter(lab, size=5) for lab in labels])
    assert not (mismatch.numpy() & ~boundary).any()
    assert mismatch.float().mean() < 0.1


def test_zoom_scales_the_blood_pool_area():
    x, y = _batch(6, 64, 2)
    bigger = AugmentSettings(spatial=True, **{**NEUTRAL, "scale_range": (1.2, 1.2)})
    _, out_y = spatial_augment(x, y, bigger, torch.Generator().manual_seed(0))
    ratio = (out_y == 1).sum().item() / (y == 1).sum().item()
    assert ratio == pytest.approx(1.2**2, rel=0.08)


def test_spatial_draws_are_fixed_by_the_seed_and_bad_settings_are_refused():
    x, y = _batch()
    settings = AugmentSettings(spatial=True)
    a = spatial_augment(x, y, settings, torch.Generator().manual_seed(5))
    b = spatial_augment(x, y, settings, torch.Generator().manual_seed(5))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    with pytest.raises(UserError, match="scale_range: expected a value > 0.0"):
        AugmentSettings(scale_range=(0.0, 1.0))
    with pytest.raises(UserError, match="flip_probability: expected a value <= 1.0"):
        SegTrainConfig(flip_probability=2.0)
    with pytest.raises(UserError, match=r"labels must be \[B, H, W\]"):
        spatial_augment(x, y[:, :5], settings, torch.Generator())


def test_spatial_augmentation_changes_training_and_off_keeps_the_old_stream():
    train, val = toy_slices(8, 32, 0), toy_slices(4, 32, 1)
    base = {"model_kwargs": TINY_UNET, "epochs": 1, "batch_size": 4, "lr": 1e-3}
    off, _ = train_segmenter(train, val, SegTrainConfig(**base), seed=2, progress=False)
    off_again, _ = train_segmenter(train, val, SegTrainConfig(**base, spatial=False), seed=2, progress=False)
    on, history = train_segmenter(train, val, SegTrainConfig(**base, spatial=True), seed=2, progress=False)
    a, b, c = off.state_dict(), off_again.state_dict(), on.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)
    assert np.isfinite(history["epochs"][0]["loss"])


def test_slices_without_a_myocardium_contour_train_the_blood_pool():
    train = toy_slices(8, 32, 0)
    partial = np.arange(8) % 2 == 1
    labels = train.labels.copy()
    labels[partial] = np.where(labels[partial] == 2, 0, labels[partial])
    train = dataclasses.replace(train, labels=labels, myo_labelled=~partial)
    cfg = SegTrainConfig(model_kwargs=TINY_UNET, epochs=1, batch_size=4, lr=1e-3)
    _, history = train_segmenter(train, toy_slices(0, 32, 1), cfg, seed=0, progress=False)
    assert history["n_train_slices"] == 8 and history["n_blood_pool_only"] == 4
    assert history["health"]["checked_on"] == "train" and history["health"]["n_slices"] == 8
