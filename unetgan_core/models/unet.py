"""LV-Unet: the residual encoder-decoder that segments the LV blood pool and myocardium.

The paper (Yan et al. 2019, Fig. 2a) describes an asymmetric encoder-decoder built from
residual blocks, and takes the Unet-GAN feature loss from "the 7th and 9th residual blocks,
after three max-pooling operations". ``LVUnet`` numbers its encoder blocks from 1 so those
taps are well defined, and exposes them through an explicit ``features`` argument (no hooks).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from unetgan_core.errors import UserError
from unetgan_core.models import MODELS

NORMS = ("group", "instance", "batch")
_FEATURE_NAME = re.compile(r"block(\d+)")


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "group":
        # Up to 8 groups that divide the channel count: per-image statistics, no running buffers.
        groups = max(g for g in range(1, 9) if channels % g == 0)
        return nn.GroupNorm(groups, channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    return nn.BatchNorm2d(channels)


class ResidualBlock(nn.Module):
    """conv3x3-norm-relu-conv3x3-norm, plus a skip (1x1 projection when channels change), then relu.

    Args:
        in_channels: channels entering the block.
        out_channels: channels leaving the block.
        norm: ``"group"``, ``"instance"`` or ``"batch"``.
    """

    def __init__(self, in_channels: int, out_channels: int, norm: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.norm1 = _norm(norm, out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.norm2 = _norm(norm, out_channels)
        self.skip = (
            nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.norm1(self.conv1(x)))
        y = self.norm2(self.conv2(y))
        return F.relu(y + self.skip(x))


@MODELS.register("lv_unet")
class LVUnet(nn.Module):
    """Asymmetric residual Unet: a deep encoder, a light decoder, ``n_classes`` logits per pixel.

    Layout with the defaults (``blocks_per_stage=(2, 2, 2, 3)``, ``width=16``), for an ``H x W``
    input; encoder residual blocks are numbered from 1:

    ========  ==========  ==========  =======================================
    stage     resolution  channels    encoder blocks
    ========  ==========  ==========  =======================================
    1         H           16          block1, block2, then max-pool 1
    2         H/2         32          block3, block4, then max-pool 2
    3         H/4         64          block5, block6, then max-pool 3
    4         H/8         128         block7, block8, block9 (bottleneck)
    ========  ==========  ==========  =======================================

    So ``block7`` and ``block9`` are the first and last blocks after three max-pooling
    operations, as in the paper; both have shape ``[N, 8 * width, H/8, W/8]``. The decoder
    upsamples (bilinear) to each encoder stage's size, concatenates that stage's output and
    runs ``decoder_blocks`` residual blocks per stage (one by default: the lighter half).
    Sizes that are not multiples of 8 also work (the decoder resizes to the skip's size).

    Normalisation defaults to GroupNorm: it uses per-image statistics, so the network behaves
    the same in ``train()`` and ``eval()`` and on translated or shifted images, where BatchNorm's
    running statistics (collected on the source vendor) would silently mis-normalise.
    ``"instance"`` has the same property; ``"batch"`` is there for comparison.

    Args:
        in_channels: image channels (1 for MRI magnitude).
        n_classes: output classes (3: background, blood pool, myocardium).
        width: channels of stage 1; stage ``s`` has ``width * 2**(s-1)``.
        blocks_per_stage: encoder residual blocks per stage; one max-pool between stages.
        decoder_blocks: residual blocks per decoder stage.
        norm: ``"group"`` (default), ``"instance"`` or ``"batch"``.

    Example:
        >>> net = LVUnet(width=8)
        >>> logits, feats = net(torch.zeros(2, 1, 64, 64), features=("block7", "block9"))
        >>> logits.shape, feats["block9"].shape
        (torch.Size([2, 3, 64, 64]), torch.Size([2, 64, 8, 8]))
    """

    def __init__(
        self,
        in_channels: int = 1,
        n_classes: int = 3,
        width: int = 16,
        blocks_per_stage: Sequence[int] = (2, 2, 2, 3),
        decoder_blocks: int = 1,
        norm: str = "group",
    ) -> None:
        super().__init__()
        blocks_per_stage = tuple(int(b) for b in blocks_per_stage)
        if in_channels < 1 or n_classes < 2 or width < 1:
            raise UserError(
                f"lv_unet: need in_channels >= 1, n_classes >= 2, width >= 1; got {in_channels}, {n_classes}, {width}"
            )
        if not blocks_per_stage or min(blocks_per_stage) < 1:
            raise UserError(f"lv_unet: blocks_per_stage must be positive counts, got {blocks_per_stage}")
        if decoder_blocks < 1:
            raise UserError(f"lv_unet: decoder_blocks must be >= 1, got {decoder_blocks}")
        if norm not in NORMS:
            raise UserError(f"lv_unet: unknown norm {norm!r}; known: {', '.join(NORMS)}")
        self.in_channels = in_channels
        self.n_classes = n_classes
        self.blocks_per_stage = blocks_per_stage
        channels = [width * 2**s for s in range(len(blocks_per_stage))]
        self.stage_channels = tuple(channels)

        blocks: list[nn.Module] = []
        # stage_of[i] is the 0-based stage of encoder block i+1; the last block of a stage feeds its skip.
        self._stage_of: list[int] = []
        prev = in_channels
        for stage, count in enumerate(blocks_per_stage):
            for _ in range(count):
                blocks.append(ResidualBlock(prev, channels[stage], norm))
                self._stage_of.append(stage)
                prev = channels[stage]
        self.encoder = nn.ModuleList(blocks)

        decoder: list[nn.Module] = []
        for stage in reversed(range(len(blocks_per_stage) - 1)):
            layers = [ResidualBlock(channels[stage + 1] + channels[stage], channels[stage], norm)]
            layers += [ResidualBlock(channels[stage], channels[stage], norm) for _ in range(decoder_blocks - 1)]
            decoder.append(nn.Sequential(*layers))
        self.decoder = nn.ModuleList(decoder)
        self.head = nn.Conv2d(channels[0], n_classes, 1)

    @property
    def n_blocks(self) -> int:
        """Number of encoder residual blocks (the valid feature names are ``block1..blockN``)."""
        return len(self.encoder)

    def _block_indices(self, features: Iterable[str]) -> dict[str, int]:
        out = {}
        for name in features:
            match = _FEATURE_NAME.fullmatch(str(name))
            if not match or not 1 <= int(match.group(1)) <= self.n_blocks:
                raise UserError(f"lv_unet: unknown feature {name!r}; known: block1 .. block{self.n_blocks}")
            out[str(name)] = int(match.group(1))
        return out

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise UserError(f"lv_unet: expected input [N, {self.in_channels}, H, W], got {list(x.shape)}")

    def _run_encoder(
        self, x: torch.Tensor, wanted: dict[str, int], stop_after: int
    ) -> tuple[torch.Tensor, list[torch.Tensor], dict[str, torch.Tensor]]:
        """Run encoder blocks 1..stop_after; return the last output, the stage skips and the taps."""
        by_index = {index: name for name, index in wanted.items()}
        skips: list[torch.Tensor] = []
        taps: dict[str, torch.Tensor] = {}
        for i in range(stop_after):
            if i > 0 and self._stage_of[i] != self._stage_of[i - 1]:
                skips.append(x)
                x = F.max_pool2d(x, 2)
            x = self.encoder[i](x)
            if i + 1 in by_index:
                taps[by_index[i + 1]] = x
        return x, skips, taps

    def encode(self, x: torch.Tensor, features: Iterable[str]) -> dict[str, torch.Tensor]:
        """Encoder features only, running no further than the deepest requested block.

        Args:
            x: images ``[N, in_channels, H, W]``, intensities in [0, 1].
            features: block names such as ``("block7", "block9")``.

        Returns:
            ``{name: tensor}`` for every requested name.
        """
        self._check_input(x)
        wanted = self._block_indices(features)
        if not wanted:
            return {}
        _, _, taps = self._run_encoder(x, wanted, max(wanted.values()))
        return taps

    def forward(
        self, x: torch.Tensor, features: Iterable[str] = ()
    ) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Per-pixel class logits, optionally with encoder features.

        Args:
            x: images ``[N, in_channels, H, W]``, intensities in [0, 1].
            features: block names to return as well (empty: logits only).

        Returns:
            logits ``[N, n_classes, H, W]``, or ``(logits, {name: tensor})`` when ``features``
            is non-empty.
        """
        self._check_input(x)
        features = tuple(features)
        wanted = self._block_indices(features)
        x, skips, taps = self._run_encoder(x, wanted, self.n_blocks)
        for block, skip in zip(self.decoder, reversed(skips), strict=True):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        logits = self.head(x)
        return (logits, taps) if features else logits


def freeze(module: nn.Module) -> nn.Module:
    """Put ``module`` in eval mode and stop gradients to its parameters (e.g. the Unet of the feature loss).

    Args:
        module: any network; changed in place.

    Returns:
        The same module, for chaining.
    """
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module
