"""The typed ``[data]`` tables of the built-in data sources, loaded with ``unetgan_core.schema``.

A registered data source may carry an ``OPTIONS`` dataclass (the tables below for the built-in
ones): a suite's ``[data]`` table (or ``[data.NAME]`` table) is checked against it before the
source is created, so an unknown key, a wrong type or a value out of bounds is one line naming the
file, the table and the key, with the allowed keys. A source without ``OPTIONS`` (a plugin's) is
checked against its factory's parameters instead (:func:`check_source_table`).
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

from unetgan_core.errors import UserError
from unetgan_core.schema import field, load_table

PHASES = ("ED", "ES")
MAX_SIZE_PX = 4096  # image side; a larger value is a typo, not a grid


@dataclasses.dataclass(frozen=True, kw_only=True)
class GridOptions:
    """What every built-in source shares: the slice grid and phases."""

    source: str = field(doc="the data source (see `unetgan-bench list`)")
    size_px: int = field(192, doc="side of the square slices, pixels", ge=8, le=MAX_SIZE_PX)
    phases: list[str] = field(list(PHASES), doc="cardiac phases kept", choices=PHASES, nonempty=True)
    cache_dir: str | None = field(None, doc="cache root (default $UNETGAN_CACHE or ~/.cache/unetgan-bench)")


@dataclasses.dataclass(frozen=True, kw_only=True)
class PhantomOptions(GridOptions):
    """``[data]`` of the synthetic phantom (``unetgan_core.data.phantom.source.PhantomSource``)."""

    pixel_mm: float | None = field(None, doc="pixel size, mm (default 288 / size_px: a 288 mm field of view)", gt=0.0)
    subjects_per_vendor: int = field(20, doc="synthetic patients per vendor", ge=1, le=100_000)
    slices_per_subject: int = field(8, doc="short-axis slices per patient", ge=1, le=64)
    seed: int = field(0, doc="base seed of anatomies and acquisitions")
    include_rv: bool = field(False, doc="keep label 3 for the RV cavity (pictures only)")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ScanOptions(GridOptions):
    """``[data]`` options every real-data source takes (``unetgan_core.data.preprocess.SubjectSource``)."""

    pixel_mm: float = field(1.5, doc="in-plane pixel size after resampling, mm", gt=0.0)
    skip_bad: bool = field(False, doc="leave out (and report) subjects whose files are bad instead of stopping")


@dataclasses.dataclass(frozen=True, kw_only=True)
class RootedScanOptions(ScanOptions):
    """A real data set read from one folder (Sunnybrook)."""

    root: str | None = field(None, doc="the data set's folder (or --data-root, or its environment variable)")


@dataclasses.dataclass(frozen=True, kw_only=True)
class MnmsOptions(RootedScanOptions):
    """``[data]`` of the M&Ms source."""

    info_csv: str | None = field(None, doc="the subjects' info .csv (default: the one .csv in root)")
    include_unlabelled: bool = field(True, doc="keep the unlabelled subjects (translator training)")


@dataclasses.dataclass(frozen=True, kw_only=True)
class AcdcOptions(RootedScanOptions):
    """``[data]`` of the ACDC source."""

    vendor: str = field("acdc", doc="the vendor name ACDC's subjects are listed under")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ManifestOptions(ScanOptions):
    """``[data]`` of the manifest source (in-house NIfTI listed in a CSV)."""

    manifest: str = field(doc="the manifest .csv (subject, vendor, image and label files)")
    label_map: str = field(
        "0:0,1:1,2:2,3:0", doc="file label -> suite label (0 background, 1 blood pool, 2 myocardium)"
    )


def check_source_table(factory: Any, table: dict[str, Any], where: str) -> None:
    """Check a ``[data]`` table against its source's ``OPTIONS`` dataclass, or its factory's parameters.

    Args:
        factory: the registered data-source factory (``DATA_SOURCES.get(name)``).
        table: the table as written (with ``root`` filled in), ``source`` included.
        where: ``"<file>: [data]"`` prefix for the message.

    Raises:
        UserError: an unknown key, a wrong type or a value out of bounds, in one line.
    """
    options = getattr(factory, "OPTIONS", None)
    if options is not None:
        load_table(options, table, where)
        return
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    allowed = ["source", *(n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))]
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise UserError(f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}")
