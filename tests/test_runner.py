"""The runner on a tiny suite: rows, manifest, cache reuse, resume after ``kill -9``, the lock,
and CPU determinism.

Every test has its own run folder, artifact store and data cache (``UNETGAN_CACHE``), so none
depends on what another test (or the developer's own runs) left behind.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from tiny_suites import tiny_text

from unetgan_bench.bench import manifest, steps
from unetgan_bench.bench.cli import main as cli_main
from unetgan_bench.bench.plan import build_plan
from unetgan_bench.bench.registries import open_source
from unetgan_bench.bench.runner import run_lock, run_suite
from unetgan_bench.bench.store import ArtifactStore
from unetgan_bench.bench.suite import parse_suite
from unetgan_core.errors import UserError

REPO = Path(__file__).resolve().parents[1]
# Waits on a process or condition end as soon as it holds; this only stops a test that hangs.
# It is no measure of speed: a loaded 2-core machine may take minutes where an idle one takes seconds.
HANG_GUARD_S = 600
CELL_KINDS = ("segmentation", "fgsm", "throughput")


def tiny_suite(path: Path, **kwargs):
    """The tiny suite, written to ``path`` (the runner resolves data relative to the suite file)."""
    path.write_text(tiny_text(**kwargs), encoding="utf-8")
    return parse_suite(path.read_text(encoding="utf-8"), str(path))


def planned_cells(suite) -> list[str]:
    plan = build_plan(suite, open_source(suite, suite.path))
    return [t.key for t in plan.tasks if t.kind in CELL_KINDS]


def read_rows(run_dir: Path) -> list[dict]:
    """Complete rows only: a run killed mid-write may leave a partial last line."""
    text = (run_dir / "results.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.split("\n")[:-1]]


def artifact_dirs(store: Path) -> set[str]:
    return {str(p.relative_to(store)) for p in store.glob("*/*") if p.is_dir() and not p.name.startswith(".")}


def child_pids(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (Linux ``/proc``)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended while we looked
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def dice_by_cell(run_dir: Path) -> dict[str, float]:
    return {r["cell_id"]: r["metrics"]["dice_mean"] for r in read_rows(run_dir) if r["kind"] == "segmentation"}


@pytest.fixture()
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A private data cache (``UNETGAN_CACHE``) and artifact store under this test's tmp_path."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("UNETGAN_CACHE", str(cache))
    return {"cache": cache, "store": tmp_path / "store", "root": tmp_path}


def run_tiny(suite, run_dir: Path, store: Path):
    return run_suite(suite, run_dir, device="cpu", store=ArtifactStore(store), progress=False, report=False)


def test_run_writes_rows_per_image_csvs_and_manifest(env) -> None:
    suite = tiny_suite(env["root"] / "tiny.toml")
    run_dir = env["root"] / "run"
    result = run_tiny(suite, run_dir, env["store"])

    cells = planned_cells(suite)
    assert len(cells) == 3  # clean on philips and siemens, histmatch on siemens
    assert result.failed == []
    assert (result.measured, result.skipped) == (3, 0)
    rows = read_rows(run_dir)
    assert sorted(r["cell_id"] for r in rows) == sorted(cells)
    for row in rows:
        for key in ("schema_version", "cell_id", "config", "seed", "vendor", "scenario", "metrics"):
            assert key in row, key
        assert row["schema_version"] == 2
        assert row["seed"] == 0
        assert 0.0 <= row["metrics"]["dice_mean"] <= 1.0
        assert row["metrics"]["n_images"] == 4  # 1 test subject x 2 slices x 2 phases
    assert {(r["scenario"], r["vendor"]) for r in rows} == {
        ("clean", "philips"),
        ("clean", "siemens"),
        ("histmatch", "siemens"),
    }
    for row in rows:
        assert row["kind"] == "segmentation"
        path = run_dir / row["per_image"]
        assert path == run_dir / "per_image" / f"{row['cell_id']}.csv"
        with open(path, newline="") as f:
            images = list(csv.DictReader(f))
        assert len(images) == row["metrics"]["n_images"]
        assert {"index", "subject", "dice_mean", "hd95_mm"} <= set(images[0])
        # Row std is the sample std (ddof=1), as in the report's tables.
        dice = np.array([float(image["dice_mean"]) for image in images])
        assert row["metrics"]["dice_mean_std"] == pytest.approx(np.std(dice, ddof=1), rel=1e-12)

    manifest = json.loads((run_dir / "manifest.json").read_text())
    for key in ("commit", "dirty", "packages", "device", "threads", "stages"):
        assert key in manifest, key
    assert manifest["suite"] == "tiny"
    assert manifest["device"] == "cpu"
    assert manifest["threads"] >= 1
    assert manifest["packages"]["torch"]
    assert manifest["finished"] is not None
    assert {"unet_training", "evaluation"} <= set(manifest["stages"])
    assert all(seconds >= 0 for seconds in manifest["stages"].values())


def test_second_run_into_same_folder_measures_and_trains_nothing(env, monkeypatch) -> None:
    suite = tiny_suite(env["root"] / "tiny.toml")
    run_dir = env["root"] / "run"
    run_tiny(suite, run_dir, env["store"])
    results_before = (run_dir / "results.jsonl").read_bytes()
    artifacts_before = artifact_dirs(env["store"])
    assert any(a.startswith("unet/") for a in artifacts_before)

    def forbidden(*args, **kwargs):
        raise AssertionError("a finished run must not train or measure again")

    monkeypatch.setattr(steps, "train_unet", forbidden)
    monkeypatch.setattr(steps, "evaluate_segmentation", forbidden)
    result = run_tiny(suite, run_dir, env["store"])

    assert (result.measured, result.skipped, result.failed) == (0, 3, [])
    assert (run_dir / "results.jsonl").read_bytes() == results_before
    assert artifact_dirs(env["store"]) == artifacts_before


def test_other_suite_with_same_unet_settings_reuses_trained_unet(env, monkeypatch) -> None:
    first = tiny_suite(env["root"] / "tiny.toml")
    run_tiny(first, env["root"] / "run1", env["store"])
    artifacts = artifact_dirs(env["store"])

    def forbidden(*args, **kwargs):
        raise AssertionError("the Unet is in the store; it must not be trained again")

    monkeypatch.setattr(steps, "train_unet", forbidden)
    other = tiny_suite(env["root"] / "other.toml", name="other")
    result = run_tiny(other, env["root"] / "run2", env["store"])

    assert result.failed == []  # a failed cell would hide the AssertionError in logs/errors.log
    assert result.measured == 3
    assert artifact_dirs(env["store"]) == artifacts
    assert {r["suite"] for r in read_rows(env["root"] / "run2")} == {"other"}
    # Same Unet, same test images: the same Dice per cell.
    assert dice_by_cell(env["root"] / "run2") == dice_by_cell(env["root"] / "run1")


def run_command(suite_path: Path, run_dir: Path, store: Path, jobs: int) -> list[str]:
    """``python -m unetgan_bench run`` of a suite file into ``run_dir``, quiet, without a report."""
    options = ["--out", str(run_dir), "--quiet", "--no-report", "--cache", str(store), "--jobs", str(jobs)]
    return [sys.executable, "-m", "unetgan_bench", "run", str(suite_path), *options]


@pytest.mark.slow
def test_resume_after_kill_9_measures_every_cell_exactly_once(env) -> None:
    suite_path = env["root"] / "tiny.toml"
    # Two seeds: after the first seed's rows the second seed's Unet still has to train,
    # which leaves time to kill the run in the middle.
    suite = tiny_suite(suite_path, seeds=(0, 1), targets=("siemens", "ge"))
    cells = planned_cells(suite)
    run_dir = env["root"] / "run"
    command = run_command(suite_path, run_dir, env["store"], jobs=1)
    child_env = {**os.environ, "UNETGAN_CACHE": str(env["cache"]), "OMP_NUM_THREADS": "1"}
    results = run_dir / "results.jsonl"

    process = subprocess.Popen(command, cwd=REPO, env=child_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (results.exists() and b"\n" in results.read_bytes()):
            assert process.poll() is None, "the run ended before writing a row"
            assert time.monotonic() < deadline, "no row within 120 s"
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    done_at_kill = len(read_rows(run_dir))
    assert 0 < done_at_kill < len(cells), "the kill should land in the middle of the run"

    # Started again: the lock is free (the kernel dropped it) and only the rest is measured.
    result = run_tiny(suite, run_dir, env["store"])
    assert result.failed == []
    ids = [r["cell_id"] for r in read_rows(run_dir)]
    assert len(ids) == len(set(ids)) == len(cells)
    assert set(ids) == set(cells)
    assert result.skipped >= done_at_kill - 1  # a partial last line, if any, is measured again


def start_parallel_run_until_a_model_is_trained(suite_path: Path, run_dir: Path, env) -> tuple[subprocess.Popen, list]:
    """``bench run --jobs 2`` in its own process group (as a terminal's foreground job), returned once the
    first model is in the store, with the pids of its worker processes."""
    command = run_command(suite_path, run_dir, env["store"], jobs=2)
    child_env = {**os.environ, "UNETGAN_CACHE": str(env["cache"])}
    process = subprocess.Popen(
        command, cwd=REPO, env=child_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    deadline = time.monotonic() + HANG_GUARD_S
    while not any(a.startswith("unet/") for a in artifact_dirs(env["store"])):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the run ended, or trained no model within {HANG_GUARD_S} s")
        time.sleep(0.02)
    workers = child_pids(process.pid)
    assert len(workers) >= 2, "expected the pool's worker processes"
    return process, workers


def wait_until_gone(pids: list[int], seconds: float) -> None:
    """Return once every process in ``pids`` has ended; ``seconds`` only guards against a hang."""
    deadline = time.monotonic() + seconds
    while alive := [pid for pid in pids if Path(f"/proc/{pid}").exists()]:
        assert time.monotonic() < deadline, f"processes {alive} still running after {seconds} s"
        time.sleep(0.2)


@pytest.mark.slow
def test_resume_after_kill_9_during_training_in_workers(env) -> None:
    suite_path = env["root"] / "tiny.toml"
    suite = tiny_suite(suite_path, seeds=(0, 1, 2), targets=("siemens", "ge"))
    cells = planned_cells(suite)
    run_dir = env["root"] / "run"
    process, workers = start_parallel_run_until_a_model_is_trained(suite_path, run_dir, env)
    process.send_signal(signal.SIGKILL)  # the workers are orphaned in the middle of their work
    process.communicate()
    assert not (run_dir / "results.jsonl").exists() or len(read_rows(run_dir)) < len(cells)
    wait_until_gone(workers, HANG_GUARD_S)  # they notice within about a second that their parent is gone

    result = run_suite(
        suite, run_dir, device="cpu", store=ArtifactStore(env["store"]), progress=False, report=False, jobs=2
    )
    assert result.failed == []
    ids = [r["cell_id"] for r in read_rows(run_dir)]
    assert len(ids) == len(set(ids)) == len(cells)
    assert set(ids) == set(cells)
    assert len([a for a in artifact_dirs(env["store"]) if a.startswith("unet/")]) == 3
    assert not list(env["store"].glob("*/.*"))  # the killed builds' temporary folders are gone


@pytest.mark.slow
def test_ctrl_c_during_training_in_workers_stops_at_once_and_resumes(env) -> None:
    suite_path = env["root"] / "tiny.toml"
    seeds = (0, 1, 2, 3, 4, 5)
    suite = tiny_suite(suite_path, seeds=seeds, targets=("siemens", "ge"))
    run_dir = env["root"] / "run"
    process, workers = start_parallel_run_until_a_model_is_trained(suite_path, run_dir, env)
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C does: every process of the foreground group
    try:
        _, err = process.communicate(timeout=HANG_GUARD_S)
    finally:
        process.kill()
    assert process.returncode == 130
    assert "interrupted; run the same command again to resume" in err.decode()
    assert "Traceback" not in err.decode() and "leaked" not in err.decode()
    # "At once" without a clock: the queued trainings were not run first. One Unet per seed was
    # queued, two at a time; at the signal one had finished.
    trained = [a for a in artifact_dirs(env["store"]) if a.startswith("unet/")]
    assert 1 <= len(trained) < len(seeds)
    wait_until_gone(workers, HANG_GUARD_S)

    result = run_suite(suite, run_dir, device="cpu", store=ArtifactStore(env["store"]), progress=False, report=False)
    assert result.failed == [] and result.measured == len(planned_cells(suite))


def test_partial_last_line_is_dropped_and_its_cell_measured_again(env) -> None:
    suite = tiny_suite(env["root"] / "tiny.toml")
    run_dir = env["root"] / "run"
    run_tiny(suite, run_dir, env["store"])
    lines = (run_dir / "results.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    last = json.loads(lines[-1])
    # As a kill in the middle of a write would leave it: half a row, no newline.
    (run_dir / "results.jsonl").write_text("".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2], encoding="utf-8")

    result = run_tiny(suite, run_dir, env["store"])

    assert (result.measured, result.skipped) == (1, 2)
    rows = read_rows(run_dir)
    assert [r["cell_id"] for r in rows] == [json.loads(line)["cell_id"] for line in lines]
    assert rows[-1]["metrics"] == last["metrics"]
    assert (run_dir / "results.jsonl").read_text(encoding="utf-8").endswith("\n")


def test_second_run_into_locked_folder_is_refused(env) -> None:
    suite = tiny_suite(env["root"] / "tiny.toml")
    run_dir = env["root"] / "run"
    with run_lock(run_dir):
        with pytest.raises(UserError, match="another run .* is writing to this folder") as info:
            run_tiny(suite, run_dir, env["store"])
    assert "\n" not in str(info.value)
    assert str(os.getpid()) in str(info.value)  # names the holder
    assert not (run_dir / "results.jsonl").exists()
    # Released with the context: the run goes ahead.
    assert run_tiny(suite, run_dir, env["store"]).measured == 3


def test_cpu_runs_are_deterministic_across_folders_and_caches(env, monkeypatch) -> None:
    suite = tiny_suite(env["root"] / "tiny.toml")
    run_tiny(suite, env["root"] / "a", env["root"] / "store_a")
    monkeypatch.setenv("UNETGAN_CACHE", str(env["root"] / "cache_b"))
    run_tiny(suite, env["root"] / "b", env["root"] / "store_b")

    assert artifact_dirs(env["root"] / "store_a") == artifact_dirs(env["root"] / "store_b")
    dice_a, dice_b = dice_by_cell(env["root"] / "a"), dice_by_cell(env["root"] / "b")
    assert len(dice_a) == 3
    assert dice_a == dice_b  # exactly equal, not approximately
    for cell in dice_a:
        csv_a = (env["root"] / "a" / "per_image" / f"{cell}.csv").read_bytes()
        assert csv_a == (env["root"] / "b" / "per_image" / f"{cell}.csv").read_bytes()


# -- self-describing rows and resuming at another commit -----------------------------------------------------------
def rewrite_rows(run_dir: Path, change) -> None:
    """Rewrite every row through ``change(row)`` (tests only; runs themselves only append)."""
    rows = read_rows(run_dir)
    for row in rows:
        change(row)
    (run_dir / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_every_row_records_its_code_machine_and_resolved_settings(env) -> None:
    suite = tiny_suite(env["root"] / "tiny.toml")
    run_dir = env["root"] / "run"
    run_tiny(suite, run_dir, env["store"])
    plan = build_plan(suite, open_source(suite, suite.path))
    commit, dirty = manifest.git_state()
    manifest_data = json.loads((run_dir / "manifest.json").read_text())

    for row in read_rows(run_dir):
        assert (row["commit"], row["dirty"]) == (commit, dirty)
        assert row["machine"] == manifest_data["machine"]  # the same numbers as the manifest
        assert {"device_name", "cpu_model", "cpu_capability", "torch", "threads"} <= set(row["machine"])
        assert row["device"] == "cpu" and "device" not in row["metrics"]
        config = row["config"]
        unet = config["pipeline"]["unet"]
        (unet_task,) = plan.of_kind("unet")
        assert unet["id"] == unet_task.key  # the hash is kept as the id ...
        assert unet["config"]["epochs"] == 1 and unet["config"]["model_kwargs"] == {"width": 4}  # ... and resolved
        assert unet["train"]["vendor"] == "philips" and unet["train"]["split"] == "train"
        assert config["test"]["vendor"] == row["vendor"] and len(config["test"]["subjects"]) == 1
        assert config["data_source"]["size_px"] == 32
        if row["scenario"] == "histmatch":
            assert config["pipeline"]["adapter"]["fit"]["split"] == "train"


def _throughput_suite(env, precisions: str) -> Path:
    """A tiny suite whose [throughput] section times one segment setting per precision in ``precisions`` (TOML)."""
    extra = f"""
[throughput]
pipelines = ["segment"]
batch_sizes = [2]
image_sizes = [32]
precisions = {precisions}
channels_last = [false]
warmup = 1
repeats = 1
peak_sizes = [64]
"""
    return tiny_suite(env["root"] / "tiny.toml", scenarios=("clean",), targets=(), extra=extra)


def test_throughput_rows_name_each_setting_once(env) -> None:
    suite = _throughput_suite(env, '["fp32"]')
    run_dir = env["root"] / "run"
    assert run_tiny(suite, run_dir, env["store"]).failed == []
    (row,) = [r for r in read_rows(run_dir) if r["kind"] == "throughput"]
    assert (row["pipeline"], row["batch_size"], row["size_px"], row["precision"]) == ("segment", 2, 32, "fp32")
    for old_name in ("batch", "requested_batch", "image_size", "scenario"):
        assert old_name not in row, old_name
    assert row["metrics"]["batch_used"] == 2 and row["metrics"]["images_per_s"] > 0
    assert not {"device", "device_name", "torch_version", "threads", "error"} & set(row["metrics"])
    assert row["error"] is None and row["config"]["section"]["warmup"] == 1


def test_a_skipped_precision_is_one_readable_row(env, monkeypatch) -> None:
    from unetgan_core.throughput import pipelines
    from unetgan_core.throughput.precision import PrecisionDecision

    skipped = PrecisionDecision("bf16", False, "skipped: no native bf16 on this cpu (emulated; test)")
    monkeypatch.setattr(pipelines, "decide_precision", lambda device, precision: skipped)
    suite = _throughput_suite(env, '["fp32", "bf16"]')
    run_dir = env["root"] / "run"
    assert run_tiny(suite, run_dir, env["store"]).failed == []
    rows = sorted((r for r in read_rows(run_dir) if r["kind"] == "throughput"), key=lambda r: r["precision"])
    assert [(r["pipeline"], r["precision"]) for r in rows] == [("all", "bf16"), ("segment", "fp32")]
    assert rows[0]["error"] == skipped.reason and rows[0]["batch_size"] is None and rows[0]["size_px"] is None
    assert rows[0]["metrics"]["images_per_s"] is None and rows[1]["error"] is None


def test_resuming_at_another_commit_is_refused_unless_allowed(env, capsys) -> None:
    suite = tiny_suite(env["root"] / "tiny.toml")
    run_dir = env["root"] / "run"
    run_tiny(suite, run_dir, env["store"])
    old = "0123456789abcdef0123456789abcdef01234567"

    def from_old_commit(row):
        row["commit"], row["dirty"] = old, False

    rewrite_rows(run_dir, from_old_commit)
    # Nothing left to measure: nothing would be mixed, so nothing is refused.
    assert run_tiny(suite, run_dir, env["store"]).measured == 0
    lines = (run_dir / "results.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    (run_dir / "results.jsonl").write_text("".join(lines[:-1]), encoding="utf-8")

    with pytest.raises(UserError, match="commit 0123456789ab.*--allow-mixed-commits") as info:
        run_tiny(suite, run_dir, env["store"])
    assert "\n" not in str(info.value)
    assert len(read_rows(run_dir)) == 2  # nothing was added
    argv = ["run", str(env["root"] / "tiny.toml"), "--out", str(run_dir), "--cache", str(env["store"]), "--quiet"]
    assert cli_main(argv) == 2
    assert "--allow-mixed-commits" in capsys.readouterr().err

    assert cli_main([*argv, "--allow-mixed-commits"]) == 0
    commits = {r["commit"] for r in read_rows(run_dir)}
    assert commits == {old, manifest.git_state()[0]}
    header = (run_dir / "report.html").read_text(encoding="utf-8")
    assert "MIXED" in header and f"{old[:12]}: 2 rows" in header


@pytest.mark.parametrize("line", [b"42", b"[1, 2]", b"null", b'{"kind": "\xff"}'])
def test_resuming_a_folder_with_a_malformed_row_is_one_line(env, capsys, line) -> None:
    suite_path = env["root"] / "tiny.toml"
    tiny_suite(suite_path)
    run_dir = env["root"] / "run"
    run_dir.mkdir()
    (run_dir / "results.jsonl").write_bytes(line + b"\n")
    assert cli_main(["run", str(suite_path), "--out", str(run_dir), "--cache", str(env["store"]), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{run_dir / 'results.jsonl'}:1: " in err and "Traceback" not in err


@pytest.mark.parametrize("where", ["file", "under_a_file"])
def test_out_that_cannot_be_a_run_folder_is_one_line(env, capsys, where) -> None:
    suite_path = env["root"] / "tiny.toml"
    tiny_suite(suite_path)
    (env["root"] / "taken").write_text("not a folder")
    out = env["root"] / "taken" if where == "file" else env["root"] / "taken" / "run"
    assert cli_main(["run", str(suite_path), "--out", str(out), "--cache", str(env["store"]), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(out) in err and "Traceback" not in err
