"""Test-time augmentation: a pipeline's class probabilities averaged over small rotations of its input.

``[metrics] tta = "rotations"`` scores every segmentation through ``RotationTTA(pipeline)``: each image is rotated
by each of ``ROTATION_ANGLES_DEG`` about its centre (bilinear, zeros outside, as the training's spatial augmentation
does), segmented, and the softmax probabilities are rotated back (bilinear) and averaged; the label of a pixel is
the class of largest mean probability. The angles stay inside the training augmentation's default range
(``rotation_deg = 15``), so the network sees nothing it was not trained on. It costs one forward pass per angle.

Rotations are about the image centre on the square grid (``affine_grid`` with ``align_corners=False``), so a
rotation followed by its inverse returns every pixel far enough from the border to where it was.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from unetgan_core.pipelines import Pipeline

TTA = ("none", "rotations")
ROTATION_ANGLES_DEG = (-10.0, 0.0, 10.0)


def rotate(x: torch.Tensor, degrees: float, padding_mode: str = "zeros") -> torch.Tensor:
    """``x`` ``[N, C, H, W]`` rotated by ``degrees`` about the image centre (bilinear)."""
    if degrees == 0:
        return x
    a = math.radians(degrees)
    theta = torch.tensor([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]], dtype=torch.float32)
    grid = F.affine_grid(theta.expand(x.shape[0], 2, 3).to(x.device), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid.to(x.dtype), mode="bilinear", padding_mode=padding_mode, align_corners=False)


class RotationTTA(Pipeline):
    """``inner``'s segmentation averaged over rotations of its input (module docstring).

    ``logits`` returns the log of the mean probabilities, so its argmax is the averaged label and attacks can take
    its gradient; name, differentiability and attack note are ``inner``'s.
    """

    def __init__(self, inner: Pipeline, angles_deg: tuple[float, ...] = ROTATION_ANGLES_DEG) -> None:
        super().__init__(*inner.modules)
        if not angles_deg:
            raise ValueError("RotationTTA needs at least one angle")
        self.inner, self.angles = inner, tuple(float(a) for a in angles_deg)
        self.name, self.differentiable, self.attack_note = inner.name, inner.differentiable, inner.attack_note

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        total = None
        for angle in self.angles:
            probs = torch.softmax(self.inner.logits(rotate(x, angle)).float(), dim=1)
            probs = rotate(probs, -angle, padding_mode="border")
            total = probs if total is None else total + probs
        return torch.log((total / len(self.angles)).clamp_min(1e-12))


def with_tta(pipeline: Pipeline, rule: str) -> Pipeline:
    """``pipeline`` as scored under ``[metrics] tta = rule`` (``"none"``: unchanged)."""
    if rule == "none":
        return pipeline
    if rule == "rotations":
        return RotationTTA(pipeline)
    raise ValueError(f"tta: expected one of {', '.join(TTA)}, got {rule!r}")
