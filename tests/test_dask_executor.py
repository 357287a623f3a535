"""``--executor dask`` (``bench.dask_executor``) on a real local Dask cluster of two single-thread worker processes:
the same numbers as the local executor, a worker killed mid-training, an interrupted client, and the refusals."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path

import pytest
from tiny_suites import TRANSLATOR, tiny_text

from unetgan_bench.bench import dask_executor
from unetgan_bench.bench.cli import EXIT_BAD_INPUT, main
from unetgan_bench.bench.runner import Runner, run_suite
from unetgan_bench.bench.store import ArtifactStore
from unetgan_bench.bench.suite import load_suite

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """``LocalCluster(n_workers=2, threads_per_worker=1, processes=True)``, each worker offering ``threads=1``."""
    data_cache = tmp_path_factory.mktemp("worker_data_cache")
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        resources={dask_executor.THREADS: 1},
        dashboard_address=None,
        env={"UNETGAN_CACHE": str(data_cache)},
    ) as local:
        yield local


@pytest.fixture()
def address(cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("UNETGAN_CACHE", str(tmp_path / "data_cache"))
    with distributed.Client(cluster) as client:
        client.wait_for_workers(2, timeout=60)  # a worker killed by an earlier test is back
    return cluster.scheduler_address


def _rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "results.jsonl").read_text(encoding="utf-8").splitlines()]


def _tiny(root: Path, **kwargs) -> Path:
    path = root / "tiny.toml"
    path.write_text(tiny_text(**kwargs), encoding="utf-8")
    return path


def _run_dask(address: str, suite: str | Path, out: Path, cache: Path) -> int:
    argv = ["run", str(suite), "--executor", "dask", "--scheduler", address, "--out", str(out), "--cache", str(cache)]
    return main([*argv, "--no-report", "--quiet"])


# Timing measurements: equal only by chance, whichever executor measures them.
TIMED = {"sweep_cost_ratio"}


@pytest.mark.slow
def test_smoke_through_dask_gives_the_local_executors_numbers_bit_for_bit(address, tmp_path) -> None:
    suite = load_suite("smoke")
    run_suite(suite, tmp_path / "local", store=ArtifactStore(tmp_path / "store1"), progress=False, report=False)

    assert _run_dask(address, "smoke", tmp_path / "dask", tmp_path / "store2") == 0

    local = {r["cell_id"]: r for r in _rows(tmp_path / "local") if r["kind"] != "throughput"}
    dask = {r["cell_id"]: r for r in _rows(tmp_path / "dask") if r["kind"] != "throughput"}
    assert len(local) == 12 and local.keys() == dask.keys()
    for cell, row in local.items():
        for metric, value in row["metrics"].items():
            assert metric in TIMED or dask[cell]["metrics"][metric] == value, (row["kind"], row["scenario"], metric)
        assert dask[cell]["machine"] == row["machine"]
    for csv in (tmp_path / "local" / "per_image").glob("*.csv"):
        assert (tmp_path / "dask" / "per_image" / csv.name).read_bytes() == csv.read_bytes()
    assert sorted(p.name for p in (tmp_path / "dask" / "figures").glob("fgsm_*.npz")) == sorted(
        p.name for p in (tmp_path / "local" / "figures").glob("fgsm_*.npz")
    )
    manifest = json.loads((tmp_path / "dask" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["executor"] == f"dask ({address})"
    assert sum(1 for r in _rows(tmp_path / "dask") if r["kind"] == "throughput") >= 1


def _kill_first_training_worker(store: Path, killed: list[int], stop: threading.Event) -> None:
    """Kill (SIGKILL) the worker process that builds the first Unet: its temporary folder names its pid."""
    while not stop.is_set() and not killed:
        for tmp in (store / "unet").glob(".*.*.*") if (store / "unet").is_dir() else []:
            pid = int(tmp.name.split(".")[2])
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            return
        stop.wait(0.01)


@pytest.mark.slow
def test_a_worker_killed_during_a_training_still_ends_in_a_complete_run(address, tmp_path) -> None:
    text = tiny_text(seeds=(0, 1), scenarios=("clean", "cyclegan"), extra=TRANSLATOR).replace(
        "epochs = 1", "epochs = 15"
    )
    suite = tmp_path / "tiny.toml"
    suite.write_text(text, encoding="utf-8")
    killed: list[int] = []
    stop = threading.Event()
    watcher = threading.Thread(target=_kill_first_training_worker, args=(tmp_path / "store", killed, stop))
    watcher.start()
    try:
        code = _run_dask(address, suite, tmp_path / "run", tmp_path / "store")
    finally:
        stop.set()
        watcher.join()

    assert killed, "no training was caught in progress"
    assert code == 0
    rows = _rows(tmp_path / "run")
    ids = [r["cell_id"] for r in rows]
    assert len(ids) == len(set(ids)) == 6  # (clean: 2 vendors + cyclegan: 1) x 2 seeds, none lost or twice
    assert len(list((tmp_path / "store" / "unet").glob("[!.]*"))) == 2
    assert not (tmp_path / "run" / "logs" / "errors.log").exists()


BROKEN_PLUGIN = """
from unetgan_core.scenarios import SCENARIOS, Scenario
from unetgan_core.training.augment import VARIANTS


@VARIANTS.register("broken_aug")
def broken(x, settings, gen):
    raise RuntimeError("broken augmentation")


SCENARIOS.add("broken", Scenario("broken", "broken_aug", None, "a Unet whose training always raises"))
"""


@pytest.fixture
def restored_registries(monkeypatch):
    """The scenario and variant registries and the plugin record as they were before the test (the plugin adds to them)."""
    from unetgan_core import plugins
    from unetgan_core.scenarios import SCENARIOS
    from unetgan_core.training.augment import VARIANTS

    for registry in (SCENARIOS, VARIANTS):
        monkeypatch.setattr(registry, "_items", dict(registry._items))
    monkeypatch.setattr(plugins, "_IMPORTED", dict(plugins._IMPORTED))  # the record of imported plugins, too
    yield
    sys.modules.pop("dask_broken_plugin", None)


@pytest.mark.slow
def test_a_training_that_raises_fails_only_the_cells_that_need_it(
    address, tmp_path, monkeypatch, restored_registries
) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "dask_broken_plugin.py").write_text(BROKEN_PLUGIN, encoding="utf-8")
    monkeypatch.syspath_prepend(str(plugins))
    with distributed.Client(address) as client:  # the workers import the suite's plugin from there too
        client.run(lambda: __import__("sys").path.insert(0, str(plugins)))
    text = tiny_text(scenarios=("clean", "broken")).replace(
        "seeds = [0]", 'seeds = [0]\nplugins = ["dask_broken_plugin"]'
    )
    suite = tmp_path / "tiny.toml"
    suite.write_text(text, encoding="utf-8")

    assert _run_dask(address, suite, tmp_path / "run", tmp_path / "store") == 1

    assert sorted((r["scenario"], r["vendor"]) for r in _rows(tmp_path / "run")) == [
        ("clean", "philips"),
        ("clean", "siemens"),
    ]
    log = (tmp_path / "run" / "logs" / "errors.log").read_text(encoding="utf-8")
    assert log.count("--- segmentation") == 2 and 'raise RuntimeError("broken augmentation")' in log
    assert "Traceback" in log


def test_an_interrupted_client_leaves_a_run_that_resumes(address, tmp_path, monkeypatch, capsys) -> None:
    suite = _tiny(tmp_path)
    record = Runner.record
    calls: list[int] = []

    def interrupt_after_the_first(self, measured):
        if calls:
            raise KeyboardInterrupt
        calls.append(1)
        return record(self, measured)

    monkeypatch.setattr(Runner, "record", interrupt_after_the_first)
    assert _run_dask(address, suite, tmp_path / "run", tmp_path / "store") == 130
    assert len(_rows(tmp_path / "run")) == 1
    assert "interrupted; run the same command again to resume" in capsys.readouterr().err

    monkeypatch.setattr(Runner, "record", record)
    assert _run_dask(address, suite, tmp_path / "run", tmp_path / "store") == 0
    ids = [r["cell_id"] for r in _rows(tmp_path / "run")]
    assert len(ids) == len(set(ids)) == 3


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    return err


def test_an_unreachable_scheduler_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(dask_executor, "CONNECT_TIMEOUT_S", 2.0)
    code = _run_dask("tcp://127.0.0.1:9", _tiny(tmp_path), tmp_path / "run", tmp_path / "store")
    assert code == EXIT_BAD_INPUT
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in _one_line_error(capsys)
    assert not (tmp_path / "run").exists()  # refused before the run folder is made


def test_a_store_the_workers_cannot_see_is_refused_before_submitting(address, tmp_path, monkeypatch, capsys) -> None:
    # The probe file goes to a folder the workers are not asked about, as if the client's --cache were a local
    # disk of its own: the workers (real processes) look for it at the store's path and do not find it.
    elsewhere = tmp_path / "client_only"
    original = dask_executor.write_probe
    monkeypatch.setattr(dask_executor, "write_probe", lambda root, token: original(elsewhere, token))
    code = _run_dask(address, _tiny(tmp_path), tmp_path / "run", tmp_path / "store")
    assert code == EXIT_BAD_INPUT
    err = _one_line_error(capsys)
    assert f"2 of 2 Dask workers cannot use the artifact store {tmp_path / 'store'}" in err
    assert not (tmp_path / "run").exists()


def test_workers_running_other_code_are_refused(address, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(dask_executor.manifest, "git_state", lambda: ("f" * 40, False))
    code = _run_dask(address, _tiny(tmp_path), tmp_path / "run", tmp_path / "store")
    assert code == EXIT_BAD_INPUT
    assert f"this client 0.1.0 at commit {'f' * 40}; install the same code on every worker" in _one_line_error(capsys)


def test_tasks_declare_a_gpu_or_their_training_threads() -> None:
    assert dask_executor.resources("unet", "cuda", 4) == {"GPU": 1}
    assert dask_executor.resources("segmentation", "cuda", 4) == {"GPU": 1}
    assert dask_executor.resources("translator", "cpu", 3) == {"threads": 3}
    assert dask_executor.resources("fgsm", "cpu", 3) is None


def test_the_scheduler_address_comes_from_the_flag_or_the_environment(monkeypatch) -> None:
    monkeypatch.setenv(dask_executor.SCHEDULER_ENV, "tcp://env:8786")
    assert dask_executor.scheduler_address("tcp://flag:8786") == "tcp://flag:8786"
    assert dask_executor.scheduler_address(None) == "tcp://env:8786"
    monkeypatch.delenv(dask_executor.SCHEDULER_ENV)
    assert dask_executor.scheduler_address(None) is None


def test_scheduler_needs_the_dask_executor(capsys) -> None:
    assert main(["run", "smoke", "--scheduler", "tcp://x:1"]) == EXIT_BAD_INPUT
    assert _one_line_error(capsys) == "error: --scheduler: only with --executor dask"
