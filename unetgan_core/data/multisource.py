"""Several data sources as one: vendors addressed as ``SOURCE:vendor``, one preprocessing for all.

An audit often trains on one data set and tests on another (the phantom's philips style against
Sunnybrook's GE scans; in-house Philips against public M&Ms vendors). A suite then names each source
in a ``[data.NAME]`` table and its vendors as ``NAME:vendor``; :class:`MultiSource` is the
``DataSource`` the rest of the suite sees. Every part must produce the same slices geometrically and
in intensity: the same grid (``size_px``), pixel size (``pixel_mm``; with a centred square field of
view of ``size_px * pixel_mm`` that also fixes the crop) and ``normalisation``. Sources that differ,
or a source that does not declare these, are refused with one line: a Unet trained on 1.5 mm pixels
and tested on 2 mm pixels would measure the resampling, not the vendor.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from unetgan_core.data.sliceset import SliceSet
from unetgan_core.errors import UserError

SEPARATOR = ":"  # "NAME:vendor"
# What must be equal in every part, and what it means.
PREPROCESSING = {"size_px": "image side (px)", "pixel_mm": "pixel size (mm)", "normalisation": "normalisation"}


def split_vendor(vendor: str) -> tuple[str, str]:
    """``"sb:ge"`` -> ``("sb", "ge")``; raises ``UserError`` for a vendor without a source name."""
    source, sep, name = vendor.partition(SEPARATOR)
    if not sep or not source or not name:
        raise UserError(f"vendor {vendor!r}: a suite with several data sources names vendors as SOURCE:vendor")
    return source, name


def preprocessing(source: Any, name: str, where: str) -> dict[str, Any]:
    """The preprocessing ``source`` declares (``size_px``, ``pixel_mm``, ``normalisation``).

    Raises:
        UserError: a source that does not declare one of them (a plugin's source, say).
    """
    missing = [key for key in PREPROCESSING if getattr(source, key, None) is None]
    if missing:
        raise UserError(
            f"{where} [data.{name}]: its source does not declare {', '.join(missing)}, so its preprocessing "
            "cannot be checked against the other sources'"
        )
    return {key: getattr(source, key) for key in PREPROCESSING}


class MultiSource:
    """The ``DataSource`` of a suite with several ``[data.NAME]`` tables.

    Args:
        parts: source name in the suite (``NAME`` of ``[data.NAME]``) -> opened source.
        where: ``"<file>:"`` prefix for error messages.

    Raises:
        UserError: fewer than two parts, or parts whose preprocessing differs.

    Example:
        >>> both = MultiSource({"a": PhantomSource(size_px=32), "b": PhantomSource(size_px=32, seed=1)}, "s.toml:")
        >>> both.subjects("b:ge")[:1]
        ['ge-000']
    """

    def __init__(self, parts: Mapping[str, Any], where: str) -> None:
        if len(parts) < 2:
            raise UserError(f"{where} [data]: name at least two [data.NAME] tables, or use one [data] table")
        self.parts = dict(parts)
        declared = {name: preprocessing(part, name, where) for name, part in self.parts.items()}
        first, *rest = declared
        for name in rest:
            for key, what in PREPROCESSING.items():
                if declared[name][key] != declared[first][key]:
                    raise UserError(
                        f"{where} [data.{name}] {key}: {what} {declared[name][key]!r} differs from [data.{first}]'s "
                        f"{declared[first][key]!r}; every source must be preprocessed alike (set {key} in [data])"
                    )
        self.preprocessing = declared[first]
        self.size_px = self.preprocessing["size_px"]
        self.pixel_mm = self.preprocessing["pixel_mm"]
        self.normalisation = self.preprocessing["normalisation"]
        # Reports must say when any image is synthetic.
        self.synthetic = any(getattr(part, "synthetic", False) for part in self.parts.values())

    def _part(self, vendor: str) -> tuple[str, Any, str]:
        name, inner = split_vendor(vendor)
        if name not in self.parts:
            raise UserError(f"vendor {vendor!r}: no data source {name!r}; sources: {', '.join(self.parts)}")
        return name, self.parts[name], inner

    def vendors(self) -> list[str]:
        """Every part's vendors as ``NAME:vendor``."""
        return [f"{name}{SEPARATOR}{v}" for name, part in self.parts.items() for v in part.vendors()]

    def subjects(self, vendor: str) -> list[str]:
        _, part, inner = self._part(vendor)
        return part.subjects(inner)

    def load(self, vendor: str, subjects: Sequence[str]) -> SliceSet:
        """The slices of ``subjects`` of ``vendor`` (``NAME:vendor``), tagged with the qualified vendor name."""
        _, part, inner = self._part(vendor)
        return dataclasses.replace(part.load(inner, subjects), vendor=vendor)

    def source_record(self, vendor: str) -> dict[str, Any]:
        """What a row records of the source ``vendor`` comes from: its name in the suite, its settings, and the
        preprocessing every part shares."""
        name, part, _ = self._part(vendor)
        return {"name": name, **part.cache_key(), "preprocessing": dict(self.preprocessing)}

    def vendor_key(self, vendor: str) -> dict[str, Any]:
        """Everything that determines ``vendor``'s slices: the part's own key (its settings, the source kind
        included) under the qualified name, so two sources never share a split's key."""
        name, part, inner = self._part(vendor)
        key = part.vendor_key(inner) if hasattr(part, "vendor_key") else [part.cache_key(), inner]
        return {"source": name, "key": key}

    def cache_key(self) -> dict[str, Any]:
        """Every part's settings by name, and the shared preprocessing."""
        return {
            "sources": {name: part.cache_key() for name, part in self.parts.items()},
            "preprocessing": dict(self.preprocessing),
        }

    @property
    def skipped(self) -> list[tuple[str, str]]:
        """Subjects the parts left out (``skip_bad``), as ``(NAME:subject, reason)``."""
        return [
            (f"{name}{SEPARATOR}{subject}", reason)
            for name, part in self.parts.items()
            for subject, reason in getattr(part, "skipped", [])
        ]
