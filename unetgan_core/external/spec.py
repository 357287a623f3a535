"""The declared contract of an external segmentation network: one ``[models.NAME]`` table of a suite.

``ExternalModelSpec`` is a frozen dataclass whose fields carry the metadata that
``unetgan_core.schema.load_table`` reads (``doc`` and bounds such as ``choices``, ``ge``), so the
suite loader builds it with ``load_table(ExternalModelSpec, table, where)`` and then calls
``spec.check(where)`` for the rules that join several keys. Nothing about the model is guessed: the
input size, normalisation, channel count and the meaning of each output channel are declared here and
checked on a probe batch when the model is loaded (``unetgan_core.external.segmenter``).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from unetgan_core.errors import UserError
from unetgan_core.schema import field

FORMATS = ("torchscript", "onnx", "python")
MAX_SIDE = 4096  # largest declared input side or size multiple, px
MAX_CHANNELS = 1024  # largest declared channel count or index
# "package.module:function": a dotted module path, a colon, one attribute name.
_FACTORY = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")


@dataclasses.dataclass(frozen=True)
class ExternalModelSpec:
    """How to load an external segmenter and what its inputs and outputs mean.

    Args:
        format: ``torchscript`` (``path``), ``onnx`` (``path``, run by onnxruntime, no gradient) or
            ``python`` (``factory`` + ``kwargs`` + optional ``weights``).
        path: the TorchScript or ONNX file, relative to the suite file's folder.
        factory: ``"package.module:function"`` returning an ``nn.Module``; user code, run as is.
        kwargs: keyword arguments of ``factory``.
        weights: a state dict for the factory's module, read with ``torch.load(weights_only=True)``.
        input_size: the model's fixed input side in pixels; 0 for any size (see ``size_multiple``).
        size_multiple: with ``input_size = 0``, the input side must be a multiple of this.
        resize: how images reach the model's size: ``pad`` (zero padding, cropped back) or ``resample``
            (bilinear, class scores resampled back).
        normalisation: ``unit`` (the suite's [0, 1] images as they are), ``zscore`` (per image) or
            ``percentile`` (per image clip to ``percentile`` and rescale to [0, 1]).
        percentile: low and high percentile of the ``percentile`` normalisation.
        in_channels: channels the model reads; the grey image is repeated into each.
        out_channels: channels the model returns.
        blood_pool_channel: output channel of the LV blood pool.
        myocardium_channel: output channel of the myocardium; every other channel is background.
        output: whether the outputs are ``logits`` (softmax over channels) or ``probabilities``.
        feature_layers: module paths whose outputs are the "Unet features" of the feature loss
            (``python`` format only: compiled TorchScript and ONNX graphs run no forward hooks).

    Example:
        >>> spec = ExternalModelSpec(format="torchscript", path="net.ts", size_multiple=16)
        >>> spec.check("model 'net'")
    """

    format: str = field(doc="torchscript, onnx or python", choices=FORMATS)
    path: str = field("", doc="model file (torchscript, onnx), relative to the suite")
    factory: str = field("", doc='"package.module:function" (python)')
    kwargs: dict[str, Any] = field({}, doc="keyword arguments of factory")
    weights: str = field("", doc="state dict file (python), weights_only=True")
    input_size: int = field(0, doc="fixed input side in pixels; 0 = any", ge=0, le=MAX_SIDE)
    size_multiple: int = field(1, doc="input side must be a multiple of this", ge=1, le=MAX_SIDE)
    resize: str = field("pad", doc="pad or resample", choices=("pad", "resample"))
    normalisation: str = field("unit", doc="unit, zscore or percentile", choices=("unit", "zscore", "percentile"))
    percentile: list[float] = field([1.0, 99.0], doc="low, high percentile of the clip", ge=0, le=100)
    in_channels: int = field(1, doc="input channels (image repeated)", ge=1, le=MAX_CHANNELS)
    out_channels: int = field(3, doc="output channels", ge=3, le=MAX_CHANNELS)
    blood_pool_channel: int = field(1, doc="output channel of the blood pool", ge=0, le=MAX_CHANNELS)
    myocardium_channel: int = field(2, doc="output channel of the myocardium", ge=0, le=MAX_CHANNELS)
    output: str = field("logits", doc="logits or probabilities", choices=("logits", "probabilities"))
    feature_layers: list[str] = field([], doc="module paths for the feature loss (python format)")

    def check(self, where: str) -> None:
        """Reject combinations of keys that cannot describe one model, with one line naming ``where``.

        Raises:
            UserError: e.g. a ``python`` model without ``factory``, equal blood pool and myocardium
                channels, or ``feature_layers`` on a compiled model.
        """
        if self.format not in FORMATS:
            raise UserError(f"{where}: format = {self.format!r}; allowed: {', '.join(FORMATS)}")
        if self.format == "python":
            if not _FACTORY.match(self.factory):
                raise UserError(
                    f'{where}: format = "python" needs factory = "package.module:function", got {self.factory!r}'
                )
            if self.path:
                raise UserError(f"{where}: path is for torchscript and onnx; a python model uses factory and weights")
        else:
            if not self.path:
                raise UserError(f"{where}: format = {self.format!r} needs path (the model file)")
            extra = [k for k in ("factory", "kwargs", "weights") if getattr(self, k)]
            if extra:
                raise UserError(f'{where}: {extra[0]} is for format = "python" only, not {self.format!r}')
            if self.feature_layers:
                raise UserError(
                    f'{where}: feature_layers need format = "python"; a compiled {self.format} graph runs no '
                    "forward hooks, so its layer outputs cannot be taken"
                )
        if self.input_size and self.size_multiple != 1:
            raise UserError(f"{where}: declare either input_size (fixed) or size_multiple (any multiple), not both")
        channels = {"blood_pool_channel": self.blood_pool_channel, "myocardium_channel": self.myocardium_channel}
        for key, value in channels.items():
            if value >= self.out_channels:
                raise UserError(f"{where}: {key} = {value} but the model has out_channels = {self.out_channels}")
        if self.blood_pool_channel == self.myocardium_channel:
            raise UserError(f"{where}: blood_pool_channel and myocardium_channel are both {self.blood_pool_channel}")
        if len(self.percentile) != 2 or not self.percentile[0] < self.percentile[1]:
            raise UserError(f"{where}: percentile must be [low, high] with low < high, got {self.percentile}")
        if len(set(self.feature_layers)) != len(self.feature_layers):
            raise UserError(f"{where}: feature_layers repeats a layer: {self.feature_layers}")

    def contracts(self) -> dict[str, Any]:
        """The declared input and output contracts, as plain values for the manifest and the report."""
        return {
            "input": {
                "size_px": self.input_size or None,
                "size_multiple": self.size_multiple,
                "resize": self.resize,
                "normalisation": self.normalisation,
                **({"percentile": list(self.percentile)} if self.normalisation == "percentile" else {}),
                "channels": self.in_channels,
            },
            "output": {
                "channels": self.out_channels,
                "blood_pool_channel": self.blood_pool_channel,
                "myocardium_channel": self.myocardium_channel,
                "kind": self.output,
            },
        }
