"""A run's tables as files: CSV and LaTeX under ``tables/``, and ``summary.json``.

Every file is printed from the same :class:`reports.runstats.RunStats` as the HTML report, so
the report, the CSV and the LaTeX always show the same numbers.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from unetgan_bench.reports import format as fmt
from unetgan_bench.reports.collect import load_run
from unetgan_bench.reports.ordering import scenario_label
from unetgan_bench.reports.recovery import recovery_text
from unetgan_bench.reports.runstats import RunStats
from unetgan_bench.reports.segmentation_tables import stats_csv_frame, wide_table

RECOVERY_CAPTION = (
    "Recovery of the domain-shift drop: (Dice of the method - Dice clean) / (Dice clean on the source - on the target)"
)


def _latex_tabular(header: list[str], rows: list[list[str]], caption: str, label: str) -> str:
    """A LaTeX table; a row ``["---"]`` draws a rule."""
    columns = "l" + "c" * (len(header) - 1)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{fmt.latex_escape(caption)}}}",
        rf"\label{{{label}}}",
        rf"\begin{{tabular}}{{{columns}}}",
        r"\hline",
        " & ".join(fmt.latex_escape(h) for h in header) + r" \\",
        r"\hline",
    ]
    for row in rows:
        lines.append(r"\hline" if row == ["---"] else " & ".join(row) + r" \\")
    lines += [r"\hline", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)


def table_latex(stats: pd.DataFrame, caption: str, label: str, digits: int = 3, paper: bool = False) -> str:
    """A statistics table as LaTeX: vendors as rows, scenarios as columns, mean $\\pm$ std over images.

    Significance markers follow the value as superscripts, "oracle" is written beside numbers
    from oracle selection, and with ``paper=True`` the paper's values follow under a rule.

    Args:
        stats: the output of :func:`reports.cellstats.segmentation_stats`.
        caption: the table caption (escaped).
        label: the LaTeX label.
        digits: decimals.
        paper: also print the paper's Table 1 values (Dice only).
    """
    wide = wide_table(stats, "latex", digits)
    rows = []
    for row in wide["rows"]:
        cells = [fmt.latex_escape(row["vendor"])]
        for cell in row["cells"]:
            if cell is None:
                cells.append(fmt.MISSING.replace("\u2013", "--"))
                continue
            text = cell["value"] + (f"$^{{{cell['marker']}}}$" if cell["marker"] else "")
            cells.append(
                text + (" (oracle)" if cell["oracle"] else "") + (" (failed training)" if cell["failed"] else "")
            )
        rows.append(cells)
    if paper and any(c and c["paper"] for r in wide["rows"] for c in r["cells"]):
        rows.append(["---"])
        for row in wide["rows"]:
            cells = [fmt.latex_escape(row["name"]) + " (paper)"]
            cells += [(c["paper"] or "--") if c else "--" for c in row["cells"]]
            rows.append(cells)
    return _latex_tabular(["", *wide["columns"]], rows, caption, label)


def recovery_latex(table: pd.DataFrame) -> str:
    """The recovery table as LaTeX: vendor, method, drop, clean -> method Dice, recovery.

    Args:
        table: the output of :func:`reports.recovery.recovery_table`.
    """
    rows = []
    for _, row in table.iterrows():
        oracle = " (oracle)" if "oracle" in str(row["selection"]).split("+") else ""
        rows.append(
            [
                fmt.latex_escape(row["vendor"]),
                fmt.latex_escape(scenario_label(row["scenario"])),
                fmt.format_number(fmt.none_if_nan(float(row["drop"]))),
                f"{fmt.format_number(fmt.none_if_nan(float(row['dice_clean'])))} $\\rightarrow$ "
                f"{fmt.format_number(fmt.none_if_nan(float(row['dice'])))}",
                recovery_text(row, "latex") + oracle,
            ]
        )
    return _latex_tabular(
        ["vendor", "method", "drop", "Dice clean, method", "recovery"], rows, RECOVERY_CAPTION, "tab:recovery"
    )


def _simple_latex(frame: pd.DataFrame, caption: str, label: str) -> str:
    rows = [[fmt.latex_escape(v) for v in row] for row in frame.astype(str).to_numpy().tolist()]
    return _latex_tabular(list(map(str, frame.columns)), rows, caption, label)


def _json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if math.isnan(value):
            return None
        return "inf" if math.isinf(value) else value
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _per_class(stats: RunStats) -> pd.DataFrame:
    """Blood pool then myocardium Dice statistics, one frame."""
    return pd.concat([stats.segmentation(m) for m in ("dice_blood_pool", "dice_myo")], ignore_index=True)


def summary(stats: RunStats) -> dict[str, Any]:
    """A machine-readable summary of the run's tables (``summary.json``).

    Args:
        stats: the run's tables.
    """
    m = stats.run.manifest
    throughput = stats.throughput
    ok = throughput[throughput["error"] == ""] if "error" in throughput else throughput
    return _json_ready(
        {
            "schema_version": 1,
            "suite": m.get("suite"),
            "commit": m.get("commit"),
            "dirty": m.get("dirty"),
            "synthetic": stats.run.synthetic,
            "oracle": stats.run.oracle,
            "data_source": m.get("data_source"),
            # The reference the data set asks to cite (the suite's ``[suite] citation``), or None.
            "citation": ((m.get("suite_config") or {}).get("suite") or {}).get("citation") or None,
            "folds": ((m.get("suite_config") or {}).get("splits") or {}).get("folds") or 0,
            "table1": stats.segmentation("dice_mean").to_dict(orient="records"),
            "recovery": stats.recovery.to_dict(orient="records"),
            "per_class": _per_class(stats).to_dict(orient="records"),
            "hd95_mm": stats.segmentation("hd95_mm").to_dict(orient="records"),
            "eps50": stats.eps50.drop(columns="eps50_text").to_dict(orient="records"),
            "corruption_summary": stats.corruption_summary.to_dict(orient="records"),
            "throughput_best_images_per_s": float(ok["images_per_s"].max()) if len(ok) else None,
            "stages_s": m.get("stages") or {},
        }
    )


def write_exports(run_dir: Path | str, stats: RunStats | None = None) -> dict[str, Path]:
    """Write every table as CSV and LaTeX under ``run_dir/tables/`` and ``run_dir/summary.json``.

    Files: ``table1``, ``recovery``, ``per_class``, ``hd95``, ``fgsm_curves``, ``eps50``,
    ``corruption_dice``, ``corruption_summary``, ``throughput``, ``stages`` (``.csv``; the first four and
    ``eps50`` also ``.tex``). A table with nothing measured is written with its header only. ``dose_response``
    and ``loss_terms`` (``.csv``) are written when the run has them.

    Args:
        run_dir: the run folder.
        stats: the run's tables, already computed for the report (read from ``run_dir`` when None).

    Returns:
        Name -> path of every file written.
    """
    run_dir = Path(run_dir)
    stats = stats if stats is not None else RunStats(load_run(run_dir))
    out = run_dir / "tables"
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}

    def save(name: str, frame: pd.DataFrame, latex: str | None = None) -> None:
        path = out / f"{name}.csv"
        frame.to_csv(path, index=False, float_format="%.6g")
        written[f"{name}.csv"] = path
        if latex is not None:
            tex = out / f"{name}.tex"
            tex.write_text(latex, encoding="utf-8")
            written[f"{name}.tex"] = tex

    dice = stats.segmentation("dice_mean")
    save("table1", stats_csv_frame(dice), table_latex(dice, "Dice per vendor and scenario", "tab:dice", paper=True))
    save("recovery", stats.recovery, recovery_latex(stats.recovery))
    save(
        "per_class",
        stats_csv_frame(_per_class(stats)),
        table_latex(stats.segmentation("dice_blood_pool"), "Dice, LV blood pool", "tab:dice-bp")
        + table_latex(stats.segmentation("dice_myo"), "Dice, LV myocardium", "tab:dice-myo"),
    )
    hd95 = stats.segmentation("hd95_mm")
    save("hd95", stats_csv_frame(hd95, digits=1), table_latex(hd95, "HD95 (mm)", "tab:hd95", digits=1))
    save("fgsm_curves", stats.fgsm_curves)
    eps = stats.eps50
    save(
        "eps50",
        eps,
        _simple_latex(
            eps[["scenario", "vendor", "attack", "eps50_text"]].rename(columns={"eps50_text": "eps50"}),
            "eps50: perturbation (normalised [0,1] intensity) halving Dice",
            "tab:eps50",
        ),
    )
    save("corruption_dice", stats.corruption_dice)
    save("corruption_summary", stats.corruption_summary)
    save("throughput", stats.throughput)
    save("stages", stats.stages)
    for name, frame in (("dose_response", stats.dose_response), ("loss_terms", stats.loss_terms)):
        if not frame.empty:  # only runs with a [sweep] or translator loss-term records have them
            save(name, frame)
    path = run_dir / "summary.json"
    path.write_text(json.dumps(summary(stats), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    written["summary.json"] = path
    return written
