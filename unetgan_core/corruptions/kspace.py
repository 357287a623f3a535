"""Artefacts simulated where they arise, on the image's spectrum: motion, ghosting, spike, Gibbs ringing.

Rows of the 2D spectrum are phase-encode lines (vertical, as in the phantom's acquisition chain,
``unetgan_core.data.phantom.acquisition``), acquired one after another from the most negative to the
most positive frequency; columns are the readout. After the spectrum is altered the image is its
magnitude, as a scanner reconstructs it, so the result is real and non-negative.
"""

from __future__ import annotations

import numpy as np
import scipy.fft
import scipy.ndimage

from unetgan_core.corruptions.table import Corruption, register
from unetgan_core.data.phantom.acquisition import kspace_truncate
from unetgan_core.data.phantom.styles import WINDOWS

ROTATION_DEG_PER_MM = 0.5  # in-plane rotation that accompanies each mm of motion (breathing, bulk motion)
MOTION_ONSET = (0.35, 0.65)  # share of the phase-encode lines acquired before the patient moves
GHOST_PERIODS = (2, 3, 4)  # every p-th phase-encode line is modulated
SPIKE_RADIUS = (0.2, 0.7)  # where the outlier lands, as a fraction of the Nyquist frequency


def _magnitude(spectrum: np.ndarray) -> np.ndarray:
    return np.abs(scipy.fft.ifft2(spectrum, axes=(-2, -1)))


def _acquisition_rank(h: int) -> np.ndarray:
    """Position in the acquisition of each spectrum row: sequential order from -ky_max to +ky_max."""
    return np.argsort(np.argsort(scipy.fft.fftfreq(h), kind="stable"), kind="stable")


def motion(images: np.ndarray, displacement_mm: float, rngs, pixel_mm: float) -> np.ndarray:
    """Rigid in-plane motion during the scan: the lines acquired after a random onset see the moved heart.

    Each image moves by ``displacement_mm`` in a random direction and turns by ``ROTATION_DEG_PER_MM``
    degrees per mm about the image centre; its phase-encode lines acquired after the onset (a random
    share in ``MOTION_ONSET``) come from the moved copy. The shift is a phase ramp in k-space (exact
    at sub-pixel sizes); the rotation is a cubic-spline resampling.
    """
    n, h, w = images.shape
    late = _acquisition_rank(h)[:, None]
    ky, kx = scipy.fft.fftfreq(h)[:, None], scipy.fft.fftfreq(w)[None, :]
    out = np.empty_like(images)
    for i, rng in enumerate(rngs):
        direction, turn, onset = rng.uniform(0, 2 * np.pi), rng.choice((-1.0, 1.0)), rng.uniform(*MOTION_ONSET)
        dy, dx = displacement_mm / pixel_mm * np.sin(direction), displacement_mm / pixel_mm * np.cos(direction)
        moved = scipy.ndimage.rotate(
            images[i], turn * ROTATION_DEG_PER_MM * displacement_mm, reshape=False, order=3, mode="nearest"
        )
        moved_k = scipy.fft.fft2(moved) * np.exp(-2j * np.pi * (ky * dy + kx * dx))
        still_k = scipy.fft.fft2(images[i])
        out[i] = _magnitude(np.where(late >= onset * h, moved_k, still_k))
    return out


def ghosting(images: np.ndarray, ghost_percent: float, rngs, pixel_mm: float) -> np.ndarray:
    """Periodic modulation of phase-encode lines (e.g. a signal that varies with the heart or breath).

    Every p-th line (p drawn from ``GHOST_PERIODS``, offset random) is scaled by ``1 - a``; by the
    Fourier series of that comb, each of the p - 1 ghosts (copies shifted by multiples of H/p along
    the phase-encode axis) has ``a / p`` of the image's amplitude, so ``a = p * ghost_percent / 100``.
    """
    n, h, _ = images.shape
    spectrum = scipy.fft.fft2(images, axes=(-2, -1))
    rows = np.arange(h)
    for i, rng in enumerate(rngs):
        period = int(rng.choice(GHOST_PERIODS))
        offset = int(rng.integers(period))
        spectrum[i, rows % period == offset] *= 1.0 - period * ghost_percent / 100.0
    return _magnitude(spectrum)


def spike(images: np.ndarray, stripe_percent: float, rngs, pixel_mm: float) -> np.ndarray:
    """One outlier sample in k-space (an electrical spark): a herringbone stripe pattern over the image.

    The outlier sits at a random frequency whose radius is a random share ``SPIKE_RADIUS`` of Nyquist,
    with a random phase; its size makes the stripes' amplitude ``stripe_percent`` % of the image's
    mean intensity (a k-space sample A adds a plane wave of amplitude A / (H W) to the image).
    """
    n, h, w = images.shape
    spectrum = scipy.fft.fft2(images, axes=(-2, -1))
    for i, rng in enumerate(rngs):
        radius, angle, phase = rng.uniform(*SPIKE_RADIUS), rng.uniform(0, 2 * np.pi), rng.uniform(0, 2 * np.pi)
        ky, kx = round(radius * np.sin(angle) * h / 2), round(radius * np.cos(angle) * w / 2)
        amplitude = stripe_percent / 100.0 * images[i].mean() * h * w
        spectrum[i, ky % h, kx % w] += amplitude * np.exp(1j * phase)
    return _magnitude(spectrum)


def gibbs(images: np.ndarray, kept_fraction: float, rngs, pixel_mm: float) -> np.ndarray:
    """Truncation of k-space with no apodisation window: a lower-resolution scan, ringing at edges.

    Both axes keep the central ``kept_fraction`` of their frequencies (the acquired resolution is
    ``pixel_mm / kept_fraction``), cut with a rectangular window; the phantom's acquisition chain does
    the cut (``kspace_truncate``).
    """
    n = len(images)
    fraction = np.full(n, kept_fraction)
    window = np.full(n, WINDOWS.index("none"))
    return np.abs(kspace_truncate(images.astype(np.float32), fraction, fraction, window, np.zeros(n)))


register(
    Corruption(
        "motion",
        "displacement",
        "mm",
        (2.0, 4.0, 6.0, 10.0, 15.0),
        "k-space",
        f"rigid in-plane shift (and {ROTATION_DEG_PER_MM:g} deg/mm rotation) for the phase-encode lines after a random onset",
        motion,
    )
)
register(
    Corruption(
        "ghosting",
        "ghost amplitude",
        "% of the image",
        (3.0, 6.0, 10.0, 15.0, 25.0),
        "k-space",
        "every 2nd-4th phase-encode line scaled, giving ghosts shifted along the phase-encode axis",
        ghosting,
    )
)
register(
    Corruption(
        "spike",
        "stripe amplitude",
        "% of mean intensity",
        (5.0, 10.0, 20.0, 40.0, 80.0),
        "k-space",
        "one outlier k-space sample at a random frequency (herringbone stripes)",
        spike,
    )
)
register(
    Corruption(
        "gibbs",
        "k-space kept",
        "fraction of Nyquist",
        (0.8, 0.65, 0.5, 0.4, 0.3),
        "k-space",
        "central k-space kept with a rectangular window (resolution pixel / fraction; ringing at edges)",
        gibbs,
    )
)
