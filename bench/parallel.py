"""Train a run's missing models side by side in worker processes.

Training tasks are pure functions of their config and write content-addressed artifacts (see
``plan`` and ``store``), so independent ones can run in any process. ``train_missing`` runs them
in a local process pool, each with the suite's ``train_threads`` CPU threads, starting each task as
soon as a worker is free and the models it reads are trained: the Unets that translators read come
first, and translators fill the workers while the remaining Unets train, so no core waits for the
slowest Unet of a level. A distributed engine (Dask, ``bench.dask_executor``) submits the same
``Runner.artifact`` calls for larger suites.

On a 2-core CPU two single-thread trainings finish about 1.8 times sooner than one after the
other on two threads each (small convolutions do not split well across threads), and because
each task's thread count is fixed by the suite, the weights are the same for any ``--jobs``.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import dataclasses
import multiprocessing
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from tqdm.auto import tqdm

from unetgan_bench.bench.plan import Plan, Task
from unetgan_bench.bench.store import ArtifactStore
from unetgan_bench.bench.suite import Suite
from unetgan_core.errors import UserError

LEVELS = ("unet", "translator")  # a translator reads a trained Unet, so Unets come first


@dataclasses.dataclass(frozen=True)
class TrainingFailure:
    """A training task that raised in a worker, carried back to the cell that needs its model.

    Args:
        key: the task's key.
        error_type: the exception's class name, e.g. ``"RuntimeError"``.
        message: the exception's message, as raised.
        details: the worker's traceback, for ``logs/errors.log``.
        user_error: the exception was a ``UserError`` (bad input; the run stops with exit 2).
    """

    key: str
    error_type: str
    message: str
    details: str
    user_error: bool

    @classmethod
    def of(cls, key: str, exc: BaseException) -> TrainingFailure:
        """The failure of training ``key`` by raising ``exc`` (call inside the ``except`` block)."""
        return cls(key, type(exc).__name__, str(exc), traceback.format_exc(), isinstance(exc, UserError))

    def summary(self) -> str:
        """``"<ExceptionType>: <message>"``."""
        return f"{self.error_type}: {self.message}"


class TrainingFailed(RuntimeError):
    """Raised where a cell needs a model whose training failed in a worker."""

    def __init__(self, failure: TrainingFailure) -> None:
        super().__init__(failure.summary())
        self.details = failure.details


class TrainingHost(Protocol):
    """What ``train_missing`` needs of a runner (``bench.runner.Runner`` is one)."""

    suite: Suite
    run_dir: Path
    device: str
    store: ArtifactStore
    plan: Plan
    progress: bool

    def artifact(self, task: Task) -> Path: ...

    def training_data(self, task: Task) -> dict[str, Any]: ...

    def stage_clock(self, kind: str) -> contextlib.AbstractContextManager[None]: ...


# Builds a worker's runner: (suite, run_dir, device, store, progress) -> host. The runner's class itself.
HostFactory = Callable[..., TrainingHost]


def default_jobs(device: str, train_threads: int) -> int:
    """Trainings to run at once: every usable core busy on CPU; one on a GPU (they would share it)."""
    if device != "cpu":
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, cores // train_threads)


def needed_training(runner: TrainingHost, cells: list[Task]) -> set[str]:
    """Keys of the training tasks that ``cells`` read, directly or through another training task."""
    kinds = {t.key: t for t in runner.plan.tasks if t.kind in LEVELS}
    needed: set[str] = set()
    stack = [d for cell in cells for d in cell.deps]
    while stack:
        key = stack.pop()
        if key in kinds and key not in needed:
            needed.add(key)
            stack.extend(kinds[key].deps)
    return needed


# -- worker side -------------------------------------------------------------------------------------------------
_WORKER: TrainingHost | None = None


def _exit_with_parent(parent: int, every_s: float = 1.0) -> None:
    """End this worker once its parent is gone (killed with ``kill -9``, say) instead of idling forever."""
    while os.getppid() == parent:
        time.sleep(every_s)
    os._exit(1)  # an unfinished artifact stays in its temporary folder and is never used


def _start_worker(
    factory: HostFactory, suite: Suite, run_dir: Path, device: str, store_root: Path, parent: int
) -> None:
    global _WORKER
    # Ctrl-C reaches the whole process group; the parent decides what stops (see ``_stop``).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # tqdm's default lock is a multiprocessing RLock, a named semaphore in a spawned process; a worker
    # terminated on Ctrl-C could not release it and the resource tracker would warn. A thread lock does.
    tqdm.set_lock(threading.RLock())
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True, name="parent-watch").start()
    _WORKER = factory(suite, run_dir, device, ArtifactStore(store_root), progress=False)


def _train_in_worker(key: str) -> TrainingFailure | None:
    assert _WORKER is not None, "worker not started"
    try:
        _WORKER.artifact(_WORKER.plan.task(key))
    except Exception as exc:  # carried back and raised where a cell needs this model
        return TrainingFailure.of(key, exc)
    return None


# -- main side ---------------------------------------------------------------------------------------------------
def _stop(pool: cf.ProcessPoolExecutor) -> None:
    """Cancel what has not started and end the running workers (their unfinished artifacts are never used)."""
    for process in list((getattr(pool, "_processes", None) or {}).values()):  # no public way before Python 3.14
        process.terminate()
    # The pool's own thread sees the workers gone and fails their futures; this returns once it has.
    pool.shutdown(wait=True, cancel_futures=True)


def _priority(tasks: list[Task]) -> list[Task]:
    """``tasks`` in the order to start them: those that others read first (most readers first), then by level,
    then in plan order."""
    readers = {t.key: 0 for t in tasks}
    for t in tasks:
        for d in t.deps:
            if d in readers:
                readers[d] += 1
    place = {t.key: i for i, t in enumerate(tasks)}
    return sorted(tasks, key=lambda t: (-readers[t.key], LEVELS.index(t.kind), place[t.key]))


def train_missing(runner: TrainingHost, cells: list[Task], jobs: int) -> dict[str, TrainingFailure]:
    """Train, ``jobs`` at a time, every model that ``cells`` need and the store lacks.

    With ``jobs <= 1`` nothing happens here: the runner trains each model when a cell first
    needs it, in its own process. The data the trainings read is loaded (and cached on disk)
    here first, so the workers never render the same phantom images twice. A task starts when a
    worker is free and every model it reads is trained (``_priority`` picks among those ready);
    a task whose input failed fails with it. Each kind's stage clock runs from its first task's
    start to its last one's end, so the two training stages may overlap.

    Args:
        runner: the run's runner (its plan, store, device, stage clock); each worker process
            builds one of the same class.
        cells: the cells still to measure.
        jobs: worker processes.

    Returns:
        key -> failure, for trainings that raised; ``Runner.artifact`` raises them for the
        cells that need those models.
    """
    needed = needed_training(runner, cells)
    todo = [
        t
        for kind in LEVELS
        for t in runner.plan.of_kind(kind)
        if t.key in needed and not runner.store.exists(kind, t.key)
    ]
    if jobs <= 1 or len(todo) <= 1:
        return {}
    for task in todo:
        runner.training_data(task)
    failures: dict[str, TrainingFailure] = {}
    context = multiprocessing.get_context("spawn")  # a forked torch process can deadlock in OpenMP
    init = (type(runner), runner.suite, runner.run_dir, runner.device, runner.store.root, os.getpid())
    pool = cf.ProcessPoolExecutor(jobs, mp_context=context, initializer=_start_worker, initargs=init)
    bar = tqdm(total=len(todo), desc=f"training models ({jobs} at once)", disable=not runner.progress)
    try:
        with contextlib.ExitStack() as clocks:
            _train_ready_first(runner, pool, _priority(todo), jobs, failures, clocks, bar)
    except cf.process.BrokenProcessPool as exc:
        # A worker died (killed, out of memory): what it did not finish trains in this process.
        tqdm.write(f"warning: a training worker died ({exc}); the remaining models train one at a time")
    except BaseException:
        # Ctrl-C (or any error here): stop the workers now rather than finish every queued training first.
        bar.close()
        _stop(pool)
        raise
    bar.close()
    pool.shutdown(wait=True)
    return failures


def _train_ready_first(
    runner: TrainingHost,
    pool: cf.ProcessPoolExecutor,
    waiting: list[Task],
    jobs: int,
    failures: dict[str, TrainingFailure],
    clocks: contextlib.ExitStack,
    bar: tqdm,
) -> None:
    """Run ``waiting`` (in priority order) on ``pool``, at most ``jobs`` at once, each once its inputs are trained."""
    pending = {t.key for t in waiting}
    left = {kind: sum(t.kind == kind for t in waiting) for kind in LEVELS}
    stage: dict[str, contextlib.ExitStack] = {}
    running: dict[cf.Future, Task] = {}

    def finished(task: Task) -> None:
        pending.discard(task.key)
        left[task.kind] -= 1
        if not left[task.kind] and task.kind in stage:
            stage.pop(task.kind).close()
        bar.update(1)

    while waiting or running:
        for task in [t for t in waiting if any(d in failures for d in t.deps)]:
            broken = next(d for d in task.deps if d in failures)
            failures[task.key] = dataclasses.replace(failures[broken], key=task.key)
            waiting.remove(task)
            finished(task)
        for task in [t for t in waiting if not any(d in pending for d in t.deps)][: jobs - len(running)]:
            if task.kind not in stage:
                stage[task.kind] = clocks.enter_context(contextlib.ExitStack())
                stage[task.kind].enter_context(runner.stage_clock(task.kind))
            waiting.remove(task)
            running[pool.submit(_train_in_worker, task.key)] = task
        if not running:
            break
        done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
        for future in done:
            task = running.pop(future)
            failure = future.result()
            if failure is not None:
                failures[failure.key] = failure
                tqdm.write(f"error: training {task.kind} {failure.key}: {failure.summary()}")
            finished(task)
