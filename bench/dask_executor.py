"""Run a suite's task graph on a Dask cluster (``unetgan-bench run SUITE --executor dask``).

The executor submits every training task and every measured cell as a Dask task whose
dependencies are the futures of the trainings it reads, so each starts as soon as its inputs
exist. Workers call the same ``Runner.artifact`` and ``Runner.measure`` as the local executor
(``bench.runner.LocalExecutor``): trainings write their artifact into the shared store (atomic
rename; one that exists is not trained again), and cells return their rows and files, which
only this process (the client) writes into the run folder, one cell at a time.

Before submitting anything, ``connect`` checks that every worker sees the artifact store (a
probe file written here must be readable there), runs this package's version and commit, has
one thread (torch's thread count is per process), and offers the resources the tasks declare:
``GPU=1`` per task on a GPU, ``threads=<train_threads>`` per CPU training. Dask distributes,
retries tasks of a lost worker and cancels; nothing here schedules.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from unetgan_bench.bench import manifest
from unetgan_bench.bench.parallel import LEVELS, TrainingFailure, needed_training
from unetgan_bench.bench.plan import Task
from unetgan_bench.bench.runner import Measured, Outcome, Runner
from unetgan_bench.bench.store import ArtifactStore
from unetgan_bench.bench.suite import Suite
from unetgan_core.errors import UserError

SCHEDULER_ENV = "UNETGAN_DASK_SCHEDULER"
CONNECT_TIMEOUT_S = 15.0
THREADS = "threads"  # worker resource: CPU threads a training may use
GPU = "GPU"  # worker resource: GPUs


@dataclasses.dataclass(frozen=True)
class WorkerJob:
    """What a worker needs to rebuild the run's ``Runner``; ``token`` names the run (one Runner per worker)."""

    suite: Suite
    run_dir: Path
    device: str
    store_root: Path
    eval_threads: int
    token: str
    cells: Any = None  # a distributed.Semaphore: CPU cells measured at once, so their threads fit the cores


@dataclasses.dataclass
class Done:
    """A task's result: its key, its failure (None if it succeeded), its rows and files (a cell), seconds spent."""

    key: str
    failure: TrainingFailure | None = None
    measured: Measured | None = None
    seconds: float = 0.0


# -- worker side -------------------------------------------------------------------------------------------------
_RUNNERS: dict[str, Runner] = {}


def _runner(job: WorkerJob) -> Runner:
    from unetgan_core.device import cpu_threads

    if job.token not in _RUNNERS:
        _RUNNERS.clear()  # one run at a time per worker process: drop the data and models of an earlier one
        with cpu_threads(job.eval_threads):  # rows record the measuring thread count, as the client's would
            runner = Runner(job.suite, job.run_dir, job.device, ArtifactStore(job.store_root), progress=False)
        _RUNNERS[job.token] = runner
    return _RUNNERS[job.token]


def _failure(key: str, exc: BaseException) -> TrainingFailure:
    """``TrainingFailure.of`` keeping a training's own traceback when ``exc`` carries one (``TrainingFailed``)."""
    failure = TrainingFailure.of(key, exc)
    details = getattr(exc, "details", None)
    return dataclasses.replace(failure, details=details) if details else failure


def train_task(job: WorkerJob, key: str, *deps: Done) -> Done:
    """Train task ``key`` into the store; a task whose input failed fails the same way without running."""
    broken = next((d.failure for d in deps if d.failure is not None), None)
    if broken is not None:
        return Done(key, dataclasses.replace(broken, key=key))
    runner = _runner(job)
    start = time.perf_counter()
    try:
        runner.artifact(runner.plan.task(key))
    except Exception as exc:  # carried to the cells that need this model, as in the local executor
        return Done(key, _failure(key, exc), seconds=time.perf_counter() - start)
    return Done(key, seconds=time.perf_counter() - start)


def measure_task(job: WorkerJob, key: str, *deps: Done) -> Done:
    """Measure cell ``key`` with the client's torch thread count (so its numbers match the local executor's)."""
    from unetgan_core.device import cpu_threads

    runner = _runner(job)
    runner.note_failures({d.key: d.failure for d in deps if d.failure is not None})
    start = time.perf_counter()
    try:
        with job.cells or contextlib.nullcontext(), cpu_threads(job.eval_threads):
            measured = runner.measure(runner.plan.task(key))
    except Exception as exc:
        return Done(key, _failure(key, exc), seconds=time.perf_counter() - start)
    return Done(key, measured=measured, seconds=time.perf_counter() - start)


def _sees_probe(path: str, token: str) -> str | None:
    """On a worker: None if ``path`` holds ``token`` and its folder is writable, else what is wrong."""
    try:
        found = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    if found != token:
        return "another file of that name"
    return None if os.access(Path(path).parent, os.W_OK) else "not writable"


def code_version() -> tuple[str | None, str | None]:
    """(package version, git commit) of the code this process runs."""
    from importlib import metadata

    try:
        version = metadata.version("unetgan-bench")
    except metadata.PackageNotFoundError:
        version = None
    return version, manifest.git_state()[0]


# -- client side -------------------------------------------------------------------------------------------------
def write_probe(root: Path, token: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / f".dask-probe-{token}"
    path.write_text(token, encoding="utf-8")
    return path


def check_workers(client, store_root: Path, needs: dict[str, float]) -> int:
    """Refuse (``UserError``) a cluster that cannot run this suite; returns its number of workers.

    Args:
        client: a connected ``distributed.Client``.
        store_root: the artifact store, which every worker must read and write at the same path.
        needs: the largest amount of each worker resource one task declares.

    Returns:
        The workers' total ``threads`` resource (CPU threads for this suite's tasks).
    """
    workers = client.scheduler_info(n_workers=-1)["workers"]
    if not workers:
        raise UserError("the Dask cluster has no workers; start some (docs/dask.md)")
    many = sorted(a for a, w in workers.items() if w.get("nthreads", 1) != 1)
    if many:
        raise UserError(
            f"Dask worker {many[0]} has {workers[many[0]]['nthreads']} threads; start workers with --nthreads 1 "
            "(torch's thread count is per process; use --nworkers for more)"
        )
    for name, amount in needs.items():
        if not any(w.get("resources", {}).get(name, 0) >= amount for w in workers.values()):
            raise UserError(
                f"no Dask worker offers the resource {name}={amount:g} that this suite's tasks need; "
                f'start workers with --resources "{name}={amount:g}" (docs/dask.md)'
            )
    token = uuid.uuid4().hex
    probe = write_probe(store_root, token)
    try:
        seen = client.run(_sees_probe, str(store_root / f".dask-probe-{token}"), token)
    finally:
        probe.unlink(missing_ok=True)
    blind = {a: why for a, why in sorted(seen.items()) if why is not None}
    if blind:
        address, why = next(iter(blind.items()))
        raise UserError(
            f"{len(blind)} of {len(seen)} Dask workers cannot use the artifact store {store_root} "
            f"(worker {address}: {why}); put it on a file system every worker mounts at that path (--cache)"
        )
    here = code_version()
    for address, theirs in sorted(client.run(code_version).items()):
        if tuple(theirs) != here:
            raise UserError(
                f"Dask worker {address} runs unetgan-bench {theirs[0]} at commit {theirs[1]}, this client "
                f"{here[0]} at commit {here[1]}; install the same code on every worker"
            )
    return int(sum(w.get("resources", {}).get(THREADS, 0) for w in workers.values()))


def resources(kind: str, device: str, train_threads: int) -> dict[str, float] | None:
    """The worker resources a task of ``kind`` declares: a GPU on a GPU; ``train_threads`` for a CPU training."""
    if device != "cpu":
        return {GPU: 1}
    return {THREADS: train_threads} if kind in LEVELS else None


@dataclasses.dataclass
class DaskExecutor:
    """Runs a run's tasks on the cluster of ``client`` (``bench.runner.Executor``)."""

    client: Any
    name: str = "dask"
    cpu_threads: int = 1  # the workers' total ``threads`` resource

    def cell_semaphore(self, device: str, eval_threads: int):
        """On a CPU: a Dask semaphore letting as many cells run at once as ``eval_threads`` fit the workers'
        threads (at least one), since each uses the client's thread count; None on a GPU (``GPU`` resource)."""
        from distributed import Semaphore

        if device != "cpu":
            return None
        return Semaphore(max_leases=max(1, self.cpu_threads // eval_threads), name=f"unetgan-cells-{uuid.uuid4().hex}")

    def execute(self, runner: Runner, cells: list[Task]) -> Outcome:
        import torch
        from distributed import as_completed

        threads_now = torch.get_num_threads()
        job = WorkerJob(
            runner.suite,
            runner.run_dir,
            runner.device,
            runner.store.root,
            threads_now,
            uuid.uuid4().hex,
            self.cell_semaphore(runner.device, threads_now),
        )
        threads = runner.suite.suite.train_threads
        submitted: dict[str, Any] = {}  # task key -> future
        tasks = {t.key: t for t in runner.plan.tasks}

        def submit(task: Task, fn) -> Any:
            deps = [submitted[d] for d in task.deps if d in submitted]
            # A training's Dask key is its artifact key (the same work in any run); a cell's is this run's.
            name = f"{task.kind}-{task.key}" if task.kind in LEVELS else f"cell-{job.token}-{task.key}"
            future = self.client.submit(
                fn, job, task.key, *deps, key=name, resources=resources(task.kind, runner.device, threads)
            )
            submitted[task.key] = future
            return future

        needed = needed_training(runner, cells)
        for task in runner.plan.tasks:  # plan order: every training after the trainings it reads
            if task.key in needed and not runner.store.exists(task.kind, task.key):
                submit(task, train_task)
        outcome = Outcome()
        # Throughput cells time the hardware: they run once everything else is done, not beside trainings.
        first = [t for t in cells if t.kind != "throughput"]
        last = [t for t in cells if t.kind == "throughput"]
        bars = _Bars(runner, [tasks[k].kind for k in submitted], len(cells))
        try:
            for group in (first, last):
                futures = [submit(t, measure_task) for t in group]
                if group is first:
                    futures = list(submitted.values())
                for future in as_completed(futures):
                    self._collect(runner, tasks, future, outcome, bars)
        except BaseException:
            # Ctrl-C or a bad-input error: stop queued and running tasks; rows so far stay, the run resumes.
            self.client.cancel(list(submitted.values()))
            raise
        finally:
            bars.close()
        return outcome

    def _collect(self, runner: Runner, tasks: dict[str, Task], future, outcome: Outcome, bars: _Bars) -> None:
        key = future.key.rsplit("-", 1)[-1]
        task = tasks[key]
        bars.update(task.kind)
        if future.status != "finished":  # raised outside the task (a worker lost too often: KilledWorker)
            exc = future.exception()
            details = "".join(traceback.format_exception(type(exc), exc, future.traceback()))
            failure = TrainingFailure(key, type(exc).__name__, str(exc), details, False)
        else:
            done: Done = future.result()
            runner.stages[_stage(task.kind)] = runner.stages.get(_stage(task.kind), 0.0) + done.seconds
            failure = done.failure
            if failure is None and done.measured is not None:
                outcome.add(runner.record(done.measured))
                return
        if failure is None:
            return
        if failure.user_error:
            raise UserError(failure.message)
        if task.kind in LEVELS:
            tqdm.write(f"error: training {task.kind} {key}: {failure.summary()}")
        else:
            outcome.failed.append(runner.log_failure(task, failure.summary(), failure.details))


def _stage(kind: str) -> str:
    from unetgan_bench.bench.runner import STAGE_OF

    return STAGE_OF[kind]


class _Bars:
    """One progress bar per stage (Unet training, translator training, cells), fed by completed futures."""

    def __init__(self, runner: Runner, training_kinds: list[str], cells: int) -> None:
        totals = {kind: training_kinds.count(kind) for kind in LEVELS}
        totals["cells"] = cells
        label = {"unet": "training unet models", "translator": "training translator models"}
        label["cells"] = f"{runner.suite.name}: cells"
        self.bars = {
            kind: tqdm(total=n, desc=f"{label[kind]} (dask)", position=i, disable=not runner.progress or not n)
            for i, (kind, n) in enumerate(totals.items())
        }

    def update(self, kind: str) -> None:
        self.bars[kind if kind in LEVELS else "cells"].update(1)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def scheduler_address(flag: str | None) -> str | None:
    """``--scheduler``, else ``$UNETGAN_DASK_SCHEDULER``, else None (a local cluster)."""
    return flag or os.environ.get(SCHEDULER_ENV) or None


@contextlib.contextmanager
def connect(
    address: str | None, store_root: Path, device: str, train_threads: int, workers: int
) -> Iterator[DaskExecutor]:
    """A checked ``DaskExecutor`` on the scheduler at ``address``, or on a ``LocalCluster`` of ``workers``
    single-thread worker processes (each offering ``threads=train_threads``, or ``GPU=1`` on a GPU).

    Raises:
        UserError: the scheduler cannot be reached, or ``check_workers`` refuses the cluster.
    """
    import logging

    from distributed import Client, LocalCluster

    store_root = Path(store_root).absolute()
    cluster = None
    if address is None:
        offer = {GPU: 1} if device != "cpu" else {THREADS: train_threads}
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            resources=offer,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
        client = Client(cluster)
    else:
        try:
            client = Client(address, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError, ValueError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise UserError(f"cannot reach the Dask scheduler at {address} ({reason})") from None
    try:
        needs = resources("unet", device, train_threads) or {}
        threads = check_workers(client, store_root, needs)
        where = address or f"a local cluster of {workers} worker processes"
        yield DaskExecutor(client, name=f"dask ({where})", cpu_threads=threads)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
