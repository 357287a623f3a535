"""Nested cross-validation: choose a cross-validated suite's Unet settings without looking at its test subjects.

A suite with ``[splits] folds`` (and no ``fold_val``) trains each fold's Unet on the other folds' subjects and tests
it on its own. To choose between candidate settings honestly, each outer fold uses only its training subjects:

1. **inner**: every candidate trains on all of them but one and is scored on the one held out (the first by id,
   or each in turn with ``inner="all"``), with the fold's own training rule (no validation subject, final epoch);
2. **choice**: the candidate with the best mean inner score (``training.selection.mean_dice``: the mean over images
   of the blood-pool and myocardium Dice, the myocardium only where it was annotated) is the fold's choice; ties go
   to the candidate listed first (the suite as written comes first);
3. **outer**: the choice trains on all the fold's training subjects (the very task the suite with that setting
   plans for the fold, so ``unetgan-bench run`` of that suite reuses the model) and is tested on the fold's test
   subjects. Only these outer scores estimate how well the procedure does; no test subject's labels enter a choice.

A suite file holds one setting for every fold. ``fixed_choice`` gives the candidate with the best inner score
averaged over the folds (each fold's mean first, so every fold weighs the same): the setting to write into the
suite. Its own cross-validated Dice is not free of selection, since every subject is an inner validation subject
of some other fold; the nested outer estimate is.

A candidate is a set of changed settings, ``table.key=value`` (a TOML value; ``unet.model_kwargs.width=12``
reaches into a table), applied to the suite file's tables before it is validated as usual. Trainings go through
the artifact store like the runner's, so a repeated study trains nothing again.
"""

from __future__ import annotations

import concurrent.futures as cf
import copy
import dataclasses
import json
import multiprocessing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import tomllib

from unetgan_bench.bench import steps
from unetgan_bench.bench.plan import DataRef, Task, build_plan, data_ref, split_name, with_config
from unetgan_bench.bench.registries import open_source
from unetgan_bench.bench.store import ArtifactStore
from unetgan_bench.bench.suite import Suite, resolve_suite_path, suite_from_tables
from unetgan_core.errors import UserError

INNER_RULES = ("first", "all")
SCORE_COLUMNS = ("dice_blood_pool", "dice_myo", "dice_mean", "hd95_blood_pool_mm", "hd95_myo_mm")


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A named set of changed suite settings (dotted path -> value); no changes is the suite as written."""

    name: str
    changes: tuple[tuple[str, Any], ...] = ()


def parse_candidate(text: str) -> Candidate:
    """``"unet.epochs=60; data.pixel_mm=1.5"`` -> a ``Candidate`` named after its changes (values are TOML)."""
    changes = []
    for part in (p.strip() for p in text.split(";")):
        path, sep, value = part.partition("=")
        path = path.strip()
        if not sep or "." not in path or not all(path.split(".")):
            raise UserError(f"--vary {text!r}: expected table.key=value[; table.key=value ...], got {part!r}")
        try:
            changes.append((path, tomllib.loads(f"v = {value.strip()}")["v"]))
        except tomllib.TOMLDecodeError:
            raise UserError(f"--vary {text!r}: {value.strip()!r} is not a TOML value (quote strings)") from None
    name = ";".join(f"{p}={json.dumps(v, separators=(',', ':'))}" for p, v in changes)
    return Candidate(name, tuple(changes))


def changed_tables(tables: dict[str, Any], candidate: Candidate) -> dict[str, Any]:
    """A copy of a suite file's tables with ``candidate``'s settings changed."""
    out = copy.deepcopy(tables)
    for path, value in candidate.changes:
        *parents, key = path.split(".")
        table = out
        for name in parents:
            table = table.setdefault(name, {})
            if not isinstance(table, dict):
                raise UserError(f"--vary {path}: {name!r} is not a table in the suite")
        table[key] = value
    return out


@dataclasses.dataclass
class Study:
    """One candidate's suite, data source and plan."""

    candidate: Candidate
    suite: Suite
    source: Any
    plan: Any

    @property
    def vendor(self) -> str:
        return self.suite.vendors.source

    def outer_unet(self, fold: int) -> Task:
        """The Unet task the suite trains for ``fold`` (its first seed)."""
        seed = self.suite.suite.seeds[0]
        tasks = [t for t in self.plan.of_kind("unet") if t.config.get("fold") == fold and t.config["replicate"] == seed]
        if len(tasks) != 1:
            raise UserError(
                f"{self.suite.path}: nested selection needs one trained Unet per fold; fold {fold} has {len(tasks)} "
                '(run a single Unet scenario, e.g. run = ["clean"])'
            )
        return tasks[0]

    def part(self, fold: int, split: str) -> DataRef:
        return self.plan.data[(self.vendor, split_name(split, fold))]


def open_studies(suite_name: str, candidates: list[Candidate], data_root: str | Path | None = None) -> list[Study]:
    """The suite as written (first) and each candidate's variant of it, validated like any suite file."""
    path = resolve_suite_path(suite_name)
    try:
        tables = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UserError(f"{path}: cannot read the suite file ({exc})") from None
    studies = []
    names = set()
    for candidate in [Candidate("suite"), *candidates]:
        if candidate.name in names:
            raise UserError(f"candidate {candidate.name!r} is given twice")
        names.add(candidate.name)
        where = str(path) if not candidate.changes else f"{path} with {candidate.name}"
        suite = suite_from_tables(changed_tables(tables, candidate), where, data_root)
        if suite.splits.folds < 2 or suite.splits.fold_val:
            raise UserError(f"{where}: nested selection needs [splits] folds >= 2 and fold_val = 0")
        source = open_source(suite, where)
        studies.append(Study(candidate, suite, source, build_plan(suite, source)))
    return studies


@dataclasses.dataclass(frozen=True)
class Job:
    """One training and the subjects it is scored on."""

    phase: str  # "inner" or "outer"
    fold: int
    study: int  # index into the studies
    task: Task
    train: DataRef
    test: DataRef


def inner_jobs(studies: list[Study], fold: int, rule: str) -> list[Job]:
    """Every candidate's inner trainings of outer fold ``fold``: train on its training subjects but one."""
    if rule not in INNER_RULES:
        raise UserError(f"inner rule: expected one of {', '.join(INNER_RULES)}, got {rule!r}")
    out = []
    for i, study in enumerate(studies):
        train = study.part(fold, "train").subjects
        if len(train) < 2:
            raise UserError(f"{study.suite.path}: fold {fold} has {len(train)} training subject; nesting needs 2")
        held = train[:1] if rule == "first" else train
        outer = study.outer_unet(fold)
        empty = data_ref(study.source, study.vendor, "none", ())
        for subject in held:
            fit = data_ref(study.source, study.vendor, f"fold{fold}/inner-{subject}/train", set(train) - {subject})
            task = with_config(outer, train=fit.key, val=empty.key)
            test = data_ref(study.source, study.vendor, f"fold{fold}/inner-{subject}/test", (subject,))
            out.append(Job("inner", fold, i, task, fit, test))
    return out


def outer_job(studies: list[Study], fold: int, choice: int) -> Job:
    study = studies[choice]
    return Job("outer", fold, choice, study.outer_unet(fold), study.part(fold, "train"), study.part(fold, "test"))


# -- training (in worker processes) and scoring ---------------------------------------------
def _train(suite: Suite, task: Task, train: tuple[str, ...], store_root: Path, device: str) -> str:
    source = open_source(suite, suite.path)
    vendor = suite.vendors.source

    def make(out: Path) -> None:
        steps.train_unet(task, source.load(vendor, list(train)), source.load(vendor, []), out, device, False)

    ArtifactStore(store_root).build("unet", task.key, make)
    return task.key


def train_all(
    studies: list[Study], jobs: list[Job], store: ArtifactStore, device: str, workers: int, note: Callable[[str], None]
) -> None:
    """Train the models ``jobs`` need that the store lacks, ``workers`` at a time (each with the suite's threads)."""
    todo = {j.task.key: j for j in jobs if not store.exists("unet", j.task.key)}
    if not todo:
        return
    note(f"training {len(todo)} Unet(s), {workers} at a time")
    args = [(studies[j.study].suite, j.task, j.train.subjects, store.root, device) for j in todo.values()]
    if workers <= 1:
        for a in args:
            note(f"  trained {_train(*a)}")
        return
    context = multiprocessing.get_context("spawn")  # a forked torch process can deadlock in OpenMP
    with cf.ProcessPoolExecutor(workers, mp_context=context) as pool:
        for key in cf.as_completed([pool.submit(_train, *a) for a in args]):
            note(f"  trained {key.result()}")


def score(study: Study, job: Job, store: ArtifactStore, device: str) -> tuple[dict[str, Any], pd.DataFrame]:
    """The summary row and per-image table of ``job``'s trained Unet on its test subjects (fp32, with HD95)."""
    from unetgan_core.pipelines import UnetPipeline
    from unetgan_core.training import training_status

    folder = store.path("unet", job.task.key)
    model = steps.load_model(folder / "model.pt", device)
    test = study.source.load(study.vendor, list(job.test.subjects))
    metrics = study.suite.metrics
    cfg = {"fast_path": False, "hd95": True, "postprocess": metrics.postprocess, "tta": metrics.tta}
    table, metrics = steps.evaluate_segmentation(UnetPipeline(model), test, cfg)
    status, reason = training_status(json.loads((folder / "history.json").read_text(encoding="utf-8")))
    row = {
        "phase": job.phase,
        "fold": job.fold,
        "candidate": study.candidate.name,
        "train_subjects": " ".join(job.train.subjects),
        "test_subjects": " ".join(job.test.subjects),
        "n_images": metrics["n_images"],
        "n_myo": int(test.take(test.labelled).myo_labelled.sum()),
        **{k: metrics.get(k) for k in SCORE_COLUMNS},
        "status": status,
        "status_reason": reason,
        "unet_key": job.task.key,
    }
    table.insert(0, "candidate", study.candidate.name)
    table.insert(0, "fold", job.fold)
    return row, table


def choose(inner: pd.DataFrame, candidates: list[str]) -> str:
    """The candidate with the best mean inner ``dice_mean`` (ties: the first listed)."""
    means = inner.groupby("candidate")["dice_mean"].mean()
    return max(candidates, key=lambda name: (means[name], -candidates.index(name)))


def fixed_choice(inner: pd.DataFrame, candidates: list[str]) -> tuple[str, dict[str, float]]:
    """One setting for every fold: the best mean over folds of each fold's mean inner ``dice_mean`` (ties: first).

    Returns:
        The chosen candidate and every candidate's mean over folds.
    """
    per_fold = inner.groupby(["candidate", "fold"])["dice_mean"].mean()
    means = {name: float(per_fold[name].mean()) for name in candidates}
    return max(candidates, key=lambda name: (means[name], -candidates.index(name))), means


def pooled(per_image: pd.DataFrame) -> dict[str, float | None]:
    """Means over every test image of every fold (the myocardium where annotated)."""
    out: dict[str, float | None] = {"n_images": len(per_image)}
    for col in SCORE_COLUMNS:
        values = per_image[col].to_numpy(dtype=float) if col in per_image else np.array([np.nan])
        out[col] = float(np.nanmean(values)) if np.isfinite(values).any() else None
    out["n_myo"] = int(np.isfinite(per_image["dice_myo"].to_numpy(dtype=float)).sum())
    return out


def run_nested(
    suite_name: str,
    candidates: list[Candidate],
    store: ArtifactStore,
    inner_rule: str = "first",
    workers: int = 1,
    device: str = "cpu",
    data_root: str | Path | None = None,
    note: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Nested selection over ``candidates`` (module docstring); returns every inner and outer score.

    Returns:
        ``{"candidates", "inner_rule", "rows" (one per training scored), "choices" (fold -> candidate),
        "fixed_choice" and "inner_mean_over_folds" (one setting for every fold: ``fixed_choice``), "pooled" (the
        outer test images of every fold), "per_image" (a DataFrame of the outer images)}``.
    """
    studies = open_studies(suite_name, candidates, data_root)
    names = [s.candidate.name for s in studies]
    folds = range(studies[0].suite.splits.folds)
    inner = [job for fold in folds for job in inner_jobs(studies, fold, inner_rule)]
    train_all(studies, inner, store, device, workers, note)
    rows = [score(studies[j.study], j, store, device)[0] for j in inner]
    table = pd.DataFrame(rows)
    choices = {fold: choose(table[table["fold"] == fold], names) for fold in folds}
    fixed, across = fixed_choice(table, names)
    outer = [outer_job(studies, fold, names.index(choices[fold])) for fold in folds]
    train_all(studies, outer, store, device, workers, note)
    scored = [score(studies[j.study], j, store, device) for j in outer]
    per_image = pd.concat([t for _, t in scored], ignore_index=True)
    return {
        "suite": str(studies[0].suite.path),
        "candidates": [{"name": s.candidate.name, "changes": dict(s.candidate.changes)} for s in studies],
        "inner_rule": inner_rule,
        "rows": rows + [r for r, _ in scored],
        "choices": {str(k): v for k, v in choices.items()},
        "fixed_choice": fixed,
        "inner_mean_over_folds": across,
        "pooled": pooled(per_image),
        "per_image": per_image,
    }
