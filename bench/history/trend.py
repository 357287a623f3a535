"""``unetgan-bench history report``: the trend page's points, read from the history database.

Per suite, runs are ordered by their start time. For each run and (vendor, scenario) the page
shows the Dice over seeds with its bootstrap CI and the eps50 of the FGSM attack, both stored by
``history add``, and each suite's images per second. A cell is flagged when the noise-aware gate
(``bench.gate_cells``, on the per-image values stored in the database) finds it regressed against
the previous run of the same suite.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from unetgan_bench.bench.compare_settings import DEFAULTS
from unetgan_bench.bench.gate_cells import segmentation_cells
from unetgan_bench.bench.history.schema import PER_IMAGE, RUNS, open_engine
from unetgan_bench.bench.history.store import metric_rows
from unetgan_bench.reports.collect import Run
from unetgan_bench.reports.trend import POINT_COLUMNS, THROUGHPUT_COLUMNS, render_trend
from unetgan_core.errors import UserError

EPS50_ATTACK = "fgsm"  # the attack whose eps50 the page draws


def _machine(numerics: str, machine: str) -> str:
    recorded = json.loads(numerics) or json.loads(machine)
    parts = [recorded.get(k) for k in ("device_name", "cpu_capability", "torch")]
    return " / ".join(str(p) for p in parts if p) or "unrecorded machine"


def _runs(engine: sa.Engine) -> pd.DataFrame:
    with engine.connect() as conn:
        runs = pd.read_sql(sa.select(RUNS), conn)
    if runs.empty:
        raise UserError("history report: the database holds no run (add some with `unetgan-bench history add`)")
    runs["machine_label"] = [_machine(n, m) for n, m in zip(runs["numerics"], runs["machine"], strict=True)]
    runs = runs.sort_values(["suite", "started", "run_id"], na_position="first")
    runs["order"] = runs.groupby("suite").cumcount()
    return runs


def _as_run(engine: sa.Engine, run_id: int, manifest: str) -> Run:
    """The stored per-image values of one run, shaped as much of a :class:`Run` as the gate reads."""
    with engine.connect() as conn:
        table = pd.read_sql(sa.select(PER_IMAGE).where(PER_IMAGE.c.run_id == int(run_id)), conn)
    table = table.rename(columns={"image_index": "index"})
    empty = pd.DataFrame()
    return Run(Path(f"run-{run_id}"), json.loads(manifest), empty, empty, empty, table)


def _flags(engine: sa.Engine, runs: pd.DataFrame, margin: float) -> dict[tuple, tuple[str, str]]:
    """(run_id, vendor, scenario) -> (status, detail) of the gate against the suite's previous run."""
    flags = {}
    for _, suite_runs in runs.groupby("suite"):
        ordered = suite_runs.sort_values("order")
        previous = None
        for _, run in ordered.iterrows():
            current = _as_run(engine, run["run_id"], run["manifest"])
            if previous is not None and not current.per_image.empty:
                rows, _ = segmentation_cells(previous, current, margin)
                for row in rows:
                    if row["metric"] != "dice_mean":
                        continue
                    scenario, vendor = row["key"].split(" / ", 1)
                    detail = (
                        f"{row['delta']:+.3f} Dice vs the previous run, 95% CI {row['ci_low']:+.3f} .. {row['ci_high']:+.3f}, "
                        f"minimum detectable drop {row['mdd']:.3f} ({row['method']})"
                    )
                    status = "within noise" if row["status"] == "noise" else row["status"]
                    flags[(run["run_id"], vendor, scenario)] = (status, detail)
            previous = current
    return flags


def trend_tables(
    db: str | Path | None = None, margin: float = DEFAULTS.dice_margin
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The trend page's points (:data:`reports.trend.POINT_COLUMNS`) and throughput rows."""
    engine = open_engine(db)
    runs = _runs(engine).set_index("run_id", drop=False)
    summary = metric_rows(db, kind="summary")
    cells = summary[summary["metric"].isin(["dice_mean", "dice_ci_low", "dice_ci_high"])]
    points = cells.set_index(["run_id", "suite", "vendor", "scenario", "metric"])["value"].unstack("metric")
    points = points.reset_index().rename(
        columns={"dice_mean": "dice", "dice_ci_low": "dice_low", "dice_ci_high": "dice_high"}
    )
    eps = summary[(summary["metric"] == "eps50") & (summary["attack"] == EPS50_ATTACK)]
    eps = eps[["run_id", "vendor", "scenario", "value"]].rename(columns={"value": "eps50"})
    points = points.merge(eps, on=["run_id", "vendor", "scenario"], how="left")
    flags = _flags(engine, runs, margin)
    points["flag"] = [
        flags.get((r, v, s), ("", ""))[0]
        for r, v, s in zip(points["run_id"], points["vendor"], points["scenario"], strict=True)
    ]
    points["flag_detail"] = [
        flags.get((r, v, s), ("", ""))[1]
        for r, v, s in zip(points["run_id"], points["vendor"], points["scenario"], strict=True)
    ]
    for column, source in (
        ("order", "order"),
        ("commit", "commit"),
        ("machine", "machine_label"),
        ("report", "report"),
    ):
        points[column] = runs.loc[points["run_id"], source].to_numpy()
    speed = metric_rows(db, kind="throughput", metric="images_per_s")
    speed = speed.groupby(["run_id", "suite", "scenario", "setting"], as_index=False)["value"].mean()
    speed["setting"] = speed["scenario"] + " " + speed["setting"].fillna("")
    speed = speed.rename(columns={"value": "images_per_s"})
    for column, source in (
        ("order", "order"),
        ("commit", "commit"),
        ("machine", "machine_label"),
        ("report", "report"),
    ):
        speed[column] = runs.loc[speed["run_id"], source].to_numpy() if len(speed) else []
    return points[list(POINT_COLUMNS)], speed[list(THROUGHPUT_COLUMNS)]


def write_trend(out_dir: Path | str, db: str | Path | None = None, margin: float = DEFAULTS.dice_margin) -> Path:
    """Render ``out_dir/trend.html`` from the history database (the folder is created if missing)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"history report: --out {out_dir} is not a folder")
    points, speed = trend_tables(db, margin)
    out_dir.mkdir(parents=True, exist_ok=True)
    note = (
        "Dice: mean over seeds with its 95% bootstrap CI (band); eps50 of the FGSM attack; a ring marks a cell the "
        f"noise-aware gate finds regressed against the suite's previous run (margin {margin:g} Dice)."
    )
    return render_trend(points, speed, out_dir, note)
