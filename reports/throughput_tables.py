"""Throughput rows (images per second, ms per batch, memory, FLOP rate) and wall time per stage of a run."""

from __future__ import annotations

from typing import Any

import pandas as pd

from unetgan_bench.reports import format as fmt
from unetgan_bench.reports.collect import THROUGHPUT_SETTINGS, Run

STAGE_ORDER = ("data", "unet_training", "translator_training", "evaluation", "attacks", "throughput", "report")


def throughput_table(run: Run) -> pd.DataFrame:
    """Throughput rows with their settings, numbers and formatted text.

    Args:
        run: the run.

    Returns:
        The settings that vary or are set, ``images_per_s``, ``ms_per_batch_median``,
        ``ms_per_batch_iqr``, ``peak_mem_mb``, ``achieved_tflops``, ``fraction_of_peak``,
        ``error`` and a ``setting`` label per row.
    """
    frame = run.throughput
    if frame.empty:
        return pd.DataFrame(columns=["setting", "images_per_s"])
    settings = [c for c in THROUGHPUT_SETTINGS if c in frame and frame[c].notna().any()]
    out = frame[settings].copy()
    for name in (
        "images_per_s",
        "ms_per_batch_median",
        "ms_per_batch_iqr",
        "peak_mem_mb",
        "achieved_tflops",
        "peak_tflops",
    ):
        out[name] = pd.to_numeric(frame.get(name), errors="coerce")
    out["fraction_of_peak"] = pd.to_numeric(frame.get("fraction_of_peak"), errors="coerce")
    out["error"] = frame["error"].fillna("") if "error" in frame else ""
    varying = [c for c in settings if frame[c].astype(str).nunique() > 1] or settings
    # A skipped precision's row has no size or batch (it stands for all of them): its label names what it has.
    out["setting"] = [" ".join(f"{c}={row[c]}" for c in varying if pd.notna(row[c])) for _, row in frame.iterrows()]
    return out.reset_index(drop=True)


def _printed(value: Any, digits: int, failed: bool) -> str:
    """A number of a throughput row as printed; the dash for a setting that failed."""
    return fmt.MISSING if failed else fmt.format_number(fmt.none_if_nan(value), digits)


# The prefix of the ``error`` of a row that records a precision the device only emulates (not measured).
SKIPPED_PREFIX = "skipped:"
PEAK_INVALID = "peak invalid"


def _fraction_text(row: pd.Series) -> str:
    """The fraction of peak as printed; "peak invalid" where the row beat the measured peak (no fraction then)."""
    fraction = fmt.none_if_nan(row["fraction_of_peak"])
    achieved, peak = fmt.none_if_nan(row.get("achieved_tflops")), fmt.none_if_nan(row.get("peak_tflops"))
    if fraction is None and achieved is not None and peak is not None and achieved > peak:
        return PEAK_INVALID
    return fmt.format_percent(fraction)


def throughput_text(table: pd.DataFrame) -> list[dict[str, str]]:
    """Throughput rows as printed cells (images/s, ms/batch, memory, fraction of peak).

    A skipped precision's row (``error`` starting with ``"skipped:"``) has ``skipped`` set and
    no numbers; a failed one has ``error``.

    Args:
        table: the output of :func:`throughput_table`.
    """
    rows = []
    for _, row in table.iterrows():
        error = str(row.get("error") or "")
        skipped = error.startswith(SKIPPED_PREFIX)
        failed = bool(error)
        ms_per_batch = (
            fmt.format_mean_std(fmt.none_if_nan(row["ms_per_batch_median"]), None, 2)
            + f" (IQR {_printed(row['ms_per_batch_iqr'], 2, failed)})"
        )
        rows.append(
            {
                "setting": str(row["setting"]),
                "images_per_s": _printed(row["images_per_s"], 1, failed),
                "ms_per_batch": fmt.MISSING if failed else ms_per_batch,
                "peak_mem_mb": _printed(row["peak_mem_mb"], 0, failed),
                "achieved_tflops": _printed(row["achieved_tflops"], 4, failed),
                "fraction_of_peak": fmt.MISSING if failed else _fraction_text(row),
                "error": "" if skipped else error,
                "skipped": error[len(SKIPPED_PREFIX) :].strip() if skipped else "",
            }
        )
    return rows


def stage_table(manifest: dict[str, Any]) -> pd.DataFrame:
    """Wall time per stage of the run (seconds and share of the total), from the manifest.

    Args:
        manifest: the run's manifest (``stages``: {stage: seconds}).
    """
    stages = manifest.get("stages") or {}
    rows = [(str(k), float(v)) for k, v in stages.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    # Pipeline order, whatever order the manifest's JSON object happens to list them in.
    rows.sort(key=lambda kv: (STAGE_ORDER.index(kv[0]) if kv[0] in STAGE_ORDER else len(STAGE_ORDER), kv[0]))
    total = sum(v for _, v in rows)
    return pd.DataFrame(
        [{"stage": k, "seconds": v, "share": v / total if total > 0 else float("nan")} for k, v in rows],
        columns=["stage", "seconds", "share"],
    )
