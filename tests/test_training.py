"""Segmentation training, its configuration and the training-time augmentations."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from unetgan_core.data.sliceset import SliceSet
from unetgan_core.device import seed_everything
from unetgan_core.errors import UserError
from unetgan_core.losses import segmentation_loss
from unetgan_core.models import create_model
from unetgan_core.schema import load_table
from unetgan_core.training import (
    AugmentSettings,
    SegTrainConfig,
    TranslatorConfig,
    augment_batch,
    train_segmenter,
)
from unetgan_core.training.augment import gaussian_blur
from unetgan_core.training.segmentation import training_targets

TINY_UNET = {"width": 4}


def toy_slices(n: int, size: int, seed: int, vendor: str = "src", gamma: float = 1.0) -> SliceSet:
    """Discs (blood pool, bright) inside rings (myocardium, dark) on mid-grey tissue, 4 slices per subject.

    ``gamma`` changes the intensity mapping, a stand-in for another vendor's contrast.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images = np.zeros((n, size, size), np.float32)
    labels = np.zeros((n, size, size), np.uint8)
    for i in range(n):
        cy, cx = rng.uniform(0.35, 0.65, 2) * size
        radius = rng.uniform(0.1, 0.16) * size
        dist = np.hypot(yy - cy, xx - cx)
        labels[i][dist < 1.5 * radius] = 2
        labels[i][dist < radius] = 1
        base = np.select([labels[i] == 1, labels[i] == 2], [0.8, 0.25], 0.5)
        images[i] = np.clip(base + rng.normal(0, 0.04, (size, size)), 0, 1) ** gamma
    return SliceSet(
        images=images,
        labels=labels,
        subjects=np.array([f"{vendor}-{i // 4:03d}" for i in range(n)]),
        vendor=vendor,
        pixel_mm=1.5,
        labelled=np.ones(n, bool),
        myo_labelled=np.ones(n, bool),
        slice_index=np.arange(n) % 4,
        phase=np.array(["ED"] * n),
        synthetic=True,
    )


# --- configuration -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [SegTrainConfig, TranslatorConfig])
def test_loader_rejects_unknown_key_naming_it_and_the_allowed_keys(cls):
    with pytest.raises(UserError, match=r"^s.toml: \[x\]: unknown key 'epochz'; allowed: .*batch_size"):
        load_table(cls, {"epochz": 3}, "s.toml: [x]")


def test_loader_converts_toml_values_and_rejects_wrong_types():
    cfg = load_table(
        SegTrainConfig, {"epochs": 2, "lr": 1, "gamma_range": [0.8, 1.2], "model_kwargs": {"width": 8}}, "[unet]"
    )
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float)
    assert cfg.gamma_range == (0.8, 1.2)
    assert cfg.model_kwargs == {"width": 8}
    for table, match in [
        ({"epochs": "3"}, r"\[unet\] epochs: expected an integer, got '3'"),
        ({"bf16": 1}, r"\[unet\] bf16: expected true or false, got 1"),
        ({"variant": "blurry"}, r"\[unet\] variant: expected one of appearance_aug, clean, .*got 'blurry'"),
        ({"epochs": 0}, r"\[unet\] epochs: expected a value >= 1, got 0"),
        ({"gamma_range": [1.5, 0.5]}, r"\[unet\] gamma_range must be \(low, high\)"),
        ({"blur_probability": 2.0}, r"\[unet\] blur_probability: expected a value <= 1.0"),
        ({"model": "resnet_gen"}, r"\[unet\] model: expected one of lv_unet, "),
    ]:
        with pytest.raises(UserError, match=match):
            load_table(SegTrainConfig, table, "[unet]")
    with pytest.raises(UserError, match=r"ssim_exponents: expected a list of 3 values"):
        load_table(TranslatorConfig, {"ssim_exponents": [0.1, 1.0]}, "[translator]")
    with pytest.raises(UserError, match=r"selection: expected one of oracle, unlabelled"):
        load_table(TranslatorConfig, {"selection": "peek"}, "[translator]")


def test_bounds_hold_for_directly_built_configs_too():
    """The bounds live in the field metadata, so code that builds a config gets the same checks as a suite."""
    with pytest.raises(UserError, match="epochs: expected a value >= 1, got 0"):
        SegTrainConfig(epochs=0)
    with pytest.raises(UserError, match="lr: expected a finite number"):
        TranslatorConfig(lr=float("nan"))
    with pytest.raises(UserError, match="generator: resnet_generator: unknown option 'bogus'"):
        TranslatorConfig(generator={"bogus": 1})


def test_translator_defaults_are_the_papers_unetgan():
    cfg = load_table(TranslatorConfig, {}, "[translator]")
    assert (cfg.lambda_unet, cfg.lambda_ssim, cfg.lambda_cycle) == (15.0, 5.0, 0.0)
    assert cfg.ssim_exponents == (0.1, 0.1, 1.0)
    assert cfg.feature_blocks == ("block7", "block9")
    assert cfg.lr == 1e-5
    assert not cfg.needs_cycle
    assert TranslatorConfig(unet_pairing="cycle").needs_cycle


# --- augmentation ----------------------------------------------------------------------------------------------


def _batch(seed: int = 0, size: int = 32) -> torch.Tensor:
    return torch.from_numpy(toy_slices(4, size, seed).images)[:, None]


@settings(max_examples=25, deadline=None)
@given(
    variant=st.sampled_from(["clean", "noisy", "intensity_aug", "appearance_aug"]),
    sigma=st.floats(0.0, 0.5),
    gamma_low=st.floats(0.3, 1.0),
    gamma_width=st.floats(0.0, 2.0),
    bias=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**31 - 1),
)
def test_every_variant_keeps_images_in_unit_range(variant, sigma, gamma_low, gamma_width, bias, seed):
    cfg = AugmentSettings(noise_sigma=sigma, gamma_range=(gamma_low, gamma_low + gamma_width), bias_strength=bias)
    out = augment_batch(_batch(), variant, cfg, torch.Generator().manual_seed(seed))
    assert out.shape == (4, 1, 32, 32)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_clean_variant_returns_the_images_unchanged():
    x = _batch()
    assert torch.equal(augment_batch(x, "clean", AugmentSettings(), torch.Generator().manual_seed(0)), x)


def test_noisy_variant_adds_noise_of_the_configured_sigma():
    x = torch.full((8, 1, 32, 32), 0.5)  # mid-grey: 0.05 noise is almost never clipped
    out = augment_batch(x, "noisy", AugmentSettings(noise_sigma=0.05), torch.Generator().manual_seed(1))
    assert abs(float((out - x).std()) - 0.05) < 0.003
    assert abs(float((out - x).mean())) < 0.003


def test_intensity_aug_changes_contrast_but_is_identity_with_neutral_ranges():
    x = _batch()
    neutral = AugmentSettings(gamma_range=(1, 1), bias_strength=0.0, contrast_range=(1, 1), brightness_range=(0, 0))
    assert torch.allclose(augment_batch(x, "intensity_aug", neutral, torch.Generator().manual_seed(0)), x, atol=1e-5)
    brighter = AugmentSettings(
        gamma_range=(1, 1), bias_strength=0.0, contrast_range=(1, 1), brightness_range=(0.1, 0.1)
    )
    shifted = augment_batch(x, "intensity_aug", brighter, torch.Generator().manual_seed(0))
    unclipped = x < 0.85
    assert torch.allclose(shifted[unclipped], x[unclipped] + 0.1, atol=1e-5)
    strong = augment_batch(x, "intensity_aug", AugmentSettings(), torch.Generator().manual_seed(0))
    assert float((strong - x).abs().mean()) > 0.02


def test_augmentation_is_fixed_by_the_generator_seed():
    x = _batch()
    a = augment_batch(x, "intensity_aug", AugmentSettings(), torch.Generator().manual_seed(5))
    b = augment_batch(x, "intensity_aug", AugmentSettings(), torch.Generator().manual_seed(5))
    c = augment_batch(x, "intensity_aug", AugmentSettings(), torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_gaussian_blur_keeps_sigma_zero_images_and_the_mean_and_matches_a_hand_kernel():
    x = _batch()
    out = gaussian_blur(x, torch.tensor([0.0, 1.0, 0.0, 2.0]))
    assert torch.allclose(out[0], x[0], atol=1e-6) and torch.allclose(out[2], x[2], atol=1e-6)
    assert float((out[3] - x[3]).abs().mean()) > float((out[1] - x[1]).abs().mean()) > 0.0
    # A point in a flat field far from the borders: the result is the separable kernel exp(-d^2 / 2).
    impulse = torch.zeros(1, 1, 17, 17)
    impulse[0, 0, 8, 8] = 1.0
    blurred = gaussian_blur(impulse, torch.tensor([1.0]))[0, 0]
    t = torch.arange(-3, 4, dtype=torch.float32)
    k = torch.exp(-(t**2) / 2)
    k = k / k.sum()
    assert torch.allclose(blurred[5:12, 5:12], k[:, None] * k[None, :], atol=1e-6)
    assert abs(float(blurred.sum()) - 1.0) < 1e-5


# appearance_aug with every change switched off; tests switch on one change at a time.
NEUTRAL_APPEARANCE = AugmentSettings(
    appearance_gamma_range=(1, 1),
    bias_strength=0.0,
    contrast_range=(1, 1),
    brightness_range=(0, 0),
    blur_probability=0.0,
    noise_probability=0.0,
)


def test_appearance_aug_is_identity_with_neutral_settings_and_covers_both_gamma_directions():
    x = _batch()
    out = augment_batch(x, "appearance_aug", NEUTRAL_APPEARANCE, torch.Generator().manual_seed(0))
    assert torch.allclose(out, x, atol=1e-5)
    # Log-uniform gamma in 1/2..2: about half of the images are brightened (gamma < 1), half darkened.
    gamma_only = dataclasses.replace(NEUTRAL_APPEARANCE, appearance_gamma_range=(0.5, 2.0))
    grey = torch.full((400, 1, 8, 8), 0.5)
    means = augment_batch(grey, "appearance_aug", gamma_only, torch.Generator().manual_seed(1)).mean(dim=(1, 2, 3))
    assert 0.4 < float((means > 0.5).float().mean()) < 0.6
    assert float(means.min()) >= 0.25 - 1e-4 and float(means.max()) <= 0.5**0.5 + 1e-4


def test_appearance_aug_noise_and_blur_follow_their_probabilities():
    grey = torch.full((400, 1, 16, 16), 0.5)
    noise_only = dataclasses.replace(NEUTRAL_APPEARANCE, noise_sigma_range=(0.05, 0.05), noise_probability=0.5)
    out = augment_batch(grey, "appearance_aug", noise_only, torch.Generator().manual_seed(2))
    noisy = (out - grey).flatten(1).std(dim=1) > 0.01
    assert 0.4 < float(noisy.float().mean()) < 0.6
    assert abs(float((out - grey).flatten(1)[noisy].std()) - 0.05) < 0.005
    # Blur leaves a flat image alone, so it is seen on random images: about half of them change.
    texture = torch.rand((400, 1, 16, 16), generator=torch.Generator().manual_seed(3))
    blur_only = dataclasses.replace(NEUTRAL_APPEARANCE, blur_sigma_range=(1.0, 1.0), blur_probability=0.5)
    out = augment_batch(texture, "appearance_aug", blur_only, torch.Generator().manual_seed(4))
    blurred = (out - texture).flatten(1).abs().amax(dim=1) > 1e-3
    assert 0.4 < float(blurred.float().mean()) < 0.6
    assert float(out[blurred].std()) < 0.6 * float(texture[blurred].std())  # smoothing removes most pixel noise


def test_augment_rejects_bad_ranges_and_shapes():
    with pytest.raises(UserError, match="gamma_range"):
        AugmentSettings(gamma_range=(1.5, 0.5))
    with pytest.raises(UserError, match="blur_probability"):
        AugmentSettings(blur_probability=1.5)
    with pytest.raises(UserError, match="noise_sigma_range"):
        AugmentSettings(noise_sigma_range=(-0.1, 0.1))
    with pytest.raises(UserError, match="appearance_gamma_range"):
        AugmentSettings(appearance_gamma_range=(0.0, 2.0))
    with pytest.raises(UserError, match=r"\[B, 1, H, W\]"):
        augment_batch(torch.zeros(2, 32, 32), "clean", AugmentSettings(), torch.Generator())


# --- segmentation training -------------------------------------------------------------------------------------


def _cfg(**kw) -> SegTrainConfig:
    return SegTrainConfig(**{"model_kwargs": TINY_UNET, "epochs": 1, "batch_size": 4, "lr": 1e-3, **kw})


def test_same_seed_gives_identical_weights_and_another_seed_does_not():
    train, val = toy_slices(4, 32, 0), toy_slices(2, 32, 1)
    cfg = _cfg(variant="intensity_aug", batch_size=2)
    a, _ = train_segmenter(train, val, cfg, seed=3, progress=False)
    b, _ = train_segmenter(train, val, cfg, seed=3, progress=False)
    c, _ = train_segmenter(train, val, cfg, seed=4, progress=False)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa)


def test_one_step_lowers_the_training_loss():
    train = toy_slices(4, 32, 0)
    x = torch.from_numpy(train.images)[:, None]
    y = training_targets(train.labels)
    seed_everything(7)
    before = create_model("lv_unet", **TINY_UNET)  # the same initial weights train_segmenter starts from
    trained, history = train_segmenter(train, toy_slices(0, 32, 1), _cfg(), seed=7, progress=False)
    with torch.no_grad():
        loss_before = float(segmentation_loss(before.eval()(x), y))
        loss_after = float(segmentation_loss(trained(x), y))
    assert loss_after < loss_before
    assert history["selection"] == "final" and history["best_epoch"] == 1


def test_best_validation_epoch_is_kept_and_each_epoch_is_logged(tmp_path):
    log = tmp_path / "unet.jsonl"
    cfg = _cfg(epochs=3, val_every=1)
    _, history = train_segmenter(toy_slices(8, 32, 0), toy_slices(4, 32, 1), cfg, seed=0, log_path=log, progress=False)
    dice = [r["val_dice_mean"] for r in history["epochs"]]
    assert history["selection"] == "val"
    assert history["best_val_dice"] == max(dice)
    assert history["best_epoch"] == 1 + dice.index(max(dice))
    assert history["images_per_s"] > 0
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert all(np.isfinite(r["loss"]) for r in rows)


def test_training_without_usable_labels_is_a_data_error():
    train = toy_slices(4, 32, 0)
    unlabelled = train.take(np.zeros(4, bool))
    with pytest.raises(UserError, match="no slice has blood-pool and myocardium labels"):
        train_segmenter(unlabelled, train, _cfg(), seed=0, progress=False)


def test_bf16_autocast_training_runs_and_logs_finite_losses():
    _, history = train_segmenter(toy_slices(4, 32, 0), toy_slices(2, 32, 1), _cfg(bf16=True), seed=0, progress=False)
    assert np.isfinite(history["epochs"][0]["loss"])
    assert 0.0 <= history["best_val_dice"] <= 1.0
