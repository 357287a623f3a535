"""Carry the suite's images to an external model's declared input, and its outputs back to the suite's classes.

The suite's images are ``[N, 1, H, W]`` in [0, 1]; its classes are 0 background, 1 blood pool,
2 myocardium. An external model declares (``ExternalModelSpec``) the size, normalisation and channel
count it reads, and which of its output channels are blood pool and myocardium. Every step here is a
torch operation, so gradients flow from the class scores back to the suite's image (FGSM).
``InputAdapter.describe`` is the one line the report prints about what was done.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from unetgan_core.errors import DataError
from unetgan_core.external.spec import ExternalModelSpec

_EPS = 1e-6  # keeps zscore and percentile scaling finite on a constant image


class InputAdapter:
    """Size, normalisation and channel adaptation of one external model, and the way back.

    Args:
        spec: the model's declared contract.
        name: the model's name, for error messages.
    """

    def __init__(self, spec: ExternalModelSpec, name: str) -> None:
        self.spec, self.name = spec, name

    def model_size(self, height: int, width: int) -> tuple[int, int]:
        """The input size the model gets for an image of ``height`` x ``width`` pixels."""
        if self.spec.input_size:
            side = self.spec.input_size
            if self.spec.resize == "pad" and max(height, width) > side:
                raise DataError(
                    f"model {self.name!r}: images of {height}x{width} px do not fit its input of {side} px "
                    'by padding; declare resize = "resample"'
                )
            return side, side
        m = self.spec.size_multiple
        return math.ceil(height / m) * m, math.ceil(width / m) * m

    def to_model(self, x: torch.Tensor) -> torch.Tensor:
        """Suite images ``[N, 1, H, W]`` in [0, 1] -> the model's input ``[N, in_channels, h, w]``.

        Normalisation statistics are taken from the image itself; padding is image intensity 0 (dark
        background, as outside the body), mapped through the same normalisation.
        """
        lo, scale = self._affine(x)
        target = self.model_size(*x.shape[-2:])
        if target != tuple(x.shape[-2:]):
            if self.spec.resize == "resample":
                x = F.interpolate(x, size=target, mode="bilinear", align_corners=False)
            else:
                x = F.pad(x, _padding(x.shape[-2:], target))
        if self.spec.normalisation == "percentile":
            x = x.clamp(min=lo, max=lo + 1.0 / scale)
        x = (x - lo) * scale
        return x.expand(-1, self.spec.in_channels, -1, -1) if self.spec.in_channels > 1 else x

    def _affine(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-image offset and scale ``[N, 1, 1, 1]`` of the declared normalisation."""
        flat = x.flatten(1)
        if self.spec.normalisation == "zscore":
            return flat.mean(1).view(-1, 1, 1, 1), 1.0 / (flat.std(1).view(-1, 1, 1, 1) + _EPS)
        if self.spec.normalisation == "percentile":
            q = torch.tensor(self.spec.percentile, dtype=flat.dtype, device=flat.device) / 100.0
            lo, hi = torch.quantile(flat, q, dim=1).view(2, -1, 1, 1, 1)
            return lo, 1.0 / (hi - lo + _EPS)
        zero = torch.zeros((), dtype=x.dtype, device=x.device)
        return zero, zero + 1.0

    def from_model(self, scores: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Class scores at the model's size ``[N, 3, h, w]`` -> the suite's size ``[N, 3, H, W]``."""
        if tuple(scores.shape[-2:]) == tuple(size):
            return scores
        if self.spec.resize == "resample":
            return F.interpolate(scores, size=size, mode="bilinear", align_corners=False)
        left, _, top, _ = _padding(size, tuple(scores.shape[-2:]))
        return scores[..., top : top + size[0], left : left + size[1]]

    def class_logits(self, out: torch.Tensor) -> torch.Tensor:
        """The model's ``[N, out_channels, h, w]`` outputs -> suite logits ``[N, 3, h, w]``.

        Channels other than blood pool and myocardium are merged into background: their probabilities
        are summed (log-sum-exp of logits), so ``softmax`` of the result is the model's own distribution
        over {background, blood pool, myocardium}.
        """
        bp, myo = self.spec.blood_pool_channel, self.spec.myocardium_channel
        others = [c for c in range(out.shape[1]) if c not in (bp, myo)]
        if self.spec.output == "probabilities":
            out = out.clamp_min(1e-12).log()
        background = torch.logsumexp(out[:, others], dim=1)
        return torch.stack([background, out[:, bp], out[:, myo]], dim=1)

    def describe(self, height: int | None = None, width: int | None = None) -> str:
        """One line saying how images reach the model, for the report (sizes when ``height``/``width`` given)."""
        s = self.spec
        norm = {
            "unit": "[0, 1] intensities as given",
            "zscore": "z-scored per image",
            "percentile": f"clipped per image to percentiles {s.percentile[0]:g}-{s.percentile[1]:g} and scaled to [0, 1]",
        }[s.normalisation]
        if s.input_size:
            size = f"{s.input_size} px"
        else:
            size = f"any size that is a multiple of {s.size_multiple} px" if s.size_multiple > 1 else "any size"
        if height is not None and width is not None:
            target = self.model_size(height, width)
            if target == (height, width):
                how = f"{height}x{width} px as is"
            else:
                verb = "zero-padded" if s.resize == "pad" else "resampled (bilinear)"
                back = "cropped back" if s.resize == "pad" else "resampled back"
                how = f"{verb} from {height}x{width} to {target[0]}x{target[1]} px, scores {back}"
        else:
            how = "zero-padded to it, scores cropped back" if s.resize == "pad" else "resampled to it and back"
        channels = f"; grey image repeated into {s.in_channels} channels" if s.in_channels > 1 else ""
        merged = s.out_channels - 2
        return (
            f"input {size} ({how}), {norm}{channels}; output {s.output} of {s.out_channels} channels, "
            f"blood pool = {s.blood_pool_channel}, myocardium = {s.myocardium_channel}, "
            f"{merged} channel{'s' if merged > 1 else ''} merged into background"
        )


def _padding(size: tuple[int, int], target: tuple[int, int]) -> tuple[int, int, int, int]:
    """``F.pad`` amounts (left, right, top, bottom) that centre ``size`` in ``target``."""
    dh, dw = target[0] - size[0], target[1] - size[1]
    return dw // 2, dw - dw // 2, dh // 2, dh - dh // 2
