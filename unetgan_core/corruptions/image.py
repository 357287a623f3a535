"""Artefacts simulated on the image: Rician noise at a target SNR, bias field, Gaussian blur, gamma."""

from __future__ import annotations

import numpy as np
import scipy.ndimage

from unetgan_core.corruptions.table import Corruption, register

FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))
BIAS_DEGREE = 3  # highest total degree of the polynomial bias field (smooth over the field of view)


def tissue_signal(images: np.ndarray) -> np.ndarray:
    """``[N]`` mean intensity of each image's pixels above its median: the tissue and blood, not the air.

    The SNR of :func:`rician_noise` is relative to it (the phantom's styles use the myocardium, which a
    corruption cannot see: it never reads labels).
    """
    flat = images.reshape(len(images), -1)
    median = np.median(flat, axis=1, keepdims=True)
    above = flat > median
    sums = np.where(above, flat, 0.0).sum(axis=1)
    return np.where(above.any(axis=1), sums / np.maximum(above.sum(axis=1), 1), flat.mean(axis=1))


def rician_noise(images: np.ndarray, snr_db: float, rngs, pixel_mm: float) -> np.ndarray:
    """Magnitude of the image plus complex white Gaussian noise, at ``snr_db`` = 20 log10(tissue signal / sigma)."""
    sigma = tissue_signal(images) / 10.0 ** (snr_db / 20.0)
    out = np.empty_like(images)
    for i, rng in enumerate(rngs):
        noise = rng.standard_normal((2, *images.shape[1:])) * sigma[i]
        out[i] = np.hypot(images[i] + noise[0], noise[1])
    return out


def bias_field_map(shape: tuple[int, int], ratio: float, rng: np.random.Generator) -> np.ndarray:
    """A smooth multiplicative field whose maximum is ``ratio`` times its minimum over the image.

    ``exp(log(ratio) / 2 * q)``, where q is a random polynomial of total degree ``BIAS_DEGREE`` in the
    coordinates scaled to [-1, 1], rescaled to span exactly [-1, 1].
    """
    h, w = shape
    y, x = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    q = np.zeros(shape)
    for a in range(BIAS_DEGREE + 1):
        for b in range(BIAS_DEGREE + 1 - a):
            if a + b:
                q += rng.uniform(-1, 1) / (a + b) * x**a * y**b
    span = q.max() - q.min()
    q = 2 * (q - q.min()) / span - 1 if span > 0 else np.zeros(shape)
    return np.exp(np.log(ratio) / 2 * q)


def bias_field(images: np.ndarray, ratio: float, rngs, pixel_mm: float) -> np.ndarray:
    """Multiply each image by its own smooth field (:func:`bias_field_map`), as uncorrected coil shading."""
    return np.stack([image * bias_field_map(image.shape, ratio, rng) for image, rng in zip(images, rngs, strict=True)])


def blur(images: np.ndarray, fwhm_mm: float, rngs, pixel_mm: float) -> np.ndarray:
    """Gaussian blur of full width at half maximum ``fwhm_mm`` (in-plane; no randomness)."""
    sigma_px = fwhm_mm / FWHM_PER_SIGMA / pixel_mm
    return scipy.ndimage.gaussian_filter(images, sigma=(0, sigma_px, sigma_px), mode="nearest")


def gamma(images: np.ndarray, exponent: float, rngs, pixel_mm: float) -> np.ndarray:
    """Intensity transfer ``x ** g`` with g = ``exponent`` or its inverse (drawn per image): darker or brighter mid-tones."""
    exponents = np.array([exponent if rng.random() < 0.5 else 1.0 / exponent for rng in rngs])
    return np.clip(images, 0.0, 1.0) ** exponents[:, None, None]


register(
    Corruption(
        "noise",
        "SNR",
        "dB",
        (26.0, 22.0, 18.0, 14.0, 10.0),
        "image",
        "complex Gaussian noise, magnitude taken (Rician); signal = mean of the pixels above the image's median",
        rician_noise,
    )
)
register(
    Corruption(
        "bias_field",
        "field max/min",
        "ratio",
        (1.2, 1.4, 1.7, 2.2, 3.0),
        "image",
        f"smooth multiplicative field, exp of a random degree-{BIAS_DEGREE} polynomial over the field of view",
        bias_field,
    )
)
register(
    Corruption(
        "blur",
        "FWHM",
        "mm",
        (3.0, 5.0, 8.0, 12.0, 16.0),
        "image",
        "Gaussian point-spread function",
        blur,
    )
)
register(
    Corruption(
        "gamma",
        "gamma exponent",
        "x or 1/x",
        (1.25, 1.5, 2.0, 2.5, 3.0),
        "image",
        "intensity transfer x^g, g or 1/g drawn per image",
        gamma,
    )
)
