"""The shared preprocessing of real data: grid alignment, crop/pad, label maps, options."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unetgan_core.data.preprocess import (
    Frame,
    PreprocessOptions,
    frames_to_sliceset,
    map_labels,
    parse_label_map,
    resample_crop,
)
from unetgan_core.errors import DataError, UserError


def test_same_spacing_is_an_exact_centre_crop():
    image = np.arange(256 * 256, dtype=np.float64).reshape(256, 256)
    out = resample_crop(image, (1.5, 1.5), pixel_mm=1.5, size_px=192, order=1)
    # 256 -> 192 around the centre drops 32 pixels on each side, with no interpolation.
    np.testing.assert_array_equal(out, image[32:224, 32:224])


def test_same_spacing_pads_with_zeros_around_the_centre():
    image = np.ones((4, 6))
    out = resample_crop(image, (2.0, 2.0), pixel_mm=2.0, size_px=8, order=0)
    expected = np.zeros((8, 8))
    expected[2:6, 1:7] = 1.0
    np.testing.assert_array_equal(out, expected)


def test_anisotropic_spacing_keeps_physical_size():
    # A 30 mm x 30 mm square drawn on 2 mm rows and 1 mm columns (15 x 30 pixels).
    labels = np.zeros((40, 80))
    labels[12:27, 25:55] = 1
    out = resample_crop(labels, (2.0, 1.0), pixel_mm=1.5, size_px=64, order=0)
    rows, cols = np.nonzero(out)
    assert rows.max() - rows.min() + 1 == pytest.approx(20, abs=1)
    assert cols.max() - cols.min() + 1 == pytest.approx(20, abs=1)
    assert out.sum() * 1.5**2 == pytest.approx(900, rel=0.1)


def test_nearest_keeps_label_values_and_linear_stays_in_range():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=(50, 70)).astype(float)
    out = resample_crop(labels, (1.3, 0.9), pixel_mm=1.5, size_px=48, order=0)
    assert set(np.unique(out)) <= {0.0, 1.0, 2.0}
    image = rng.uniform(10, 20, size=(50, 70))
    smooth = resample_crop(image, (1.3, 0.9), pixel_mm=1.5, size_px=48, order=1)
    inside = smooth[smooth > 0]
    assert inside.min() >= 10 and inside.max() <= 20


@settings(max_examples=25, deadline=None)
@given(
    h=st.integers(4, 40),
    w=st.integers(4, 40),
    dy=st.floats(0.5, 3.0),
    dx=st.floats(0.5, 3.0),
    size=st.integers(8, 48),
)
def test_grid_centre_maps_to_image_centre(h, w, dy, dx, size):
    # A constant image resamples to the constant wherever the output lies inside the input.
    out = resample_crop(np.full((h, w), 7.0), (dy, dx), pixel_mm=1.5, size_px=size, order=1)
    assert out.shape == (size, size)
    assert np.all(np.isclose(out, 0.0) | np.isclose(out, 7.0))
    # The output is symmetric about its centre because the grids share their centre.
    np.testing.assert_allclose(out, out[::-1, ::-1])


def test_parse_label_map_and_map_labels():
    mapping = parse_label_map("1:1, 2:2, 3:0", "test")
    assert mapping == {0: 0, 1: 1, 2: 2, 3: 0}
    raw = np.array([[0, 1], [2, 3]])
    np.testing.assert_array_equal(map_labels(raw, mapping, "x"), [[0, 1], [2, 0]])
    acdc_like = parse_label_map("1:0,2:2,3:1", "test")
    np.testing.assert_array_equal(map_labels(raw, acdc_like, "x"), [[0, 0], [2, 1]])


@pytest.mark.parametrize("text", ["1-1", "1:x", "1:3"])
def test_bad_label_map_is_a_data_error(text):
    with pytest.raises(DataError, match="manifest.csv line 2"):
        parse_label_map(text, "manifest.csv line 2")


def test_label_outside_map_and_non_integer_labels_are_data_errors():
    with pytest.raises(DataError, match=r"gt.nii.gz: label values \[5\]"):
        map_labels(np.array([0, 1, 5]), {0: 0, 1: 1}, "gt.nii.gz")
    with pytest.raises(DataError, match="non-integer"):
        map_labels(np.array([0.0, 1.5]), {0: 0, 1: 1}, "gt.nii.gz")
    with pytest.raises(DataError, match="NaN"):
        map_labels(np.array([0.0, np.nan]), {0: 0}, "gt.nii.gz")


@pytest.mark.parametrize(
    "kwargs",
    [{"pixel_mm": 0}, {"pixel_mm": float("nan")}, {"size_px": 4}, {"size_px": 19.5}, {"phases": ("ED", "MID")}],
)
def test_bad_options_are_user_errors(kwargs):
    with pytest.raises(UserError):
        PreprocessOptions(**kwargs)


def test_frames_to_sliceset_tags_and_keeps_empty_slices():
    image = np.random.default_rng(1).uniform(0, 100, size=(20, 20, 3)).astype(np.float32)
    labels = np.zeros((20, 20, 3), np.uint8)
    labels[5:10, 5:10, 1] = 1  # slices 0 and 2 are empty but annotated
    options = PreprocessOptions(pixel_mm=1.0, size_px=16)
    frames = [
        Frame(image=image, labels=labels, spacing_mm=(1.0, 1.0), phase="ED"),
        Frame(image=image, labels=None, spacing_mm=(1.0, 1.0), phase="ES"),
    ]
    out = frames_to_sliceset(frames, "s1", "philips", options, "here")
    assert out.images.shape == (6, 16, 16) and out.images.dtype == np.float32
    assert out.images.min() >= 0 and out.images.max() <= 1
    assert out.labelled.tolist() == [True, True, True, False, False, False]
    assert out.myo_labelled.tolist() == [True, True, True, False, False, False]
    assert out.phase.tolist() == ["ED"] * 3 + ["ES"] * 3
    assert out.slice_index.tolist() == [0, 1, 2, 0, 1, 2]
    assert (out.labels[1] == 1).sum() == 25 and out.labels[0].sum() == 0


def test_shape_mismatch_and_non_finite_frames_are_data_errors():
    options = PreprocessOptions(pixel_mm=1.0, size_px=16)
    image = np.zeros((20, 20, 2), np.float32)
    with pytest.raises(DataError, match="subj.nii.gz: image shape"):
        bad = Frame(image=image, labels=np.zeros((20, 18, 2), np.uint8), spacing_mm=(1.0, 1.0), phase="ED")
        frames_to_sliceset([bad], "s", "v", options, "subj.nii.gz")
    image[3, 3, 1] = np.inf
    with pytest.raises(DataError, match="subj.nii.gz: 1 non-finite"):
        frames_to_sliceset([Frame(image, None, (1.0, 1.0), "ED")], "s", "v", options, "subj.nii.gz")
