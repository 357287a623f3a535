"""Segmentation pipelines: what every scenario is measured and attacked through.

A pipeline turns target images into label maps. All share one interface (``Pipeline``):

- ``predict(images)``: numpy ``[N, H, W]`` in [0, 1] -> uint8 ``[N, H, W]`` labels (0 background, 1 blood
  pool, 2 myocardium); batched, without gradients, every network in eval mode.
- ``logits(x)``: torch ``[N, 1, H, W]`` -> ``[N, 3, H, W]``, differentiable with respect to ``x`` so attacks
  (FGSM) can take the gradient of the whole pipeline.
- ``name``, ``differentiable`` and ``attack_note`` say what an attack on ``logits`` means.

``predict(..., fast=True)`` runs in channels_last memory layout, under bf16 autocast only where the hardware runs
bf16 fast (a GPU, or a CPU with native bf16 or a bf16 probe faster than fp32: ``throughput.fastpath.choose_fast_path``);
elsewhere in channels_last fp32; on a CPU each batch is split over single-thread workers, one per torch thread
(``fast_workers``). ``Pipeline.fast_path_description()`` names the choice. Whether its Dice stays close to fp32 is
measured elsewhere, so it is only a switch here.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from unetgan_core.device import autocast, module_device
from unetgan_core.errors import DataError
from unetgan_core.histmatch import HistogramMatcher
from unetgan_core.inference import class_map
from unetgan_core.throughput.fastpath import (
    choose_fast_path,
    fast_path_description,
    fast_workers,
    single_thread_workers,
)

PREDICT_BATCH = 32  # images per forward pass in predict


class Pipeline:
    """Base class: subclasses implement ``_logits`` and list their networks in ``modules``.

    Attributes:
        name: short label used in results (``"unet"``, ``"translated"``, ``"histmatch"``).
        differentiable: True if ``logits`` is the exact gradient path of ``predict``.
        attack_note: one sentence on what an attack through ``logits`` attacks.
    """

    name: str = "pipeline"
    differentiable: bool = True
    attack_note: str = ""

    def __init__(self, *modules: nn.Module) -> None:
        self.modules = modules
        for m in modules:
            m.eval()

    @property
    def device(self) -> torch.device:
        """Where the pipeline's networks live (inputs are moved there)."""
        return module_device(self.modules[-1])

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @property
    def fast_workers(self) -> int:
        """Single-thread workers ``predict(fast=True)`` splits each batch over (``fastpath.fast_workers``); 1 when a
        network may run its own thread pool (an external model's ``split_batches = False``: ONNX Runtime)."""
        if not all(getattr(m, "split_batches", True) for m in self.modules):
            return 1
        return fast_workers(self.device)

    def fast_path_description(self) -> str:
        """What ``predict(fast=True)`` runs, for the results, e.g. ``"channels_last fp32 on 2 single-thread workers"``."""
        return fast_path_description(self.device, self.fast_workers)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits of the whole pipeline.

        Args:
            x: ``[N, 1, H, W]`` images in [0, 1]; may require grad.

        Returns:
            ``[N, 3, H, W]`` logits; gradients reach ``x`` through every differentiable stage.
        """
        if x.ndim != 4 or x.shape[1] != 1:
            raise DataError(f"{self.name}: logits expects [N, 1, H, W] images, got shape {tuple(x.shape)}")
        for m in self.modules:
            m.eval()
        return self._logits(x)

    @torch.no_grad()
    def predict(self, images: np.ndarray, batch_size: int = PREDICT_BATCH, fast: bool = False) -> np.ndarray:
        """Label maps for a stack of images.

        Args:
            images: ``[N, H, W]`` float in [0, 1].
            batch_size: images per forward pass.
            fast: channels_last, plus bf16 autocast where the hardware runs it fast (``choose_fast_path``);
                faster, with slightly different numbers.

        Returns:
            uint8 ``[N, H, W]``: 0 background, 1 blood pool, 2 myocardium.
        """
        x = np.asarray(images, dtype=np.float32)
        if x.ndim != 3:
            raise DataError(f"{self.name}: predict expects [N, H, W] images, got shape {x.shape}")
        dev = self.device
        dtype = choose_fast_path(dev).dtype if fast else None
        workers = self.fast_workers if fast else 1

        def labels_of(batch: torch.Tensor) -> torch.Tensor:
            # Grad mode and autocast are per thread: set both in whichever thread runs the batch.
            with torch.no_grad(), autocast(dev, enabled=dtype is not None, dtype=dtype or torch.bfloat16):
                return class_map(self.logits(batch))

        if fast:
            for m in self.modules:
                m.to(memory_format=torch.channels_last)
        try:
            out = []
            with single_thread_workers(workers) as pool:
                for start in range(0, len(x), batch_size):
                    batch = torch.from_numpy(x[start : start + batch_size])[:, None].to(dev)
                    if fast:
                        batch = batch.contiguous(memory_format=torch.channels_last)
                    if pool is None or len(batch) < 2:
                        labels = labels_of(batch)
                    else:
                        labels = torch.cat(list(pool.map(labels_of, batch.chunk(workers))))
                    out.append(labels.to(torch.uint8).cpu())
        finally:
            if fast:
                for m in self.modules:
                    m.to(memory_format=torch.contiguous_format)
        if not out:
            return np.zeros(x.shape, dtype=np.uint8)
        return torch.cat(out).numpy()


class UnetPipeline(Pipeline):
    """The source Unet applied to target images as they are (clean, noisy and intensity_aug scenarios).

    Args:
        unet: trained segmentation network ``[N, 1, H, W] -> [N, 3, H, W]``.
        name: label in results.
    """

    attack_note = "attacked through the Unet directly"

    def __init__(self, unet: nn.Module, name: str = "unet") -> None:
        super().__init__(unet)
        self.unet, self.name = unet, name

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.unet(x)


class TranslatedPipeline(Pipeline):
    """Translate target images to the source vendor with ``G_S``, then segment with the source Unet.

    Args:
        generator: ``G_S``, image -> image in [0, 1].
        unet: the source Unet.
        name: label in results (e.g. ``"unetgan"``).
    """

    attack_note = "attacked end to end: the gradient flows through the generator and the Unet"

    def __init__(self, generator: nn.Module, unet: nn.Module, name: str = "translated") -> None:
        super().__init__(generator, unet)
        self.generator, self.unet, self.name = generator, unet, name

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.unet(self.generator(x))


class HistMatchPipeline(Pipeline):
    """Histogram-match target images to the source, then segment with the source Unet.

    The matching is a per-image quantile map computed in numpy, so it has no gradient. ``logits`` treats it as
    fixed (straight-through): the forward value is the Unet on the matched image, the backward pass skips the
    matching (identity Jacobian). An attack therefore perturbs the input as if it were the matched image.

    Args:
        matcher: fitted on the source training images.
        unet: the source Unet.
        name: label in results.
    """

    differentiable = False
    attack_note = "attacked through the Unet on the matched image (matching treated as fixed, straight-through)"

    def __init__(self, matcher: HistogramMatcher, unet: nn.Module, name: str = "histmatch") -> None:
        super().__init__(unet)
        self.matcher, self.unet, self.name = matcher, unet, name

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        matched = self.matcher.transform(x.detach().float().cpu().numpy()[:, 0])
        matched_t = torch.from_numpy(matched)[:, None].to(device=x.device, dtype=x.dtype)
        # Straight-through: value of the matched image, gradient of the identity.
        return self.unet(x + (matched_t - x).detach())
