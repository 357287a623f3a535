"""Supervised training of the LV-Unet on the source vendor (step 1 of the paper's workflow)."""

from __future__ import annotations

import copy
import dataclasses
import math
import time
import types
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import numpy as np
import torch
from torch import nn

from unetgan_core.data.sliceset import RIGHT_VENTRICLE, SliceSet
from unetgan_core.device import autocast, resolve_device, seed_everything
from unetgan_core.errors import DataError, UserError
from unetgan_core.hashing import derive_seed
from unetgan_core.losses import segmentation_loss
from unetgan_core.models import create_model
from unetgan_core.training.augment import VARIANTS, AugmentSettings, augment_batch, spatial_augment
from unetgan_core.training.health import HEALTH_DEFAULTS, SegmenterLimits, segmenter_health, training_status
from unetgan_core.training.progress import JsonlLog, progress_bar
from unetgan_core.training.selection import mean_dice, segment

# ---------------------------------------------------------------------------------------------------------------
# Typed configuration from plain dicts (TOML tables)


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    return getattr(tp, "__name__", str(tp))


def _coerce(key: str, value: Any, tp: Any) -> Any:
    """``value`` converted to ``tp`` (lists to tuples, ints to floats), or a UserError naming ``key``."""
    origin, args = get_origin(tp), get_args(tp)
    bad = UserError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    if tp is Any:
        return value
    if origin is Literal:
        if value not in args:
            raise UserError(f"{key}: {value!r} is not allowed; allowed: {', '.join(repr(a) for a in args)}")
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(key, value, option)
            except UserError:
                continue
        raise bad
    if tp is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise bad
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise bad
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(f"{key}[{i}]", v, args[0]) for i, v in enumerate(value))
        if len(value) != len(args):
            raise UserError(f"{key}: expected {len(args)} values, got {len(value)} ({value!r})")
        return tuple(_coerce(f"{key}[{i}]", v, a) for i, (v, a) in enumerate(zip(value, args, strict=True)))
    if tp is dict or origin is dict:
        if not isinstance(value, dict):
            raise bad
        return dict(value)
    raise TypeError(f"config field {key}: unsupported annotation {tp!r}")


def dataclass_from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Build the frozen config dataclass ``cls`` from a plain dict, checking every key and type.

    Args:
        cls: a dataclass whose fields all have defaults.
        data: e.g. a TOML table; lists become tuples where the field is a tuple.

    Raises:
        UserError: an unknown key (named, with the allowed keys), a value of the wrong type, or a value the
            dataclass's own checks reject.
    """
    if not isinstance(data, dict):
        raise UserError(f"{cls.__name__}: expected a table of settings, got {type(data).__name__}")
    hints = get_type_hints(cls)
    allowed = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        if key not in allowed:
            raise UserError(f"unknown key {key!r}; allowed: {', '.join(allowed)}")
        kwargs[key] = _coerce(key, value, hints[key])
    return cls(**kwargs)


# ---------------------------------------------------------------------------------------------------------------
# Segmentation training


_AUGMENT = AugmentSettings()


@dataclasses.dataclass(frozen=True)
class SegTrainConfig:
    """How the source Unet is trained. Defaults follow the paper's section 3.2 where it gives a value.

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
        noise_sigma: Gaussian noise sd of the ``noisy`` variant, normalised intensity units (the paper gives none).
        gamma_range: random gamma exponent range of ``intensity_aug``.
        bias_strength: largest log-amplitude of its smooth bias field.
        contrast_range: its contrast factor range about the image mean.
        brightness_range: its brightness offset range (normalised intensity units).
        appearance_gamma_range: log-uniform gamma range of ``appearance_aug`` (which also uses the bias, contrast
            and brightness settings above).
        blur_sigma_range: its Gaussian blur sd range, in pixels.
        blur_probability: its chance of blurring an image.
        noise_sigma_range: its additive noise sd range (normalised intensity units).
        noise_probability: its chance of adding noise to an image.
        spatial: rotation, zoom, elastic deformation and optional flips of images and labels before the variant's
            intensity change (``training.augment.spatial_augment``); off by default, on in the real-data suites.
        rotation_deg: its largest rotation, degrees.
        scale_range: its zoom factor range (log-uniform; > 1 magnifies).
        elastic_px: its largest elastic displacement at a control point, pixels.
        elastic_grid: control points per side of the elastic field.
        flip_probability: its chance of a left-right mirror (0: real slices share one canonical orientation).
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
    """

    model: str = "lv_unet"
    model_kwargs: dict = dataclasses.field(default_factory=dict)
    epochs: int = 35
    batch_size: int = 10
    lr: float = 1e-4
    warmup_epochs: int = 0
    lr_decay: Literal["constant", "cosine"] = "constant"
    variant: Literal["clean", "noisy", "intensity_aug", "appearance_aug"] = "clean"
    # The augmentation strengths default to AugmentSettings' own values (one place for them).
    noise_sigma: float = _AUGMENT.noise_sigma
    gamma_range: tuple[float, float] = _AUGMENT.gamma_range
    bias_strength: float = _AUGMENT.bias_strength
    contrast_range: tuple[float, float] = _AUGMENT.contrast_range
    brightness_range: tuple[float, float] = _AUGMENT.brightness_range
    appearance_gamma_range: tuple[float, float] = _AUGMENT.appearance_gamma_range
    blur_sigma_range: tuple[float, float] = _AUGMENT.blur_sigma_range
    blur_probability: float = _AUGMENT.blur_probability
    noise_sigma_range: tuple[float, float] = _AUGMENT.noise_sigma_range
    noise_probability: float = _AUGMENT.noise_probability
    spatial: bool = _AUGMENT.spatial
    rotation_deg: float = _AUGMENT.rotation_deg
    scale_range: tuple[float, float] = _AUGMENT.scale_range
    elastic_px: float = _AUGMENT.elastic_px
    elastic_grid: int = _AUGMENT.elastic_grid
    flip_probability: float = _AUGMENT.flip_probability
    val_every: int = 1
    fail_dice_floor: float = HEALTH_DEFAULTS.dice_floor
    fail_empty_fraction: float = HEALTH_DEFAULTS.empty_fraction
    restarts: int = 0
    bf16: bool = False

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "val_every"):
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.restarts < 0:
            raise UserError(f"restarts must be >= 0, got {self.restarts}")
        if not 0 <= self.warmup_epochs < self.epochs:
            raise UserError(f"warmup_epochs must be within 0..epochs - 1 = {self.epochs - 1}, got {self.warmup_epochs}")
        if self.lr_decay not in ("constant", "cosine"):
            raise UserError(f"lr_decay {self.lr_decay!r} is not allowed; allowed: 'constant', 'cosine'")
        if not self.lr > 0:
            raise UserError(f"lr must be > 0, got {self.lr}")
        if self.variant not in VARIANTS:
            raise UserError(f"variant {self.variant!r} is not allowed; allowed: {', '.join(VARIANTS.names())}")
        self.augment_settings()  # validates the ranges up front
        self.health_limits()

    def augment_settings(self) -> AugmentSettings:
        """The augmentation strengths as the ``augment`` module takes them (every field both classes share)."""
        shared = [f.name for f in dataclasses.fields(AugmentSettings) if hasattr(self, f.name)]
        return AugmentSettings(**{name: getattr(self, name) for name in shared})

    def health_limits(self) -> SegmenterLimits:
        """When a trained Unet counts as failed (``training.health``)."""
        return SegmenterLimits(self.fail_dice_floor, self.fail_empty_fraction)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SegTrainConfig:
        """Build from a ``[unet]`` table; unknown keys and wrong types raise ``UserError``."""
        return dataclass_from_dict(cls, data)


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
