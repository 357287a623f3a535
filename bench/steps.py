"""The work of each task kind, as functions of their inputs.

Each function takes a task (its config, and for training and throughput its typed
``settings``) plus the loaded inputs it names and returns (or writes into the given folder) its
output; none reads global state or parses a table again. The runner decides what to load
and where to store.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from unetgan_bench.bench.plan import Task
from unetgan_core.data.sliceset import SliceSet
from unetgan_core.device import cpu_threads
from unetgan_core.external import NotDifferentiable
from unetgan_core.inference import translate
from unetgan_core.pipelines import UnetPipeline
from unetgan_core.postprocess import postprocess
from unetgan_core.tta import with_tta

FAST_PATH_CHECK_IMAGES = 64  # images on which the fast path's Dice is compared with fp32
PANEL_SEVERITIES = (0, 1, 3, 5)  # corruption severities shown in the report's example panels


# -- training ----------------------------------------------------------------------------
def train_unet(task: Task, train: SliceSet, val: SliceSet, out: Path, device: str, progress: bool) -> None:
    """Train one LV-Unet variant; writes ``model.pt`` (+ config JSON), ``history.json``, ``train_log.jsonl``.

    Args:
        task: a ``unet`` task; ``task.settings`` is its ``SegTrainConfig``.
    """
    from unetgan_core.checkpoint import save_checkpoint
    from unetgan_core.training import train_segmenter

    cfg, train_cfg = task.config, task.settings
    with cpu_threads(cfg["threads"]):
        model, history = train_segmenter(
            train, val, train_cfg, seed=cfg["seed"], device=device, log_path=out / "train_log.jsonl", progress=progress
        )
    save_checkpoint(
        out / "model.pt",
        model,
        config={"model": {"name": train_cfg.model, "kwargs": train_cfg.model_kwargs}, "task": cfg},
    )
    (out / "history.json").write_text(json.dumps(history, indent=1, default=float))


def train_translator(
    task: Task, unet: torch.nn.Module, data: dict[str, SliceSet], out: Path, device: str, progress: bool
) -> None:
    """Train one translator (CycleGAN or Unet-GAN) for a target; keeps the target->source generator.

    Args:
        task: a ``translator`` task; ``task.settings`` is its ``TranslatorConfig``.
    """
    from unetgan_core.checkpoint import save_checkpoint
    from unetgan_core.training import train_translator as fit

    cfg, t_cfg = task.config, task.settings
    with cpu_threads(cfg["threads"]):
        generator, history = fit(
            data["source_train"],
            data["target_train"],
            unet,
            t_cfg,
            seed=cfg["seed"],
            device=device,
            val_source=data["source_val"],
            val_target=data["target_val"],
            log_path=out / "train_log.jsonl",
            progress=progress,
        )
    save_checkpoint(
        out / "model.pt",
        generator,
        config={"model": {"name": "resnet_generator", "kwargs": t_cfg.generator}, "task": cfg},
    )
    (out / "history.json").write_text(json.dumps(history, indent=1, default=float))


def load_model(path: Path, device: str) -> torch.nn.Module:
    from unetgan_core.checkpoint import build_from_checkpoint

    model = build_from_checkpoint(path, map_location=device)
    return model.to(device).eval()


def load_external_model(task: Task, device: str, probe_size: int) -> torch.nn.Module:
    """The ``[models.NAME]`` of an ``external`` task, loaded and probed, as an ``nn.Module`` (``SegmenterModule``).

    Args:
        task: an ``external`` task; ``task.settings`` is its ``plan.ExternalModel``.
        probe_size: image side of the load-time probe (the suite's data size).
    """
    from unetgan_core.external import load_external

    model = task.settings
    return load_external(model.spec, model.base_dir, name=model.name, device=device, probe_size=probe_size).as_module()


# -- measuring ---------------------------------------------------------------------------
def _predict(
    pipeline, images: np.ndarray, labels: np.ndarray, myo_labelled: np.ndarray, use_fast: bool
) -> tuple[np.ndarray, dict[str, Any]]:
    """Predict with the fast path where it keeps Dice within 0.005 of fp32 (``judge_fast_path``).

    The fast path is channels_last, plus bf16 only where the hardware runs it faster than fp32
    (``choose_fast_path``). Every image is predicted on the fast path, and the first
    ``FAST_PATH_CHECK_IMAGES`` of this cell's own test set also in fp32; if their mean Dice differs by
    more than 0.005, the cell is predicted in fp32 (the checked images' fp32 maps are kept).
    """
    from unetgan_core.throughput.fastpath import DICE_TOLERANCE, judge_fast_path

    if not use_fast:
        return pipeline.predict(images), {"used": False, "reason": "disabled in the suite"}
    n = min(FAST_PATH_CHECK_IMAGES, len(images))
    fast, head = pipeline.predict(images, fast=True), pipeline.predict(images[:n])
    mode = pipeline.fast_path_description()
    decision = judge_fast_path(head, fast[:n], labels[:n], myo_labelled[:n], DICE_TOLERANCE, mode=mode)
    info = {
        "mode": mode,
        "checked_images": n,
        "dice_fp32": decision.dice_fp32,
        "dice_fast": decision.dice_fast,
        "delta": decision.delta,
        "used": decision.use_fast,
        "note": decision.note,
    }
    if decision.use_fast:
        return fast, info
    return np.concatenate([head, pipeline.predict(images[n:])]), info


def evaluate_segmentation(pipeline, test: SliceSet, cfg: dict[str, Any]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Per-image Dice (and HD95) of a pipeline on a labelled test set, and their summary.

    ``cfg``: ``fast_path`` (``_predict``), ``hd95`` (default on), ``tta`` (``unetgan_core.tta``: the pipeline's
    probabilities averaged over rotations of its input; default ``"none"``) and ``postprocess`` (a rule of
    ``unetgan_core.postprocess``, applied to the predicted label maps before scoring; default ``"none"``).
    """
    from unetgan_core import stats
    from unetgan_core.metrics import dice_scores, hd95_scores

    test = test.take(test.labelled)
    pipeline = with_tta(pipeline, cfg.get("tta", "none"))
    pred, fast = _predict(pipeline, test.images, test.labels, test.myo_labelled, cfg.get("fast_path", False))
    pred = postprocess(pred, cfg.get("postprocess", "none"))
    scores = dice_scores(pred, test.labels, myo_labelled=test.myo_labelled)
    table = pd.DataFrame(
        {
            "index": np.arange(len(test)),
            "subject": test.subjects,
            "slice_index": test.slice_index,
            "phase": test.phase,
            **{k: np.asarray(v, dtype=float) for k, v in scores.items()},
        }
    )
    if cfg.get("hd95", True):
        for k, v in hd95_scores(pred, test.labels, test.pixel_mm, myo_labelled=test.myo_labelled).items():
            table[k] = np.asarray(v, dtype=float)
    metrics: dict[str, Any] = {"n_images": int(len(test))}
    for col in table.columns[4:]:
        values = table[col].to_numpy()
        metrics[col] = float(np.nanmean(values)) if np.isfinite(values).any() else None
        metrics[f"{col}_std"] = stats.mean_std(values).std if np.isfinite(values).any() else None
        metrics[f"{col}_n_nan"] = int(np.isnan(values).sum())
    metrics["fast_path"] = fast
    return table, metrics


def evaluate_attack(pipeline, test: SliceSet, cfg: dict[str, Any]) -> tuple[list[dict[str, Any]], dict | None]:
    """Dice against eps for one attack on the first ``n_images`` labelled test images."""
    from unetgan_core.robustness import evaluate_sweep, fig1_panels

    test = test.take(test.labelled)
    n = min(cfg["n_images"], len(test))
    opts: dict[str, Any] = {"target": cfg["target"]}
    if cfg["attack"] == "pgd":
        opts.update(steps=cfg["pgd_steps"], step_fraction=cfg["pgd_step_fraction"])
    try:
        sweep = evaluate_sweep(
            pipeline,
            test.images[:n],
            test.labels[:n],
            cfg["eps"],
            cfg["attack"],
            seed=cfg["seed"],
            attack_options=opts,
            myo_labelled=test.myo_labelled[:n],
        )
    except NotDifferentiable:
        # An external model without gradients (ONNX): a gradient attack cannot run, so its rows say so.
        return _not_differentiable_rows(pipeline, cfg, n), None
    rows = sweep.per_eps
    if cfg["attack"] == "fgsm" and cfg["role"] == "source" and n:
        # The saving of the one-gradient sweep, measured on the source cell's batch and pipeline
        # (once per attacked Unet: it times K separate gradients, so not on every cell).
        from unetgan_core.attacks import sweep_cost_ratio

        x = torch.from_numpy(np.ascontiguousarray(test.images[:n]))[:, None].to(pipeline.device)
        y = torch.from_numpy(test.labels[:n].astype(np.int64)).to(pipeline.device)
        cost = sweep_cost_ratio(pipeline.logits, x, y, cfg["eps"], target=cfg["target"], warmup=1, repeats=3)
        for row in rows:
            row["metrics"] = {**row["metrics"], "sweep_cost_ratio": cost["cost_ratio"]}
    panels = None
    if cfg["attack"] == "fgsm" and n:
        positive = sorted(e for e in cfg["eps"] if e > 0)
        eps = positive[len(positive) // 2] if positive else 0.0
        pick = _spread(test, min(2, n))
        each = [fig1_panels(pipeline, test.images[i], test.labels[i], eps) for i in pick]
        panels = {k: np.stack([p[k] for p in each]) for k in each[0] if k != "eps"}
        panels["eps"] = np.array(eps)
    return rows, panels


def evaluate_corruption(pipeline, test: SliceSet, cfg: dict[str, Any]) -> tuple[list[dict[str, Any]], dict | None]:
    """Dice of a pipeline on ``n_images`` labelled test images under one corruption at each severity.

    The images are spread evenly over the labelled test set; labels are never corrupted. Returns one
    row per severity (``corruption``, ``severity``, ``level`` in the corruption's unit, ``level_unit``,
    ``metrics``: Dice means over images, PSNR of the corrupted against the clean images in dB, each
    image's capped at 100 dB (an unchanged image has an infinite PSNR), None at severity 0) and the
    panel arrays (None without a labelled image): the image with the largest LV at severities 0, 1, 3
    and 5 (those measured) with the pipeline's predictions.
    """
    from unetgan_core import stats
    from unetgan_core.corruptions import CORRUPTIONS, corrupt
    from unetgan_core.metrics import dice_scores
    from unetgan_core.robustness import psnr_db

    test = test.take(test.labelled)
    n = min(cfg["n_images"], len(test))
    test = test.take(np.unique(np.linspace(0, len(test) - 1, n).round().astype(int)))
    corruption = CORRUPTIONS.get(cfg["corruption"])
    severities = list(cfg["severities"])
    corrupted = [corrupt(corruption.name, test.images, s, cfg["seed"], test.pixel_mm) for s in severities]
    # One prediction for every severity: one forward pass per batch instead of one per severity. In fp32: the fast
    # path's Dice check would predict the first 64 images twice, more than the fast path saves on 16 images x 6.
    predicted = corrupted
    if len(test):
        scored = with_tta(pipeline, cfg.get("tta", "none"))
        stacked = postprocess(scored.predict(np.concatenate(corrupted)), cfg.get("postprocess", "none"))
        predicted = np.split(stacked, len(severities))
    example = int(_spread(test, 1)[0]) if len(test) else 0  # the image with the largest LV
    rows, shown = [], {}
    for severity, images, pred in zip(severities, corrupted, predicted, strict=True):
        metrics: dict[str, Any] = {"n_images": int(len(test))}
        for key, values in dice_scores(pred, test.labels, myo_labelled=test.myo_labelled).items():
            summary = stats.mean_std(values)
            metrics[key] = None if summary.n_nan == len(values) else float(np.nanmean(values))
            if summary.n_nan:
                metrics[f"{key}_n_unscored"] = summary.n_nan
        metrics["psnr_db"] = float(np.mean(np.minimum(psnr_db(test.images, images), 100.0))) if severity else None
        rows.append(
            {
                "corruption": corruption.name,
                "severity": int(severity),
                "level": corruption.level(severity) if severity else None,
                "level_unit": corruption.unit,
                "metrics": metrics,
            }
        )
        if severity in PANEL_SEVERITIES and len(test):
            shown[severity] = (images[example], pred[example])
    if not shown:
        return rows, None
    order = sorted(shown)
    panels = {
        "images": np.stack([shown[s][0] for s in order]),
        "predictions": np.stack([shown[s][1] for s in order]),
        "label": test.labels[example],
        "severities": np.array(order),
    }
    return rows, panels


def _not_differentiable_rows(pipeline, cfg: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """One row per eps for a gradient attack on a pipeline that has no gradient: no Dice (null), and the reason
    in ``attack_note``."""
    return [
        {
            "attack": cfg["attack"],
            "eps": eps,
            "target": cfg["target"],
            "attack_note": pipeline.attack_note,
            "metrics": {"dice_mean": None, "psnr_db": None, "ssim": None, "n_images": n},
        }
        for eps in cfg["eps"]
    ]


def measure_throughput(task: Task, device: str) -> list[dict[str, Any]]:
    """The throughput rows of a ``throughput`` task.

    ``task.settings`` is its ``ThroughputSection``, or for a task with ``model`` in its config the external
    model's ``plan.ExternalModel`` (with ``throughput``): its rows are named ``"<workload>@model:NAME"``.
    """
    from unetgan_core.throughput.pipelines import external_workloads, run_throughput

    if "model" not in task.config:
        return run_throughput(task.settings, device=device)
    model = task.settings
    module = load_external_model(task, device, model.throughput.image_sizes[0])
    workloads = external_workloads(module, module.segmenter.has_gradient)
    rows = run_throughput(model.throughput, device=device, workloads=workloads)
    return [{**row, "pipeline": f"{row['pipeline']}@model:{model.name}"} for row in rows]


def save_panels(path: Path, panels: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **{k: np.asarray(v) for k, v in panels.items()})
    tmp.replace(path)


# -- figures -----------------------------------------------------------------------------
def write_figures(runner) -> None:
    """Panel data for the report: translation before/after per target (first seed) and the style gallery."""
    suite = runner.suite
    n = suite.metrics.figure_images
    fig_dir = runner.run_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    seed = suite.suite.seeds[0]
    for task in runner.plan.of_kind("segmentation"):
        cfg = task.config
        adapter = cfg["pipeline"]["adapter"]
        if cfg["replicate"] != seed or not adapter or adapter["kind"] != "translator" or n == 0:
            continue
        path = fig_dir / f"translation_{cfg['scenario']}_{cfg['vendor']}_seed{seed}.npz"
        if path.exists():
            continue
        test = runner.data(cfg["test"])
        test = test.take(test.labelled)
        pick = _spread(test, n)
        pipeline = runner.pipeline(cfg["pipeline"])
        images = test.images[pick]
        save_panels(
            path,
            {
                "original": images,
                "translated": translate(pipeline.generator, images)[:, 0].cpu().numpy(),
                "pred_before": UnetPipeline(pipeline.unet).predict(images),
                "pred_after": pipeline.predict(images),
                "label": test.labels[pick],
                "scenario": np.array(cfg["scenario"]),
                "vendor": np.array(cfg["vendor"]),
            },
        )
    gallery = fig_dir / "gallery.png"
    if runner.source.synthetic and hasattr(runner.source, "style") and not gallery.exists():
        from unetgan_core.data.gallery import render_gallery

        styles = list(dict.fromkeys(suite.all_vendors))
        render_gallery(
            gallery, styles=[runner.source.style(s) for s in styles], n_anatomies=2, size_px=runner.source.size_px
        )


def write_loss_terms(runner) -> None:
    """Copy each translator cell's checkpoint records (every loss term per checkpoint) into the run folder.

    One file per segmentation cell that uses a learned translator (``reports.rundir.loss_terms_path``), with the
    cell's scenario, vendor and seed, the loss weights and the selected step; a translator that was never
    trained (a failed cell) is skipped. The report reads only these files, never the artifact store.
    """
    from unetgan_bench.reports import rundir

    for task in runner.plan.of_kind("segmentation"):
        cfg = task.config
        adapter = cfg["pipeline"]["adapter"] or {}
        if adapter.get("kind") != "translator":
            continue
        history = runner.store.path("translator", adapter["key"]) / "history.json"
        path = rundir.loss_terms_path(runner.run_dir, task.key)
        if path.exists() or not history.is_file():
            continue
        record = json.loads(history.read_text(encoding="utf-8"))
        t_cfg = runner.plan.task(adapter["key"]).settings
        out = {
            "scenario": cfg["scenario"],
            "vendor": cfg["vendor"],
            "seed": cfg["replicate"],
            "fold": cfg.get("fold"),
            "translator": adapter["key"],
            "best_step": record.get("best_step"),
            "weights": {
                "gan": 1.0,
                "unet": t_cfg.lambda_unet,
                "ssim": t_cfg.lambda_ssim,
                "cycle": t_cfg.lambda_cycle,
            },
            "checks": record.get("checks", []),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(out, indent=1, sort_keys=True), encoding="utf-8")
        tmp.replace(path)


def _spread(test: SliceSet, n: int) -> np.ndarray:
    """``n`` image indices spread over the test set, preferring mid-ventricular slices with a large LV."""
    area = (test.labels == 1).sum(axis=(1, 2))
    order = np.argsort(-area, kind="stable")
    candidates = np.sort(order[: max(n * 4, n)])
    return candidates[np.linspace(0, len(candidates) - 1, min(n, len(candidates))).astype(int)]
