"""A run folder as pandas tables: one per row kind, plus the per-image values.

Tables, figures, the report and the comparison all start from a :class:`Run`. The files are
read (and checked) by ``reports.rundir``; an absent per-image CSV or manifest leaves that part
empty, and the report says "not measured in this run".

Rows that share a key (see :data:`KEY_COLUMNS`) are kept once, the last one written wins,
so a results file that was appended to twice for the same measurement is not counted twice.
"""

from __future__ import annotations

import collections
import dataclasses
from pathlib import Path
from typing import Any

import pandas as pd

from unetgan_bench.reports import rundir
from unetgan_bench.reports.rundir import PER_IMAGE_COLUMNS, THROUGHPUT_SETTINGS

# What identifies one measurement of each kind: rows are matched on these between runs and
# de-duplicated on them within a run.
# ``fold`` is None unless the suite cross-validates by subject (``[splits] folds``).
SEGMENTATION_KEYS = ("kind", "scenario", "vendor", "seed", "fold")
FGSM_KEYS = ("kind", "scenario", "vendor", "seed", "attack", "eps")
CORRUPTION_KEYS = ("kind", "scenario", "vendor", "seed", "corruption", "severity")
KEY_COLUMNS = {
    "segmentation": SEGMENTATION_KEYS,
    "fgsm": FGSM_KEYS,
    "corruption": CORRUPTION_KEYS,
    "throughput": ("kind", *THROUGHPUT_SETTINGS, "device"),
}

SEGMENTATION_METRICS = ("dice_mean", "dice_blood_pool", "dice_myo", "hd95_mm", "n_images")
FGSM_METRICS = ("dice_mean", "psnr_db", "ssim")
# The metrics a table of each kind always has (None where a row lacks one); throughput tables
# also get every other metric their rows hold.
CORRUPTION_METRICS = ("dice_mean", "dice_blood_pool", "dice_myo", "psnr_db")
METRICS = {
    "segmentation": SEGMENTATION_METRICS,
    "fgsm": FGSM_METRICS,
    "corruption": CORRUPTION_METRICS,
    "throughput": ("images_per_s",),
}
# Row fields copied beside every per-image value so statistics can group by them.
_PER_IMAGE_TAGS = ("scenario", "vendor", "role", "seed", "fold", "selection", "cell_id")


@dataclasses.dataclass(frozen=True)
class Run:
    """One run folder, read.

    Args:
        path: the run folder.
        manifest: ``manifest.json`` as a dict (empty when the file is absent).
        segmentation: one row per (scenario, vendor, seed, fold) with the row-level metrics
            (``fold`` None without cross-validation).
        fgsm: one row per (scenario, vendor, seed, attack, eps).
        throughput: one row per throughput setting.
        per_image: every per-image CSV row, tagged with its cell's scenario, vendor, role, seed, fold.
        commits: (commit, dirty, number of rows) for each code state the rows were measured at,
            most rows first; commit and dirty are None for rows that did not record them
            (schema version 1).
        corruption: one row per (scenario, vendor, seed, corruption, severity); empty without ``[corruptions]``.
    """

    path: Path
    manifest: dict[str, Any]
    segmentation: pd.DataFrame
    fgsm: pd.DataFrame
    throughput: pd.DataFrame
    per_image: pd.DataFrame
    commits: tuple[tuple[str | None, bool | None, int], ...] = ()
    corruption: pd.DataFrame = dataclasses.field(default_factory=lambda: rows_to_frame([], "corruption"))

    @property
    def synthetic(self) -> bool:
        """True when the manifest says the data are the built-in phantom."""
        return bool(self.manifest.get("synthetic", False))

    @property
    def oracle(self) -> bool:
        """True when any number of this run comes from oracle (target-label) model selection."""
        if self.manifest.get("oracle"):
            return True
        frames = (self.segmentation, self.fgsm, self.corruption)
        return any("selection" in f and (f["selection"] == "oracle").any() for f in frames)


def commits_of(rows: list[dict[str, Any]]) -> tuple[tuple[str | None, bool | None, int], ...]:
    """(commit, dirty, rows) for each code state in ``rows``, most rows first."""
    counts = collections.Counter((r.get("commit"), r.get("dirty")) for r in rows)
    return tuple((commit, dirty, n) for (commit, dirty), n in counts.most_common())


def _flatten(row: dict[str, Any], metric_names: tuple[str, ...]) -> dict[str, Any]:
    flat = {k: v for k, v in row.items() if k not in ("metrics", "config") and not isinstance(v, (dict, list))}
    # A sweep cell's settings become columns of their own ("translator.lambda_unet"), like any other field.
    flat.update(row.get("settings") or {})
    metrics = row["metrics"]
    if row["kind"] == "throughput":
        flat.update(metrics)
    for name in metric_names:
        flat[name] = metrics.get(name)
    return flat


def rows_to_frame(rows: list[dict[str, Any]], kind: str) -> pd.DataFrame:
    """The rows of one kind as a flat table, one column per key field and metric.

    Args:
        rows: checked rows (see :func:`reports.rundir.read_rows`).
        kind: ``"segmentation"``, ``"fgsm"``, ``"corruption"`` or ``"throughput"``.
    """
    metric_names = METRICS[kind]
    flat = [_flatten(r, metric_names) for r in rows if r["kind"] == kind]
    keys = list(KEY_COLUMNS[kind])
    frame = pd.DataFrame(flat, columns=None if flat else [*keys, *metric_names])
    for key in keys:
        if key not in frame:
            frame[key] = None
    # Later rows replace earlier ones with the same key (append-only file, re-measured cell).
    frame = frame.drop_duplicates(subset=keys, keep="last")
    sort_keys = [k for k in keys if frame[k].notna().any()]
    if sort_keys:
        frame = frame.sort_values(sort_keys, key=lambda col: col.astype(str) if col.dtype == object else col)
    return frame.reset_index(drop=True)


def per_image_table(run_dir: Path, segmentation: pd.DataFrame) -> pd.DataFrame:
    """Every per-image CSV named by a segmentation row, tagged with that row's key fields.

    A row whose CSV is absent contributes nothing here (its row-level metrics still count in
    the tables). Columns: :data:`PER_IMAGE_COLUMNS` plus scenario, vendor, role, seed, fold, selection, cell_id.

    Args:
        run_dir: the run folder.
        segmentation: the table from :func:`rows_to_frame` for ``"segmentation"``.

    Raises:
        DataError: a CSV exists but is malformed (see :func:`reports.rundir.read_per_image`).
    """
    parts = []
    for _, row in segmentation.iterrows():
        rel = row.get("per_image")
        if not isinstance(rel, str) or not rel:
            continue
        table = rundir.read_per_image(run_dir, rel)
        if table is None:
            continue
        for tag in _PER_IMAGE_TAGS:
            table[tag] = row.get(tag)
        parts.append(table)
    if not parts:
        return pd.DataFrame(columns=[*PER_IMAGE_COLUMNS, *_PER_IMAGE_TAGS])
    return pd.concat(parts, ignore_index=True)


def load_run(run_dir: Path | str) -> Run:
    """Read everything the report and the comparison need from a run folder.

    Args:
        run_dir: the run folder (holds ``results.jsonl``).

    Raises:
        UserError: the folder or its results file is missing.
        DataError: a file is malformed.
    """
    run_dir = Path(run_dir)
    rows = rundir.read_rows(run_dir)
    segmentation = rows_to_frame(rows, "segmentation")
    return Run(
        path=run_dir,
        manifest=rundir.read_manifest(run_dir),
        segmentation=segmentation,
        fgsm=rows_to_frame(rows, "fgsm"),
        throughput=rows_to_frame(rows, "throughput"),
        per_image=per_image_table(run_dir, segmentation),
        commits=commits_of(rows),
        corruption=rows_to_frame(rows, "corruption"),
    )
