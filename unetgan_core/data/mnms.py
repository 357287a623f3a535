"""M&Ms (Multi-Centre, Multi-Vendor & Multi-Disease Cardiac Segmentation challenge, 2020) source.

Layout: ``<root>/{Training/Labeled,Training/Unlabeled,Validation,Testing}/<CODE>/<CODE>_sa.nii.gz``
(4D: x, y, slice, time) with ``<CODE>_sa_gt.nii.gz`` beside it (not in Training/Unlabeled), and
an information CSV (``External code``, ``Vendor``, ``Centre``, ``ED``, ``ES``; ED and ES are
0-based frame indices). Raw labels: 1 LV blood pool, 2 LV myocardium, 3 RV (-> background).

Subject ids are ``c<Centre>-<CODE>`` (e.g. ``c1-A0S9V9``) so per-image results keep the centre.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from unetgan_core.data.filecheck import require_folder
from unetgan_core.data.nifti import check_nifti_header, frame_slices, inplane_directions, read_nifti
from unetgan_core.data.options import MnmsOptions
from unetgan_core.data.preprocess import PHASES, Frame, PreprocessOptions, SubjectSource, frames_to_sliceset, map_labels
from unetgan_core.data.sliceset import SliceSet
from unetgan_core.data.sources import DATA_SOURCES
from unetgan_core.errors import DataError

VENDOR_CODES = {"A": "siemens", "B": "philips", "C": "ge", "D": "canon"}
SPLIT_FOLDERS = ("Training/Labeled", "Training/Unlabeled", "Validation", "Testing")
UNLABELLED_FOLDER = "Training/Unlabeled"
LABEL_MAP = {0: 0, 1: 1, 2: 2, 3: 0}
REQUIRED_COLUMNS = ("External code", "Vendor", "Centre", "ED", "ES")
LAYOUT = (
    "<root>/{Training/Labeled,Training/Unlabeled,Validation,Testing}/<CODE>/<CODE>_sa.nii.gz "
    "(+ <CODE>_sa_gt.nii.gz) and one info .csv in <root>"
)


def _read_info(path: Path) -> pd.DataFrame:
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{path}: cannot read the M&Ms info CSV ({type(exc).__name__})") from None
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(f"{path}: info CSV lacks column(s) {missing}; needs {list(REQUIRED_COLUMNS)}")
    codes = table["External code"].str.strip()
    dup = sorted(set(codes[codes.duplicated()]))
    if dup:
        raise DataError(f"{path}: codes {dup} appear more than once")
    return table.assign(**{"External code": codes}).set_index("External code")


@DATA_SOURCES.register("mnms")
class MnmsSource(SubjectSource):
    """The M&Ms data set as a ``DataSource``; vendors ``siemens``, ``philips``, ``ge``, ``canon``.

    Args:
        root: folder holding the split folders and the info CSV (see module docstring).
        info_csv: the info CSV; default the only ``.csv`` directly in ``root``.
        pixel_mm: output pixel size, millimetres.
        size_px: output side, pixels.
        phases: cardiac phases to keep (``"ED"``, ``"ES"``).
        include_unlabelled: include Training/Unlabeled subjects (their slices have ``labelled=False``).
        cache_dir: cache root for preprocessed subjects; None: ``$UNETGAN_CACHE`` or ``~/.cache/unetgan-bench``.
        skip_bad: report bad subjects in ``self.skipped`` and leave them out instead of raising.

    Example:
        >>> src = MnmsSource("/data/mnms", pixel_mm=1.5, size_px=192)
        >>> train = src.load("philips", src.subjects("philips")[:10])
    """

    name = "mnms"
    OPTIONS = MnmsOptions  # the typed [data] table

    def __init__(
        self,
        root: str | Path,
        info_csv: str | Path | None = None,
        pixel_mm: float = 1.5,
        size_px: int = 192,
        phases: Sequence[str] = PHASES,
        include_unlabelled: bool = True,
        cache_dir: str | Path | None = None,
        skip_bad: bool = False,
    ) -> None:
        super().__init__(PreprocessOptions(pixel_mm, size_px, tuple(phases)), cache_dir, skip_bad)
        self.root = Path(root)
        require_folder(self.root, "mnms", LAYOUT)
        self.info_csv = Path(info_csv) if info_csv is not None else self._find_info_csv()
        self.include_unlabelled = bool(include_unlabelled)
        # subject id -> (vendor, image file, label file or None, {phase: 0-based frame})
        self._entries: dict[str, tuple[str, Path, Path | None, dict[str, int]]] = {}
        self._scan(_read_info(self.info_csv))

    def _find_info_csv(self) -> Path:
        found = sorted(self.root.glob("*.csv"))
        if len(found) != 1:
            what = "no" if not found else f"{len(found)}"
            raise DataError(f"mnms: {what} .csv files in {self.root}; pass info_csv or use the layout {LAYOUT}")
        return found[0]

    def _reject(self, subject: str, reason: str) -> None:
        if not self.skip_bad:
            raise DataError(reason)
        self.skipped.append((subject, reason))

    def _scan(self, info: pd.DataFrame) -> None:
        folders = [f for f in SPLIT_FOLDERS if (self.root / f).is_dir()]
        if not folders:
            raise DataError(f"mnms: {self.root} has none of the split folders; expected {LAYOUT}")
        for folder in folders:
            labelled = folder != UNLABELLED_FOLDER
            if not labelled and not self.include_unlabelled:
                continue
            for case in sorted(p for p in (self.root / folder).iterdir() if p.is_dir()):
                self._add_case(case, labelled, info)

    def _add_case(self, case: Path, labelled: bool, info: pd.DataFrame) -> None:
        code = case.name
        image = case / f"{code}_sa.nii.gz"
        label = case / f"{code}_sa_gt.nii.gz" if labelled else None
        if code not in info.index:
            return self._reject(code, f"{case}: code {code} is missing from {self.info_csv}")
        row = info.loc[code]
        vendor = VENDOR_CODES.get(row["Vendor"].strip())
        if vendor is None:
            return self._reject(code, f"{self.info_csv}: code {code} has Vendor {row['Vendor']!r}, not one of A-D")
        subject = f"c{row['Centre'].strip()}-{code}"
        for path in (image, label):
            if path is not None and not path.is_file():
                return self._reject(subject, f"{path}: file is missing (incomplete layout; expected {LAYOUT})")
        try:
            frames = {phase: int(row[phase]) for phase in self.options.phases}
        except ValueError:
            bad = {p: row[p] for p in self.options.phases}
            return self._reject(subject, f"{self.info_csv}: code {code} has non-integer ED/ES frames {bad}")
        self._entries[subject] = (vendor, image, label, frames)

    def vendors(self) -> list[str]:
        """Vendors with at least one subject present, e.g. ``["ge", "philips", "siemens"]``."""
        return sorted({v for v, *_ in self._entries.values()})

    def subjects(self, vendor: str) -> list[str]:
        """Subject ids (``c<centre>-<code>``) of ``vendor``, sorted."""
        return sorted(s for s, (v, *_) in self._entries.items() if v == vendor)

    def centre(self, subject: str) -> str:
        """The acquisition centre of ``subject`` (from the info CSV)."""
        return subject.split("-", 1)[0][1:]

    def _subject_files(self, vendor: str, subject: str) -> list[Path]:
        _, image, label, _ = self._entries[subject]
        return [self.info_csv, image] + ([label] if label is not None else [])

    def _settings(self) -> dict:
        return {"include_unlabelled": self.include_unlabelled}

    def check_subject_files(self, subject: str) -> int:
        """Open the headers of ``subject``'s image and label (cheap; see ``data/filecheck.py``).

        Returns:
            The number of files checked.
        """
        _, image, label, _ = self._entries[subject]
        for path in (image, label):
            if path is not None:
                check_nifti_header(path, (4,))
        return 1 + (label is not None)

    def _read_subject(self, vendor: str, subject: str) -> SliceSet:
        _, image_path, label_path, phase_frames = self._entries[subject]
        volume, zooms, affine = read_nifti(image_path, (4,))
        labels = None
        if label_path is not None:
            raw, _, _ = read_nifti(label_path, (4,), is_label=True)
            if raw.shape != volume.shape:
                raise DataError(f"{label_path}: label shape {raw.shape} differs from image shape {volume.shape}")
            labels = map_labels(raw, LABEL_MAP, str(label_path))
        frames = []
        for phase, t in phase_frames.items():
            if not 0 <= t < volume.shape[3]:
                raise DataError(
                    f"{self.info_csv}: {phase} frame {t} of {subject} is outside 0..{volume.shape[3] - 1} "
                    f"of {image_path}"
                )
            image, spacing = frame_slices(volume, zooms, t)
            frame_labels = None if labels is None else frame_slices(labels, zooms, t)[0]
            frames.append(
                Frame(
                    image=image,
                    labels=frame_labels,
                    spacing_mm=spacing,
                    phase=phase,
                    directions=inplane_directions(affine),
                )
            )
        return frames_to_sliceset(frames, subject, vendor, self.options, str(image_path))
