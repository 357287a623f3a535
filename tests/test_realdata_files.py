"""``validate`` on real data opens every file header a run will read: truncated files and a data
root that is a file are one-line errors before anything runs (tiny M&Ms / ACDC / manifest trees)."""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import pytest
from test_realdata_nifti import cine, make_acdc, make_mnms, save_nifti

from unetgan_bench.bench.cli import main
from unetgan_core.data.acdc import AcdcSource
from unetgan_core.data.manifest import ManifestSource
from unetgan_core.data.mnms import MnmsSource
from unetgan_core.data.sources import check_files
from unetgan_core.data.sunnybrook import SunnybrookSource
from unetgan_core.errors import DataError

CASES = [
    ("Training/Labeled", "B00001", "B", 2, 0, 2),
    ("Training/Labeled", "B00002", "B", 2, 1, 3),
    ("Validation", "B00003", "B", 3, 0, 2),
    ("Training/Labeled", "A00001", "A", 1, 1, 3),
    ("Validation", "A00002", "A", 1, 0, 4),
    ("Testing", "A00003", "A", 1, 2, 4),
]
SUITE = """
[suite]
name = "mnms-files"
seeds = [0]

[data]
source = "mnms"
root = "{root}"
size_px = 32

[vendors]
source = "philips"
targets = ["siemens"]

[splits]
source = {{ train = 1, val = 1, test = 1 }}
target = {{ train = 1, val = 1, test = 1 }}

[unet]
model_kwargs = {{ width = 4 }}
epochs = 1

[scenarios]
run = ["clean"]
"""


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("UNETGAN_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def mnms(tmp_path) -> tuple[Path, Path]:
    """A six-subject M&Ms tree and a suite file that uses it."""
    root = make_mnms(tmp_path / "mnms", CASES)
    suite = tmp_path / "suite.toml"
    suite.write_text(SUITE.format(root=root))
    return root, suite


def _cut(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _error_lines(capsys) -> list[str]:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return [line for line in err.splitlines() if line.strip()]


def test_validate_passes_a_sound_tree_without_decompressing_it(mnms, monkeypatch, capsys) -> None:
    root, suite = mnms

    def no_full_read(*args, **kwargs):
        raise AssertionError("a sound .gz is checked through its trailer, not decompressed")

    monkeypatch.setattr(gzip, "open", no_full_read)
    assert main(["validate", str(suite)]) == 0
    assert "valid suite 'mnms-files'" in capsys.readouterr().out
    assert check_files(MnmsSource(root)) == 2 * len(CASES)  # an image and a label each


@pytest.mark.parametrize("keep", [0.5, 0.98, 0.0])
@pytest.mark.parametrize("name", ["B00002_sa.nii.gz", "A00003_sa_gt.nii.gz"])
def test_validate_stops_at_a_truncated_nifti_naming_it(mnms, capsys, name, keep) -> None:
    root, suite = mnms
    (path,) = root.rglob(name)
    _cut(path, keep)
    assert main(["validate", str(suite)]) == 2
    lines = _error_lines(capsys)
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(path) in lines[0]


def test_an_uncompressed_nifti_cut_short_is_found(tmp_path) -> None:
    data = tmp_path / "inhouse"
    save_nifti(data / "p1.nii", cine(1))
    (data / "m.csv").write_text("image,label,subject,vendor,frame\np1.nii,,p1,ge,0\n")
    source = ManifestSource(data / "m.csv")
    assert check_files(source) == 1
    _cut(data / "p1.nii", 0.9)
    with pytest.raises(DataError, match=r"p1.nii: truncated NIfTI: \d+ bytes, its header needs \d+"):
        check_files(source)
    (data / "p1.nii").write_bytes(b"not a nifti at all")
    with pytest.raises(DataError, match="p1.nii: cannot read NIfTI header"):
        check_files(source)


def test_a_nifti_of_the_wrong_dimensionality_is_found_from_its_header(mnms) -> None:
    root, _ = mnms
    save_nifti(root / "Training/Labeled/B00001/B00001_sa.nii.gz", cine(0)[..., 0], (2.0, 1.25, 8.0))
    with pytest.raises(DataError, match=r"B00001_sa.nii.gz: expected a 4D volume, got shape \(24, 40, 3\)"):
        check_files(MnmsSource(root))


def test_acdc_frames_and_cine_files_are_checked(tmp_path) -> None:
    make_acdc(tmp_path / "acdc", "patient001", ed=1, es=3)
    make_acdc(tmp_path / "acdc", "patient002", ed=2, es=4, as_4d=True)
    source = AcdcSource(tmp_path / "acdc")
    assert check_files(source) == 4 + 3  # two frames + two labels; one cine + two labels
    _cut(tmp_path / "acdc/patient002/patient002_4d.nii.gz")
    with pytest.raises(DataError, match="patient002_4d.nii.gz: truncated or corrupt NIfTI"):
        check_files(source)
    # With skip_bad the subject is recorded as a load would record it, and the rest still checked.
    lenient = AcdcSource(tmp_path / "acdc", skip_bad=True)
    assert check_files(lenient) == 4
    assert [s for s, _ in lenient.skipped] == ["patient002"]


def test_a_data_root_that_is_a_file_says_so(tmp_path, capsys) -> None:
    file = tmp_path / "data.zip"
    file.write_bytes(b"PK")
    for make in (MnmsSource, AcdcSource, SunnybrookSource):
        with pytest.raises(DataError, match=r"data root .*data.zip is a file, expected a folder"):
            make(file)
    with pytest.raises(DataError, match=r"manifest: .* is a folder, expected a CSV file"):
        ManifestSource(tmp_path)
    suite = tmp_path / "suite.toml"
    suite.write_text(SUITE.format(root=file))
    assert main(["validate", str(suite)]) == 2
    lines = _error_lines(capsys)
    assert len(lines) == 1 and "is a file, expected a folder" in lines[0]


def test_phantom_suites_have_no_files_to_check() -> None:
    from unetgan_core.data.sources import create_source

    assert check_files(create_source("phantom", size_px=32, subjects_per_vendor=2)) == 0


SUNNYBROOK = Path(os.environ.get("UNETGAN_SHARED", Path(__file__).resolve().parents[2] / "shared")) / "data/sunnybrook"


@pytest.mark.skipif(not SUNNYBROOK.is_dir(), reason=f"Sunnybrook data not found at {SUNNYBROOK}")
def test_sunnybrook_dicom_headers_and_contours_are_checked(tmp_path) -> None:
    # One patient copied from the shared data, so its files can be damaged.
    root = tmp_path / "sunnybrook"
    patient, original = "SCD0000101", None
    for line in (SUNNYBROOK / "link.csv").read_text().splitlines()[1:]:
        if line.split(",")[0].strip() == patient:
            original = line.split(",")[1].strip()
    (root / "dicoms").mkdir(parents=True)
    (root / "link.csv").write_text(f"patient_id,original_id\n{patient},{original}\n")
    shutil.copytree(SUNNYBROOK / "dicoms" / patient, root / "dicoms" / patient)
    shutil.copytree(SUNNYBROOK / "contourfiles" / original, root / "contourfiles" / original)
    source = SunnybrookSource(root)
    frames = source._frames[patient]
    assert check_files(source) == sum(2 + (outer is not None) for *_, outer in frames)
    dicom = frames[0][1]
    _cut(dicom, 0.99)
    with pytest.raises(DataError, match=rf"{dicom.name}: truncated DICOM: \d+ bytes, its header needs \d+"):
        check_files(source)
    dicom.write_bytes(b"\0" * 10)
    with pytest.raises(DataError, match=rf"{dicom.name}: cannot read the DICOM header"):
        check_files(source)
