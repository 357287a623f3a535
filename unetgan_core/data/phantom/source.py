"""The ``phantom`` data source: synthetic vendors, each its own set of synthetic patients.

Subject ``"<vendor>-<i:03d>"`` has anatomy seed ``derive_seed(seed, "anatomy", i, vendor)``,
so different vendors show different patients (as in the paper), and acquisition seed
``derive_seed(seed, "image", vendor, i)``. A vendor's whole set is generated once and cached
on disk (npz) under the hash of everything that determines it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from unetgan_core.data.cache import cached_sliceset
from unetgan_core.data.normalise import NORMALISATION
from unetgan_core.data.phantom.anatomy import PHASES
from unetgan_core.data.phantom.render import _check_geometry, default_pixel_mm, render_subjects
from unetgan_core.data.phantom.styles import STYLES, VendorStyle, style_from_dict
from unetgan_core.data.sliceset import SliceSet
from unetgan_core.errors import UserError
from unetgan_core.hashing import derive_seed

# Bump when the rendering code changes what a config produces, so old caches are not reused.
PHANTOM_VERSION = 1


def _positive_int(name: str, value: Any, upper: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= upper:
        raise UserError(f"phantom option {name} = {value!r}; allowed: an integer 1..{upper}")
    return value


class PhantomSource:
    """Synthetic short-axis bSSFP cine slices in named vendor styles.

    The styles are synthetic, inspired by the vendors of Yan et al. (MICCAI 2019), not
    measured scanner properties; ``synthetic`` is True and every ``SliceSet`` says so.

    Args:
        size_px: image side in pixels (64, 96 or 192 are the suite's sizes).
        pixel_mm: pixel size in mm (default ``288 / size_px``: a 288 mm field of view).
        subjects_per_vendor: synthetic patients per vendor.
        slices_per_subject: short-axis slices per patient, apex to base.
        phases: cardiac phases per slice, from ``"ED"``, ``"ES"``.
        seed: base seed of anatomies and acquisitions.
        styles: extra declared styles, name -> ranges (see ``style_from_dict``).
        cache_dir: cache root (default ``$UNETGAN_CACHE`` or ``~/.cache/unetgan-bench``).
        include_rv: keep label 3 for the RV cavity (pictures); default off.

    Example:
        >>> src = PhantomSource(size_px=64, subjects_per_vendor=2, slices_per_subject=3)
        >>> src.subjects("siemens")
        ['siemens-000', 'siemens-001']
    """

    synthetic = True
    normalisation = NORMALISATION  # ``render_subjects`` ends with ``normalise_images``

    def __init__(
        self,
        size_px: int = 192,
        pixel_mm: float | None = None,
        subjects_per_vendor: int = 20,
        slices_per_subject: int = 8,
        phases: Sequence[str] = PHASES,
        seed: int = 0,
        styles: Mapping[str, Mapping[str, Any]] | None = None,
        cache_dir: str | Path | None = None,
        include_rv: bool = False,
    ) -> None:
        self.pixel_mm = float(default_pixel_mm(size_px) if pixel_mm is None else pixel_mm)
        _check_geometry(size_px, self.pixel_mm)
        self.size_px = size_px
        self.subjects_per_vendor = _positive_int("subjects_per_vendor", subjects_per_vendor, 100000)
        self.slices_per_subject = _positive_int("slices_per_subject", slices_per_subject, 64)
        self.phases = list(phases)
        if not self.phases or any(p not in PHASES for p in self.phases) or len(set(self.phases)) != len(self.phases):
            raise UserError(f"phantom option phases = {phases!r}; allowed: distinct values from {', '.join(PHASES)}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise UserError(f"phantom option seed = {seed!r}; allowed: an integer")
        self.seed = seed
        self.include_rv = bool(include_rv)
        self.cache_dir = cache_dir
        self.extra_styles: dict[str, VendorStyle] = {}
        for name, ranges in (styles or {}).items():
            if name in STYLES:
                raise UserError(f"phantom style {name!r} is built in; give the new style another name")
            self.extra_styles[name] = style_from_dict(name, ranges)

    def vendors(self) -> list[str]:
        """Built-in styles and the declared ones."""
        return sorted([*STYLES.names(), *self.extra_styles])

    def style(self, vendor: str) -> VendorStyle:
        """The style of ``vendor`` (``UserError`` listing the known ones if unknown)."""
        if vendor in self.extra_styles:
            return self.extra_styles[vendor]
        if vendor not in STYLES:
            raise UserError(f"unknown phantom vendor {vendor!r}; known: {', '.join(self.vendors())}")
        return STYLES.get(vendor)

    def subjects(self, vendor: str) -> list[str]:
        """``["<vendor>-000", ...]``, sorted."""
        self.style(vendor)
        return [f"{vendor}-{i:03d}" for i in range(self.subjects_per_vendor)]

    def cache_key(self) -> dict:
        """Everything that determines this source's output."""
        return {
            "source": "phantom",
            "version": PHANTOM_VERSION,
            "size_px": self.size_px,
            "pixel_mm": self.pixel_mm,
            "subjects_per_vendor": self.subjects_per_vendor,
            "slices_per_subject": self.slices_per_subject,
            "phases": self.phases,
            "seed": self.seed,
            "include_rv": self.include_rv,
            "styles": {name: self.style(name).to_dict() for name in self.vendors()},
        }

    def vendor_key(self, vendor: str) -> dict:
        """Everything that determines ``vendor``'s slices (not the other vendors' styles)."""
        key = {k: v for k, v in self.cache_key().items() if k != "styles"}
        return {**key, "vendor": vendor, "style": self.style(vendor).to_dict()}

    def generate(self, vendor: str) -> SliceSet:
        """Render every subject of ``vendor`` (no cache)."""
        count = self.subjects_per_vendor
        return render_subjects(
            self.subjects(vendor),
            [derive_seed(self.seed, "anatomy", i, vendor) for i in range(count)],
            [derive_seed(self.seed, "image", vendor, i) for i in range(count)],
            self.style(vendor),
            self.size_px,
            self.pixel_mm,
            self.slices_per_subject,
            self.phases,
            self.include_rv,
        )

    def load(self, vendor: str, subjects: Sequence[str]) -> SliceSet:
        """The slices of ``subjects`` of ``vendor`` (generated once per vendor, then cached).

        Raises:
            UserError: an unknown vendor or subject id.
        """
        known = set(self.subjects(vendor))
        unknown = [s for s in subjects if s not in known]
        if unknown:
            raise UserError(
                f"phantom vendor {vendor!r} has no subject {unknown[0]!r}; ids run "
                f"{vendor}-000..{vendor}-{self.subjects_per_vendor - 1:03d}"
            )
        full = cached_sliceset(self.vendor_key(vendor), lambda: self.generate(vendor), "phantom", self.cache_dir)
        return full.for_subjects(subjects)
