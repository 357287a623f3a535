"""Sunnybrook Cardiac Data (Radau et al., MIDAS Journal 2009): GE cine MRI with manual contours.

Layout (the labelled subset in ``shared/data/sunnybrook``): ``link.csv`` (``patient_id,original_id``),
``dicoms/<patient_id>/<n>.dcm`` and
``contourfiles/<original_id>/{i,o}-contours/IM-0001-<nnnn>-{i,o}contour-manual.txt`` (one ``x y``
point per line in pixel coordinates, x = column, y = row).

Labels: LV blood pool = filled endocardial (i-) contour; myocardium = filled epicardial (o-)
contour minus the blood pool, only in frames that have an o-contour (``myo_labelled=False``
elsewhere, so the myocardium is not scored there).

Fill convention: pixel ``(row r, column c)`` has its centre at ``x = c, y = r`` and is labelled when
its centre lies inside the polygon (``matplotlib.path.Path.contains_points``). Sunnybrook vertices
sit on a half-pixel lattice, so many centres lie exactly on the contour; a fixed infinitesimal
shift of the test points decides those ties like a half-open rule, which makes the pixel count an
unbiased estimate of the polygon's (shoelace) area instead of counting every boundary pixel.

Consistency: an epicardial contour must enclose its endocardial one (the blood pool lies inside the
heart wall). A pair where less than ``MIN_ENCLOSED`` of the filled blood pool lies inside the filled
epicardium is not a myocardium label: that frame keeps its blood pool but its myocardium is left
unlabelled (not trained, not scored), and the source lists it in ``self.unused_labels``, which the run
prints and the report shows. In the shared copy, all nine epicardial contours of SC-HF-I-6 (SCD0000501)
are byte-identical copies of SC-HF-I-1's and enclose only 38-80% of SCD0000501's blood pool.

Orientation: each frame carries its ImageOrientationPatient, from which ``preprocess`` brings it to the
canonical in-plane arrangement (``orientation.py``); SCD0000101 is stored transposed relative to the
other four patients.

Phases: file ``n`` is frame ``(n - 1) % CardiacNumberOfImages`` of stack position
``(n - 1) // CardiacNumberOfImages``. Contours are drawn at two frames of the cycle; the one with
the larger blood-pool area (ventricle fullest) is ED, the other ES.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom
from matplotlib.path import Path as PolygonPath
from pydicom.errors import InvalidDicomError

from unetgan_core.data.filecheck import require_folder
from unetgan_core.data.options import RootedScanOptions
from unetgan_core.data.preprocess import (
    PHASES,
    Frame,
    PreprocessOptions,
    SubjectSource,
    check_spacing,
    frames_to_sliceset,
)
from unetgan_core.data.sliceset import BLOOD_POOL, MYOCARDIUM, SliceSet
from unetgan_core.data.sources import DATA_SOURCES
from unetgan_core.errors import DataError, UserError

VENDOR = "ge"
LAYOUT = "<root>/link.csv, <root>/dicoms/<patient_id>/<n>.dcm, <root>/contourfiles/<original_id>/{i,o}-contours/"
# Breaks ties for pixel centres exactly on the contour; far below any contour coordinate's precision.
_TIE_SHIFT = np.array([1e-6, 0.7e-6])
# An epicardial contour enclosing less of its blood pool than this is not used (see module docstring). Valid
# pairs in the shared data enclose all of it; the copied SC-HF-I-6 contours at most 80%.
MIN_ENCLOSED = 0.95


def read_contour(path: Path) -> np.ndarray:
    """Read a Sunnybrook contour file.

    Args:
        path: text file with one ``x y`` point per line (pixel coordinates, x = column, y = row).

    Returns:
        float64 ``[K, 2]`` polygon vertices ``(x, y)``, K >= 3.
    """
    try:
        points = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a contour file of 'x y' lines ({type(exc).__name__})") from None
    if points.shape[1] != 2 or len(points) < 3 or not np.isfinite(points).all():
        raise DataError(f"{path}: a contour needs at least 3 finite 'x y' points, got shape {points.shape}")
    return points


def polygon_area(points: np.ndarray) -> float:
    """Shoelace area of a closed polygon, in square pixels.

    Args:
        points: ``[K, 2]`` vertices ``(x, y)`` in pixels.
    """
    x, y = points[:, 0], points[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def fill_contour(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Rasterise a contour: True at pixels whose centre lies inside the polygon (see module docstring).

    Args:
        points: ``[K, 2]`` vertices ``(x = column, y = row)`` in pixels.
        shape: ``(rows, columns)`` of the image.
    """
    mask = np.zeros(shape, bool)
    # Only centres inside the bounding box can be inside; testing just those is ~20x faster.
    c0, r0 = np.maximum(np.floor(points.min(axis=0)).astype(int), 0)
    c1, r1 = np.minimum(np.ceil(points.max(axis=0)).astype(int) + 1, [shape[1], shape[0]])
    if r1 <= r0 or c1 <= c0:
        return mask
    rows, cols = np.mgrid[r0:r1, c0:c1]
    centres = np.column_stack([cols.ravel(), rows.ravel()]).astype(np.float64) + _TIE_SHIFT
    mask[r0:r1, c0:c1] = PolygonPath(points).contains_points(centres).reshape(rows.shape)
    return mask


def contour_labels(inner: np.ndarray, outer: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    """uint8 labels from an endocardial and an optional epicardial contour.

    Args:
        inner: i-contour vertices (pixels) -> 1 LV blood pool.
        outer: o-contour vertices (pixels) or None -> 2 myocardium = filled outer minus filled inner.
        shape: ``(rows, columns)``.
    """
    blood = fill_contour(inner, shape)
    labels = np.zeros(shape, np.uint8)
    if outer is not None:
        labels[fill_contour(outer, shape) & ~blood] = MYOCARDIUM
    labels[blood] = BLOOD_POOL
    return labels


def enclosed_fraction(inner: np.ndarray, outer: np.ndarray) -> float:
    """The fraction of the filled ``inner`` contour's pixels whose centres lie inside the ``outer`` contour.

    Args:
        inner: ``[K, 2]`` vertices ``(x, y)`` in pixels, e.g. an endocardial contour.
        outer: ``[M, 2]`` vertices, e.g. the epicardial contour of the same frame.

    Returns:
        A number in [0, 1]; 1 for an empty ``inner`` fill.
    """
    # Both on one grid spanning both polygons (an integer shift keeps the fill's tie rule).
    both = np.vstack([inner, outer])
    origin = np.floor(both.min(axis=0)) - 1
    cols, rows = (np.ceil(both.max(axis=0)) - origin + 2).astype(int)
    blood = fill_contour(inner - origin, (rows, cols))
    wall = fill_contour(outer - origin, (rows, cols))
    return float((blood & wall).sum() / blood.sum()) if blood.any() else 1.0


def check_dicom_header(path: Path) -> None:
    """Read a DICOM header (``stop_before_pixels``) and check the file holds the pixel bytes it declares.

    The cheap counterpart of reading the pixels, for ``validate`` (see ``data/filecheck.py``);
    compressed (encapsulated) pixel data has no declared size and is only checked for a header.

    Raises:
        DataError: not DICOM, no image geometry or pixel spacing, or a file cut short.
    """
    try:
        with path.open("rb") as fh:
            ds = pydicom.dcmread(fh, stop_before_pixels=True)
            pixels_at, size = fh.tell(), fh.seek(0, os.SEEK_END)
        check_spacing([float(s) for s in ds.PixelSpacing], str(path))
        frames = int(ds.get("NumberOfFrames") or 1)
        pixel_bytes = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel") or 1) * frames
        pixel_bytes *= (int(ds.BitsAllocated) + 7) // 8
        syntax = ds.file_meta.TransferSyntaxUID
    except (InvalidDicomError, OSError, ValueError, AttributeError, TypeError) as exc:
        raise DataError(f"{path}: cannot read the DICOM header ({type(exc).__name__})") from None
    # The pixel data element starts with its tag and length: 8 bytes, 12 with an explicit VR.
    needed = pixels_at + (8 if syntax.is_implicit_VR else 12) + pixel_bytes
    if not syntax.is_compressed and size < needed:
        raise DataError(f"{path}: truncated DICOM: {size} bytes, its header needs {needed}")


def default_root() -> Path | None:
    """``$UNETGAN_SHARED/data/sunnybrook`` when ``UNETGAN_SHARED`` is set, else None."""
    shared = os.environ.get("UNETGAN_SHARED")
    return Path(shared) / "data" / "sunnybrook" if shared else None


@DATA_SOURCES.register("sunnybrook")
class SunnybrookSource(SubjectSource):
    """The labelled Sunnybrook subset as a ``DataSource`` with one vendor, ``"ge"``.

    Args:
        root: the data folder (see module docstring); default ``$UNETGAN_SHARED/data/sunnybrook``.
        pixel_mm: output pixel size, millimetres.
        size_px: output side, pixels.
        phases: cardiac phases to keep (``"ED"``, ``"ES"``).
        cache_dir: cache root for preprocessed subjects; None: ``$UNETGAN_CACHE`` or ``~/.cache/unetgan-bench``.
        skip_bad: report bad subjects in ``self.skipped`` and leave them out instead of raising.

    Example:
        >>> src = SunnybrookSource("/work/shared/data/sunnybrook")
        >>> slices = src.load("ge", src.subjects("ge"))
    """

    name = "sunnybrook"
    OPTIONS = RootedScanOptions  # the typed [data] table

    def __init__(
        self,
        root: str | Path | None = None,
        pixel_mm: float = 1.5,
        size_px: int = 192,
        phases: Sequence[str] = PHASES,
        cache_dir: str | Path | None = None,
        skip_bad: bool = False,
    ) -> None:
        super().__init__(PreprocessOptions(pixel_mm, size_px, tuple(phases)), cache_dir, skip_bad)
        if root is None:
            root = default_root()
            if root is None:
                raise UserError("sunnybrook: set data.root (or UNETGAN_SHARED) to the Sunnybrook folder")
        self.root = Path(root)
        require_folder(self.root, "sunnybrook", LAYOUT)
        link = self.root / "link.csv"
        if not link.is_file():
            raise DataError(f"sunnybrook: {link} is missing; expected {LAYOUT}")
        try:
            with open(link, newline="") as handle:
                rows = list(csv.DictReader(handle))
            self._original = {r["patient_id"].strip(): r["original_id"].strip() for r in rows}
        except (OSError, KeyError, AttributeError):
            raise DataError(f"{link}: needs columns patient_id,original_id") from None
        # (patient, reason) for contours found inconsistent and left out (see module docstring)
        self.unused_labels: list[tuple[str, str]] = []
        self._checked: dict[str, list[tuple[int, Path, Path, Path | None]]] = {}
        # patient -> [(file number, dicom, i-contour, o-contour or None)]
        self._frames: dict[str, list[tuple[int, Path, Path, Path | None]]] = {}
        for patient in sorted(self._original):
            try:
                self._frames[patient] = self._locate(patient)
            except DataError as exc:
                if not self.skip_bad:
                    raise
                self.skipped.append((patient, str(exc)))

    def _locate(self, patient: str) -> list[tuple[int, Path, Path, Path | None]]:
        folder = self.root / "dicoms" / patient
        contours = self.root / "contourfiles" / self._original[patient]
        if not folder.is_dir() or not contours.is_dir():
            raise DataError(f"sunnybrook: {folder} or {contours} is missing (incomplete layout; expected {LAYOUT})")
        frames = []
        for dicom in folder.glob("*.dcm"):
            if not dicom.stem.isdigit():
                raise DataError(f"{dicom}: DICOM file name must be its file number")
            n = int(dicom.stem)
            inner = contours / "i-contours" / f"IM-0001-{n:04d}-icontour-manual.txt"
            outer = contours / "o-contours" / f"IM-0001-{n:04d}-ocontour-manual.txt"
            if not inner.is_file():
                if outer.is_file():
                    raise DataError(f"{outer}: epicardial contour without an endocardial one ({inner.name})")
                continue  # an unannotated frame: no phase, no label
            frames.append((n, dicom, inner, outer if outer.is_file() else None))
        if not frames:
            raise DataError(f"sunnybrook: no contoured DICOM frames for {patient} in {folder}")
        return sorted(frames)

    def _labelled_frames(self, patient: str) -> list[tuple[int, Path, Path, Path | None]]:
        """``patient``'s frames with each epicardial contour that does not enclose its endocardial one
        replaced by None (recorded once in ``self.unused_labels``). Reads the contour files.

        Raises:
            DataError: an unreadable contour file.
        """
        if patient not in self._checked:
            frames, rejected, fractions = [], [], []
            for n, dicom, inner, outer in self._frames[patient]:
                if outer is not None:
                    fraction = enclosed_fraction(read_contour(inner), read_contour(outer))
                    if fraction < MIN_ENCLOSED:
                        rejected.append(n)
                        fractions.append(fraction)
                        outer = None
                frames.append((n, dicom, inner, outer))
            if rejected:
                self.unused_labels.append(
                    (
                        patient,
                        f"{len(rejected)} epicardial contour(s) (files {', '.join(map(str, rejected))}) enclose only "
                        f"{min(fractions):.0%}-{max(fractions):.0%} of their blood pool (need {MIN_ENCLOSED:.0%}): "
                        "myocardium left unlabelled there (not trained, not scored)",
                    )
                )
            self._checked[patient] = frames
        return self._checked[patient]

    def vendors(self) -> list[str]:
        """``["ge"]``: every Sunnybrook scan is from a GE Signa 1.5 T."""
        return [VENDOR]

    def subjects(self, vendor: str) -> list[str]:
        """Patient ids (``SCD...``), sorted; empty for any vendor but ``"ge"``."""
        return sorted(self._frames) if vendor == VENDOR else []

    def _subject_files(self, vendor: str, subject: str) -> list[Path]:
        files = [self.root / "link.csv"]
        for _, dicom, inner, outer in self._labelled_frames(subject):
            files += [dicom, inner] + ([outer] if outer is not None else [])
        return files

    def check_subject_files(self, subject: str) -> int:
        """Read ``subject``'s DICOM headers and contour files (cheap; see ``data/filecheck.py``), and check
        that each epicardial contour encloses its endocardial one (else listed in ``self.unused_labels``).

        Returns:
            The number of files checked.
        """
        count = 0
        for _, dicom, inner, outer in self._frames[subject]:
            check_dicom_header(dicom)
            for contour in (inner, outer) if outer is not None else (inner,):
                read_contour(contour)
            count += 2 + (outer is not None)
        self._labelled_frames(subject)
        return count

    def _read_subject(self, vendor: str, subject: str) -> SliceSet:
        records = []  # (cycle frame, stack position, image, spacing, inner, outer, (row_dir, col_dir))
        for n, dicom, inner_path, outer_path in self._labelled_frames(subject):
            try:
                ds = pydicom.dcmread(dicom)
                pixels = ds.pixel_array.astype(np.float32)
                spacing = check_spacing([float(s) for s in ds.PixelSpacing], str(dicom))
                per_cycle = int(ds.get("CardiacNumberOfImages") or 1)
                # ImageOrientationPatient: the patient direction (LPS) of a row, i.e. of growing column
                # index, then that of a column (growing row index).
                iop = [float(v) for v in ds.ImageOrientationPatient]
            except (InvalidDicomError, OSError, ValueError, AttributeError, TypeError) as exc:
                raise DataError(
                    f"{dicom}: cannot read DICOM pixels, PixelSpacing and ImageOrientationPatient "
                    f"({type(exc).__name__})"
                ) from None
            if len(iop) != 6:
                raise DataError(f"{dicom}: ImageOrientationPatient needs 6 values, got {len(iop)}")
            if pixels.ndim != 2:
                raise DataError(f"{dicom}: expected one 2D image, got shape {pixels.shape}")
            inner = read_contour(inner_path)
            outer = read_contour(outer_path) if outer_path is not None else None
            directions = (np.array(iop[3:]), np.array(iop[:3]))
            records.append(((n - 1) % per_cycle, (n - 1) // per_cycle, pixels, spacing, inner, outer, directions))
        phase_of = self._phases(subject, records)
        frames = []
        for cycle_frame, position, pixels, spacing, inner, outer, directions in records:
            if phase_of[cycle_frame] not in self.options.phases:
                continue
            frames.append(
                Frame(
                    image=pixels[:, :, None],
                    labels=contour_labels(inner, outer, pixels.shape)[:, :, None],
                    spacing_mm=spacing,
                    phase=phase_of[cycle_frame],
                    myo_labelled=np.array([outer is not None]),
                    slice_index=np.array([position]),
                    directions=directions,
                )
            )
        return frames_to_sliceset(frames, subject, vendor, self.options, str(self.root / "dicoms" / subject))

    def _phases(self, subject: str, records: list) -> dict[int, str]:
        """Map the two contoured cycle frames to ED (larger mean blood-pool area) and ES."""
        areas: dict[int, dict[int, float]] = {}
        for cycle_frame, position, _pixels, spacing, inner, *_ in records:
            areas.setdefault(cycle_frame, {})[position] = polygon_area(inner) * spacing[0] * spacing[1]
        if len(areas) != 2:
            raise DataError(
                f"sunnybrook: {subject} has contours at cycle frames {sorted(areas)}; expected exactly two (ED and ES)"
            )
        a, b = sorted(areas)
        # Compare on the stack positions contoured in both phases, so coverage does not decide.
        common = sorted(set(areas[a]) & set(areas[b])) or None
        mean_a = np.mean([areas[a][p] for p in (common or areas[a])])
        mean_b = np.mean([areas[b][p] for p in (common or areas[b])])
        return {a: "ED", b: "ES"} if mean_a >= mean_b else {a: "ES", b: "ED"}
