"""The corruption registry (MRI-C): identity at severity 0, severity that grows in a measured property,
determinism by seed, real [0, 1] output, and one-line errors for bad input."""

from __future__ import annotations

import numpy as np
import pytest

from unetgan_core.corruptions import CORRUPTIONS, SEVERITIES, corrupt, severity_table
from unetgan_core.corruptions.image import bias_field_map, rician_noise, tissue_signal
from unetgan_core.corruptions.kspace import ghosting, spike
from unetgan_core.corruptions.table import image_rngs
from unetgan_core.data.normalise import normalise_images
from unetgan_core.errors import DataError, UserError

NAMES = CORRUPTIONS.names()
PIXEL_MM = 2.0
# Corruptions with no random draw: every seed gives the same image.
DETERMINISTIC = {"blur", "gibbs"}


def heart(n: int = 3, size: int = 48) -> np.ndarray:
    """A hand-made short-axis slice: bright blood-pool disc inside a darker myocardium ring, dark background."""
    y, x = np.mgrid[:size, :size] - (size - 1) / 2
    images = []
    for k in range(n):
        r = np.hypot(y - k, x + k)
        images.append(np.where(r < 8, 0.9, np.where(r < 12, 0.4, 0.05)))
    return normalise_images(np.asarray(images))  # as a SliceSet holds them


def mean_abs_change(name: str, severity: int, images: np.ndarray) -> float:
    return float(np.abs(corrupt(name, images, severity, seed=3, pixel_mm=PIXEL_MM) - images).mean())


def test_registry_has_the_issue_corruptions_with_five_levels():
    assert {"motion", "ghosting", "spike", "noise", "bias_field", "blur", "gibbs", "gamma"} <= set(NAMES)
    for row in severity_table():
        assert [f"severity {s}" in row for s in SEVERITIES] == [True] * 5
        assert row["parameter"] and row["simulation"]


@pytest.mark.parametrize("name", NAMES)
def test_severity_zero_is_the_identity(name):
    images = heart()
    out = corrupt(name, images, 0, seed=1, pixel_mm=PIXEL_MM)
    assert out.dtype == np.float32 and np.array_equal(out, images) and out is not images


@pytest.mark.parametrize("name", NAMES)
def test_output_is_real_finite_and_in_unit_range(name):
    images = heart()
    for severity in SEVERITIES:
        out = corrupt(name, images, severity, seed=1, pixel_mm=PIXEL_MM)
        assert out.dtype == np.float32 and out.shape == images.shape
        assert np.isfinite(out).all() and out.min() >= 0.0 and out.max() <= 1.0


@pytest.mark.parametrize("name", NAMES)
def test_change_grows_with_severity(name):
    """The same random draws at every severity: only the physical parameter grows, and so does the change."""
    images = heart()
    changes = [mean_abs_change(name, s, images) for s in (0, *SEVERITIES)]
    assert changes[0] == 0.0 and changes[-1] > 0.01
    assert all(b >= a - 1e-6 for a, b in zip(changes, changes[1:], strict=False)), changes


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_by_seed(name):
    images = heart()
    a = corrupt(name, images, 3, seed=7, pixel_mm=PIXEL_MM)
    assert np.array_equal(a, corrupt(name, images, 3, seed=7, pixel_mm=PIXEL_MM))
    other = corrupt(name, images, 3, seed=8, pixel_mm=PIXEL_MM)
    assert np.array_equal(a, other) == (name in DETERMINISTIC)


def test_an_image_does_not_depend_on_its_batch():
    images = heart(3)
    both = corrupt("motion", images, 4, seed=2, pixel_mm=PIXEL_MM)
    assert np.array_equal(corrupt("motion", images[:1], 4, seed=2, pixel_mm=PIXEL_MM)[0], both[0])


def test_noise_snr_falls_to_the_target():
    """At high SNR Rician noise is nearly Gaussian inside the tissue: the measured SNR matches the level."""
    images = heart(2, 96).astype(np.float64)
    tissue = images > np.median(images, axis=(1, 2), keepdims=True)
    measured = []
    for severity in (1, 2, 3):
        snr_db = CORRUPTIONS.get("noise").level(severity)
        noisy = rician_noise(images, snr_db, image_rngs(0, "noise", 2), PIXEL_MM)
        sigma = (noisy - images)[tissue].std()
        measured.append(20 * np.log10(tissue_signal(images).mean() / sigma))
        assert measured[-1] == pytest.approx(snr_db, abs=1.0)
    assert measured[0] > measured[1] > measured[2]


def test_ghost_energy_rises():
    """Ghosts land in the background, where the clean image is empty."""
    images = np.zeros((1, 64, 64))
    images[0, 24:40, 24:40] = 1.0
    background = images[0] == 0
    energy = [
        float(
            (
                ghosting(images, CORRUPTIONS.get("ghosting").level(s), image_rngs(0, "ghosting", 1), PIXEL_MM)[0][
                    background
                ]
                ** 2
            ).sum()
        )
        for s in SEVERITIES
    ]
    assert energy[0] > 0 and all(b > a for a, b in zip(energy, energy[1:], strict=False))


def test_spike_stripes_have_the_stated_amplitude():
    """A k-space sample A adds a plane wave of amplitude A / (H W): on a flat image the magnitude swings by it."""
    images = np.full((1, 64, 64), 0.5)
    out = spike(images, 20.0, image_rngs(0, "spike", 1), PIXEL_MM)
    assert out.max() == pytest.approx(0.5 * 1.2, abs=1e-3) and out.min() == pytest.approx(0.5 * 0.8, abs=1e-3)


def test_bias_field_ratio_is_the_level():
    field = bias_field_map((40, 40), 2.2, np.random.default_rng(0))
    assert field.max() / field.min() == pytest.approx(2.2)


def test_motion_displacement_is_in_mm():
    """The same displacement in mm moves half as many pixels at twice the pixel size: a smaller change."""
    images = heart()
    fine = np.abs(corrupt("motion", images, 5, seed=0, pixel_mm=1.0) - images).mean()
    coarse = np.abs(corrupt("motion", images, 5, seed=0, pixel_mm=4.0) - images).mean()
    assert fine > coarse


def test_bad_input_is_one_line():
    images = heart()
    with pytest.raises(UserError, match="unknown corruption 'rain'; known: bias_field"):
        corrupt("rain", images, 1, seed=0, pixel_mm=1.0)
    with pytest.raises(UserError, match="severity must be an integer 0-5, got 6"):
        corrupt("blur", images, 6, seed=0, pixel_mm=1.0)
    bad = images.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(DataError, match="expected finite images"):
        corrupt("blur", bad, 1, seed=0, pixel_mm=1.0)
    with pytest.raises(DataError, match="pixel size must be a positive number"):
        corrupt("blur", images, 1, seed=0, pixel_mm=0.0)
