"""Record run folders in the history database and read them back as tables.

:func:`add_run` writes one run (its manifest, every metric of every row, per-cell summaries and
the per-image values) in one transaction: a run folder that cannot be read leaves the database
as it was. :func:`runs_table`, :func:`metric_table` and :func:`export_table` read it back.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from unetgan_bench.bench.history.schema import PER_IMAGE, RESULTS, RUNS, open_engine, suite_hash
from unetgan_bench.reports.collect import Run, load_run
from unetgan_bench.reports.rundir import MANIFEST, THROUGHPUT_SETTINGS
from unetgan_bench.reports.rundir import RESULTS as RESULTS_FILE
from unetgan_bench.reports.runstats import RunStats
from unetgan_core.errors import UserError

# Metrics kept per row kind (the rest of a row's metrics stay in its run folder).
ROW_METRICS = {
    "segmentation": ("dice_mean", "dice_blood_pool", "dice_myo", "hd95_mm", "n_images"),
    "fgsm": ("dice_mean", "psnr_db", "ssim"),
    "throughput": ("images_per_s", "ms_per_batch_median", "ms_per_batch_iqr"),
}
EXPORT_TABLES = ("results", "per_image", "runs")


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _int(value: Any) -> int | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else int(value)


def _fingerprint(run_dir: Path) -> str:
    digest = hashlib.sha256()
    for name in (RESULTS_FILE, MANIFEST):
        digest.update((run_dir / name).read_bytes())
    return digest.hexdigest()


def _setting(row: pd.Series) -> str:
    return " ".join(f"{c}={row[c]}" for c in (*THROUGHPUT_SETTINGS[1:], "device") if c in row and pd.notna(row[c]))


def _metric_rows(run: Run) -> list[dict[str, Any]]:
    out = []
    for kind, metrics in ROW_METRICS.items():
        for _, row in getattr(run, kind).iterrows():
            key = {
                "kind": kind,
                "scenario": row["pipeline"] if kind == "throughput" else row["scenario"],
                "vendor": None if kind == "throughput" else row["vendor"],
                "seed": None if kind == "throughput" else _int(row["seed"]),
                "fold": _int(row.get("fold")),
                "attack": row.get("attack") if kind == "fgsm" else None,
                "eps": _number(row.get("eps")) if kind == "fgsm" else None,
                "setting": _setting(row) if kind == "throughput" else None,
            }
            out += [{**key, "metric": m, "value": _number(row.get(m))} for m in metrics if m in row]
    return out


def _summary_rows(run: Run) -> list[dict[str, Any]]:
    """Per cell: Dice over seeds with its bootstrap CI, and eps50 per attack (what the trend page draws)."""
    stats = RunStats(run)
    out = []
    blank = {"kind": "summary", "seed": None, "fold": None, "eps": None, "setting": None}
    if not run.segmentation.empty:
        for _, cell in stats.segmentation("dice_mean").iterrows():
            for metric, column in (("dice_mean", "mean"), ("dice_ci_low", "ci95_low"), ("dice_ci_high", "ci95_high")):
                out.append(
                    {**blank, "scenario": cell["scenario"], "vendor": cell["vendor"], "attack": None}
                    | {"metric": metric, "value": _number(cell[column])}
                )
    if not run.fgsm.empty:
        for _, cell in stats.eps50.iterrows():
            value = cell["eps50"]
            out.append(
                {**blank, "scenario": cell["scenario"], "vendor": cell["vendor"], "attack": cell["attack"]}
                | {"metric": "eps50", "value": None if value is None or math.isinf(value) else _number(value)}
            )
    return out


def _per_image_rows(run: Run) -> list[dict[str, Any]]:
    frame = run.per_image
    return [
        {
            "scenario": r["scenario"],
            "vendor": r["vendor"],
            "seed": int(r["seed"]),
            "fold": _int(r["fold"]),
            "image_index": int(r["index"]),
            "subject": None if pd.isna(r["subject"]) else str(r["subject"]),
            **{m: _number(r[m]) for m in ("dice_mean", "dice_blood_pool", "dice_myo", "hd95_mm")},
        }
        for _, r in frame.iterrows()
    ]


def add_run(run_dir: Path | str, db: str | Path | None = None) -> int:
    """Record a run folder in the history; returns its ``run_id``.

    Args:
        run_dir: a run folder with ``results.jsonl`` and ``manifest.json``.
        db: database path or SQLAlchemy URL (default ``runs/history.sqlite``).

    Raises:
        UserError: the folder has no manifest or no rows, a file is malformed, the database is
            from a newer schema, or the same run is already recorded. Nothing is written then.
    """
    run_dir = Path(run_dir)
    if not (run_dir / MANIFEST).is_file():
        raise UserError(f"history add: {run_dir}: no {MANIFEST} (not a complete run folder)")
    run = load_run(run_dir)
    if run.segmentation.empty and run.fgsm.empty and run.throughput.empty:
        raise UserError(f"history add: {run_dir}: the run has no result rows")
    manifest = run.manifest
    if not isinstance(manifest.get("suite"), str):
        raise UserError(f"history add: {run_dir / MANIFEST}: records no suite name")
    fingerprint = _fingerprint(run_dir)
    report = run_dir / "report.html"
    record = {
        "fingerprint": fingerprint,
        "run_dir": str(run_dir.resolve()),
        "suite": manifest["suite"],
        "suite_hash": suite_hash(manifest),
        "commit": manifest.get("commit"),
        "dirty": manifest.get("dirty"),
        "started": manifest.get("started"),
        "finished": manifest.get("finished"),
        "machine": json.dumps(manifest.get("machine") or {}, sort_keys=True),
        "numerics": json.dumps(manifest.get("numerics") or {}, sort_keys=True),
        "manifest": json.dumps(manifest, sort_keys=True),
        "report": str(report.resolve()) if report.is_file() else None,
        "added": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    metric_rows = _metric_rows(run) + _summary_rows(run)
    image_rows = _per_image_rows(run)
    engine = open_engine(db)
    with engine.begin() as conn:  # one transaction: all of the run or nothing
        known = conn.execute(sa.select(RUNS.c.run_id).where(RUNS.c.fingerprint == fingerprint)).scalar()
        if known is not None:
            raise UserError(f"history add: {run_dir} is already recorded as run {known}")
        run_id = conn.execute(RUNS.insert().values(**record)).inserted_primary_key[0]
        conn.execute(RESULTS.insert(), [{"run_id": run_id, **r} for r in metric_rows])
        if image_rows:
            conn.execute(PER_IMAGE.insert(), [{"run_id": run_id, **r} for r in image_rows])
    return int(run_id)


def runs_table(db: str | Path | None = None) -> pd.DataFrame:
    """Every recorded run, oldest first: run_id, suite, commit, dirty, started, device, cpu_capability, rows, report."""
    engine = open_engine(db)
    with engine.connect() as conn:
        runs = pd.read_sql(sa.select(RUNS).order_by(RUNS.c.run_id), conn)
        counts = pd.read_sql(
            sa.select(RESULTS.c.run_id, sa.func.count().label("values")).group_by(RESULTS.c.run_id), conn
        )
    runs = runs.merge(counts, on="run_id", how="left")
    machines = [json.loads(m) for m in runs["machine"]] if len(runs) else []
    runs["device"] = [m.get("device_name") for m in machines]
    runs["cpu_capability"] = [m.get("cpu_capability") for m in machines]
    return runs[
        ["run_id", "suite", "commit", "dirty", "started", "device", "cpu_capability", "values", "suite_hash", "report"]
    ]


def metric_rows(db: str | Path | None = None, **where: str | None) -> pd.DataFrame:
    """Every stored value joined with its run (commit, started, machine), filtered by column equality.

    Args:
        db: database path or URL.
        where: ``suite``, ``kind``, ``metric``, ``vendor``, ``scenario`` (None: any).
    """
    engine = open_engine(db)
    query = sa.select(
        RESULTS,
        RUNS.c.suite,
        RUNS.c.commit,
        RUNS.c.dirty,
        RUNS.c.started,
        RUNS.c.machine,
        RUNS.c.numerics,
        RUNS.c.report,
    ).join(RUNS, RUNS.c.run_id == RESULTS.c.run_id)
    for column, value in where.items():
        if value is not None:
            query = query.where((RUNS.c[column] if column == "suite" else RESULTS.c[column]) == value)
    with engine.connect() as conn:
        return pd.read_sql(query.order_by(RESULTS.c.run_id), conn)


def metric_table(
    metric: str,
    db: str | Path | None = None,
    suite: str | None = None,
    vendor: str | None = None,
    scenario: str | None = None,
) -> pd.DataFrame:
    """One metric over runs: the mean over seeds per (run, suite, kind, scenario, vendor, attack, eps, setting).

    Raises:
        UserError: no stored value matches.
    """
    rows = metric_rows(db, metric=metric, suite=suite, vendor=vendor, scenario=scenario)
    if (rows["kind"] != "summary").any():  # per-seed rows where they exist; eps50 exists only as a summary
        rows = rows[rows["kind"] != "summary"]
    if rows.empty:
        raise UserError(f"history show: no stored value of {metric!r} matches (see `unetgan-bench history list`)")
    keys = ["run_id", "commit", "started", "suite", "kind", "scenario", "vendor", "attack", "eps", "setting"]
    grouped = rows.groupby(keys, dropna=False, sort=False)["value"]
    table = grouped.agg(mean="mean", std_seeds="std", n_seeds="count").reset_index()
    table["commit"] = table["commit"].str[:10]
    return table.dropna(axis=1, how="all")


def reference_run(reference: str, db: str | Path | None = None) -> Path:
    """The run folder ``reference`` names: a folder itself, or the ``run_id`` of a recorded run whose folder still exists."""
    if Path(reference).is_dir():
        return Path(reference)
    if not reference.isdigit():
        raise UserError(f"history check: --against {reference!r} is neither a run folder nor a recorded run id")
    engine = open_engine(db)
    with engine.connect() as conn:
        run_dir = conn.execute(sa.select(RUNS.c.run_dir).where(RUNS.c.run_id == int(reference))).scalar()
    if run_dir is None:
        raise UserError(f"history check: no run {reference} in {db or 'the history'}")
    if not Path(run_dir).is_dir():
        raise UserError(f"history check: run {reference}'s folder {run_dir} no longer exists")
    return Path(run_dir)


def export_table(out: Path | str, db: str | Path | None = None, table: str = "results") -> Path:
    """Write one history table (``results`` with its run's commit and machine, ``per_image`` or ``runs``) for pandas.

    Args:
        out: a ``.parquet`` or ``.csv`` file.
        db: database path or URL.
        table: which table.
    """
    out = Path(out)
    if out.suffix not in (".parquet", ".csv"):
        raise UserError(f"history export: {out}: the file must end in .parquet or .csv")
    if not out.parent.is_dir():
        raise UserError(f"history export: folder {out.parent} does not exist")
    if table not in EXPORT_TABLES:
        raise UserError(f"history export: unknown table {table!r}; known: {', '.join(EXPORT_TABLES)}")
    if table == "results":
        frame = metric_rows(db)
    else:
        engine = open_engine(db)
        with engine.connect() as conn:
            frame = pd.read_sql(sa.select(PER_IMAGE if table == "per_image" else RUNS), conn)
    if out.suffix == ".parquet":
        frame.to_parquet(out, index=False)
    else:
        frame.to_csv(out, index=False)
    return out
