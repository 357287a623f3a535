"""Training-time changes of the source images: the ``clean``, ``noisy``, ``intensity_aug`` and ``appearance_aug``
variants, and the spatial augmentation that any variant can add (``spatial_augment``).

Every variant takes a batch ``[B, 1, H, W]`` in [0, 1] and returns a new batch of the same shape, still in
[0, 1]. Random numbers come from an explicit CPU ``torch.Generator`` (then move to the batch's device), so a
seed gives the same augmented batches on any device and in any process.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F

from unetgan_core.errors import UserError
from unetgan_core.registry import Registry
from unetgan_core.schema import check_fields, field


@dataclasses.dataclass(frozen=True)
class AugmentSettings:
    """How strongly each variant changes an image.

    Args:
        noise_sigma: standard deviation of the additive Gaussian noise of the ``noisy`` variant, in units of the
            normalised intensity (images span [0, 1]).
        gamma_range: ``(low, high)`` of the random gamma exponent ``x ** gamma`` (1 = unchanged).
        bias_strength: largest log-amplitude of the smooth multiplicative bias field (0 = none; 0.3 lets a
            region be up to ``exp(0.3) = 1.35`` times brighter or darker), mimicking receive-coil shading.
        bias_grid: control points per side of the bias field; few points keep it smooth.
        contrast_range: ``(low, high)`` of the factor that scales intensities about the image mean.
        brightness_range: ``(low, high)`` of the offset added after the contrast change (intensity units).
        appearance_gamma_range: ``(low, high)`` of the ``appearance_aug`` gamma, drawn log-uniformly so that
            brightening and darkening are equally likely (the default 1/2..2 is symmetric in that sense).
        blur_sigma_range: ``(low, high)`` of its Gaussian blur, in pixels.
        blur_probability: chance that an image is blurred at all.
        noise_sigma_range: ``(low, high)`` of its additive Gaussian noise sd (normalised intensity units).
        noise_probability: chance that an image gets noise at all.
        spatial: apply ``spatial_augment`` (rotation, scaling, elastic deformation, optional flips) to images
            and labels before the variant's intensity change. Off by default so phantom results stay as
            calibrated; the real-data suites turn it on.
        rotation_deg: largest rotation, degrees (uniform in +-``rotation_deg``).
        scale_range: ``(low, high)`` of the zoom factor (> 1 magnifies), drawn log-uniformly.
        elastic_px: largest displacement of the smooth elastic field at its control points, pixels.
        elastic_grid: control points per side of the elastic field; few points keep it smooth.
        flip_probability: chance of mirroring an image left-right. 0 by default: real slices are brought to one
            canonical orientation (``data/orientation.py``), so a mirrored heart is not a view the Unet meets.
    """

    noise_sigma: float = field(0.05, doc="noisy: Gaussian noise sd (normalised intensity)", ge=0.0, le=1.0)
    gamma_range: tuple[float, float] = field((0.7, 1.5), doc="intensity_aug: gamma exponent range", gt=0.0, le=10.0)
    bias_strength: float = field(0.3, doc="largest log-amplitude of the smooth bias field", ge=0.0, le=3.0)
    bias_grid: int = field(4, doc="bias field control points per side", ge=2, le=64)
    contrast_range: tuple[float, float] = field(
        (0.75, 1.25), doc="contrast factor range about the image mean", ge=0.0, le=10.0
    )
    brightness_range: tuple[float, float] = field(
        (-0.1, 0.1), doc="brightness offset range (normalised intensity)", ge=-1.0, le=1.0
    )
    appearance_gamma_range: tuple[float, float] = field(
        (0.5, 2.0), doc="appearance_aug: log-uniform gamma range", gt=0.0, le=10.0
    )
    blur_sigma_range: tuple[float, float] = field(
        (0.0, 1.5), doc="appearance_aug: Gaussian blur sd range (pixels)", ge=0.0, le=20.0
    )
    blur_probability: float = field(0.5, doc="appearance_aug: chance of blurring an image", ge=0.0, le=1.0)
    noise_sigma_range: tuple[float, float] = field(
        (0.0, 0.08), doc="appearance_aug: additive noise sd range (normalised intensity)", ge=0.0, le=1.0
    )
    noise_probability: float = field(0.5, doc="appearance_aug: chance of adding noise to an image", ge=0.0, le=1.0)
    spatial: bool = field(
        False, doc="spatial augmentation (rotation, zoom, elastic, optional flips) before the variant's"
    )
    rotation_deg: float = field(15.0, doc="spatial: largest rotation (degrees, uniform in +-)", ge=0.0, le=180.0)
    scale_range: tuple[float, float] = field(
        (0.9, 1.1), doc="spatial: zoom factor range (log-uniform; > 1 magnifies)", gt=0.0, le=10.0
    )
    elastic_px: float = field(2.0, doc="spatial: largest elastic displacement at a control point (px)", ge=0.0, le=64.0)
    elastic_grid: int = field(5, doc="spatial: elastic field control points per side", ge=2, le=64)
    flip_probability: float = field(0.0, doc="spatial: chance of a left-right mirror", ge=0.0, le=1.0)

    def __post_init__(self) -> None:
        check_fields(self)
        for name in RANGE_FIELDS:
            low, high = getattr(self, name)
            if low > high:
                raise UserError(f"{name} must be (low, high) with low <= high, got {(low, high)}")


# The (low, high) settings, whose low end must not exceed the high end.
RANGE_FIELDS = (
    "gamma_range",
    "contrast_range",
    "brightness_range",
    "appearance_gamma_range",
    "blur_sigma_range",
    "noise_sigma_range",
    "scale_range",
)


VARIANTS: Registry = Registry("training variant")


def _uniform(batch: int, low_high: tuple[float, float], gen: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """``batch`` uniform draws in ``[low, high)``, shaped ``[B, 1, 1, 1]`` to broadcast over an image."""
    low, high = low_high
    u = torch.rand(batch, 1, 1, 1, generator=gen)
    return (low + (high - low) * u).to(device=like.device, dtype=like.dtype)


@VARIANTS.register("clean")
def no_change(x: torch.Tensor, settings: AugmentSettings, gen: torch.Generator) -> torch.Tensor:
    """The source images as they are (the paper's "Clean Unet").

    Args:
        x: ``[B, 1, H, W]`` in [0, 1].
        settings: unused; present so every variant has the same signature.
        gen: unused.
    """
    return x


@VARIANTS.register("noisy")
def add_gaussian_noise(x: torch.Tensor, settings: AugmentSettings, gen: torch.Generator) -> torch.Tensor:
    """Add Gaussian noise of ``settings.noise_sigma`` and clip to [0, 1] (the paper's "Noisy Unet").

    Args:
        x: ``[B, 1, H, W]`` in [0, 1].
        settings: ``noise_sigma`` in normalised intensity units.
        gen: CPU generator for the noise.
    """
    noise = torch.randn(x.shape, generator=gen).to(device=x.device, dtype=x.dtype)
    return (x + settings.noise_sigma * noise).clamp(0.0, 1.0)


def smooth_bias_field(
    batch: int, height: int, width: int, strength: float, grid: int, gen: torch.Generator
) -> torch.Tensor:
    """A smooth positive multiplicative field ``[B, 1, H, W]`` around 1.

    A coarse ``grid x grid`` of uniform log-amplitudes in ``[-strength, strength]`` is upsampled bicubically, so the
    field varies over about a quarter of the field of view, like coil shading, never pixel to pixel.

    Args:
        batch: number of fields.
        height, width: field size in pixels.
        strength: largest absolute log-amplitude at a control point.
        grid: control points per side.
        gen: CPU generator for the control points.
    """
    coarse = (torch.rand(batch, 1, grid, grid, generator=gen) * 2.0 - 1.0) * strength
    log_field = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=True)
    # Bicubic overshoots slightly; clamping keeps the documented bound exact.
    return torch.exp(log_field.clamp(-strength, strength))


@VARIANTS.register("intensity_aug")
def random_intensity_change(x: torch.Tensor, settings: AugmentSettings, gen: torch.Generator) -> torch.Tensor:
    """Random gamma, smooth bias field, then contrast and brightness, clipped to [0, 1].

    This mimics the vendor differences the paper describes (luminance and contrast change, anatomy stays), so it
    is a stronger augmentation baseline than the paper's noise.

    Args:
        x: ``[B, 1, H, W]`` in [0, 1].
        settings: the ranges of each change.
        gen: CPU generator for every random draw (drawn in a fixed order so a seed fixes the result).
    """
    b, _, h, w = x.shape
    gamma = _uniform(b, settings.gamma_range, gen, x)
    # The small floor keeps the gradient of x ** gamma finite at 0 should anyone differentiate through it.
    y = x.clamp_min(1e-6) ** gamma
    field = smooth_bias_field(b, h, w, settings.bias_strength, settings.bias_grid, gen).to(x.device, x.dtype)
    y = y * field
    contrast = _uniform(b, settings.contrast_range, gen, x)
    brightness = _uniform(b, settings.brightness_range, gen, x)
    mean = y.mean(dim=(2, 3), keepdim=True)
    y = (y - mean) * contrast + mean + brightness
    return y.clamp(0.0, 1.0)


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Blur each image of ``x`` with its own Gaussian of ``sigma`` pixels (0 leaves it unchanged).

    Separable convolution with reflected borders; one grouped convolution per axis for the whole batch.

    Args:
        x: ``[B, 1, H, W]``.
        sigma: ``[B]`` standard deviations in pixels, >= 0.
    """
    b, _, h, w = x.shape
    radius = max(1, math.ceil(3.0 * float(sigma.max()))) if b else 1
    radius = min(radius, h - 1, w - 1)
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    s = sigma.to(device=x.device, dtype=x.dtype).clamp_min(1e-3)[:, None]
    kernel = torch.exp(-(t[None] ** 2) / (2 * s**2))
    kernel = kernel / kernel.sum(dim=1, keepdim=True)  # sigma -> 0 gives a unit impulse: no change
    y = x.reshape(1, b, h, w)
    y = F.conv2d(F.pad(y, (radius, radius, 0, 0), mode="reflect"), kernel.view(b, 1, 1, -1), groups=b)
    y = F.conv2d(F.pad(y, (0, 0, radius, radius), mode="reflect"), kernel.view(b, 1, -1, 1), groups=b)
    return y.reshape(b, 1, h, w)


@VARIANTS.register("appearance_aug")
def random_appearance_change(x: torch.Tensor, settings: AugmentSettings, gen: torch.Generator) -> torch.Tensor:
    """Broad appearance augmentation: wide gamma, bias field, contrast, brightness, then blur and noise.

    A stacked image-appearance and image-quality augmentation in the spirit of BigAug (Zhang et al., IEEE TMI
    2020) and nnU-Net's default intensity transforms: the ranges are generic (gamma log-uniform in 1/2..2, blur
    and noise on half the images), not fitted to any target vendor. Spatial transforms are left out: the
    vendors differ in appearance, not anatomy.

    Args:
        x: ``[B, 1, H, W]`` in [0, 1].
        settings: the ranges and probabilities of each change.
        gen: CPU generator for every random draw (the same number of draws whatever the values, in a fixed
            order, so a seed fixes the result).
    """
    b, _, h, w = x.shape
    low, high = settings.appearance_gamma_range
    u = torch.rand(b, 1, 1, 1, generator=gen)
    gamma = torch.exp(math.log(low) + (math.log(high) - math.log(low)) * u).to(device=x.device, dtype=x.dtype)
    y = x.clamp_min(1e-6) ** gamma
    y = y * smooth_bias_field(b, h, w, settings.bias_strength, settings.bias_grid, gen).to(x.device, x.dtype)
    contrast = _uniform(b, settings.contrast_range, gen, x)
    brightness = _uniform(b, settings.brightness_range, gen, x)
    mean = y.mean(dim=(2, 3), keepdim=True)
    y = (y - mean) * contrast + mean + brightness
    blur_on = torch.rand(b, generator=gen) < settings.blur_probability
    sigma = _uniform(b, settings.blur_sigma_range, gen, x).flatten().cpu()
    y = gaussian_blur(y, torch.where(blur_on, sigma, torch.zeros_like(sigma)))
    noise_on = (torch.rand(b, 1, 1, 1, generator=gen) < settings.noise_probability).to(x.device, x.dtype)
    noise_sd = _uniform(b, settings.noise_sigma_range, gen, x) * noise_on
    y = y + noise_sd * torch.randn(x.shape, generator=gen).to(device=x.device, dtype=x.dtype)
    return y.clamp(0.0, 1.0)


def augment_batch(x: torch.Tensor, variant: str, settings: AugmentSettings, gen: torch.Generator) -> torch.Tensor:
    """Apply the named training variant to a batch.

    Args:
        x: ``[B, 1, H, W]`` float images in [0, 1].
        variant: ``clean``, ``noisy``, ``intensity_aug`` or ``appearance_aug``.
        settings: strengths of the changes.
        gen: CPU ``torch.Generator`` that fixes every random draw.

    Returns:
        ``[B, 1, H, W]`` in [0, 1].
    """
    if x.ndim != 4 or x.shape[1] != 1:
        raise UserError(f"augment_batch expects [B, 1, H, W] images, got shape {tuple(x.shape)}")
    return VARIANTS.get(variant)(x, settings, gen)


def spatial_augment(
    x: torch.Tensor, labels: torch.Tensor, settings: AugmentSettings, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random rotation, zoom, smooth elastic deformation and optional left-right flip, the same for image and labels.

    One sampling grid per image (``affine_grid`` plus an elastic displacement upsampled bicubically from a coarse
    grid of control points) is applied with ``grid_sample`` to the whole batch on its device: bilinear for images,
    nearest neighbour for labels, so labels keep their values and stay aligned with the image. Points that fall
    outside the input read 0 (background), like the padding of the preprocessing.

    Args:
        x: ``[B, 1, H, W]`` images in [0, 1].
        labels: ``[B, H, W]`` integer labels.
        settings: ``rotation_deg``, ``scale_range``, ``elastic_px``, ``elastic_grid``, ``flip_probability``.
        gen: CPU generator; the same draws in the same order whatever the settings, so a seed fixes the result.

    Returns:
        ``(images, labels)`` of the input shapes and dtypes.
    """
    b, _, h, w = x.shape
    if labels.shape != (b, h, w):
        raise UserError(f"spatial_augment: labels must be [B, H, W] = {[b, h, w]}, got {list(labels.shape)}")
    angle = (torch.rand(b, generator=gen, dtype=torch.float64) * 2 - 1) * math.radians(settings.rotation_deg)
    low, high = (math.log(v) for v in settings.scale_range)
    zoom = torch.exp(low + (high - low) * torch.rand(b, generator=gen, dtype=torch.float64))
    mirror = torch.where(torch.rand(b, generator=gen) < settings.flip_probability, -1.0, 1.0).double()
    coarse = (
        torch.rand(b, 2, settings.elastic_grid, settings.elastic_grid, generator=gen) * 2 - 1
    ) * settings.elastic_px
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    # Output (x, y) -> input (x, y) in normalised coordinates: rotate and shrink the sampling grid (= zoom in),
    # mirroring x first.
    theta = torch.zeros(b, 2, 3, dtype=torch.float64)
    theta[:, 0, 0], theta[:, 0, 1] = cos * mirror, -sin
    theta[:, 1, 0], theta[:, 1, 1] = sin * mirror, cos
    grid = F.affine_grid(theta.to(x.device, torch.float32), [b, 1, h, w], align_corners=False)
    displacement = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=True)
    # Pixels -> normalised units (a side spans 2), then the grid's (x, y) layout [B, H, W, 2].
    displacement = displacement * torch.tensor([2.0 / w, 2.0 / h]).view(1, 2, 1, 1)
    grid = grid + displacement.permute(0, 2, 3, 1).to(grid.device)
    images = F.grid_sample(x, grid.to(x.dtype), mode="bilinear", padding_mode="zeros", align_corners=False)
    moved = F.grid_sample(
        labels[:, None].to(grid.dtype), grid, mode="nearest", padding_mode="zeros", align_corners=False
    )
    return images.clamp(0.0, 1.0), moved[:, 0].round().to(labels.dtype)
