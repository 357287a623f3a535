"""PatchGAN discriminator: one real/fake logit per overlapping image patch."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from unetgan_core.errors import UserError
from unetgan_core.models import MODELS

DISCRIMINATOR_NORMS = ("instance", "none")


@MODELS.register("patch_discriminator")
class PatchDiscriminator(nn.Module):
    """PatchGAN (Isola et al. 2017) with 4x4 convs: ``n_layers`` stride-2 convs, one stride-1 conv, a 1-channel head.

    ``n_layers=3`` is the classic 70x70 receptive field; the default ``n_layers=2`` (34x34
    receptive field) suits the 64-96 px images of the benchmark, where a 70 px patch would
    cover the whole heart and leave only a few output positions.

    Args:
        in_channels: image channels (1 for MRI).
        width: channels of the first conv; doubled per layer up to ``8 * width``.
        n_layers: stride-2 conv layers.
        norm: ``"instance"`` (CycleGAN) or ``"none"``; the first conv never has a norm.
        spectral_norm: wrap every conv in spectral normalisation (a Lipschitz bound that
            often steadies GAN training; then ``norm="none"`` is the usual pairing).

    Example:
        >>> d = PatchDiscriminator(width=8)
        >>> d(torch.zeros(2, 1, 64, 64)).shape
        torch.Size([2, 1, 14, 14])
    """

    def __init__(
        self,
        in_channels: int = 1,
        width: int = 32,
        n_layers: int = 2,
        norm: str = "instance",
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        if in_channels < 1 or width < 1 or n_layers < 1:
            raise UserError(
                f"patch_discriminator: need in_channels >= 1, width >= 1, n_layers >= 1; "
                f"got {in_channels}, {width}, {n_layers}"
            )
        if norm not in DISCRIMINATOR_NORMS:
            raise UserError(f"patch_discriminator: unknown norm {norm!r}; known: {', '.join(DISCRIMINATOR_NORMS)}")

        def conv(cin: int, cout: int, stride: int) -> nn.Module:
            layer = nn.Conv2d(cin, cout, 4, stride=stride, padding=1)
            return _spectral_norm(layer) if spectral_norm else layer

        def normed(ch: int) -> list[nn.Module]:
            return [nn.InstanceNorm2d(ch, affine=True)] if norm == "instance" else []

        layers: list[nn.Module] = [conv(in_channels, width, 2), nn.LeakyReLU(0.2, inplace=True)]
        ch = width
        for i in range(1, n_layers):
            nxt = width * min(2**i, 8)
            layers += [conv(ch, nxt, 2), *normed(nxt), nn.LeakyReLU(0.2, inplace=True)]
            ch = nxt
        nxt = width * min(2**n_layers, 8)
        layers += [conv(ch, nxt, 1), *normed(nxt), nn.LeakyReLU(0.2, inplace=True)]
        layers.append(conv(nxt, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Patch logits (higher = more real).

        Args:
            x: images ``[N, in_channels, H, W]``, intensities in [0, 1].

        Returns:
            logits ``[N, 1, h, w]`` (h, w about ``H / 2**n_layers - 2``).
        """
        if x.ndim != 4:
            raise UserError(f"patch_discriminator: expected input [N, C, H, W], got {list(x.shape)}")
        return self.net(x)
