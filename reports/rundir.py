"""The run folder on disk: its file names, and reading ``results.jsonl``, ``manifest.json`` and per-image CSVs.

This is the one module that knows the layout of a run folder and the shape of a results row.
The runner (to resume), the report and the comparison all read through it, and the runner's
row builder checks every row with :func:`parse_row` before writing it, so what is written is
what can be read. It imports nothing from ``bench`` (which imports ``reports``), so both sides
use it without an import circle.

Reading is strict: anything that is not a well-formed row (not UTF-8, not JSON, not an
object, a field of the wrong type, an unknown schema version) raises a one-line
``DataError`` naming the file and line. A partial last line is the one exception: it is what a
run killed in the middle of a write leaves, and it never counts (see ``bench.results``).

Schema version 2 rows describe themselves (docs/architecture.md, "Results"). Version 1 rows,
written before, are converted to the version 2 shape on reading; what they did not record
(commit, machine) is None or empty.
"""

from __future__ import annotations

import json
import reprlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from unetgan_core.errors import DataError, UserError

SCHEMA_VERSION = 2
RESULTS = "results.jsonl"
MANIFEST = "manifest.json"
PER_IMAGE = "per_image"
FIGURES = "figures"
LOSS_TERMS = "loss_terms"
KINDS = ("segmentation", "fgsm", "corruption", "throughput")

# Throughput settings, under one name each, and the measurements of a throughput row.
THROUGHPUT_SETTINGS = ("pipeline", "batch_size", "size_px", "precision", "channels_last", "compile")
# Fields of a ``run_throughput`` result that a row records elsewhere: ``device`` at the top,
# the machine in ``machine``, warmup and repeat counts in the cell's ``config``.
_RECORDED_ELSEWHERE = ("device", "device_name", "torch_version", "threads", "warmup", "repeats")
# What ``unetgan_core.throughput.run_throughput`` calls a setting -> its name in a row.
_THROUGHPUT_RENAMES = {"requested_batch": "batch_size", "image_size": "size_px", "batch": "batch_used"}
PER_IMAGE_COLUMNS = ("index", "subject", "slice_index", "phase", "dice_blood_pool", "dice_myo", "dice_mean", "hd95_mm")
_PER_IMAGE_NUMERIC = ("index", "dice_blood_pool", "dice_myo", "dice_mean", "hd95_mm")


# -- field types ---------------------------------------------------------------------------------------------------
def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is None or check(v)


_TYPES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "str": (lambda v: isinstance(v, str), "a string"),
    "str?": (_optional(lambda v: isinstance(v, str)), "a string or null"),
    "int": (_is_int, "an integer"),
    "int?": (_optional(_is_int), "an integer or null"),
    "number": (_is_number, "a number"),
    "number?": (_optional(_is_number), "a number or null"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "bool?": (_optional(lambda v: isinstance(v, bool)), "true, false or null"),
    "object": (lambda v: isinstance(v, dict), "an object"),
    "object?": (_optional(lambda v: isinstance(v, dict)), "an object or null"),
}
# Every version 2 row: what it is, the cell, where it was measured (code and machine), and the
# resolved settings of its cell (``config``).
_COMMON = {
    "schema_version": "int",
    "kind": "str",
    "cell_id": "str",
    "suite": "str",
    "device": "str",
    "metrics": "object",
    "config": "object",
    "commit": "str?",
    "dirty": "bool?",
    "package_version": "str?",
    "machine": "object",
}
# ``settings`` holds the swept settings of a ``[sweep]`` cell (``{"translator.lambda_unet": 15.0}``); absent otherwise.
# ``status`` is "ok" or "failed_training" (``training.health.OK``/``FAILED``; with ``status_reason``): whether the models the cell's
# pipeline uses passed their training health check (``unetgan_core.training.health``).
_CELL = {
    "scenario": "str",
    "vendor": "str",
    "role": "str?",
    "seed": "int",
    "selection": "str?",
    "fold": "int?",
    "status": "str?",
    "status_reason": "str?",
    "settings": "object?",
}
FIELDS = {
    "segmentation": {**_COMMON, **_CELL, "per_image": "str?", "fast_path_check": "object?"},
    "fgsm": {**_COMMON, **_CELL, "attack": "str", "eps": "number", "target": "str?", "attack_note": "str?"},
    # ``level`` is the corruption's physical parameter at ``severity`` (null at 0, the uncorrupted reference).
    "corruption": {
        **_COMMON,
        **_CELL,
        "corruption": "str",
        "severity": "int",
        "level": "number?",
        "level_unit": "str?",
    },
    "throughput": {
        **_COMMON,
        "pipeline": "str",
        # null in the one row that records a precision skipped for every setting (pipeline "all")
        "batch_size": "int?",
        "size_px": "int?",
        "precision": "str",
        "channels_last": "bool?",
        "compile": "bool?",
        "error": "str?",
    },
}
# Fields a row may leave out (read as null).
_OPTIONAL_FIELDS = {
    "fold",
    "fast_path_check",
    "error",
    "role",
    "selection",
    "per_image",
    "target",
    "attack_note",
    "status",
    "status_reason",
    "level",
    "level_unit",
    "settings",
}


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 40


def _short(value: Any) -> str:
    """A value for a one-line message: its repr, shortened."""
    return _REPR.repr(value)


def check_row(row: dict[str, Any], where: str, unrecorded: frozenset[str] = frozenset()) -> None:
    """Raise ``DataError`` unless ``row`` is a well-formed version 2 row.

    Args:
        row: the row, as read from JSON.
        where: names the row in the message, e.g. ``"runs/x/results.jsonl:3"``.
        unrecorded: fields that may be null because the row's schema version did not require them.
    """
    kind = row.get("kind")
    if kind not in KINDS:
        raise DataError(f"{where}: unknown kind {_short(kind)}; expected one of {', '.join(KINDS)}")
    for field, type_name in FIELDS[kind].items():
        if field not in row and field in _OPTIONAL_FIELDS:
            continue
        if field not in row:
            raise DataError(f"{where}: {kind} row lacks {field!r}")
        check, description = _TYPES[type_name]
        if not check(row[field]) and not (field in unrecorded and row[field] is None):
            raise DataError(f"{where}: {field!r} must be {description}, got {_short(row[field])}")
    for name, value in row["metrics"].items():
        if not (value is None or _is_number(value)):
            raise DataError(f"{where}: metrics.{name} must be a number or null, got {_short(value)}")


def throughput_fields(measured: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split one ``run_throughput`` result into a row's settings (with ``error``) and its metrics.

    Settings get their row names (``batch_size`` is the batch asked for, ``size_px`` the image
    side); ``batch_used`` (smaller after an out-of-memory retry) is a measurement. The device,
    machine and warmup/repeat counts are left out: the row records them elsewhere.
    """
    named = {_THROUGHPUT_RENAMES.get(k, k): v for k, v in measured.items()}
    settings = {k: named.get(k) for k in (*THROUGHPUT_SETTINGS, "error")}
    skip = {*settings, *_RECORDED_ELSEWHERE}
    return settings, {k: v for k, v in named.items() if k not in skip}


# What a version 1 reader required of a row besides ``kind`` and ``metrics``; every other field
# a version 1 row lacks is read as null.
_V1_REQUIRED = {"segmentation": ("scenario", "vendor", "seed"), "fgsm": ("scenario", "vendor", "seed", "attack", "eps")}


def _from_v1(row: dict[str, Any], where: str) -> tuple[dict[str, Any], frozenset[str]]:
    """A version 1 row in the version 2 shape (module docstring), and the fields it did not record."""
    metrics = row.get("metrics")
    if not isinstance(metrics, dict):
        raise DataError(f"{where}: row has no 'metrics' object")
    config = row.get("config") if isinstance(row.get("config"), dict) else {}
    out = {k: v for k, v in row.items() if k not in ("metrics", "config")}
    out.update(schema_version=SCHEMA_VERSION, config=config, commit=None, dirty=None, package_version=None)
    metrics = dict(metrics)
    machine = {k: metrics.pop(k) for k in ("device_name", "threads") if k in metrics}
    if "torch_version" in metrics:
        machine["torch"] = metrics.pop("torch_version")
    out["machine"] = machine
    out["device"] = out.get("device") or metrics.pop("device", None) or "unrecorded"
    metrics.pop("device", None)
    if out.get("kind") == "throughput":
        flat = {**metrics, **{k: v for k, v in out.items() if k in (*THROUGHPUT_SETTINGS, *_THROUGHPUT_RENAMES)}}
        if "requested_batch" not in flat and "batch_size" not in flat:
            flat["batch_size"] = flat.get("batch")  # the batch asked for was not recorded apart
        settings, metrics = throughput_fields(flat)
        for name in ("scenario", "vendor", "seed", *_THROUGHPUT_RENAMES):
            out.pop(name, None)
        out.update(settings)
    else:
        if "fast_path" in metrics:
            out["fast_path_check"] = metrics.pop("fast_path")
        if "fold" not in out and config.get("fold") is not None:
            out["fold"] = config["fold"]  # version 1 rows named the fold only in the task config
    out["metrics"] = metrics
    kind = out.get("kind")
    for field in _V1_REQUIRED.get(kind, ()):
        if field not in out:
            raise DataError(f"{where}: {kind} row lacks {field!r}")
    required = _V1_REQUIRED.get(kind, ())  # these must have their type, as in version 2
    unrecorded = frozenset(f for f in FIELDS.get(kind, {}) if f not in required and (f not in out or out[f] is None))
    return {**dict.fromkeys(unrecorded), **out}, unrecorded


def parse_row(value: Any, where: str) -> dict[str, Any]:
    """A results row (version 1 or 2) as a checked version 2 row; ``DataError`` naming ``where`` otherwise."""
    if not isinstance(value, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(value).__name__} {_short(value)}")
    version = value.get("schema_version")
    unrecorded: frozenset[str] = frozenset()
    if version == 1:
        value, unrecorded = _from_v1(value, where)
    elif version != SCHEMA_VERSION:
        raise DataError(f"{where}: schema_version {_short(version)}; this version reads 1 and {SCHEMA_VERSION}")
    check_row(value, where, unrecorded)
    return value


# -- reading -------------------------------------------------------------------------------------------------------
def read_rows(run_dir: Path | str, missing_ok: bool = False) -> list[dict[str, Any]]:
    """Every complete row of ``run_dir/results.jsonl`` as a checked version 2 row, in file order.

    Args:
        run_dir: the run folder.
        missing_ok: return ``[]`` when the folder or file does not exist yet (a new run).

    Raises:
        UserError: the folder or file is missing (unless ``missing_ok``).
        DataError: a line is not UTF-8, not JSON, or not a well-formed row (names file and line).
    """
    run_dir = Path(run_dir)
    path = run_dir / RESULTS
    if not path.is_file():
        if missing_ok and not path.exists():
            return []
        if not run_dir.is_dir():
            raise UserError(f"{run_dir}: run folder not found")
        raise UserError(f"{path}: results file not found (is {run_dir} a run folder?)")
    lines = path.read_bytes().split(b"\n")[:-1]  # what follows the last newline is a partial row
    rows = []
    for number, raw in enumerate(lines, 1):
        where = f"{path}:{number}"
        try:
            value = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise DataError(f"{where}: not UTF-8 text") from None
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: not a JSON row ({exc.msg})") from None
        rows.append(parse_row(value, where))
    return rows


def read_manifest(run_dir: Path | str) -> dict[str, Any]:
    """``run_dir/manifest.json`` as a dict; an empty dict when the run wrote none.

    Raises:
        DataError: the manifest is not UTF-8, not JSON, or not a JSON object.
    """
    path = Path(run_dir) / MANIFEST
    return _read_object(path) if path.is_file() else {}


def _read_object(path: Path) -> dict[str, Any]:
    """A JSON file that holds one object, or a one-line ``DataError``."""
    try:
        value = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(value, dict):
        raise DataError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value


# -- translator loss terms -----------------------------------------------------------------------------------------
# One file per measured translator cell: the cell's tags, the loss weights, the selected step and every checkpoint
# record of its training (``training.translation``: ``loss_<term>`` means since the previous check, ``probe_<term>``
# on fixed held-out images). The runner copies them from the artifact store so the report needs only the folder.
_LOSS_TERM_FIELDS = {
    "scenario": "str",
    "vendor": "str",
    "seed": "int",
    "best_step": "int?",
    "weights": "object",
    "checks": None,
}


def loss_terms_path(run_dir: Path | str, cell_id: str) -> Path:
    """Where the runner writes the loss terms of the translator a segmentation cell uses."""
    return Path(run_dir) / LOSS_TERMS / f"{cell_id}.json"


def read_loss_terms(run_dir: Path | str) -> list[dict[str, Any]]:
    """Every loss-term file of a run (sorted by name); [] when the run has none.

    Raises:
        DataError: a file is not a JSON object, lacks a field or holds one of the wrong type, or a checkpoint
            record is not an object of numbers (besides its ``selection`` text); one line naming the file.
    """
    out = []
    for path in sorted((Path(run_dir) / LOSS_TERMS).glob("*.json")):
        record = _read_object(path)
        for name, type_name in _LOSS_TERM_FIELDS.items():
            if name not in record:
                raise DataError(f"{path}: lacks {name!r}")
            if type_name is not None and not _TYPES[type_name][0](record[name]):
                raise DataError(f"{path}: {name!r} must be {_TYPES[type_name][1]}, got {_short(record[name])}")
        checks = record["checks"]
        if not isinstance(checks, list) or not all(isinstance(c, dict) and _is_int(c.get("step")) for c in checks):
            raise DataError(f"{path}: 'checks' must be a list of objects with an integer 'step'")
        for check in checks:
            bad = [k for k, v in check.items() if k != "selection" and not (v is None or _is_number(v))]
            if bad:
                raise DataError(f"{path}: checkpoint {check['step']}: {bad[0]!r} must be a number or null")
        out.append(record)
    return out


def read_per_image(run_dir: Path | str, relative: str) -> pd.DataFrame | None:
    """The per-image CSV a segmentation row names, with every column of :data:`PER_IMAGE_COLUMNS`.

    Args:
        run_dir: the run folder.
        relative: the row's ``per_image`` path, relative to the run folder.

    Returns:
        The table (absent columns filled with NaN or None), or None when the file is absent.

    Raises:
        DataError: the path leaves the run folder, or the file cannot be parsed, lacks ``index``
            or ``dice_mean``, or holds a non-numeric value in a numeric column.
    """
    run_dir = Path(run_dir)
    path = (run_dir / relative).resolve()
    if run_dir.resolve() not in path.parents:
        raise DataError(f"{run_dir}: per_image path {relative!r} points outside the run folder")
    if not path.is_file():
        return None
    try:
        table = pd.read_csv(path, encoding="utf-8")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read per-image CSV ({str(exc).splitlines()[0]})") from None
    missing = [c for c in ("index", "dice_mean") if c not in table]
    if missing:
        raise DataError(f"{path}: per-image CSV lacks column {missing[0]!r}")
    for column in PER_IMAGE_COLUMNS:
        if column not in table:
            table[column] = float("nan") if column in _PER_IMAGE_NUMERIC else None
        elif column in _PER_IMAGE_NUMERIC and not pd.api.types.is_numeric_dtype(table[column]):
            raise DataError(f"{path}: per-image column {column!r} holds a value that is not a number")
    return table[list(PER_IMAGE_COLUMNS)].copy()


# -- figures -------------------------------------------------------------------------------------------------------
def fgsm_panel_path(run_dir: Path | str, scenario: str, vendor: str) -> Path:
    """Where the runner saves the Fig. 1 panel data of one attacked (scenario, vendor)."""
    return Path(run_dir) / FIGURES / f"fgsm_{scenario}_{vendor}.npz"


def corruption_panel_path(run_dir: Path | str, scenario: str, vendor: str, corruption: str) -> Path:
    """Where the runner saves the example images of one (pipeline, vendor, corruption) cell."""
    return Path(run_dir) / FIGURES / f"corruption_{scenario}_{vendor}_{corruption}.npz"


def corruption_panel_files(run_dir: Path | str) -> list[tuple[str, str, str, Path]]:
    """(scenario, vendor, corruption, path) of every corruption panel file of a run, sorted by path.

    The tags are read from the file; a file that cannot be read gets empty scenario and vendor and its
    name as corruption, so the report says it could not be drawn instead of leaving it out.
    """
    found = []
    for path in sorted((Path(run_dir) / FIGURES).glob("corruption_*.npz")):
        try:
            with np.load(path, allow_pickle=False) as data:
                found.append((str(data["scenario"]), str(data["vendor"]), str(data["corruption"]), path))
        except (OSError, ValueError, KeyError):
            found.append(("", "", path.stem, path))
    return found


def fgsm_panel_files(run_dir: Path | str, scenarios: list[str]) -> list[tuple[str, str, Path]]:
    """(scenario, vendor, path) of every FGSM panel file of a run, sorted by path.

    The runner stores ``scenario`` and ``vendor`` in the file. Older files carry only their
    name, which is split at the longest of ``scenarios`` (the attacked ones) it starts with, else
    at its first ``_``.
    """
    found = []
    for path in sorted((Path(run_dir) / FIGURES).glob("fgsm_*.npz")):
        try:
            with np.load(path, allow_pickle=False) as data:
                if "scenario" in data.files and "vendor" in data.files:
                    found.append((str(data["scenario"]), str(data["vendor"]), path))
                    continue
        except (OSError, ValueError):
            pass  # unreadable: named from the file name here; drawing it reports the problem
        stem = path.stem[len("fgsm_") :]
        known = sorted((s for s in scenarios if stem.startswith(s + "_")), key=len, reverse=True)
        scenario = known[0] if known else stem.split("_", 1)[0]
        found.append((scenario, stem[len(scenario) + 1 :], path))
    return found
