"""Training in worker processes (``bench.parallel``): the same models as in one process, failures carried
to the cells that need them, and the settings that decide how many run at once."""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import dataclasses
import json
from pathlib import Path

import pytest
import torch
from tiny_suites import TRANSLATOR, tiny_text
from tqdm.auto import tqdm

from unetgan_bench.bench import parallel
from unetgan_bench.bench.cli import EXIT_BAD_INPUT, main
from unetgan_bench.bench.plan import Task, build_plan
from unetgan_bench.bench.registries import open_source
from unetgan_bench.bench.runner import run_suite
from unetgan_bench.bench.store import ArtifactStore
from unetgan_bench.bench.suite import parse_suite
from unetgan_core.device import cpu_threads
from unetgan_core.errors import UserError


@pytest.fixture()
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("UNETGAN_CACHE", str(tmp_path / "cache"))
    return tmp_path


def _suite(root: Path, **kwargs):
    path = root / "tiny.toml"
    path.write_text(tiny_text(**kwargs), encoding="utf-8")
    return parse_suite(path.read_text(encoding="utf-8"), str(path))


def _rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "results.jsonl").read_text(encoding="utf-8").splitlines()]


def _weights(store: Path, kind: str) -> dict[str, bytes]:
    return {p.parent.name: p.read_bytes() for p in (store / kind).glob("*/model.pt")}


@pytest.mark.slow
def test_two_workers_train_the_same_models_and_measure_the_same_dice_as_one_process(env) -> None:
    suite = _suite(env, seeds=(0, 1), scenarios=("clean", "cyclegan"), extra=TRANSLATOR)
    one = run_suite(suite, env / "one", store=ArtifactStore(env / "store1"), progress=False, report=False, jobs=1)
    two = run_suite(suite, env / "two", store=ArtifactStore(env / "store2"), progress=False, report=False, jobs=2)

    assert one.failed == two.failed == []
    for kind in ("unet", "translator"):
        weights_one, weights_two = _weights(env / "store1", kind), _weights(env / "store2", kind)
        assert len(weights_one) == 2  # one per seed: both levels really ran two at once
        assert weights_one.keys() == weights_two.keys()
        for key in weights_one:
            a = torch.load(env / "store1" / kind / key / "model.pt", weights_only=True)
            b = torch.load(env / "store2" / kind / key / "model.pt", weights_only=True)
            assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a if torch.is_tensor(a[k]))
    dice = {r["cell_id"]: r["metrics"]["dice_mean"] for r in _rows(env / "one")}
    assert dice == {r["cell_id"]: r["metrics"]["dice_mean"] for r in _rows(env / "two")}
    manifest = json.loads((env / "two" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["jobs"] == 2 and manifest["stages"]["translator_training"] > 0


def test_a_failure_in_a_worker_comes_back_with_its_traceback() -> None:
    class Broken:
        class plan:
            @staticmethod
            def task(key):
                return key

        @staticmethod
        def artifact(task):
            raise ValueError(f"no images for {task}")

    parallel._WORKER = Broken()
    try:
        failure = parallel._train_in_worker("abc")
    finally:
        parallel._WORKER = None
    assert failure.key == "abc"
    assert (failure.error_type, failure.message) == ("ValueError", "no images for abc")
    assert failure.summary() == "ValueError: no images for abc"
    assert "Traceback" in failure.details and "no images for abc" in failure.details
    assert not failure.user_error


def _fail_unet_training(env: Path, monkeypatch, error_type: str, message: str, user_error: bool):
    """The tiny suite, with its Unet's training reported as failed in a worker (``details`` = "worker tb")."""
    suite = _suite(env)
    (unet,) = build_plan(suite, open_source(suite, suite.path)).of_kind("unet")
    failure = parallel.TrainingFailure(unet.key, error_type, message, "worker tb", user_error)
    monkeypatch.setattr(parallel, "train_missing", lambda runner, cells, jobs: {unet.key: failure})
    return suite


def test_cells_that_need_a_failed_model_fail_and_log_the_worker_traceback(env, monkeypatch) -> None:
    suite = _fail_unet_training(env, monkeypatch, "RuntimeError", "out of memory", user_error=False)

    result = run_suite(suite, env / "run", store=ArtifactStore(env / "store"), progress=False, report=False)

    assert len(result.failed) == 3 and all("TrainingFailed: RuntimeError: out of memory" in f for f in result.failed)
    assert "worker tb" in (env / "run" / "logs" / "errors.log").read_text(encoding="utf-8")
    assert not (env / "store" / "unet").exists()  # not trained a second time in this process


def test_a_bad_input_error_in_a_worker_stops_the_run_as_bad_input(env, monkeypatch) -> None:
    # The message may itself hold ": " (it is carried whole, not split back out of a summary line).
    suite = _fail_unet_training(env, monkeypatch, "UserError", "[unet] lr: must be > 0, got 0", user_error=True)
    with pytest.raises(UserError, match=r"^\[unet\] lr: must be > 0, got 0$"):
        run_suite(suite, env / "run", store=ArtifactStore(env / "store"), progress=False, report=False)


def test_needed_training_follows_translators_to_their_unets(env) -> None:
    suite = _suite(env, scenarios=("clean", "cyclegan"), extra=TRANSLATOR)
    runner = type("R", (), {"plan": build_plan(suite, open_source(suite, suite.path))})()
    (unet,) = runner.plan.of_kind("unet")
    (translator,) = runner.plan.of_kind("translator")
    cyclegan_cells = [t for t in runner.plan.of_kind("segmentation") if t.config["scenario"] == "cyclegan"]
    clean_cells = [t for t in runner.plan.of_kind("segmentation") if t.config["scenario"] == "clean"]
    assert parallel.needed_training(runner, cyclegan_cells) == {unet.key, translator.key}
    assert parallel.needed_training(runner, clean_cells) == {unet.key}
    assert parallel.needed_training(runner, []) == set()


def test_default_jobs_fill_the_cores_on_cpu_and_stay_at_one_on_a_gpu(monkeypatch) -> None:
    monkeypatch.setattr(parallel.os, "sched_getaffinity", lambda pid: set(range(8)))
    assert parallel.default_jobs("cpu", 1) == 8
    assert parallel.default_jobs("cpu", 3) == 2
    assert parallel.default_jobs("cpu", 16) == 1
    assert parallel.default_jobs("cuda", 1) == 1


def test_train_threads_is_part_of_a_trained_models_key(env) -> None:
    suite = _suite(env, scenarios=("clean", "cyclegan"), extra=TRANSLATOR)
    more = dataclasses.replace(suite, suite=dataclasses.replace(suite.suite, train_threads=2))
    keys = {
        kind: {t.key for p in (suite, more) for t in build_plan(p, open_source(p, p.path)).of_kind(kind)}
        for kind in ("unet", "translator")
    }
    assert len(keys["unet"]) == len(keys["translator"]) == 2


def test_cpu_threads_sets_and_restores_the_thread_count() -> None:
    before = torch.get_num_threads()
    with cpu_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(UserError, match="threads must be >= 1"):
        with cpu_threads(0):
            pass


def test_cli_rejects_a_job_count_below_one(capsys) -> None:
    assert main(["run", "smoke", "--jobs", "0"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert err == "error: --jobs: expected a positive integer, got 0"


def test_suite_rejects_zero_train_threads(env) -> None:
    text = tiny_text().replace("seeds = [0]", "seeds = [0]\ntrain_threads = 0")
    with pytest.raises(UserError, match="train_threads"):
        parse_suite(text, str(env / "bad.toml"))


class _DonePool:
    """A stand-in pool that runs each submitted task at once and records the order of submission."""

    def __init__(self, failing: str | None = None) -> None:
        self.started: list[str] = []
        self.failing = failing

    def submit(self, fn, key: str):
        self.started.append(key)
        future = cf.Future()
        failed = key == self.failing
        future.set_result(parallel.TrainingFailure(key, "RuntimeError", "boom", "", False) if failed else None)
        return future


class _Clocks:
    def __init__(self) -> None:
        self.opened: list[str] = []

    def stage_clock(self, kind: str):
        self.opened.append(kind)
        return contextlib.nullcontext()


def _graph() -> list:
    unets = [Task("unet", f"u{i}", {}) for i in range(3)]
    return [*unets, Task("translator", "t0", {}, deps=("u2",)), Task("translator", "t1", {}, deps=("u2", "u9"))]


def test_a_translator_starts_as_soon_as_its_unet_is_trained_not_after_every_unet() -> None:
    tasks, pool, host, failures = _graph(), _DonePool(), _Clocks(), {}
    order = parallel._priority(tasks)
    assert [t.key for t in order] == ["u2", "u0", "u1", "t0", "t1"]  # the Unet that translators read first
    with contextlib.ExitStack() as clocks:
        parallel._train_ready_first(host, pool, order, 2, failures, clocks, tqdm(disable=True))
    # Two at a time: u2 and u0, then u1 beside t0 (u9 is not being trained: already in the store).
    assert pool.started == ["u2", "u0", "u1", "t0", "t1"] and failures == {}
    assert host.opened == ["unet", "translator"]


def test_a_translator_whose_unet_failed_fails_with_it_and_is_never_started() -> None:
    pool, failures = _DonePool(failing="u2"), {}
    with contextlib.ExitStack() as clocks:
        parallel._train_ready_first(
            _Clocks(), pool, parallel._priority(_graph()), 2, failures, clocks, tqdm(disable=True)
        )
    assert pool.started == ["u2", "u0", "u1"]
    assert set(failures) == {"u2", "t0", "t1"} and failures["t0"].key == "t0" and failures["t0"].message == "boom"
