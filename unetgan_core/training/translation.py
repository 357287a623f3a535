"""Unpaired translators between vendors: CycleGAN and the paper's Unet-GAN (step 2 of its workflow).

Four networks: ``G_S`` (target -> source), ``G_T`` (source -> target) and the PatchGAN critics ``D_S``, ``D_T``.
Generators and discriminators are updated alternately on unpaired, unlabelled batches. The generator objective is

    L = L_GAN + lambda_unet * L_Unet + lambda_ssim * L_SSIM + lambda_cycle * L_cycle

(the paper's Eq. 5, plus CycleGAN's cycle term when ``lambda_cycle > 0``). ``L_Unet`` is the MSE between the
frozen source Unet's encoder features of two images, ``L_SSIM`` is ``1 - SSIM`` with the structure term weighted
most. Which two images they compare is ``unet_pairing`` / ``ssim_pairing``:

- ``translated`` (default): the original and its translation, ``(t, G_S(t))`` and ``(s, G_T(s))``. This is what
  the paper writes ("between the original and translated image"), and it constrains ``G_S(t)`` itself, the very
  image the Unet segments at test time.
- ``cycle``: the original and its round trip, ``(t, G_T(G_S(t)))`` and ``(s, G_S(G_T(s)))``. Weaker: ``G_S``
  may move anatomy as long as ``G_T`` moves it back. Kept as an ablation.

Plain CycleGAN is ``lambda_unet = lambda_ssim = 0``, ``lambda_cycle = 10``.

Fakes shown to the discriminators come from a history pool of ``pool_size`` earlier fakes (Shrivastava et al.
2017, as in the CycleGAN reference code): half the time the critic sees an older fake, which damps the
oscillation of the two players. ``pool_size = 0`` turns it off. The pool's coin flips come from a seeded
generator, so runs stay deterministic.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from unetgan_core.data.sliceset import SliceSet
from unetgan_core.device import resolve_device, seed_everything
from unetgan_core.errors import DataError, UserError
from unetgan_core.hashing import derive_seed
from unetgan_core.inference import translate
from unetgan_core.losses import feature_loss, gan_loss, ssim_loss
from unetgan_core.models import create_model
from unetgan_core.schema import check_fields, check_model_options, field
from unetgan_core.training.health import training_status, translator_health
from unetgan_core.training.progress import JsonlLog, progress_bar
from unetgan_core.training.selection import SELECTORS, SelectionInputs

HEALTH_IMAGES = 64  # target images translated for the failed-training check
PROBE_IMAGES = 8  # held-out source and target images on which every loss term is measured at each checkpoint
PROBE_TERMS = ("gan", "unet", "ssim", "cycle")  # ``probe_<term>`` in each checkpoint record

MAX_WEIGHT = 1e4  # largest loss weight: beyond it one term is the whole objective


@dataclasses.dataclass(frozen=True)
class TranslatorConfig:
    """How a translator is trained. Defaults are the paper's Unet-GAN (section 3.2) where it gives a value.

    Args:
        generator: ``resnet_generator`` arguments; ``residual=True`` starts at the identity, so an undertrained
            translator changes little rather than producing noise.
        discriminator: ``patch_discriminator`` arguments.
        gan_loss: ``lsgan`` (least squares, the CycleGAN reference's choice, stabler in short runs) or ``log``
            (the formula printed in the paper).
        cycle_loss: ``l2`` (the paper's description of CycleGAN) or ``l1`` (Zhu et al.'s code).
        lambda_cycle: weight of the cycle loss; 0 in the paper's Unet-GAN (Eq. 5 has none), 10 for CycleGAN.
        lambda_unet: weight of the Unet feature loss (paper: lambda_1 = 15).
        lambda_ssim: weight of the SSIM loss (paper: lambda_2 = 5).
        ssim_exponents: ``(alpha, beta, gamma)`` of luminance, contrast, structure (paper: 0.1, 0.1, 1).
        feature_blocks: Unet encoder blocks of the feature loss (paper: the 7th and 9th residual blocks).
        unet_pairing: image pair of the feature loss, ``translated`` or ``cycle`` (module docstring).
        ssim_pairing: image pair of the SSIM loss, ``translated`` or ``cycle``.
        feature_norm: ``none`` (the paper's MSE of raw features) or ``channel``: each channel of both feature maps
            is standardised with the mean and standard deviation of the original image's channel
            (``losses.feature_loss``), so no channel dominates the MSE by its scale alone.
        lr: Adam learning rate of all four networks (paper: 1e-5; short CPU runs may need ~2e-4 to move at all).
        adam_betas: Adam's ``(beta1, beta2)``; 0.5 is the usual GAN momentum (CycleGAN reference).
        steps: generator/discriminator update pairs.
        batch_size: source and target images per step (each).
        pool_size: history pool of fakes per discriminator; 0 = always the newest fakes.
        selection: ``unlabelled`` (no target labels) or ``oracle`` (target validation labels; flagged).
        check_every: steps between checkpoint scores (step 0, every ``check_every`` and the last are scored).
    """

    generator: dict = field({"residual": True}, doc="resnet_generator options")
    discriminator: dict = field({}, doc="patch_discriminator options")
    gan_loss: Literal["lsgan", "log"] = field("lsgan", doc="lsgan (least squares) or log (the paper's formula)")
    cycle_loss: Literal["l1", "l2"] = field("l2", doc="norm of the cycle loss")
    lambda_cycle: float = field(0.0, doc="cycle loss weight (0 in the paper's Unet-GAN)", ge=0.0, le=MAX_WEIGHT)
    lambda_unet: float = field(15.0, doc="Unet feature loss weight (paper: 15)", ge=0.0, le=MAX_WEIGHT)
    lambda_ssim: float = field(5.0, doc="SSIM loss weight (paper: 5)", ge=0.0, le=MAX_WEIGHT)
    ssim_exponents: tuple[float, float, float] = field(
        (0.1, 0.1, 1.0), doc="SSIM luminance, contrast, structure exponents", ge=0.0, le=10.0
    )
    feature_blocks: tuple[str, ...] = field(("block7", "block9"), doc="Unet encoder blocks of the feature loss")
    unet_pairing: Literal["translated", "cycle"] = field("translated", doc="image pair of the feature loss")
    ssim_pairing: Literal["translated", "cycle"] = field("translated", doc="image pair of the SSIM loss")
    feature_norm: Literal["none", "channel"] = field(
        "none",
        doc="none (the paper's plain MSE) or channel: features standardised per channel before the MSE",
        omit_default=True,
    )
    lr: float = field(1e-5, doc="Adam learning rate (paper: 1e-5)", gt=0.0, le=10.0)
    adam_betas: tuple[float, float] = field((0.5, 0.999), doc="Adam's (beta1, beta2)", ge=0.0, lt=1.0)
    steps: int = field(2000, doc="generator/discriminator update pairs", ge=1, le=1_000_000)
    batch_size: int = field(4, doc="source and target images per step (each)", ge=1, le=4096)
    pool_size: int = field(50, doc="history pool of fakes per discriminator (0 = off)", ge=0, le=10_000)
    selection: str = field(
        "unlabelled", doc="checkpoint selection (set by [scenarios] selection)", choices=SELECTORS.names
    )
    check_every: int = field(100, doc="steps between checkpoint scores", ge=1, le=1_000_000)

    def __post_init__(self) -> None:
        check_fields(self)
        for key, model in (("generator", "resnet_generator"), ("discriminator", "patch_discriminator")):
            try:
                check_model_options(model, getattr(self, key))
            except UserError as exc:
                raise UserError(f"{key}: {exc}") from None
        if self.lambda_unet > 0 and not self.feature_blocks:
            raise UserError("feature_blocks must name at least one Unet block when lambda_unet > 0")

    @property
    def standardise(self) -> bool:
        """Whether the feature loss standardises each channel first (``feature_norm = "channel"``)."""
        return self.feature_norm == "channel"

    @property
    def needs_cycle(self) -> bool:
        """Whether the round trip ``G_T(G_S(t))``, ``G_S(G_T(s))`` must be computed at all."""
        return self.lambda_cycle > 0 or (
            (self.lambda_unet > 0 and self.unet_pairing == "cycle")
            or (self.lambda_ssim > 0 and self.ssim_pairing == "cycle")
        )


class ImagePool:
    """A history of generated images (Shrivastava et al. 2017), with seeded draws.

    Args:
        size: images kept; 0 returns each query unchanged.
        gen: CPU generator for the keep-or-swap decisions.
    """

    def __init__(self, size: int, gen: torch.Generator) -> None:
        self.size = size
        self.gen = gen
        self.images: list[torch.Tensor] = []

    def query(self, fakes: torch.Tensor) -> torch.Tensor:
        """Return a batch like ``fakes`` (detached): new fakes while filling, then each one swapped with p = 0.5."""
        if self.size == 0:
            return fakes.detach()
        out = []
        for image in fakes.detach():
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif float(torch.rand((), generator=self.gen)) < 0.5:
                slot = int(torch.randint(len(self.images), (), generator=self.gen))
                out.append(self.images[slot].clone())
                self.images[slot] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)


def build_translator_models(cfg: TranslatorConfig, seed: int) -> dict[str, nn.Module]:
    """The four networks, initialised from ``seed``: ``g_s``, ``g_t``, ``d_s``, ``d_t`` (in training mode)."""
    seed_everything(derive_seed(seed, "translator", "init"))
    return {
        "g_s": create_model("resnet_generator", **cfg.generator),
        "g_t": create_model("resnet_generator", **cfg.generator),
        "d_s": create_model("patch_discriminator", **cfg.discriminator),
        "d_t": create_model("patch_discriminator", **cfg.discriminator),
    }


def _images(slices: SliceSet) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(slices.images, dtype=np.float32))[:, None]


class _Sampler:
    """Endless shuffled mini-batches from one image stack (reshuffled each pass, seeded)."""

    def __init__(self, images: torch.Tensor, batch_size: int, gen: torch.Generator) -> None:
        self.images, self.batch_size, self.gen = images, batch_size, gen
        self.order, self.pos = torch.randperm(len(images), generator=gen), 0

    def next(self) -> torch.Tensor:
        idx = []
        while len(idx) < self.batch_size:
            if self.pos == len(self.order):
                self.order, self.pos = torch.randperm(len(self.images), generator=self.gen), 0
            take = min(self.batch_size - len(idx), len(self.order) - self.pos)
            idx.extend(self.order[self.pos : self.pos + take].tolist())
            self.pos += take
        return self.images[idx]


def _set_grad(modules, flag: bool) -> None:
    for m in modules:
        for p in m.parameters():
            p.requires_grad_(flag)


def generator_losses(
    nets: dict[str, nn.Module], unet: nn.Module, s: torch.Tensor, t: torch.Tensor, cfg: TranslatorConfig
) -> tuple[torch.Tensor, dict[str, float], torch.Tensor, torch.Tensor]:
    """The generator objective on one source batch ``s`` and one target batch ``t``.

    Args:
        nets: ``g_s``, ``g_t``, ``d_s``, ``d_t``.
        unet: the frozen source Unet.
        s, t: ``[B, 1, H, W]`` in [0, 1].
        cfg: loss weights and pairings.

    Returns:
        ``(total, parts, fake_s, fake_t)``: the scalar to minimise, its terms as floats, and the translations
        ``G_S(t)``, ``G_T(s)`` for the discriminator step.
    """
    adversarial = gan_loss(cfg.gan_loss)
    fake_s, fake_t = nets["g_s"](t), nets["g_t"](s)
    loss_gan = adversarial(nets["d_s"](fake_s), True) + adversarial(nets["d_t"](fake_t), True)
    pairs = {"translated": [(t, fake_s), (s, fake_t)]}
    total = loss_gan
    parts = {"loss_gan": float(loss_gan.detach())}
    if cfg.needs_cycle:
        rec_t, rec_s = nets["g_t"](fake_s), nets["g_s"](fake_t)
        pairs["cycle"] = [(t, rec_t), (s, rec_s)]
    if cfg.lambda_cycle > 0:
        distance = F.l1_loss if cfg.cycle_loss == "l1" else F.mse_loss
        loss_cycle = sum(distance(rec, orig) for orig, rec in pairs["cycle"])
        total = total + cfg.lambda_cycle * loss_cycle
        parts["loss_cycle"] = float(loss_cycle.detach())
    if cfg.lambda_unet > 0:
        loss_unet = sum(
            feature_loss(unet, a, b, cfg.feature_blocks, cfg.standardise) for a, b in pairs[cfg.unet_pairing]
        )
        total = total + cfg.lambda_unet * loss_unet
        parts["loss_unet"] = float(loss_unet.detach())
    if cfg.lambda_ssim > 0:
        alpha, beta, gamma = cfg.ssim_exponents
        loss_ssim = sum(ssim_loss(a, b, alpha, beta, gamma) for a, b in pairs[cfg.ssim_pairing])
        total = total + cfg.lambda_ssim * loss_ssim
        parts["loss_ssim"] = float(loss_ssim.detach())
    parts["loss_g"] = float(total.detach())
    return total, parts, fake_s, fake_t


@torch.no_grad()
def loss_magnitudes(
    nets: dict[str, nn.Module], unet: nn.Module, s: torch.Tensor, t: torch.Tensor, cfg: TranslatorConfig
) -> dict[str, float]:
    """Every term of the generator objective, unweighted, on fixed images: ``probe_gan``, ``probe_unet``, ...

    Terms whose weight is 0 are measured too (with the configured pairing and norm), so a run without the
    feature loss still shows how far the features drift. Nothing is updated and no random number is drawn, so
    training is the same with or without these records. The feature term is left out when its weight is 0 and
    the segmenter is not an LV-Unet (an external model may have no feature layers).

    Args:
        nets, unet, cfg: as :func:`generator_losses`.
        s, t: fixed source and target images ``[B, 1, H, W]`` (held-out ones where there are any).
    """
    from unetgan_core.models.unet import LVUnet

    unet_weight = 1.0 if cfg.lambda_unet > 0 or (isinstance(unet, LVUnet) and cfg.feature_blocks) else 0.0
    probe = dataclasses.replace(cfg, lambda_cycle=1.0, lambda_unet=unet_weight, lambda_ssim=1.0)
    _, parts, _, _ = generator_losses(nets, unet, s, t, probe)
    return {f"probe_{term}": parts[f"loss_{term}"] for term in PROBE_TERMS if f"loss_{term}" in parts}


def _probe_batch(held_out: SliceSet | None, train: SliceSet, device) -> torch.Tensor:
    """The first ``PROBE_IMAGES`` held-out images (training ones when none are held out)."""
    slices = held_out if held_out is not None and len(held_out) else train
    return _images(slices)[:PROBE_IMAGES].to(device)


def discriminator_loss(d: nn.Module, real: torch.Tensor, fake: torch.Tensor, cfg: TranslatorConfig) -> torch.Tensor:
    """Half the critic's loss on a real and a (detached) fake batch, as in CycleGAN (slows D relative to G)."""
    adversarial = gan_loss(cfg.gan_loss)
    return 0.5 * (adversarial(d(real), True) + adversarial(d(fake.detach()), False))


class _FrozenUnet:
    """Freezes the Unet (eval mode, no parameter gradients) for a block and restores it afterwards."""

    def __init__(self, unet: nn.Module) -> None:
        self.unet = unet
        self.mode = unet.training
        self.flags = [p.requires_grad for p in unet.parameters()]

    def __enter__(self) -> nn.Module:
        self.unet.eval()
        _set_grad([self.unet], False)
        return self.unet

    def __exit__(self, *exc) -> None:
        self.unet.train(self.mode)
        for p, flag in zip(self.unet.parameters(), self.flags, strict=True):
            p.requires_grad_(flag)


def _selection_inputs(
    cfg: TranslatorConfig, val_source: SliceSet | None, val_target: SliceSet | None
) -> SelectionInputs | None:
    if val_target is None or len(val_target) == 0:
        return None
    selector = SELECTORS.get(cfg.selection)
    if selector.needs_source and (val_source is None or len(val_source) == 0):
        raise UserError(f"{cfg.selection} translator selection needs held-out source validation slices")
    if selector.needs_target_labels:
        keep = val_target.labelled
        if not keep.any():
            raise DataError(f"oracle selection: no labelled {val_target.vendor} validation slice")
        target_images, target_labels = val_target.images[keep], val_target.labels[keep]
        target_myo = val_target.myo_labelled[keep]
    else:
        # Only images cross this line: the unlabelled selector cannot read target labels even by mistake.
        target_images, target_labels, target_myo = val_target.images, None, None
    return SelectionInputs(
        source_images=None if val_source is None else val_source.images,
        source_labels=None if val_source is None else val_source.labels,
        target_images=target_images,
        target_labels=target_labels,
        target_myo_labelled=target_myo,
        feature_blocks=tuple(cfg.feature_blocks),
    )


def train_translator(
    source: SliceSet,
    target: SliceSet,
    unet: nn.Module,
    cfg: TranslatorConfig,
    seed: int,
    device: str = "cpu",
    val_source: SliceSet | None = None,
    val_target: SliceSet | None = None,
    log_path=None,
    progress: bool = True,
) -> tuple[nn.Module, dict[str, Any]]:
    """Train ``G_S`` (target -> source) with the Unet-GAN or CycleGAN objective and select a checkpoint.

    Labels of ``source`` and ``target`` are never read; ``val_target`` labels are read only for ``oracle``
    selection.

    Args:
        source: source-vendor training slices (images only are used).
        target: target-vendor training slices (images only are used).
        unet: the trained source Unet; frozen during training and restored to its previous state afterwards.
        cfg: objective, optimiser and selection settings.
        seed: fixes initial weights, batch order and pool draws (on CPU, identical weights).
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        val_source: held-out source slices for ``unlabelled`` selection.
        val_target: held-out target slices scored for selection; None keeps the last step.
        log_path: JSON-lines file that gets one record per checkpoint score (appended), or None.
        progress: tqdm bar with the current generator loss (only on a terminal).

    Returns:
        ``(generator_S, history)``: ``G_S`` in eval mode with the selected weights, and a dict with ``checks``
        (per-check records of mean losses since the last check, every loss term on fixed held-out images as
        ``probe_gan``, ``probe_unet``, ``probe_ssim``, ``probe_cycle`` (:func:`loss_magnitudes`), and scores), ``selection`` (``"unlabelled"``, ``"oracle"`` or
        ``"final"`` when no validation set was given), ``best_step``, ``best_score``, ``images_per_s``
        (source + target images per second of training), and ``health``, ``status`` and ``status_reason``
        (``"failed_training"`` when ``G_S``'s output is NaN or constant; ``training.health``).
    """
    if len(source) == 0 or len(target) == 0:
        raise DataError(f"translator training needs source and target images, got {len(source)} and {len(target)}")
    dev = resolve_device(device)
    nets = {k: m.to(dev) for k, m in build_translator_models(cfg, seed).items()}
    unet = unet.to(dev)
    opt_g = torch.optim.Adam(
        list(nets["g_s"].parameters()) + list(nets["g_t"].parameters()), lr=cfg.lr, betas=cfg.adam_betas
    )
    opt_d = torch.optim.Adam(
        list(nets["d_s"].parameters()) + list(nets["d_t"].parameters()), lr=cfg.lr, betas=cfg.adam_betas
    )
    sample_s = _Sampler(_images(source), cfg.batch_size, torch.Generator().manual_seed(derive_seed(seed, "src")))
    sample_t = _Sampler(_images(target), cfg.batch_size, torch.Generator().manual_seed(derive_seed(seed, "tgt")))
    pool_gen = torch.Generator().manual_seed(derive_seed(seed, "pool"))
    pool_s, pool_t = ImagePool(cfg.pool_size, pool_gen), ImagePool(cfg.pool_size, pool_gen)
    inputs = _selection_inputs(cfg, val_source, val_target)
    selector = SELECTORS.get(cfg.selection)
    log = JsonlLog(log_path)
    history: dict[str, Any] = {"checks": [], "selection": cfg.selection if inputs else "final"}
    best = {"score": -np.inf, "step": cfg.steps, "state": None}
    interval: list[dict[str, float]] = []
    train_seconds = 0.0
    probe_s, probe_t = _probe_batch(val_source, source, dev), _probe_batch(val_target, target, dev)

    def check(step: int) -> None:
        record: dict[str, Any] = {"step": step, "selection": history["selection"]}
        for key in interval[0] if interval else ():
            record[key] = float(np.mean([p[key] for p in interval]))
        record.update(loss_magnitudes(nets, unet, probe_s, probe_t, cfg))
        if inputs is not None:
            scores = selector.score(unet, nets["g_s"], nets["g_t"], inputs)
            record.update(scores)
            # Strictly better only: on ties the earlier (less changed) translator is kept.
            if scores["score"] > best["score"]:
                best.update(score=scores["score"], step=step, state=copy.deepcopy(nets["g_s"].state_dict()))
        history["checks"].append(log.write(record))
        interval.clear()

    bar = progress_bar(cfg.steps, f"translator[{cfg.selection}]", progress)
    try:
        with _FrozenUnet(unet):
            if inputs is not None and selector.prepare is not None:
                inputs = selector.prepare(unet, inputs)
            check(0)
            for step in range(1, cfg.steps + 1):
                t0 = time.perf_counter()
                s, t = sample_s.next().to(dev), sample_t.next().to(dev)
                for net in nets.values():
                    net.train()
                # Generator update with the critics fixed (their parameters get no gradient here).
                _set_grad([nets["d_s"], nets["d_t"]], False)
                total, parts, fake_s, fake_t = generator_losses(nets, unet, s, t, cfg)
                opt_g.zero_grad(set_to_none=True)
                total.backward()
                opt_g.step()
                # Critic update on real images against (pooled) fakes.
                _set_grad([nets["d_s"], nets["d_t"]], True)
                loss_d = discriminator_loss(nets["d_s"], s, pool_s.query(fake_s), cfg) + discriminator_loss(
                    nets["d_t"], t, pool_t.query(fake_t), cfg
                )
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                opt_d.step()
                train_seconds += time.perf_counter() - t0
                parts["loss_d"] = float(loss_d.detach())
                interval.append(parts)
                bar.update(1)
                bar.set_postfix(loss_g=f"{parts['loss_g']:.4f}", loss_d=f"{parts['loss_d']:.4f}")
                if step % cfg.check_every == 0 or step == cfg.steps:
                    check(step)
    finally:
        bar.close()
    g_s = nets["g_s"]
    if best["state"] is not None:
        g_s.load_state_dict(best["state"])
    history.update(best_step=best["step"], best_score=None if inputs is None else best["score"])
    history["images_per_s"] = 2 * cfg.batch_size * cfg.steps / train_seconds
    g_s.eval()
    # Failed-training check on target images: validation ones when given, else (at most 64) training ones.
    checked = val_target if val_target is not None and len(val_target) else target
    history["health"] = translator_health(translate(g_s, checked.images[:HEALTH_IMAGES]))
    history["status"], history["status_reason"] = training_status(history)
    return g_s, history
