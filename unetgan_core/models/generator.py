"""ResNet-style image translator (the CycleGAN / Unet-GAN generator), scaled for small images."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from unetgan_core.errors import UserError
from unetgan_core.models import MODELS


class _ResnetBlock(nn.Module):
    """Two reflect-padded conv3x3 with InstanceNorm and an identity skip (channels unchanged)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            nn.InstanceNorm2d(channels, affine=True),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            nn.InstanceNorm2d(channels, affine=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


@MODELS.register("resnet_generator")
class ResnetGenerator(nn.Module):
    """Image -> image in [0, 1]: stem, ``n_down`` stride-2 convs, ``n_blocks`` residual blocks, upsampling back.

    Upsampling is nearest-neighbour resize + conv (rather than transposed convolution) to avoid
    checkerboard artefacts, and resizes to the recorded encoder sizes so any input size works.

    With ``residual=True`` (default) the output is ``clamp(x + correction, 0, 1)`` and the last
    conv starts at zero, so an untrained generator is exactly the identity: translation starts
    from "change nothing", which a prototype found trains stably. With ``residual=False`` the
    output is ``sigmoid(conv(...))`` as in CycleGAN.

    Args:
        in_channels: image channels (1 for MRI).
        width: channels of the stem; doubled at each downsampling.
        n_blocks: residual blocks at the lowest resolution.
        n_down: stride-2 downsamplings (2 in CycleGAN).
        residual: predict a correction to the input (True) or a new image (False).

    Example:
        >>> g = ResnetGenerator(width=8, n_blocks=2)
        >>> x = torch.rand(1, 1, 64, 64)
        >>> bool(torch.equal(g(x), x))
        True
    """

    def __init__(
        self, in_channels: int = 1, width: int = 16, n_blocks: int = 4, n_down: int = 2, residual: bool = True
    ) -> None:
        super().__init__()
        if in_channels < 1 or width < 1 or n_blocks < 0 or n_down < 0:
            raise UserError(
                f"resnet_generator: need in_channels >= 1, width >= 1, n_blocks >= 0, n_down >= 0; "
                f"got {in_channels}, {width}, {n_blocks}, {n_down}"
            )
        self.residual = residual
        self.stem = nn.Sequential(
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_channels, width, 7),
            nn.InstanceNorm2d(width, affine=True),
            nn.ReLU(inplace=True),
        )
        downs, ups = [], []
        ch = width
        for _ in range(n_down):
            downs.append(
                nn.Sequential(
                    nn.Conv2d(ch, ch * 2, 3, stride=2, padding=1),
                    nn.InstanceNorm2d(ch * 2, affine=True),
                    nn.ReLU(inplace=True),
                )
            )
            ch *= 2
        self.down = nn.ModuleList(downs)
        self.blocks = nn.Sequential(*[_ResnetBlock(ch) for _ in range(n_blocks)])
        for _ in range(n_down):
            ups.append(
                nn.Sequential(
                    nn.Conv2d(ch, ch // 2, 3, padding=1),
                    nn.InstanceNorm2d(ch // 2, affine=True),
                    nn.ReLU(inplace=True),
                )
            )
            ch //= 2
        self.up = nn.ModuleList(ups)
        self.out = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(ch, in_channels, 7))
        if residual:
            nn.init.zeros_(self.out[1].weight)
            nn.init.zeros_(self.out[1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Translate ``x``.

        Args:
            x: images ``[N, in_channels, H, W]``, intensities in [0, 1].

        Returns:
            translated images, same shape, in [0, 1].
        """
        if x.ndim != 4:
            raise UserError(f"resnet_generator: expected input [N, C, H, W], got {list(x.shape)}")
        h = self.stem(x)
        sizes = []
        for layer in self.down:
            sizes.append(h.shape[-2:])
            h = layer(h)
        h = self.blocks(h)
        for layer, size in zip(self.up, reversed(sizes), strict=True):
            h = layer(F.interpolate(h, size=size, mode="nearest"))
        h = self.out(h)
        if self.residual:
            return torch.clamp(x + h, 0.0, 1.0)
        return torch.sigmoid(h)
