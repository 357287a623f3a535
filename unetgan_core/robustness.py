"""Robustness measures: Dice against attack strength, eps50, the area under the Dice-eps curve,
perturbation size (PSNR, SSIM) and the arrays for the paper's Fig. 1.

``eps`` is always an L-infinity radius in units of the normalised [0, 1] input intensity.
Predictions are the argmax of the scenario's ``logits`` (the same function that is attacked),
so a pipeline is scored on exactly what the attack saw. A pipeline whose pre-processing cannot
be differentiated (histogram matching) attacks only the part it can; its ``attack_note`` says so
and is copied into every row, so the report cannot present it as an end-to-end attack.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from unetgan_core.attacks import ATTACKS, check_attack_options, check_eps, check_images, fgsm_sweep
from unetgan_core.errors import DataError, UserError
from unetgan_core.hashing import derive_seed
from unetgan_core.inference import class_map
from unetgan_core.losses import ssim
from unetgan_core.metrics import dice_scores
from unetgan_core.stats import mean_std


@dataclasses.dataclass(frozen=True)
class SweepRows:
    """What ``evaluate_sweep`` measured.

    Args:
        per_eps: one row per eps, in the order asked: ``attack``, ``eps``, ``target``,
            ``pipeline``, ``differentiable``, ``attack_note``, ``attack_options`` and ``metrics``
            (``dice_mean``, ``dice_blood_pool``, ``dice_myo`` averaged over the scored images, and
            ``<key>_n_unscored`` where some were not scored; ``psnr_db`` of the pooled squared
            error, None at eps 0; mean ``ssim``; ``n_images``), shaped like the ``kind="fgsm"``
            rows of ``results.jsonl``.
        per_image: one row per image and eps: ``index`` (position in the input), ``eps``, the
            Dice keys (None where not scored), ``psnr_db`` (None if unchanged) and ``ssim``.
    """

    per_eps: list[dict[str, Any]]
    per_image: list[dict[str, Any]]


def psnr_db(x: np.ndarray | torch.Tensor, x_adv: np.ndarray | torch.Tensor) -> np.ndarray:
    """Peak signal-to-noise ratio of each perturbed image against its original, in dB.

    Args:
        x: originals ``[N, ...]``, intensities in [0, 1] (the peak is 1).
        x_adv: perturbed images, same shape.

    Returns:
        float64 ``[N]``; ``inf`` where an image is unchanged.
    """
    return _psnr_from_mse(_per_image_mse(x, x_adv))


def _psnr_from_mse(mse: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(1.0 / np.asarray(mse, dtype=np.float64))


def _per_image_mse(x: np.ndarray | torch.Tensor, x_adv: np.ndarray | torch.Tensor) -> np.ndarray:
    a, b = _to_numpy(x).astype(np.float64), _to_numpy(x_adv).astype(np.float64)
    if a.shape != b.shape or a.ndim < 2:
        raise DataError(f"perturbation size needs two image stacks [N, ...] of one shape, got {a.shape} and {b.shape}")
    return ((a - b) ** 2).reshape(len(a), -1).mean(axis=1)


def perturbation_ssim(x: torch.Tensor, x_adv: torch.Tensor) -> np.ndarray:
    """SSIM of each perturbed image against its original (1 = unchanged).

    ``unetgan_core.losses.ssim`` with its defaults (all exponents 1, Gaussian window of 11
    pixels, sigma 1.5 pixels, data range 1), so images must be at least 11 pixels on a side.

    Args:
        x: originals ``[N, 1, H, W]``, intensities in [0, 1].
        x_adv: perturbed images, same shape.

    Returns:
        float64 ``[N]``.
    """
    with torch.no_grad():
        return ssim(x, x_adv).detach().cpu().numpy().astype(np.float64)


def eps50(eps: Sequence[float], dice: Sequence[float]) -> float | None:
    """Smallest eps at which mean Dice falls to half its clean (eps = 0) value.

    Linear interpolation between the two grid points around the first crossing; a curve that
    rises again later does not move it. A clean Dice of 0 gives 0.0 (the model fails already).

    Args:
        eps: attack strengths (units of the [0, 1] input), any order, must include 0, no repeats.
        dice: mean Dice at each eps.

    Returns:
        eps50 in units of the [0, 1] input, or None if Dice never falls to half (not reached on
        this grid).
    """
    e, d = _curve(eps, dice)
    if e[0] != 0.0:
        raise UserError(f"eps50 needs the clean Dice at eps = 0; the smallest eps given is {e[0]}")
    half = d[0] / 2.0
    below = np.nonzero(d <= half)[0]
    if len(below) == 0:
        return None
    i = int(below[0])
    if i == 0:
        return 0.0
    # d[i - 1] > half >= d[i], so the segment falls and the interpolation is well defined.
    return float(e[i - 1] + (half - d[i - 1]) * (e[i] - e[i - 1]) / (d[i] - d[i - 1]))


def auc_dice_eps(eps: Sequence[float], dice: Sequence[float]) -> float:
    """Area under the Dice-eps curve (trapezoid) divided by the eps range: a mean Dice in [0, 1].

    Dividing by the range makes grids of different extent comparable only as "mean Dice over the
    range tested"; compare pipelines on the same grid.

    Args:
        eps: attack strengths (units of the [0, 1] input), any order, at least two distinct values.
        dice: mean Dice at each eps.
    """
    e, d = _curve(eps, dice)
    if len(e) < 2:
        raise UserError(f"auc_dice_eps needs at least two eps values, got {len(e)}")
    area = float(np.sum(np.diff(e) * (d[1:] + d[:-1]) / 2.0))
    return area / float(e[-1] - e[0])


def _curve(eps: Sequence[float], dice: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    e, d = np.asarray(eps, dtype=np.float64), np.asarray(dice, dtype=np.float64)
    if e.ndim != 1 or e.shape != d.shape or len(e) == 0:
        raise UserError(f"eps and dice must be equal-length non-empty lists, got {e.shape} and {d.shape}")
    if not (np.isfinite(e).all() and np.isfinite(d).all()):
        raise UserError("eps and dice must be finite numbers (a NaN Dice must be resolved before summarising)")
    if len(np.unique(e)) != len(e):
        raise UserError(f"eps values must not repeat, got {e.tolist()}")
    order = np.argsort(e)
    return e[order], d[order]


def summarise_curve(per_eps: Sequence[dict[str, Any]], key: str = "dice_mean") -> dict[str, float | None]:
    """``eps50`` and ``auc_dice_eps`` of one sweep's per-eps rows.

    Args:
        per_eps: rows from ``evaluate_sweep`` (one attack and one pipeline).
        key: which metric to summarise, e.g. ``"dice_mean"`` or ``"dice_myo"``.
    """
    eps = [row["eps"] for row in per_eps]
    dice = [row["metrics"][key] for row in per_eps]
    return {"eps50": eps50(eps, dice), "auc_dice_eps": auc_dice_eps(eps, dice)}


def evaluate_sweep(
    pipeline_or_logits_fn: Any,
    images: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    eps_list: Sequence[float],
    attack: str = "fgsm",
    batch_size: int = 16,
    seed: int = 0,
    *,
    attack_options: dict[str, Any] | None = None,
    myo_labelled: np.ndarray | None = None,
    device: str | torch.device | None = None,
) -> SweepRows:
    """Dice, PSNR and SSIM of a segmenter at each attack strength.

    FGSM uses one gradient per batch for the whole sweep (``fgsm_sweep``); other attacks run once
    per eps. Random attacks get a seed per batch derived from ``seed`` and the batch's first
    index, the same at every eps, so the curve follows one random direction as FGSM follows one
    gradient direction.

    Args:
        pipeline_or_logits_fn: a pipeline (its ``logits`` is attacked; ``name``, ``differentiable``
            and ``attack_note`` are copied into the rows) or a callable images ``[N, 1, H, W]`` ->
            logits ``[N, 3, H, W]``, in eval mode.
        images: ``[N, H, W]`` or ``[N, 1, H, W]``, intensities normalised to [0, 1].
        labels: ``[N, H, W]`` uint8 (0 background, 1 blood pool, 2 myocardium, 3 RV = background).
        eps_list: attack strengths in units of the normalised [0, 1] input; include 0 for the clean
            value that ``eps50`` needs.
        attack: a name in ``ATTACKS`` (``fgsm``, ``pgd``, ``random_sign``).
        batch_size: images per attack batch.
        seed: base seed of random attacks.
        attack_options: keyword options of the attack, e.g. ``{"target": "prediction"}`` or
            ``{"steps": 20}`` for ``pgd``; ``seed`` is set here and must not be passed.
        myo_labelled: bool ``[N]``, False where the myocardium was not annotated (its Dice is then
            not scored; see ``unetgan_core.metrics``); default all True.
        device: where the images go; default the pipeline's ``device`` if it has one, else CPU.

    Returns:
        ``SweepRows`` with per-eps and per-image rows.
    """
    logits_fn = getattr(pipeline_or_logits_fn, "logits", pipeline_or_logits_fn)
    if not callable(logits_fn):
        raise UserError(
            f"evaluate_sweep needs a pipeline or a logits function, got {type(pipeline_or_logits_fn).__name__}"
        )
    options = dict(attack_options or {})
    if "seed" in options:
        raise UserError("attack_options must not set seed; pass seed to evaluate_sweep")
    check_attack_options(attack, options)
    attack_fn = ATTACKS.get(attack)
    eps_values = [check_eps(e) for e in eps_list]
    if not eps_values or len(set(eps_values)) != len(eps_values):
        raise UserError(f"eps_list must be non-empty without repeats, got {list(eps_list)}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise UserError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    x_all, y_all = _as_batch(images, labels)
    if len(x_all) == 0:
        raise DataError("evaluate_sweep got no images")
    device = device if device is not None else getattr(pipeline_or_logits_fn, "device", "cpu")
    myo = np.ones(len(x_all), dtype=bool) if myo_labelled is None else np.asarray(myo_labelled, dtype=bool)
    if myo.shape != (len(x_all),):
        raise DataError(f"myo_labelled must have one entry per image ({len(x_all)}), got shape {myo.shape}")

    per_image: list[dict[str, Any]] = []
    mse_sums = dict.fromkeys(eps_values, 0.0)
    for start in range(0, len(x_all), batch_size):
        x = x_all[start : start + batch_size].to(device)
        y = y_all[start : start + batch_size].to(device)
        if attack == "fgsm":
            adversarial = fgsm_sweep(logits_fn, x, y, eps_values, **options)
        else:
            batch_seed = derive_seed(seed, attack, start)
            adversarial = {eps: attack_fn(logits_fn, x, y, eps, seed=batch_seed, **options) for eps in eps_values}
        for eps, x_adv in adversarial.items():
            with torch.no_grad():
                pred = class_map(logits_fn(x_adv))
            dice = dice_scores(
                _to_numpy(pred).astype(np.uint8), _to_numpy(y).astype(np.uint8), myo[start : start + batch_size]
            )
            mse = _per_image_mse(x, x_adv)
            mse_sums[eps] += float(mse.sum())
            psnr = _psnr_from_mse(mse)
            similarity = perturbation_ssim(x, x_adv)
            for j in range(len(x)):
                row = {"index": start + j, "eps": eps}
                # An unscored myocardium is NaN in metrics; JSON has no NaN, so it becomes None.
                row.update({k: _finite_or_none(v[j]) for k, v in dice.items()})
                row.update({"psnr_db": _finite_or_none(psnr[j]), "ssim": float(similarity[j])})
                per_image.append(row)

    # Grouped by eps, then by image, whatever the batch size.
    position = {eps: k for k, eps in enumerate(eps_values)}
    per_image.sort(key=lambda row: (position[row["eps"]], row["index"]))
    n = len(x_all)
    dice_keys = [k for k in per_image[0] if k.startswith("dice")] if per_image else []
    base = {
        "attack": attack,
        "target": options.get("target", "label"),
        "pipeline": getattr(pipeline_or_logits_fn, "name", None),
        "differentiable": getattr(pipeline_or_logits_fn, "differentiable", None),
        "attack_note": getattr(pipeline_or_logits_fn, "attack_note", ""),
        "attack_options": options,
    }
    per_eps = []
    for eps in eps_values:
        rows = [r for r in per_image if r["eps"] == eps]
        metrics: dict[str, Any] = {}
        for key in dice_keys:
            summary = mean_std([np.nan if r[key] is None else r[key] for r in rows])
            metrics[key] = _finite_or_none(summary.mean)
            if summary.n_nan:
                metrics[f"{key}_n_unscored"] = summary.n_nan
        # PSNR of the pooled MSE, not a mean of per-image dB values: one unchanged image (inf dB)
        # would otherwise make the whole row infinite.
        metrics["psnr_db"] = _finite_or_none(float(_psnr_from_mse(mse_sums[eps] / n)))
        metrics["ssim"] = float(np.mean([r["ssim"] for r in rows]))
        metrics["n_images"] = n
        per_eps.append({**base, "eps": eps, "metrics": metrics})
    return SweepRows(per_eps=per_eps, per_image=per_image)


def fig1_panels(
    pipeline_or_logits_fn: Any,
    image: np.ndarray | torch.Tensor,
    label: np.ndarray | torch.Tensor,
    eps: float,
    *,
    attack: str = "fgsm",
    attack_options: dict[str, Any] | None = None,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """The panels of the paper's Fig. 1 for one slice, as numpy arrays (drawing is the report's job).

    Args:
        pipeline_or_logits_fn: a pipeline (its ``logits``) or a logits function, in eval mode.
        image: ``[H, W]`` intensities in [0, 1].
        label: ``[H, W]`` ground truth (0 background, 1 blood pool, 2 myocardium, 3 RV).
        eps: attack strength in units of the normalised [0, 1] input.
        attack: a name in ``ATTACKS``.
        attack_options: keyword options of the attack (not ``seed``).
        seed: seed of random attacks.

    Returns:
        float32 ``image``, ``adversarial`` and ``perturbation`` ``[H, W]`` in [0, 1] (the
        perturbation amplified to the display range: -eps -> 0, unchanged -> 0.5, +eps -> 1),
        uint8 ``pred_before``, ``pred_after`` (predictions on the clean and adversarial image) and
        ``label`` (ground truth) ``[H, W]``, and ``eps`` as a 0-d float array (names as the report
        reads them, ``reports.figures.FGSM_ARRAYS``).
    """
    logits_fn = getattr(pipeline_or_logits_fn, "logits", pipeline_or_logits_fn)
    eps = check_eps(eps)
    options = dict(attack_options or {})
    check_attack_options(attack, options)
    img, lab = _to_numpy(image), _to_numpy(label)
    if img.ndim != 2 or lab.shape != img.shape:
        raise DataError(f"fig1_panels needs one image and its label, both [H, W], got {img.shape} and {lab.shape}")
    x, y = _as_batch(img[None], lab[None])
    x_adv = ATTACKS.get(attack)(logits_fn, x, y, eps, **{"seed": seed, **options})
    with torch.no_grad():
        pred_clean = class_map(logits_fn(x))[0]
        pred_adv = class_map(logits_fn(x_adv))[0]
    delta = (x_adv - x)[0, 0]
    shown = delta / (2.0 * eps) + 0.5 if eps > 0 else torch.full_like(delta, 0.5)
    return {
        "image": _to_numpy(x[0, 0]).astype(np.float32),
        "perturbation": _to_numpy(shown.clamp(0.0, 1.0)).astype(np.float32),
        "adversarial": _to_numpy(x_adv[0, 0]).astype(np.float32),
        "pred_before": _to_numpy(pred_clean).astype(np.uint8),
        "pred_after": _to_numpy(pred_adv).astype(np.uint8),
        "label": lab.astype(np.uint8),
        "eps": np.asarray(eps, dtype=np.float64),
    }


def _as_batch(
    images: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.as_tensor(np.asarray(_to_numpy(images), dtype=np.float32))
    if x.ndim == 3:
        x = x[:, None]
    x = check_images(x)
    y = torch.as_tensor(np.asarray(_to_numpy(labels)).astype(np.int64))
    if tuple(y.shape) != (x.shape[0], *x.shape[2:]):
        raise DataError(
            f"labels must be [N, H, W] = {(x.shape[0], *x.shape[2:])} to match the images, got {tuple(y.shape)}"
        )
    return x, y


def _to_numpy(a: np.ndarray | torch.Tensor) -> np.ndarray:
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def _finite_or_none(value: float) -> float | None:
    # results.jsonl is strict JSON, which has no Infinity: an unchanged image has no finite PSNR.
    return float(value) if math.isfinite(value) else None
