"""Collector and tables on the committed fixture run: golden CSVs plus values checked by hand."""

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from unetgan_bench.reports import cellstats, exports, fgsm_tables, segmentation_tables, throughput_tables
from unetgan_bench.reports.collect import load_run
from unetgan_bench.reports.paper import paper_value
from unetgan_bench.reports.recovery import RECOVERY_COLUMNS, recovering_methods, recovery_text
from unetgan_bench.reports.runstats import RunStats
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
    return run_dir, exports.write_exports(run_dir)


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
    cell = cellstats.segmentation_stats(run).query("vendor == 'siemens' and scenario == 'unetgan'").iloc[0]
    assert cell["mean"] == pytest.approx(images.mean())
    assert cell["std_images"] == pytest.approx(images.std(ddof=1))
    assert cell["std_seeds"] == pytest.approx(np.std([v.mean() for v in per_seed], ddof=1))
    assert cell["ci95_low"] < cell["mean"] < cell["ci95_high"]
    # Unet-GAN beats the clean Unet on all 8 images: the exact two-sided signed-rank p is 2/2**8.
    assert cell["p_vs_clean"] == pytest.approx(2 / 2**8)


def test_hd95_undefined_values_are_counted_not_dropped(run):
    hd95 = cellstats.segmentation_stats(run, "hd95_mm").set_index(["vendor", "scenario"])
    assert hd95.loc[("siemens", "clean"), "n_undefined"] == 1
    assert hd95.loc[("philips", "clean"), "n_undefined"] == 0
    parts = segmentation_tables.format_cell(hd95.loc[("siemens", "clean")].to_dict() | {"scenario": "clean"}, digits=1)
    assert "1 undefined" in parts["n"]


def test_source_vendor_has_no_translation_cell(run):
    wide = segmentation_tables.wide_table(cellstats.segmentation_stats(run), "text")
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
    got = fgsm_tables.eps50(eps, dice)
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
    cell = cellstats.segmentation_stats(run).query("vendor == 'ge' and scenario == 'clean'").iloc[0]
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
        ('{"schema_version": 7, "kind": "segmentation", "metrics": {}}\n', "schema_version"),
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
    stages = throughput_tables.stage_table(run.manifest)
    assert stages["stage"].tolist()[:3] == ["data", "unet_training", "translator_training"]
    assert stages["share"].sum() == pytest.approx(1.0)


def test_paper_values_only_where_the_cell_measures_what_the_paper_measured():
    assert paper_value("ge", "target", "clean", "dice_mean", "text") == "0.727 +/- 0.042"
    # A GE-trained Unet tested on GE (Sunnybrook) is not the paper's Philips-trained GE column.
    assert paper_value("ge", "source", "clean", "dice_mean", "text") == ""
    assert paper_value("philips", "source", "unetgan", "dice_mean", "text") == ""
    assert paper_value("siemens", "target", "clean", "dice_myo", "text") == ""


# -- recovery of the domain-shift drop -------------------------------------------------------
def _fake_run(run_dir: Path, cells: dict, manifest: dict | None = None) -> Path:
    """A run folder with per-image Dice chosen by hand.

    ``cells`` maps ``(vendor, role, scenario, seed[, fold])`` to per-image Dice: a list (images
    ``<vendor>-000``, ``<vendor>-001``, ...) or a dict ``{subject: dice}``.
    """
    (run_dir / "per_image").mkdir(parents=True)
    rows = []
    for n, (key, images) in enumerate(cells.items()):
        vendor, role, scenario, seed, *fold = key
        images = images if isinstance(images, dict) else {f"{vendor}-{i:03d}": d for i, d in enumerate(images)}
        rel = f"per_image/cell{n}.csv"
        pd.DataFrame(
            {
                "index": range(len(images)),
                "subject": list(images),
                "slice_index": 0,
                "phase": "ED",
                "dice_mean": list(images.values()),
            }
        ).to_csv(run_dir / rel, index=False)
        row = {"schema_version": 1, "kind": "segmentation", "cell_id": f"cell{n}", "scenario": scenario}
        row |= {"vendor": vendor, "role": role, "seed": seed, "per_image": rel}
        row |= {"selection": "oracle" if scenario == "oracle_method" else "val"}
        row |= {"fold": fold[0]} if fold else {}
        row["metrics"] = {"dice_mean": float(np.mean(list(images.values()))), "n_images": len(images)}
        rows.append(row)
    (run_dir / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run_dir / "manifest.json").write_text(json.dumps(manifest or {}))
    return run_dir


# Source 0.9, siemens clean 0.5 (drop 0.4). Unet-GAN: seed 0 0.7 (recovers 50%), seed 1 0.8 (75%).
# GE barely drops (0.895: 0.005); canon has no clean cell; a source-only scenario is not a method here.
HAND_CELLS = {
    ("philips", "source", "clean", 0): [0.9, 0.9],
    ("philips", "source", "clean", 1): [0.9, 0.9],
    ("philips", "source", "noisy", 0): [0.8, 0.8],
    ("siemens", "target", "clean", 0): [0.5, 0.5],
    ("siemens", "target", "clean", 1): [0.4, 0.6],
    ("siemens", "target", "unetgan", 0): [0.6, 0.8],
    ("siemens", "target", "unetgan", 1): [0.8, 0.8],
    ("siemens", "target", "oracle_method", 0): [0.9, 0.9],
    ("ge", "target", "clean", 0): [0.895, 0.895],
    ("ge", "target", "unetgan", 0): [0.95, 0.95],
    ("canon", "target", "unetgan", 0): [0.7, 0.7],
}
HAND_MANIFEST = {"suite_config": {"vendors": {"source": "philips", "targets": ["siemens", "ge", "canon"]}}}


@pytest.fixture
def hand_run(tmp_path):
    return load_run(_fake_run(tmp_path / "run", HAND_CELLS, HAND_MANIFEST))


def test_recovery_by_hand(hand_run):
    table = RunStats(hand_run).recovery
    assert list(table.columns) == list(RECOVERY_COLUMNS)
    assert list(zip(table["vendor"], table["scenario"], strict=True)) == [
        ("siemens", "unetgan"),
        ("siemens", "oracle_method"),
        ("ge", "unetgan"),
    ]
    unetgan = table.iloc[0]
    assert unetgan["dice_source"] == pytest.approx(0.9)
    assert unetgan["dice_clean"] == pytest.approx(0.5)
    assert unetgan["dice"] == pytest.approx(0.75)  # images (0.7, 0.8) averaged over seeds
    assert unetgan["drop"] == pytest.approx(0.4)
    assert unetgan["recovery"] == pytest.approx(0.25 / 0.4)
    # Per seed: (0.7 - 0.5) / 0.4 = 0.5 and (0.8 - 0.5) / 0.4 = 0.75.
    assert unetgan["recovery_seed_mean"] == pytest.approx(0.625)
    assert unetgan["recovery_seed_std"] == pytest.approx(np.std([0.5, 0.75], ddof=1))
    assert unetgan["n_seeds"] == 2 and unetgan["note"] == "" and unetgan["selection"] == "val"
    oracle = table.iloc[1]
    assert oracle["recovery"] == pytest.approx(1.0) and oracle["selection"] == "oracle"
    assert oracle["n_seeds"] == 1 and math.isnan(oracle["recovery_seed_std"])
    # The pooled values are Table 1's means.
    dice = cellstats.segmentation_stats(hand_run).set_index(["vendor", "scenario"])["mean"]
    assert unetgan["dice"] == pytest.approx(dice[("siemens", "unetgan")])


def test_recovery_undefined_without_a_drop(hand_run):
    ge = RunStats(hand_run).recovery.query("vendor == 'ge'").iloc[0]
    assert ge["drop"] == pytest.approx(0.005)
    assert math.isnan(ge["recovery"]) and math.isnan(ge["recovery_seed_mean"]) and ge["n_seeds"] == 0
    assert ge["note"] == "no drop to recover"
    assert recovery_text(ge) == "n/a (no drop to recover)"


def test_recovery_has_no_row_without_clean_cells(hand_run, tmp_path):
    assert "canon" not in set(RunStats(hand_run).recovery["vendor"])  # no clean Unet on canon
    no_source = {k: v for k, v in HAND_CELLS.items() if k[:3] != ("philips", "source", "clean")}
    run = load_run(_fake_run(tmp_path / "no_source", no_source, HAND_MANIFEST))
    table = RunStats(run).recovery
    assert table.empty and list(table.columns) == list(RECOVERY_COLUMNS)


def test_recovery_leaves_out_a_seed_without_its_own_drop(tmp_path):
    cells = {
        ("philips", "source", "clean", 0): [0.9],
        ("philips", "source", "clean", 1): [0.9],
        ("siemens", "target", "clean", 0): [0.5],
        ("siemens", "target", "clean", 1): [0.895],  # this seed's Unet hardly drops
        ("siemens", "target", "unetgan", 0): [0.7],
        ("siemens", "target", "unetgan", 1): [0.9],
    }
    row = RunStats(load_run(_fake_run(tmp_path / "run", cells))).recovery.iloc[0]
    assert row["recovery"] == pytest.approx((0.8 - 0.6975) / (0.9 - 0.6975))
    assert row["n_seeds"] == 1 and row["recovery_seed_mean"] == pytest.approx(0.5)
    assert row["note"] == "seed 1 left out: no drop to recover"


def test_recovery_with_folds_pools_like_table1(tmp_path):
    # Source folds test different subjects (3 images at 0.9, 1 at 0.5): concatenated, mean 0.8.
    # Target images are scored by both folds' Unets and averaged: clean 0.5, Unet-GAN 0.65.
    cells = {
        ("philips", "source", "clean", 0, 0): {"a": 0.9, "b": 0.9, "c": 0.9},
        ("philips", "source", "clean", 0, 1): {"d": 0.5},
        ("siemens", "target", "clean", 0, 0): [0.4, 0.4],
        ("siemens", "target", "clean", 0, 1): [0.6, 0.6],
        ("siemens", "target", "unetgan", 0, 0): [0.6, 0.6],
        ("siemens", "target", "unetgan", 0, 1): [0.7, 0.7],
    }
    run = load_run(_fake_run(tmp_path / "run", cells))
    assert cellstats.has_folds(run)
    row = RunStats(run).recovery.iloc[0]
    assert row["drop"] == pytest.approx(0.3)
    assert row["recovery"] == pytest.approx(0.5)
    assert row["recovery_seed_mean"] == pytest.approx(0.5) and row["n_seeds"] == 1


@pytest.mark.parametrize(
    ("row", "style", "expected"),
    [
        ({"recovery": 0.62, "recovery_seed_std": 0.08, "n_seeds": 3}, "text", "62% (+/-8, 3 seeds)"),
        ({"recovery": 0.62, "recovery_seed_std": 0.08, "n_seeds": 3}, "html", "62% (\u00b18, 3 seeds)"),
        ({"recovery": 0.62, "recovery_seed_std": 0.08, "n_seeds": 3}, "latex", r"62\% ($\pm$8, 3 seeds)"),
        ({"recovery": -0.25, "recovery_seed_std": float("nan"), "n_seeds": 1}, "text", "-25% (one seed)"),
        ({"recovery": 1.1, "recovery_seed_std": float("nan"), "n_seeds": 0}, "text", "110%"),
    ],
)
def test_recovery_text(row, style, expected):
    assert recovery_text(row | {"note": ""}, style) == expected


def test_recovering_methods_need_half_on_every_vendor_with_a_drop(hand_run):
    table = RunStats(hand_run).recovery
    # unetgan recovers 62.5% on siemens; ge has no drop and is left out; oracle_method is missing
    # on ge, which has no drop, so it qualifies too.
    assert recovering_methods(table) == (["unetgan", "oracle_method"], ["ge"])
    assert recovering_methods(table, at_least=0.7) == (["oracle_method"], ["ge"])
    half = table.assign(recovery=[0.2 / 0.4, 0.4, float("nan")])  # 0.4999999999999999 counts as half
    assert recovering_methods(half) == (["unetgan"], ["ge"])


def test_recovery_exports(exported, run):
    run_dir, written = exported
    assert {"recovery.csv", "recovery.tex"} <= set(written)
    csv = pd.read_csv(run_dir / "tables" / "recovery.csv", keep_default_na=False)
    assert list(zip(csv["vendor"], csv["scenario"], strict=True)) == [
        ("siemens", "noisy"),
        ("siemens", "unetgan"),
        ("ge", "noisy"),
        ("ge", "unetgan"),
    ]
    dice = cellstats.segmentation_stats(run).set_index(["vendor", "scenario"])["mean"]
    drop = dice[("philips", "clean")] - dice[("siemens", "clean")]
    expected = (dice[("siemens", "unetgan")] - dice[("siemens", "clean")]) / drop
    assert csv.loc[1, "recovery"] == pytest.approx(expected, rel=1e-5)
    assert 0.8 < expected < 0.85  # 0.806 from 0.483, of a 0.874 source
    tex = (run_dir / "tables" / "recovery.tex").read_text()
    assert r"\label{tab:recovery}" in tex and r"siemens & Unet-GAN & 0.392 & 0.483 $\rightarrow$ 0.806 & 82\%" in tex
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [r["scenario"] for r in summary["recovery"]] == ["noisy", "unetgan", "noisy", "unetgan"]
    assert summary["recovery"][1]["recovery"] == pytest.approx(expected)


def test_throughput_text_says_skipped_and_peak_invalid():
    base = {
        "images_per_s": 10.0,
        "ms_per_batch_median": 400.0,
        "ms_per_batch_iqr": 1.0,
        "peak_mem_mb": 50.0,
        "achieved_tflops": 0.02,
        "peak_tflops": 0.5,
        "fraction_of_peak": 0.04,
        "error": "",
    }
    nan = float("nan")
    blank = dict.fromkeys(base, nan)
    table = pd.DataFrame(
        [
            {**base, "setting": "ok"},
            {**base, "setting": "beats the peak", "peak_tflops": 0.01, "fraction_of_peak": nan},
            {**blank, "setting": "bf16", "error": "skipped: no native bf16 on this cpu (emulated)"},
            {**blank, "setting": "broken", "error": "ValueError: shape"},
        ]
    )
    ok, beaten, skipped, broken = throughput_tables.throughput_text(table)
    assert ok["fraction_of_peak"] == "4.0%" and not ok["skipped"] and not ok["error"]
    assert beaten["fraction_of_peak"] == throughput_tables.PEAK_INVALID
    assert skipped["skipped"] == "no native bf16 on this cpu (emulated)" and skipped["error"] == ""
    assert broken["error"] == "ValueError: shape" and broken["skipped"] == ""
