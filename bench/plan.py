"""Expand a suite into an explicit task graph.

Tasks are pure functions of their config: a task's key is a hash of that config, which
includes the keys of the tasks it depends on, so equal work has equal keys in any suite.
The local runner executes the list in order; each task's ``deps`` name its inputs, so a
distributed engine (e.g. Dask) can run the same graph.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from bench.suite import Suite
from unetgan_core.hashing import canonical, config_hash, derive_seed

# Bump when a change to training or evaluation code makes old artifacts stale.
ARTIFACT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class DataRef:
    """The slices of some subjects of one vendor (a split)."""

    vendor: str
    split: str
    subjects: tuple[str, ...]
    key: str


@dataclasses.dataclass(frozen=True)
class Task:
    """One node of the graph.

    Args:
        kind: ``unet``, ``translator`` (trained artifacts), ``segmentation``, ``fgsm`` or
            ``throughput`` (measured cells that write rows).
        key: hash of ``config``; the artifact folder name or the cell id.
        config: everything that determines the task's output.
        deps: keys of the tasks whose artifacts it reads.
    """

    kind: str
    key: str
    config: dict[str, Any]
    deps: tuple[str, ...] = ()


@dataclasses.dataclass
class Plan:
    suite: Suite
    source_key: dict[str, Any]
    data: dict[tuple[str, str], DataRef]
    tasks: list[Task]

    def of_kind(self, kind: str) -> list[Task]:
        return [t for t in self.tasks if t.kind == kind]

    def task(self, key: str) -> Task:
        for t in self.tasks:
            if t.key == key:
                return t
        raise KeyError(key)


def _task(kind: str, config: dict[str, Any], deps: tuple[str, ...] = ()) -> Task:
    config = canonical({"artifact_version": ARTIFACT_VERSION, "kind": kind, **config})
    return Task(kind=kind, key=config_hash(config), config=config, deps=deps)


def split_data(suite: Suite, source) -> dict[tuple[str, str], DataRef]:
    """Subject splits of every vendor, fixed by the split seed (not the replicate seed)."""
    from unetgan_core.data.splits import split_subjects

    refs = {}
    for vendor in suite.all_vendors:
        spec = suite.splits.source if vendor == suite.vendors.source else suite.splits.target
        parts = split_subjects(source.subjects(vendor), spec, seed=derive_seed(suite.splits.seed, "split", vendor))
        for split, subjects in parts.items():
            subjects = tuple(sorted(subjects))
            key = config_hash({"source": source.cache_key(), "vendor": vendor, "subjects": subjects})
            refs[(vendor, split)] = DataRef(vendor, split, subjects, key)
    return refs


def build_plan(suite: Suite, source) -> Plan:
    """Expand ``suite`` into tasks: Unets, translators, then the measured cells."""
    from unetgan_core.scenarios import SCENARIOS
    from unetgan_core.training import SegTrainConfig, TranslatorConfig

    data = split_data(suite, source)
    src = suite.vendors.source
    tasks: dict[str, Task] = {}

    def add(task: Task) -> Task:
        tasks.setdefault(task.key, task)
        return task

    unet_of: dict[tuple[str, int], Task] = {}
    pipe_of: dict[tuple[str, str, int], dict[str, Any]] = {}

    for seed in suite.suite.seeds:
        for name in suite.scenarios.run:
            scenario = SCENARIOS.get(name)
            variant = scenario.unet_variant
            if (variant, seed) not in unet_of:
                train_cfg = SegTrainConfig.from_dict({**suite.unet, "variant": variant})
                unet_of[(variant, seed)] = add(
                    _task(
                        "unet",
                        {
                            "train": data[(src, "train")].key,
                            "val": data[(src, "val")].key,
                            "config": train_cfg,
                            "seed": derive_seed(seed, "unet", variant),
                            "replicate": seed,
                        },
                    )
                )
            unet = unet_of[(variant, seed)]
            for vendor in suite.all_vendors:
                translator = scenario.translator
                if translator is not None and vendor == src:
                    continue  # the paper's "-": translation maps targets to the source
                pipe: dict[str, Any] = {"unet": unet.key, "adapter": None}
                deps = [unet.key]
                if translator == "histmatch":
                    pipe["adapter"] = {"kind": "histmatch", "fit": data[(src, "train")].key}
                elif translator is not None:
                    t_cfg = TranslatorConfig.from_dict(
                        {**suite.translator, **translator, "selection": suite.scenarios.selection}
                    )
                    t_task = add(
                        _task(
                            "translator",
                            {
                                "unet": unet.key,
                                "source_train": data[(src, "train")].key,
                                "source_val": data[(src, "val")].key,
                                "target_train": data[(vendor, "train")].key,
                                "target_val": data[(vendor, "val")].key,
                                "config": t_cfg,
                                "seed": derive_seed(seed, "translator", vendor, name),
                                "replicate": seed,
                            },
                            (unet.key,),
                        )
                    )
                    pipe["adapter"] = {"kind": "translator", "key": t_task.key}
                    deps.append(t_task.key)
                pipe_of[(name, vendor, seed)] = pipe
                add(
                    _task(
                        "segmentation",
                        {
                            "scenario": name,
                            "vendor": vendor,
                            "role": "source" if vendor == src else "target",
                            "replicate": seed,
                            "pipeline": pipe,
                            "test": data[(vendor, "test")].key,
                            "hd95": suite.metrics.hd95,
                            "fast_path": suite.suite.fast_path,
                        },
                        tuple(deps),
                    )
                )

    if suite.fgsm is not None:
        f = suite.fgsm
        for seed in f.seeds or suite.suite.seeds[:1]:
            for name in f.scenarios:
                for vendor in f.vendors or suite.all_vendors:
                    pipe = pipe_of.get((name, vendor, seed))
                    if pipe is None:
                        continue  # e.g. a translator on the source vendor
                    deps = tuple(k for k in (pipe["unet"], (pipe["adapter"] or {}).get("key")) if k)
                    for attack in f.attacks:
                        add(
                            _task(
                                "fgsm",
                                {
                                    "scenario": name,
                                    "vendor": vendor,
                                    "role": "source" if vendor == src else "target",
                                    "replicate": seed,
                                    "pipeline": pipe,
                                    "attack": attack,
                                    "eps": sorted(f.eps),
                                    "n_images": f.n_images,
                                    "target": f.target,
                                    "pgd_steps": f.pgd_steps,
                                    "pgd_step_fraction": f.pgd_step_fraction,
                                    "test": data[(vendor, "test")].key,
                                    "seed": derive_seed(seed, "fgsm", name, vendor, attack),
                                },
                                deps,
                            )
                        )

    if suite.throughput is not None:
        section = dict(suite.throughput)
        section.setdefault("unet", dict(suite.unet.get("model_kwargs", {})))
        add(_task("throughput", {"section": section}))

    order = {"unet": 0, "translator": 1, "segmentation": 2, "fgsm": 3, "throughput": 4}
    ordered = sorted(tasks.values(), key=lambda t: order[t.kind])  # stable: keeps expansion order within a kind
    return Plan(suite=suite, source_key=source.cache_key(), data=data, tasks=ordered)
