"""Read a run folder (``results.jsonl``, ``manifest.json``, ``per_image/*.csv``) into pandas tables.

This is the only module that knows the run folder's file layout; tables, figures, the report
and the comparison all start from a :class:`Run`. Reading is strict about what is there
(a malformed row or CSV raises ``DataError`` naming the file) and lenient about what is not
(an absent per-image CSV or manifest leaves that part empty, and the report says
"not measured in this run").

Rows that share a key (see :data:`KEY_COLUMNS`) are kept once, the last one written wins,
so a results file that was appended to twice for the same measurement is not counted twice.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pandas as pd

from unetgan_bench.bench.results import ResultsFile
from unetgan_core.errors import DataError, UserError

KINDS = ("segmentation", "fgsm", "throughput")

# What identifies one measurement of each kind: rows are matched on these between runs and
# de-duplicated on them within a run.
# ``fold`` is None unless the suite cross-validates by subject (``[splits] folds``).
SEGMENTATION_KEYS = ("kind", "scenario", "vendor", "seed", "fold")
FGSM_KEYS = ("kind", "scenario", "vendor", "seed", "attack", "eps")
# Throughput rows carry whichever of these settings the workload varied.
THROUGHPUT_SETTINGS = (
    "pipeline",
    "scenario",
    "batch_size",
    "size_px",
    "precision",
    "channels_last",
    "compile",
    "device",
)
KEY_COLUMNS = {"segmentation": SEGMENTATION_KEYS, "fgsm": FGSM_KEYS, "throughput": ("kind", *THROUGHPUT_SETTINGS)}

SEGMENTATION_METRICS = ("dice_mean", "dice_blood_pool", "dice_myo", "hd95_mm", "n_images")
FGSM_METRICS = ("dice_mean", "psnr_db", "ssim")
THROUGHPUT_METRICS = (
    "images_per_s",
    "ms_per_batch_median",
    "ms_per_batch_iqr",
    "peak_mem_mb",
    "flops_per_image",
    "achieved_tflops",
    "peak_tflops",
    "fraction_of_peak",
    "error",
)
PER_IMAGE_COLUMNS = ("index", "subject", "slice_index", "phase", "dice_blood_pool", "dice_myo", "dice_mean", "hd95_mm")
# Row fields copied beside every per-image value so statistics can group by them.
_PER_IMAGE_TAGS = ("scenario", "vendor", "role", "seed", "fold", "selection", "cell_id")
_REQUIRED = {"segmentation": ("scenario", "vendor", "seed"), "fgsm": ("scenario", "vendor", "seed", "attack", "eps")}


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
    """

    path: Path
    manifest: dict[str, Any]
    segmentation: pd.DataFrame
    fgsm: pd.DataFrame
    throughput: pd.DataFrame
    per_image: pd.DataFrame

    @property
    def synthetic(self) -> bool:
        """True when the manifest says the data are the built-in phantom."""
        return bool(self.manifest.get("synthetic", False))

    @property
    def oracle(self) -> bool:
        """True when any number of this run comes from oracle (target-label) model selection."""
        if self.manifest.get("oracle"):
            return True
        frames = (self.segmentation, self.fgsm)
        return any("selection" in f and (f["selection"] == "oracle").any() for f in frames)


def read_rows(run_dir: Path) -> list[dict[str, Any]]:
    """All complete rows of ``run_dir/results.jsonl``, validated.

    Args:
        run_dir: the run folder.

    Raises:
        UserError: the folder or its ``results.jsonl`` is missing.
        DataError: a row is not JSON, has the wrong schema version, an unknown kind or lacks a key field.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: run folder not found")
    path = run_dir / "results.jsonl"
    if not path.is_file():
        raise UserError(f"{path}: results file not found (is {run_dir} a run folder?)")
    try:
        rows = list(ResultsFile(path).rows())
    except UserError as exc:
        raise DataError(str(exc)) from None
    for number, row in enumerate(rows, 1):
        _check_row(row, f"{path}:{number}")
    return rows


def _check_row(row: Any, where: str) -> None:
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
    kind = row.get("kind")
    if kind not in KINDS:
        raise DataError(f"{where}: unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    if not isinstance(row.get("metrics"), dict):
        raise DataError(f"{where}: row has no 'metrics' object")
    for key in _REQUIRED.get(kind, ()):
        if key not in row:
            raise DataError(f"{where}: {kind} row lacks {key!r}")
    if kind in ("segmentation", "fgsm") and not isinstance(row["metrics"].get("dice_mean"), (int, float)):
        raise DataError(f"{where}: {kind} row lacks a numeric metrics.dice_mean")


def read_manifest(run_dir: Path) -> dict[str, Any]:
    """``run_dir/manifest.json`` as a dict; an empty dict when the run wrote none.

    Args:
        run_dir: the run folder.

    Raises:
        DataError: the manifest exists but is not a JSON object.
    """
    path = Path(run_dir) / "manifest.json"
    if not path.is_file():
        return {}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise DataError(f"{path}: expected a JSON object")
    return manifest


def _flatten(row: dict[str, Any], metric_names: tuple[str, ...]) -> dict[str, Any]:
    flat = {k: v for k, v in row.items() if k not in ("metrics", "config") and not isinstance(v, (dict, list))}
    config = row.get("config")
    if "fold" not in flat and isinstance(config, dict) and config.get("fold") is not None:
        # Cross-validated cells name their fold in the task config; rows may not repeat it.
        flat["fold"] = config["fold"]
    metrics = row["metrics"]
    for name in metric_names:
        flat[name] = metrics.get(name)
    return flat


def rows_to_frame(rows: list[dict[str, Any]], kind: str) -> pd.DataFrame:
    """The rows of one kind as a flat table, one column per key field and metric.

    Args:
        rows: validated rows (see :func:`read_rows`).
        kind: ``"segmentation"``, ``"fgsm"`` or ``"throughput"``.
    """
    metric_names = {"segmentation": SEGMENTATION_METRICS, "fgsm": FGSM_METRICS, "throughput": THROUGHPUT_METRICS}[kind]
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


def read_per_image(run_dir: Path, segmentation: pd.DataFrame) -> pd.DataFrame:
    """Every per-image CSV named by a segmentation row, tagged with that row's key fields.

    A row whose CSV is absent contributes nothing here (its row-level metrics still count in
    the tables). Columns: :data:`PER_IMAGE_COLUMNS` plus scenario, vendor, role, seed, fold, selection, cell_id.

    Args:
        run_dir: the run folder.
        segmentation: the table from :func:`rows_to_frame` for ``"segmentation"``.

    Raises:
        DataError: a CSV exists but lacks a required column or cannot be parsed.
    """
    run_dir = Path(run_dir)
    parts = []
    for _, row in segmentation.iterrows():
        rel = row.get("per_image")
        if not isinstance(rel, str) or not rel:
            continue
        path = (run_dir / rel).resolve()
        if run_dir.resolve() not in path.parents:
            raise DataError(f"{run_dir}: per_image path {rel!r} points outside the run folder")
        if not path.is_file():
            continue
        try:
            table = pd.read_csv(path)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: cannot read per-image CSV ({exc})") from None
        missing = [c for c in ("index", "dice_mean") if c not in table]
        if missing:
            raise DataError(f"{path}: per-image CSV lacks column {missing[0]!r}")
        for column in PER_IMAGE_COLUMNS:
            if column not in table:
                table[column] = float("nan") if column.startswith(("dice", "hd95")) else None
        table = table[list(PER_IMAGE_COLUMNS)].copy()
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
    rows = read_rows(run_dir)
    segmentation = rows_to_frame(rows, "segmentation")
    return Run(
        path=run_dir,
        manifest=read_manifest(run_dir),
        segmentation=segmentation,
        fgsm=rows_to_frame(rows, "fgsm"),
        throughput=rows_to_frame(rows, "throughput"),
        per_image=read_per_image(run_dir, segmentation),
    )
