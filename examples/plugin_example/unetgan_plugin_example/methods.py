"""What this plugin adds, registered on import through unetgan-bench's registries.

- adaptation method ``meanstd`` and scenario ``meanstd``: each target image is standardised to the mean and
  standard deviation of the source training images' foreground, then the source Unet segments it;
- attack ``uniform_noise``: ``clip(x + u, 0, 1)`` with ``u`` uniform in ``[-eps, eps]`` per pixel (a control
  like ``random_sign``, with a smaller average step).

It relies only on the plugin API of docs/architecture.md ("Plugins"): ``ADAPTATIONS``, ``SCENARIOS`` and
``Scenario`` from ``unetgan_core.scenarios``, ``ATTACKS`` and the attack signature from ``unetgan_core.attacks``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from unetgan_core.attacks import ATTACKS
from unetgan_core.scenarios import ADAPTATIONS, SCENARIOS, Scenario

FOREGROUND = 0.05  # intensities at or below this are background (air) and left out of the statistics


@dataclasses.dataclass(frozen=True)
class MeanStdMatcher:
    """Maps each image's foreground mean and std onto the source's."""

    mean: float
    std: float

    @classmethod
    def fit(cls, images: np.ndarray) -> MeanStdMatcher:
        """Foreground mean and std of the source training images ``[N, H, W]`` in [0, 1]."""
        values = images[images > FOREGROUND]
        return cls(float(values.mean()), float(values.std()))

    def transform(self, images: np.ndarray) -> np.ndarray:
        """Target images ``[N, H, W]`` in [0, 1], standardised per image to the source statistics."""
        out = np.empty_like(images, dtype=np.float32)
        for i, image in enumerate(images):
            values = image[image > FOREGROUND]
            if values.size == 0 or values.std() == 0:
                out[i] = image
                continue
            out[i] = (image - values.mean()) / values.std() * self.std + self.mean
        return np.clip(out, 0.0, 1.0)


ADAPTATIONS.add("meanstd", MeanStdMatcher.fit)
SCENARIOS.add(
    "meanstd",
    Scenario("meanstd", "clean", "meanstd", "target images matched to the source's foreground mean and std (plugin)"),
)


@ATTACKS.register("uniform_noise")
def uniform_noise(logits_fn, x: torch.Tensor, y, eps: float, *, target: str = "label", seed: int = 0) -> torch.Tensor:
    """Control attack: ``clip(x + u, 0, 1)``, ``u`` uniform in ``[-eps, eps]``; no gradient, seeded locally.

    Args:
        logits_fn: unused (every attack takes it).
        x: images ``[N, C, H, W]`` in [0, 1].
        y: unused.
        eps: largest change of a pixel, in units of the [0, 1] intensity.
        target: unused (every attack takes it).
        seed: seeds the noise; the same seed gives the same pattern at every ``eps``.
    """
    noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(int(seed))) * 2 - 1
    return (x.detach() + eps * noise.to(device=x.device, dtype=x.dtype)).clamp(0.0, 1.0)
