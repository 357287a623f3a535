"""The dose-response table and figure of a swept setting, and the translator loss-term table, on fixture runs."""

from __future__ import annotations

import json
import math

import pytest
from test_report_tables import _fake_run

from unetgan_bench.reports import figures
from unetgan_bench.reports.collect import load_run
from unetgan_bench.reports.dose_response import dose_response_table
from unetgan_bench.reports.loss_terms import loss_term_table
from unetgan_bench.reports.render import render_report
from unetgan_bench.reports.runstats import RunStats
from unetgan_core.errors import DataError

# Source 0.9; siemens clean 0.5 (drop 0.4): lambda 0 -> 0.8 (75%), 1.5 -> 0.7 (50%), 15 -> 0.6 (25%).
# ge clean 0.7 (drop 0.2): lambda 0 -> 0.8 (50%), 15 -> 0.7 (0%).
CELLS = {
    ("philips", "source", "clean", 0): [0.9, 0.9],
    ("philips", "source", "clean", 1): [0.9, 0.9],
    ("siemens", "target", "clean", 0): [0.5, 0.5],
    ("siemens", "target", "clean", 1): [0.5, 0.5],
    ("siemens", "target", "lam-0", 0): [0.8, 0.8],
    ("siemens", "target", "lam-0", 1): [0.7, 0.9],
    ("siemens", "target", "lam-1.5", 0): [0.7, 0.7],
    ("siemens", "target", "lam-15", 0): [0.6, 0.6],
    ("ge", "target", "clean", 0): [0.7, 0.7],
    ("ge", "target", "lam-0", 0): [0.8, 0.8],
    ("ge", "target", "lam-15", 0): [0.7, 0.7],
}
MANIFEST = {"suite_config": {"vendors": {"source": "philips", "targets": ["siemens", "ge"]}}}
VALUES = {"lam-0": 0, "lam-1.5": 1.5, "lam-15": 15}


def _with_settings(run_dir):
    """Give the sweep cells' rows their swept setting, as the runner writes it."""
    path = run_dir / "results.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for row in rows:
        if row["scenario"] in VALUES:
            row["settings"] = {"translator.lambda_unet": VALUES[row["scenario"]]}
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run_dir


@pytest.fixture
def swept(tmp_path):
    return _with_settings(_fake_run(tmp_path / "run", CELLS, MANIFEST))


def test_dose_response_table_by_hand(swept):
    stats = RunStats(load_run(swept))
    table = stats.dose_response
    assert list(zip(table["vendor"], table["value"], strict=True)) == [
        ("ge", 0.0),
        ("ge", 15.0),
        ("siemens", 0.0),
        ("siemens", 1.5),
        ("siemens", 15.0),
    ]
    siemens = table[table["vendor"] == "siemens"].set_index("value")
    assert siemens["dice"].tolist() == pytest.approx([0.8, 0.7, 0.6])
    assert siemens["recovery"].tolist() == pytest.approx([0.75, 0.5, 0.25])
    assert siemens["n_seeds"].tolist() == [2, 1, 1]
    assert siemens.loc[0.0, "recovery_seed_std"] == pytest.approx(0.0)  # both seeds recover 75%
    assert table.loc[table["vendor"] == "ge", "recovery"].tolist() == pytest.approx([0.5, 0.0])
    assert table["paper"].tolist() == [False, True, False, False, True]  # the paper's lambda_1 = 15
    assert set(table["setting"]) == {"translator.lambda_unet"}
    assert "clean" not in set(table["scenario"])


def test_dose_response_is_empty_without_a_sweep(tmp_path):
    run = load_run(_fake_run(tmp_path / "run", CELLS, MANIFEST))
    assert dose_response_table(run, RunStats(run).segmentation(), RunStats(run).recovery).empty


def test_dose_response_chart_marks_the_paper_value(swept):
    stats = RunStats(load_run(swept))
    svg = figures.dose_response_chart(stats.dose_response, "translator.lambda_unet", {"siemens": 0.5}, 15.0)
    assert svg.startswith("<svg") or "<svg" in svg[:500]
    assert "paper" in svg and "clean Unet, siemens" in svg


def _loss_file(run_dir, name, seed, best, checks, weights=None):
    folder = run_dir / "loss_terms"
    folder.mkdir(exist_ok=True)
    record = {
        "scenario": name,
        "vendor": "siemens",
        "seed": seed,
        "best_step": best,
        "weights": weights or {"gan": 1.0, "unet": 15.0, "ssim": 5.0, "cycle": 0.0},
        "checks": checks,
    }
    (folder / f"{name}-{seed}.json").write_text(json.dumps(record))


def test_loss_term_table_by_hand(swept):
    probe = {"probe_gan": 0.5, "probe_unet": 0.02, "probe_ssim": 0.1, "probe_cycle": 0.01}
    final = {"step": 10, "loss_gan": 0.6, "loss_unet": 0.04, "loss_ssim": 0.02, "loss_g": 1.3, **probe}
    _loss_file(swept, "lam-15", 0, 0, [{"step": 0, **probe, "probe_unet": 0.0, "selection": "unlabelled"}, final])
    _loss_file(swept, "lam-15", 1, 10, [{"step": 0, **probe}, {**final, "loss_unet": 0.06, "loss_g": 1.6}])
    table = loss_term_table(load_run(swept)).set_index("term")
    assert table.loc["unet", "weight"] == 15.0
    assert table.loc["unet", "train"] == pytest.approx(0.05)
    assert table.loc["unet", "weighted"] == pytest.approx(0.75)
    assert table.loc["unet", "share"] == pytest.approx((15 * 0.04 / 1.3 + 15 * 0.06 / 1.6) / 2)
    assert table.loc["unet", "probe_selected"] == pytest.approx(0.01)  # seed 0 selected step 0 (0.0), seed 1 step 10
    assert table.loc["unet", "probe_final"] == pytest.approx(0.02)
    assert math.isnan(table.loc["cycle", "train"]) and table.loc["cycle", "probe_final"] == pytest.approx(0.01)
    assert table.loc["gan", "selected_steps"] == "0, 10"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[1, 2]", "expected a JSON object"),
        ('{"scenario": "x"}', "lacks 'vendor'"),
        (
            '{"scenario": "x", "vendor": "v", "seed": "0", "best_step": 0, "weights": {}, "checks": []}',
            "'seed' must be an integer",
        ),
        (
            '{"scenario": "x", "vendor": "v", "seed": 0, "best_step": 0, "weights": {}, "checks": [{"loss_g": 1}]}',
            "integer 'step'",
        ),
        (
            '{"scenario": "x", "vendor": "v", "seed": 0, "best_step": 0, "weights": {}, '
            '"checks": [{"step": 0, "loss_g": "big"}]}',
            "'loss_g' must be a number",
        ),
    ],
)
def test_malformed_loss_term_files_are_one_line_data_errors(swept, content, message):
    (swept / "loss_terms").mkdir()
    (swept / "loss_terms" / "bad.json").write_text(content)
    with pytest.raises(DataError, match=message):
        loss_term_table(load_run(swept))


def test_report_and_exports_show_the_sweep_and_the_loss_terms(swept):
    _loss_file(swept, "lam-15", 0, 0, [{"step": 0, "probe_gan": 0.5}])
    html = render_report(swept).read_text()
    assert 'id="dose-response"' in html and 'id="loss-terms"' in html
    assert "15 (paper)" in html
    assert (swept / "tables" / "dose_response.csv").is_file() and (swept / "tables" / "loss_terms.csv").is_file()


def test_report_without_a_sweep_has_no_such_sections(tmp_path):
    html = render_report(_fake_run(tmp_path / "run", CELLS, MANIFEST)).read_text()
    assert 'id="dose-response"' not in html and "Dose-response" not in html
