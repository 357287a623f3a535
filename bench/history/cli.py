"""``unetgan-bench history add|list|show|export|report|check``: the results history on the command line."""

from __future__ import annotations

import argparse
from pathlib import Path

from unetgan_bench.bench.history import DEFAULT_DB
from unetgan_core.errors import UserError


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add the ``history`` command and its sub-commands to the main parser's ``sub``."""
    hist = sub.add_parser("history", help="a results history across commits (SQLite file or SQLAlchemy URL)")
    verbs = hist.add_subparsers(dest="history_command", required=True, parser_class=type(hist))

    def verb(name: str, help_text: str) -> argparse.ArgumentParser:
        parser = verbs.add_parser(name, help=help_text)
        parser.add_argument("--db", help=f"database file or SQLAlchemy URL (default {DEFAULT_DB})")
        return parser

    add = verb("add", "record a run folder (rows, per-image values, manifest) in one transaction")
    add.add_argument("run_dir", type=Path)
    verb("list", "print the recorded runs")
    show = verb("show", "print one metric over the recorded runs")
    show.add_argument("metric", help="e.g. dice_mean, dice_myo, hd95_mm, images_per_s, eps50")
    show.add_argument("--suite")
    show.add_argument("--vendor")
    show.add_argument("--scenario")
    export = verb("export", "write a history table as Parquet or CSV")
    export.add_argument("--out", type=Path, required=True, help="a .parquet or .csv file")
    export.add_argument("--table", default="results", choices=("results", "per_image", "runs"))
    report = verb("report", "render a self-contained HTML trend page of every recorded suite")
    report.add_argument("--out", type=Path, required=True, help="folder for trend.html")
    report.add_argument(
        "--margin", type=float, help="Dice margin of the regression flags (default [compare] dice_margin)"
    )
    check = verb("check", "compare a run folder against a reference (a run folder, or a recorded run id)")
    check.add_argument("new_dir", type=Path)
    check.add_argument("--against", required=True, help="reference run folder, or the run_id of a recorded run")
    check.add_argument("--format", default="text", choices=("text", "markdown", "json", "junit"))
    check.add_argument("--html", type=Path, help="where to write the comparison HTML (default NEW_DIR/comparison.html)")


def _print(frame) -> None:
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_columns", None, "display.max_rows", None):
        print(frame.to_string(index=False))


def cmd_history(args: argparse.Namespace) -> int:
    """Run one ``history`` sub-command; returns the exit code."""
    from unetgan_bench.bench.history import store

    if args.history_command == "add":
        run_id = store.add_run(args.run_dir, args.db)
        print(f"recorded {args.run_dir} as run {run_id} in {args.db or DEFAULT_DB}")
    elif args.history_command == "list":
        runs = store.runs_table(args.db)
        runs["commit"] = runs["commit"].str[:10]
        _print(runs.drop(columns=["report"])) if len(runs) else print("(no run recorded)")
    elif args.history_command == "show":
        _print(store.metric_table(args.metric, args.db, suite=args.suite, vendor=args.vendor, scenario=args.scenario))
    elif args.history_command == "export":
        print(f"wrote {store.export_table(args.out, args.db, args.table)}")
    elif args.history_command == "report":
        from unetgan_bench.bench.compare_settings import DEFAULTS
        from unetgan_bench.bench.history.trend import write_trend

        margin = DEFAULTS.dice_margin if args.margin is None else args.margin
        if not margin >= 0:
            raise UserError(f"history report: --margin must be a number >= 0, got {args.margin}")
        print(f"trend: {write_trend(args.out, args.db, margin).resolve()}")
    elif args.history_command == "check":
        from unetgan_bench.bench.compare import compare_runs, recorded_thresholds

        reference = store.reference_run(args.against, args.db)
        thresholds = recorded_thresholds(reference, {"dice_drop": None, "dice_margin": None, "throughput_ratio": None})
        comparison = compare_runs(reference, args.new_dir, **thresholds, html_path=args.html, output_format=args.format)
        return comparison.exit_code
    return 0
