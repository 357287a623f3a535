"""Expand a suite into an explicit task graph.

Tasks are pure functions of their config: a task's key is a hash of that config, which
includes the keys of the tasks it depends on, so equal work has equal keys in any suite.
The local runner executes the list in order; each task's ``deps`` name its inputs, so a
distributed engine (e.g. Dask) can run the same graph.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from unetgan_bench.bench.suite import Suite
from unetgan_core.errors import UserError
from unetgan_core.external import ExternalModelSpec
from unetgan_core.hashing import canonical, config_hash, derive_seed
from unetgan_core.throughput.pipelines import EXTERNAL_WORKLOADS

# Bump when a change to training or evaluation code makes old artifacts stale.
ARTIFACT_VERSION = 2


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
        kind: ``unet``, ``translator`` (trained artifacts), ``external`` (a suite's ``[models.NAME]``:
            loaded, never trained), ``segmentation``, ``fgsm``, ``corruption`` or ``throughput`` (measured
            cells that write rows).
        key: hash of ``config``; the artifact folder name or the cell id.
        config: everything that determines the task's output, as plain data (its canonical form is hashed).
        deps: keys of the tasks whose artifacts it reads.
        settings: the typed settings the task runs with (``SegTrainConfig``, ``TranslatorConfig``,
            ``ExternalModel`` or ``ThroughputSection``; None for cells), whose canonical form is in ``config``.
    """

    kind: str
    key: str
    config: dict[str, Any]
    deps: tuple[str, ...] = ()
    settings: Any = dataclasses.field(default=None, compare=False)


@dataclasses.dataclass(frozen=True)
class ExternalModel:
    """The settings of an ``external`` task (what ``load_external`` needs), or of a ``throughput`` task that
    times the model (then also its ``ThroughputSection``)."""

    name: str
    spec: ExternalModelSpec
    base_dir: Path
    throughput: Any = None  # the ThroughputSection a throughput task times the model with


@dataclasses.dataclass
class Plan:
    suite: Suite
    source_key: dict[str, Any]
    data: dict[tuple[str, str], DataRef]
    tasks: list[Task]
    # Several data sources: vendor -> the record of the source it comes from (rows carry it); else empty.
    vendor_sources: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    def of_kind(self, kind: str) -> list[Task]:
        return [t for t in self.tasks if t.kind == kind]

    def task(self, key: str) -> Task:
        for t in self.tasks:
            if t.key == key:
                return t
        raise KeyError(key)


def _task(kind: str, config: dict[str, Any], deps: tuple[str, ...] = (), settings: Any = None) -> Task:
    config = canonical({"artifact_version": ARTIFACT_VERSION, "kind": kind, **config})
    return Task(kind=kind, key=config_hash(config), config=config, deps=deps, settings=settings)


def external_task(suite: Suite, name: str) -> Task:
    """The task of the suite's ``[models.NAME]``: nothing to train; its key is its files' SHA-256 and declared
    contracts (not its name), so the same network in another suite or under another name has the same key."""
    from unetgan_core.external.provenance import declared_files
    from unetgan_core.hashing import file_sha256

    spec = suite.models[name]
    files = declared_files(spec, suite.base_dir)
    config = {
        "format": spec.format,
        "files": [{"role": role, "sha256": file_sha256(path)} for role, path in files],
        "factory": spec.factory,
        "kwargs": spec.kwargs,
        "contracts": spec.contracts(),
        "feature_layers": spec.feature_layers,
    }
    return _task("external", config, settings=ExternalModel(name, spec, suite.base_dir))


def split_name(split: str, fold: int | None) -> str:
    """The name of a source split in ``Plan.data``: ``"train"``, or ``"fold2/train"`` in fold 2."""
    return split if fold is None else f"fold{fold}/{split}"


def fold_ids(suite: Suite) -> list[int | None]:
    """``[0, 1, ..., folds - 1]`` for a cross-validated suite, ``[None]`` (one split, no fold) otherwise."""
    return list(range(suite.splits.folds)) if suite.splits.folds else [None]


def fold_subjects(subjects, folds: int, seed: int) -> list[list[str]]:
    """Deal subjects into ``folds`` disjoint test groups, deterministically.

    The subjects are sorted, shuffled by ``seed`` and dealt round robin, so group sizes differ by
    at most one and every subject is in exactly one group.

    Args:
        subjects: distinct subject ids.
        folds: number of groups, at least 2 and at most the number of subjects.
        seed: fixes the shuffle (the suite's split seed, not a replicate seed).

    Returns:
        ``folds`` sorted lists of subject ids; fold k tests on group k.

    Raises:
        UserError: fewer subjects than folds.
    """
    ids = sorted(str(s) for s in subjects)
    if len(ids) < folds:
        raise UserError(f"[splits] folds = {folds} but the source vendor has only {len(ids)} subjects")
    order = np.random.default_rng(derive_seed("folds", seed)).permutation(len(ids))
    return [sorted(ids[i] for i in order[k::folds]) for k in range(folds)]


def _val_spec(fold_val: float, n_train: int) -> dict[str, int | float]:
    """``split_subjects`` sizes that hold ``fold_val`` (a count >= 1 or a fraction) of ``n_train`` out."""
    if fold_val >= 1:
        return {"val": int(fold_val), "train": n_train - int(fold_val)}
    return {"val": fold_val, "train": 1.0 - fold_val}


def _source_folds(suite: Suite, subjects: list[str], vendor: str) -> dict[str, tuple[str, ...]]:
    """``split_name`` -> subjects of every fold's train, val and test part of the source vendor."""
    from unetgan_core.data.splits import split_subjects

    splits = suite.splits
    out = {}
    for k, test in enumerate(fold_subjects(subjects, splits.folds, derive_seed(splits.seed, "folds", vendor))):
        rest = [s for s in sorted(subjects) if s not in set(test)]
        parts = {"train": rest, "val": []}
        if splits.fold_val:
            parts = split_subjects(
                rest, _val_spec(splits.fold_val, len(rest)), seed=derive_seed(splits.seed, vendor, k)
            )
        if not parts["train"]:
            raise UserError(f"[splits] fold_val = {splits.fold_val:g} leaves fold {k} no training subject")
        for split, ids in (("train", parts["train"]), ("val", parts["val"]), ("test", test)):
            out[split_name(split, k)] = tuple(sorted(ids))
    return out


def split_data(suite: Suite, source) -> dict[tuple[str, str], DataRef]:
    """Subject splits of every vendor, fixed by the split seed (not the replicate seed).

    With ``[splits] folds`` the source vendor gets ``fold<k>/train``, ``fold<k>/val`` and
    ``fold<k>/test`` per fold instead of one ``train``/``val``/``test`` split; targets are
    split as usual and their test set is shared by every fold.
    """
    from unetgan_core.data.splits import split_subjects

    refs = {}
    for vendor in suite.all_vendors:
        subjects = source.subjects(vendor)
        if vendor == suite.vendors.source and suite.splits.folds:
            parts = _source_folds(suite, subjects, vendor)
        else:
            spec = suite.splits.source if vendor == suite.vendors.source else suite.splits.target
            parts = split_subjects(subjects, spec, seed=derive_seed(suite.splits.seed, "split", vendor))
        for split, ids in parts.items():
            refs[(vendor, split)] = data_ref(source, vendor, split, ids)
    return refs


def data_ref(source, vendor: str, split: str, subjects) -> DataRef:
    """The ``DataRef`` of some subjects of ``vendor``, named ``split``; its key is the same in any suite."""
    # Only what determines this vendor's slices goes into the key, so a trained source Unet is
    # shared by suites whose target vendors differ.
    vendor_key = source.vendor_key(vendor) if hasattr(source, "vendor_key") else [source.cache_key(), vendor]
    ids = tuple(sorted(subjects))
    return DataRef(vendor, split, ids, config_hash({"source": vendor_key, "vendor": vendor, "subjects": ids}))


def with_config(task: Task, **changes: Any) -> Task:
    """``task`` with some of its config's entries replaced, and the key of the new config."""
    config = {k: v for k, v in task.config.items() if k not in ("artifact_version", "kind")}
    return _task(task.kind, {**config, **changes}, task.deps, task.settings)


def scoring_config(suite: Suite) -> dict[str, str]:
    """The ``postprocess`` and ``tta`` entries of a measured cell's config: only a rule other than ``"none"``
    enters it, so every cell of a suite without one keeps its key (both are scoring steps: no Unet's key
    carries them)."""
    rules = {"postprocess": suite.metrics.postprocess, "tta": suite.metrics.tta}
    return {name: rule for name, rule in rules.items() if rule != "none"}


def corruption_tasks(suite: Suite, pipe_of: dict[tuple[str, str, int], tuple[dict[str, Any], str]]) -> list[Task]:
    """One ``corruption`` cell per (seed, scenario, vendor, corruption) of ``[corruptions]``: every severity
    (and 0, the uncorrupted reference) of one artefact through one pipeline on one vendor's test images.

    Args:
        suite: the suite (its ``corruptions`` section is set).
        pipe_of: (scenario, vendor, seed) -> (pipeline spec, test data key) of the segmentation cells.
    """
    from unetgan_core.corruptions import CORRUPTIONS

    c = suite.corruptions
    out = []
    for seed in c.seeds or suite.suite.seeds[:1]:
        for name in c.scenarios:
            for vendor in c.vendors or suite.all_vendors:
                found = pipe_of.get((name, vendor, seed))
                if found is None:
                    continue  # a translator on the source vendor
                pipe, test = found
                deps = tuple(k for k in (pipe["unet"], (pipe["adapter"] or {}).get("key")) if k)
                for corruption in c.corruptions or CORRUPTIONS.names():
                    config = {
                        "scenario": name,
                        "vendor": vendor,
                        "role": "source" if vendor == suite.vendors.source else "target",
                        "replicate": seed,
                        "pipeline": pipe,
                        "corruption": corruption,
                        "levels": list(CORRUPTIONS.get(corruption).levels),
                        "severities": [0, *sorted(c.severities)],
                        "n_images": c.n_images,
                        "test": test,
                        # The same draws for every pipeline, so pipelines see the same corrupted images.
                        "seed": derive_seed(c.seed, "corruption", vendor, corruption),
                        **scoring_config(suite),
                    }
                    out.append(_task("corruption", config, deps))
    return out


def seed_label(entry, scenario) -> str:
    """The name a run entry's translator seeds derive from: the entry as written, with a declared variant's
    scenario replaced by its base (``Scenario.seed_name``), so a variant is paired by seed with its base."""
    if not scenario.seed_name:
        return entry.label
    return scenario.seed_name + entry.label[len(entry.scenario) :]


def build_plan(suite: Suite, source) -> Plan:
    """Expand ``suite`` into tasks: Unets (or external models), translators, then the measured cells.

    A run entry whose segmenter is ``model:NAME`` uses the ``external`` task of ``[models.NAME]`` where
    others use a trained Unet (``unet`` in a pipeline spec is the segmenter's task key); translators
    trained for it take its ``feature_layers`` as the feature loss's blocks. Cells carry the entry's
    label as ``scenario`` and the registered scenario in their ``pipeline`` spec.

    Every (replicate seed, fold) pair trains its own Unets and measures its own cells; with
    ``[splits] folds`` the Unet, translator and segmentation configs carry ``fold`` and the
    source vendor is tested on that fold's subjects. Attacks use the first fold's models.
    """
    from unetgan_core.plugins import import_plugins

    # A worker process builds the plan again: the suite's plugins register its scenarios there too.
    import_plugins(suite.suite.plugins, f"{suite.path}: [suite] plugins")
    data = split_data(suite, source)
    src = suite.vendors.source
    tasks: dict[str, Task] = {}

    def add(task: Task) -> Task:
        tasks.setdefault(task.key, task)
        return task

    entries = suite.scenarios.entries()
    # One task per external model a run entry names (its files are hashed once).
    external_of = {e.model: external_task(suite, e.model) for e in entries if e.model is not None}
    unet_of: dict[tuple[str, int, int | None], Task] = {}
    # (scenario, vendor, seed) -> (pipeline, test data key) of the first fold, for the attacks.
    pipe_of: dict[tuple[str, str, int], tuple[dict[str, Any], str]] = {}
    folds = fold_ids(suite)

    for seed in suite.suite.seeds:
        for fold in folds:
            # Only cross-validated tasks carry a fold, so a suite without folds keeps its keys.
            tag = {} if fold is None else {"fold": fold}

            def src_key(split: str, fold: int | None = fold) -> str:
                return data[(src, split_name(split, fold))].key

            for entry in entries:
                name, scenario = entry.label, suite.scenario(entry.scenario)
                variant = scenario.unet_variant
                train_cfg = scenario.train_config(suite.unet)
                unet_id = (config_hash(train_cfg), seed, fold)
                if entry.model is None and unet_id not in unet_of:
                    unet_of[unet_id] = add(
                        _task(
                            "unet",
                            {
                                "train": src_key("train"),
                                "val": src_key("val"),
                                "config": train_cfg,
                                "seed": derive_seed(seed, "unet", variant),
                                "threads": suite.suite.train_threads,
                                "replicate": seed,
                                **tag,
                            },
                            settings=train_cfg,
                        )
                    )
                unet = add(external_of[entry.model]) if entry.model is not None else unet_of[unet_id]
                for vendor in suite.all_vendors:
                    if scenario.translator is not None and vendor == src:
                        continue  # the paper's "-": translation maps targets to the source
                    deps = [unet.key]
                    translator_key = None
                    if scenario.learned_translator:
                        t_cfg = dataclasses.replace(
                            scenario.translator_config(suite.translator), selection=suite.scenarios.selection
                        )
                        if entry.model is not None and unet.settings.spec.feature_layers:
                            # The feature loss and unlabelled selection use the external model's declared layers.
                            t_cfg = dataclasses.replace(t_cfg, feature_blocks=tuple(unet.settings.spec.feature_layers))
                        t_task = add(
                            _task(
                                "translator",
                                {
                                    "unet": unet.key,
                                    "source_train": src_key("train"),
                                    "source_val": src_key("val"),
                                    "target_train": data[(vendor, "train")].key,
                                    "target_val": data[(vendor, "val")].key,
                                    "config": t_cfg,
                                    "seed": derive_seed(seed, "translator", vendor, seed_label(entry, scenario)),
                                    "threads": suite.suite.train_threads,
                                    "replicate": seed,
                                    **tag,
                                },
                                (unet.key,),
                                settings=t_cfg,
                            )
                        )
                        translator_key = t_task.key
                        deps.append(translator_key)
                    pipe = {
                        "scenario": entry.scenario,
                        "unet": unet.key,
                        "adapter": scenario.adapter(src_key("train"), translator_key),
                    }
                    test = src_key("test") if vendor == src else data[(vendor, "test")].key
                    if fold in (None, 0):
                        pipe_of[(name, vendor, seed)] = (pipe, test)
                    add(
                        _task(
                            "segmentation",
                            {
                                "scenario": name,
                                "vendor": vendor,
                                "role": "source" if vendor == src else "target",
                                "replicate": seed,
                                **tag,
                                "pipeline": pipe,
                                "test": test,
                                "hd95": suite.metrics.hd95,
                                "fast_path": suite.suite.fast_path,
                                **scoring_config(suite),
                            },
                            tuple(deps),
                        )
                    )

    if suite.fgsm is not None:
        f = suite.fgsm
        for seed in f.seeds or suite.suite.seeds[:1]:
            for name in f.scenarios:
                for vendor in f.vendors or suite.all_vendors:
                    found = pipe_of.get((name, vendor, seed))
                    if found is None:
                        continue  # e.g. a translator on the source vendor
                    pipe, test = found
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
                                    "test": test,
                                    "seed": derive_seed(seed, "fgsm", name, vendor, attack),
                                },
                                deps,
                            )
                        )

    if suite.corruptions is not None:
        for task in corruption_tasks(suite, pipe_of):
            add(task)

    if suite.throughput is not None:
        add(_task("throughput", {"section": suite.throughput}, settings=suite.throughput))
        # Each external model's inference (and FGSM step, where it has gradients) at the same settings.
        timed = [p for p in suite.throughput.pipelines if p in EXTERNAL_WORKLOADS]
        for model in sorted(external_of) if timed else []:
            external = external_of[model]
            section = dataclasses.replace(suite.throughput, pipelines=tuple(timed))
            add(
                _task(
                    "throughput",
                    {"section": section, "model": external.key},
                    (external.key,),
                    settings=dataclasses.replace(external.settings, throughput=section),
                )
            )

    order = {"external": 0, "unet": 0, "translator": 1, "segmentation": 2, "fgsm": 3, "corruption": 4, "throughput": 5}
    ordered = sorted(tasks.values(), key=lambda t: order[t.kind])  # stable: keeps expansion order within a kind
    records = getattr(source, "source_record", None)
    vendor_sources = {v: records(v) for v in suite.all_vendors} if records else {}
    return Plan(suite=suite, source_key=source.cache_key(), data=data, tasks=ordered, vendor_sources=vendor_sources)


def describe_trainings(plan: Plan, store) -> list[str]:
    """One line on the models the plan trains, and how many of them ``store`` (an ``ArtifactStore``) holds."""
    trained = [t for t in plan.tasks if t.kind in ("unet", "translator")]
    cached = sum(store.exists(t.kind, t.key) for t in trained)
    kinds = ", ".join(f"{sum(t.kind == k for t in trained)} {k}(s)" for k in ("unet", "translator"))
    return [f"{len(trained)} trainings ({kinds}); {cached} already in the cache, {len(trained) - cached} to train"]
