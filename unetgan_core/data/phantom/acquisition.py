"""The simulated acquisition chain, applied to a batch of noiseless signal maps.

Order, per image: surface-coil shading with partial intensity correction -> k-space
truncation with an apodisation window (blur, Gibbs ringing) -> complex Gaussian noise
(Rician magnitude) -> vendor intensity transfer curve -> integer quantisation (``transfer.py``). Images are
float32 numpy (scipy's pocketfft for the FFT), batched over images, with each image's
randomness drawn from its own seed so a result does not depend on the batch it came in.
Transcendental functions (whose last bit may differ between CPUs' vector libraries) run
in float64 before the 12-bit rounding, so such differences practically never show.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

from unetgan_core.data.phantom.styles import WINDOWS
from unetgan_core.data.phantom.transfer import transfer_and_quantise

# Coil elements (x, y in mm, image frame) over the anterior chest and under the back.
_COILS_MM = ((0.0, -135.0), (0.0, 140.0))
_COIL_JITTER_MM = 40.0  # random lateral placement of each coil element
_SHADING_STEP_MM = 8.0  # grid spacing on which the smooth coil field is evaluated
# Full scale of the stored integers, in units of the image's mean myocardium signal: bright
# blood (2-5x) fits, fat near an uncorrected coil saturates as on a narrow display window.
FULL_SCALE_OVER_MYO = 6.0


def _interpolation(coarse_mm: np.ndarray, fine_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices and weights of linear interpolation from a coarse to a fine 1D grid."""
    i0 = np.clip(np.searchsorted(coarse_mm, fine_mm, side="right") - 1, 0, len(coarse_mm) - 2)
    w1 = (fine_mm - coarse_mm[i0]) / (coarse_mm[i0 + 1] - coarse_mm[i0])
    return i0, 1.0 - w1, w1


def coil_shading(
    size_px: int, pixel_mm: float, distance_mm: np.ndarray, correction: np.ndarray, lateral_mm: np.ndarray
) -> np.ndarray:
    """Residual receive-coil shading after a partial intensity correction.

    Each coil element's sensitivity falls off as ``(1 + (r / D)^2)^-1.5`` (a loop coil on
    its axis); elements combine as root-sum-of-squares, normalised to 1 at the image centre.
    A correction with exponent p divides by ``c**p``, so the image keeps ``c**(1 - p)``. The
    field is smooth on the scale of D (>= 10 mm), so it is evaluated every ``_SHADING_STEP_MM``
    and linearly interpolated to the pixels.

    Args:
        size_px: image side in pixels.
        pixel_mm: pixel size in mm.
        distance_mm: ``[B]`` fall-off distance D in mm.
        correction: ``[B]`` exponent p in [0, 1].
        lateral_mm: ``[B, n_coils]`` lateral offsets of the coil elements in mm.

    Returns:
        float32 ``[B, H, W]`` multiplicative shading (1 at the centre).
    """
    half = (size_px - 1) / 2.0 * pixel_mm
    n_coarse = max(int(np.ceil(2 * half / _SHADING_STEP_MM)) + 1, 2)
    coarse = np.linspace(-half, half, n_coarse)
    x, y = coarse[None, None, :], coarse[None, :, None]
    inv_d2 = 1.0 / (np.asarray(distance_mm, dtype=np.float64) ** 2)[:, None, None]
    total = np.zeros((len(inv_d2), n_coarse, n_coarse))
    centre = np.zeros((len(inv_d2), 1, 1))
    for j, (cx, cy) in enumerate(_COILS_MM):
        lx = cx + np.asarray(lateral_mm, dtype=np.float64)[:, j][:, None, None]
        t = 1.0 + ((x - lx) ** 2 + (y - cy) ** 2) * inv_d2
        total += 1.0 / (t * t * t)  # squared sensitivity, for the root-sum-of-squares
        tc = 1.0 + (lx**2 + cy**2) * inv_d2
        centre += 1.0 / (tc * tc * tc)
    exponent = (0.5 * (1.0 - np.asarray(correction, dtype=np.float64)))[:, None, None]
    shading = (total / centre) ** exponent  # (sqrt(total / centre)) ** (1 - p)
    fine = (np.arange(size_px) - (size_px - 1) / 2.0) * pixel_mm
    i0, w0, w1 = _interpolation(coarse, fine)
    rows = (shading[:, i0, :] * w0[None, :, None] + shading[:, i0 + 1, :] * w1[None, :, None]).astype(np.float32)
    # np.take keeps the output C-contiguous (fancy indexing on the last axis returned Fortran order,
    # which made every later step on the batch, the FFT included, several times slower).
    out = np.take(rows, i0, axis=2)
    out *= w0.astype(np.float32)
    right = np.take(rows, i0 + 1, axis=2)
    right *= w1.astype(np.float32)
    out += right
    return out


def _window(k: np.ndarray, fraction: np.ndarray, kind: np.ndarray, strength: np.ndarray) -> np.ndarray:
    """1D k-space weights ``[B, n]``: 0 outside the kept fraction, the window inside.

    ``k`` is the normalised frequency (|k| = 1 at Nyquist). With t = |k| / fraction:
    hamming: ``1 - s (1 - (0.54 + 0.46 cos(pi t)))``; gaussian: ``exp(-2.5 s t^2)``; none: 1.
    """
    t = np.abs(k)[None, :] / np.asarray(fraction, dtype=np.float64)[:, None]
    s = np.asarray(strength, dtype=np.float64)[:, None]
    hamming = 1.0 - s * (1.0 - (0.54 + 0.46 * np.cos(np.pi * np.minimum(t, 1.0))))
    gaussian = np.exp(-2.5 * s * t * t)
    kind = np.asarray(kind)[:, None]
    w = np.where(kind == WINDOWS.index("hamming"), hamming, np.where(kind == WINDOWS.index("gaussian"), gaussian, 1.0))
    return np.where(t <= 1.0, w, 0.0)


def kspace_truncate(
    images: np.ndarray,
    phase_fraction: np.ndarray,
    readout_fraction: np.ndarray,
    window: np.ndarray,
    strength: np.ndarray,
) -> np.ndarray:
    """Keep the central part of k-space, apodised, as a lower-resolution scan would.

    Args:
        images: ``[B, H, W]`` real signal maps.
        phase_fraction: ``[B]`` fraction of the rows' frequencies kept (phase encode, vertical).
        readout_fraction: ``[B]`` fraction of the columns' frequencies kept (readout, horizontal).
        window: ``[B]`` int index into ``WINDOWS``.
        strength: ``[B]`` window strength in [0, 1].

    Returns:
        float32 ``[B, H, W]``, blurred and ringing where the fraction or window cut k-space.
    """
    _, h, w = images.shape
    spectrum = scipy.fft.rfft2(np.asarray(images, dtype=np.float32), axes=(-2, -1))
    wy = _window(scipy.fft.fftfreq(h) * 2.0, phase_fraction, window, strength)
    wx = _window(scipy.fft.rfftfreq(w) * 2.0, readout_fraction, window, strength)
    spectrum *= (wy[:, :, None] * wx[:, None, :]).astype(np.float32)
    return scipy.fft.irfft2(spectrum, s=(h, w), axes=(-2, -1))


def add_rician_noise(images: np.ndarray, sigma: np.ndarray, rngs: list[np.random.Generator]) -> np.ndarray:
    """Magnitude of the image plus complex white Gaussian noise (Rician statistics).

    Args:
        images: ``[B, H, W]`` noiseless real signal.
        sigma: ``[B]`` noise standard deviation of each of the real and imaginary channels,
            in the units of ``images``.
        rngs: one generator per image.
    """
    out = np.empty(images.shape, dtype=np.float32)
    for i, rng in enumerate(rngs):
        noise = rng.standard_normal((2, *images.shape[1:]), dtype=np.float32)
        noise *= np.float32(sigma[i])
        noise[0] += images[i]
        np.square(noise, out=noise)
        np.add(noise[0], noise[1], out=noise[0])  # in place: no temporary per image
        np.sqrt(noise[0], out=out[i])
    return out


def myocardium_mean(noiseless: np.ndarray, myo_mask: np.ndarray) -> np.ndarray:
    """Mean signal over the myocardium label per image (the image mean where there is none).

    Args:
        noiseless: ``[B, H, W]`` signal after shading and k-space filtering.
        myo_mask: bool ``[B, H, W]``.
    """
    sums = np.where(myo_mask, noiseless, 0.0).sum(axis=(1, 2), dtype=np.float64)
    counts = myo_mask.sum(axis=(1, 2))
    return np.abs(np.where(counts > 0, sums / np.maximum(counts, 1), noiseless.mean(axis=(1, 2), dtype=np.float64)))


def acquire(
    signal: np.ndarray, myo_mask: np.ndarray, params: list[dict], seeds: list[int], pixel_mm: float
) -> np.ndarray:
    """Run the whole chain on a batch.

    Args:
        signal: ``[B, H, W]`` noiseless partial-volume signal maps (arbitrary units).
        myo_mask: bool ``[B, H, W]`` myocardium label, where SNR is measured.
        params: per image, a style sample (``VendorStyle.sample``).
        seeds: per image, the seed of its coil placement and noise.
        pixel_mm: pixel size in mm.

    Returns:
        float32 ``[B, H, W]`` stored integer intensities (before network normalisation).
    """

    def column(key: str) -> np.ndarray:
        return np.array([p[key] for p in params])

    rngs = [np.random.default_rng(s) for s in seeds]
    lateral = np.array([rng.uniform(-_COIL_JITTER_MM, _COIL_JITTER_MM, len(_COILS_MM)) for rng in rngs])
    shaded = coil_shading(signal.shape[-1], pixel_mm, column("coil_distance_mm"), column("coil_correction"), lateral)
    shaded *= signal  # in place on the fresh shading array (a product is the same either way round)
    window = np.array([WINDOWS.index(p["window"]) for p in params])
    filtered = kspace_truncate(
        shaded, column("phase_encode_fraction"), column("readout_fraction"), window, column("window_strength")
    )
    # SNR := mean noiseless myocardium magnitude (after shading and filtering) / sigma of
    # the noise in each of the real and imaginary channels.
    myo = myocardium_mean(filtered, myo_mask)
    magnitude = add_rician_noise(filtered, myo / column("snr"), rngs)
    return transfer_and_quantise(magnitude, FULL_SCALE_OVER_MYO * myo, column("gamma"), column("bits"))
