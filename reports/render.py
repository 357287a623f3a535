"""``render_report(run_dir)``: one self-contained ``report.html`` for a run folder.

Every table is computed once per render in a :class:`reports.runstats.RunStats` and
formatted in Python (the table modules and ``reports.format``); the Jinja template only loops
and prints, and the CSV, LaTeX and ``summary.json`` exports print the same ``RunStats``.
Autoescaping is on, so a vendor or scenario name is always shown as text. The CSS is inlined
and figures are inline SVG or PNG data URIs, so the file makes no network request and opens
offline. A part the run did not measure shows "not measured in this run"; a figure file that
cannot be read shows why, instead of stopping the whole report.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from markupsafe import Markup

from unetgan_bench.reports import figures, rundir
from unetgan_bench.reports import format as fmt
from unetgan_bench.reports.cellstats import METRIC_LABELS
from unetgan_bench.reports.collect import Run, load_run
from unetgan_bench.reports.corruption_tables import reference_pipeline, severity_levels
from unetgan_bench.reports.dose_response import PAPER_SETTINGS
from unetgan_bench.reports.exports import write_exports
from unetgan_bench.reports.loss_terms import TERM_LABELS
from unetgan_bench.reports.ordering import scenario_label, scenario_order, vendor_order
from unetgan_bench.reports.paper import paper_recovery
from unetgan_bench.reports.recovery import MIN_DROP, NO_DROP, recovering_methods, recovery_text
from unetgan_bench.reports.runstats import RunStats
from unetgan_bench.reports.segmentation_tables import wide_table
from unetgan_bench.reports.templating import TEMPLATES, environment
from unetgan_bench.reports.throughput_tables import throughput_text
from unetgan_core.errors import DataError

NOT_MEASURED = "not measured in this run"
SYNTHETIC_NOTICE = "synthetic phantom; styles inspired by the paper's vendors, not measurements of real scanners"
ORACLE_NOTICE = (
    "Some numbers come from oracle model selection (checkpoints chosen with target-domain labels, "
    "which a deployed method would not have); each such number is marked \u201coracle\u201d."
)
SECTIONS = (
    ("run", "Run"),
    ("table1", "Table 1: Dice per vendor and scenario"),
    ("recovery", "Recovery of the domain-shift drop"),
    ("dose-response", "Dose-response of swept settings"),
    ("loss-terms", "Translator loss terms"),
    ("per-class", "Dice per class"),
    ("hd95", "HD95"),
    ("translation", "Translation examples (Fig. 4/5)"),
    ("gallery", "Style gallery"),
    ("fgsm", "Adversarial attacks (FGSM)"),
    ("corruptions", "Natural corruptions (MRI-C)"),
    ("throughput", "Throughput and wall time"),
    ("config", "Suite configuration"),
)
STATISTICS_NOTE = (
    "Mean \u00b1 standard deviation over test images; each image's value is first averaged over the "
    "replicate seeds. \u201cseeds sd\u201d is the standard deviation of the per-seed means, the 95% CI a "
    "percentile bootstrap of the mean over images. Markers: paired Wilcoxon signed-rank test against the "
    "clean Unet on the same images (seed-averaged per-image values, seeds present in both): "
    "* p<0.05, ** p<0.01, *** p<0.001. The paper's values (Yan et al. 2019, Table 1) are shown beneath ours."
)
RECOVERY_NOTE = (
    "Recovery is the share of the domain-shift drop a method wins back: (its Dice on the target "
    "\u2212 the clean Unet's Dice on the target) / drop, where drop is the clean Unet's Dice on the "
    "source \u2212 its Dice on the target (Table 1's means); 100% reaches the source's Dice, 0% is no "
    "better than the clean Unet, and it is undefined where the drop is at most "
    f"{fmt.format_number(MIN_DROP, 2)}. In brackets: the standard deviation of the per-seed "
    "recoveries, in percentage points, and the number of seeds."
)
# Sections shown only when the run has them (a suite with a [sweep]; translators with loss-term records).
OPTIONAL_SECTIONS = ("dose-response", "loss-terms")
DOSE_NOTE = (
    "Dice on each target vendor against the swept setting (mean over test images, each first averaged over the "
    "seeds; band: 95% bootstrap CI); dotted: the clean Unet on that vendor; dashed: the paper's value. Recovery as "
    "in the table above, with the standard deviation of the per-seed recoveries."
)
LOSS_TERMS_NOTE = (
    "Each term of the translator objective, averaged over seeds. Training: the unweighted term's mean over the "
    "last interval before the final checkpoint (computed only for terms with a weight above 0); weighted: times its "
    "weight; share: of the whole generator objective. Probe: the unweighted term on fixed held-out images at the "
    "selected and the final checkpoint, measured for every term whatever its weight. Selected step: per seed."
)
_TRANSLATION_FILE = re.compile(r"^translation_(?P<vendor>.+)_seed(?P<seed>\d+)\.npz$")


def _svg(svg: str | None) -> Markup | None:
    # Our own matplotlib output: its text nodes are already XML-escaped by matplotlib.
    return Markup(svg) if svg else None


def _header(run: Run) -> list[tuple[str, str]]:
    m = run.manifest
    commit = str(m.get("commit") or fmt.MISSING)
    if m.get("dirty"):
        commit += " (dirty: uncommitted changes)"
    packages = m.get("packages") or {}
    return [
        ("suite", str(m.get("suite") or fmt.MISSING)),
        ("started", str(m.get("started") or fmt.MISSING)),
        ("finished", str(m.get("finished") or fmt.MISSING)),
        ("duration", fmt.format_seconds(m.get("duration_s"))),
        ("commit", commit),
        ("rows measured at", _row_commits(run)),
        ("device", str(m.get("device") or fmt.MISSING) + (f", {m['threads']} threads" if m.get("threads") else "")),
        ("data source", str(m.get("data_source") or fmt.MISSING) + (" (synthetic)" if run.synthetic else "")),
        *(
            [("data citation", str(citation))]
            if (citation := ((m.get("suite_config") or {}).get("suite") or {}).get("citation"))
            else []
        ),
        *_scoring((m.get("suite_config") or {}).get("metrics") or {}),
        *_subject_notes("skipped subjects", m.get("skipped_subjects")),
        *_subject_notes("labels left out", m.get("unused_labels")),
        *_audited(m.get("audited") or {}),
        ("packages", ", ".join(f"{k} {v}" for k, v in sorted(packages.items())) or fmt.MISSING),
        ("run folder", str(run.path)),
    ]


_TTA_NOTE = "test-time augmentation: softmax averaged over rotations of each image by -10, 0 and +10 degrees"
SCORING = {  # (setting, rule) -> what it did to the predictions, for the report header
    ("tta", "rotations"): _TTA_NOTE,
    ("postprocess", "largest_component"): "post-processing: the largest connected LV and blood pool kept per slice",
}


def _scoring(metrics: dict[str, Any]) -> list[tuple[str, str]]:
    """One header line naming what changed the predictions before they were scored (``[metrics] tta``,
    ``postprocess``), or none when they were scored as predicted."""
    chosen = [(key, metrics.get(key, "none")) for key in ("tta", "postprocess")]
    steps = [SCORING.get((key, rule), f"{key} = {rule}") for key, rule in chosen if rule != "none"]
    return [("scoring", "; ".join(steps) + " (FGSM rows attack the raw pipeline)")] if steps else []


def _subject_notes(title: str, items: list | None) -> list[tuple[str, str]]:
    """One header line ``title: subject: reason; ...`` for the manifest's ``[subject, reason]`` pairs, or none."""
    return [(title, "; ".join(f"{subject}: {reason}" for subject, reason in items))] if items else []


def _audited(audited: dict[str, Any]) -> list[tuple[str, str]]:
    """Header lines that identify exactly what outside code was measured: each external model's files
    (size and SHA-256), declared contracts and the adaptation the suite applied, and the plugin modules."""
    lines = []
    for name, model in sorted((audited.get("models") or {}).items()):
        files = "; ".join(
            f"{f.get('role')} {f.get('file')} ({f.get('size_bytes')} bytes, SHA-256 {f.get('sha256')})"
            for f in model.get("files") or []
        )
        contracts = ", ".join(f"{k}={v}" for k, v in sorted((model.get("contracts") or {}).items()))
        lines.append(
            (
                f"model {name}",
                f"{model.get('format')}: {files}; contracts: {contracts}; adaptation: {model.get('adaptation')}",
            )
        )
    plugins = audited.get("plugins") or []
    if plugins:
        lines.append(
            (
                "plugins",
                ", ".join(
                    f"{p.get('module')} ({p.get('distribution') or 'no distribution'} {p.get('version') or ''})".strip()
                    for p in plugins
                ),
            )
        )
    return lines


def _row_commits(run: Run) -> str:
    """The commits the rows come from (a resumed run may add rows at another commit), with row counts."""
    parts = []
    for commit, dirty, n in run.commits:
        code = "commit not recorded (schema 1 rows)" if commit is None else commit[:12] + (" (dirty)" if dirty else "")
        parts.append(f"{code}: {n} row{'s' if n != 1 else ''}")
    if len(parts) > 1:
        parts.insert(0, "MIXED")
    return "; ".join(parts) or fmt.MISSING


def _metric_section(stats: RunStats, metric: str, digits: int) -> dict[str, Any] | None:
    table = stats.segmentation(metric)
    if table.empty:
        return None
    return {"title": METRIC_LABELS[metric], "table": wide_table(table, "html", digits)}


def _method_list(scenarios: list[str], table: pd.DataFrame) -> str:
    """Scenario labels joined for a sentence, each flagged where its numbers use oracle selection."""
    names = []
    for scenario in scenarios:
        selections = "+".join(table.loc[table["scenario"] == scenario, "selection"].astype(str)).split("+")
        names.append(scenario_label(scenario) + (" (oracle)" if "oracle" in selections else ""))
    return ", ".join(names)


def _recovery(stats: RunStats) -> dict[str, Any] | None:
    table = stats.recovery
    if table.empty:
        return None
    rows = [
        {
            "vendor": r["vendor"],
            "method": scenario_label(r["scenario"]),
            "drop": fmt.format_number(float(r["drop"])),
            "dice_clean": fmt.format_number(float(r["dice_clean"])),
            "dice": fmt.format_number(float(r["dice"])),
            "recovery": recovery_text(r, "html"),
            # The pooled-undefined reason is already in the recovery text; seeds left out are not.
            "note": "" if math.isnan(float(r["recovery"])) else str(r["note"]),
            "oracle": "oracle" if "oracle" in str(r["selection"]).split("+") else "",
        }
        for _, r in table.iterrows()
    ]
    methods, left_out = recovering_methods(table, 0.5)
    if len(left_out) == table["vendor"].nunique():
        conclusion = "No target vendor has a drop to recover."
    else:
        conclusion = (
            "Methods that recover at least half of the drop on every target vendor: "
            + (_method_list(methods, table) if methods else "none")
            + "."
        )
        if left_out:
            conclusion += f" Left out ({NO_DROP}): {', '.join(left_out)}."
    return {"rows": rows, "conclusion": conclusion, "paper_check": _paper_check(table)}


def _paper_check(table: pd.DataFrame) -> str | None:
    """One sentence on the paper's Unet-GAN against this run's translators, from the recovery table (or None)."""

    def shares(scenario: str) -> dict[str, float]:
        rows = table[(table["scenario"] == scenario) & table["recovery"].notna()]
        return dict(zip(rows["vendor"], rows["recovery"].astype(float), strict=True))

    unetgan = shares("unetgan")
    if not unetgan:
        return None

    def listing(values: dict[str, float]) -> str:
        return ", ".join(f"{fmt.format_percent(v, 0)} on {vendor}" for vendor, v in values.items())

    text = f"Unet-GAN with the paper's loss, as this suite configures it, recovers {listing(unetgan)}"
    paper = {v: paper_recovery(v) for v in unetgan if paper_recovery(v) is not None}
    if paper:
        text += f" (the paper's Table 1: {listing(paper)})"
    for scenario, label in (("cyclegan", "plain CycleGAN"), ("unetgan_nofeat", "Unet-GAN without the feature loss")):
        other = {v: r for v, r in shares(scenario).items() if v in unetgan}
        if other:
            text += f"; {label} recovers {listing(other)}"
    return text + "."


def _dose_response(stats: RunStats) -> list[dict[str, Any]]:
    """One part per swept setting: its chart and its table rows, formatted."""
    table = stats.dose_response
    dice = stats.segmentation("dice_mean")
    clean = {r["vendor"]: float(r["mean"]) for _, r in dice[dice["scenario"] == "clean"].iterrows()}
    parts = []
    for setting, rows in table.groupby("setting", sort=False):
        paper = rows.loc[rows["paper"], "value"]
        parts.append(
            {
                "setting": setting,
                "chart": _svg(figures.dose_response_chart(rows, setting, clean, PAPER_SETTINGS.get(setting))),
                "rows": [
                    {
                        "vendor": r["vendor"],
                        "value": f"{r['value']:g}" + (" (paper)" if r["paper"] else ""),
                        "scenario": scenario_label(r["scenario"]),
                        "dice": fmt.format_number(r["dice"]),
                        "ci": fmt.format_ci(r["ci95_low"], r["ci95_high"]),
                        "std_seeds": fmt.format_number(r["std_seeds"]),
                        "recovery": fmt.format_percent(r["recovery"], 0),
                        "recovery_sd": fmt.format_number(100 * r["recovery_seed_std"], 0),
                    }
                    for _, r in rows.iterrows()
                ],
                "paper_in_sweep": not paper.empty,
            }
        )
    return parts


def _loss_terms(stats: RunStats) -> list[dict[str, str]]:
    return [
        {
            "scenario": scenario_label(r["scenario"]),
            "vendor": r["vendor"],
            "term": TERM_LABELS[r["term"]],
            "weight": f"{r['weight']:g}",
            "train": fmt.format_number(r["train"], 4),
            "weighted": fmt.format_number(r["weighted"], 4),
            "share": fmt.format_percent(r["share"], 0),
            "probe_selected": fmt.format_number(r["probe_selected"], 4),
            "probe_final": fmt.format_number(r["probe_final"], 4),
            "steps": r["selected_steps"],
        }
        for _, r in stats.loss_terms.iterrows()
    ]


def _translation_tags(path: Path) -> tuple[str | None, str, int] | None:
    """(scenario, vendor, seed) of a translation panel file.

    The runner stores ``scenario`` and ``vendor`` inside the file; older files are named
    ``translation_<vendor>_seed<k>.npz`` and carry no scenario.
    """
    match = _TRANSLATION_FILE.match(path.name)
    if not match:
        return None
    seed = int(match["seed"])
    try:
        with np.load(path, allow_pickle=False) as data:
            if "scenario" in data.files and "vendor" in data.files:
                return str(data["scenario"]), str(data["vendor"]), seed
    except (OSError, ValueError):
        pass
    return None, match["vendor"], seed


def _translation_panels(run: Run) -> list[dict[str, Any]]:
    panels = []
    order = {v: i for i, v in enumerate(vendor_order(run))}
    found = []
    for path in sorted((run.path / "figures").glob("translation_*.npz")):
        tags = _translation_tags(path)
        if tags:
            scenario, vendor, seed = tags
            found.append((order.get(vendor, len(order)), vendor, scenario or "", seed, path))
    for _, vendor, scenario, seed, path in sorted(found, key=lambda t: t[:4]):
        title = f"{scenario_label(scenario)} on {vendor}, seed {seed}" if scenario else f"{vendor}, seed {seed}"
        panel = {"title": title, "uri": None, "error": None}
        try:
            panel["uri"] = figures.translation_panel(path)
        except DataError as exc:
            panel["error"] = f"could not be drawn: {exc}"
        panels.append(panel)
    return panels


def _fgsm_panels(run: Run) -> list[dict[str, Any]]:
    panels = []
    attacked = [str(s) for s in dict.fromkeys(run.fgsm.get("scenario", []))]
    for scenario, vendor, path in rundir.fgsm_panel_files(run.path, attacked):
        panel = {"title": f"{scenario_label(scenario)} on {vendor or fmt.MISSING}", "uri": None, "error": None}
        try:
            panel["uri"], eps = figures.fgsm_panel(path)
            if eps is not None:
                panel["title"] += f", eps {fmt.format_number(eps, 4)}"
        except DataError as exc:
            panel["error"] = f"could not be drawn: {exc}"
        panels.append(panel)
    return panels


def _gallery(run: Run) -> dict[str, Any] | None:
    try:
        uri = figures.gallery_uri(run.path / "figures" / "gallery.png")
    except DataError as exc:
        return {"uri": None, "error": f"could not be shown: {exc}"}
    return {"uri": uri, "error": None} if uri else None


def _fgsm(stats: RunStats) -> dict[str, Any] | None:
    curves = stats.fgsm_curves
    if curves.empty:
        return None
    rows = [
        {
            "scenario": scenario_label(r["scenario"]),
            "vendor": r["vendor"],
            "attack": r["attack"],
            "dice_eps0": fmt.format_number(None if r["dice_eps0"] != r["dice_eps0"] else r["dice_eps0"]),
            "eps50": r["eps50_text"],
            "oracle": "oracle" if "oracle" in str(r["selection"]).split("+") else "",
        }
        for _, r in stats.eps50.iterrows()
    ]
    return {"chart": _svg(figures.fgsm_chart(curves)), "eps50": rows}


def _corruptions(stats: RunStats) -> dict[str, Any] | None:
    """The corruption section: the severity table, the summary per pipeline and vendor, the heat map and
    the example panels (``reports.corruption_tables``)."""
    dice, table = stats.corruption_dice, stats.corruption_summary
    if stats.run.corruption.empty:
        return None
    number = fmt.format_number
    rows = [
        {
            "scenario": scenario_label(r["scenario"]),
            "vendor": r["vendor"],
            "dice_clean": number(r["dice_clean"]),
            "mean_dice": number(r["mean_corruption_dice"]),
            "mce": fmt.format_percent(None if math.isnan(r["mce"]) else r["mce"], 0),
            "relative_mce": fmt.format_percent(None if math.isnan(r["relative_mce"]) else r["relative_mce"], 0),
            "worst": f"{r['worst_corruption']} ({number(r['worst_corruption_dice'])})"
            if isinstance(r["worst_corruption"], str)
            else fmt.MISSING,
            "failed": f"failed training: {r['n_failed']} seed(s) left out" if r["n_failed"] else "",
            "oracle": "oracle" if "oracle" in str(r["selection"]).split("+") else "",
        }
        for _, r in table.iterrows()
    ]
    levels = severity_levels(stats.run.corruption)  # settings, known even where a training failed
    severities = [c for c in levels.columns if c.startswith("severity ")]
    return {
        "summary": rows,
        "reference": scenario_label(reference_pipeline(stats.run)),
        "levels": {
            "columns": severities,
            "rows": [
                {
                    "corruption": r["corruption"],
                    "unit": str(r["level_unit"] or ""),
                    "levels": [fmt.format_number(r[c], 3) for c in severities],
                }
                for _, r in levels.iterrows()
            ],
        },
        "heatmap": _svg(
            figures.corruption_heatmaps(dice, {s: scenario_label(s) for s in scenario_order(dice["scenario"])})
        ),
        "panels": _corruption_panels(stats.run),
    }


def _corruption_panels(run: Run) -> list[dict[str, Any]]:
    """One example figure per (pipeline, vendor), rows the corruptions, in report order."""
    grouped: dict[tuple[str, str], list[tuple[str, Path]]] = {}
    for scenario, vendor, corruption, path in rundir.corruption_panel_files(run.path):
        grouped.setdefault((scenario, vendor), []).append((corruption, path))
    vendors = {v: i for i, v in enumerate(vendor_order(run))}
    scenarios = {s: i for i, s in enumerate(scenario_order([s for s, _ in grouped]))}
    panels = []
    for (scenario, vendor), paths in sorted(
        grouped.items(), key=lambda kv: (scenarios[kv[0][0]], vendors.get(kv[0][1], len(vendors)))
    ):
        title = f"{scenario_label(scenario)} on {vendor}" if scenario else ", ".join(p.name for _, p in paths)
        panel = {"title": title, "uri": None, "error": None}
        try:
            if not scenario:
                raise DataError("not a readable corruption panel file")
            panel["uri"] = figures.corruption_panel(paths)
        except DataError as exc:
            panel["error"] = f"could not be drawn: {exc}"
        panels.append(panel)
    return panels


def _throughput(stats: RunStats) -> dict[str, Any] | None:
    table = stats.throughput
    if table.empty:
        return None
    return {"rows": throughput_text(table), "chart": _svg(figures.throughput_chart(table))}


def _stages(stats: RunStats) -> list[dict[str, str]]:
    frame = stats.stages
    return [
        {
            "stage": r["stage"].replace("_", " "),
            "time": fmt.format_seconds(r["seconds"]),
            "share": fmt.format_percent(r["share"]),
        }
        for _, r in frame.iterrows()
    ]


def report_context(stats: RunStats) -> dict[str, Any]:
    """Everything the template prints, already computed and formatted.

    Args:
        stats: the run's tables (see :class:`reports.runstats.RunStats`).
    """
    run = stats.run
    dice = stats.segmentation("dice_mean")
    scenarios = scenario_order(dice["scenario"]) if not dice.empty else []
    config = run.manifest.get("suite_config")
    dose_response, loss_terms = _dose_response(stats), _loss_terms(stats)
    present = {name for name, part in (("dose-response", dose_response), ("loss-terms", loss_terms)) if part}
    return {
        "title": f"unetgan-bench report: {run.manifest.get('suite') or run.path.name}",
        "header": _header(run),
        "synthetic_notice": SYNTHETIC_NOTICE if run.synthetic else None,
        "oracle_notice": ORACLE_NOTICE if run.oracle else None,
        "sections": [s for s in SECTIONS if s[0] not in OPTIONAL_SECTIONS or s[0] in present],
        "not_measured": NOT_MEASURED,
        "statistics_note": STATISTICS_NOTE,
        "table1": wide_table(dice, "html") if not dice.empty else None,
        "recovery": _recovery(stats),
        "recovery_note": RECOVERY_NOTE,
        "dose_response": dose_response,
        "dose_note": DOSE_NOTE,
        "loss_terms": loss_terms,
        "loss_terms_note": LOSS_TERMS_NOTE,
        "dice_chart": _svg(figures.dice_bar_chart(dice, {s: scenario_label(s) for s in scenarios})),
        "per_class": [s for s in (_metric_section(stats, m, 3) for m in ("dice_blood_pool", "dice_myo")) if s],
        "hd95": _metric_section(stats, "hd95_mm", 1),
        "translation": _translation_panels(run),
        "gallery": _gallery(run),
        "fgsm": _fgsm(stats),
        "fgsm_panels": _fgsm_panels(run),
        "corruptions": _corruptions(stats),
        "throughput": _throughput(stats),
        "stages": _stages(stats),
        "config": json.dumps(config, indent=2, sort_keys=True, default=str) if config else None,
        "css": Markup((TEMPLATES / "report.css").read_text(encoding="utf-8")),
    }


def render_report(run_dir: Path | str, path: Path | str | None = None, exports: bool = True) -> Path:
    """Write ``report.html`` (and, by default, the CSV/LaTeX tables and ``summary.json``) for a run.

    Args:
        run_dir: the run folder (``results.jsonl``, ``manifest.json``, ``per_image/``, ``figures/``).
        path: where to write the HTML; ``run_dir/report.html`` when None.
        exports: also write ``tables/*.csv``, ``tables/*.tex`` and ``summary.json`` (see
            :func:`reports.exports.write_exports`).

    Returns:
        The path of the written report.

    Raises:
        UserError: the run folder or its results file is missing.
        DataError: a results row, manifest or per-image CSV is malformed.
    """
    run_dir = Path(run_dir)
    stats = RunStats(load_run(run_dir))
    html = environment().get_template("report.html.j2").render(**report_context(stats))
    out = Path(path) if path is not None else run_dir / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    if exports:
        write_exports(run_dir, stats)
    return out
