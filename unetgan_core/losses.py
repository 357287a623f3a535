"""Training losses: weighted SSIM, the Unet feature loss, segmentation CE + soft Dice, GAN losses.

SSIM follows Wang et al. 2004 with separate exponents (the paper's Eq. 3):
``SSIM = l**alpha * c**beta * s**gamma`` with a Gaussian window, ``c1 = (0.01 L)**2``,
``c2 = (0.03 L)**2`` and ``c3 = c2 / 2``. The SSIM map is computed only where the whole window
fits inside the image ("valid"), which is what scikit-image averages after cropping its border.

Differentiability of the fractional powers: ``l`` and ``c`` are positive for images in [0, 1],
but ``s`` is negative where the two patches are anti-correlated, ``b**0.1`` of a negative base
is NaN, and the gradient of ``b**p`` (p < 1) at ``b = 0`` is infinite. So a base raised to a
power other than 1 is first clamped to at least ``POWER_BASE_MIN`` (1e-4); where the clamp is
active the term is a constant with zero gradient. Bases raised to exactly 1 are left as they
are (negative SSIM stays possible, as in the standard index). The standard deviations in
``c`` and ``s`` are taken as 0 (with zero gradient) where the local variance is at most
``VARIANCE_MIN`` (1e-8), since the square root's gradient is infinite at 0 (the local moments
are computed in float64, so a flat float32 region has a variance of ~1e-17, not ~1e-7); ``c`` uses the
squares of those same values, and ``s`` is capped at 1 (its Cauchy-Schwarz bound, exceeded only
through rounding or such flat patches), so identical images give exactly 1. When ``beta == gamma`` the product
``c * s`` is computed as ``(2 sigma_xy + c2) / (var_x + var_y + c2)`` (exact because
``c3 = c2 / 2``), which needs no square root at all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from unetgan_core.errors import DataError, UserError
from unetgan_core.registry import Registry

POWER_BASE_MIN = 1e-4
VARIANCE_MIN = 1e-8
BACKGROUND, BLOOD_POOL, MYOCARDIUM, RIGHT_VENTRICLE = 0, 1, 2, 3


def _gaussian_kernel(window: int, sigma: float, channels: int, like: torch.Tensor) -> torch.Tensor:
    coords = torch.arange(window, dtype=like.dtype, device=like.device) - (window - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return g.expand(channels, 1, window)


def _blur(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Separable depthwise Gaussian filter without padding ("valid")."""
    channels, _, window = g.shape
    x = F.conv2d(x, g.reshape(channels, 1, 1, window), groups=channels)
    return F.conv2d(x, g.reshape(channels, 1, window, 1), groups=channels)


def _safe_sd(var: torch.Tensor) -> torch.Tensor:
    """sqrt(var), but 0 with zero gradient where var <= VARIANCE_MIN (sqrt' is infinite at 0)."""
    flat = var <= VARIANCE_MIN
    return torch.where(flat, torch.zeros_like(var), torch.where(flat, torch.ones_like(var), var).sqrt())


def _power(base: torch.Tensor, exponent: float) -> torch.Tensor:
    if exponent == 1.0:
        return base
    if exponent == 0.0:
        return torch.ones_like(base)
    return base.clamp_min(POWER_BASE_MIN) ** exponent


def ssim_map(
    x: torch.Tensor,
    y: torch.Tensor,
    alpha: float = 1.0,
    beta: float = 1.0,
    gamma: float = 1.0,
    sigma: float = 1.5,
    window: int = 11,
    data_range: float = 1.0,
) -> torch.Tensor:
    """Local SSIM ``l**alpha * c**beta * s**gamma`` at every position where the window fits.

    Args:
        x: images ``[N, C, H, W]`` (intensity range ``data_range``).
        y: images of the same shape.
        alpha: exponent of the luminance term.
        beta: exponent of the contrast term.
        gamma: exponent of the structure term.
        sigma: standard deviation of the Gaussian window, in pixels.
        window: side of the (odd) window, in pixels; must not exceed H or W.
        data_range: intensity range L (1.0 for images in [0, 1]).

    Returns:
        ``[N, C, H - window + 1, W - window + 1]``.
    """
    if x.shape != y.shape or x.ndim != 4:
        raise UserError(
            f"ssim: expected two [N, C, H, W] tensors of one shape, got {list(x.shape)} and {list(y.shape)}"
        )
    if window < 1 or window % 2 == 0 or window > min(x.shape[-2:]):
        raise UserError(f"ssim: window must be odd and at most the image size {list(x.shape[-2:])}, got {window}")
    if sigma <= 0 or data_range <= 0 or min(alpha, beta, gamma) < 0:
        raise UserError(
            f"ssim: need sigma > 0, data_range > 0 and exponents >= 0; "
            f"got sigma={sigma}, data_range={data_range}, alpha={alpha}, beta={beta}, gamma={gamma}"
        )
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    c3 = c2 / 2
    channels = x.shape[1]
    out_dtype = x.dtype
    # In float64: in float32, E[x^2] - E[x]^2 of a flat patch at 0.81 cancels to ~1e-7 instead
    # of 0, above VARIANCE_MIN, which turns the structure term of a flat region into noise.
    x, y = x.double(), y.double()
    g = _gaussian_kernel(window, sigma, 5 * channels, x)
    # One grouped convolution filters all five moment images at once.
    moments = _blur(torch.cat([x, y, x * x, y * y, x * y], dim=1), g)
    mu_x, mu_y, e_xx, e_yy, e_xy = moments.split(channels, dim=1)
    var_x = e_xx - mu_x**2
    var_y = e_yy - mu_y**2
    cov = e_xy - mu_x * mu_y

    luminance = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    if beta == gamma:
        contrast_structure = _power((2 * cov + c2) / (var_x + var_y + c2), beta)
    else:
        sd_x, sd_y = _safe_sd(var_x), _safe_sd(var_y)
        # Squares of the same sd values in the denominator, so identical patches give exactly 1.
        contrast = (2 * sd_x * sd_y + c2) / (sd_x**2 + sd_y**2 + c2)
        # |cov| <= sd_x sd_y (Cauchy-Schwarz); only rounding and flat patches can exceed it.
        structure = ((cov + c3) / (sd_x * sd_y + c3)).clamp_max(1.0)
        contrast_structure = _power(contrast, beta) * _power(structure, gamma)
    return (_power(luminance, alpha) * contrast_structure).to(out_dtype)


def ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    alpha: float = 1.0,
    beta: float = 1.0,
    gamma: float = 1.0,
    sigma: float = 1.5,
    window: int = 11,
    data_range: float = 1.0,
) -> torch.Tensor:
    """Mean SSIM per image (the mean of ``ssim_map`` over channels and positions).

    With all exponents 1 this is scikit-image's ``structural_similarity(gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False, data_range=1)``.

    Args:
        x: images ``[N, C, H, W]`` (intensity range ``data_range``).
        y: images of the same shape.
        alpha: exponent of the luminance term.
        beta: exponent of the contrast term.
        gamma: exponent of the structure term.
        sigma: Gaussian window standard deviation, in pixels.
        window: odd window side, in pixels.
        data_range: intensity range L.

    Returns:
        ``[N]``; 1.0 for identical images.
    """
    return ssim_map(x, y, alpha, beta, gamma, sigma, window, data_range).mean(dim=(1, 2, 3))


def ssim_loss(
    x: torch.Tensor,
    y: torch.Tensor,
    alpha: float = 0.1,
    beta: float = 0.1,
    gamma: float = 1.0,
    sigma: float = 1.5,
    window: int = 11,
    data_range: float = 1.0,
) -> torch.Tensor:
    """``mean(1 - SSIM map)``, the paper's image-level loss (defaults: its alpha, beta, gamma = 0.1, 0.1, 1).

    Args:
        x: images ``[N, C, H, W]``, e.g. the originals.
        y: images of the same shape, e.g. the translations.
        alpha: exponent of the luminance term.
        beta: exponent of the contrast term.
        gamma: exponent of the structure term.
        sigma: Gaussian window standard deviation, in pixels.
        window: odd window side, in pixels.
        data_range: intensity range L.

    Returns:
        A scalar; 0 for identical images.
    """
    return (1.0 - ssim_map(x, y, alpha, beta, gamma, sigma, window, data_range)).mean()


FEATURE_STD_FLOOR = 1e-3  # a channel flatter than this (e.g. dead after a ReLU) is scaled as if it had this std


def feature_loss(
    unet: nn.Module,
    a: torch.Tensor,
    b: torch.Tensor,
    blocks: Sequence[str] = ("block7", "block9"),
    standardise: bool = False,
) -> torch.Tensor:
    """The paper's Unet loss (Eq. 4): mean over ``blocks`` of the MSE between encoder features of ``a`` and ``b``.

    The Unet should be frozen by the caller (``unetgan_core.models.freeze``): this function
    leaves its parameters and mode alone; gradients flow to ``a`` and ``b`` only if they need them.

    Args:
        unet: a model with ``encode(x, features) -> {name: tensor}`` (e.g. ``LVUnet``).
        a: images ``[N, 1, H, W]`` in [0, 1], e.g. the originals.
        b: images of the same shape, e.g. their translations.
        blocks: encoder block names to compare.
        standardise: subtract each channel's mean and divide by its standard deviation, both taken from ``a``'s
            features over the batch and the image (detached, so they act as constants), before the MSE; the loss
            then weighs every channel by its own spread instead of its raw scale.

    Returns:
        A scalar; 0 for identical inputs.
    """
    blocks = tuple(blocks)
    if not blocks:
        raise UserError("feature_loss: blocks must name at least one encoder block")
    if a.shape != b.shape:
        raise UserError(f"feature_loss: inputs differ in shape, {list(a.shape)} and {list(b.shape)}")
    fa = unet.encode(a, blocks)
    fb = unet.encode(b, blocks)
    if standardise:
        fa, fb = _standardised(fa, fb)
    return torch.stack([F.mse_loss(fa[name], fb[name]) for name in blocks]).mean()


def _standardised(
    fa: dict[str, torch.Tensor], fb: dict[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Both feature dicts shifted and scaled per channel by ``fa``'s (detached) channel mean and std."""
    out_a, out_b = {}, {}
    for name, x in fa.items():
        ref = x.detach()
        mean = ref.mean(dim=(0, 2, 3), keepdim=True)
        std = ref.std(dim=(0, 2, 3), keepdim=True, unbiased=False).clamp_min(FEATURE_STD_FLOOR)
        out_a[name], out_b[name] = (x - mean) / std, (fb[name] - mean) / std
    return out_a, out_b


def segmentation_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    ce_weight: float = 1.0,
    dice_weight: float = 1.0,
    smooth: float = 1.0,
    myo_labelled: torch.Tensor | None = None,
) -> torch.Tensor:
    """``ce_weight * cross-entropy + dice_weight * (1 - soft Dice)`` over the foreground classes.

    Label 3 (RV, pictures only) is scored as background when ``C <= 3``. Soft Dice is computed per foreground
    class over the whole batch (``2 sum(p g) + smooth) / (sum(p) + sum(g) + smooth)`` with
    softmax probabilities ``p`` and one-hot ``g``), then averaged over classes; pooling over the
    batch keeps a class that is absent from one image from dominating the gradient.

    Partial labels: an image whose myocardium was not annotated (``myo_labelled`` false; its label 0 means
    "background or myocardium") still trains the blood pool. Its cross-entropy outside the blood pool is
    ``-log(p_background + p_myocardium)`` (the likelihood of what is known), and it is left out of the
    myocardium's Dice sums; so the loss does not change when its background and myocardium scores are swapped.

    Args:
        logits: ``[N, C, H, W]`` raw class scores.
        labels: ``[N, H, W]`` integer labels in 0..C-1 (and 3, treated as 0).
        ce_weight: weight of the cross-entropy term.
        dice_weight: weight of the soft-Dice term.
        smooth: additive smoothing of the Dice ratio, in pixels.
        myo_labelled: ``[N]`` bool, is image n's myocardium annotated; None: every image's is.

    Returns:
        A scalar loss.
    """
    if logits.ndim != 4 or labels.shape != (logits.shape[0], *logits.shape[2:]):
        raise UserError(
            f"segmentation_loss: expected logits [N, C, H, W] and labels [N, H, W], "
            f"got {list(logits.shape)} and {list(labels.shape)}"
        )
    n_classes = logits.shape[1]
    labels = labels.long()
    if n_classes <= RIGHT_VENTRICLE:
        labels = torch.where(labels == RIGHT_VENTRICLE, torch.zeros_like(labels), labels)
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= n_classes):
        raise DataError(
            f"segmentation_loss: labels must lie in 0..{n_classes - 1} (3 = background); "
            f"found {int(labels.min())}..{int(labels.max())}"
        )
    partial = None
    if myo_labelled is not None:
        if myo_labelled.shape != (logits.shape[0],) or n_classes <= MYOCARDIUM:
            raise UserError(
                f"segmentation_loss: myo_labelled must be [N] = [{logits.shape[0]}] with a myocardium class "
                f"(C > {MYOCARDIUM}); got {list(myo_labelled.shape)} and C = {n_classes}"
            )
        partial = ~myo_labelled.to(device=logits.device, dtype=torch.bool)
        if not partial.any():
            partial = None  # every image fully annotated: the plain loss (same numbers as without a mask)
    probs = logits.softmax(dim=1)[:, 1:]
    onehot = F.one_hot(labels, n_classes).permute(0, 3, 1, 2)[:, 1:].to(probs.dtype)
    if partial is None:
        ce = F.cross_entropy(logits, labels)
    else:
        log_p = logits.log_softmax(dim=1)
        nll = -log_p.gather(1, labels[:, None])[:, 0]
        not_blood = -torch.logaddexp(log_p[:, BACKGROUND], log_p[:, MYOCARDIUM])
        ce = torch.where(partial[:, None, None] & (labels != BLOOD_POOL), not_blood, nll).mean()
        # Partial images drop out of the myocardium's Dice sums only.
        include = torch.ones(len(partial), n_classes - 1, 1, 1, dtype=probs.dtype, device=probs.device)
        include[:, MYOCARDIUM - 1] = (~partial).to(probs.dtype)[:, None, None]
        probs, onehot = probs * include, onehot * include
    dims = (0, 2, 3)
    dice = (2 * (probs * onehot).sum(dims) + smooth) / (probs.sum(dims) + onehot.sum(dims) + smooth)
    return ce_weight * ce + dice_weight * (1 - dice.mean())


GAN_LOSSES: Registry[Callable[[torch.Tensor, bool], torch.Tensor]] = Registry("gan loss")


@GAN_LOSSES.register("lsgan")
def _lsgan(logits: torch.Tensor, is_real: bool) -> torch.Tensor:
    """Least-squares GAN (Mao et al. 2017): MSE to 1 for real, 0 for fake."""
    target = torch.ones_like(logits) if is_real else torch.zeros_like(logits)
    return F.mse_loss(logits, target)


@GAN_LOSSES.register("log")
def _log_loss(logits: torch.Tensor, is_real: bool) -> torch.Tensor:
    """The original (paper's) log loss, as binary cross-entropy on logits for numerical stability."""
    target = torch.ones_like(logits) if is_real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)


def gan_loss(kind: str) -> Callable[[torch.Tensor, bool], torch.Tensor]:
    """The adversarial loss ``(logits, is_real) -> scalar`` named ``kind``.

    For the generator, call it on the discriminator's logits of a fake with ``is_real=True``
    (the non-saturating form).

    Args:
        kind: ``"lsgan"`` (least squares) or ``"log"`` (binary cross-entropy, the paper's).

    Returns:
        A function of discriminator logits (any shape) and the target side.
    """
    return GAN_LOSSES.get(kind)
