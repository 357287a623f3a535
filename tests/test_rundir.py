"""reports.rundir: reading run folders of schema version 1 and 2, and one-line errors for anything else."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from unetgan_bench.bench.compare import compare_runs
from unetgan_bench.reports import rundir
from unetgan_bench.reports.collect import load_run
from unetgan_bench.reports.render import render_report
from unetgan_core.errors import DataError

# A real version 1 run folder: `unetgan-bench run smoke` at commit e073049 (results, manifest,
# per-image CSVs and one FGSM panel; the other figures left out to keep it small).
RUN_V1 = Path(__file__).parent / "fixtures" / "run_v1"


def raw_rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "results.jsonl").read_text(encoding="utf-8").splitlines()]


def test_version_1_rows_are_read_in_the_version_2_shape() -> None:
    raw = raw_rows(RUN_V1)
    rows = rundir.read_rows(RUN_V1)
    assert len(rows) == len(raw) == 25
    assert {r["schema_version"] for r in raw} == {1} and {r["schema_version"] for r in rows} == {2}
    for before, after in zip(raw, rows, strict=True):
        assert after["cell_id"] == before["cell_id"] and after["kind"] == before["kind"]
        assert (after["commit"], after["dirty"], after["package_version"]) == (None, None, None)  # not recorded
        assert after["device"] == "cpu"
    segmentation = [(b, a) for b, a in zip(raw, rows, strict=True) if a["kind"] == "segmentation"]
    for before, after in segmentation:
        assert after["fast_path_check"] == before["metrics"]["fast_path"]
        assert after["metrics"] == {k: v for k, v in before["metrics"].items() if k != "fast_path"}  # nothing lost
    ((before, after),) = [(b, a) for b, a in zip(raw, rows, strict=True) if a["kind"] == "throughput"]
    assert (after["pipeline"], after["batch_size"], after["size_px"]) == ("segment", 4, 32)
    for old_name in ("batch", "requested_batch", "image_size", "scenario", "seed", "vendor"):
        assert old_name not in after, old_name
    assert after["metrics"]["batch_used"] == 4
    assert after["metrics"]["images_per_s"] == before["metrics"]["images_per_s"]
    assert not {"device", "device_name", "torch_version", "threads", "warmup", "repeats", "error"} & set(
        after["metrics"]
    )
    assert after["machine"] == {
        "device_name": before["metrics"]["device_name"],
        "threads": before["metrics"]["threads"],
        "torch": before["metrics"]["torch_version"],
    }
    assert after["error"] is None


def test_a_version_1_run_is_reported_and_compared(tmp_path: Path) -> None:
    run_dir = tmp_path / "v1"
    shutil.copytree(RUN_V1, run_dir)
    run = load_run(run_dir)
    assert len(run.segmentation) == 6 and len(run.fgsm) == 18 and len(run.throughput) == 1
    assert run.commits == ((None, None, 25),)
    assert run.throughput.loc[0, "size_px"] == 32 and run.throughput.loc[0, "error"] is None
    html = render_report(run_dir, exports=False).read_text(encoding="utf-8")
    assert "commit not recorded (schema 1 rows): 25 rows" in html
    assert "Clean Unet on siemens" in html  # the FGSM panel, named from its file
    assert compare_runs(run_dir, run_dir, html_path=tmp_path / "cmp.html", stream=None).exit_code == 0


def test_the_report_header_lists_labels_a_source_left_out(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(RUN_V1, run_dir)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest["unused_labels"] = [["SCD0000501", "9 epicardial contour(s) enclose only 38%-80% of their blood pool"]]
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    html = render_report(run_dir, exports=False).read_text(encoding="utf-8")
    assert "labels left out" in html and "SCD0000501: 9 epicardial contour(s) enclose only 38%-80%" in html


def test_a_partial_last_line_does_not_count(tmp_path: Path) -> None:
    shutil.copytree(RUN_V1, tmp_path / "run")
    with open(tmp_path / "run" / "results.jsonl", "ab") as f:
        f.write(b'{"schema_version": 2, "kind": "segm')
    assert len(rundir.read_rows(tmp_path / "run")) == 25


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "not valid JSON"),
        ("[1, 2]", "expected a JSON object, got list"),
        ("null", "expected a JSON object, got NoneType"),
    ],
)
def test_a_malformed_manifest_is_one_line_naming_the_file(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "manifest.json").write_text(text)
    with pytest.raises(DataError, match=message) as info:
        rundir.read_manifest(tmp_path)
    assert str(tmp_path / "manifest.json") in str(info.value) and "\n" not in str(info.value)


def test_a_manifest_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_bytes(b'{"suite": "\xff"}')
    with pytest.raises(DataError, match="manifest.json: not UTF-8 text"):
        rundir.read_manifest(tmp_path)


def test_a_per_image_csv_with_text_in_a_number_column_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "per_image").mkdir()
    (tmp_path / "per_image" / "c.csv").write_text("index,dice_mean\n0,0.5\n1,high\n")
    with pytest.raises(DataError, match="column 'dice_mean' holds a value that is not a number"):
        rundir.read_per_image(tmp_path, "per_image/c.csv")
    assert rundir.read_per_image(tmp_path, "per_image/absent.csv") is None


def test_fgsm_panels_are_named_by_the_one_path_function_and_read_back(tmp_path: Path) -> None:
    # Underscores in names: the tags stored in the file decide, not the file name.
    path = rundir.fgsm_panel_path(tmp_path, "unet_gan", "vendor_b")
    path.parent.mkdir()
    np.savez(path, image=np.zeros((1, 2, 2)), scenario=np.array("unet_gan"), vendor=np.array("vendor_b"))
    # A version 1 file carries no tags: it is split at a scenario the run attacked.
    np.savez(rundir.fgsm_panel_path(tmp_path, "clean_x", "ge"), image=np.zeros((1, 2, 2)))
    found = rundir.fgsm_panel_files(tmp_path, ["clean", "clean_x"])
    assert [(s, v) for s, v, _ in found] == [("clean_x", "ge"), ("unet_gan", "vendor_b")]


@pytest.mark.parametrize(("field", "value"), [("eps", None), ("seed", None), ("seed", [0, 1]), ("scenario", {"a": 1})])
def test_a_version_1_key_field_of_the_wrong_type_is_rejected(tmp_path: Path, field: str, value) -> None:
    rows = raw_rows(RUN_V1)
    fgsm = next(r for r in rows if r["kind"] == "fgsm")
    fgsm[field] = value
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError, match=f"results.jsonl:{rows.index(fgsm) + 1}: '{field}' must be"):
        rundir.read_rows(tmp_path)


def test_the_report_header_says_how_predictions_were_changed_before_scoring(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(RUN_V1, run_dir)
    assert "<dt>scoring</dt>" not in render_report(run_dir, exports=False).read_text(encoding="utf-8")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest.setdefault("suite_config", {})["metrics"] = {"tta": "rotations", "postprocess": "largest_component"}
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    html = render_report(run_dir, exports=False).read_text(encoding="utf-8")
    assert "<dt>scoring</dt>" in html
    assert "rotations of each image by -10, 0 and +10 degrees" in html
    assert "the largest connected LV and blood pool kept per slice" in html
