"""ACDC (Automated Cardiac Diagnosis Challenge, MICCAI 2017) source; all Siemens scanners.

Layout: ``<root>/patientNNN/`` (or ``<root>/{training,testing}/patientNNN/``) with ``Info.cfg``
(``ED: 1``, ``ES: 12``, ``NbFrame: 30``, ...; frame numbers are **1-based**),
``patientNNN_frameMM.nii.gz`` (one 3D frame, ``MM`` the 1-based frame number) and
``patientNNN_frameMM_gt.nii.gz``. When a frame file is absent, the frame is taken from
``patientNNN_4d.nii.gz`` at time index ``MM - 1``. Raw labels: 1 RV (-> background),
2 LV myocardium, 3 LV blood pool.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from unetgan_core.data.filecheck import require_folder
from unetgan_core.data.nifti import check_nifti_header, frame_slices, inplane_directions, read_nifti
from unetgan_core.data.options import AcdcOptions
from unetgan_core.data.preprocess import PHASES, Frame, PreprocessOptions, SubjectSource, frames_to_sliceset, map_labels
from unetgan_core.data.sliceset import SliceSet
from unetgan_core.data.sources import DATA_SOURCES
from unetgan_core.errors import DataError

LABEL_MAP = {0: 0, 1: 0, 2: 2, 3: 1}
LAYOUT = "<root>/[training|testing/]patientNNN/{Info.cfg, patientNNN_frameMM.nii.gz, patientNNN_frameMM_gt.nii.gz}"


def read_info_cfg(path: Path) -> dict[str, str]:
    """Parse an ACDC ``Info.cfg`` (``key: value`` lines) into a dict of strings."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read ({type(exc).__name__})") from None
    info = {}
    for line in text.splitlines():
        if ":" in line:
            key, value = line.split(":", 1)
            info[key.strip()] = value.strip()
    return info


@DATA_SOURCES.register("acdc")
class AcdcSource(SubjectSource):
    """The ACDC data set as a ``DataSource`` with one vendor.

    Args:
        root: folder holding the patient folders (see module docstring).
        vendor: the name its one vendor is given (ACDC is all Siemens; default ``"acdc"`` keeps it
            apart from M&Ms Siemens subjects).
        pixel_mm: output pixel size, millimetres.
        size_px: output side, pixels.
        phases: cardiac phases to keep (``"ED"``, ``"ES"``).
        cache_dir: cache root for preprocessed subjects; None: ``$UNETGAN_CACHE`` or ``~/.cache/unetgan-bench``.
        skip_bad: report bad subjects in ``self.skipped`` and leave them out instead of raising.
    """

    name = "acdc"
    OPTIONS = AcdcOptions  # the typed [data] table

    def __init__(
        self,
        root: str | Path,
        vendor: str = "acdc",
        pixel_mm: float = 1.5,
        size_px: int = 192,
        phases: Sequence[str] = PHASES,
        cache_dir: str | Path | None = None,
        skip_bad: bool = False,
    ) -> None:
        super().__init__(PreprocessOptions(pixel_mm, size_px, tuple(phases)), cache_dir, skip_bad)
        self.root = Path(root)
        self.vendor = str(vendor)
        require_folder(self.root, "acdc", LAYOUT)
        folders = [self.root, self.root / "training", self.root / "testing"]
        self._patients = {
            p.name: p for folder in folders if folder.is_dir() for p in folder.glob("patient*") if p.is_dir()
        }
        if not self._patients:
            raise DataError(f"acdc: no patient folders in {self.root}; expected {LAYOUT}")
        # subject -> {phase: (image file, frame index or None, label file)}
        self._frames: dict[str, dict[str, tuple[Path, int | None, Path]]] = {}
        for subject in sorted(self._patients):
            try:
                self._frames[subject] = self._locate(subject)
            except DataError as exc:
                if not self.skip_bad:
                    raise
                self.skipped.append((subject, str(exc)))

    def _locate(self, subject: str) -> dict[str, tuple[Path, int | None, Path]]:
        folder = self._patients[subject]
        cfg = folder / "Info.cfg"
        if not cfg.is_file():
            raise DataError(f"{cfg}: file is missing (incomplete layout; expected {LAYOUT})")
        info = read_info_cfg(cfg)
        located = {}
        for phase in self.options.phases:
            try:
                number = int(info[phase])
            except (KeyError, ValueError):
                raise DataError(f"{cfg}: {phase} is missing or not an integer frame number") from None
            n_frames = int(info["NbFrame"]) if info.get("NbFrame", "").isdigit() else None
            if number < 1 or (n_frames is not None and number > n_frames):
                raise DataError(f"{cfg}: {phase} frame {number} is outside 1..{n_frames or '?'} (1-based)")
            image = folder / f"{subject}_frame{number:02d}.nii.gz"
            label = folder / f"{subject}_frame{number:02d}_gt.nii.gz"
            index = None
            if not image.is_file():
                # The cine file holds every frame; ACDC numbers frames from 1, arrays from 0.
                image, index = folder / f"{subject}_4d.nii.gz", number - 1
            for path in (image, label):
                if not path.is_file():
                    raise DataError(f"{path}: file is missing (incomplete layout; expected {LAYOUT})")
            located[phase] = (image, index, label)
        return located

    def vendors(self) -> list[str]:
        """The one vendor name (``vendor`` option)."""
        return [self.vendor]

    def subjects(self, vendor: str) -> list[str]:
        """Patient ids (``patientNNN``), sorted; empty for any other vendor name."""
        return sorted(self._frames) if vendor == self.vendor else []

    def _subject_files(self, vendor: str, subject: str) -> list[Path]:
        files = [self._patients[subject] / "Info.cfg"]
        for image, _, label in self._frames[subject].values():
            files += [image, label]
        return files

    def _settings(self) -> dict:
        return {"vendor": self.vendor}

    def check_subject_files(self, subject: str) -> int:
        """Open the headers of ``subject``'s frame images and labels (cheap; see ``data/filecheck.py``).

        Returns:
            The number of files checked.
        """
        files = {}
        for image, index, label in self._frames[subject].values():
            files[image], files[label] = (3,) if index is None else (4,), (3,)
        for path, ndims in files.items():
            check_nifti_header(path, ndims)
        return len(files)

    def _read_subject(self, vendor: str, subject: str) -> SliceSet:
        frames = []
        for phase, (image_path, index, label_path) in self._frames[subject].items():
            volume, zooms, affine = read_nifti(image_path, (3,) if index is None else (4,))
            if index is not None and index >= volume.shape[3]:
                raise DataError(f"{image_path}: {phase} frame {index + 1} (1-based) but only {volume.shape[3]} frames")
            raw, _, _ = read_nifti(label_path, (3,), is_label=True)
            if raw.shape != volume.shape[:3]:
                raise DataError(
                    f"{label_path}: label shape {raw.shape} differs from image frame shape {volume.shape[:3]}"
                )
            image, spacing = frame_slices(volume, zooms, index)
            labels = map_labels(raw, LABEL_MAP, str(label_path))
            frames.append(
                Frame(
                    image=image,
                    labels=frame_slices(labels, zooms, None)[0],
                    spacing_mm=spacing,
                    phase=phase,
                    directions=inplane_directions(affine),
                )
            )
        return frames_to_sliceset(frames, subject, vendor, self.options, str(self._patients[subject]))
