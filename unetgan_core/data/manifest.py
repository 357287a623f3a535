"""In-house NIfTI data listed in a manifest CSV.

Columns: ``image``, ``label``, ``subject``, ``vendor`` (required; ``label`` may be empty for an
unannotated frame) and optionally ``label_map`` (e.g. ``"1:1,2:2,3:0"``: raw value -> 0
background, 1 LV blood pool, 2 LV myocardium; default the source's ``label_map``), ``phase``
(``ED`` or ``ES``; rows of phases not asked for are left out; without the column slices are
tagged ``"frame"``) and ``frame`` (0-based time index, required for 4D images). Paths are
relative to the CSV's folder. One row is one 3D frame; a subject may have several rows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from unetgan_core.data.nifti import check_nifti_header, frame_slices, inplane_directions, read_nifti
from unetgan_core.data.options import ManifestOptions
from unetgan_core.data.preprocess import (
    PHASES,
    Frame,
    PreprocessOptions,
    SubjectSource,
    frames_to_sliceset,
    map_labels,
    parse_label_map,
)
from unetgan_core.data.sliceset import SliceSet
from unetgan_core.data.sources import DATA_SOURCES
from unetgan_core.errors import DataError

REQUIRED_COLUMNS = ("image", "label", "subject", "vendor")
DEFAULT_LABEL_MAP = "0:0,1:1,2:2,3:0"
UNPHASED = "frame"


@dataclasses.dataclass(frozen=True)
class _Row:
    image: Path
    label: Path | None
    label_map: dict[int, int]
    phase: str
    frame: int | None
    where: str


@DATA_SOURCES.register("manifest")
class ManifestSource(SubjectSource):
    """NIfTI frames listed in a CSV as a ``DataSource``.

    Args:
        manifest: the CSV file (see module docstring for its columns).
        label_map: default raw -> target label map for rows without one, e.g. ``"1:1,2:2,3:0"``.
        pixel_mm: output pixel size, millimetres.
        size_px: output side, pixels.
        phases: cardiac phases to keep when the CSV has a ``phase`` column.
        cache_dir: cache root for preprocessed subjects; None: ``$UNETGAN_CACHE`` or ``~/.cache/unetgan-bench``.
        skip_bad: report bad subjects in ``self.skipped`` and leave them out instead of raising.
    """

    name = "manifest"
    OPTIONS = ManifestOptions  # the typed [data] table

    def __init__(
        self,
        manifest: str | Path,
        label_map: str = DEFAULT_LABEL_MAP,
        pixel_mm: float = 1.5,
        size_px: int = 192,
        phases: Sequence[str] = PHASES,
        cache_dir: str | Path | None = None,
        skip_bad: bool = False,
    ) -> None:
        super().__init__(PreprocessOptions(pixel_mm, size_px, tuple(phases)), cache_dir, skip_bad)
        self.manifest = Path(manifest)
        if self.manifest.is_dir():
            raise DataError(
                f"manifest: {self.manifest} is a folder, expected a CSV file with columns {REQUIRED_COLUMNS}"
            )
        if not self.manifest.is_file():
            raise DataError(f"manifest: {self.manifest} does not exist; expected a CSV with columns {REQUIRED_COLUMNS}")
        self.label_map = str(label_map)
        default_map = parse_label_map(self.label_map, "data.label_map")
        # subject -> (vendor, rows)
        self._subjects: dict[str, tuple[str, list[_Row]]] = {}
        self._read_manifest(default_map)

    def _read_manifest(self, default_map: dict[int, int]) -> None:
        try:
            table = pd.read_csv(self.manifest, dtype=str, keep_default_na=False)
        except (OSError, ValueError, pd.errors.ParserError) as exc:
            raise DataError(f"{self.manifest}: cannot read the manifest CSV ({type(exc).__name__})") from None
        table.columns = [str(c).strip() for c in table.columns]
        missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
        if missing:
            raise DataError(f"{self.manifest}: manifest lacks column(s) {missing}; needs {list(REQUIRED_COLUMNS)}")
        base = self.manifest.parent
        for number, record in enumerate(table.to_dict("records"), start=2):  # line 1 is the header
            where = f"{self.manifest} line {number}"
            subject, vendor = record["subject"].strip(), record["vendor"].strip()
            if not subject or not vendor or not record["image"].strip():
                raise DataError(f"{where}: image, subject and vendor must not be empty")
            known_vendor = self._subjects.get(subject, (vendor, []))[0]
            if known_vendor != vendor:
                raise DataError(f"{where}: subject {subject} is listed under vendors {known_vendor} and {vendor}")
            phase = record.get("phase", "").strip() or UNPHASED
            if "phase" in table.columns and phase not in PHASES:
                raise DataError(f"{where}: phase {phase!r} must be one of {list(PHASES)}")
            if phase != UNPHASED and phase not in self.options.phases:
                continue
            frame_text = record.get("frame", "").strip()
            if frame_text and not frame_text.isdigit():
                raise DataError(f"{where}: frame {frame_text!r} must be a 0-based integer")
            map_text = record.get("label_map", "").strip()
            row = _Row(
                image=base / record["image"].strip(),
                label=base / record["label"].strip() if record["label"].strip() else None,
                label_map=parse_label_map(map_text, where) if map_text else default_map,
                phase=phase,
                frame=int(frame_text) if frame_text else None,
                where=where,
            )
            self._subjects.setdefault(subject, (vendor, []))[1].append(row)

    def vendors(self) -> list[str]:
        """Vendor names as written in the manifest, sorted."""
        return sorted({vendor for vendor, _ in self._subjects.values()})

    def subjects(self, vendor: str) -> list[str]:
        """Subject ids of ``vendor``, sorted."""
        return sorted(s for s, (v, _) in self._subjects.items() if v == vendor)

    def _subject_files(self, vendor: str, subject: str) -> list[Path]:
        files = [self.manifest]
        for row in self._subjects[subject][1]:
            files += [row.image] + ([row.label] if row.label is not None else [])
        return files

    @property
    def files_root(self) -> Path:
        """File names in cache keys are relative to the manifest's folder (its relative paths start there)."""
        return self.manifest.parent

    def _settings(self) -> dict:
        return {"label_map": self.label_map}

    def check_subject_files(self, subject: str) -> int:
        """Open the headers of ``subject``'s listed images and labels (cheap; see ``data/filecheck.py``).

        Returns:
            The number of files checked.
        """
        files = {path for row in self._subjects[subject][1] for path in (row.image, row.label) if path is not None}
        for path in sorted(files):
            check_nifti_header(path, (2, 3, 4))
        return len(files)

    def _read_subject(self, vendor: str, subject: str) -> SliceSet:
        frames = []
        for row in self._subjects[subject][1]:
            volume, zooms, affine = read_nifti(row.image, (2, 3, 4))
            if volume.ndim == 4 and (row.frame is None or row.frame >= volume.shape[3]):
                raise DataError(f"{row.where}: {row.image} is 4D with {volume.shape[3]} frames; give a valid frame")
            index = row.frame if volume.ndim == 4 else None
            image, spacing = frame_slices(volume, zooms, index)
            labels = None
            if row.label is not None:
                raw, _, _ = read_nifti(row.label, (2, 3, 4), is_label=True)
                raw_frame = frame_slices(raw, zooms, index if raw.ndim == 4 else None)[0]
                if raw_frame.shape != image.shape:
                    raise DataError(
                        f"{row.label}: label shape {raw.shape} differs from image {row.image.name} {volume.shape}"
                    )
                labels = map_labels(raw_frame, row.label_map, str(row.label))
            frames.append(
                Frame(
                    image=image,
                    labels=labels,
                    spacing_mm=spacing,
                    phase=row.phase,
                    directions=inplane_directions(affine),
                )
            )
        return frames_to_sliceset(frames, subject, vendor, self.options, self._subjects[subject][1][0].where)
