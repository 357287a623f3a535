"""Training-time intensity changes of the source images: the ``clean``, ``noisy`` and ``intensity_aug`` variants.

Every function takes a batch ``[B, 1, H, W]`` in [0, 1] and returns a new batch of the same shape, still in
[0, 1]. Random numbers come from an explicit CPU ``torch.Generator`` (then move to the batch's device), so a
seed gives the same augmented batches on any device and in any process.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from unetgan_core.errors import UserError
from unetgan_core.registry import Registry


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
    """

    noise_sigma: float = 0.05
    gamma_range: tuple[float, float] = (0.7, 1.5)
    bias_strength: float = 0.3
    bias_grid: int = 4
    contrast_range: tuple[float, float] = (0.75, 1.25)
    brightness_range: tuple[float, float] = (-0.1, 0.1)

    def __post_init__(self) -> None:
        if self.noise_sigma < 0:
            raise UserError(f"noise_sigma must be >= 0, got {self.noise_sigma}")
        if self.bias_strength < 0:
            raise UserError(f"bias_strength must be >= 0, got {self.bias_strength}")
        if self.bias_grid < 2:
            raise UserError(f"bias_grid must be >= 2 control points, got {self.bias_grid}")
        for name in ("gamma_range", "contrast_range", "brightness_range"):
            low, high = getattr(self, name)
            if low > high:
                raise UserError(f"{name} must be (low, high) with low <= high, got {(low, high)}")
        if self.gamma_range[0] <= 0 or self.contrast_range[0] < 0:
            raise UserError(
                f"gamma_range must be > 0 and contrast_range >= 0, got {self.gamma_range}, {self.contrast_range}"
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


def augment_batch(x: torch.Tensor, variant: str, settings: AugmentSettings, gen: torch.Generator) -> torch.Tensor:
    """Apply the named training variant to a batch.

    Args:
        x: ``[B, 1, H, W]`` float images in [0, 1].
        variant: ``clean``, ``noisy`` or ``intensity_aug``.
        settings: strengths of the changes.
        gen: CPU ``torch.Generator`` that fixes every random draw.

    Returns:
        ``[B, 1, H, W]`` in [0, 1].
    """
    if x.ndim != 4 or x.shape[1] != 1:
        raise UserError(f"augment_batch expects [B, 1, H, W] images, got shape {tuple(x.shape)}")
    return VARIANTS.get(variant)(x, settings, gen)
