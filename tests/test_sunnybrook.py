"""Sunnybrook source: contour fill rules by hand, then the real GE data in shared/data/sunnybrook."""

import os
from pathlib import Path

import numpy as np
import pydicom
import pytest

from unetgan_bench.bench.cli import EXIT_OK, main
from unetgan_core.data.sources import DataSource, create_source
from unetgan_core.data.sunnybrook import (
    SunnybrookSource,
    contour_labels,
    enclosed_fraction,
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


def test_enclosed_fraction_of_nested_shifted_and_disjoint_contours():
    inner = np.array([[4.0, 4.0], [8.0, 4.0], [8.0, 8.0], [4.0, 8.0]])
    outer = np.array([[2.0, 2.0], [10.0, 2.0], [10.0, 10.0], [2.0, 10.0]])
    assert enclosed_fraction(inner, outer) == 1.0
    # The wall moved 2 px right: the blood pool's columns 4..5 fall outside (16 pixels, 8 outside).
    assert enclosed_fraction(inner, outer + [4.0, 0.0]) == 0.5
    assert enclosed_fraction(inner, outer + [20.0, 0.0]) == 0.0
    # Negative coordinates (contours past the image edge) work too.
    assert enclosed_fraction(inner - 30.0, outer - 30.0) == 1.0


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
def test_myocardium_only_where_a_consistent_epicardial_contour_exists(sunnybrook):
    source, slices = sunnybrook
    # 46 epicardial contours; SCD0000501's nine are copies of SCD0000101's that miss its heart.
    assert slices.myo_labelled.sum() == 46 - 9
    assert not slices.myo_labelled[slices.subjects == "SCD0000501"].any()
    has_myo = (slices.labels == 2).any(axis=(1, 2))
    np.testing.assert_array_equal(has_myo, slices.myo_labelled)
    [(subject, reason)] = source.unused_labels
    assert subject == "SCD0000501" and reason.startswith("9 epicardial contour(s) (files 59, 79,")


@needs_data
def test_copied_epicardial_contours_are_detected_by_enclosure():
    """The copies are byte-identical to SC-HF-I-1's; every other pair encloses all of its blood pool."""
    for original in ("SC-HF-I-1", "SC-HF-I-2", "SC-HF-I-4", "SC-HF-I-5", "SC-HF-I-6"):
        folder = ROOT / "contourfiles" / original
        for outer in sorted((folder / "o-contours").glob("*.txt")):
            inner = folder / "i-contours" / outer.name.replace("ocontour", "icontour")
            fraction = enclosed_fraction(read_contour(inner), read_contour(outer))
            if original == "SC-HF-I-6":
                assert outer.read_bytes() == (ROOT / "contourfiles/SC-HF-I-1/o-contours" / outer.name).read_bytes()
                assert fraction < 0.85, outer.name
            else:
                assert fraction >= 0.99, f"{original}/{outer.name}"


def test_an_epicardium_beside_the_blood_pool_is_listed_and_left_out(tmp_path):
    """A synthetic patient (one DICOM frame per phase): the ES epicardium misses the blood pool."""
    root = _tiny_sunnybrook(tmp_path, shift_es_epicardium=12.0)
    source = SunnybrookSource(root, pixel_mm=2.0, size_px=32, cache_dir=tmp_path / "cache")
    assert source.check_subject_files("SCD0000901") == 6
    slices = source.load("ge", ["SCD0000901"])
    assert slices.myo_labelled.tolist() == [True, False] and slices.phase.tolist() == ["ED", "ES"]
    assert (slices.labels[1] == 2).sum() == 0 and (slices.labels[1] == 1).sum() > 0
    [(subject, reason)] = source.unused_labels  # listed once, though checked twice
    assert subject == "SCD0000901" and "files 2" in reason and "myocardium left unlabelled" in reason
    clean = SunnybrookSource(_tiny_sunnybrook(tmp_path / "ok", 0.0), 2.0, 32, cache_dir=tmp_path / "cache")
    assert clean.load("ge", ["SCD0000901"]).myo_labelled.all() and clean.unused_labels == []


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


def _tiny_sunnybrook(tmp_path: Path, shift_es_epicardium: float) -> Path:
    """A one-patient Sunnybrook layout: files 1 (ED, larger pool) and 2 (ES), 48 x 48 px at 1.25 mm."""
    root = tmp_path / "sb"
    (root / "dicoms" / "SCD0000901").mkdir(parents=True)
    for kind in ("i", "o"):
        (root / "contourfiles" / "SC-HF-I-9" / f"{kind}-contours").mkdir(parents=True)
    (root / "link.csv").write_text("patient_id,original_id\nSCD0000901,SC-HF-I-9\n")
    angles = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    for n, radius, shift in ((1, 8.0, 0.0), (2, 6.0, shift_es_epicardium)):
        _write_dicom(root / "dicoms" / "SCD0000901" / f"{n}.dcm", n)
        for kind, r, dx in (("i", radius, 0.0), ("o", radius + 4.0, shift)):
            points = np.column_stack([24 + dx + r * np.cos(angles), 24 + r * np.sin(angles)])
            path = (
                root / "contourfiles" / "SC-HF-I-9" / f"{kind}-contours" / f"IM-0001-{n:04d}-{kind}contour-manual.txt"
            )
            np.savetxt(path, points, fmt="%.2f")
    return root


def _write_dicom(path: Path, number: int) -> None:
    meta = pydicom.dataset.FileMetaDataset()
    meta.MediaStorageSOPClassUID = pydicom.uid.MRImageStorage
    meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds = pydicom.dataset.FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Rows = ds.Columns = 48
    ds.PixelSpacing = [1.25, 1.25]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.CardiacNumberOfImages = 2
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = (np.arange(48 * 48, dtype=np.uint16) % 97 * number).tobytes()
    ds.save_as(path, enforce_file_format=True)


@needs_data
def test_validate_prints_the_labels_left_out(capsys):
    assert main(["validate", "sunnybrook", "--data-root", str(ROOT)]) == EXIT_OK
    assert "warning: labels left out for SCD0000501: 9 epicardial contour(s)" in capsys.readouterr().out
