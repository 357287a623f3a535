"""Compare two run folders and gate on regressions: ``unetgan-bench compare BASE NEW``.

Rows are matched by their key (``reports.collect.KEY_COLUMNS``: kind, scenario, vendor, seed,
plus attack and eps for attacks, plus the settings of a throughput row). For every matched
row and metric the comparison records base, new, difference and status:

- ``improved`` / ``equal`` / ``worse`` (worse, but within the threshold or not gated),
- ``regressed``: worse beyond the threshold: a Dice (segmentation and attacked Dice) more than
  ``dice_drop`` lower, or images per second below ``throughput_ratio`` times the base,
- ``failed``: a throughput setting that worked in the base run reports an error in the new one,
  or a gated metric measured in the base run is NaN or null in the new one,
- ``missing`` / ``added``: the row exists in only one run, or an ungated metric was measured in
  only one (reported, not gated: a suite may legitimately change).

CPU runs are deterministic on one machine, not across machines: a different CPU model, a
different set of CPU kernels in torch or another torch build changes the float paths of training
(the smoke suite's toy models moved by up to 0.03 Dice between an Intel Xeon and an AMD EPYC VM).
Each manifest records these ``numerics``; when both runs recorded them and they differ, Dice is
gated at ``dice_drop_other_hardware`` instead of ``dice_drop``, and the comparison says so.

Exit code: 1 when any gated metric regressed (or failed), 0 otherwise. Throughput gates only
with ``gate_throughput`` because timings on shared machines are noisy. Bad input (a missing
folder, no results, a malformed row or a key field of the wrong type, an HTML path whose folder
does not exist) raises ``UserError``, which the command line turns into exit code 2.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path
from typing import Any, TextIO

import jinja2
import pandas as pd
from markupsafe import Markup

from unetgan_bench.reports import format as fmt
from unetgan_bench.reports.collect import KEY_COLUMNS, Run, load_run
from unetgan_core.errors import UserError
from unetgan_core.training.health import FAILED as FAILED_TRAINING

TEMPLATES = Path(__file__).resolve().parents[1] / "reports" / "templates"
# (kind, metric) -> (higher is better, gate): which metrics are compared and which can fail the run.
METRICS = {
    ("segmentation", "dice_mean"): (True, "dice"),
    ("segmentation", "dice_blood_pool"): (True, "dice"),
    ("segmentation", "dice_myo"): (True, "dice"),
    ("segmentation", "hd95_mm"): (False, None),
    ("fgsm", "dice_mean"): (True, "dice"),
    ("fgsm", "psnr_db"): (True, None),
    ("fgsm", "ssim"): (True, None),
    ("throughput", "images_per_s"): (True, "throughput"),
    ("throughput", "ms_per_batch_median"): (False, None),
}
STATUS_ORDER = ("regressed", "failed", "worse", "missing", "added", "improved", "equal")
COLUMNS = ["kind", "key", "metric", "base", "new", "delta", "ratio", "status", "gated"]
_EQUAL_TOLERANCE = 1e-12  # float noise from a JSON round trip is not a change


@dataclasses.dataclass(frozen=True)
class Comparison:
    """The result of :func:`compare_runs`.

    Args:
        base: the base run folder.
        new: the new run folder.
        rows: one row per (matched row, metric): columns kind, key, metric, base, new, delta
            (new - base, metric units), ratio (new / base), status, gated.
        dice_drop: the Dice threshold used (Dice units, [0, 1]).
        throughput_ratio: the smallest allowed new/base images-per-second ratio.
        gate_throughput: whether throughput regressions fail the comparison.
        html_path: where the comparison HTML was written (None when not written).
        note: why the Dice threshold is the other-hardware one ("" when it is not).
    """

    base: Path
    new: Path
    rows: pd.DataFrame
    dice_drop: float
    throughput_ratio: float
    gate_throughput: bool
    html_path: Path | None = None
    note: str = ""

    @property
    def regressions(self) -> pd.DataFrame:
        """Rows whose gated metric regressed or failed."""
        return self.rows[self.rows["gated"] & self.rows["status"].isin(["regressed", "failed"])]

    @property
    def exit_code(self) -> int:
        """1 when any gated metric regressed beyond its threshold, 0 otherwise."""
        return 1 if len(self.regressions) else 0

    def counts(self) -> dict[str, int]:
        """How many compared values have each status."""
        counts = self.rows["status"].value_counts()
        return {s: int(counts.get(s, 0)) for s in STATUS_ORDER if counts.get(s, 0)}

    def text_table(self) -> str:
        """The deltas that are not "equal" as a plain-text table, then a one-line verdict.

        Unchanged values are counted in the verdict, not listed; the HTML lists every value.
        """
        printed = [r for r in _printed_rows(self.rows) if r["class"] != "equal"]
        header = ["kind", "key", "metric", "base", "new", "delta", "ratio", "status"]
        widths = [max([len(h), *(len(r[h]) for r in printed)]) for h in header]
        lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
        lines.append("  ".join("-" * w for w in widths))
        for row in printed:
            lines.append("  ".join(row[h].ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
        if not printed:
            lines.append("(no value changed)")
        if self.note:
            lines.append(f"note: {self.note}")
        lines.append(self.verdict())
        return "\n".join(lines)

    def verdict(self) -> str:
        """One line: regressed or not, and the status counts."""
        counts = ", ".join(f"{n} {s}" for s, n in self.counts().items())
        if self.exit_code:
            return f"REGRESSED: {len(self.regressions)} gated value(s) beyond threshold ({counts})"
        return f"OK: no gated value regressed ({counts})"


def _number(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return float("nan")
    return number


def _key_label(kind: str, row: pd.Series) -> str:
    if kind == "throughput":
        return " ".join(f"{c}={row[c]}" for c in KEY_COLUMNS[kind][1:] if c in row and pd.notna(row[c]))
    parts = [str(row["scenario"]), str(row["vendor"]), f"seed{row['seed']}"]
    if kind == "fgsm":
        parts += [str(row["attack"]), f"eps={row['eps']:g}"]
    return " / ".join(parts)


def _frame(run: Run, kind: str) -> pd.DataFrame:
    frame = getattr(run, kind).copy()
    if frame.empty:
        return frame
    keys = [c for c in KEY_COLUMNS[kind] if c in frame]
    # A key field may be missing (None) in some rows; compare it as text so None matches None.
    frame["_key"] = [
        "|".join("" if pd.isna(v) else str(v) for v in values) for values in frame[keys].itertuples(index=False)
    ]
    frame["_label"] = [_key_label(kind, row) for _, row in frame.iterrows()]
    return frame.set_index("_key")


def _status(base: float, new: float, higher_better: bool, gate: str | None, thresholds: dict[str, float]) -> str:
    delta = new - base
    if abs(delta) <= _EQUAL_TOLERANCE:
        return "equal"
    better = delta > 0 if higher_better else delta < 0
    if better:
        return "improved"
    if gate == "dice" and delta < -thresholds["dice_drop"] - _EQUAL_TOLERANCE:
        return "regressed"
    if gate == "throughput" and base > 0 and new / base < thresholds["throughput_ratio"]:
        return "regressed"
    return "worse"


def _failed_training(row: pd.Series) -> bool:
    return row.get("status") == FAILED_TRAINING


def _compare_kind(base: Run, new: Run, kind: str, thresholds: dict[str, float], gate_throughput: bool) -> list[dict]:
    b, n = _frame(base, kind), _frame(new, kind)
    out = []
    metrics = [(m, spec) for (k, m), spec in METRICS.items() if k == kind]
    for key in [*b.index, *[k for k in n.index if k not in b.index]]:
        in_base, in_new = key in b.index, key in n.index
        label = (b if in_base else n).loc[key, "_label"]
        if not (in_base and in_new):
            out.append(
                {
                    "kind": kind,
                    "key": label,
                    "metric": "(row)",
                    "base": math.nan,
                    "new": math.nan,
                    "delta": math.nan,
                    "ratio": math.nan,
                    "status": "added" if in_new else "missing",
                    "gated": False,
                }
            )
            continue
        base_row, new_row = b.loc[key], n.loc[key]
        if kind != "throughput" and _failed_training(new_row) and not _failed_training(base_row):
            # A training that passed its health check in the base run and fails it now is a
            # regression whatever its numbers say (they are not a measurement of the method).
            out.append(
                {
                    "kind": kind,
                    "key": f"{label} ({new_row.get('status_reason') or 'failed training'})",
                    "metric": "training",
                    "base": math.nan,
                    "new": math.nan,
                    "delta": math.nan,
                    "ratio": math.nan,
                    "status": "failed",
                    "gated": True,
                }
            )
            continue
        for metric, (higher_better, gate) in metrics:
            gated = gate == "dice" or (gate == "throughput" and gate_throughput)
            base_value, new_value = _number(base_row.get(metric)), _number(new_row.get(metric))
            base_error = kind == "throughput" and bool(base_row.get("error"))
            new_error = kind == "throughput" and bool(new_row.get("error"))
            if metric == "images_per_s" and new_error and not base_error:
                status = "failed"
            elif gated and math.isnan(new_value) and not math.isnan(base_value):
                status = "failed"  # a gated number the new run no longer produces must not pass
            elif math.isnan(base_value) or math.isnan(new_value):
                if math.isnan(base_value) and math.isnan(new_value):
                    continue  # measured in neither run (e.g. HD95 switched off)
                status = "added" if math.isnan(base_value) else "missing"
                gated = False
            else:
                status = _status(base_value, new_value, higher_better, gate, thresholds)
            ratio = new_value / base_value if base_value not in (0.0,) and not math.isnan(base_value) else math.nan
            out.append(
                {
                    "kind": kind,
                    "key": label,
                    "metric": metric,
                    "base": base_value,
                    "new": new_value,
                    "delta": new_value - base_value,
                    "ratio": ratio,
                    "status": status,
                    "gated": gated,
                }
            )
    return out


def _printed_rows(rows: pd.DataFrame) -> list[dict[str, str]]:
    printed = []
    for _, r in rows.iterrows():
        digits = 1 if r["metric"] in ("images_per_s", "ms_per_batch_median", "hd95_mm", "psnr_db") else 3
        status = r["status"] + (
            "" if r["gated"] or r["status"] in ("equal", "improved", "added", "missing") else " (not gated)"
        )
        printed.append(
            {
                "kind": r["kind"],
                "key": r["key"],
                "metric": r["metric"],
                "base": fmt.format_number(None if math.isnan(r["base"]) else r["base"], digits),
                "new": fmt.format_number(None if math.isnan(r["new"]) else r["new"], digits),
                "delta": fmt.format_delta(None if math.isnan(r["delta"]) else r["delta"], digits),
                "ratio": fmt.format_ratio(None if math.isnan(r["ratio"]) else r["ratio"]),
                "status": status,
                "class": r["status"],
            }
        )
    return printed


def numerics_difference(base: Run, new: Run) -> str:
    """How the two runs' recorded numerics differ, e.g. ``device_name 'A' -> 'B'``; "" if equal or unrecorded."""
    b, n = base.manifest.get("numerics"), new.manifest.get("numerics")
    if not (isinstance(b, dict) and isinstance(n, dict)) or b == n:
        return ""
    return ", ".join(f"{k} {b.get(k)!r} -> {n.get(k)!r}" for k in sorted(set(b) | set(n)) if b.get(k) != n.get(k))


def _load(path: Path | str, which: str) -> Run:
    run = load_run(path)
    if run.segmentation.empty and run.fgsm.empty and run.throughput.empty:
        raise UserError(f"{path}: {which} run has no result rows")
    return run


def write_comparison_html(comparison: Comparison, path: Path) -> Path:
    """Write the comparison as a self-contained HTML page (inline CSS, no network requests).

    Args:
        comparison: the result of :func:`compare_runs`.
        path: the HTML file to write.
    """
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    html = env.get_template("comparison.html.j2").render(
        base=str(comparison.base),
        new=str(comparison.new),
        thresholds=[
            ("Dice drop allowed", fmt.format_number(comparison.dice_drop, 4)),
            ("note", comparison.note or "both runs used the same numerics (or did not record them)"),
            ("throughput ratio allowed", fmt.format_ratio(comparison.throughput_ratio)),
            ("throughput gated", "yes" if comparison.gate_throughput else "no"),
        ],
        verdict=comparison.verdict(),
        failed=bool(comparison.exit_code),
        rows=_printed_rows(comparison.rows),
        css=Markup((TEMPLATES / "report.css").read_text(encoding="utf-8")),
    )
    path = Path(path)
    if not path.parent.is_dir():
        raise UserError(f"compare: --html {path}: folder {path.parent} does not exist")
    try:
        path.write_text(html, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"compare: --html {path}: cannot write ({exc.strerror})") from None
    return path


def compare_runs(
    base_dir: Path | str,
    new_dir: Path | str,
    dice_drop: float = 0.005,
    throughput_ratio: float = 0.8,
    gate_throughput: bool = False,
    html_path: Path | str | None = None,
    stream: TextIO | None | str = "stdout",
    dice_drop_other_hardware: float = 0.05,
) -> Comparison:
    """Compare a new run against a base run and decide whether it regressed.

    Args:
        base_dir: the reference run folder.
        new_dir: the run folder to judge.
        dice_drop: largest allowed drop of any Dice (Dice units in [0, 1]) per matched row.
        throughput_ratio: smallest allowed new/base images-per-second ratio (only with ``gate_throughput``).
        gate_throughput: let throughput regressions fail the comparison.
        html_path: where to write the comparison HTML; ``new_dir/comparison.html`` when None.
        stream: where to print the table of deltas: ``"stdout"`` (the current ``sys.stdout``), a
            text stream, or None to print nothing.
        dice_drop_other_hardware: the Dice threshold (if larger than ``dice_drop``) when both runs
            recorded their numerics and they differ (module docstring).

    Returns:
        The :class:`Comparison`; its ``exit_code`` is 1 on a gated regression, else 0.

    Raises:
        UserError: a folder or its results are missing or malformed, a threshold is out of
            range, or the runs have no row in common.
    """
    if not (isinstance(dice_drop, (int, float)) and dice_drop >= 0):
        raise UserError(f"compare: --dice-drop must be a number >= 0, got {dice_drop!r}")
    if not (isinstance(throughput_ratio, (int, float)) and throughput_ratio > 0):
        raise UserError(f"compare: --throughput-ratio must be a number > 0, got {throughput_ratio!r}")
    if not (isinstance(dice_drop_other_hardware, (int, float)) and dice_drop_other_hardware >= 0):
        raise UserError(f"compare: --dice-drop-other-hardware must be a number >= 0, got {dice_drop_other_hardware!r}")
    base, new = _load(base_dir, "base"), _load(new_dir, "new")
    note = ""
    difference = numerics_difference(base, new)
    if difference:
        dice_drop = max(float(dice_drop), float(dice_drop_other_hardware))
        note = f"the runs used different numerics ({difference}), so Dice is gated at {dice_drop:g}"
    thresholds = {"dice_drop": float(dice_drop), "throughput_ratio": float(throughput_ratio)}
    rows = []
    for kind in ("segmentation", "fgsm", "throughput"):
        rows += _compare_kind(base, new, kind, thresholds, gate_throughput)
    frame = pd.DataFrame(rows, columns=COLUMNS)
    if frame.empty or not (frame["metric"] != "(row)").any():
        raise UserError(f"compare: {base_dir} and {new_dir} have no result row in common")
    comparison = Comparison(
        Path(base_dir), Path(new_dir), frame, float(dice_drop), float(throughput_ratio), gate_throughput, note=note
    )
    out = Path(html_path) if html_path is not None else Path(new_dir) / "comparison.html"
    comparison = dataclasses.replace(comparison, html_path=write_comparison_html(comparison, out))
    if stream is not None:
        print(comparison.text_table(), file=sys.stdout if stream == "stdout" else stream)
    return comparison
