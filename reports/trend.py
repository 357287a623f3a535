"""The trend page of a results history: Dice with its CI band, eps50 and images/s over commits.

``bench.history.trend`` reads the database and computes the points and regression flags; this
module only draws and prints them (charts as inline SVG, numbers through ``reports.format``)
into one self-contained, autoescaped HTML page, as the run report does. Each point of a chart
links to its run's report when the run had one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import matplotlib
import pandas as pd
from markupsafe import Markup

from unetgan_bench.reports import format as fmt
from unetgan_bench.reports.figures import _RC, PALETTE, figure_to_svg
from unetgan_bench.reports.ordering import scenario_label
from unetgan_bench.reports.templating import TEMPLATES, environment

MARKERS = ("o", "s", "^", "D", "v", "P")
# Columns of the points table (one row per run and cell) and of the throughput table.
POINT_COLUMNS = ("suite", "vendor", "scenario", "order", "run_id", "commit", "machine", "report")
POINT_COLUMNS += ("dice", "dice_low", "dice_high", "eps50", "flag", "flag_detail")
THROUGHPUT_COLUMNS = ("suite", "setting", "order", "run_id", "commit", "machine", "report", "images_per_s")


def _href(report: Any, out_dir: Path) -> str | None:
    """A link from the page to a run's report: relative when it can be, else a file URI."""
    if not isinstance(report, str) or not report:
        return None
    path = Path(report)
    try:
        return Path(os.path.relpath(path, out_dir)).as_posix()
    except ValueError:  # another drive (Windows)
        return path.as_uri()


def _machines(frame: pd.DataFrame) -> dict[str, str]:
    return {m: MARKERS[i % len(MARKERS)] for i, m in enumerate(dict.fromkeys(frame["machine"]))}


def _ticks(ax, cell: pd.DataFrame) -> None:
    ax.set_xticks(
        list(cell["order"]),
        [f"{c[:7] if isinstance(c, str) else '-'}\n#{r}" for c, r in zip(cell["commit"], cell["run_id"], strict=True)],
    )


def cell_chart(cell: pd.DataFrame, markers: dict[str, str], out_dir: Path) -> str:
    """Dice (line, CI band) and eps50 (second panel, when measured) over runs; regressions as red rings.

    Args:
        cell: the points of one (suite, vendor, scenario), by ``order``.
        markers: machine -> matplotlib marker.
        out_dir: the page's folder (for links to run reports).
    """
    has_eps = cell["eps50"].notna().any()
    with matplotlib.rc_context(_RC):
        fig = matplotlib.figure.Figure(figsize=(6.4, 4.4 if has_eps else 2.8), layout="constrained")
        axes = fig.subplots(2 if has_eps else 1, 1, sharex=True, squeeze=False)[:, 0]
        ax = axes[0]
        ax.fill_between(cell["order"], cell["dice_low"], cell["dice_high"], color=PALETTE[0], alpha=0.18, lw=0)
        ax.plot(cell["order"], cell["dice"], color=PALETTE[0], lw=1.2)
        for machine, marker in markers.items():
            on = cell[cell["machine"] == machine]
            if on.empty:
                continue
            points = ax.scatter(on["order"], on["dice"], marker=marker, color=PALETTE[0], zorder=3, label=machine)
            points.set_urls([_href(r, out_dir) for r in on["report"]])
        flagged = cell[cell["flag"] == "regressed"]
        if len(flagged):
            ax.scatter(
                flagged["order"],
                flagged["dice"],
                s=160,
                facecolors="none",
                edgecolors="#D55E00",
                lw=2,
                zorder=4,
                label="regressed",
            )
        ax.set_ylabel("Dice (95% CI)")
        ax.legend(loc="lower left", fontsize=7, frameon=False)
        if has_eps:
            axes[1].plot(cell["order"], cell["eps50"], color=PALETTE[1], marker="o", lw=1.2)
            axes[1].set_ylabel("eps50")
        _ticks(axes[-1], cell)
        return figure_to_svg(fig)


def throughput_chart(frame: pd.DataFrame, markers: dict[str, str], out_dir: Path) -> str:
    """Images per second over runs, one line per throughput setting."""
    with matplotlib.rc_context(_RC):
        fig = matplotlib.figure.Figure(figsize=(6.4, 2.8), layout="constrained")
        ax = fig.subplots()
        for i, (setting, line) in enumerate(frame.groupby("setting", sort=False)):
            ax.plot(line["order"], line["images_per_s"], color=PALETTE[i % len(PALETTE)], lw=1.2, label=setting[:60])
            for machine, marker in markers.items():
                on = line[line["machine"] == machine]
                if len(on):
                    dots = ax.scatter(on["order"], on["images_per_s"], marker=marker, color=PALETTE[i % len(PALETTE)])
                    dots.set_urls([_href(r, out_dir) for r in on["report"]])
        ax.set_ylabel("images/s")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.25), fontsize=7, frameon=False)
        _ticks(ax, frame.drop_duplicates("order").sort_values("order"))
        return figure_to_svg(fig)


def _table_rows(cell: pd.DataFrame, out_dir: Path) -> list[dict[str, Any]]:
    return [
        {
            "run": f"#{r['run_id']}",
            "commit": r["commit"][:10] if isinstance(r["commit"], str) else "-",
            "machine": r["machine"],
            "dice": fmt.format_number(fmt.none_if_nan(r["dice"])),
            "ci": fmt.format_ci(fmt.none_if_nan(r["dice_low"]), fmt.none_if_nan(r["dice_high"])),
            "eps50": fmt.format_number(fmt.none_if_nan(r["eps50"])),
            "flag": r["flag"] or "",
            "flag_detail": r["flag_detail"] or "",
            "href": _href(r["report"], out_dir),
        }
        for _, r in cell.iterrows()
    ]


def render_trend(points: pd.DataFrame, throughput: pd.DataFrame, out_dir: Path | str, title_note: str) -> Path:
    """Write ``out_dir/trend.html``.

    Args:
        points: columns :data:`POINT_COLUMNS`, one row per (run, suite, vendor, scenario).
        throughput: columns :data:`THROUGHPUT_COLUMNS`.
        out_dir: an existing folder.
        title_note: one line under the title (how the flags were decided).
    """
    out_dir = Path(out_dir)
    markers = _machines(pd.concat([points[["machine"]], throughput[["machine"]]]))
    suites = []
    for suite, rows in points.groupby("suite", sort=True):
        cells = []
        for (vendor, scenario), cell in rows.groupby(["vendor", "scenario"], sort=False):
            cell = cell.sort_values("order")
            cells.append(
                {
                    "title": f"{vendor} / {scenario_label(scenario)}",
                    "anchor": f"{suite}-{vendor}-{scenario}",
                    "chart": Markup(cell_chart(cell, markers, out_dir)),
                    "rows": _table_rows(cell, out_dir),
                    "n_regressed": int((cell["flag"] == "regressed").sum()),
                }
            )
        speed = throughput[throughput["suite"] == suite].sort_values("order")
        chart = Markup(throughput_chart(speed, markers, out_dir)) if len(speed) else None
        suites.append({"name": suite, "cells": cells, "throughput": chart, "runs": int(rows["run_id"].nunique())})
    env = environment()
    html = env.get_template("trend.html.j2").render(
        suites=suites,
        note=title_note,
        machines=list(markers),
        css=Markup((TEMPLATES / "report.css").read_text(encoding="utf-8")),
    )
    path = out_dir / "trend.html"
    path.write_text(html, encoding="utf-8")
    return path
