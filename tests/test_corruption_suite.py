"""The ``[corruptions]`` suite section: validation, the planned cells, the summary's arithmetic (mCE), and a
tiny run from suite file to report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tiny_suites import tiny_text

from unetgan_bench.bench.plan import build_plan
from unetgan_bench.bench.registries import open_source
from unetgan_bench.bench.steps import evaluate_corruption
from unetgan_bench.bench.suite import parse_suite
from unetgan_bench.reports.collect import Run, rows_to_frame
from unetgan_bench.reports.corruption_tables import corruption_dice, corruption_summary
from unetgan_bench.reports.figures import corruption_heatmaps
from unetgan_core.data.sliceset import SliceSet
from unetgan_core.errors import UserError

SECTION = """
[corruptions]
scenarios = ["clean", "histmatch"]
corruptions = ["noise", "motion"]
severities = [1, 5]
n_images = 2
"""


def suite_of(tmp_path: Path, section: str = SECTION, **kwargs):
    path = tmp_path / "suite.toml"
    path.write_text(tiny_text(extra=section, **kwargs), encoding="utf-8")
    return parse_suite(path.read_text(encoding="utf-8"), str(path))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('corruptions = ["rain"]', "[corruptions] corruptions: unknown name 'rain'; allowed: bias_field"),
        ('scenarios = ["unetgan"]', "[corruptions] scenarios: unknown name 'unetgan'"),
        ('reference = "histmatch"\nscenarios = ["clean"]', "[corruptions] reference: unknown name 'histmatch'"),
        ("severities = [0]", "[corruptions] severities"),
        ("severities = [2, 2]", "[corruptions] severities: a value is listed twice"),
        ("n_images = 0", "[corruptions] n_images"),
        ("strength = 3", "[corruptions]"),
    ],
)
def test_bad_section_is_one_line(tmp_path, line, message):
    with pytest.raises(UserError) as err:
        suite_of(tmp_path, f"\n[corruptions]\n{line}\n")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_plan_has_one_cell_per_pipeline_vendor_and_corruption(tmp_path):
    suite = suite_of(tmp_path)
    cells = build_plan(suite, open_source(suite, suite.path)).of_kind("corruption")
    # clean on the source and the target, histmatch on the target only; two corruptions each.
    found = sorted((t.config["scenario"], t.config["vendor"], t.config["corruption"]) for t in cells)
    assert found == [
        (s, v, c)
        for s, v in (("clean", "philips"), ("clean", "siemens"), ("histmatch", "siemens"))
        for c in ("motion", "noise")
    ]
    assert all(t.config["severities"] == [0, 1, 5] for t in cells)
    # Every pipeline sees the same corrupted images of a vendor.
    seeds = {(t.config["vendor"], t.config["corruption"], t.config["seed"]) for t in cells}
    assert len(seeds) == 4


def test_a_suite_without_the_section_keeps_its_configuration(tmp_path):
    assert "corruptions" not in suite_of(tmp_path, "").resolved()


class Oracle:
    """A pipeline that predicts the ground truth of the images it was built for, whatever it is shown."""

    def __init__(self, labels):
        self.labels = labels

    def predict(self, images):
        return np.concatenate([self.labels] * (len(images) // len(self.labels)))


def test_scoring_uses_untouched_labels():
    rng = np.random.default_rng(0)
    labels = np.zeros((3, 32, 32), np.uint8)
    labels[:, 10:20, 10:20] = 1
    labels[:, 8:22, 8:10] = 2
    test = SliceSet(
        images=rng.random((3, 32, 32), dtype=np.float32),
        labels=labels.copy(),
        subjects=np.array(["a", "a", "b"]),
        vendor="v",
        pixel_mm=2.0,
        labelled=np.ones(3, bool),
        myo_labelled=np.ones(3, bool),
        slice_index=np.arange(3),
        phase=np.array(["ED"] * 3),
        synthetic=True,
    )
    cfg = {"corruption": "ghosting", "severities": [0, 1, 3, 5], "n_images": 3, "seed": 0}
    rows, panels = evaluate_corruption(Oracle(labels), test, cfg)
    assert np.array_equal(test.labels, labels)
    assert [r["severity"] for r in rows] == [0, 1, 3, 5] and [r["level"] for r in rows] == [None, 3.0, 10.0, 25.0]
    assert all(r["metrics"]["dice_mean"] == 1.0 for r in rows)
    assert rows[0]["metrics"]["psnr_db"] is None and rows[3]["metrics"]["psnr_db"] < rows[1]["metrics"]["psnr_db"]
    assert panels["images"].shape == (4, 32, 32) and list(panels["severities"]) == [0, 1, 3, 5]


def _rows(scenario, corruption, dice, seed=0, status="ok"):
    return [
        {
            "kind": "corruption",
            "scenario": scenario,
            "vendor": "philips",
            "seed": seed,
            "corruption": corruption,
            "severity": s,
            "level": None,
            "level_unit": "u",
            "status": status,
            "selection": "val",
            "metrics": {"dice_mean": d},
        }
        for s, d in enumerate(dice)
    ]


def test_summary_by_hand(tmp_path):
    """clean: x 0.9/0.8/0.6, y 0.9/0.7/0.5; unetgan: x 0.8/0.8/0.7, y 0.8/0.6/0.4 (severities 0, 1, 2).

    CE(unetgan, x) = (0.2 + 0.3) / (0.2 + 0.4), CE(unetgan, y) = (0.4 + 0.6) / (0.3 + 0.5): mCE = 1.0417.
    Relative: x (0 + 0.1) / (0.1 + 0.3), y (0.2 + 0.4) / (0.2 + 0.4): 0.625. A failed seed is left out.
    """
    rows = [
        *_rows("clean", "x", [0.9, 0.8, 0.6]),
        *_rows("clean", "y", [0.9, 0.7, 0.5]),
        *_rows("unetgan", "x", [0.8, 0.8, 0.7]),
        *_rows("unetgan", "y", [0.8, 0.6, 0.4]),
        *_rows("unetgan", "y", [0.0, 0.0, 0.0], seed=1, status="failed_training"),
    ]
    empty = {k: rows_to_frame([], k) for k in ("segmentation", "fgsm", "throughput")}
    run = Run(tmp_path, {}, **empty, per_image=pd.DataFrame(), corruption=rows_to_frame(rows, "corruption"))
    summary = corruption_summary(run, corruption_dice(run)).set_index("scenario")
    assert summary.loc["clean", "mce"] == pytest.approx(1.0) and summary.loc["clean", "relative_mce"] == pytest.approx(
        1.0
    )
    assert summary.loc["unetgan", "mce"] == pytest.approx((0.5 / 0.6 + 1.0 / 0.8) / 2)
    assert summary.loc["unetgan", "relative_mce"] == pytest.approx((0.1 / 0.4 + 0.6 / 0.6) / 2)
    assert summary.loc["unetgan", "mean_corruption_dice"] == pytest.approx(0.625)
    assert summary.loc["unetgan", "dice_clean"] == pytest.approx(0.8)
    assert summary.loc["unetgan", "worst_corruption"] == "y" and summary.loc[
        "unetgan", "worst_corruption_dice"
    ] == pytest.approx(0.5)
    assert summary.loc["unetgan", "n_failed"] == 1 and summary.loc["clean", "n_failed"] == 0


@pytest.mark.slow
def test_tiny_run_writes_rows_panels_and_report(tmp_path, monkeypatch):
    from unetgan_bench.bench.runner import run_suite
    from unetgan_bench.bench.store import ArtifactStore

    suite = suite_of(tmp_path, SECTION.replace('"clean", "histmatch"', '"clean"'), scenarios=("clean",))
    out = tmp_path / "run"
    run_suite(suite, out, store=ArtifactStore(tmp_path / "cache"), progress=False)
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    corruption = [r for r in rows if r["kind"] == "corruption"]
    assert len(corruption) == 2 * 2 * 3  # vendors x corruptions x severities (0, 1, 5)
    assert {r["level_unit"] for r in corruption} == {"dB", "mm"}
    assert all(r["config"]["pipeline"]["unet"]["id"] for r in corruption)  # rows describe themselves
    assert len(list((out / "figures").glob("corruption_*.npz"))) == 4
    summary = pd.read_csv(out / "tables" / "corruption_summary.csv")
    assert list(summary["scenario"]) == ["clean", "clean"]
    html = (out / "report.html").read_text()
    section = html[html.index('<section id="corruptions">') : html.index('<section id="throughput">')]
    assert "mCE" in section and section.count("data:image/png") == 2 and "<td>motion</td><td>mm</td>" in section
    if all(r["status"] == "failed_training" for r in corruption):  # a one-epoch Unet may fail its health check
        assert "failed training: 1 seed(s) left out" in section and "<svg" not in section
    else:
        assert "<svg" in section


def test_heat_map_prints_every_cell(tmp_path):
    rows = [*_rows("clean", "x", [0.9, 0.8, 0.6]), *_rows("clean", "y", [0.9, 0.7, 0.5])]
    rows += [{**r, "vendor": "siemens"} for r in _rows("unetgan", "x", [0.8, 0.8, 0.7])]
    empty = {k: rows_to_frame([], k) for k in ("segmentation", "fgsm", "throughput")}
    run = Run(tmp_path, {}, **empty, per_image=pd.DataFrame(), corruption=rows_to_frame(rows, "corruption"))
    svg = corruption_heatmaps(corruption_dice(run), {"clean": "clean Unet", "unetgan": "Unet-GAN"})
    assert svg.startswith("<svg") and "clean Unet / philips" in svg and "Unet-GAN / siemens" in svg
    assert svg.count(">0.90<") == 2 and ">0.50<" in svg and svg.count("not measured") == 2
