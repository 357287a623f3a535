"""RunStats: one render computes each table once, and every part of the report reads the same frames."""

import shutil
from pathlib import Path

import pytest

from unetgan_bench.reports import runstats
from unetgan_bench.reports.cellstats import METRIC_LABELS
from unetgan_bench.reports.collect import load_run
from unetgan_bench.reports.ordering import scenario_label
from unetgan_bench.reports.render import render_report
from unetgan_core.scenarios import SCENARIOS

FIXTURE = Path(__file__).parent / "fixtures" / "run_small"


def test_a_render_computes_each_metric_once(tmp_path, monkeypatch):
    calls = []
    original = runstats.segmentation_stats

    def counted(run, metric="dice_mean"):
        calls.append(metric)
        return original(run, metric)

    monkeypatch.setattr(runstats, "segmentation_stats", counted)
    run_dir = tmp_path / "run_small"
    shutil.copytree(FIXTURE, run_dir)
    render_report(run_dir)  # the HTML and every export: tables/*.csv, *.tex, summary.json
    assert sorted(calls) == sorted(METRIC_LABELS)
    assert (run_dir / "summary.json").is_file() and (run_dir / "tables" / "per_class.tex").is_file()


def test_tables_are_cached_and_shared():
    stats = runstats.RunStats(load_run(FIXTURE))
    dice = stats.segmentation("dice_mean")
    assert stats.segmentation("dice_mean") is dice
    assert stats.segmentation("hd95_mm") is not dice and set(stats.segmentation("hd95_mm")["metric"]) == {"hd95_mm"}
    assert stats.recovery is stats.recovery
    # Recovery is read off the same Dice means Table 1 prints.
    means = dice.set_index(["vendor", "scenario"])["mean"]
    row = stats.recovery.set_index(["vendor", "scenario"]).loc[("ge", "unetgan")]
    assert row["dice"] == means[("ge", "unetgan")] and row["dice_clean"] == means[("ge", "clean")]
    # One eps50 per attack curve: 2 vendors x 2 attacks on the clean Unet.
    assert stats.eps50 is stats.eps50 and len(stats.eps50) == 4
    assert len(stats.fgsm_curves.groupby(["scenario", "vendor", "attack"])) == 4


def test_unknown_metric_is_named():
    with pytest.raises(ValueError, match="unknown metric 'dice_rv'; known: dice_mean"):
        runstats.RunStats(load_run(FIXTURE)).segmentation("dice_rv")


def test_scenario_labels_come_from_the_scenario_registry():
    for name, scenario in SCENARIOS.items():
        assert scenario.label and scenario_label(name) == scenario.label
    assert scenario_label("unetgan") == "Unet-GAN"
    assert scenario_label("my_method") == "my_method"  # not registered: shown as named in the results
