"""Collector and tables on the committed fixture run: golden CSVs plus values checked by hand."""

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reports import tables
from reports.collect import load_run
from unetgan_core.errors import DataError, UserError

FIXTURE = Path(__file__).parent / "fixtures" / "run_small"
EXPECTED = Path(__file__).parent / "fixtures" / "run_small_expected"


@pytest.fixture(scope="module")
def run():
    return load_run(FIXTURE)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run") / "run_small"
    shutil.copytree(FIXTURE, run_dir)
    return run_dir, tables.write_exports(run_dir)


def test_collector_reads_every_row_kind(run):
    assert len(run.segmentation) == 16  # philips: 2 scenarios, targets: 3, times 2 seeds
    assert len(run.fgsm) == 20
    assert len(run.throughput) == 4
    assert len(run.per_image) == 16 * 8
    assert run.synthetic and not run.oracle
    assert set(run.per_image.columns) >= {"scenario", "vendor", "seed", "dice_mean", "hd95_mm"}


@pytest.mark.parametrize("name", ["table1", "per_class", "hd95", "eps50"])
def test_exported_tables_match_golden_csv(exported, name):
    run_dir, _ = exported
    got = pd.read_csv(run_dir / "tables" / f"{name}.csv", keep_default_na=False)
    want = pd.read_csv(EXPECTED / f"{name}.csv", keep_default_na=False)
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-5)


def test_table1_mean_std_by_hand(run):
    # siemens / unetgan: average each image over the two seeds, then mean and sample std over images.
    rows = run.segmentation.query("vendor == 'siemens' and scenario == 'unetgan'")
    per_seed = [pd.read_csv(FIXTURE / p)["dice_mean"].to_numpy() for p in rows["per_image"]]
    images = np.mean(per_seed, axis=0)
    cell = tables.segmentation_stats(run).query("vendor == 'siemens' and scenario == 'unetgan'").iloc[0]
    assert cell["mean"] == pytest.approx(images.mean())
    assert cell["std_images"] == pytest.approx(images.std(ddof=1))
    assert cell["std_seeds"] == pytest.approx(np.std([v.mean() for v in per_seed], ddof=1))
    assert cell["ci95_low"] < cell["mean"] < cell["ci95_high"]
    # Unet-GAN beats the clean Unet on all 8 images: the exact two-sided signed-rank p is 2/2**8.
    assert cell["p_vs_clean"] == pytest.approx(2 / 2**8)


def test_hd95_undefined_values_are_counted_not_dropped(run):
    hd95 = tables.segmentation_stats(run, "hd95_mm").set_index(["vendor", "scenario"])
    assert hd95.loc[("siemens", "clean"), "n_undefined"] == 1
    assert hd95.loc[("philips", "clean"), "n_undefined"] == 0
    parts = tables.format_cell(hd95.loc[("siemens", "clean")].to_dict() | {"scenario": "clean"}, digits=1)
    assert "1 undefined" in parts["n"]


def test_source_vendor_has_no_translation_cell(run):
    wide = tables.wide_table(run, tables.segmentation_stats(run), "text")
    assert wide["columns"] == ["Clean Unet", "Noisy Unet", "Unet-GAN"]
    assert wide["rows"][0]["vendor"] == "philips (test)"
    assert wide["rows"][0]["cells"][2] is None
    assert wide["rows"][1]["cells"][2]["paper"] == "0.805 +/- 0.041"


@pytest.mark.parametrize(
    ("eps", "dice", "expected"),
    [
        ([0, 0.01, 0.02], [0.8, 0.6, 0.2], 0.015),  # half is 0.4: midway between 0.01 and 0.02
        ([0.02, 0, 0.01], [0.2, 0.8, 0.4], 0.01),  # unsorted input; exactly half at 0.01
        ([0, 0.01], [0.8, 0.7], math.inf),  # never halves
        ([0.01, 0.02], [0.8, 0.1], None),  # no unattacked reference
    ],
)
def test_eps50_by_hand(eps, dice, expected):
    got = tables.eps50(eps, dice)
    assert got == expected if expected is None or math.isinf(expected) else got == pytest.approx(expected)


def test_latex_and_summary_exports(exported):
    run_dir, written = exported
    tex = (run_dir / "tables" / "table1.tex").read_text()
    assert r"$0.806 \pm 0.044$$^{**}$" in tex
    assert r"siemens (paper) & $0.474 \pm 0.071$" in tex
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["synthetic"] is True and summary["oracle"] is False
    assert summary["throughput_best_images_per_s"] == 455.5
    assert {"table1.csv", "table1.tex", "throughput.csv", "stages.csv", "summary.json"} <= set(written)


def test_rows_without_per_image_files_fall_back_to_row_metrics(tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(FIXTURE, run_dir)
    shutil.rmtree(run_dir / "per_image")
    run = load_run(run_dir)
    cell = tables.segmentation_stats(run).query("vendor == 'ge' and scenario == 'clean'").iloc[0]
    means = run.segmentation.query("vendor == 'ge' and scenario == 'clean'")["dice_mean"]
    assert cell["mean"] == pytest.approx(means.mean())
    assert math.isnan(cell["std_images"]) and math.isnan(cell["p_vs_clean"])


def test_later_row_with_same_key_replaces_earlier(tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(FIXTURE, run_dir)
    first = json.loads((run_dir / "results.jsonl").read_text().splitlines()[0])
    first["metrics"]["dice_mean"] = 0.123
    with open(run_dir / "results.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(first) + "\n")
    run = load_run(run_dir)
    assert len(run.segmentation) == 16
    match = run.segmentation.query(
        f"scenario == '{first['scenario']}' and vendor == '{first['vendor']}' and seed == {first['seed']}"
    )
    assert match["dice_mean"].tolist() == [0.123]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"schema_version": 1, "kind": "segmentation"\n', "not a JSON row"),
        ('{"schema_version": 2, "kind": "segmentation", "metrics": {}}\n', "schema_version"),
        ('{"schema_version": 1, "kind": "mystery", "metrics": {}}\n', "unknown kind"),
        ('{"schema_version": 1, "kind": "segmentation", "metrics": {"dice_mean": 0.5}}\n', "lacks 'scenario'"),
    ],
)
def test_malformed_rows_raise_data_error(tmp_path, content, message):
    (tmp_path / "results.jsonl").write_text(content)
    with pytest.raises(DataError, match=message):
        load_run(tmp_path)


def test_missing_folder_or_results_raise_user_error(tmp_path):
    with pytest.raises(UserError, match="run folder not found"):
        load_run(tmp_path / "nope")
    with pytest.raises(UserError, match="results file not found"):
        load_run(tmp_path)


def test_per_image_path_outside_run_is_rejected(tmp_path):
    row = {
        "schema_version": 1,
        "kind": "segmentation",
        "scenario": "clean",
        "vendor": "a",
        "seed": 0,
        "metrics": {"dice_mean": 0.5},
        "per_image": "../../etc/passwd",
    }
    (tmp_path / "results.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(DataError, match="outside the run folder"):
        load_run(tmp_path)


def test_stages_in_pipeline_order_with_shares(run):
    stages = tables.stage_table(run.manifest)
    assert stages["stage"].tolist()[:3] == ["data", "unet_training", "translator_training"]
    assert stages["share"].sum() == pytest.approx(1.0)


def test_paper_values_only_where_the_cell_measures_what_the_paper_measured():
    from reports.tables import _paper

    assert _paper("ge", "target", "clean", "dice_mean", "text") == "0.727 +/- 0.042"
    # A GE-trained Unet tested on GE (Sunnybrook) is not the paper's Philips-trained GE column.
    assert _paper("ge", "source", "clean", "dice_mean", "text") == ""
    assert _paper("philips", "source", "unetgan", "dice_mean", "text") == ""
    assert _paper("siemens", "target", "clean", "dice_myo", "text") == ""
