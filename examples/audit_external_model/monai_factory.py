"""The example's network for ``format = "python"``: MONAI's ``BasicUNet`` for 2-D, one grey channel, three classes.

A suite names it as ``factory = "monai_factory:basic_unet"`` (this folder is the suite's folder, where the
factory module is looked up) with ``kwargs = { features = [...] }`` and the trained ``weights``.
"""

from __future__ import annotations

from collections.abc import Sequence

from monai.networks.nets import BasicUNet

# Channels of the six BasicUNet stages (conv_0, down_1..down_4, the last up-sampling), as MONAI orders them.
FULL_FEATURES = (8, 8, 16, 32, 64, 8)
TOY_FEATURES = (4, 4, 8, 8, 16, 4)


def basic_unet(features: Sequence[int] = FULL_FEATURES) -> BasicUNet:
    """A 2-D ``BasicUNet``: ``[N, 1, H, W] -> [N, 3, H, W]`` logits (0 background, 1 blood pool, 2 myocardium).

    Args:
        features: channels of its six stages; ``H`` and ``W`` must be multiples of 16 (four poolings).
    """
    return BasicUNet(spatial_dims=2, in_channels=1, out_channels=3, features=tuple(features))
