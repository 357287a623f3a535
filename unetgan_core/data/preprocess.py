"""The paper's preprocessing, shared by every real-data loader (Sunnybrook, M&Ms, ACDC, manifest).

Yan et al. (2019), section 3: end-diastole and end-systole frames, 2D short-axis slices,
in-plane rescaling to 1.5 x 1.5 mm, centre crop to 192 x 192 pixels. Here:

- **Grid alignment.** Resampling and cropping are one interpolation onto a ``size_px`` square
  grid of ``pixel_mm`` pixels whose centre coincides with the centre of the input image (the
  midpoint between its first and last pixel centres, ``(n - 1) / 2``). Output pixel ``j`` sits
  ``(j - (size_px - 1) / 2) * pixel_mm`` millimetres from that centre. With equal pixel sizes this
  is an exact integer-shift crop (even input, even output); one interpolation instead of two avoids
  blurring twice. Output pixels whose centre falls more than half an input pixel outside the
  input are padding: 0 in images and labels. The crop is never guided by the labels.
- **Interpolation.** Linear for images, nearest neighbour for labels
  (``scipy.ndimage.map_coordinates`` with ``order=1`` / ``order=0``).
- **Labels** are mapped to 0 background, 1 LV blood pool, 2 LV myocardium before resampling; the
  right ventricle becomes background. A raw value outside the source's map is a ``DataError``.
- **Orientation.** Each slice is first brought to one canonical in-plane arrangement from the
  image geometry (NIfTI affine, DICOM ImageOrientationPatient; see ``orientation.py``), labels
  identically, so subjects stored rotated or mirrored relative to each other agree.
- **Empty slices** (no foreground) of labelled frames are kept with ``labelled=True``: apical and
  basal slices without LV are part of the test distribution, and dropping them would inflate Dice.
- **Intensities** go through ``normalise_images`` after resampling, per slice.

``SubjectSource`` is the loading loop the real-data sources share: one subject at a time,
an on-disk cache of each preprocessed subject (``data/cache.py``, keyed by the options and the
files' names under the data folder, sizes and SHA-256: ``data/fingerprint.py``), and ``skip_bad``
to report and skip bad subjects.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage

from unetgan_core.data.cache import cached_sliceset
from unetgan_core.data.fingerprint import file_fingerprint
from unetgan_core.data.normalise import NORMALISATION, normalise_images
from unetgan_core.data.orientation import canonical_arrangement
from unetgan_core.data.sliceset import BACKGROUND, BLOOD_POOL, MYOCARDIUM, SliceSet
from unetgan_core.errors import DataError, UserError

# Bump when the preprocessing changes, so cached subjects are rebuilt.
PREPROCESS_VERSION = 3
PHASES = ("ED", "ES")
TARGET_LABELS = (BACKGROUND, BLOOD_POOL, MYOCARDIUM)


@dataclasses.dataclass(frozen=True)
class PreprocessOptions:
    """How volumes become network-ready slices.

    Args:
        pixel_mm: in-plane pixel size after resampling, millimetres (paper: 1.5).
        size_px: side of the square output slice, pixels (paper: 192).
        phases: which cardiac phases to keep, a subset of ``("ED", "ES")``.
    """

    pixel_mm: float = 1.5
    size_px: int = 192
    phases: tuple[str, ...] = PHASES

    def __post_init__(self) -> None:
        if not (isinstance(self.pixel_mm, (int, float)) and np.isfinite(self.pixel_mm) and self.pixel_mm > 0):
            raise UserError(f"data.pixel_mm must be a positive number of millimetres, got {self.pixel_mm!r}")
        if not (isinstance(self.size_px, int) and not isinstance(self.size_px, bool) and self.size_px >= 8):
            raise UserError(f"data.size_px must be an integer >= 8 pixels, got {self.size_px!r}")
        phases = tuple(self.phases)
        if not phases or any(p not in PHASES for p in phases) or len(set(phases)) != len(phases):
            raise UserError(f"data.phases must be distinct values from {list(PHASES)}, got {list(self.phases)!r}")
        object.__setattr__(self, "phases", phases)
        object.__setattr__(self, "pixel_mm", float(self.pixel_mm))


def resample_crop(
    image: np.ndarray, spacing_mm: tuple[float, float], pixel_mm: float, size_px: int, order: int
) -> np.ndarray:
    """Resample a 2D slice to ``pixel_mm`` pixels and centre-crop or pad it to ``size_px``.

    Args:
        image: ``[H, W]`` array (any dtype).
        spacing_mm: input pixel size along rows and columns, millimetres.
        pixel_mm: output pixel size, millimetres.
        size_px: output side, pixels.
        order: 1 (linear, images) or 0 (nearest, labels).

    Returns:
        float64 ``[size_px, size_px]`` (labels keep integral values); 0 outside the input.
    """
    if np.ndim(image) != 2 or len(spacing_mm) != 2:
        raise ValueError(f"resample_crop needs a 2D slice and two spacings, got {np.shape(image)}, {spacing_mm}")
    axes = []
    inside = []
    for n_in, step_in in zip(np.shape(image), spacing_mm, strict=True):
        offsets_mm = (np.arange(size_px) - (size_px - 1) / 2.0) * pixel_mm
        coord = (n_in - 1) / 2.0 + offsets_mm / float(step_in)
        axes.append(coord)
        # Inside the input's extent (half a pixel beyond the outer centres), tested on the
        # offset from the centre so both sides round the same way and a crop stays symmetric.
        inside.append(np.abs(offsets_mm / float(step_in)) <= n_in / 2.0 + 1e-9)
    rows, cols = np.meshgrid(axes[0], axes[1], indexing="ij")
    # "nearest" mode only matters within half a pixel of the edge; further out is padding below.
    out = ndimage.map_coordinates(np.asarray(image, dtype=np.float64), [rows, cols], order=order, mode="nearest")
    out[~(inside[0][:, None] & inside[1][None, :])] = 0.0
    return out


def parse_label_map(text: str, where: str) -> dict[int, int]:
    """Parse a label map like ``"1:1,2:2,3:0"`` (raw value: target value; 0 maps to 0 unless given).

    Args:
        text: comma-separated ``raw:target`` pairs; targets must be 0, 1 or 2.
        where: what the map belongs to, for error messages (a file and row).
    """
    mapping = {0: BACKGROUND}
    for item in str(text).split(","):
        if not item.strip():
            continue
        try:
            raw, target = (int(part) for part in item.split(":"))
        except ValueError:
            raise DataError(f"{where}: label map entry {item.strip()!r} is not 'raw:target' integers") from None
        if target not in TARGET_LABELS:
            raise DataError(f"{where}: label map target {target} must be 0 background, 1 blood pool or 2 myocardium")
        mapping[raw] = target
    return mapping


def map_labels(raw: np.ndarray, mapping: dict[int, int], where: str) -> np.ndarray:
    """Map raw label values to 0/1/2 with ``mapping``.

    Args:
        raw: label array of any shape; must hold integral values.
        mapping: raw value -> target value.
        where: the file, for error messages.

    Raises:
        DataError: non-finite or non-integral labels, or a value outside ``mapping``.
    """
    values = np.asarray(raw)
    if not np.isfinite(values).all():
        raise DataError(f"{where}: label volume contains NaN or infinite values")
    if values.dtype.kind == "f" and not np.array_equal(values, np.round(values)):
        raise DataError(f"{where}: label volume contains non-integer values")
    values = values.astype(np.int64)
    present = np.unique(values)
    unknown = sorted(set(present.tolist()) - set(mapping))
    if unknown:
        raise DataError(f"{where}: label values {unknown} are outside the label map {sorted(mapping)}")
    lut_keys = np.array(sorted(mapping))
    lut_values = np.array([mapping[k] for k in lut_keys], dtype=np.uint8)
    return lut_values[np.searchsorted(lut_keys, values)]


def check_finite(values: np.ndarray, where: str) -> None:
    """Raise ``DataError`` naming ``where`` if ``values`` holds NaN or infinity."""
    if not np.isfinite(values).all():
        bad = int(np.size(values) - np.isfinite(values).sum())
        raise DataError(f"{where}: {bad} non-finite voxel(s) (NaN or infinity)")


def check_spacing(spacing_mm: Sequence[float], where: str) -> tuple[float, float]:
    """The in-plane pixel size as two positive finite floats (millimetres), else ``DataError``."""
    spacing = tuple(float(s) for s in spacing_mm[:2])
    if len(spacing) != 2 or not all(np.isfinite(s) and s > 0 for s in spacing):
        raise DataError(f"{where}: in-plane pixel spacing {list(spacing_mm)} mm is not two positive numbers")
    return spacing  # type: ignore[return-value]


@dataclasses.dataclass(frozen=True)
class Frame:
    """One cardiac frame of one subject, before preprocessing.

    Args:
        image: ``[H, W, Z]`` magnitudes (Z short-axis slices; Z may be 1).
        labels: ``[H, W, Z]`` labels already mapped to 0/1/2, or None when not annotated.
        spacing_mm: in-plane pixel size along H and W, millimetres.
        phase: ``"ED"`` or ``"ES"``.
        myo_labelled: per-slice bool ``[Z]``: is the myocardium annotated (None: wherever labelled).
        slice_index: per-slice int ``[Z]`` position in the stack (None: 0..Z-1).
        directions: ``(row_dir, col_dir)``, the patient directions (LPS) in which the row and column
            indices grow (``orientation.py``); the slices are brought to the canonical arrangement.
            None leaves them as stored (the synthetic phantom has no patient geometry).
    """

    image: np.ndarray
    labels: np.ndarray | None
    spacing_mm: tuple[float, float]
    phase: str
    myo_labelled: np.ndarray | None = None
    slice_index: np.ndarray | None = None
    directions: tuple[np.ndarray, np.ndarray] | None = None

    def reoriented(self, where: str) -> Frame:
        """This frame in the canonical in-plane arrangement; image and labels change identically."""
        if self.directions is None:
            return self
        arrangement = canonical_arrangement(*self.directions, where)
        return dataclasses.replace(
            self,
            image=arrangement.apply(self.image),
            labels=None if self.labels is None else arrangement.apply(self.labels),
            spacing_mm=arrangement.spacing(self.spacing_mm),
            directions=arrangement.directions(*self.directions),
        )


def frames_to_sliceset(
    frames: Sequence[Frame], subject: str, vendor: str, options: PreprocessOptions, where: str
) -> SliceSet:
    """Preprocess the frames of one subject into a ``SliceSet`` (one entry per 2D slice).

    Args:
        frames: the subject's frames (usually ED and ES), see ``Frame``; each is first brought to the
            canonical in-plane arrangement when it carries ``directions``.
        subject: subject id stored on every slice.
        vendor: vendor name stored on the set.
        options: output pixel size (mm), size (pixels) and phases.
        where: the subject's files, for error messages.
    """
    images, labels, labelled, myo, index, phase = [], [], [], [], [], []
    for frame in frames:
        if frame.image.ndim != 3:
            raise DataError(f"{where}: expected an [H, W, slices] frame, got shape {frame.image.shape}")
        if frame.labels is not None and frame.labels.shape != frame.image.shape:
            raise DataError(f"{where}: image shape {frame.image.shape} and label shape {frame.labels.shape} differ")
        frame = frame.reoriented(where)
        check_finite(frame.image, where)
        n_slices = frame.image.shape[2]
        slice_index = np.arange(n_slices) if frame.slice_index is None else np.asarray(frame.slice_index)
        for z in range(n_slices):
            images.append(resample_crop(frame.image[:, :, z], frame.spacing_mm, options.pixel_mm, options.size_px, 1))
            if frame.labels is None:
                labels.append(np.zeros((options.size_px, options.size_px)))
            else:
                labels.append(
                    resample_crop(frame.labels[:, :, z], frame.spacing_mm, options.pixel_mm, options.size_px, 0)
                )
            labelled.append(frame.labels is not None)
            myo.append(frame.labels is not None and (frame.myo_labelled is None or bool(frame.myo_labelled[z])))
            index.append(int(slice_index[z]))
            phase.append(frame.phase)
    shape = (len(images), options.size_px, options.size_px)
    return SliceSet(
        images=normalise_images(np.asarray(images).reshape(shape)),
        labels=np.asarray(labels).reshape(shape).astype(np.uint8),
        subjects=np.array([subject] * len(images), dtype=str),
        vendor=vendor,
        pixel_mm=options.pixel_mm,
        labelled=np.array(labelled, dtype=bool),
        myo_labelled=np.array(myo, dtype=bool),
        slice_index=np.array(index, dtype=np.int64),
        phase=np.array(phase, dtype=str),
        synthetic=False,
    )


def empty_sliceset(vendor: str, options: PreprocessOptions) -> SliceSet:
    """A set with no slices (every requested subject was skipped)."""
    shape = (0, options.size_px, options.size_px)
    return SliceSet(
        images=np.zeros(shape, np.float32),
        labels=np.zeros(shape, np.uint8),
        subjects=np.array([], dtype=str),
        vendor=vendor,
        pixel_mm=options.pixel_mm,
        labelled=np.zeros(0, bool),
        myo_labelled=np.zeros(0, bool),
        slice_index=np.zeros(0, np.int64),
        phase=np.array([], dtype=str),
        synthetic=False,
    )


class SubjectSource(abc.ABC):
    """Shared loading loop of the real-data sources: per-subject preprocessing, cache, skipping.

    Subclasses set ``name`` and implement ``vendors``, ``subjects``, ``_subject_files`` (the files a
    subject is read from) and ``_read_subject`` (-> ``SliceSet``).

    Args:
        options: preprocessing options.
        cache_dir: cache root for preprocessed subjects (``<cache_dir>/<source>/<hash>.npz``);
            None means ``$UNETGAN_CACHE`` or ``~/.cache/unetgan-bench`` (see ``data/cache.py``).
        skip_bad: if True, a subject whose files are bad is left out of ``load`` and recorded in
            ``self.skipped`` as ``(subject, reason)``; if False it raises ``DataError``.
    """

    name = "real"
    synthetic = False
    normalisation = NORMALISATION  # every slice goes through ``normalise_images``

    def __init__(self, options: PreprocessOptions, cache_dir: str | Path | None, skip_bad: bool) -> None:
        self.options = options
        self.cache_dir = cache_dir
        self.skip_bad = bool(skip_bad)
        self.skipped: list[tuple[str, str]] = []

    @property
    def size_px(self) -> int:
        """Side of the square output slices, pixels."""
        return self.options.size_px

    @property
    def pixel_mm(self) -> float:
        """Output pixel size, millimetres (the field of view is ``size_px * pixel_mm``, centred)."""
        return self.options.pixel_mm

    @abc.abstractmethod
    def vendors(self) -> list[str]:
        """The vendors this source provides."""

    @abc.abstractmethod
    def subjects(self, vendor: str) -> list[str]:
        """All subject ids of ``vendor``, sorted."""

    @abc.abstractmethod
    def _subject_files(self, vendor: str, subject: str) -> list[Path]:
        """The files ``subject`` is read from (their names, sizes and contents key the cache)."""

    @abc.abstractmethod
    def _read_subject(self, vendor: str, subject: str) -> SliceSet:
        """Read and preprocess one subject (raises ``DataError`` on bad files)."""

    def _settings(self) -> dict:
        """Source options beyond preprocessing that change the output (e.g. a vendor name)."""
        return {}

    @property
    def files_root(self) -> Path | None:
        """The data set's folder: file names in cache keys are relative to it (``data/fingerprint.py``)."""
        return getattr(self, "root", None)

    def _fingerprint(self, vendor: str, subject: str, remember: bool = False) -> list[list]:
        # Digests are written to the cache only when a subject is loaded (which writes its slices there too).
        return file_fingerprint(self._subject_files(vendor, subject), self.files_root, self.cache_dir, remember)

    def cache_key(self) -> dict:
        """Everything that determines this source's output: options and every file's name, size and content."""
        files = []
        for vendor in self.vendors():
            for subject in self.subjects(vendor):
                files.extend(self._fingerprint(vendor, subject))
        return {
            "source": self.name,
            "version": PREPROCESS_VERSION,
            "options": dataclasses.asdict(self.options),
            "settings": self._settings(),
            "files": files,
        }

    def _subject_key(self, vendor: str, subject: str, remember: bool = False) -> dict:
        return {
            "source": self.name,
            "version": PREPROCESS_VERSION,
            "vendor": vendor,
            "subject": subject,
            "options": dataclasses.asdict(self.options),
            "settings": self._settings(),
            "files": self._fingerprint(vendor, subject, remember),
        }

    def _load_subject(self, vendor: str, subject: str) -> SliceSet:
        # Cached per subject, so any split of the subjects reuses the same files.
        return cached_sliceset(
            self._subject_key(vendor, subject, remember=True),
            lambda: self._read_subject(vendor, subject),
            kind=self.name,
            cache_dir=self.cache_dir,
        )

    def load(self, vendor: str, subjects: Sequence[str]) -> SliceSet:
        """Preprocessed slices of ``subjects`` of ``vendor``, in the order given.

        Args:
            vendor: one of ``vendors()``.
            subjects: ids from ``subjects(vendor)``.

        Raises:
            UserError: unknown vendor or subject.
            DataError: a bad subject file (unless ``skip_bad``; then see ``self.skipped``).
        """
        known = set(self.subjects(vendor)) if vendor in self.vendors() else None
        if known is None:
            raise UserError(f"{self.name}: unknown vendor {vendor!r}; known: {', '.join(self.vendors())}")
        parts = []
        for subject in subjects:
            if subject not in known:
                raise UserError(f"{self.name}: unknown subject {subject!r} for vendor {vendor!r}")
            try:
                parts.append(self._load_subject(vendor, subject))
            except DataError as exc:
                if not self.skip_bad:
                    raise
                self.skipped.append((subject, str(exc)))
        parts = [p for p in parts if len(p)]
        return SliceSet.concat(parts) if parts else empty_sliceset(vendor, self.options)
