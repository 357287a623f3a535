"""M&Ms, ACDC and manifest sources on small trees with real NIfTI headers built in tmp_path."""

import gzip
import os
import shutil

import nibabel as nib
import numpy as np
import pytest

from unetgan_core.data.acdc import AcdcSource
from unetgan_core.data.manifest import ManifestSource
from unetgan_core.data.mnms import MnmsSource
from unetgan_core.data.normalise import normalise_images
from unetgan_core.data.preprocess import PreprocessOptions, resample_crop
from unetgan_core.data.sources import DataSource, create_source
from unetgan_core.data.splits import split_subjects
from unetgan_core.errors import DataError, UserError

# Anisotropic in-plane voxels: 2.0 mm along NIfTI x, 1.25 mm along y; 8 mm slices, 4D cine.
ZOOMS = (2.0, 1.25, 8.0, 30.0)
SHAPE = (24, 40, 3, 5)  # x, y, slice, time
SMALL = {"pixel_mm": 1.5, "size_px": 32}


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Sources cache by default; keep each test's cache in its own folder."""
    monkeypatch.setenv("UNETGAN_CACHE", str(tmp_path / "default-cache"))


def save_nifti(path, data, zooms=ZOOMS, affine=None):
    """Save with ``affine``; by default x toward patient left and y toward posterior (RAS signs -, -, +):
    the canonical in-plane arrangement, so the loaders return rows = NIfTI y and columns = x unchanged."""
    if affine is None:
        affine = np.diag([-zooms[0], -zooms[1], zooms[2], 1.0])
    img = nib.Nifti1Image(np.asarray(data), affine)
    img.header.set_zooms(zooms[: np.asarray(data).ndim])
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))


def cine(seed, shape=SHAPE):
    """A 4D image whose frame t holds a bright block whose height grows with t (so frames differ)."""
    rng = np.random.default_rng(seed)
    image = rng.uniform(0, 50, size=shape).astype(np.float32)
    for t in range(shape[3]):
        image[6:18, 10 : 14 + 3 * t, :, t] += 400
    return image


def cine_labels(shape, frames, raw_blood, raw_myo, raw_rv):
    """Labels at the given frames: blood pool 6 x 16 voxels (12 x 20 mm), a myocardium rim, an RV patch.

    The ED frame (first) gets the full blood pool, ES (second) half of it along y.
    """
    labels = np.zeros(shape, np.int16)
    for k, t in enumerate(frames):
        labels[8:16, 10:30, :, t] = raw_myo
        labels[9:15, 12 : 28 - 8 * k, :, t] = raw_blood
        labels[0:4, 0:8, :, t] = raw_rv
    labels[:, :, 0, :] = 0  # the first slice of every frame is annotated but empty
    return labels


def make_mnms(root, cases):
    """cases: (folder, code, vendor letter, centre, ED, ES)."""
    rows = ["External code,VendorName,Vendor,Centre,ED,ES"]
    for i, (folder, code, vendor, centre, ed, es) in enumerate(cases):
        rows.append(f"{code},Name,{vendor},{centre},{ed},{es}")
        save_nifti(root / folder / code / f"{code}_sa.nii.gz", cine(i))
        if folder != "Training/Unlabeled":
            gt = cine_labels(SHAPE, (ed, es), raw_blood=1, raw_myo=2, raw_rv=3)
            save_nifti(root / folder / code / f"{code}_sa_gt.nii.gz", gt)
    (root / "info.csv").write_text("\n".join(rows) + "\n")
    return root


MNMS_CASES = [
    ("Training/Labeled", "A0S9V9", "A", 1, 1, 3),
    ("Training/Labeled", "B1C2D3", "B", 2, 0, 2),
    ("Training/Labeled", "B4E5F6", "B", 3, 2, 4),
    ("Training/Unlabeled", "C7G8H9", "C", 4, 1, 3),
    ("Validation", "D0J1K2", "D", 5, 1, 3),
    ("Testing", "A3L4M5", "A", 1, 0, 4),
]


@pytest.fixture
def mnms_root(tmp_path):
    return make_mnms(tmp_path / "mnms", MNMS_CASES)


def test_mnms_vendors_subjects_and_registration(mnms_root):
    src = create_source("mnms", root=mnms_root, **SMALL)
    assert isinstance(src, DataSource) and src.synthetic is False
    assert src.vendors() == ["canon", "ge", "philips", "siemens"]
    assert src.subjects("siemens") == ["c1-A0S9V9", "c1-A3L4M5"]
    assert src.subjects("philips") == ["c2-B1C2D3", "c3-B4E5F6"]
    assert src.centre("c3-B4E5F6") == "3"


def test_mnms_shapes_spacing_labels_and_phases(mnms_root):
    src = MnmsSource(mnms_root, **SMALL)
    out = src.load("siemens", ["c1-A0S9V9"])
    assert out.images.shape == (6, 32, 32) and out.pixel_mm == 1.5
    assert out.phase.tolist() == ["ED"] * 3 + ["ES"] * 3
    assert out.slice_index.tolist() == [0, 1, 2, 0, 1, 2]
    assert out.labelled.all() and out.myo_labelled.all()
    assert set(np.unique(out.labels)) == {0, 1, 2}  # RV (raw 3) became background
    assert out.labels[0].sum() == 0 and out.labels[3].sum() == 0  # empty slices are kept
    # ED blood pool: 6 voxels x 16 voxels = 12 mm (x) x 20 mm (y) = 240 mm^2. Rows follow y.
    ed = out.labels[1] == 1
    rows, cols = np.nonzero(ed)
    assert np.ptp(rows) + 1 == pytest.approx(20 / 1.5, abs=1)
    assert np.ptp(cols) + 1 == pytest.approx(12 / 1.5, abs=1)
    assert ed.sum() * 1.5**2 == pytest.approx(240, rel=0.15)
    # ES (frame 3) has half the blood pool along y: the right frame was picked.
    assert (out.labels[4] == 1).sum() * 1.5**2 == pytest.approx(120, rel=0.2)


def test_mnms_ed_frame_is_zero_based(mnms_root):
    src = MnmsSource(mnms_root, **SMALL, phases=("ED",))
    out = src.load("siemens", ["c1-A0S9V9"])  # ED = 1 in the CSV -> time index 1
    volume = cine(0)
    options = PreprocessOptions(**SMALL)
    for t, should_match in [(1, True), (0, False), (2, False)]:
        frame = volume[:, :, 1, t].T  # rows = NIfTI y
        expected = normalise_images(resample_crop(frame, (1.25, 2.0), options.pixel_mm, options.size_px, 1)[None])
        assert np.allclose(out.images[1], expected[0], atol=1e-5) == should_match


def test_mnms_unlabelled_subjects(mnms_root):
    src = MnmsSource(mnms_root, **SMALL)
    out = src.load("ge", src.subjects("ge"))
    assert len(out) == 6 and not out.labelled.any() and not out.myo_labelled.any()
    assert out.labels.sum() == 0
    assert MnmsSource(mnms_root, include_unlabelled=False, **SMALL).vendors() == ["canon", "philips", "siemens"]


def test_mnms_is_deterministic_and_cached(mnms_root, tmp_path):
    cache = tmp_path / "cache"
    first = MnmsSource(mnms_root, cache_dir=cache, **SMALL).load("philips", ["c3-B4E5F6", "c2-B1C2D3"])
    assert len(list((cache / "mnms").glob("*.npz"))) == 2
    again = MnmsSource(mnms_root, cache_dir=cache, **SMALL).load("philips", ["c3-B4E5F6", "c2-B1C2D3"])
    uncached = MnmsSource(mnms_root, cache_dir=tmp_path / "fresh", **SMALL).load("philips", ["c3-B4E5F6", "c2-B1C2D3"])
    for other in (again, uncached):
        np.testing.assert_array_equal(first.images, other.images)
        np.testing.assert_array_equal(first.labels, other.labels)
        assert first.subjects.tolist() == other.subjects.tolist()
    assert first.subjects[0] == "c3-B4E5F6"  # load keeps the order asked for
    # Keys follow content: a touched file keeps its key; a file with new content is preprocessed again.
    gt = mnms_root / "Training/Labeled/B4E5F6/B4E5F6_sa_gt.nii.gz"
    os.utime(gt, ns=(gt.stat().st_atime_ns, gt.stat().st_mtime_ns + 10**9))
    MnmsSource(mnms_root, cache_dir=cache, **SMALL).load("philips", ["c3-B4E5F6"])
    assert len(list((cache / "mnms").glob("*.npz"))) == 2
    _rewrite_one_voxel(gt)
    MnmsSource(mnms_root, cache_dir=cache, **SMALL).load("philips", ["c3-B4E5F6"])
    assert len(list((cache / "mnms").glob("*.npz"))) == 3


def _rewrite_one_voxel(path):
    """Save ``path`` again with a different first voxel (a label stays in 0-3; same header and affine)."""
    img = nib.load(path)
    data = np.asanyarray(img.dataobj).copy()
    flat = data.reshape(-1)
    flat[0] = (flat[0] + 1) % 4
    nib.save(nib.Nifti1Image(data, img.affine, img.header), path)


def test_cache_keys_follow_the_data_not_its_folder(mnms_root, tmp_path):
    copy = tmp_path / "elsewhere"
    shutil.copytree(mnms_root, copy)  # new folder, new modification times, same bytes
    assert MnmsSource(copy, **SMALL).cache_key() == MnmsSource(mnms_root, **SMALL).cache_key()


def test_mnms_cache_key_tracks_options_and_files(mnms_root):
    base = MnmsSource(mnms_root, **SMALL).cache_key()
    assert base == MnmsSource(mnms_root, **SMALL).cache_key()
    assert base != MnmsSource(mnms_root, pixel_mm=1.25, size_px=32).cache_key()
    image = mnms_root / "Testing/A3L4M5/A3L4M5_sa.nii.gz"
    _rewrite_one_voxel(image)
    assert base != MnmsSource(mnms_root, **SMALL).cache_key()


def test_mnms_split_by_subject(mnms_root):
    src = MnmsSource(mnms_root, **SMALL)
    subjects = src.subjects("philips")
    parts = split_subjects(subjects, {"train": 0.5, "test": 0.5}, seed=0)
    assert sorted(parts["train"] + parts["test"]) == subjects
    train = src.load("philips", parts["train"])
    test = src.load("philips", parts["test"])
    assert len(train) == len(test) == 6
    assert not set(train.subjects) & set(test.subjects)


# ---- bad input -----------------------------------------------------------------------------


def test_missing_root_names_the_layout(tmp_path):
    with pytest.raises(DataError, match=r"does not exist; expected <root>/\{Training/Labeled"):
        MnmsSource(tmp_path / "nowhere")
    with pytest.raises(DataError, match="acdc: data root .* does not exist; expected"):
        AcdcSource(tmp_path / "nowhere")
    with pytest.raises(DataError, match="does not exist; expected a CSV"):
        ManifestSource(tmp_path / "nowhere.csv")


def test_incomplete_layout(tmp_path):
    root = tmp_path / "mnms"
    root.mkdir()
    (root / "info.csv").write_text("External code,Vendor,Centre,ED,ES\n")
    with pytest.raises(DataError, match="has none of the split folders"):
        MnmsSource(root)
    make_mnms(root, MNMS_CASES[:2])
    (root / "Training/Labeled/B1C2D3/B1C2D3_sa_gt.nii.gz").unlink()
    with pytest.raises(DataError, match=r"B1C2D3_sa_gt.nii.gz: file is missing \(incomplete layout"):
        MnmsSource(root)
    src = MnmsSource(root, skip_bad=True)
    assert src.subjects("philips") == [] and src.skipped[0][0] == "c2-B1C2D3"


def test_code_missing_from_csv(mnms_root):
    save_nifti(mnms_root / "Validation/ZZZ999/ZZZ999_sa.nii.gz", cine(9))
    with pytest.raises(DataError, match=r"ZZZ999: code ZZZ999 is missing from .*info.csv"):
        MnmsSource(mnms_root)
    src = MnmsSource(mnms_root, skip_bad=True, **SMALL)
    assert [s for s, _ in src.skipped] == ["ZZZ999"]
    assert len(src.subjects("siemens")) == 2


def test_truncated_nifti(mnms_root):
    path = mnms_root / "Training/Labeled/A0S9V9/A0S9V9_sa.nii.gz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    src = MnmsSource(mnms_root, **SMALL)
    with pytest.raises(DataError, match=r"A0S9V9_sa.nii.gz: cannot read NIfTI") as info:
        src.load("siemens", ["c1-A0S9V9"])
    assert "\n" not in str(info.value)


def test_shape_mismatch(mnms_root):
    gt = mnms_root / "Testing/A3L4M5/A3L4M5_sa_gt.nii.gz"
    save_nifti(gt, np.zeros((24, 38, 3, 5), np.int16))
    with pytest.raises(DataError, match=r"A3L4M5_sa_gt.nii.gz: label shape \(24, 38, 3, 5\) differs"):
        MnmsSource(mnms_root, **SMALL).load("siemens", ["c1-A3L4M5"])


def test_label_value_outside_map(mnms_root):
    gt = mnms_root / "Testing/A3L4M5/A3L4M5_sa_gt.nii.gz"
    labels = np.asarray(nib.load(str(gt)).dataobj).copy()
    labels[0, 0, 1, 0] = 7
    save_nifti(gt, labels)
    with pytest.raises(DataError, match=r"A3L4M5_sa_gt.nii.gz: label values \[7\] are outside"):
        MnmsSource(mnms_root, **SMALL).load("siemens", ["c1-A3L4M5"])


def test_non_finite_voxel(mnms_root):
    path = mnms_root / "Testing/A3L4M5/A3L4M5_sa.nii.gz"
    image = cine(5)
    image[3, 3, 2, 4] = np.nan
    save_nifti(path, image)
    with pytest.raises(DataError, match=r"A3L4M5_sa.nii.gz: 1 non-finite voxel"):
        MnmsSource(mnms_root, **SMALL).load("siemens", ["c1-A3L4M5"])


def test_skip_bad_reports_and_loads_the_rest(mnms_root):
    path = mnms_root / "Testing/A3L4M5/A3L4M5_sa.nii.gz"
    with gzip.open(path, "rb") as handle:
        raw = handle.read()
    path.write_bytes(gzip.compress(raw[:400]))  # a valid gzip holding a truncated NIfTI
    src = MnmsSource(mnms_root, skip_bad=True, **SMALL)
    out = src.load("siemens", src.subjects("siemens"))
    assert set(out.subjects) == {"c1-A0S9V9"}
    assert [s for s, _ in src.skipped] == ["c1-A3L4M5"]
    assert "A3L4M5_sa.nii.gz" in src.skipped[0][1]
    everything_bad = src.load("siemens", ["c1-A3L4M5"])
    assert len(everything_bad) == 0 and everything_bad.images.shape == (0, 32, 32)


def test_unknown_vendor_and_subject_are_user_errors(mnms_root):
    src = MnmsSource(mnms_root, **SMALL)
    with pytest.raises(UserError, match="unknown vendor 'toshiba'"):
        src.load("toshiba", [])
    with pytest.raises(UserError, match="unknown subject 'A0S9V9'"):
        src.load("siemens", ["A0S9V9"])


def test_ed_es_outside_the_cine(tmp_path):
    root = make_mnms(tmp_path / "mnms", [("Training/Labeled", "A0S9V9", "A", 1, 1, 3)])
    (root / "info.csv").write_text("External code,Vendor,Centre,ED,ES\nA0S9V9,A,1,1,9\n")
    with pytest.raises(DataError, match=r"ES frame 9 of c1-A0S9V9 is outside 0..4"):
        MnmsSource(root, **SMALL).load("siemens", ["c1-A0S9V9"])


# ---- ACDC ----------------------------------------------------------------------------------


def make_acdc(root, patient, ed, es, as_4d=False):
    folder = root / patient
    folder.mkdir(parents=True)
    (folder / "Info.cfg").write_text(f"ED: {ed}\nES: {es}\nGroup: DCM\nHeight: 180.0\nNbFrame: 5\nWeight: 80.0\n")
    volume = cine(int(patient[-3:]))
    # ED is frame number `ed` (1-based) = time index ed - 1.
    labels = cine_labels(SHAPE, (ed - 1, es - 1), raw_blood=3, raw_myo=2, raw_rv=1)
    if as_4d:
        save_nifti(folder / f"{patient}_4d.nii.gz", volume)
    for number in (ed, es):
        if not as_4d:
            save_nifti(folder / f"{patient}_frame{number:02d}.nii.gz", volume[..., number - 1], ZOOMS[:3])
        save_nifti(folder / f"{patient}_frame{number:02d}_gt.nii.gz", labels[..., number - 1], ZOOMS[:3])
    return volume


@pytest.mark.parametrize("as_4d", [False, True])
def test_acdc_frames_are_one_based_and_labels_remapped(tmp_path, as_4d):
    volume = make_acdc(tmp_path / "acdc", "patient001", ed=2, es=4, as_4d=as_4d)
    src = create_source("acdc", root=tmp_path / "acdc", **SMALL)
    assert src.vendors() == ["acdc"] and src.subjects("acdc") == ["patient001"]
    out = src.load("acdc", ["patient001"])
    assert out.phase.tolist() == ["ED"] * 3 + ["ES"] * 3
    assert set(np.unique(out.labels)) == {0, 1, 2}
    # Raw 3 (LV) is the blood pool: 240 mm^2 at ED.
    assert (out.labels[1] == 1).sum() * 1.5**2 == pytest.approx(240, rel=0.15)
    options = PreprocessOptions(**SMALL)
    expected = resample_crop(volume[:, :, 2, 1].T, (1.25, 2.0), options.pixel_mm, options.size_px, 1)
    np.testing.assert_allclose(out.images[2], normalise_images(expected[None])[0], atol=1e-5)


def test_acdc_vendor_option_and_training_folder(tmp_path):
    make_acdc(tmp_path / "acdc" / "training", "patient007", ed=1, es=3)
    src = AcdcSource(tmp_path / "acdc", vendor="siemens", **SMALL)
    assert src.vendors() == ["siemens"] and src.subjects("siemens") == ["patient007"]
    assert src.subjects("acdc") == []


def test_acdc_bad_info_and_missing_frame(tmp_path):
    make_acdc(tmp_path / "acdc", "patient001", ed=1, es=3)
    make_acdc(tmp_path / "acdc", "patient002", ed=1, es=3)
    (tmp_path / "acdc/patient001/Info.cfg").write_text("ES: 3\nNbFrame: 5\n")
    with pytest.raises(DataError, match=r"patient001/Info.cfg: ED is missing"):
        AcdcSource(tmp_path / "acdc")
    (tmp_path / "acdc/patient001/Info.cfg").write_text("ED: 1\nES: 3\nNbFrame: 5\n")
    (tmp_path / "acdc/patient002/patient002_frame03_gt.nii.gz").unlink()
    with pytest.raises(DataError, match=r"patient002_frame03_gt.nii.gz: file is missing"):
        AcdcSource(tmp_path / "acdc")
    src = AcdcSource(tmp_path / "acdc", skip_bad=True, **SMALL)
    assert src.subjects("acdc") == ["patient001"] and src.skipped[0][0] == "patient002"


# ---- manifest ------------------------------------------------------------------------------


def test_manifest_paths_label_maps_and_frames(tmp_path):
    data = tmp_path / "inhouse"
    volume = cine(3)
    labels = cine_labels(SHAPE, (1, 3), raw_blood=5, raw_myo=6, raw_rv=0)
    save_nifti(data / "img" / "p1.nii.gz", volume)
    save_nifti(data / "lab" / "p1.nii.gz", labels)
    save_nifti(data / "img" / "p2_ed.nii.gz", volume[..., 1], ZOOMS[:3])
    save_nifti(data / "lab" / "p2_ed.nii.gz", cine_labels(SHAPE, (1, 3), 1, 2, 3)[..., 1], ZOOMS[:3])
    (data / "manifest.csv").write_text(
        "image,label,subject,vendor,label_map,phase,frame\n"
        'img/p1.nii.gz,lab/p1.nii.gz,p1,hospital_a,"5:1,6:2",ED,1\n'
        'img/p1.nii.gz,lab/p1.nii.gz,p1,hospital_a,"5:1,6:2",ES,3\n'
        "img/p1.nii.gz,,p1,hospital_a,,ES,2\n"
        "img/p2_ed.nii.gz,lab/p2_ed.nii.gz,p2,hospital_a,,ED,\n"
    )
    src = create_source("manifest", manifest=data / "manifest.csv", **SMALL)
    assert src.vendors() == ["hospital_a"] and src.subjects("hospital_a") == ["p1", "p2"]
    out = src.load("hospital_a", ["p1", "p2"])
    assert out.subjects.tolist() == ["p1"] * 9 + ["p2"] * 3
    assert out.labelled.tolist() == [True] * 6 + [False] * 3 + [True] * 3
    assert (out.labels[1] == 1).sum() * 1.5**2 == pytest.approx(240, rel=0.15)
    assert (out.labels[10] == 2).sum() > 0 and not (out.labels[9:] == 3).any()  # default map: RV -> 0
    only_ed = ManifestSource(data / "manifest.csv", phases=("ED",), **SMALL).load("hospital_a", ["p1"])
    assert only_ed.phase.tolist() == ["ED"] * 3


def test_manifest_bad_rows(tmp_path):
    save_nifti(tmp_path / "a.nii.gz", cine(0))
    save_nifti(tmp_path / "a_gt.nii.gz", cine_labels(SHAPE, (1, 3), 1, 2, 3))
    csv = tmp_path / "m.csv"
    csv.write_text("image,subject,vendor\na.nii.gz,s1,v\n")
    with pytest.raises(DataError, match=r"m.csv: manifest lacks column\(s\) \['label'\]"):
        ManifestSource(csv)
    csv.write_text("image,label,subject,vendor\na.nii.gz,a_gt.nii.gz,s1,v\n")
    with pytest.raises(DataError, match="m.csv line 2: .*a.nii.gz is 4D with 5 frames; give a valid frame"):
        ManifestSource(csv, **SMALL).load("v", ["s1"])
    csv.write_text('image,label,subject,vendor,frame,label_map\na.nii.gz,a_gt.nii.gz,s1,v,1,"1:1"\n')
    with pytest.raises(DataError, match=r"a_gt.nii.gz: label values \[2, 3\] are outside"):
        ManifestSource(csv, **SMALL).load("v", ["s1"])
    csv.write_text("image,label,subject,vendor\na.nii.gz,,s1,v\na.nii.gz,,s1,w\n")
    with pytest.raises(DataError, match="m.csv line 3: subject s1 is listed under vendors v and w"):
        ManifestSource(csv)
