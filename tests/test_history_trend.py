"""history report: the trend page's points, its regression flags and its HTML (escaping, links)."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from unetgan_bench.bench.cli import main
from unetgan_bench.bench.history.store import add_run
from unetgan_bench.bench.history.trend import trend_tables, write_trend

FIXTURE = Path(__file__).parent / "fixtures" / "run_small"


def _run(tmp_path: Path, name: str, commit: str, started: str, drop: float = 0.0) -> Path:
    """A copy of the fixture run at another commit; ``drop`` lowers unetgan/siemens per-image Dice."""
    target = tmp_path / name
    shutil.copytree(FIXTURE, target)
    manifest = json.loads((target / "manifest.json").read_text())
    (target / "manifest.json").write_text(
        json.dumps({**manifest, "commit": commit, "dirty": False, "started": started})
    )
    for line in (target / "results.jsonl").read_text().splitlines():
        row = json.loads(line)
        if drop and row["kind"] == "segmentation" and (row["scenario"], row["vendor"]) == ("unetgan", "siemens"):
            table = pd.read_csv(target / row["per_image"])
            table["dice_mean"] -= drop
            table.to_csv(target / row["per_image"], index=False)
    return target


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> Path:
    tmp_path = tmp_path_factory.mktemp("trend")
    db = tmp_path / "h.sqlite"
    add_run(_run(tmp_path, "r1", "a" * 40, "2026-01-01T00:00:00+0000"), db)
    add_run(_run(tmp_path, "r2", "b" * 40, "2026-01-02T00:00:00+0000"), db)
    add_run(_run(tmp_path, "r3", "c" * 40, "2026-01-03T00:00:00+0000", drop=0.1), db)
    return db


def test_points_follow_the_runs_and_flag_the_dropped_cell(history):
    points, speed = trend_tables(history)
    cell = points[(points["scenario"] == "unetgan") & (points["vendor"] == "siemens")].sort_values("order")
    assert list(cell["order"]) == [0, 1, 2] and list(cell["commit"].str[0]) == ["a", "b", "c"]
    assert list(cell["flag"]) == ["", "equal", "regressed"]
    assert "CI" in cell["flag_detail"].iloc[2]
    assert (cell["dice_low"] <= cell["dice"]).all() and (cell["dice"] <= cell["dice_high"]).all()
    assert set(points.loc[points["scenario"] != "unetgan", "flag"]) <= {"", "equal"}
    assert len(speed) == 3 * 4 and speed["images_per_s"].notna().sum() == 3 * 3  # one fixture setting failed


def test_the_page_is_self_contained_escaped_and_links_reports(history, tmp_path):
    page = write_trend(tmp_path / "out", history)
    html = page.read_text()
    assert "<script" not in html and "http://" not in html.replace("http://www.w3.org", "")
    assert "1 regression(s)" in html
    assert html.count("<svg") >= 2
    # A run's report is linked relatively when the run folder has one.
    points, _ = trend_tables(history)
    assert points["report"].isna().all() or "report.html" in html


def test_report_of_an_empty_history_is_one_line_exit_2(tmp_path, capsys):
    assert main(["history", "report", "--out", str(tmp_path / "o"), "--db", str(tmp_path / "empty.sqlite")]) == 2
    assert "holds no run" in capsys.readouterr().err
