"""A training that failed its health check is reported as failed, never as a number: its rows say
``status = "failed_training"`` with the reason, Table 1 leaves the replicate out and says so in red,
the recovery table leaves it out with a note, and ``compare`` counts a newly failed training as a
regression."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from tiny_suites import tiny_text

from unetgan_bench.bench.cli import main
from unetgan_bench.reports.cellstats import segmentation_stats
from unetgan_bench.reports.collect import load_run
from unetgan_core.training.health import FAILED as FAILED_TRAINING


def rows_of(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "results.jsonl").read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory) -> Path:
    """A tiny run whose Unet cannot reach the declared Dice floor (0.99 after one epoch at 32 px)."""
    root = tmp_path_factory.mktemp("failed")
    suite = root / "failed.toml"
    suite.write_text(tiny_text("failed", extra="fail_dice_floor = 0.99\n"), encoding="utf-8")
    assert main(["run", str(suite), "--out", str(root / "run"), "--quiet"]) == 0
    return root / "run"


def test_rows_of_a_failed_unet_say_so_with_the_reason(failed_run: Path) -> None:
    rows = [r for r in rows_of(failed_run) if r["kind"] == "segmentation"]
    assert rows and all(r["status"] == FAILED_TRAINING for r in rows)
    assert all(
        r["status_reason"].startswith("Unet: ")
        and "Dice" in r["status_reason"]
        and "below the floor 0.99" in r["status_reason"]
        for r in rows
    )


def test_report_shows_the_failure_instead_of_a_result(failed_run: Path) -> None:
    html = (failed_run / "report.html").read_text(encoding="utf-8")
    assert 'class="failed"' in html and "FAILED TRAINING in 1 of 1 replicates" in html
    table1 = pd.read_csv(failed_run / "tables" / "table1.csv")
    assert table1["mean"].isna().all()  # the only replicate is left out: no number stands for the method
    assert table1["n_failed"].eq(1).all()
    assert table1["formatted"].str.contains("FAILED TRAINING").all()


def test_a_failed_replicate_is_left_out_of_the_cell_and_named(failed_run: Path, tmp_path: Path) -> None:
    # Two replicates: the real (failed) one, and a copy marked healthy under another seed.
    run_dir = tmp_path / "mixed"
    shutil.copytree(failed_run, run_dir)
    rows = rows_of(failed_run)
    healthy = []
    for row in rows:
        if row["kind"] == "segmentation":
            healthy.append({**row, "seed": 7, "status": "ok", "status_reason": ""})
    (run_dir / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [*rows, *healthy]), encoding="utf-8")
    stats = segmentation_stats(load_run(run_dir))
    expected = {(r["vendor"], r["scenario"]): r["metrics"]["dice_mean"] for r in healthy}
    for _, cell in stats.iterrows():
        assert cell["n_failed"] == 1 and cell["n_seeds"] == 1
        assert cell["mean"] == pytest.approx(expected[(cell["vendor"], cell["scenario"])])
        assert "seed 0: Unet: " in cell["failed_note"]


def test_compare_counts_a_newly_failed_training_as_a_regression(failed_run: Path, tmp_path: Path, capsys) -> None:
    base = tmp_path / "base"
    shutil.copytree(failed_run, base)
    ok_rows = [{**r, "status": "ok", "status_reason": ""} if "status" in r else r for r in rows_of(failed_run)]
    (base / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ok_rows), encoding="utf-8")
    assert main(["compare", str(base), str(failed_run)]) == 1
    out = capsys.readouterr().out
    assert "training" in out and "below the floor 0.99" in out
    # The same failure in both runs is not a new regression.
    assert main(["compare", str(failed_run), str(failed_run)]) == 0
