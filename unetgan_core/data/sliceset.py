"""The one container every data source returns: 2D slices, labels and per-slice tags."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from unetgan_core.errors import DataError

BACKGROUND, BLOOD_POOL, MYOCARDIUM, RIGHT_VENTRICLE = 0, 1, 2, 3
SCORED_CLASSES = {"blood_pool": BLOOD_POOL, "myo": MYOCARDIUM}


@dataclasses.dataclass(frozen=True)
class SliceSet:
    """A stack of 2D short-axis slices from one vendor, ready for a network.

    Args:
        images: float32 ``[N, H, W]``, normalised to [0, 1] (per-image clip to the 1st-99th
            percentile, then min-max; see ``unetgan_core.data.normalise``).
        labels: uint8 ``[N, H, W]``; 0 background, 1 LV blood pool, 2 LV myocardium
            (3 RV only for pictures; scoring treats it as background).
        subjects: str ``[N]``, the subject each slice comes from (splits are by subject).
        vendor: the vendor or style name, e.g. ``"philips"``.
        pixel_mm: in-plane pixel size in millimetres.
        labelled: bool ``[N]``; False for slices with no annotation (translator training only).
        myo_labelled: bool ``[N]``; False where myocardium was not annotated (e.g. Sunnybrook
            frames without an epicardial contour), so Dice of the myocardium is not scored there.
        slice_index: int ``[N]``, position of the slice in its stack (0 = most apical or first).
        phase: str ``[N]``, ``"ED"``, ``"ES"`` or another frame tag.
        synthetic: True for the built-in phantom: reports must say so.
    """

    images: np.ndarray
    labels: np.ndarray
    subjects: np.ndarray
    vendor: str
    pixel_mm: float
    labelled: np.ndarray
    myo_labelled: np.ndarray
    slice_index: np.ndarray
    phase: np.ndarray
    synthetic: bool

    def __post_init__(self) -> None:
        n = len(self.images)
        if self.images.ndim != 3 or self.labels.shape != self.images.shape:
            raise DataError(
                f"{self.vendor}: images {self.images.shape} and labels {self.labels.shape} must both be [N, H, W]"
            )
        for name in ("subjects", "labelled", "myo_labelled", "slice_index", "phase"):
            if len(getattr(self, name)) != n:
                raise DataError(f"{self.vendor}: {name} has {len(getattr(self, name))} entries for {n} slices")
        if n and not np.isfinite(self.images).all():
            raise DataError(f"{self.vendor}: images contain NaN or infinite values")

    def __len__(self) -> int:
        return len(self.images)

    def take(self, index: np.ndarray) -> SliceSet:
        """The slices at ``index`` (an int array or a boolean mask)."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for name in ("images", "labels", "subjects", "labelled", "myo_labelled", "slice_index", "phase"):
            fields[name] = fields[name][index]
        return SliceSet(**fields)

    def for_subjects(self, subjects) -> SliceSet:
        """The slices whose subject is in ``subjects``."""
        return self.take(np.isin(self.subjects, np.asarray(list(subjects))))

    def save(self, path: Path) -> None:
        """Write to an ``.npz`` file (no pickles)."""
        arrays = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        arrays["subjects"] = arrays["subjects"].astype(str)
        arrays["phase"] = arrays["phase"].astype(str)
        arrays["vendor"] = np.array(self.vendor)
        arrays["pixel_mm"] = np.array(self.pixel_mm)
        arrays["synthetic"] = np.array(self.synthetic)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **arrays)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> SliceSet:
        try:
            with np.load(path, allow_pickle=False) as z:
                return cls(
                    images=z["images"],
                    labels=z["labels"],
                    subjects=z["subjects"],
                    vendor=str(z["vendor"]),
                    pixel_mm=float(z["pixel_mm"]),
                    labelled=z["labelled"],
                    myo_labelled=z["myo_labelled"],
                    slice_index=z["slice_index"],
                    phase=z["phase"],
                    synthetic=bool(z["synthetic"]),
                )
        except (OSError, KeyError, ValueError) as exc:
            raise DataError(f"{path}: not a readable slice set ({exc})") from None

    @classmethod
    def concat(cls, parts: list[SliceSet]) -> SliceSet:
        if not parts:
            raise ValueError("concat of no slice sets")
        first = parts[0]
        return cls(
            images=np.concatenate([p.images for p in parts]),
            labels=np.concatenate([p.labels for p in parts]),
            subjects=np.concatenate([p.subjects for p in parts]),
            vendor=first.vendor,
            pixel_mm=first.pixel_mm,
            labelled=np.concatenate([p.labelled for p in parts]),
            myo_labelled=np.concatenate([p.myo_labelled for p in parts]),
            slice_index=np.concatenate([p.slice_index for p in parts]),
            phase=np.concatenate([p.phase for p in parts]),
            synthetic=all(p.synthetic for p in parts),
        )
