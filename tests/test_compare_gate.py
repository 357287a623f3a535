"""The noise-aware gate (bench.gate) on constructed per-image data, and compare's modes and output formats."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from unetgan_bench.bench.cli import main
from unetgan_bench.bench.compare import compare_runs, throughput_range
from unetgan_bench.bench.gate import decide

FIXTURE = Path(__file__).parent / "fixtures" / "run_small"
# Measured on `quick` (3 seeds, 108 test images per vendor; /tmp/runs/quick_final at commit
# f5579f1): the spread over seeds of a cell's mean Dice (median over its 18 cells 0.027, largest
# 0.166, intensity_aug on siemens) and the per-image model x image residual (median 0.073,
# largest 0.130).
QUICK_SEED_SD = {"median cell": 0.027, "noisiest cell": 0.166}
QUICK_IMAGE_SD = {"median cell": 0.073, "noisiest cell": 0.130}
N_IMAGES, N_SEEDS = 108, 3


def _pairs(diffs: np.ndarray) -> pd.DataFrame:
    """``diffs[seed, image]`` as the gate's pairs table."""
    seeds, images = np.indices(diffs.shape)
    return pd.DataFrame({"replicate": seeds.ravel(), "image": images.ravel(), "diff": diffs.ravel()})


def _simulated_runs(rng, drop: float, seed_sd: float, image_sd: float) -> np.ndarray:
    """Per-image Dice of a base and a new run (3 seeds x 108 images each), new = base model family - drop.

    Each (run, seed) is another training: its own offset (seed_sd) and its own per-image errors
    (image_sd) around images of a shared difficulty; the paired difference is new - base.
    """
    difficulty = rng.uniform(0.4, 0.95, N_IMAGES)

    def run(offset: float) -> np.ndarray:
        trained = rng.normal(0, seed_sd, (N_SEEDS, 1)) + rng.normal(0, image_sd, (N_SEEDS, N_IMAGES))
        return difficulty + offset + trained

    return run(-drop) - run(0.0)


def test_identical_values_are_equal():
    decision = decide(_pairs(np.zeros((N_SEEDS, N_IMAGES))), margin=0.01)
    assert decision.status == "equal" and decision.mean == 0 and decision.ci_low == decision.ci_high == 0


def test_a_true_drop_of_0_03_over_108_images_and_3_seeds_is_regressed():
    # The same trainings measured before and after a change that costs 0.03 Dice, with per-image
    # noise of quick's median cell between them and a small seed-to-seed spread.
    rng = np.random.default_rng(3)
    diffs = (
        -0.03 + rng.normal(0, 0.005, (N_SEEDS, 1)) + rng.normal(0, QUICK_IMAGE_SD["median cell"], (N_SEEDS, N_IMAGES))
    )
    decision = decide(_pairs(diffs), margin=0.01)
    assert decision.status == "regressed", decision
    assert decision.ci_high < -0.01 and decision.ci_low < decision.mean < decision.ci_high
    assert decision.n_replicates == 3 and decision.n_images == 324
    assert 0.01 < decision.mdd < 0.03  # the drop is detectable at this noise


@pytest.mark.slow
@pytest.mark.parametrize("cell", sorted(QUICK_SEED_SD))
def test_pure_seed_noise_of_quicks_size_is_not_regressed_in_95_percent_of_200_pairs(cell):
    rng = np.random.default_rng(11)
    regressed = 0
    for _ in range(200):
        diffs = _simulated_runs(rng, 0.0, QUICK_SEED_SD[cell], QUICK_IMAGE_SD[cell])
        regressed += decide(_pairs(diffs), margin=0.01).status == "regressed"
    assert regressed <= 10, f"{regressed} false alarms in 200 pairs"


def test_the_minimum_detectable_drop_grows_with_seed_noise_and_falls_with_more_seeds():
    rng = np.random.default_rng(5)
    quiet = decide(_pairs(rng.normal(0, 0.01, (3, N_IMAGES)) + rng.normal(0, 0.001, (3, 1))), 0.01)
    noisy = decide(_pairs(rng.normal(0, 0.01, (3, N_IMAGES)) + rng.normal(0, 0.05, (3, 1))), 0.01)
    assert quiet.mdd < noisy.mdd

    def seeds(n: int) -> np.ndarray:  # n seed offsets with sample sd exactly 0.03
        offsets = rng.normal(0, 1, (n, 1))
        return (offsets - offsets.mean()) / offsets.std(ddof=1) * 0.03 + np.zeros((n, N_IMAGES))

    few, many = decide(_pairs(seeds(3)), 0.01), decide(_pairs(seeds(10)), 0.01)
    assert few.se == pytest.approx(0.03 / np.sqrt(3)) and many.se == pytest.approx(0.03 / np.sqrt(10))
    assert many.mdd < few.mdd


def test_one_seed_says_its_ci_covers_image_sampling_only():
    decision = decide(_pairs(np.full((1, N_IMAGES), -0.05) + np.linspace(-0.01, 0.01, N_IMAGES)), 0.01)
    assert decision.status == "regressed" and "image sampling only" in decision.method


def test_throughput_gates_on_the_ratio_within_both_runs_spread():
    base = pd.Series({"images_per_s": 100.0, "ms_per_batch_median": 10.0, "ms_per_batch_iqr": 2.0})
    slower = pd.Series({"images_per_s": 75.0, "ms_per_batch_median": 13.3, "ms_per_batch_iqr": 0.0})
    low, high = throughput_range(base, slower)
    assert low == pytest.approx(0.75 * 0.9) and high == pytest.approx(0.75 * 1.1)
    assert throughput_range(base.drop("ms_per_batch_iqr"), slower) == (pytest.approx(0.75), pytest.approx(0.75))


# -- compare on run folders -------------------------------------------------------------------------------------
def _run(tmp_path: Path, name: str, commit: str) -> Path:
    target = tmp_path / name
    shutil.copytree(FIXTURE, target)
    manifest = json.loads((target / "manifest.json").read_text())
    (target / "manifest.json").write_text(json.dumps({**manifest, "commit": commit, "dirty": False}))
    return target


def _lower_per_image(run_dir: Path, drop: float, scenario: str = "unetgan", vendor: str = "siemens") -> None:
    for line in (run_dir / "results.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["kind"] == "segmentation" and (row["scenario"], row["vendor"]) == (scenario, vendor):
            path = run_dir / row["per_image"]
            table = pd.read_csv(path)
            table["dice_mean"] -= drop
            table.to_csv(path, index=False)


def test_runs_at_other_commits_are_compared_noise_aware(tmp_path):
    base, new = _run(tmp_path, "base", "a" * 40), _run(tmp_path, "new", "b" * 40)
    same = compare_runs(base, new, stream=None)
    assert same.mode == "noise-aware" and same.exit_code == 0
    cells = same.rows[same.rows["method"].notna() & (same.rows["kind"] == "segmentation")]
    assert len(cells) and set(cells["status"]) == {"equal"} and (cells["n_seeds"] == 2).all()
    _lower_per_image(new, 0.1)
    dropped = compare_runs(base, new, stream=None)
    regressed = dropped.regressions
    assert dropped.exit_code == 1
    assert list(regressed["key"]) == ["unetgan / siemens"] and list(regressed["metric"]) == ["dice_mean"]
    assert regressed["ci_high"].iloc[0] < -0.01 and regressed["mdd"].iloc[0] > 0


def test_runs_of_two_suites_are_bad_input(tmp_path, capsys):
    base, other = _run(tmp_path, "base", "a" * 40), _run(tmp_path, "other", "a" * 40)
    manifest = json.loads((other / "manifest.json").read_text())
    (other / "manifest.json").write_text(json.dumps({**manifest, "suite": "another"}))
    assert main(["compare", str(base), str(other)]) == 2
    err = capsys.readouterr().err
    assert "suite 'another'" in err and err.count("\n") == 1


def test_output_formats(tmp_path, capsys):
    pytest.importorskip("lxml")
    from lxml import etree

    base, new = _run(tmp_path, "base", "a" * 40), _run(tmp_path, "new", "b" * 40)
    _lower_per_image(new, 0.1)
    assert main(["compare", str(base), str(new), "--format", "json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["exit_code"] == 1 and data["mode"] == "noise-aware"
    assert any(r["status"] == "regressed" and r["key"] == "unetgan / siemens" for r in data["rows"])

    assert main(["compare", str(base), str(new), "--format", "markdown"]) == 1
    md = capsys.readouterr().out
    assert md.startswith("### :x: unetgan-bench: REGRESSED") and "| unetgan / siemens | dice_mean |" in md

    assert main(["compare", str(base), str(new), "--format", "junit"]) == 1
    xml = capsys.readouterr().out
    schema = etree.XMLSchema(etree.parse(str(Path(__file__).parent / "fixtures" / "junit.xsd")))
    document = etree.fromstring(xml.encode())
    schema.assertValid(document)
    failures = document.findall(".//testcase[failure]")
    assert [(f.get("classname"), f.get("name")) for f in failures] == [("segmentation.unetgan / siemens", "dice_mean")]
    assert document.find("testsuite").get("failures") == "1"
    assert int(document.get("tests")) == len(document.findall(".//testcase"))

    with pytest.raises(SystemExit) as exit_info:
        main(["compare", str(base), str(new), "--format", "yaml"])
    assert exit_info.value.code == 2
