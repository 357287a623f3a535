"""Subject-level cross-validation, one-vendor suites, real-data roots, and pooling per-image values over folds."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_realdata_nifti import make_mnms

from unetgan_bench.bench.plan import build_plan, fold_subjects, split_name
from unetgan_bench.bench.registries import open_source
from unetgan_bench.bench.results import ResultsFile
from unetgan_bench.bench.suite import MissingDataRoot, load_suite, parse_suite
from unetgan_bench.reports import cellstats, segmentation_tables
from unetgan_bench.reports.collect import load_run
from unetgan_core.errors import UserError
from unetgan_core.training import SegTrainConfig, TranslatorConfig

FOLD_SUITE = """
[suite]
name = "folds"
seeds = [0, 1]

[data]
source = "phantom"
size_px = 32
subjects_per_vendor = 7
slices_per_subject = 2

[vendors]
source = "philips"
targets = {targets}

[splits]
folds = 3
fold_val = {fold_val}
target = {{ train = 3, val = 1, test = 3 }}

[unet]
model_kwargs = {{ width = 4 }}
epochs = 1

[scenarios]
run = {scenarios}
"""


def fold_suite(targets='["siemens"]', fold_val="1", scenarios='["clean", "noisy"]'):
    text = FOLD_SUITE.format(targets=targets, fold_val=fold_val, scenarios=scenarios)
    return parse_suite(text, "folds.toml")


def plan_of(suite):
    return build_plan(suite, open_source(suite, "folds.toml"))


# -- fold expansion ------------------------------------------------------------------------
def test_fold_subjects_test_each_subject_once_and_are_deterministic():
    subjects = [f"s{i:02d}" for i in range(11)]
    groups = fold_subjects(reversed(subjects), 4, seed=3)
    assert sorted(s for g in groups for s in g) == subjects  # every subject in exactly one group
    assert sorted(len(g) for g in groups) == [2, 3, 3, 3]
    assert groups == fold_subjects(subjects, 4, seed=3)
    assert groups != fold_subjects(subjects, 4, seed=4)


def test_fold_subjects_rejects_more_folds_than_subjects():
    with pytest.raises(UserError, match="folds = 5 but the source vendor has only 4 subjects"):
        fold_subjects(["a", "b", "c", "d"], 5, seed=0)


def test_every_fold_trains_and_tests_on_disjoint_subjects():
    suite = fold_suite()
    plan = plan_of(suite)
    source = open_source(suite, "x").subjects("philips")
    tested = []
    for k in range(3):
        train, val, test = (set(plan.data[("philips", split_name(s, k))].subjects) for s in ("train", "val", "test"))
        assert not (train & test) and not (val & test) and not (train & val)
        assert train | val | test == set(source)
        assert len(val) == 1  # fold_val = 1 subject held out of the training part
        tested += sorted(test)
    assert sorted(tested) == sorted(source)  # each source subject is tested exactly once
    # Deterministic: the same suite gives the same folds and the same task keys.
    again = plan_of(fold_suite())
    assert [t.key for t in again.tasks] == [t.key for t in plan.tasks]


def test_each_seed_and_fold_is_a_replicate_with_its_own_unets_and_cells():
    plan = plan_of(fold_suite())
    unets = plan.of_kind("unet")
    assert len(unets) == 2 * 3 * 2  # seeds x folds x (clean, noisy)
    assert {(t.config["replicate"], t.config["fold"]) for t in unets} == {(s, k) for s in (0, 1) for k in range(3)}
    cells = plan.of_kind("segmentation")
    assert len(cells) == 2 * 3 * 2 * 2  # seeds x folds x scenarios x vendors
    for cell in cells:
        unet = plan.task(cell.config["pipeline"]["unet"])
        assert unet.config["fold"] == cell.config["fold"]
        fold_test = plan.data[("philips", split_name("test", cell.config["fold"]))].key
        if cell.config["vendor"] == "philips":
            assert cell.config["test"] == fold_test
        else:  # a target's test set is the same for every fold
            assert cell.config["test"] == plan.data[("siemens", "test")].key
    # fold_val = 0: no validation subjects; the Unet keeps its final epoch.
    plan0 = plan_of(fold_suite(fold_val="0"))
    assert all(plan0.data[("philips", split_name("val", k))].subjects == () for k in range(3))


def test_fold_settings_are_checked():
    with pytest.raises(UserError, match=r"\[splits\] folds: expected 0 \(off\) or at least 2"):
        parse_suite(FOLD_SUITE.format(targets="[]", fold_val="0", scenarios='["clean"]').replace("3\n", "1\n", 1), "f")
    text = FOLD_SUITE.format(targets="[]", fold_val="0", scenarios='["clean"]')
    with pytest.raises(UserError, match=r"\[splits\] source: not used with folds"):
        parse_suite(text.replace("folds = 3", "folds = 3\nsource = { train = 2, val = 1, test = 1 }"), "f")
    with pytest.raises(UserError, match="fold_val: expected a whole count or a fraction below 1"):
        fold_suite(fold_val="1.5")


# -- one-vendor suites ---------------------------------------------------------------------
def test_no_targets_is_valid_with_unet_scenarios():
    suite = fold_suite(targets="[]", scenarios='["clean", "noisy", "intensity_aug"]')
    assert suite.all_vendors == ["philips"]
    cells = plan_of(suite).of_kind("segmentation")
    assert {c.config["vendor"] for c in cells} == {"philips"}
    assert len(cells) == 2 * 3 * 3


@pytest.mark.parametrize("scenario", ["unetgan", "histmatch"])
def test_no_targets_rejects_scenarios_that_adapt_targets(scenario):
    with pytest.raises(UserError, match=f"'{scenario}' adapts target-vendor images but \\[vendors\\] targets is empty"):
        fold_suite(targets="[]", scenarios=f'["clean", "{scenario}"]')


# -- pooling per-image values over folds ---------------------------------------------------
def _write_cell(run_dir, cell_id, row, subjects, values):
    """One segmentation row plus its per-image CSV (row numbers restart at 0 in every cell)."""
    per_image = pd.DataFrame(
        {
            "index": np.arange(len(values)),
            "subject": subjects,
            "slice_index": [0] * len(values),
            "phase": ["ED"] * len(values),
            "dice_blood_pool": values,
            "dice_myo": values,
            "dice_mean": values,
            "hd95_mm": [5.0] * len(values),
        }
    )
    (run_dir / "per_image").mkdir(exist_ok=True)
    per_image.to_csv(run_dir / "per_image" / f"{cell_id}.csv", index=False)
    metrics = {"dice_mean": float(np.mean(values)), "n_images": len(values)}
    fold = row.pop("fold")
    ResultsFile(run_dir / "results.jsonl").append(
        [
            {
                "schema_version": 1,  # the fold in the task config, as version 1 rows had it
                "kind": "segmentation",
                "cell_id": cell_id,
                "suite": "f",
                "seed": 0,
                "selection": "final",
                **row,
                "config": {"fold": fold},  # the runner's rows name the fold in the task config
                "metrics": metrics,
                "per_image": f"per_image/{cell_id}.csv",
            }
        ]
    )


def test_pooling_concatenates_folds_and_averages_shared_images(tmp_path):
    # Source: fold 0 tests subjects a, b; fold 1 tests c, d (same row numbers 0 and 1, different images).
    # Target: both folds' Unets score the same images x, y.
    src = {0: (["a", "b"], [0.9, 0.7]), 1: (["c", "d"], [0.5, 0.3])}
    tgt = {0: (["x", "y"], [0.6, 0.2]), 1: (["x", "y"], [0.4, 0.0])}
    for fold in (0, 1):
        for vendor, role, data in (("ge", "source", src), ("siemens", "target", tgt)):
            row = {"scenario": "clean", "vendor": vendor, "role": role, "fold": fold}
            _write_cell(tmp_path, f"{vendor}{fold}", row, *data[fold])
    run = load_run(tmp_path)
    assert sorted(run.segmentation["fold"]) == [0, 0, 1, 1]  # rows of different folds are all kept
    table = cellstats.segmentation_stats(run).set_index("vendor")
    source = table.loc["ge"]
    assert source["n_images"] == 4 and source["n_folds"] == 2
    assert source["mean"] == pytest.approx(np.mean([0.9, 0.7, 0.5, 0.3]))  # not the mean of (0.7, 0.5) by index
    assert source["std_images"] == pytest.approx(np.std([0.9, 0.7, 0.5, 0.3], ddof=1))
    assert source["std_folds"] == pytest.approx(np.std([0.8, 0.4], ddof=1))
    target = table.loc["siemens"]
    assert target["n_images"] == 2  # the same two images, each averaged over the folds' Unets
    assert target["mean"] == pytest.approx(np.mean([0.5, 0.1]))
    assert target["std_folds"] == pytest.approx(np.std([0.4, 0.2], ddof=1))
    parts = segmentation_tables.format_cell(source)
    assert parts["n"] == "n=4 images from 2 folds x 1 seeds" and parts["seeds"].startswith("folds sd 0.28")


def test_runs_without_folds_keep_the_seed_table():
    run_stats = cellstats.segmentation_stats(load_run(Path(__file__).parent / "fixtures" / "run_small"))
    assert list(run_stats.columns) == list(cellstats.STATS_COLUMNS)


# -- real-data roots -----------------------------------------------------------------------
def test_mnms_without_root_names_the_layout(monkeypatch):
    monkeypatch.delenv("UNETGAN_MNMS_ROOT", raising=False)
    with pytest.raises(MissingDataRoot, match=r"set UNETGAN_MNMS_ROOT .*expected layout: <root>/\{Training/Labeled"):
        load_suite("mnms")


def test_mnms_cli_validate_without_root_exits_2(monkeypatch, capsys):
    from unetgan_bench.bench.cli import main

    monkeypatch.delenv("UNETGAN_MNMS_ROOT", raising=False)
    assert main(["validate", "mnms"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "expected layout" in err


def test_mnms_incomplete_root_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("UNETGAN_MNMS_ROOT", str(tmp_path / "absent"))
    with pytest.raises(UserError, match="does not exist; expected <root>/"):
        load_suite("mnms")


CASES = [
    (folder, f"{letter}{i}X{i}Y{i}Z", letter, centre, 1, 3)
    for letter, folder, centre in (
        ("B", "Training/Labeled", 2),
        ("A", "Training/Labeled", 1),
        ("C", "Validation", 4),
        ("D", "Testing", 5),
    )
    for i in range(3)
]


@pytest.mark.slow
def test_tiny_mnms_suite_runs_end_to_end(tmp_path, monkeypatch):
    from unetgan_bench.bench.runner import run_suite
    from unetgan_bench.bench.store import ArtifactStore

    monkeypatch.setenv("UNETGAN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("UNETGAN_MNMS_ROOT", str(make_mnms(tmp_path / "mnms", CASES)))
    suite = load_suite("mnms")
    suite = dataclasses.replace(
        suite,
        suite=dataclasses.replace(suite.suite, seeds=[0], device="cpu"),
        data={**suite.data, "size_px": 32, "pixel_mm": 2.0},
        vendors=dataclasses.replace(suite.vendors, targets=["siemens", "canon"]),
        splits=dataclasses.replace(
            suite.splits, source={"train": 1, "val": 1, "test": 1}, target={"train": 1, "val": 1, "test": 1}
        ),
        unet=SegTrainConfig(model_kwargs={"width": 4}, epochs=1, batch_size=4),
        translator=TranslatorConfig(steps=2, check_every=1, generator={"width": 4, "n_blocks": 1}),
        scenarios=dataclasses.replace(suite.scenarios, run=["clean", "histmatch", "unetgan"]),
        metrics=dataclasses.replace(suite.metrics, bootstrap_samples=100, figure_images=1),
    )
    result = run_suite(suite, tmp_path / "run", store=ArtifactStore(tmp_path / "store"), progress=False)
    assert not result.failed and result.report.is_file()
    run = load_run(tmp_path / "run")
    assert not run.synthetic
    assert set(zip(run.segmentation["vendor"], run.segmentation["scenario"], strict=True)) == {
        ("philips", "clean"),
        *((v, s) for v in ("siemens", "canon") for s in ("clean", "histmatch", "unetgan")),
    }
    assert (run.segmentation["n_images"] == 6).all()  # one test subject: 3 slices x (ED, ES)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["citation"].startswith("Campello") and summary["synthetic"] is False
