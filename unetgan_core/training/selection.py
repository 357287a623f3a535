"""Checkpoint selection: which weights a training run keeps.

Segmentation keeps the epoch with the best Dice on held-out *source* validation slices (labels of the source
domain are available by assumption).

Translators are selected one of two ways:

- ``unlabelled`` (the default, and the honest setting: the paper's premise is that the target domain has no
  labels). The score is the Frechet distance between the Unet's encoder features of translated target
  validation images ``G_S(t)`` and of source validation images ``s`` (each feature map pooled to its channel means,
  Gaussians with diagonal covariance, as FID does with Inception features). The Unet encoder is exactly the
  feature extractor the segmentation depends on, so a translator that makes target images look like source images
  *to the Unet* scores well, and the identity (the starting point of a residual generator) scores as badly as the
  domain gap. Checkpoint 0 (before training) is always a candidate, so selection never does worse than "no
  translation" by this measure. We do not select by round-trip agreement ``Unet(s)`` vs ``Unet(G_S(G_T(s)))``
  alone: the untrained residual generator is the identity and would always win. It is recorded in the history
  as a diagnostic (``cycle_agreement_source``) because a low value flags a translator that destroys anatomy.
  No target label is read: the selector only ever receives target *images*.
- ``oracle``: mean Dice of the Unet on ``G_S(t)`` against the target validation labels. It uses labels that the
  method is not supposed to have, so every output records ``selection="oracle"`` and reports must label it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from unetgan_core.device import eval_mode, module_device
from unetgan_core.errors import UserError
from unetgan_core.inference import EVAL_BATCH, as_input, batches, segment, translate
from unetgan_core.metrics import dice_scores
from unetgan_core.registry import Registry


def mean_dice(pred: np.ndarray, labels: np.ndarray, myo_labelled: np.ndarray | None = None) -> float:
    """Mean over images of ``dice_mean`` from ``metrics.dice_scores`` (blood pool and myocardium).

    Args:
        pred: predicted labels ``[N, H, W]``.
        labels: ground truth ``[N, H, W]``.
        myo_labelled: bool ``[N]``; where False only the blood pool is scored (None: all annotated).
    """
    return float(np.mean(dice_scores(pred, labels, myo_labelled)["dice_mean"]))


@torch.no_grad()
def pooled_features(
    unet: nn.Module, images: torch.Tensor, blocks: tuple[str, ...], batch_size: int = EVAL_BATCH
) -> torch.Tensor:
    """Channel means of the Unet encoder's ``blocks`` for each image: ``[N, sum of channels]`` float64 on CPU."""
    x = as_input(images, module_device(unet))
    rows = []
    with eval_mode(unet):
        for b in batches(x, batch_size):
            feats = unet.encode(b, tuple(blocks))
            rows.append(torch.cat([feats[name].float().mean(dim=(2, 3)) for name in blocks], dim=1).double().cpu())
    return torch.cat(rows)


def frechet_distance_diagonal(a: torch.Tensor, b: torch.Tensor) -> float:
    """Frechet distance between two feature sets modelled as Gaussians with diagonal covariance.

    Args:
        a, b: ``[N, D]`` and ``[M, D]`` feature rows.

    Returns:
        ``mean_d[(mu_a - mu_b)^2 + (sd_a - sd_b)^2]``, averaged over dimensions so the scale does not grow with the
        number of channels (0 for identical distributions).
    """
    mu_a, mu_b = a.mean(0), b.mean(0)
    sd_a, sd_b = a.std(0, unbiased=False), b.std(0, unbiased=False)
    return float(((mu_a - mu_b) ** 2 + (sd_a - sd_b) ** 2).mean())


@dataclasses.dataclass(frozen=True)
class SelectionInputs:
    """What a selector may look at. Target labels are present only when the selector declares it needs them.

    Args:
        source_images: held-out source validation images ``[N, H, W]`` in [0, 1].
        source_labels: their labels ``[N, H, W]`` (source labels are allowed).
        target_images: held-out target validation images ``[M, H, W]`` in [0, 1].
        target_labels: ``[M, H, W]`` for ``oracle`` selection, otherwise None.
        target_myo_labelled: bool ``[M]`` alongside ``target_labels`` (None: all annotated).
        feature_blocks: Unet encoder blocks compared by the unlabelled score (e.g. ``("block7", "block9")``).
        source_reference: what the frozen Unet makes of ``source_images`` (``Selector.prepare``), or None to
            compute it at each score.
    """

    source_images: np.ndarray | None
    source_labels: np.ndarray | None
    target_images: np.ndarray
    target_labels: np.ndarray | None
    target_myo_labelled: np.ndarray | None
    feature_blocks: tuple[str, ...]
    source_reference: SourceReference | None = None


@dataclasses.dataclass(frozen=True)
class SourceReference:
    """The frozen Unet's view of the source validation images, the same at every checkpoint of a translator.

    Args:
        features: their pooled encoder features (``pooled_features``), ``[N, D]``.
        segmentation: their predicted labels (``inference.segment``), ``[N, H, W]``.
    """

    features: torch.Tensor
    segmentation: np.ndarray

    @classmethod
    def of(cls, unet: nn.Module, inputs: SelectionInputs) -> SourceReference:
        """Run ``unet`` (frozen: its weights must not change while the reference is used) on the source images."""
        source = as_input(inputs.source_images, module_device(unet))
        return cls(pooled_features(unet, source, inputs.feature_blocks), segment(unet, source))


@dataclasses.dataclass(frozen=True)
class Selector:
    """A checkpoint score: higher is better.

    Args:
        name: recorded in history and results as ``selection``.
        needs_target_labels: if False, ``train_translator`` never passes target labels to ``score``.
        needs_source: whether held-out source images are required.
        score: ``(unet, g_s, g_t, inputs) -> dict`` with at least ``"score"`` (higher is better).
        prepare: ``(unet, inputs) -> inputs`` run once before the first score with the frozen Unet, to compute what
            every score would otherwise compute again (the scores stay exactly the same); None for nothing.
    """

    name: str
    needs_target_labels: bool
    needs_source: bool
    score: Callable[[nn.Module, nn.Module, nn.Module, SelectionInputs], dict[str, float]]
    prepare: Callable[[nn.Module, SelectionInputs], SelectionInputs] | None = None


SELECTORS: Registry[Selector] = Registry("translator selection")


def _with_source_reference(unet: nn.Module, inputs: SelectionInputs) -> SelectionInputs:
    return dataclasses.replace(inputs, source_reference=SourceReference.of(unet, inputs))


def _unlabelled(unet: nn.Module, g_s: nn.Module, g_t: nn.Module, inputs: SelectionInputs) -> dict[str, float]:
    reference = inputs.source_reference or SourceReference.of(unet, inputs)
    source = as_input(inputs.source_images, module_device(g_s))
    translated = translate(g_s, inputs.target_images)
    fd = frechet_distance_diagonal(pooled_features(unet, translated, inputs.feature_blocks), reference.features)
    round_trip = translate(g_s, translate(g_t, source))
    agreement = mean_dice(segment(unet, round_trip), reference.segmentation)
    return {"score": -fd, "feature_frechet": fd, "cycle_agreement_source": agreement}


def _oracle(unet: nn.Module, g_s: nn.Module, g_t: nn.Module, inputs: SelectionInputs) -> dict[str, float]:
    if inputs.target_labels is None:
        raise UserError("oracle selection needs labelled target validation slices")
    pred = segment(unet, translate(g_s, inputs.target_images))
    dice = mean_dice(pred, inputs.target_labels, inputs.target_myo_labelled)
    return {"score": dice, "target_val_dice": dice}


SELECTORS.add(
    "unlabelled",
    Selector(
        "unlabelled", needs_target_labels=False, needs_source=True, score=_unlabelled, prepare=_with_source_reference
    ),
)
SELECTORS.add("oracle", Selector("oracle", needs_target_labels=True, needs_source=False, score=_oracle))
