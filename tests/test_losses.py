"""Losses: SSIM against scikit-image, exponents, gradients, feature loss, segmentation loss, GAN losses."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.metrics import structural_similarity

from unetgan_core.errors import DataError, UserError
from unetgan_core.losses import feature_loss, gan_loss, segmentation_loss, ssim, ssim_loss, ssim_map
from unetgan_core.models import LVUnet, freeze


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors on a shared 2-core machine run far faster on one thread than with OpenMP contention."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def skimage_ssim(a: np.ndarray, b: np.ndarray) -> float:
    return structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1)


def as_batch(a: np.ndarray, dtype=torch.float64) -> torch.Tensor:
    return torch.tensor(a, dtype=dtype)[None, None]


def test_ssim_of_identical_images_is_one():
    x = torch.rand(3, 1, 40, 40)
    torch.testing.assert_close(ssim(x, x), torch.ones(3), atol=1e-6, rtol=0)
    # Also with the paper's unequal exponents (separate sqrt path) and on flat images.
    torch.testing.assert_close(ssim(x, x, 0.1, 0.1, 1.0), torch.ones(3), atol=1e-6, rtol=0)
    # Flat patches: the moments are computed in float64, so float32 input is exact too.
    flat = torch.full((1, 1, 20, 20), 0.3, dtype=torch.float64)
    assert ssim(flat, flat, 0.1, 0.1, 1.0).item() == pytest.approx(1.0, abs=1e-12)
    assert ssim(flat.float(), flat.float(), 0.1, 0.1, 1.0).item() == pytest.approx(1.0, abs=1e-6)


def test_ssim_of_a_flat_float32_image_has_zero_variance():
    # 16 x 16 at 0.81 in float32: E[x^2] - E[x]^2 in float32 gives ~1.8e-7, above the 1e-8 cut,
    # and used to give 0.505 instead of 0.629 against this y.
    flat = torch.full((1, 1, 16, 16), 0.81)
    y = torch.from_numpy(np.random.default_rng(0).random((1, 1, 16, 16))).float()
    ours = ssim(flat, y, 0.1, 0.1, 1.0)
    assert ours.dtype == torch.float32
    # By hand: var_x = cov = 0, so s = c3 / c3 = 1 and c = c2 / (var_y + c2), position by position.
    c1, c2 = 0.01**2, 0.03**2
    y64 = y.double()
    g = torch.exp(-((torch.arange(11.0, dtype=torch.float64) - 5) ** 2) / (2 * 1.5**2))
    g = (g / g.sum()).reshape(1, 1, 1, 11)
    blur = lambda im: torch.nn.functional.conv2d(torch.nn.functional.conv2d(im, g), g.transpose(2, 3))  # noqa: E731
    mu_y = blur(y64)
    var_y = blur(y64 * y64) - mu_y**2
    lum = (2 * 0.81 * mu_y + c1) / (0.81**2 + mu_y**2 + c1)
    expected = (lum**0.1 * (c2 / (var_y + c2)) ** 0.1).mean().item()
    assert ours.item() == pytest.approx(expected, abs=1e-6)
    assert ours.item() == pytest.approx(ssim(flat.double(), y64, 0.1, 0.1, 1.0).item(), abs=1e-6)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), scale=st.floats(0.0, 1.0), noise=st.floats(0.0, 0.5))
def test_ssim_with_unit_exponents_matches_scikit_image(seed, scale, noise):
    rng = np.random.default_rng(seed)
    a = rng.random((32, 37))
    b = np.clip(scale * a + noise * rng.random((32, 37)), 0, 1)
    ours = ssim(as_batch(a), as_batch(b)).item()
    assert ours == pytest.approx(skimage_ssim(a, b), abs=1e-4)
    ours32 = ssim(as_batch(a, torch.float32), as_batch(b, torch.float32)).item()
    assert ours32 == pytest.approx(skimage_ssim(a, b), abs=1e-4)


def test_ssim_of_a_smooth_image_matches_scikit_image():
    yy, xx = np.mgrid[0:48, 0:48] / 47.0
    a = 0.5 + 0.4 * np.sin(6 * xx) * np.cos(4 * yy)
    b = 0.8 * a + 0.1
    assert ssim(as_batch(a), as_batch(b)).item() == pytest.approx(skimage_ssim(a, b), abs=1e-4)


def test_ssim_map_has_valid_size():
    x = torch.rand(2, 1, 30, 40)
    assert ssim_map(x, x, window=11).shape == (2, 1, 20, 30)


def test_exponents_weight_the_three_terms():
    # A brightness change alone: structure is intact, luminance is not, so a small luminance
    # exponent makes the images look more alike.
    x = torch.rand(1, 1, 32, 32) * 0.5
    y = x + 0.3
    full = ssim(x, y).item()
    paper = ssim(x, y, alpha=0.1, beta=0.1, gamma=1.0).item()
    structure_only = ssim(x, y, alpha=0.0, beta=0.0, gamma=1.0).item()
    assert full < paper < 1.0
    assert structure_only == pytest.approx(1.0, abs=1e-4)


def test_ssim_loss_is_zero_for_identical_images_and_positive_otherwise():
    x = torch.rand(2, 1, 32, 32)
    assert ssim_loss(x, x).item() == pytest.approx(0.0, abs=1e-6)
    assert ssim_loss(x, torch.rand(2, 1, 32, 32)).item() > 0.1


@pytest.mark.parametrize(
    "make_y",
    [
        lambda x: x.detach().clone(),  # identical
        lambda x: 1 - x.detach(),  # anti-correlated: structure term negative
        lambda x: torch.zeros_like(x),  # flat target
    ],
)
def test_ssim_loss_gradients_are_finite_with_fractional_exponents(make_y):
    x = torch.rand(2, 1, 24, 24, requires_grad=True)
    loss = ssim_loss(x, make_y(x))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all()
    flat = torch.zeros(1, 1, 24, 24, requires_grad=True)
    ssim_loss(flat, torch.zeros(1, 1, 24, 24)).backward()
    assert torch.isfinite(flat.grad).all()


@pytest.mark.parametrize(
    "kwargs, match",
    [({"window": 10}, "window"), ({"window": 41}, "window"), ({"sigma": 0}, "sigma"), ({"alpha": -1}, "alpha")],
)
def test_bad_ssim_arguments_are_user_errors(kwargs, match):
    x = torch.rand(1, 1, 32, 32)
    with pytest.raises(UserError, match=match):
        ssim(x, x, **kwargs)
    with pytest.raises(UserError, match="shape"):
        ssim(x, torch.rand(1, 1, 32, 31))


def test_feature_loss_is_zero_for_identical_inputs_and_differentiable_in_the_translation():
    torch.manual_seed(0)
    unet = freeze(LVUnet(width=4))
    a = torch.rand(2, 1, 64, 64)
    assert feature_loss(unet, a, a.clone()).item() == 0.0
    b = (a + 0.1 * torch.randn_like(a)).clamp(0, 1).requires_grad_(True)
    loss = feature_loss(unet, a, b)
    loss.backward()
    assert loss.item() > 0
    assert b.grad is not None and b.grad.abs().sum() > 0
    assert all(p.grad is None for p in unet.parameters())


def test_feature_loss_averages_blocks():
    torch.manual_seed(0)
    unet = freeze(LVUnet(width=4))
    a, b = torch.rand(1, 1, 64, 64), torch.rand(1, 1, 64, 64)
    per_block = [feature_loss(unet, a, b, blocks=(name,)).item() for name in ("block7", "block9")]
    assert feature_loss(unet, a, b).item() == pytest.approx(sum(per_block) / 2, rel=1e-5)
    with pytest.raises(UserError, match="blocks"):
        feature_loss(unet, a, b, blocks=())


def test_segmentation_loss_is_small_for_confident_correct_logits():
    labels = torch.randint(0, 3, (2, 16, 16))
    logits = 20.0 * torch.nn.functional.one_hot(labels, 3).permute(0, 3, 1, 2).float()
    assert segmentation_loss(logits, labels).item() < 1e-3
    wrong = 20.0 * torch.nn.functional.one_hot((labels + 1) % 3, 3).permute(0, 3, 1, 2).float()
    assert segmentation_loss(wrong, labels).item() > 10


def test_segmentation_loss_treats_label_3_as_background():
    logits = torch.randn(1, 3, 8, 8)
    labels = torch.zeros(1, 8, 8, dtype=torch.long)
    labels[0, :4] = 3
    torch.testing.assert_close(
        segmentation_loss(logits, labels), segmentation_loss(logits, torch.zeros_like(labels)), rtol=0, atol=0
    )


def test_segmentation_loss_weights_combine_its_terms():
    logits, labels = torch.randn(2, 3, 8, 8), torch.randint(0, 3, (2, 8, 8))
    ce = segmentation_loss(logits, labels, 1.0, 0.0)
    dice = segmentation_loss(logits, labels, 0.0, 1.0)
    torch.testing.assert_close(ce, torch.nn.functional.cross_entropy(logits, labels))
    torch.testing.assert_close(segmentation_loss(logits, labels, 2.0, 3.0), 2 * ce + 3 * dice)


def test_segmentation_loss_rejects_bad_labels():
    with pytest.raises(DataError, match="labels"):
        segmentation_loss(torch.randn(1, 3, 4, 4), torch.full((1, 4, 4), 5))
    with pytest.raises(UserError, match="labels"):
        segmentation_loss(torch.randn(1, 3, 4, 4), torch.zeros(1, 4, 5, dtype=torch.long))


def test_one_optimiser_step_lowers_segmentation_loss():
    torch.manual_seed(0)
    net = LVUnet(width=4)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    x = torch.rand(2, 1, 32, 32)
    labels = (x[:, 0] > 0.5).long() + (x[:, 0] > 0.8).long()
    before = segmentation_loss(net(x), labels)
    before.backward()
    opt.step()
    with torch.no_grad():
        after = segmentation_loss(net(x), labels)
    assert after.item() < before.item()


@pytest.mark.parametrize("kind", ["lsgan", "log"])
def test_gan_losses_reward_the_right_side(kind):
    loss = gan_loss(kind)
    confident_real = torch.full((2, 1, 4, 4), 5.0 if kind == "log" else 1.0)
    assert loss(confident_real, True).item() < loss(confident_real, False).item()
    assert loss(-confident_real if kind == "log" else 0 * confident_real, False).item() < 0.01


def test_gan_loss_values_by_hand():
    zeros = torch.zeros(3, 1, 2, 2)
    assert gan_loss("log")(zeros, True).item() == pytest.approx(np.log(2))
    assert gan_loss("lsgan")(zeros, True).item() == pytest.approx(1.0)
    assert gan_loss("lsgan")(zeros, False).item() == pytest.approx(0.0)


def test_unknown_gan_loss_is_a_user_error():
    with pytest.raises(UserError, match="known: log, lsgan"):
        gan_loss("wgan")
