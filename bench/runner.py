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
import json
import os
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from unetgan_bench.bench import manifest as manifest_mod
from unetgan_bench.bench import parallel, steps
from unetgan_bench.bench.plan import Plan, Task, build_plan
from unetgan_bench.bench.registries import open_source
from unetgan_bench.bench.results import ResultsFile
from unetgan_bench.bench.store import ArtifactStore
from unetgan_bench.bench.suite import Suite
from unetgan_core.errors import UserError

STAGE_OF = {
    "unet": "unet_training",
    "translator": "translator_training",
    "segmentation": "evaluation",
    "fgsm": "attacks",
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
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
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
class RunResult:
    run_dir: Path
    report: Path | None
    measured: int
    skipped: int
    failed: list[str]


class Runner:
    """Executes a plan; holds the data and models loaded so far (per process)."""

    def __init__(
        self, suite: Suite, run_dir: Path, device: str, store: ArtifactStore, progress: bool, jobs: int = 1
    ) -> None:
        self.suite = suite
        self.jobs = jobs
        self.run_dir = run_dir
        self.device = device
        self.store = store
        self.progress = progress
        self.source = open_source(suite, suite.path)
        self.plan: Plan = build_plan(suite, self.source)
        self.results = ResultsFile(run_dir / "results.jsonl")
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

    def artifact(self, task: Task) -> Path:
        """The artifact folder of a training task, training it first if needed."""
        failure = self._failed.get(task.key)
        if failure is not None:  # it already failed in a worker process: do not train it twice
            if failure.user_error:
                raise UserError(failure.message.split(": ", 1)[-1])
            raise parallel.TrainingFailed(failure)
        return self.store.build(task.kind, task.key, lambda tmp: self._train(task, tmp))

    def training_data(self, task: Task) -> dict[str, Any]:
        """The slices a training task reads, by their name in its config (loaded once per process)."""
        return {name: self.data(task.config[name]) for name in TRAINING_DATA[task.kind]}

    def _train(self, task: Task, out: Path) -> None:
        with self.timed(STAGE_OF[task.kind]):
            data = self.training_data(task)
            if task.kind == "unet":
                steps.train_unet(task, data["train"], data["val"], out, self.device, self.progress)
            else:
                steps.train_translator(task, self.unet(task.config["unet"]), data, out, self.device, self.progress)

    def train_for(self, cells: list[Task]) -> None:
        """Train the models ``cells`` need, ``jobs`` at a time (``bench.parallel``); failures are kept for the cells."""
        self._failed = parallel.train_missing(self, cells, self.jobs)

    def unet(self, key: str):
        """The segmenter of task ``key``: a trained Unet (``unet`` task, trained first if needed) or an external
        model (``external`` task, as an ``nn.Module``); loaded once per process."""
        return self._model(key)

    def _model(self, key: str):
        if key not in self._models:
            task = self.plan.task(key)
            if task.kind == "external":
                size = getattr(self.source, "size_px", 64)
                self._models[key] = steps.load_external_model(task, self.device, size)
            else:
                self._models[key] = steps.load_model(self.artifact(task) / "model.pt", self.device)
        return self._models[key]

    def pipeline(self, spec: dict[str, Any]):
        """The pipeline of a cell's ``pipeline`` spec, built by its scenario from the models and data it names."""
        from unetgan_core.scenarios import SCENARIOS

        adapter = spec["adapter"] or {}
        return SCENARIOS.get(spec["scenario"]).build_pipeline(
            self.unet(spec["unet"]),
            generator=self._model(adapter["key"]) if "key" in adapter else None,
            fit_images=self.data(adapter["fit"]).images if "fit" in adapter else None,
        )

    def selection_of(self, spec: dict[str, Any]) -> str:
        adapter = spec["adapter"]
        if not adapter or adapter["kind"] != "translator":
            return "val"
        info = json.loads((self.store.path("translator", adapter["key"]) / "history.json").read_text())
        return info.get("selection", "unlabelled")

    @contextlib.contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.stages[stage] = self.stages.get(stage, 0.0) + time.perf_counter() - start

    # -- cells --------------------------------------------------------------------------
    def measure(self, task: Task) -> list[dict[str, Any]]:
        cfg = task.config
        base = {
            "kind": task.kind,
            "cell_id": task.key,
            "suite": self.suite.name,
            "config": cfg,
            "device": self.device,
        }
        if task.kind == "throughput":
            with self.timed("throughput"):
                rows = steps.measure_throughput(task, self.device)
            settings = ("pipeline", "batch", "requested_batch", "image_size", "precision", "channels_last", "compile")
            return [
                {
                    **base,
                    "scenario": r.get("pipeline"),
                    "vendor": None,
                    "seed": None,
                    "batch_size": r.get("requested_batch"),
                    "size_px": r.get("image_size"),
                    **{k: r.get(k) for k in settings},
                    "metrics": {k: v for k, v in r.items() if k not in settings},
                }
                for r in rows
            ]

        pipeline = self.pipeline(cfg["pipeline"])
        test = self.data(cfg["test"])
        common = {
            **base,
            "scenario": cfg["scenario"],
            "vendor": cfg["vendor"],
            "role": cfg["role"],
            "seed": cfg["replicate"],
            "selection": self.selection_of(cfg["pipeline"]),
        }
        if "fold" in cfg:
            common["fold"] = cfg["fold"]
        if task.kind == "segmentation":
            with self.timed("evaluation"):
                per_image, metrics = steps.evaluate_segmentation(pipeline, test, cfg)
            path = self.run_dir / "per_image" / f"{task.key}.csv"
            path.parent.mkdir(exist_ok=True)
            tmp = path.with_suffix(".tmp")
            per_image.to_csv(tmp, index=False)
            tmp.replace(path)
            return [{**common, "metrics": metrics, "per_image": f"per_image/{task.key}.csv"}]
        with self.timed("attacks"):
            rows, panels = steps.evaluate_attack(pipeline, test, cfg)
        if panels is not None:
            steps.save_panels(self.run_dir / "figures" / f"fgsm_{cfg['scenario']}_{cfg['vendor']}.npz", panels)
        return [
            {
                **common,
                "attack": r["attack"],
                "eps": r["eps"],
                "target": r["target"],
                "attack_note": r["attack_note"],
                "metrics": r["metrics"],
            }
            for r in rows
        ]

    def run(self) -> RunResult:
        removed = self.results.repair()
        if removed:
            tqdm.write(f"note: dropped a partial last row ({removed} bytes) left by an interrupted run")
        done = self.results.completed_cells()
        cells = [t for t in self.plan.tasks if t.kind in ("segmentation", "fgsm", "throughput")]
        todo = [t for t in cells if t.key not in done]
        self.train_for(todo)
        failed: list[str] = []
        bar = tqdm(todo, desc=f"{self.suite.name}: cells", unit="cell", disable=not self.progress)
        for task in bar:
            bar.set_postfix_str(f"{task.kind} {task.config.get('scenario', '')} {task.config.get('vendor', '') or ''}")
            try:
                rows = self.measure(task)
            except UserError:
                raise
            except Exception as exc:  # one broken cell must not lose the others; the run exits 1
                failed.append(f"{task.kind} {task.key}: {type(exc).__name__}: {exc}")
                log = self.run_dir / "logs" / "errors.log"
                log.parent.mkdir(exist_ok=True)
                with open(log, "a", encoding="utf-8") as f:
                    f.write(f"--- {task.kind} {task.key} {json.dumps(task.config, sort_keys=True)}\n")
                    f.write(getattr(exc, "details", None) or traceback.format_exc())
                tqdm.write(f"error: {failed[-1]} (traceback in {log})")
                continue
            self.results.append(rows)
        if not todo:
            tqdm.write(f"all {len(cells)} cells already measured in {self.run_dir}")
        for subject, reason in getattr(self.source, "skipped", []):
            tqdm.write(f"skipped subject {subject}: {reason}")
        return RunResult(self.run_dir, None, len(todo) - len(failed), len(cells) - len(todo), failed)


def run_suite(
    suite: Suite,
    run_dir: Path,
    device: str = "cpu",
    store: ArtifactStore | None = None,
    progress: bool = True,
    report: bool = True,
    jobs: int = 1,
) -> RunResult:
    """Run ``suite`` into ``run_dir`` (resuming what is there) and render its report.

    ``jobs`` trainings run at once in worker processes (``bench.parallel``); 1 trains each model
    in this process when a cell first needs it. The results are the same either way.
    """
    from unetgan_core.device import resolve_device

    resolved = str(resolve_device(device))
    run_dir = Path(run_dir)
    with run_lock(run_dir):
        started = time.time()
        runner = Runner(suite, run_dir, resolved, store or ArtifactStore(), progress, jobs)
        previous = manifest_mod.read(run_dir)
        if previous and previous.get("suite_config") != suite.resolved():
            raise UserError(f"{run_dir}: holds a run of a different suite configuration; use another --out folder")
        manifest_mod.write(run_dir, suite, runner, started, finished=None)
        result = runner.run()
        with runner.timed("figures"):
            steps.write_figures(runner)
        manifest_mod.write(run_dir, suite, runner, started, finished=time.time())
        if report:
            from unetgan_bench.reports.render import render_report

            with runner.timed("report"):
                result.report = render_report(run_dir)
            manifest_mod.write(run_dir, suite, runner, started, finished=time.time())
        return result
