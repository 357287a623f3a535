"""Supervised training of the LV-Unet on the source vendor (step 1 of the paper's workflow)."""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from unetgan_core.data.sliceset import RIGHT_VENTRICLE, SliceSet
from unetgan_core.device import autocast, resolve_device, seed_everything
from unetgan_core.errors import DataError, UserError
from unetgan_core.hashing import derive_seed
from unetgan_core.inference import segment
from unetgan_core.losses import segmentation_loss
from unetgan_core.models import MODELS, create_model
from unetgan_core.schema import check_fields, check_model_options, field
from unetgan_core.training.augment import VARIANTS, AugmentSettings, augment_batch, spatial_augment
from unetgan_core.training.health import HEALTH_DEFAULTS, SegmenterLimits, segmenter_health, training_status
from unetgan_core.training.progress import JsonlLog, progress_bar
from unetgan_core.training.selection import mean_dice


def _augment_field(name: str):
    """A field with ``AugmentSettings``' default, bounds and doc for ``name`` (one place for them)."""
    f = next(f for f in dataclasses.fields(AugmentSettings) if f.name == name)
    return field(f.default, **dict(f.metadata))


@dataclasses.dataclass(frozen=True)
class SegTrainConfig:
    """How the source Unet is trained (a suite's ``[unet]`` table). Defaults follow the paper's section 3.2.

    Args:
        model: registered model name; the paper's LV-Unet.
        model_kwargs: its constructor arguments, e.g. ``{"width": 16}``; small widths keep CPU runs short.
        epochs: passes over the training slices (paper: 35 at 192 px; short suites use fewer).
        batch_size: slices per Adam step (paper: 10).
        lr: Adam learning rate (paper: 1e-4).
        warmup_epochs: the learning rate rises linearly from ``lr / steps`` to ``lr`` over this many epochs (per
            step; 0 = none), so the first Adam steps on an untrained Unet are small.
        lr_decay: ``constant`` or ``cosine`` (after the warm-up, down to 0 at the last step, so the final
            epoch, the one kept without validation subjects, is a settled one).
        variant: ``clean`` (source as is), ``noisy`` (the paper's "polluted" Unet), ``intensity_aug`` or
            ``appearance_aug`` (see ``training.augment``).
        noise_sigma, gamma_range, bias_strength, contrast_range, brightness_range, appearance_gamma_range,
            blur_sigma_range, blur_probability, noise_sigma_range, noise_probability, spatial, rotation_deg,
            scale_range, elastic_px, elastic_grid, flip_probability: the augmentation strengths and the spatial
            augmentation (``training.augment.spatial_augment``; off by default, on in the real-data suites), with
            ``AugmentSettings``' defaults, bounds and units.
        val_every: epochs between validation Dice checks; the best checked epoch is kept.
        fail_dice_floor: a trained Unet whose mean Dice of either class (blood pool, myocardium) on the
            validation slices (training slices without validation subjects) is below this is marked
            ``failed_training`` (``training.health``).
        fail_empty_fraction: ... or whose prediction is empty on more than this fraction of the labelled slices
            that have a blood pool.
        restarts: how many times a failed training is repeated from a new seed derived from the task's seed
            (0 = never). The check uses source labels only (validation, or training slices), like checkpoint
            selection. On the phantom, quick's noisy Unet loses the blood-pool class in one seed (1) of ten from
            its initial weights; a learning-rate warm-up, a lower rate and a noise ramp did not change that.
        bf16: run forward and backward under bf16 autocast (faster on recent CPUs and GPUs; fp32 is the default
            because it is the reproducible reference).

    Example:
        >>> from unetgan_core.schema import load_table
        >>> load_table(SegTrainConfig, {"epochs": 2, "model_kwargs": {"width": 8}}, "[unet]").epochs
        2
    """

    model: str = field("lv_unet", doc="registered segmentation model", choices=MODELS.names)
    model_kwargs: dict = field({}, doc="the model's constructor arguments, e.g. { width = 16 }")
    epochs: int = field(35, doc="passes over the training slices (paper: 35)", ge=1, le=10_000)
    batch_size: int = field(10, doc="slices per Adam step (paper: 10)", ge=1, le=4096)
    lr: float = field(1e-4, doc="Adam learning rate (paper: 1e-4)", gt=0.0, le=10.0)
    warmup_epochs: int = field(0, doc="epochs of linear learning-rate warm-up (0 = none)", ge=0, le=10_000)
    lr_decay: str = field("constant", doc="learning rate after the warm-up", choices=("constant", "cosine"))
    variant: str = field("clean", doc="training variant of the source images", choices=VARIANTS.names)
    noise_sigma: float = _augment_field("noise_sigma")
    gamma_range: tuple[float, float] = _augment_field("gamma_range")
    bias_strength: float = _augment_field("bias_strength")
    contrast_range: tuple[float, float] = _augment_field("contrast_range")
    brightness_range: tuple[float, float] = _augment_field("brightness_range")
    appearance_gamma_range: tuple[float, float] = _augment_field("appearance_gamma_range")
    blur_sigma_range: tuple[float, float] = _augment_field("blur_sigma_range")
    blur_probability: float = _augment_field("blur_probability")
    noise_sigma_range: tuple[float, float] = _augment_field("noise_sigma_range")
    noise_probability: float = _augment_field("noise_probability")
    spatial: bool = _augment_field("spatial")
    rotation_deg: float = _augment_field("rotation_deg")
    scale_range: tuple[float, float] = _augment_field("scale_range")
    elastic_px: float = _augment_field("elastic_px")
    elastic_grid: int = _augment_field("elastic_grid")
    flip_probability: float = _augment_field("flip_probability")
    val_every: int = field(1, doc="epochs between validation Dice checks", ge=1, le=10_000)
    fail_dice_floor: float = field(
        HEALTH_DEFAULTS.dice_floor,
        doc="a trained Unet with either class's Dice below this is marked failed",
        ge=0.0,
        le=1.0,
    )
    fail_empty_fraction: float = field(
        HEALTH_DEFAULTS.empty_fraction,
        doc="... or with empty predictions on more than this fraction of blood-pool slices",
        ge=0.0,
        le=1.0,
    )
    restarts: int = field(
        0, doc="times a failed training is repeated from a seed derived from the task's", ge=0, le=100
    )
    bf16: bool = field(False, doc="train under bf16 autocast (fp32 is the reproducible reference)")

    def __post_init__(self) -> None:
        check_fields(self)
        if self.warmup_epochs >= self.epochs:
            raise UserError(f"warmup_epochs must be within 0..epochs - 1 = {self.epochs - 1}, got {self.warmup_epochs}")
        try:
            check_model_options(self.model, self.model_kwargs)
        except UserError as exc:
            raise UserError(f"model_kwargs: {exc}") from None
        self.augment_settings()  # validates the ranges up front
        self.health_limits()

    def augment_settings(self) -> AugmentSettings:
        """The augmentation strengths as the ``augment`` module takes them (every field both classes share)."""
        shared = [f.name for f in dataclasses.fields(AugmentSettings) if hasattr(self, f.name)]
        return AugmentSettings(**{name: getattr(self, name) for name in shared})

    def health_limits(self) -> SegmenterLimits:
        """When a trained Unet counts as failed (``training.health``)."""
        return SegmenterLimits(self.fail_dice_floor, self.fail_empty_fraction)


def lr_factor(step: int, total_steps: int, warmup_steps: int, decay: str) -> float:
    """Multiplier of the base learning rate at optimiser step ``step`` (0-based) of ``total_steps``.

    Linear warm-up ``(step + 1) / warmup_steps`` over the first ``warmup_steps``, then 1 (``constant``) or a
    cosine from 1 toward 0 (reached one step after the last; ``cosine``).
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if decay == "cosine":
        remaining = max(total_steps - warmup_steps, 1)
        return 0.5 * (1.0 + math.cos(math.pi * (step - warmup_steps) / remaining))
    return 1.0


def training_targets(labels: np.ndarray) -> torch.Tensor:
    """Class indices for the loss: 0 background, 1 blood pool, 2 myocardium (the RV counts as background)."""
    y = np.where(labels == RIGHT_VENTRICLE, 0, labels)
    return torch.from_numpy(y.astype(np.int64))


def _supervised(slices: SliceSet, what: str) -> SliceSet:
    # Slices without a myocardium contour train the blood pool only (segmentation_loss's partial labels).
    if not (slices.labelled & slices.myo_labelled).any():
        raise DataError(f"{what} ({slices.vendor}): no slice has blood-pool and myocardium labels")
    return slices.take(slices.labelled)


def train_segmenter(
    train: SliceSet,
    val: SliceSet,
    cfg: SegTrainConfig,
    seed: int,
    device: str = "cpu",
    log_path=None,
    progress: bool = True,
) -> tuple[nn.Module, dict[str, Any]]:
    """Train the Unet with Adam on cross-entropy + soft Dice, keeping the epoch with the best validation Dice.

    Args:
        train: labelled source training slices (unlabelled slices are skipped; those without a myocardium
            contour train the blood pool only).
        val: held-out source slices (other subjects) for checkpoint selection; empty keeps the last epoch.
        cfg: training settings, including the ``variant`` (clean, noisy, intensity_aug, appearance_aug) and
            ``spatial`` augmentation.
        seed: fixes the initial weights, batch order and augmentation draws (on CPU, identical weights).
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        log_path: JSON-lines file that gets one record per epoch (appended), or None.
        progress: show a tqdm bar with the running loss (only on a terminal).

    Returns:
        ``(model, history)``: the model in eval mode holding the selected weights, and a dict with ``epochs``
        (per-epoch records), ``best_epoch``, ``best_val_dice``, ``selection`` (``"val"`` or ``"final"``),
        ``images_per_s`` (training throughput over the whole run), ``health`` (the selected model measured on
        the validation slices, or the training slices without validation) and the verdict ``status``
        (``"ok"`` or ``"failed_training"``) with ``status_reason`` (``training.health``). With ``cfg.restarts``,
        a failed training is repeated from a derived seed (``derive_seed(seed, "restart", k)``), at most that
        many times; the history is the last attempt's, with ``attempts`` listing every attempt's seed and
        verdict.
    """
    attempts = []
    for k in range(cfg.restarts + 1):
        attempt_seed = seed if k == 0 else derive_seed(seed, "restart", k)
        model, history = _train_once(train, val, cfg, attempt_seed, device, log_path, progress)
        attempts.append({"seed": attempt_seed, "status": history["status"], "status_reason": history["status_reason"]})
        if history["status"] == "ok":
            break
    history["attempts"] = attempts
    return model, history


def _train_once(
    train: SliceSet, val: SliceSet, cfg: SegTrainConfig, seed: int, device: str, log_path, progress: bool
) -> tuple[nn.Module, dict[str, Any]]:
    dev = resolve_device(device)
    train = _supervised(train, "segmentation training set")
    # Validation scores the myocardium only where it was annotated (metrics.dice_scores' rule).
    val = val.take(val.labelled)
    seed_everything(seed)
    model = create_model(cfg.model, **cfg.model_kwargs).to(dev)
    optimiser = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    batch_gen = torch.Generator().manual_seed(derive_seed(seed, "segmentation", "batches"))
    aug_gen = torch.Generator().manual_seed(derive_seed(seed, "segmentation", "augment", cfg.variant))
    # Its own stream, so turning spatial augmentation on leaves the intensity draws as they were.
    spatial_gen = torch.Generator().manual_seed(derive_seed(seed, "segmentation", "spatial"))
    settings = cfg.augment_settings()
    images = torch.from_numpy(np.ascontiguousarray(train.images, dtype=np.float32))[:, None]
    targets = training_targets(train.labels)
    myo_labelled = torch.from_numpy(train.myo_labelled.astype(bool))
    partial = not myo_labelled.all()
    log = JsonlLog(log_path)
    n = len(images)
    steps_per_epoch = (n + cfg.batch_size - 1) // cfg.batch_size
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser,
        lambda step: lr_factor(step, cfg.epochs * steps_per_epoch, cfg.warmup_epochs * steps_per_epoch, cfg.lr_decay),
    )
    history: dict[str, Any] = {
        "epochs": [],
        "best_epoch": None,
        "best_val_dice": None,
        "selection": "final",
        "n_train_slices": n,
        "n_blood_pool_only": int(n - myo_labelled.sum()),
    }
    best_state, best_dice = None, -np.inf
    bar = progress_bar(cfg.epochs * steps_per_epoch, f"unet[{cfg.variant}]", progress)
    try:
        for epoch in range(1, cfg.epochs + 1):
            model.train()
            t0 = time.perf_counter()
            order = torch.randperm(n, generator=batch_gen)
            losses = []
            for start in range(0, n, cfg.batch_size):
                idx = order[start : start + cfg.batch_size]
                x, y = images[idx].to(dev), targets[idx].to(dev)
                if settings.spatial:
                    x, y = spatial_augment(x, y, settings, spatial_gen)
                x = augment_batch(x, cfg.variant, settings, aug_gen)
                with autocast(dev, enabled=cfg.bf16):
                    loss = segmentation_loss(model(x), y, myo_labelled=myo_labelled[idx] if partial else None)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                schedule.step()
                losses.append(float(loss.detach()))
                bar.update(1)
                bar.set_postfix(loss=f"{losses[-1]:.4f}", epoch=epoch)
            seconds = time.perf_counter() - t0
            record = {"epoch": epoch, "loss": float(np.mean(losses)), "seconds": seconds, "images_per_s": n / seconds}
            if len(val) and (epoch % cfg.val_every == 0 or epoch == cfg.epochs):
                dice = mean_dice(segment(model, val.images), val.labels, val.myo_labelled)
                record["val_dice_mean"] = dice
                # Strictly better only: on ties the earlier (less trained) epoch is kept.
                if dice > best_dice:
                    best_dice, best_state = dice, copy.deepcopy(model.state_dict())
                    history.update(best_epoch=epoch, best_val_dice=dice, selection="val")
            history["epochs"].append(log.write(record))
    finally:
        bar.close()
    # Training throughput only: validation passes are left out of the clock.
    history["images_per_s"] = n * cfg.epochs / sum(r["seconds"] for r in history["epochs"])
    if best_state is not None:
        model.load_state_dict(best_state)
    else:
        history["best_epoch"] = cfg.epochs
    model.eval()
    checked = ("val", val) if len(val) else ("train", train)
    history["health"] = segmenter_health(model, checked[1], checked[0], cfg.health_limits())
    history["status"], history["status_reason"] = training_status(history)
    return model, history
