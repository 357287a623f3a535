"""A :class:`bench.compare.Comparison` as text, Markdown, JSON, JUnit XML or HTML.

``text`` is the terminal table, ``markdown`` a pull-request summary, ``json`` every compared
value for other tools, ``junit`` a JUnit XML report (one test case per compared value, a failed
test per regressed or failed gated value) that CI systems show as tests, and the HTML page is
self-contained (inline CSS, no network requests). Numbers become text in ``reports.format``.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from markupsafe import Markup

from unetgan_bench.reports import format as fmt
from unetgan_bench.reports.templating import TEMPLATES, environment
from unetgan_core.errors import UserError

# ``Comparison`` (bench.compare, which imports this module) is named in annotations only as text.
Comparison = Any
FORMATS = ("text", "markdown", "json", "junit")
HEADER = ["kind", "key", "metric", "base", "new", "delta", "ci95", "mdd", "ratio", "status"]
_ONE_DECIMAL = ("images_per_s", "ms_per_batch_median", "hd95_mm", "psnr_db")
_QUIET = ("equal", "improved", "added", "missing", "noise")


def check_format(name: str) -> None:
    """``UserError`` unless ``name`` is one of :data:`FORMATS`."""
    if name not in FORMATS:
        raise UserError(f"compare: --format {name!r}: expected one of {', '.join(FORMATS)}")


def _value(value: Any) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def printed_rows(comparison: Comparison) -> list[dict[str, str]]:
    """Every compared value as text: the columns of :data:`HEADER` plus ``class`` (the status)."""
    printed = []
    for _, r in comparison.rows.iterrows():
        digits = 1 if r["metric"] in _ONE_DECIMAL else 3
        low, high = _value(r["ci_low"]), _value(r["ci_high"])
        if low is None:
            ci = ""
        elif r["metric"] == "images_per_s":
            ci = f"{fmt.format_ratio(low)} .. {fmt.format_ratio(high)}"
        else:
            ci = f"{fmt.format_delta(low, digits)} .. {fmt.format_delta(high, digits)}"
        status = "within noise" if r["status"] == "noise" else r["status"]
        printed.append(
            {
                "kind": r["kind"],
                "key": r["key"],
                "metric": r["metric"],
                "base": fmt.format_number(_value(r["base"]), digits),
                "new": fmt.format_number(_value(r["new"]), digits),
                "delta": fmt.format_delta(_value(r["delta"]), digits),
                "ci95": ci,
                "mdd": "" if _value(r["mdd"]) is None else fmt.format_number(r["mdd"], digits),
                "ratio": fmt.format_ratio(_value(r["ratio"])),
                "status": status + ("" if r["gated"] or r["status"] in _QUIET else " (not gated)"),
                "class": r["status"],
                "method": "" if not isinstance(r["method"], str) else r["method"],
            }
        )
    return printed


def _changed(comparison: Comparison) -> list[dict[str, str]]:
    return [r for r in printed_rows(comparison) if r["class"] != "equal"]


def text(comparison: Comparison) -> str:
    """The values that are not "equal" as a plain-text table, the mode, then a one-line verdict."""
    printed = _changed(comparison)
    widths = [max([len(h), *(len(r[h]) for r in printed)]) for h in HEADER]
    lines = ["  ".join(h.ljust(w) for h, w in zip(HEADER, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for row in printed:
        lines.append("  ".join(row[h].ljust(w) for h, w in zip(HEADER, widths, strict=True)).rstrip())
    if not printed:
        lines.append("(no value changed)")
    if comparison.note:
        lines.append(f"note: {comparison.note}")
    lines.append(comparison.verdict())
    return "\n".join(lines)


def markdown(comparison: Comparison) -> str:
    """A pull-request summary: the verdict, the mode, and a table of every value that is not equal."""
    icon = ":x:" if comparison.exit_code else ":white_check_mark:"
    lines = [f"### {icon} unetgan-bench: {comparison.verdict()}", "", f"_{comparison.note}_" if comparison.note else ""]
    printed = _changed(comparison)
    if printed:
        lines += ["", "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
        for row in printed:
            cells = [row[h].replace("|", "\\|") for h in HEADER]
            if row["class"] in ("regressed", "failed"):
                cells[-1] = f"**{cells[-1]}**"
            lines.append("| " + " | ".join(cells) + " |")
    else:
        lines += ["", "No value changed."]
    return "\n".join(lines)


def as_json(comparison: Comparison) -> str:
    """The comparison as one JSON object: settings, verdict, exit code and every compared value."""
    rows = comparison.rows.astype(object).where(comparison.rows.notna(), None).to_dict("records")
    return json.dumps(
        {
            "base": str(comparison.base),
            "new": str(comparison.new),
            "mode": comparison.mode,
            "note": comparison.note,
            "dice_drop": comparison.dice_drop,
            "dice_margin": comparison.dice_margin,
            "throughput_ratio": comparison.throughput_ratio,
            "gate_throughput": comparison.gate_throughput,
            "verdict": comparison.verdict(),
            "exit_code": comparison.exit_code,
            "counts": comparison.counts(),
            "rows": rows,
        },
        indent=2,
        allow_nan=False,
    )


def junit(comparison: Comparison) -> str:
    """JUnit XML: a test case per compared value; regressed or failed gated values are failures."""
    printed = printed_rows(comparison)
    failures = sum(
        1 for r, g in zip(printed, comparison.rows["gated"], strict=True) if g and r["class"] in ("regressed", "failed")
    )
    skipped = sum(1 for r in printed if r["class"] in ("missing", "added"))
    root = ET.Element("testsuites", name="unetgan-bench compare", tests=str(len(printed)), failures=str(failures))
    suite = ET.SubElement(
        root,
        "testsuite",
        name=f"{comparison.base} -> {comparison.new}",
        tests=str(len(printed)),
        failures=str(failures),
        errors="0",
        skipped=str(skipped),
    )
    props = ET.SubElement(suite, "properties")
    for name, value in (("mode", comparison.mode), ("note", comparison.note), ("verdict", comparison.verdict())):
        ET.SubElement(props, "property", name=name, value=value)
    for row, gated in zip(printed, comparison.rows["gated"], strict=True):
        case = ET.SubElement(suite, "testcase", classname=f"{row['kind']}.{row['key']}", name=row["metric"])
        detail = (
            f"base {row['base']}, new {row['new']}, delta {row['delta']}"
            + (f", CI95 {row['ci95']}, minimum detectable drop {row['mdd']}" if row["ci95"] else "")
            + (f" ({row['method']})" if row["method"] else "")
        )
        if gated and row["class"] in ("regressed", "failed"):
            ET.SubElement(case, "failure", message=f"{row['status']}: {detail}", type=row["class"]).text = detail
        elif row["class"] in ("missing", "added"):
            ET.SubElement(case, "skipped", message=f"row {row['class']}")
        else:
            ET.SubElement(case, "system-out").text = f"{row['status']}: {detail}"
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")


def render(comparison: Comparison, name: str) -> str:
    """The comparison in format ``name`` (one of :data:`FORMATS`)."""
    check_format(name)
    return {"text": text, "markdown": markdown, "json": as_json, "junit": junit}[name](comparison)


def write_html(comparison: Comparison, path: Path) -> Path:
    """Write the comparison as a self-contained HTML page (inline CSS, no network requests).

    Args:
        comparison: the result of ``bench.compare.compare_runs``.
        path: the HTML file to write.
    """
    env = environment()
    html = env.get_template("comparison.html.j2").render(
        base=str(comparison.base),
        new=str(comparison.new),
        thresholds=[
            ("mode", comparison.note or comparison.mode),
            ("Dice drop allowed per row", fmt.format_number(comparison.dice_drop, 4)),
            ("Dice margin of the noise-aware gate", fmt.format_number(comparison.dice_margin, 4)),
            ("throughput ratio allowed", fmt.format_ratio(comparison.throughput_ratio)),
            ("throughput gated", "yes" if comparison.gate_throughput else "no"),
        ],
        verdict=comparison.verdict(),
        failed=bool(comparison.exit_code),
        rows=printed_rows(comparison),
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
