"""Compare two run folders and gate on regressions: ``unetgan-bench compare BASE NEW``.

Rows are matched by their key (``reports.collect.KEY_COLUMNS``: kind, scenario, vendor, seed,
plus attack and eps for attacks, plus the settings of a throughput row). Two modes decide Dice:

- **exact**, when both runs share code (the same recorded commit, neither dirty) and numerics
  (``numerics_difference``): CPU runs are then deterministic, so every matched row and metric is
  compared on its own and a Dice more than ``dice_drop`` lower is a regression;
- **noise-aware** otherwise (a code change, another CPU model, torch kernels or build: training
  takes other float paths and every Dice moves by training noise): per cell (scenario, vendor)
  the paired per-image Dice differences, combined over seeds, give a CI of the mean difference,
  and the cell regressed only when the CI lies below ``-dice_margin`` (``bench.gate``; each
  decision reports its CI and minimum detectable drop). A cell without per-image values (an
  older run, an FGSM cell with one seed) has no noise estimate: its rows are compared at
  ``dice_drop_other_hardware`` (the threshold for runs that are not deterministic relative to
  each other), and the comparison says so.

Statuses: ``improved`` / ``equal`` / ``worse`` (worse, within the threshold or not gated) /
``noise`` (within noise) / ``regressed`` / ``failed`` (a setting or gated number the base run
produced is an error, NaN or null in the new one, or a training that passed its health check
fails it now) / ``missing`` / ``added`` (in one run only; reported, not gated).

Throughput gates (only with ``gate_throughput``; timings on shared machines are noisy) on the
ratio of the median images per second with each run's own spread: regressed when even the most
favourable ratio within the two runs' interquartile ranges is below ``throughput_ratio``.

Exit code: 1 when any gated metric regressed (or failed), 0 otherwise. Bad input (a missing
folder, no results, a malformed row or a key field of the wrong type, runs of two different
suites, an HTML path whose folder does not exist) raises ``UserError`` (exit code 2).
"""

from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path
from typing import Any, TextIO

import pandas as pd

from unetgan_bench.bench import compare_formats
from unetgan_bench.bench.compare_settings import DEFAULTS
from unetgan_bench.bench.gate_cells import DICE_METRICS, GATE_COLUMNS, fgsm_cells, segmentation_cells
from unetgan_bench.reports.collect import KEY_COLUMNS, Run, load_run
from unetgan_core.errors import UserError
from unetgan_core.training.health import FAILED as FAILED_TRAINING

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
STATUS_ORDER = ("regressed", "failed", "worse", "noise", "missing", "added", "improved", "equal")
COLUMNS = ["kind", "key", "metric", "base", "new", "delta", "ratio", "status", "gated", *GATE_COLUMNS]
_EQUAL_TOLERANCE = 1e-12  # float noise from a JSON round trip is not a change


@dataclasses.dataclass(frozen=True)
class Comparison:
    """The result of :func:`compare_runs`.

    Args:
        base: the base run folder.
        new: the new run folder.
        rows: one row per (matched row, metric), or per (cell, metric) for noise-aware Dice:
            columns :data:`COLUMNS` (delta = new - base in metric units, ratio = new / base; ci_low,
            ci_high, mdd, n_seeds, n_images and method only where a CI decided).
        dice_drop: the per-row Dice threshold (Dice units, [0, 1]).
        dice_margin: the noise-aware gate's margin (Dice units).
        throughput_ratio: the smallest allowed new/base images-per-second ratio.
        gate_throughput: whether throughput regressions fail the comparison.
        mode: ``"exact"`` or ``"noise-aware"`` (module docstring).
        html_path: where the comparison HTML was written (None when not written).
        note: why the mode (and any other-hardware threshold) was chosen.
    """

    base: Path
    new: Path
    rows: pd.DataFrame
    dice_drop: float
    throughput_ratio: float
    gate_throughput: bool
    html_path: Path | None = None
    note: str = ""
    dice_margin: float = DEFAULTS.dice_margin
    mode: str = "exact"

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
        """The values that are not "equal" as a plain-text table, then a one-line verdict."""
        return compare_formats.text(self)

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


def _relative_spread(row: pd.Series) -> float:
    """A throughput row's interquartile range of the batch time over its median (0 when not recorded)."""
    iqr, median = _number(row.get("ms_per_batch_iqr")), _number(row.get("ms_per_batch_median"))
    return iqr / median if median > 0 and not math.isnan(iqr) else 0.0


def throughput_range(base_row: pd.Series, new_row: pd.Series) -> tuple[float, float]:
    """The new/base images-per-second ratio at the two ends of the runs' spreads (low, high).

    Each run's rate is taken anywhere within its batch time's interquartile range, so the high
    end is the ratio if the base was at its slowest and the new run at its fastest.
    """
    ratio = _number(new_row.get("images_per_s")) / _number(base_row.get("images_per_s"))
    rb, rn = _relative_spread(base_row) / 2, min(_relative_spread(new_row) / 2, 0.99)
    return ratio * (1 - rb) / (1 + rn), ratio * (1 + rb) / (1 - rn)


def _status(base: float, new: float, higher_better: bool, gate: str | None, thresholds: dict[str, float]) -> str:
    delta = new - base
    if abs(delta) <= _EQUAL_TOLERANCE:
        return "equal"
    better = delta > 0 if higher_better else delta < 0
    if better:
        return "improved"
    if gate == "dice" and delta < -thresholds["dice_drop"] - _EQUAL_TOLERANCE:
        return "regressed"
    return "worse"


def _failed_training(row: pd.Series) -> bool:
    return row.get("status") == FAILED_TRAINING


def _blank(kind: str, key: str, metric: str, status: str, gated: bool) -> dict[str, Any]:
    nan = math.nan
    return {"kind": kind, "key": key, "metric": metric, "base": nan, "new": nan, "delta": nan, "ratio": nan} | {
        "status": status,
        "gated": gated,
    }


def _cell_of(kind: str, row: pd.Series) -> tuple:
    if kind == "fgsm":
        return (row["scenario"], row["vendor"], row["attack"], float(row["eps"]))
    return (row.get("scenario"), row.get("vendor"))


def _compare_kind(
    base: Run, new: Run, kind: str, thresholds: dict[str, float], gate_throughput: bool, covered: set[tuple]
) -> list[dict]:
    """Per-row comparison of one kind; Dice of the cells in ``covered`` is left to the noise-aware gate."""
    b, n = _frame(base, kind), _frame(new, kind)
    out = []
    metrics = [(m, spec) for (k, m), spec in METRICS.items() if k == kind]
    for key in [*b.index, *[k for k in n.index if k not in b.index]]:
        in_base, in_new = key in b.index, key in n.index
        label = (b if in_base else n).loc[key, "_label"]
        if not (in_base and in_new):
            out.append(_blank(kind, label, "(row)", "added" if in_new else "missing", False))
            continue
        base_row, new_row = b.loc[key], n.loc[key]
        if kind != "throughput" and _failed_training(new_row) and not _failed_training(base_row):
            # A training that passed its health check in the base run and fails it now is a
            # regression whatever its numbers say (they are not a measurement of the method).
            reason = new_row.get("status_reason") or "failed training"
            out.append(_blank(kind, f"{label} ({reason})", "training", "failed", True))
            continue
        gated_by_cell = kind != "throughput" and _cell_of(kind, base_row) in covered
        for metric, (higher_better, gate) in metrics:
            if gated_by_cell and metric in DICE_METRICS:
                continue
            gated = gate == "dice" or (gate == "throughput" and gate_throughput)
            base_value, new_value = _number(base_row.get(metric)), _number(new_row.get(metric))
            base_error = kind == "throughput" and bool(base_row.get("error"))
            new_error = kind == "throughput" and bool(new_row.get("error"))
            extra: dict[str, Any] = {}
            if metric == "images_per_s" and new_error and not base_error:
                status = "failed"
            elif gated and math.isnan(new_value) and not math.isnan(base_value):
                status = "failed"  # a gated number the new run no longer produces must not pass
            elif math.isnan(base_value) or math.isnan(new_value):
                if math.isnan(base_value) and math.isnan(new_value):
                    continue  # measured in neither run (e.g. HD95 switched off)
                status = "added" if math.isnan(base_value) else "missing"
                gated = False
            elif metric == "images_per_s" and base_value > 0:
                low, high = throughput_range(base_row, new_row)
                extra = {"ci_low": low, "ci_high": high, "method": "ratio of medians within both runs' IQR"}
                status = _status(base_value, new_value, higher_better, None, thresholds)
                status = "regressed" if high < thresholds["throughput_ratio"] else status
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
                    **extra,
                }
            )
    return out


def numerics_difference(base: Run, new: Run) -> str:
    """How the two runs' recorded numerics differ, e.g. ``device_name 'A' -> 'B'``; "" if equal or unrecorded."""
    b, n = base.manifest.get("numerics"), new.manifest.get("numerics")
    if not (isinstance(b, dict) and isinstance(n, dict)) or b == n:
        return ""
    return ", ".join(f"{k} {b.get(k)!r} -> {n.get(k)!r}" for k in sorted(set(b) | set(n)) if b.get(k) != n.get(k))


def shared_code(base: Run, new: Run) -> bool:
    """Whether both runs recorded the same commit with a clean tree (so their code is the same)."""
    b, n = base.manifest, new.manifest
    return bool(b.get("commit")) and b.get("commit") == n.get("commit") and b.get("dirty") is n.get("dirty") is False


def _load(path: Path | str, which: str) -> Run:
    run = load_run(path)
    if run.segmentation.empty and run.fgsm.empty and run.throughput.empty:
        raise UserError(f"{path}: {which} run has no result rows")
    return run


def check_same_suite(base: Run, new: Run) -> None:
    """``UserError`` when the two manifests name different suites (their cells measure different things)."""
    b, n = base.manifest.get("suite"), new.manifest.get("suite")
    if b is not None and n is not None and b != n:
        raise UserError(
            f"compare: {base.path} is a run of suite {b!r} and {new.path} of suite {n!r}; compare runs of one suite"
        )


def _check_threshold(name: str, value: Any, strict: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (value > 0 if strict else value >= 0)
    if not ok:
        raise UserError(
            f"compare: --{name.replace('_', '-')} must be a number {'>' if strict else '>='} 0, got {value!r}"
        )
    return float(value)


def recorded_thresholds(base_dir: Path | str, given: dict[str, float | None]) -> dict[str, float]:
    """``given`` thresholds, each None one replaced by the base run's recorded ``[compare]`` value (if any)."""
    from unetgan_bench.reports.rundir import read_manifest

    recorded = read_manifest(base_dir).get("suite_config")
    recorded = recorded.get("compare") if isinstance(recorded, dict) else None
    recorded = recorded if isinstance(recorded, dict) else {}
    thresholds = {k: v if v is not None else recorded.get(k) for k, v in given.items()}
    return {k: v for k, v in thresholds.items() if v is not None}


def compare_runs(
    base_dir: Path | str,
    new_dir: Path | str,
    dice_drop: float | None = None,
    throughput_ratio: float | None = None,
    gate_throughput: bool = False,
    html_path: Path | str | None = None,
    stream: TextIO | None | str = "stdout",
    dice_drop_other_hardware: float | None = None,
    dice_margin: float | None = None,
    output_format: str = "text",
) -> Comparison:
    """Compare a new run against a base run and decide whether it regressed.

    Thresholds left None take the ``[compare]`` defaults (``bench.compare_settings``).

    Args:
        base_dir: the reference run folder.
        new_dir: the run folder to judge.
        dice_drop: exact mode: largest allowed drop of any Dice (Dice units in [0, 1]) per matched row.
        throughput_ratio: smallest allowed new/base images-per-second ratio (only with ``gate_throughput``).
        gate_throughput: let throughput regressions fail the comparison.
        html_path: where to write the comparison HTML; ``new_dir/comparison.html`` when None.
        stream: where to print the comparison: ``"stdout"`` (the current ``sys.stdout``), a
            text stream, or None to print nothing.
        dice_drop_other_hardware: noise-aware mode: the per-row Dice threshold (if larger than
            ``dice_drop``) for cells without a noise estimate.
        dice_margin: noise-aware mode: the drop (Dice units) a cell's CI must lie below to regress.
        output_format: what is printed: ``text``, ``markdown``, ``json`` or ``junit`` (``bench.compare_formats``).

    Returns:
        The :class:`Comparison`; its ``exit_code`` is 1 on a gated regression, else 0.

    Raises:
        UserError: a folder or its results are missing or malformed, a threshold is out of
            range, the runs are of different suites, or they have no row in common.
    """
    dice_drop = _check_threshold("dice_drop", DEFAULTS.dice_drop if dice_drop is None else dice_drop)
    ratio = DEFAULTS.throughput_ratio if throughput_ratio is None else throughput_ratio
    throughput_ratio = _check_threshold("throughput_ratio", ratio, strict=True)
    other = DEFAULTS.dice_drop_other_hardware if dice_drop_other_hardware is None else dice_drop_other_hardware
    other = _check_threshold("dice_drop_other_hardware", other)
    dice_margin = _check_threshold("dice_margin", DEFAULTS.dice_margin if dice_margin is None else dice_margin)
    compare_formats.check_format(output_format)
    base, new = _load(base_dir, "base"), _load(new_dir, "new")
    check_same_suite(base, new)
    difference = numerics_difference(base, new)
    exact = shared_code(base, new) and not difference
    notes, covered, gate_rows = [], set(), []
    if exact:
        notes.append("exact: both runs share code and numerics, so any change is a difference")
    else:
        why = f"numerics differ ({difference})" if difference else "the runs do not share a clean commit"
        notes.append(f"noise-aware: {why}; a cell regresses when its Dice CI lies below -{dice_margin:g}")
        for cells in (segmentation_cells, fgsm_cells):
            rows, cells_covered = cells(base, new, dice_margin)
            gate_rows += rows
            covered |= cells_covered
        # Without a noise estimate a cell can only be held to the threshold for runs that are
        # not deterministic relative to each other.
        dice_drop = max(dice_drop, other)
        notes.append(
            f"cells without a noise estimate (no per-image values, one FGSM seed) are gated per row at {dice_drop:g}"
        )
    thresholds = {"dice_drop": dice_drop, "throughput_ratio": throughput_ratio}
    rows = list(gate_rows)
    for kind in ("segmentation", "fgsm", "throughput"):
        rows += _compare_kind(base, new, kind, thresholds, gate_throughput, covered)
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["gated"] = frame["gated"].astype(bool)
    if frame.empty or not (frame["metric"] != "(row)").any():
        raise UserError(f"compare: {base_dir} and {new_dir} have no result row in common")
    comparison = Comparison(
        Path(base_dir),
        Path(new_dir),
        frame,
        dice_drop,
        throughput_ratio,
        gate_throughput,
        note="; ".join(notes),
        dice_margin=dice_margin,
        mode="exact" if exact else "noise-aware",
    )
    out = Path(html_path) if html_path is not None else Path(new_dir) / "comparison.html"
    comparison = dataclasses.replace(comparison, html_path=compare_formats.write_html(comparison, out))
    if stream is not None:
        print(compare_formats.render(comparison, output_format), file=sys.stdout if stream == "stdout" else stream)
    return comparison
