"""How much a suite's task graph can gain from more workers: total work, critical path, a simulated schedule.

Each task's cost is estimated from its settings in *reference task-seconds*: seconds on the machine
where ``quick`` was timed (README: an idle 2-core AMD EPYC VM with AVX2, 2 trainings at once; Unets
227 s, translators 203 s, evaluation 56 s of wall time), spread over ``quick``'s own tasks in
proportion to their work units:

- a Unet: epochs x training images x pixels x (width / 8)^2 (convolution work grows with the square
  of the channel width);
- a translator: steps x batch size x pixels x (generator width / 8)^2;
- a segmentation cell: test images x pixels x (Unet width / 8)^2;
- an FGSM cell: images x eps values x pixels x (Unet width / 8)^2, three times a segmentation image's
  cost (a forward and a backward pass per eps: an assumption, not a measurement);
- a throughput cell: ``THROUGHPUT_S``, a guess.

Absolute seconds on another device differ; the speedups (total work / critical path, and total work /
simulated makespan) depend only on the ratios between tasks, which hold as long as a device speeds
every kind of task up alike (also an assumption: say so where the numbers are quoted).
"""

from __future__ import annotations

import dataclasses
import heapq
from collections.abc import Sequence

from unetgan_bench.bench.plan import Plan, Task

# README, "quick": wall seconds per stage on the idle reference VM with 2 trainings at once.
REFERENCE_WALL_S = {"unet": 227.0, "translator": 203.0, "segmentation": 56.0}
REFERENCE_JOBS = {"unet": 2, "translator": 2, "segmentation": 1}
# quick's settings when those seconds were measured (issue 19 has since cut them): the work of a training
# grows linearly with each, so the calibration rescales the reference plan's work to them.
REFERENCE_SETTINGS = {"unet": ("epochs", 14), "translator": ("steps", 140)}
FGSM_PER_IMAGE_EPS = 3.0  # times a segmentation image's cost
THROUGHPUT_S = 10.0


def _images(plan: Plan, key: str) -> int:
    """Images of the data split with DataRef key ``key``: subjects x slices x phases (the phantom's layout)."""
    data = plan.suite.data
    per_subject = int(data.get("slices_per_subject", 1)) * len(data.get("phases", ["ED", "ES"]))
    ref = next(r for r in plan.data.values() if r.key == key)
    return len(ref.subjects) * per_subject


def _pixels(plan: Plan) -> float:
    return float(plan.suite.data.get("size_px", 64)) ** 2


def _width(kwargs: dict) -> float:
    return (float((kwargs or {}).get("width", 16)) / 8.0) ** 2


def work_units(plan: Plan, task: Task) -> float:
    """The task's work in the units above (0 for an external model, which is loaded, not trained)."""
    cfg, px = task.config, _pixels(plan)
    unet_width = _width(plan.suite.unet.model_kwargs)
    if task.kind == "unet":
        return cfg["config"]["epochs"] * _images(plan, cfg["train"]) * px * unet_width
    if task.kind == "translator":
        t = cfg["config"]
        return t["steps"] * t["batch_size"] * px * _width(t["generator"])
    if task.kind == "segmentation":
        return _images(plan, cfg["test"]) * px * unet_width
    if task.kind == "fgsm":
        n = min(cfg["n_images"], _images(plan, cfg["test"]))
        return FGSM_PER_IMAGE_EPS * n * len(cfg["eps"]) * px * unet_width
    return 0.0


def _measured_share(task: Task) -> float:
    """How much more work ``task`` was when ``REFERENCE_WALL_S`` was measured (``REFERENCE_SETTINGS``)."""
    if task.kind not in REFERENCE_SETTINGS:
        return 1.0
    name, measured = REFERENCE_SETTINGS[task.kind]
    return measured / task.config["config"][name]


def calibration(reference: Plan) -> dict[str, float]:
    """Reference seconds per work unit of each kind, from ``reference`` (the ``quick`` plan) and ``REFERENCE_WALL_S``."""
    out = {}
    for kind, wall in REFERENCE_WALL_S.items():
        units = sum(work_units(reference, t) * _measured_share(t) for t in reference.of_kind(kind))
        out[kind] = wall * REFERENCE_JOBS[kind] / units
    out["fgsm"] = out["segmentation"]
    return out


def task_costs(plan: Plan, per_unit: dict[str, float]) -> dict[str, float]:
    """Estimated reference task-seconds of every task of ``plan``."""
    return {
        t.key: THROUGHPUT_S if t.kind == "throughput" else work_units(plan, t) * per_unit.get(t.kind, 0.0)
        for t in plan.tasks
    }


def critical_path(tasks: Sequence[Task], cost: dict[str, float]) -> tuple[float, list[str]]:
    """Length (seconds) and keys, first to last, of the longest chain of dependent tasks (tasks in dependency order)."""
    finish: dict[str, float] = {}
    before: dict[str, str | None] = {}
    for t in tasks:
        deps = [d for d in t.deps if d in finish]
        prev = max(deps, key=lambda d: finish[d], default=None)
        finish[t.key] = (finish[prev] if prev else 0.0) + cost[t.key]
        before[t.key] = prev
    if not finish:
        return 0.0, []
    last: str | None = max(finish, key=lambda k: finish[k])
    length, chain = finish[last], []
    while last is not None:
        chain.append(last)
        last = before[last]
    return length, chain[::-1]


def simulate(tasks: Sequence[Task], cost: dict[str, float], workers: int) -> float:
    """Makespan (seconds) of ``tasks`` on ``workers`` identical workers, each task starting as soon as its
    dependencies are done and a worker is free, ready tasks taken in plan order (as Dask's FIFO would)."""
    order = {t.key: i for i, t in enumerate(tasks)}
    waiting = {t.key: {d for d in t.deps if d in order} for t in tasks}
    users: dict[str, list[str]] = {k: [] for k in order}
    for key, deps in waiting.items():
        for d in deps:
            users[d].append(key)
    ready = [order[k] for k, deps in waiting.items() if not deps]
    heapq.heapify(ready)
    keys = [t.key for t in tasks]
    running: list[tuple[float, str]] = []  # (finish time, key)
    now = 0.0
    while ready or running:
        while ready and len(running) < workers:
            key = keys[heapq.heappop(ready)]
            heapq.heappush(running, (now + cost[key], key))
        now, key = heapq.heappop(running)
        for user in users[key]:
            waiting[user].discard(key)
            if not waiting[user]:
                heapq.heappush(ready, order[user])
    return now


@dataclasses.dataclass(frozen=True)
class GraphCost:
    """A suite's graph in reference task-seconds (see the module docstring)."""

    suite: str
    tasks: int
    total_s: float
    critical_s: float
    critical_kinds: list[str]
    makespan_s: dict[int, float]

    @property
    def best_speedup(self) -> float:
        """The most any number of workers could gain: total work / critical path."""
        return self.total_s / self.critical_s

    def speedup(self, workers: int) -> float:
        return self.total_s / self.makespan_s[workers]


def graph_cost(plan: Plan, reference: Plan, workers: Sequence[int] = (1, 8)) -> GraphCost:
    """Total work, critical path and simulated makespans of ``plan`` with costs calibrated on ``reference``."""
    cost = task_costs(plan, calibration(reference))
    kind = {t.key: t.kind for t in plan.tasks}
    length, chain = critical_path(plan.tasks, cost)
    return GraphCost(
        suite=plan.suite.name,
        tasks=len(plan.tasks),
        total_s=sum(cost.values()),
        critical_s=length,
        critical_kinds=[kind[k] for k in chain],
        makespan_s={w: simulate(plan.tasks, cost, w) for w in workers},
    )
