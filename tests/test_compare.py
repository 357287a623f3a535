"""compare_runs: exit codes for improved, equal, regressed and malformed inputs."""

import io
import json
import shutil
from pathlib import Path

import pytest

from unetgan_bench.bench.cli import main
from unetgan_bench.bench.compare import compare_runs
from unetgan_core.errors import UserError

FIXTURE = Path(__file__).parent / "fixtures" / "run_small"


def _copy(tmp_path: Path, name: str) -> Path:
    """A copy of the fixture run recorded at a clean commit: copies share code, so compare is exact.

    (The noise-aware mode, for runs that do not share code, is tested in test_compare_gate.py.)
    """
    target = tmp_path / name
    shutil.copytree(FIXTURE, target)
    manifest = json.loads((target / "manifest.json").read_text())
    (target / "manifest.json").write_text(json.dumps({**manifest, "dirty": False}))
    return target


def _edit(run_dir: Path, change) -> None:
    """Rewrite every row through ``change(row)`` (tests only; runs themselves only append)."""
    path = run_dir / "results.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    path.unlink()
    with open(path, "a", encoding="utf-8") as f:
        for row in rows:
            change(row)
            f.write(json.dumps(row) + "\n")


def _shift_dice(delta: float, scenario: str = "unetgan", vendor: str = "siemens"):
    def change(row):
        if row["kind"] == "segmentation" and (row["scenario"], row["vendor"]) == (scenario, vendor):
            row["metrics"]["dice_mean"] += delta

    return change


@pytest.fixture
def base(tmp_path):
    return _copy(tmp_path, "base")


def test_equal_runs_pass(base, tmp_path):
    new = _copy(tmp_path, "new")
    result = compare_runs(base, new, stream=None)
    assert result.exit_code == 0
    assert set(result.rows["status"]) == {"equal"}
    assert (new / "comparison.html").is_file()


def test_improvement_passes(base, tmp_path):
    new = _copy(tmp_path, "new")
    _edit(new, _shift_dice(+0.03))
    result = compare_runs(base, new, stream=None)
    assert result.exit_code == 0
    improved = result.rows[result.rows["status"] == "improved"]
    assert len(improved) == 2 and set(improved["metric"]) == {"dice_mean"}  # two seeds
    assert improved["delta"].tolist() == pytest.approx([0.03, 0.03])


def test_drop_within_threshold_passes_and_beyond_fails(base, tmp_path):
    within = _copy(tmp_path, "within")
    _edit(within, _shift_dice(-0.004))
    assert compare_runs(base, within, dice_drop=0.005, stream=None).exit_code == 0
    beyond = _copy(tmp_path, "beyond")
    _edit(beyond, _shift_dice(-0.006))
    out = io.StringIO()
    result = compare_runs(base, beyond, dice_drop=0.005, stream=out)
    assert result.exit_code == 1
    assert len(result.regressions) == 2
    text = out.getvalue()
    assert "REGRESSED" in text and "unetgan / siemens / seed0" in text and "-0.006" in text
    assert "regressed" in (beyond / "comparison.html").read_text()


def test_throughput_gates_only_when_asked(base, tmp_path):
    new = _copy(tmp_path, "new")

    def slower(row):
        if row["kind"] == "throughput" and "images_per_s" in row["metrics"]:
            row["metrics"]["images_per_s"] *= 0.5

    _edit(new, slower)
    assert compare_runs(base, new, stream=None).exit_code == 0
    gated = compare_runs(base, new, throughput_ratio=0.8, gate_throughput=True, stream=None)
    assert gated.exit_code == 1
    assert set(gated.regressions["metric"]) == {"images_per_s"}
    assert compare_runs(base, new, throughput_ratio=0.4, gate_throughput=True, stream=None).exit_code == 0


def test_attacked_dice_is_gated(base, tmp_path):
    new = _copy(tmp_path, "new")

    def weaker(row):
        if row["kind"] == "fgsm" and row["eps"] == 0.01 and row["attack"] == "fgsm":
            row["metrics"]["dice_mean"] -= 0.1

    _edit(new, weaker)
    result = compare_runs(base, new, stream=None)
    assert result.exit_code == 1 and set(result.regressions["kind"]) == {"fgsm"}


def test_missing_row_is_reported_not_gated(base, tmp_path):
    new = _copy(tmp_path, "new")
    rows = (new / "results.jsonl").read_text().splitlines()
    (new / "results.jsonl").write_text("\n".join(rows[1:]) + "\n")
    result = compare_runs(base, new, stream=None)
    assert result.exit_code == 0
    assert (result.rows["status"] == "missing").sum() == 1


def test_html_goes_where_asked(base, tmp_path):
    (tmp_path / "out").mkdir()
    target = tmp_path / "out" / "cmp.html"
    result = compare_runs(base, base, html_path=target, stream=None)
    assert result.html_path == target and target.is_file()
    assert "http://" not in target.read_text() and "https://" not in target.read_text()


def test_html_into_a_missing_folder_is_one_line_exit_2(base, tmp_path, capsys):
    target = tmp_path / "missing" / "cmp.html"
    assert main(["compare", str(base), str(base), "--html", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"folder {target.parent} does not exist" in err
    assert not target.parent.exists()  # not created behind the user's back


def _append_line(results: Path, line: bytes) -> None:
    with open(results, "ab") as f:
        f.write(line + b"\n")


def _first_row(change):
    """Apply ``change`` to the first FGSM row only (the file's other rows stay well formed)."""
    done = []

    def edit(row):
        if row["kind"] == "fgsm" and not done:
            change(row)
            done.append(row)

    return edit


BREAKAGES = {
    "no_folder": lambda new, results: shutil.rmtree(new),
    "no_results": lambda new, results: results.unlink(),
    "empty_results": lambda new, results: results.write_text(""),
    "bad_json": lambda new, results: _append_line(results, b"{not json}"),
    "wrong_schema": lambda new, results: results.write_text(
        results.read_text().replace('"schema_version": 1', '"schema_version": 7', 1)
    ),
    "number_line": lambda new, results: _append_line(results, b"42"),
    "list_line": lambda new, results: _append_line(results, b"[1, 2]"),
    "null_line": lambda new, results: _append_line(results, b"null"),
    "not_utf8_line": lambda new, results: _append_line(results, b'{"kind": "\xff\xfe"}'),
    "not_utf8_manifest": lambda new, results: (new / "manifest.json").write_bytes(b'{"suite": "\xff"}'),
    "manifest_list": lambda new, results: (new / "manifest.json").write_text("[1, 2]"),
    "text_eps": lambda new, results: _edit(new, _first_row(lambda row: row.update(eps="big"))),
    "list_seed": lambda new, results: _edit(new, _first_row(lambda row: row.update(seed=[0, 1]))),
    "dict_scenario": lambda new, results: _edit(new, _first_row(lambda row: row.update(scenario={"a": 1}))),
    "text_metric": lambda new, results: _edit(new, _first_row(lambda row: row["metrics"].update(ssim="high"))),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_malformed_input_raises_user_error_and_exits_2(base, tmp_path, breakage, capsys):
    new = _copy(tmp_path, "new")
    BREAKAGES[breakage](new, new / "results.jsonl")
    with pytest.raises(UserError):
        compare_runs(base, new, stream=None)
    assert main(["compare", str(base), str(new)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err


@pytest.mark.parametrize("value", [float("nan"), None])
def test_a_gated_dice_that_is_nan_in_the_new_run_fails(base, tmp_path, value, capsys):
    new = _copy(tmp_path, "new")

    def lose_dice(row):
        if row["kind"] == "segmentation":
            for name in ("dice_mean", "dice_blood_pool", "dice_myo"):
                row["metrics"][name] = value

    _edit(new, lose_dice)
    result = compare_runs(base, new, stream=None)
    failed = result.regressions
    assert result.exit_code == 1
    assert set(failed["status"]) == {"failed"} and set(failed["metric"]) == {"dice_mean", "dice_blood_pool", "dice_myo"}
    assert len(failed) == 3 * len(result.rows[(result.rows["kind"] == "segmentation")]["key"].unique())
    assert main(["compare", str(base), str(new)]) == 1
    assert "REGRESSED" in capsys.readouterr().out


def test_bad_thresholds_are_user_errors(base):
    with pytest.raises(UserError, match="dice-drop"):
        compare_runs(base, base, dice_drop=-0.1, stream=None)
    with pytest.raises(UserError, match="throughput-ratio"):
        compare_runs(base, base, throughput_ratio=0, stream=None)


def test_runs_with_nothing_in_common_are_rejected(base, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    row = {
        "schema_version": 1,
        "kind": "segmentation",
        "cell_id": "c0",
        "suite": "other",
        "scenario": "x",
        "vendor": "y",
        "seed": 9,
        "metrics": {"dice_mean": 0.5},
    }
    (other / "results.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(UserError, match="no result row in common"):
        compare_runs(base, other, stream=None)


def test_cli_compare_exit_codes(base, tmp_path, capsys):
    assert main(["compare", str(base), str(base)]) == 0
    new = _copy(tmp_path, "new")
    _edit(new, _shift_dice(-0.05))
    assert main(["compare", str(base), str(new), "--dice-drop", "0.1"]) == 0
    assert main(["compare", str(base), str(new)]) == 1
    assert "REGRESSED" in capsys.readouterr().out


def _set_numerics(run_dir: Path, **numerics) -> None:
    path = run_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["numerics"] = {"device_name": "Intel Xeon", "cpu_capability": "AVX512", "torch": "2.13.0", **numerics}
    path.write_text(json.dumps(manifest))


def test_runs_on_other_hardware_without_per_image_values_are_gated_at_the_other_hardware_threshold(base, tmp_path):
    # Other numerics make the comparison noise-aware; without per-image values a cell has no
    # noise estimate and its rows are held to dice_drop_other_hardware.
    _set_numerics(base)
    other = _copy(tmp_path, "other")
    _set_numerics(other, device_name="AMD EPYC")
    shutil.rmtree(other / "per_image")
    _edit(other, _shift_dice(-0.02))
    out = io.StringIO()
    result = compare_runs(base, other, dice_drop=0.005, dice_drop_other_hardware=0.05, stream=out)
    assert result.exit_code == 0 and result.mode == "noise-aware"
    assert result.dice_drop == 0.05
    assert "device_name 'Intel Xeon' -> 'AMD EPYC'" in result.note
    assert "note: noise-aware: numerics differ" in out.getvalue()
    assert "AMD EPYC" in (other / "comparison.html").read_text()

    far = _copy(tmp_path, "far")
    _set_numerics(far, device_name="AMD EPYC")
    shutil.rmtree(far / "per_image")
    _edit(far, _shift_dice(-0.06))
    assert compare_runs(base, far, dice_drop=0.005, dice_drop_other_hardware=0.05, stream=None).exit_code == 1


def test_same_numerics_or_unrecorded_numerics_keep_the_tight_threshold(base, tmp_path):
    same = _copy(tmp_path, "same")
    _set_numerics(base)
    _set_numerics(same)
    _edit(same, _shift_dice(-0.02))
    result = compare_runs(base, same, dice_drop=0.005, stream=None)
    assert (result.exit_code, result.dice_drop, result.mode) == (1, 0.005, "exact")
    unrecorded = _copy(tmp_path, "unrecorded")  # the fixture's manifest has no numerics
    _edit(unrecorded, _shift_dice(-0.02))
    assert compare_runs(base, unrecorded, dice_drop=0.005, stream=None).exit_code == 1


def test_a_negative_other_hardware_threshold_is_bad_input(base):
    with pytest.raises(UserError, match="dice-drop-other-hardware"):
        compare_runs(base, base, dice_drop_other_hardware=-1, stream=None)
