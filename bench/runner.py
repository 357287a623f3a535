"""Run a suite: execute its task graph into a run folder.

The run folder holds ``results.jsonl`` (append only), ``per_image/``, ``manifest.json``,
``logs/``, ``figures/``, ``tables/`` and ``report.html``. Trained models live in the shared
artifact store, keyed by content hash, so a rerun or another suite reuses them. A run
killed at any moment and started again measures only the cells that have no row yet.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import json
import os
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

from tqdm.auto import tqdm

from unetgan_bench.bench import manifest as manifest_mod
from unetgan_bench.bench import parallel, steps
from unetgan_bench.bench.plan import Plan, Task, build_plan
from unetgan_bench.bench.provenance import suite_provenance
from unetgan_bench.bench.registries import open_source
from unetgan_bench.bench.results import ResultsFile
from unetgan_bench.bench.rows import Provenance, build_row, describe_commit, resolved_config
from unetgan_bench.bench.store import ArtifactStore
from unetgan_bench.bench.suite import Suite
from unetgan_bench.reports import rundir
from unetgan_core.errors import UserError
from unetgan_core.training.health import FAILED as FAILED_TRAINING
from unetgan_core.training.health import OK as TRAINING_OK

STAGE_OF = {
    "unet": "unet_training",
    "translator": "translator_training",
    "segmentation": "evaluation",
    "fgsm": "attacks",
    "corruption": "corruptions",
    "throughput": "throughput",
}

# The data keys in a training task's config, by task kind.
TRAINING_DATA = {"unet": ("train", "val"), "translator": ("source_train", "source_val", "target_train", "target_val")}


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``run_dir``; a second run into it is refused.

    The lock is an ``flock`` on ``run_dir/.lock``: the kernel releases it when the process
    dies, even by ``kill -9``, so a stale lock never blocks a restart.
    """
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"{run_dir}: exists and is not a folder; give --out a folder")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(run_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise UserError(f"{run_dir}: cannot create the run folder ({exc.strerror})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise UserError(
                f"{run_dir}: another run (pid {holder}) is writing to this folder; wait for it or use --out"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


@dataclasses.dataclass
class Measured:
    """What measuring one cell gives, before anything is written: its rows, and the per-image scores (a
    segmentation cell) or panel data (an FGSM cell's Fig. 1 panels, a corruption cell's examples) that go with them."""

    rows: list[dict[str, Any]]
    per_image: Any = None  # pandas DataFrame
    panels: dict[str, Any] | None = None
    panel_path: str | None = None  # where ``panels`` go, relative to the run folder


@dataclasses.dataclass
class Outcome:
    """What an executor did with a run's cells: failed cells (one line each) and failed-training reasons."""

    failed: list[str] = dataclasses.field(default_factory=list)
    unhealthy: set[str] = dataclasses.field(default_factory=set)

    def add(self, rows: list[dict[str, Any]]) -> None:
        """Note the failed-training status of a recorded cell's rows."""
        self.unhealthy.update(r["status_reason"] for r in rows if r.get("status") == FAILED_TRAINING)


class Executor(Protocol):
    """Trains what a run's cells need and measures them (``LocalExecutor``; ``bench.dask_executor``)."""

    name: str

    def execute(self, runner: Runner, cells: list[Task]) -> Outcome:
        """Measure ``cells``, recording each through ``runner.record`` or ``runner.log_failure``."""
        ...


@dataclasses.dataclass
class LocalExecutor:
    """Trainings ``jobs`` at a time in a local process pool (``bench.parallel``), then cells one by one here."""

    jobs: int = 1
    name: str = "local"

    def execute(self, runner: Runner, cells: list[Task]) -> Outcome:
        runner.train_for(cells)
        outcome = Outcome()
        bar = tqdm(cells, desc=f"{runner.suite.name}: cells", unit="cell", disable=not runner.progress)
        for task in bar:
            bar.set_postfix_str(f"{task.kind} {task.config.get('scenario', '')} {task.config.get('vendor', '') or ''}")
            try:
                measured = runner.measure(task)
            except UserError:
                raise
            except Exception as exc:  # one broken cell must not lose the others; the run exits 1
                details = getattr(exc, "details", None) or traceback.format_exc()
                outcome.failed.append(runner.log_failure(task, f"{type(exc).__name__}: {exc}", details))
                continue
            outcome.add(runner.record(measured))
        return outcome


@dataclasses.dataclass
class RunResult:
    run_dir: Path
    report: Path | None
    measured: int
    skipped: int
    failed: list[str]


class Runner:
    """Executes a plan; holds the data and models loaded so far (per process)."""

    def __init__(
        self,
        suite: Suite,
        run_dir: Path,
        device: str,
        store: ArtifactStore,
        progress: bool,
        jobs: int = 1,
        executor: Executor | None = None,
    ) -> None:
        self.suite = suite
        self.jobs = jobs
        self.executor = executor or LocalExecutor(jobs)
        self.run_dir = run_dir
        self.device = device
        self.store = store
        self.progress = progress
        self.source = open_source(suite, suite.path)
        self.plan: Plan = build_plan(suite, self.source)
        self.results = ResultsFile(run_dir / rundir.RESULTS)
        self.provenance = Provenance.current(device)
        self.started = time.time()
        # What outside code this run measures (external model files, plugins), for the manifest and report.
        self.audited = suite_provenance(suite)
        self.stages: dict[str, float] = {}
        self._data: dict[str, Any] = {}
        self._models: dict[str, Any] = {}
        self._failed: dict[str, parallel.TrainingFailure] = {}

    # -- inputs -------------------------------------------------------------------------
    def data(self, key: str):
        """The SliceSet whose DataRef key is ``key`` (loaded once per process)."""
        if key not in self._data:
            ref = next(r for r in self.plan.data.values() if r.key == key)
            with self.timed("data"):
                self._data[key] = self.source.load(ref.vendor, list(ref.subjects))
        return self._data[key]

    def data_ref(self, vendor: str, split: str):
        return self.plan.data[(vendor, split)]

    def artifact(self, task: Task, read: Callable[[Path], Any] | None = None) -> Any:
        """The artifact folder of a training task, training it first if needed; or ``read(folder)``.

        With ``read``, an artifact it rejects as corrupt is trained again (``ArtifactStore.open``).
        """
        failure = self._failed.get(task.key)
        if failure is not None:  # it already failed in a worker process: do not train it twice
            if failure.user_error:
                raise UserError(failure.message)
            raise parallel.TrainingFailed(failure)
        make = functools.partial(self._train, task)
        if read is None:
            return self.store.build(task.kind, task.key, make)
        return self.store.open(task.kind, task.key, make, read)

    def training_data(self, task: Task) -> dict[str, Any]:
        """The slices a training task reads, by their name in its config (loaded once per process)."""
        return {name: self.data(task.config[name]) for name in TRAINING_DATA[task.kind]}

    def _train(self, task: Task, out: Path) -> None:
        with self.timed(STAGE_OF[task.kind]):
            data = self.training_data(task)
            if task.kind == "unet":
                steps.train_unet(task, data["train"], data["val"], out, self.device, self.progress)
            else:
                steps.train_translator(task, self.model(task.config["unet"]), data, out, self.device, self.progress)

    def train_for(self, cells: list[Task]) -> None:
        """Train the models ``cells`` need, ``jobs`` at a time (``bench.parallel``); failures are kept for the cells."""
        self.note_failures(parallel.train_missing(self, cells, self.jobs))

    def note_failures(self, failures: dict[str, parallel.TrainingFailure]) -> None:
        """Remember trainings that failed in another process; ``artifact`` raises them for the cells that need them."""
        self._failed.update(failures)

    def model(self, key: str):
        """The network of task ``key``, loaded once per process: a trained Unet or generator (trained first if
        needed; a corrupt checkpoint is rebuilt) or an external segmenter (``external`` task, as an ``nn.Module``)."""
        if key not in self._models:
            task = self.plan.task(key)
            if task.kind == "external":
                size = getattr(self.source, "size_px", 64)
                self._models[key] = steps.load_external_model(task, self.device, size)
            else:
                self._models[key] = self.artifact(task, self._load_model)
        return self._models[key]

    def _load_model(self, folder: Path):
        return steps.load_model(folder / "model.pt", self.device)

    def pipeline(self, spec: dict[str, Any]):
        """The pipeline of a cell's ``pipeline`` spec, built by its scenario from the models and data it names."""
        adapter = spec["adapter"] or {}
        return self.suite.scenario(spec["scenario"]).build_pipeline(
            self.model(spec["unet"]),
            generator=self.model(adapter["key"]) if "key" in adapter else None,
            fit_images=self.data(adapter["fit"]).images if "fit" in adapter else None,
        )

    def training_status(self, spec: dict[str, Any]) -> tuple[str, str]:
        """``("ok", "")`` or ``("failed_training", reason)`` for the trained models a pipeline uses.

        The Unet is checked first, then the translator (``training.health``); a model the suite did
        not train (an external segmenter) has no history and counts as ok.
        """
        from unetgan_core.training import training_status

        adapter = spec.get("adapter") or {}
        for role, kind, key in (("Unet", "unet", spec.get("unet")), ("translator", "translator", adapter.get("key"))):
            history = self.store.path(kind, key) / "history.json" if isinstance(key, str) else None
            if history is None or not history.is_file():
                continue
            record = json.loads(history.read_text(encoding="utf-8"))
            if "health" not in record:
                return "unchecked", f"{role}: trained before the health check existed"
            status, reason = training_status(record)
            if status != TRAINING_OK:
                return status, f"{role}: {reason}"
        return TRAINING_OK, ""

    def selection_of(self, spec: dict[str, Any]) -> str:
        adapter = spec["adapter"]
        if not adapter or adapter["kind"] != "translator":
            return "val"
        info = json.loads((self.store.path("translator", adapter["key"]) / "history.json").read_text())
        return info.get("selection", "unlabelled")

    def stage_clock(self, kind: str) -> contextlib.AbstractContextManager[None]:
        """Times work on tasks of ``kind`` into their stage (``STAGE_OF``)."""
        return self.timed(STAGE_OF[kind])

    @contextlib.contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.stages[stage] = self.stages.get(stage, 0.0) + time.perf_counter() - start

    # -- cells --------------------------------------------------------------------------
    def measure(self, task: Task) -> Measured:
        """The rows of one cell (``bench.rows``: one per segmentation cell, per eps, per corruption severity,
        per throughput setting) and
        the files that go with them; writes nothing, so any process may measure and this run's process
        ``record`` it."""
        cfg = task.config
        resolved = resolved_config(self.plan, task)

        def row(fields: dict[str, Any], metrics: dict[str, Any]) -> dict[str, Any]:
            return build_row(task, self.suite.name, self.device, resolved, self.provenance, fields, metrics)

        if task.kind == "throughput":
            with self.timed("throughput"):
                measured = steps.measure_throughput(task, self.device)
            return Measured([row(*rundir.throughput_fields(r)) for r in measured])

        pipeline = self.pipeline(cfg["pipeline"])
        test = self.data(cfg["test"])
        cell = {
            "scenario": cfg["scenario"],
            "vendor": cfg["vendor"],
            "role": cfg["role"],
            "seed": cfg["replicate"],
            "selection": self.selection_of(cfg["pipeline"]),
        }
        cell["status"], cell["status_reason"] = self.training_status(cfg["pipeline"])
        settings = self.suite.scenario(cfg["pipeline"]["scenario"]).settings
        if settings:
            cell["settings"] = dict(settings)
        if "fold" in cfg:
            cell["fold"] = cfg["fold"]
        if task.kind == "segmentation":
            with self.timed("evaluation"):
                per_image, metrics = steps.evaluate_segmentation(pipeline, test, cfg)
            relative = f"{rundir.PER_IMAGE}/{task.key}.csv"
            check = metrics.pop("fast_path")
            return Measured([row({**cell, "per_image": relative, "fast_path_check": check}, metrics)], per_image)
        if task.kind == "corruption":
            return self._measure_corruption(pipeline, test, cfg, row, cell)
        with self.timed("attacks"):
            rows, panels = steps.evaluate_attack(pipeline, test, cfg)
        tags = {"scenario": cfg["scenario"], "vendor": cfg["vendor"]}
        return Measured(
            [
                row({**cell, **{k: r[k] for k in ("attack", "eps", "target", "attack_note")}}, r["metrics"])
                for r in rows
            ],
            panels=None if panels is None else {**panels, **tags},
            panel_path=str(rundir.fgsm_panel_path("", **tags)),
        )

    def record(self, measured: Measured) -> list[dict[str, Any]]:
        """Write a measured cell into the run folder: its per-image CSV and panels, then its rows (last, so a
        cell with a row always has its files); returns the rows."""
        if measured.per_image is not None:
            path = self.run_dir / measured.rows[0]["per_image"]
            path.parent.mkdir(exist_ok=True)
            tmp = path.with_suffix(".tmp")
            measured.per_image.to_csv(tmp, index=False)
            tmp.replace(path)
        if measured.panels is not None:
            steps.save_panels(self.run_dir / measured.panel_path, measured.panels)
        self.results.append(measured.rows)
        return measured.rows

    def log_failure(self, task: Task, error: str, details: str) -> str:
        """Note a cell that failed with ``error`` (one line) in ``logs/errors.log`` with ``details`` (a
        traceback) and on stderr; returns the line for ``RunResult.failed``."""
        line = f"{task.kind} {task.key}: {error}"
        log = self.run_dir / "logs" / "errors.log"
        log.parent.mkdir(exist_ok=True)
        with open(log, "a", encoding="utf-8") as f:
            f.write(f"--- {task.kind} {task.key} {json.dumps(task.config, sort_keys=True)}\n")
            f.write(details)
        tqdm.write(f"error: {line} (traceback in {log})")
        return line

    def _measure_corruption(self, pipeline, test, cfg: dict[str, Any], row, cell: dict[str, Any]) -> Measured:
        """The rows of a ``corruption`` cell (one per severity); the first measured seed's cells keep panels."""
        with self.timed("corruptions"):
            rows, panels = steps.evaluate_corruption(pipeline, test, cfg)
        section = self.suite.corruptions
        keys = ("corruption", "severity", "level", "level_unit")
        measured = Measured([row({**cell, **{k: r[k] for k in keys}}, r["metrics"]) for r in rows])
        if panels is not None and cfg["replicate"] == (section.seeds or self.suite.suite.seeds)[0]:
            tags = {"scenario": cfg["scenario"], "vendor": cfg["vendor"], "corruption": cfg["corruption"]}
            measured.panels = {**panels, **tags}
            measured.panel_path = str(rundir.corruption_panel_path("", **tags))
        return measured

    def check_code(self, rows: list[dict[str, Any]], allow_mixed_commits: bool) -> None:
        """Refuse to add rows measured at another commit (or dirty state) than ``rows``, unless allowed.

        A resumed run would otherwise mix the results of two versions of the code in one folder
        without saying so. With ``allow_mixed_commits`` the rows are added; every row records
        its commit, and the report lists the commits its rows come from.
        """
        here = (self.provenance.commit, self.provenance.dirty)
        other = sorted({(r["commit"], r["dirty"]) for r in rows} - {here}, key=str)
        if other and not allow_mixed_commits:
            recorded = ", ".join(describe_commit(*state) for state in other)
            raise UserError(
                f"{self.run_dir}: holds rows measured at {recorded}, but this is {self.provenance.describe()}; "
                "pass --allow-mixed-commits to add rows of this commit anyway, or use another --out folder"
            )

    def run(self, allow_mixed_commits: bool = False) -> RunResult:
        """Measure every cell that has no row yet (module docstring); see :meth:`check_code`."""
        removed = self.results.repair()
        if removed:
            tqdm.write(f"note: dropped a partial last row ({removed} bytes) left by an interrupted run")
        existing = rundir.read_rows(self.run_dir, missing_ok=True)
        done = {row["cell_id"] for row in existing}
        cells = [t for t in self.plan.tasks if t.kind in rundir.KINDS]
        todo = [t for t in cells if t.key not in done]
        if todo:
            self.check_code(existing, allow_mixed_commits)
        self.write_manifest(finished=None)
        outcome = self.executor.execute(self, todo)
        failed = outcome.failed
        for reason in sorted(outcome.unhealthy):
            tqdm.write(f"warning: failed training ({reason}); its cells are marked failed_training in the report")
        if not todo:
            tqdm.write(f"all {len(cells)} cells already measured in {self.run_dir}")
        for subject, reason in getattr(self.source, "skipped", []):
            tqdm.write(f"skipped subject {subject}: {reason}")
        for subject, reason in getattr(self.source, "unused_labels", []):
            tqdm.write(f"warning: labels left out for {subject}: {reason}")
        return RunResult(self.run_dir, None, len(todo) - len(failed), len(cells) - len(todo), failed)

    def write_manifest(self, finished: float | None) -> None:
        """(Re)write ``manifest.json``: the run so far, or finished at ``finished`` (seconds since the epoch)."""
        manifest_mod.write(
            self.run_dir,
            self.suite,
            device=self.device,
            jobs=self.jobs,
            executor=self.executor.name,
            stages=self.stages,
            source=self.source,
            artifact_store=self.store.root,
            code=self.provenance.fields(),
            started=self.started,
            finished=finished,
            audited=self.audited,
        )


def run_suite(
    suite: Suite,
    run_dir: Path,
    device: str = "cpu",
    store: ArtifactStore | None = None,
    progress: bool = True,
    report: bool = True,
    jobs: int = 1,
    allow_mixed_commits: bool = False,
    executor: Executor | None = None,
) -> RunResult:
    """Run ``suite`` into ``run_dir`` (resuming what is there) and render its report.

    ``jobs`` trainings run at once in worker processes (``bench.parallel``); 1 trains each model
    in this process when a cell first needs it. ``executor`` replaces that local executor, e.g. by a
    ``bench.dask_executor.DaskExecutor``. The results are the same either way.
    ``allow_mixed_commits`` lets a resumed run add rows at another commit than the folder's
    rows (``Runner.check_code``).
    """
    from unetgan_core.device import resolve_device

    resolved = str(resolve_device(device))
    run_dir = Path(run_dir)
    with run_lock(run_dir):
        runner = Runner(suite, run_dir, resolved, store or ArtifactStore(), progress, jobs, executor)
        previous = rundir.read_manifest(run_dir)
        if previous and previous.get("suite_config") != suite.resolved():
            raise UserError(f"{run_dir}: holds a run of a different suite configuration; use another --out folder")
        result = runner.run(allow_mixed_commits)
        with runner.timed("figures"):
            steps.write_figures(runner)
            steps.write_loss_terms(runner)
        runner.write_manifest(finished=time.time())
        if report:
            from unetgan_bench.reports.render import render_report

            with runner.timed("report"):
                result.report = render_report(run_dir)
            runner.write_manifest(finished=time.time())
        return result
