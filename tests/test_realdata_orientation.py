"""Canonical in-plane orientation: from the geometry alone, whatever arrangement a file stores."""

import itertools
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from nibabel.orientations import apply_orientation, inv_ornt_aff
from test_realdata_nifti import SHAPE, cine, cine_labels

from unetgan_core.data.manifest import ManifestSource
from unetgan_core.data.mnms import MnmsSource
from unetgan_core.data.orientation import ARRANGEMENTS, canonical_arrangement
from unetgan_core.data.sunnybrook import SunnybrookSource
from unetgan_core.errors import DataError

SHARED = Path(os.environ.get("UNETGAN_SHARED", Path(__file__).resolve().parents[2] / "shared"))
SUNNYBROOK = SHARED / "data" / "sunnybrook"

# An oblique short-axis plane (one Sunnybrook patient's ImageOrientationPatient, LPS): rows go
# posterior-inferior, columns toward patient left-posterior.
ROW_LPS = np.array([-0.152, 0.414, -0.898])
COL_LPS = np.array([0.770, 0.618, 0.155])


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("UNETGAN_CACHE", str(tmp_path / "default-cache"))


def test_every_stored_arrangement_comes_out_the_same():
    row, col = ROW_LPS / np.linalg.norm(ROW_LPS), COL_LPS / np.linalg.norm(COL_LPS)
    image = np.arange(12.0).reshape(3, 4, 1)  # no symmetry: every arrangement is a different array
    reference = None
    for stored in ARRANGEMENTS:
        stored_image = stored.apply(image)
        stored_row, stored_col = stored.directions(row, col)
        change = canonical_arrangement(stored_row, stored_col)
        out = change.apply(stored_image)
        out_dirs = np.concatenate(change.directions(stored_row, stored_col))
        if reference is None:
            reference = (out, out_dirs)
        np.testing.assert_array_equal(out, reference[0])
        np.testing.assert_allclose(out_dirs, reference[1], atol=1e-12)
    # This plane is already canonical: columns toward patient left, rows toward posterior-inferior.
    np.testing.assert_array_equal(reference[0], image)


def test_axis_aligned_planes_and_bad_geometry():
    # Axial plane stored as NIfTI-default RAS (columns to the patient's right, rows anterior): both flipped.
    change = canonical_arrangement([0, -1, 0], [-1, 0, 0])
    assert change.flip_rows and change.flip_cols and not change.transpose
    assert canonical_arrangement([0, 0, -1], [1, 0, 0]) == ARRANGEMENTS[0]  # coronal: left across, down inferior
    with pytest.raises(DataError, match="f.nii: row and column directions .* are parallel"):
        canonical_arrangement([1, 0, 0], [2, 0, 0], "f.nii")
    with pytest.raises(DataError, match="f.nii: column direction .* is not a finite non-zero 3-vector"):
        canonical_arrangement([1, 0, 0], [0, np.nan, 0], "f.nii")


def _oblique_affine(zooms):
    """Voxel (x, y, slice) -> RAS mm: x along COL, y along ROW (converted from LPS), slices along their normal."""
    lps_to_ras = np.array([-1.0, -1.0, 1.0])
    col, row = COL_LPS * lps_to_ras, ROW_LPS * lps_to_ras
    normal = np.cross(col, row)
    axes = np.column_stack([v / np.linalg.norm(v) for v in (col, row, normal)])
    affine = np.eye(4)
    affine[:3, :3] = axes * np.asarray(zooms)
    affine[:3, 3] = [-40.0, 25.0, 60.0]
    return affine


def _volume_and_labels():
    """A 3D frame (x, y, slice) with an off-centre blood pool and myocardium, and a bright marker corner."""
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 50, size=(30, 44, 2)).astype(np.float32)
    labels = np.zeros(image.shape, np.int16)
    labels[6:18, 8:26] = 2
    labels[9:15, 11:22] = 1
    image[labels == 1] += 300
    image[labels == 2] += 120
    image[24:29, 36:42] += 500  # asymmetric: any wrong flip or transpose moves it
    return image, labels


def test_the_same_volume_with_rotated_flipped_and_permuted_affines_gives_identical_slices(tmp_path):
    image, labels = _volume_and_labels()
    zooms = (1.25, 1.75, 8.0)  # anisotropic in-plane voxels: a transpose must swap the spacings
    base = _oblique_affine(zooms)
    rows = ["image,label,subject,vendor"]
    # Every arrangement of the in-plane voxel axes (swap x and y, flip either), slices left alone.
    for k, (swap, flip_x, flip_y) in enumerate(itertools.product([False, True], repeat=3)):
        ornt = np.array([[1 if swap else 0, -1 if flip_x else 1], [0 if swap else 1, -1 if flip_y else 1], [2, 1]])
        affine = base @ inv_ornt_aff(ornt, image.shape)
        for name, data in (("img", image), ("lab", labels)):
            nib.save(nib.Nifti1Image(apply_orientation(data, ornt), affine), str(tmp_path / f"{name}{k}.nii.gz"))
        rows.append(f"img{k}.nii.gz,lab{k}.nii.gz,s{k},v")
        if k == 1:
            assert nib.aff2axcodes(affine) != nib.aff2axcodes(base)
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    source = ManifestSource(tmp_path / "m.csv", pixel_mm=1.5, size_px=48)
    out = [source.load("v", [f"s{k}"]) for k in range(8)]
    for other in out[1:]:
        np.testing.assert_array_equal(other.labels, out[0].labels)
        np.testing.assert_allclose(other.images, out[0].images, atol=1e-6)
    # The canonical result is the stored base arrangement (rows = y, columns = x): the oblique plane is canonical.
    assert (out[0].labels == 1).sum() > 0
    blood_rows, blood_cols = np.nonzero(out[0].labels[0] == 1)
    bright_rows, bright_cols = np.nonzero(out[0].images[0] > 0.9)
    assert bright_rows.mean() > blood_rows.mean() and bright_cols.mean() > blood_cols.mean()


needs_sunnybrook = pytest.mark.skipif(not SUNNYBROOK.is_dir(), reason=f"Sunnybrook data not found at {SUNNYBROOK}")


@needs_sunnybrook
def test_sunnybrook_patients_come_out_in_one_orientation(tmp_path):
    """Geometry: canonical row and column directions agree across patients. Anatomy: the right ventricle
    (bright blood beside the septum) lies left of the LV blood pool and the lateral wall (lung beyond it,
    dark) to its right, in every patient, including SCD0000101, whose DICOMs are stored transposed."""
    source = SunnybrookSource(SUNNYBROOK, pixel_mm=1.5, size_px=192, cache_dir=tmp_path)
    slices = source.load("ge", source.subjects("ge"))
    directions = []
    arrangements = set()
    for subject in source.subjects("ge"):
        first = sorted((SUNNYBROOK / "dicoms" / subject).glob("*.dcm"))[0]
        iop = np.array([float(v) for v in pydicom.dcmread(first, stop_before_pixels=True).ImageOrientationPatient])
        change = canonical_arrangement(iop[3:], iop[:3])
        arrangements.add(change)
        directions.append(np.concatenate(change.directions(iop[3:], iop[:3])))
    assert len(arrangements) == 2  # the stored orientations do differ
    for d in directions[1:]:
        # cos > 0.8 between canonical row directions and between column directions (< 37 degrees apart)
        assert d[:3] @ directions[0][:3] > 0.8 and d[3:] @ directions[0][3:] > 0.8
    offset, half = 20, 7  # pixels: 30 mm beside the blood-pool centre, 21 mm windows
    for subject in source.subjects("ge"):
        mine = (slices.subjects == subject) & (slices.labels == 1).any(axis=(1, 2))
        left, right = [], []
        for image, labels in zip(slices.images[mine], slices.labels[mine], strict=True):
            r, c = np.argwhere(labels == 1).mean(axis=0).round().astype(int)
            left.append(image[r - half : r + half, c - offset - half : c - offset + half].mean())
            right.append(image[r - half : r + half, c + offset - half : c + offset + half].mean())
        assert np.mean(left) > np.mean(right), subject


def test_mnms_subjects_stored_in_different_orientations_agree(tmp_path):
    """M&Ms layout, two centres: one writes the cine as (L, P, S) voxels, the other swapped and flipped in-plane."""
    image, labels = cine(0), cine_labels(SHAPE, (1, 3), raw_blood=1, raw_myo=2, raw_rv=3)
    base = np.diag([-2.0, -1.25, 8.0, 1.0])  # x toward patient left, y posterior: voxel codes L, P, S
    swap = np.array([[1, -1], [0, -1], [2, 1], [3, 1]])  # new x = old y reversed, new y = old x reversed
    rows = ["External code,VendorName,Vendor,Centre,ED,ES"]
    for code, ornt in (("A0AAAA", None), ("A1BBBB", swap)):
        folder = tmp_path / "Training" / "Labeled" / code
        folder.mkdir(parents=True)
        for suffix, data in (("sa", image), ("sa_gt", labels)):
            affine = base if ornt is None else base @ inv_ornt_aff(ornt[:3], data.shape[:3])
            stored = data if ornt is None else apply_orientation(data, ornt)
            nib.save(nib.Nifti1Image(stored, affine), str(folder / f"{code}_{suffix}.nii.gz"))
        rows.append(f"{code},Name,A,{len(rows)},1,3")
    (tmp_path / "info.csv").write_text("\n".join(rows) + "\n")
    axcodes = [nib.aff2axcodes(nib.load(str(p)).affine) for p in sorted(tmp_path.glob("Training/*/*/*_sa.nii.gz"))]
    assert axcodes[0] != axcodes[1]
    source = MnmsSource(tmp_path, pixel_mm=1.5, size_px=32)
    a, b = (source.load("siemens", [subject]) for subject in source.subjects("siemens"))
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_allclose(a.images, b.images, atol=1e-6)
    assert (a.labels == 1).any() and (a.labels == 2).any()
