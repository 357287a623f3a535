"""Batched inference without gradients: translate images with a generator, segment them with a Unet.

The one home of these helpers: checkpoint selection, validation during training and the
report's figures all call them. Inputs are numpy or torch ``[N, H, W]`` or ``[N, 1, H, W]``
images in [0, 1]; they are moved to the network's device, and every network runs in eval mode
(its previous mode is restored afterwards).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from unetgan_core.device import eval_mode, module_device

EVAL_BATCH = 32  # images per forward pass; small enough for 192 px on a laptop CPU


def class_map(logits: torch.Tensor) -> torch.Tensor:
    """The class of each pixel, ``logits.argmax(dim=1)`` for ``[N, C, H, W]`` logits, in any memory format.

    Exactly ``argmax(dim=1)`` (ties go to the lower class), but taken along the last axis of a channels-last
    copy: torch's CPU argmax across the channels of a contiguous NCHW tensor strides through memory and is
    ~8x slower than the forward pass's last layer (15 ms against 2 ms for 32 x 3 x 64 x 64 on a 2-core EPYC).

    Returns:
        int64 ``[N, H, W]``.
    """
    return logits.permute(0, 2, 3, 1).contiguous().argmax(dim=-1)


def batches(images: torch.Tensor, batch_size: int):
    """Consecutive slices of ``images`` of at most ``batch_size`` along the first axis."""
    for start in range(0, len(images), batch_size):
        yield images[start : start + batch_size]


def as_input(images: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """``images`` as a float32 ``[N, 1, H, W]`` tensor on ``device``."""
    x = torch.as_tensor(np.asarray(images, dtype=np.float32) if isinstance(images, np.ndarray) else images)
    if x.ndim == 3:
        x = x[:, None]
    return x.to(device=device, dtype=torch.float32)


@torch.no_grad()
def translate(generator: nn.Module, images: np.ndarray | torch.Tensor, batch_size: int = EVAL_BATCH) -> torch.Tensor:
    """Run a generator over ``images`` in batches without gradients.

    Args:
        generator: image -> image network (output in [0, 1]).
        images: ``[N, H, W]`` or ``[N, 1, H, W]`` in [0, 1].
        batch_size: images per forward pass.

    Returns:
        ``[N, 1, H, W]`` float32 on the generator's device (an empty stack for no images).
    """
    x = as_input(images, module_device(generator))
    if not len(x):
        return x.clone()
    with eval_mode(generator):
        return torch.cat([generator(b) for b in batches(x, batch_size)])


@torch.no_grad()
def segment(unet: nn.Module, images: np.ndarray | torch.Tensor, batch_size: int = EVAL_BATCH) -> np.ndarray:
    """Label maps of the Unet (argmax of its logits) for ``images``.

    Args:
        unet: segmentation network returning ``[N, 3, H, W]`` logits.
        images: ``[N, H, W]`` or ``[N, 1, H, W]`` in [0, 1].
        batch_size: images per forward pass.

    Returns:
        uint8 ``[N, H, W]`` with values 0 (background), 1 (blood pool), 2 (myocardium).
    """
    x = as_input(images, module_device(unet))
    if not len(x):
        return np.zeros((0, *x.shape[2:]), dtype=np.uint8)
    with eval_mode(unet):
        out = [class_map(unet(b)).to(torch.uint8).cpu() for b in batches(x, batch_size)]
    return torch.cat(out).numpy()
