"""Supervised training of the LV-Unet on the source vendor (step 1 of the paper's workflow)."""

from __future__ import annotations

import copy
import dataclasses
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
from unetgan_core.training.augment import VARIANTS, AugmentSettings, augment_batch
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
        variant: ``clean`` (source as is), ``noisy`` (the paper's "polluted" Unet), ``intensity_aug`` or
            ``appearance_aug`` (see ``training.augment``).
        noise_sigma, gamma_range, bias_strength, contrast_range, brightness_range, appearance_gamma_range,
            blur_sigma_range, blur_probability, noise_sigma_range, noise_probability: the augmentation strengths,
            with ``AugmentSettings``' defaults, bounds and units.
        val_every: epochs between validation Dice checks; the best checked epoch is kept.
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
    val_every: int = field(1, doc="epochs between validation Dice checks", ge=1, le=10_000)
    bf16: bool = field(False, doc="train under bf16 autocast (fp32 is the reproducible reference)")

    def __post_init__(self) -> None:
        check_fields(self)
        try:
            check_model_options(self.model, self.model_kwargs)
        except UserError as exc:
            raise UserError(f"model_kwargs: {exc}") from None
        self.augment_settings()  # validates the ranges up front

    def augment_settings(self) -> AugmentSettings:
        """The augmentation strengths as the ``augment`` module takes them (every field both classes share)."""
        shared = [f.name for f in dataclasses.fields(AugmentSettings) if hasattr(self, f.name)]
        return AugmentSettings(**{name: getattr(self, name) for name in shared})


def training_targets(labels: np.ndarray) -> torch.Tensor:
    """Class indices for the loss: 0 background, 1 blood pool, 2 myocardium (the RV counts as background)."""
    y = np.where(labels == RIGHT_VENTRICLE, 0, labels)
    return torch.from_numpy(y.astype(np.int64))


def _supervised(slices: SliceSet, what: str) -> SliceSet:
    # Slices without a myocardium contour would teach "myocardium = background"; they are left out.
    keep = slices.labelled & slices.myo_labelled
    if not keep.any():
        raise DataError(f"{what} ({slices.vendor}): no slice has blood-pool and myocardium labels")
    return slices.take(keep)


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
        train: labelled source training slices (slices lacking labels or a myocardium contour are skipped).
        val: held-out source slices (other subjects) for checkpoint selection; empty keeps the last epoch.
        cfg: training settings, including the ``variant`` (clean, noisy, intensity_aug).
        seed: fixes the initial weights, batch order and augmentation draws (on CPU, identical weights).
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        log_path: JSON-lines file that gets one record per epoch (appended), or None.
        progress: show a tqdm bar with the running loss (only on a terminal).

    Returns:
        ``(model, history)``: the model in eval mode holding the selected weights, and a dict with ``epochs``
        (per-epoch records), ``best_epoch``, ``best_val_dice``, ``selection`` (``"val"`` or ``"final"``) and
        ``images_per_s`` (training throughput over the whole run).
    """
    dev = resolve_device(device)
    train = _supervised(train, "segmentation training set")
    # Validation scores the myocardium only where it was annotated (metrics.dice_scores' rule).
    val = val.take(val.labelled)
    seed_everything(seed)
    model = create_model(cfg.model, **cfg.model_kwargs).to(dev)
    optimiser = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    batch_gen = torch.Generator().manual_seed(derive_seed(seed, "segmentation", "batches"))
    aug_gen = torch.Generator().manual_seed(derive_seed(seed, "segmentation", "augment", cfg.variant))
    settings = cfg.augment_settings()
    images = torch.from_numpy(np.ascontiguousarray(train.images, dtype=np.float32))[:, None]
    targets = training_targets(train.labels)
    log = JsonlLog(log_path)
    n = len(images)
    steps_per_epoch = (n + cfg.batch_size - 1) // cfg.batch_size
    history: dict[str, Any] = {"epochs": [], "best_epoch": None, "best_val_dice": None, "selection": "final"}
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
                x = augment_batch(images[idx].to(dev), cfg.variant, settings, aug_gen)
                y = targets[idx].to(dev)
                with autocast(dev, enabled=cfg.bf16):
                    loss = segmentation_loss(model(x), y)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
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
    return model, history
