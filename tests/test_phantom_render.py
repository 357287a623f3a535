"""The phantom's images and labels: shapes, determinism, physiology, partial volume."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unetgan_core.data.phantom import render_anatomy
from unetgan_core.data.phantom.anatomy import lv_radii, sample_anatomy, slice_positions
from unetgan_core.data.phantom.shapes import Ellipse, Polar, coverage
from unetgan_core.errors import UserError


def test_shapes_dtypes_and_label_values():
    s = render_anatomy(7, "philips", size_px=64, slices=3)
    assert s.images.shape == s.labels.shape == (6, 64, 64)
    assert s.images.dtype == np.float32 and s.labels.dtype == np.uint8
    assert set(np.unique(s.labels)) == {0, 1, 2}
    assert s.synthetic and s.pixel_mm == pytest.approx(4.5)
    assert list(s.phase[:2]) == ["ED", "ES"] and list(s.slice_index[::2]) == [0, 1, 2]
    assert (s.subjects == "anatomy-7").all()


def test_rv_label_only_when_asked():
    with_rv = render_anatomy(7, "ge", size_px=64, slices=2, include_rv=True)
    without = render_anatomy(7, "ge", size_px=64, slices=2)
    assert (with_rv.labels == 3).any()
    np.testing.assert_array_equal(np.where(with_rv.labels == 3, 0, with_rv.labels), without.labels)


def test_normalised_input_spans_zero_to_one():
    s = render_anatomy(3, "siemens", size_px=96, slices=2)
    assert s.images.min() == 0.0 and s.images.max() == 1.0


@settings(max_examples=3, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), size=st.sampled_from([64, 96]), style=st.sampled_from(["philips", "canon"]))
def test_same_seed_gives_identical_arrays(seed, size, style):
    a = render_anatomy(seed, style, size_px=size, slices=2, image_seed=5)
    b = render_anatomy(seed, style, size_px=size, slices=2, image_seed=5)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, b.labels)


def test_labels_depend_on_anatomy_not_style():
    ref = render_anatomy(11, "philips", size_px=96, slices=3)
    for style in ("siemens", "ge", "canon"):
        other = render_anatomy(11, style, size_px=96, slices=3, image_seed=9)
        np.testing.assert_array_equal(other.labels, ref.labels)
        assert not np.array_equal(other.images, ref.images)
    assert not np.array_equal(render_anatomy(12, "philips", size_px=96, slices=3).labels, ref.labels)


def test_smaller_sizes_keep_the_field_of_view():
    big = render_anatomy(4, "philips", size_px=192, slices=1, phases=["ED"])
    small = render_anatomy(4, "philips", size_px=64, slices=1, phases=["ED"])
    area_big = (big.labels[0] == 1).sum() * big.pixel_mm**2
    area_small = (small.labels[0] == 1).sum() * small.pixel_mm**2
    assert area_small == pytest.approx(area_big, rel=0.15)


def test_lv_grows_from_apex_to_base():
    anat = sample_anatomy(5)
    endo = [lv_radii(anat, float(u), "ED")[0] for u in slice_positions(6)]
    assert all(a < b for a, b in zip(endo, endo[1:], strict=False))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_myocardial_area_conserved_and_ef_in_range(seed):
    anat = sample_anatomy(seed)
    assert 0.45 <= anat.ejection_fraction <= 0.70
    s = render_anatomy(seed, "philips", size_px=192, slices=4)
    ed, es = s.phase == "ED", s.phase == "ES"
    myo_ed, myo_es = (s.labels[ed] == 2).sum(axis=(1, 2)), (s.labels[es] == 2).sum(axis=(1, 2))
    np.testing.assert_allclose(myo_es, myo_ed, rtol=0.12)
    # EF from the annotated blood pool (papillary muscles included, as annotators do).
    blood_ed, blood_es = (s.labels[ed] == 1).sum(), (s.labels[es] == 1).sum()
    assert 1 - blood_es / blood_ed == pytest.approx(anat.ejection_fraction, abs=0.06)
    # The wall thickens at end-systole (same area on a smaller circumference).
    endo_ed, epi_ed = lv_radii(anat, 0.5, "ED")
    endo_es, epi_es = lv_radii(anat, 0.5, "ES")
    assert epi_es - endo_es > 1.2 * (epi_ed - endo_ed)


def test_basal_slice_opens_an_outflow_gap_in_the_myocardium():
    s = render_anatomy(8, "philips", size_px=192, slices=6, phases=["ED"])
    # The annotated ring is closed mid-ventricle; at the base blood reaches the epicardium.
    anat = sample_anatomy(8)
    mid, base = s.labels[2], s.labels[5]
    coords = (np.arange(192) - 95.5) * 1.5
    ox, oy = anat.lv_offset
    angle = anat.outflow[0] + anat.rotation
    _, epi = lv_radii(anat, float(slice_positions(6)[5]), "ED")
    px = ox + (epi - 2.0) * np.cos(angle)
    py = oy + (epi - 2.0) * np.sin(angle)
    col, row = np.argmin(abs(coords - px)), np.argmin(abs(coords - py))
    assert base[row, col] == 1
    assert (mid == 2).sum() > 0


def test_bad_geometry_and_phase_are_user_errors():
    with pytest.raises(UserError, match="size_px"):
        render_anatomy(1, "philips", size_px=8)
    with pytest.raises(UserError, match="phases"):
        render_anatomy(1, "philips", size_px=64, phases=["MID"])
    with pytest.raises(UserError, match="slices"):
        render_anatomy(1, "philips", size_px=64, slices=0)


@pytest.mark.parametrize(
    "shape",
    [Ellipse(1.3, -2.2, 9.0, 5.0, 0.4), Polar(0.7, 0.2, np.full(360, 8.0)), Ellipse(0.0, 0.0, 3.0, 3.0)],
)
def test_partial_volume_matches_brute_force_supersampling(shape):
    pixel = 1.5
    coords = (np.arange(24) - 11.5) * pixel
    analytic = coverage(shape, coords[None, :], coords[:, None], pixel)
    k = 16  # 16 x 16 subsamples per pixel
    fine = (np.arange(24 * k) - (24 * k - 1) / 2) * pixel / k
    inside = shape.distance(fine[None, :], fine[:, None]) < 0
    supersampled = inside.reshape(24, k, 24, k).mean(axis=(1, 3))
    assert np.abs(analytic - supersampled).max() < 0.12
    # The linear ramp adds about pixel^2 / (12 R^2) to a disk's area: 2.1% for the 3 mm disk.
    assert analytic.sum() == pytest.approx(supersampled.sum(), rel=0.025)
