"""Table 1, per-class Dice and HD95 as printed: each statistics row of :mod:`reports.cellstats` as text.

The same parts (value, significance marker, spread over seeds or folds, CI, n, p, oracle flag)
feed the HTML report, the CSV's ``formatted`` column and the LaTeX tables, so they cannot
disagree.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from unetgan_bench.reports import format as fmt
from unetgan_bench.reports.ordering import scenario_label, scenario_order
from unetgan_bench.reports.paper import paper_value


def format_cell(cell: dict[str, Any] | pd.Series, style: str = "text", digits: int = 3) -> dict[str, str]:
    """The printed parts of one statistics row: main value, marker, seeds, CI, n, p, oracle flag.

    Args:
        cell: one row of :func:`reports.cellstats.segmentation_stats`.
        style: ``"text"``, ``"html"`` or ``"latex"`` (see :func:`reports.format.format_mean_std`).
        digits: decimals (3 for Dice, 1 suits HD95 in mm).
    """
    oracle = "oracle" in str(cell["selection"]).split("+")
    n_folds = cell.get("n_folds")
    folds = isinstance(n_folds, (int, float, np.integer)) and not math.isnan(n_folds) and n_folds > 0
    n = f"n={cell['n_images']} images x {cell['n_seeds']} seeds"
    if folds:
        n = f"n={cell['n_images']} images from {int(n_folds)} folds x {cell['n_seeds']} seeds"
    if cell["n_undefined"]:
        n += f", {cell['n_undefined']} undefined"
    spread = "one seed"
    if not math.isnan(cell["std_seeds"]):
        spread = "seeds sd " + fmt.format_number(fmt.none_if_nan(cell["std_seeds"]), digits)
    if folds and not math.isnan(cell.get("std_folds", float("nan"))):
        # A fold suite's spread is over folds (different subjects); seeds only add to it.
        fold_sd = "folds sd " + fmt.format_number(fmt.none_if_nan(cell["std_folds"]), digits)
        spread = fold_sd if spread == "one seed" else f"{fold_sd}, {spread}"
    p = fmt.none_if_nan(cell["p_vs_clean"])
    n_failed = int(cell.get("n_failed") or 0)
    failed = ""
    if n_failed:
        total = n_failed + int(cell["n_seeds"] if cell["n_images"] else 0) * int(n_folds if folds else 1)
        failed = f"FAILED TRAINING in {n_failed} of {total} replicates: " + str(cell.get("failed_note") or "")
    return {
        "value": fmt.format_mean_std(fmt.none_if_nan(cell["mean"]), cell["std_images"], digits, style),
        "marker": fmt.significance_marker(p),
        "seeds": spread,
        "ci": "95% CI " + fmt.format_ci(fmt.none_if_nan(cell["ci95_low"]), fmt.none_if_nan(cell["ci95_high"]), digits),
        "n": n,
        "p": fmt.format_p(p) if cell["scenario"] != "clean" else "",
        "oracle": "oracle" if oracle else "",
        "failed": failed,
    }


def stats_csv_frame(stats: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """A statistics table ready for CSV: the numbers plus the formatted text and the paper's value.

    Args:
        stats: the output of :func:`reports.cellstats.segmentation_stats` (left unchanged).
        digits: decimals of the formatted text column.
    """
    frame = stats.copy()
    parts = [format_cell(row, "text", digits) for _, row in stats.iterrows()]
    frame["formatted"] = [p["value"] + p["marker"] + (f" [{p['failed']}]" if p["failed"] else "") for p in parts]
    frame["paper"] = [
        paper_value(r["vendor"], r["role"], r["scenario"], r["metric"], "text") for _, r in stats.iterrows()
    ]
    return frame


def wide_table(stats: pd.DataFrame, style: str = "html", digits: int = 3) -> dict[str, Any]:
    """Vendors as rows and scenarios as columns, as in the paper's Table 1.

    Args:
        stats: the output of :func:`reports.cellstats.segmentation_stats` for one metric.
        style: output style of the numbers.
        digits: decimals.

    Returns:
        ``{"columns": [scenario labels], "rows": [{"vendor": label, "name": vendor, "cells": [parts or None]}]}``;
        the source vendor's label reads "<vendor> (test)"; a cell is None where the scenario
        does not apply (the paper's "-"). Each cell's parts are :func:`format_cell`'s plus
        ``paper`` (the paper's value, or "").
    """
    scenarios = scenario_order(stats["scenario"]) if not stats.empty else []
    rows = []
    for vendor in dict.fromkeys(stats["vendor"]):
        sub = stats[stats["vendor"] == vendor]
        role = str(sub["role"].iloc[0])
        cells = []
        for scenario in scenarios:
            match = sub[sub["scenario"] == scenario]
            if match.empty:
                cells.append(None)
                continue
            row = match.iloc[0]
            parts = format_cell(row, style, digits)
            parts["paper"] = paper_value(vendor, role, scenario, str(row["metric"]), style)
            cells.append(parts)
        label = f"{vendor} (test)" if role == "source" else vendor
        rows.append({"vendor": label, "name": vendor, "cells": cells})
    return {"columns": [scenario_label(s) for s in scenarios], "rows": rows}
