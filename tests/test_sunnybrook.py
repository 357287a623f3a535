"""Sunnybrook source: contour fill rules by hand, then the real GE data in shared/data/sunnybrook."""

import os
from pathlib import Path

import numpy as np
import pydicom
import pytest

from unetgan_core.data.sources import DataSource, create_source
from unetgan_core.data.sunnybrook import (
    SunnybrookSource,
    contour_labels,
    fill_contour,
    polygon_area,
    read_contour,
)
from unetgan_core.errors import DataError

SHARED = Path(os.environ.get("UNETGAN_SHARED", Path(__file__).resolve().parents[2] / "shared"))
ROOT = SHARED / "data" / "sunnybrook"
needs_data = pytest.mark.skipif(not ROOT.is_dir(), reason=f"Sunnybrook data not found at {ROOT}")


def test_square_fill_counts_each_boundary_pixel_once():
    # Vertices on pixel centres: centres on the left/top edges are inside, right/bottom outside,
    # so a 10 x 10 square covers exactly 100 pixels, its shoelace area.
    square = np.array([[2.0, 3.0], [12.0, 3.0], [12.0, 13.0], [2.0, 13.0]])
    mask = fill_contour(square, (20, 20))
    assert mask.sum() == 100 == polygon_area(square)
    assert mask[3, 2] and not mask[13, 12] and not mask[2, 2]


def test_fill_clips_to_the_image_and_ring_labels():
    outer = np.array([[-5.0, -5.0], [5.0, -5.0], [5.0, 5.0], [-5.0, 5.0]])
    assert fill_contour(outer, (8, 8)).sum() == 25  # rows and columns 0..4
    inner = np.array([[1.0, 1.0], [3.0, 1.0], [3.0, 3.0], [1.0, 3.0]])
    labels = contour_labels(inner, outer, (8, 8))
    assert (labels == 1).sum() == 4 and (labels == 2).sum() == 21
    assert (contour_labels(inner, None, (8, 8)) == 2).sum() == 0


def test_bad_contour_file(tmp_path):
    path = tmp_path / "IM-0001-0001-icontour-manual.txt"
    path.write_text("1.0 2.0\n3.0 4.0\n")
    with pytest.raises(DataError, match="IM-0001-0001-icontour-manual.txt: a contour needs at least 3"):
        read_contour(path)
    path.write_text("1.0 2.0\nabc def\n3.0 4.0\n")
    with pytest.raises(DataError, match="not a contour file"):
        read_contour(path)


def test_missing_link_names_the_layout(tmp_path):
    with pytest.raises(DataError, match=r"link.csv is missing; expected <root>/link.csv"):
        SunnybrookSource(tmp_path)


@needs_data
def test_every_contour_fill_matches_its_polygon_area():
    files = sorted(ROOT.glob("contourfiles/*/*-contours/*.txt"))
    assert len(files) == 96 + 46
    for path in files:
        points = read_contour(path)
        area = polygon_area(points)
        assert fill_contour(points, (256, 256)).sum() == pytest.approx(area, rel=0.03), path.name


@pytest.fixture(scope="module")
def sunnybrook(tmp_path_factory):
    if not ROOT.is_dir():
        pytest.skip(f"Sunnybrook data not found at {ROOT}")
    source = create_source("sunnybrook", root=ROOT, cache_dir=tmp_path_factory.mktemp("cache"))
    return source, source.load("ge", source.subjects("ge"))


@needs_data
def test_sunnybrook_slices_and_tags(sunnybrook):
    source, slices = sunnybrook
    assert isinstance(source, DataSource) and source.vendors() == ["ge"] and source.synthetic is False
    assert source.subjects("ge") == ["SCD0000101", "SCD0000201", "SCD0000301", "SCD0000401", "SCD0000501"]
    assert slices.images.shape == (96, 192, 192) and slices.pixel_mm == 1.5
    assert slices.images.min() >= 0 and slices.images.max() <= 1
    assert set(np.unique(slices.labels)) == {0, 1, 2}
    assert slices.labelled.all()
    # Every patient contributes one ED and one ES slice per contoured stack position.
    for subject in source.subjects("ge"):
        mine = slices.subjects == subject
        ed = sorted(slices.slice_index[mine & (slices.phase == "ED")])
        es = sorted(slices.slice_index[mine & (slices.phase == "ES")])
        assert ed == es and len(ed) >= 9


@needs_data
def test_myocardium_only_where_an_epicardial_contour_exists(sunnybrook):
    source, slices = sunnybrook
    assert slices.myo_labelled.sum() == 46
    has_myo = (slices.labels == 2).any(axis=(1, 2))
    np.testing.assert_array_equal(has_myo, slices.myo_labelled)


@needs_data
def test_blood_pool_area_after_resampling_matches_the_contours(sunnybrook):
    source, slices = sunnybrook
    for subject in source.subjects("ge"):
        link = dict(line.split(",") for line in (ROOT / "link.csv").read_text().split()[1:])
        contour_mm2 = 0.0
        for path in sorted((ROOT / "contourfiles" / link[subject] / "i-contours").glob("*.txt")):
            number = int(path.name.split("-")[2])
            spacing = pydicom.dcmread(ROOT / "dicoms" / subject / f"{number}.dcm", stop_before_pixels=True).PixelSpacing
            contour_mm2 += polygon_area(read_contour(path)) * float(spacing[0]) * float(spacing[1])
        label_mm2 = (slices.labels[slices.subjects == subject] == 1).sum() * slices.pixel_mm**2
        assert label_mm2 == pytest.approx(contour_mm2, rel=0.03), subject


@needs_data
def test_end_diastole_has_the_larger_blood_pool(sunnybrook):
    source, slices = sunnybrook
    for subject in source.subjects("ge"):
        mine = slices.subjects == subject
        ed = (slices.labels[mine & (slices.phase == "ED")] == 1).sum()
        es = (slices.labels[mine & (slices.phase == "ES")] == 1).sum()
        assert ed > es, subject


@needs_data
def test_phase_option_and_cache(tmp_path):
    source = SunnybrookSource(ROOT, size_px=64, pixel_mm=4.5, phases=("ES",), cache_dir=tmp_path)
    first = source.load("ge", ["SCD0000201"])
    assert set(first.phase) == {"ES"} and first.images.shape == (9, 64, 64)
    again = SunnybrookSource(ROOT, size_px=64, pixel_mm=4.5, phases=("ES",), cache_dir=tmp_path).load(
        "ge", ["SCD0000201"]
    )
    np.testing.assert_array_equal(first.images, again.images)
    assert len(list((tmp_path / "sunnybrook").glob("*.npz"))) == 1
