"""The acquisition chain: SNR as defined, k-space truncation, shading, quantisation, styles."""

import numpy as np
import pytest

from unetgan_core.data.phantom import render_anatomy
from unetgan_core.data.phantom.acquisition import (
    acquire,
    add_rician_noise,
    coil_shading,
    kspace_truncate,
    transfer_and_quantise,
)
from unetgan_core.data.phantom.styles import style_from_dict


def _disk(n=128, radius_px=30):
    yy, xx = np.mgrid[:n, :n] - (n - 1) / 2
    return (np.hypot(xx, yy) < radius_px).astype(float)


@pytest.mark.parametrize("snr", [8.0, 20.0, 40.0])
def test_measured_snr_matches_the_requested_one(snr):
    """SNR = mean noiseless myocardium / sigma per channel; air gives sigma via Rayleigh."""
    myo = _disk()
    style = style_from_dict(
        "flat",
        {
            "base": "philips",
            "snr": snr,
            "coil_correction": 1,
            "phase_encode_fraction": 1,
            "readout_fraction": 1,
            "window": "none",
            "window_strength": 0,
            "gamma": 1,
            "bits": 16,
        },
    )
    signal = np.stack([0.1 * myo] * 4)
    params = [style.sample(np.random.default_rng(i)) for i in range(4)]
    raw = acquire(signal, np.stack([myo > 0] * 4), params, seeds=[1, 2, 3, 4], pixel_mm=1.5)
    air = raw[:, :, :20]  # columns far from the disk
    sigma = air.mean() / np.sqrt(np.pi / 2)  # Rayleigh mean of pure noise
    measured = raw[:, myo > 0].mean() / sigma
    assert measured == pytest.approx(snr, rel=0.08)


def test_rician_noise_statistics():
    rng = [np.random.default_rng(0)]
    zero = add_rician_noise(np.zeros((1, 200, 200)), np.array([2.0]), rng)
    assert zero.mean() == pytest.approx(2.0 * np.sqrt(np.pi / 2), rel=0.02)
    high = add_rician_noise(np.full((1, 200, 200), 100.0), np.array([2.0]), [np.random.default_rng(1)])
    assert high.std() == pytest.approx(2.0, rel=0.05)


def test_full_kspace_without_window_is_the_identity():
    x = np.random.default_rng(0).random((2, 32, 32))
    out = kspace_truncate(x, np.ones(2), np.ones(2), np.zeros(2, int), np.zeros(2))
    np.testing.assert_allclose(out, x, atol=1e-5)  # float32 FFT


def test_truncation_blurs_along_phase_encode_only_and_rings():
    edge = np.zeros((1, 64, 64))
    edge[:, 32:, :] = 1.0  # a horizontal edge: its profile runs along the phase-encode rows
    out = kspace_truncate(edge, np.array([0.5]), np.array([1.0]), np.zeros(1, int), np.zeros(1))
    profile = out[0, :, 10]
    assert profile.max() > 1.05  # Gibbs overshoot from the rectangular cut
    np.testing.assert_allclose(out[0, 10, :], out[0, 10, 0])  # no change along the readout
    hamming = kspace_truncate(edge, np.array([0.5]), np.array([1.0]), np.array([1]), np.array([1.0]))
    assert hamming[0, :, 10].max() < profile.max()  # the window damps the ringing


def test_coil_shading_is_one_at_the_centre_and_removed_by_full_correction():
    shade = coil_shading(65, 4.5, np.array([70.0, 70.0]), np.array([0.0, 1.0]), np.zeros((2, 2)))
    assert shade[0, 32, 32] == pytest.approx(1.0)
    assert shade[0, 2, 32] > 1.5  # bright near the anterior coil when uncorrected
    np.testing.assert_allclose(shade[1], 1.0)


def test_gamma_and_quantisation():
    m = np.array([[[0.0, 0.25, 1.0, 2.0]]])
    out = transfer_and_quantise(m, np.array([1.0]), np.array([0.5]), np.array([12]))
    np.testing.assert_array_equal(out[0, 0], [0.0, 2048.0, 4095.0, 4095.0])  # 0.25**0.5 * 4095 = 2047.5


def _blood_myo_contrast(style):
    s = render_anatomy(21, style, size_px=96, slices=3, phases=["ED"])
    return s.images[s.labels == 1].mean() / s.images[s.labels == 2].mean()


def test_styles_differ_in_the_intended_direction():
    philips, ge, siemens = (_blood_myo_contrast(s) for s in ("philips", "ge", "siemens"))
    assert siemens < ge and siemens < philips  # Siemens has the flattest blood-myocardium contrast
    assert abs(ge - philips) < abs(siemens - philips)  # GE is the milder shift


def test_siemens_is_noisier_than_philips_in_the_lungs():
    def lung_noise(style):
        s = render_anatomy(21, style, size_px=96, slices=2, phases=["ED"])
        return np.std(np.diff(s.images[:, 5:15, 40:56], axis=2))  # air/lung above the heart

    assert lung_noise("siemens") > 1.5 * lung_noise("philips")
