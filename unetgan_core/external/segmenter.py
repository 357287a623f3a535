"""An external segmentation network behind the suite's ``Pipeline`` interface.

``load_external(spec, base_dir, name=...)`` loads the model in its declared format
(``unetgan_core.external.loaders``), checks its output contract on a probe batch, and returns an
``ExternalSegmenter``: ``predict``, ``logits``, ``device``, ``name``, ``differentiable``, ``attack_note`` and
the ``fast`` path as for the suite's own pipelines, so Dice, FGSM and throughput are measured on it
unchanged; plus ``features``/``encode`` (the layers of ``feature_layers``, for the Unet-GAN feature
loss), ``adaptation`` (one line for the report) and ``provenance`` (files by SHA-256, contracts).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from unetgan_core.errors import UserError
from unetgan_core.external.adapter import InputAdapter
from unetgan_core.external.hooks import capture, resolve_layers
from unetgan_core.external.loaders import LOADERS, LoadedModel, one_line
from unetgan_core.external.provenance import file_record
from unetgan_core.external.spec import ExternalModelSpec
from unetgan_core.pipelines import Pipeline

FILE_ROLES = ("model", "weights", "factory_source")  # the order provenance lists a model's files in
PROBE_BATCH = 2  # images in the load-time probe: enough to catch a model that mixes up the batch axis
_PROBABILITY_SLACK = 1e-4  # float rounding allowed outside [0, 1] for declared probabilities


class ExternalSegmenter(Pipeline):
    """A loaded external model with its input adaptation and output mapping (build with ``load_external``).

    Args:
        name: the model's name in the suite (``[models.NAME]``), used in results and errors.
        spec: its declared contract.
        loaded: the network and the files it came from.
    """

    def __init__(self, name: str, spec: ExternalModelSpec, loaded: LoadedModel) -> None:
        super().__init__(loaded.module)
        self.name, self.spec, self.network = name, spec, loaded.module
        self.files = loaded.files
        self.adapter = InputAdapter(spec, name)
        # has_gradient False (ONNX): logits refuses inputs that need a gradient, so a gradient attack must be
        # reported as "not differentiable" instead of run; differentiable says the same for the rows.
        self.has_gradient = self.differentiable = loaded.has_gradient
        self.attack_note = (
            "attacked end to end: the gradient flows through the input adaptation and the external model"
            if loaded.has_gradient
            else f"not differentiable: {spec.format} runs without gradients, so gradient attacks are not run"
        )
        self._layers = resolve_layers(self.network, spec.feature_layers, name)

    def _run(self, model_input: torch.Tensor) -> torch.Tensor:
        """The network on an adapted batch, with its output checked against the declared contract."""
        out = self.network(model_input)
        if not isinstance(out, torch.Tensor):
            raise UserError(f"model {self.name!r} returns a {type(out).__name__}; expected one tensor of class scores")
        n, _, h, w = model_input.shape
        expected = (n, self.spec.out_channels, h, w)
        if tuple(out.shape) != expected:
            raise UserError(
                f"model {self.name!r} returned shape {list(out.shape)} for input {list(model_input.shape)}; "
                f"expected {list(expected)} (out_channels = {self.spec.out_channels})"
            )
        if not torch.isfinite(out).all():
            raise UserError(f"model {self.name!r} returned NaN or infinite outputs for input {list(model_input.shape)}")
        return out

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        scores = self.adapter.class_logits(self._run(self.adapter.to_model(x)))
        return self.adapter.from_model(scores, tuple(x.shape[-2:]))

    @property
    def feature_refusal(self) -> str | None:
        """Why feature-loss scenarios cannot use this model (one line), or None when they can."""
        if self._layers:
            return None
        if self.spec.format != "python":
            return f"model {self.name!r}: no feature layers; a compiled {self.spec.format} graph runs no forward hooks"
        return f"model {self.name!r}: no feature layers declared (feature_layers = [...] in [models.{self.name}])"

    def features(self, x: torch.Tensor, layers: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """Outputs of declared feature layers for images ``x`` ``[N, 1, H, W]`` in [0, 1], with gradients.

        Args:
            x: suite images; adapted to the model's input as in ``logits``.
            layers: a subset of ``feature_layers`` (default all of them), in the order wanted.

        Raises:
            UserError: the model has no feature layers (``feature_refusal``) or ``layers`` names one
                that was not declared.
        """
        if self.feature_refusal:
            raise UserError(self.feature_refusal)
        wanted = list(self.spec.feature_layers if layers is None else layers)
        undeclared = [layer for layer in wanted if layer not in self._layers]
        if undeclared:
            raise UserError(
                f"model {self.name!r}: layer {undeclared[0]!r} is not in its feature_layers ({', '.join(self._layers)})"
            )
        if x.ndim != 4 or x.shape[1] != 1:
            raise UserError(f"model {self.name!r}: features expects [N, 1, H, W] images, got shape {list(x.shape)}")
        self.network.eval()
        return capture(
            {layer: self._layers[layer] for layer in wanted}, lambda: self._run(self.adapter.to_model(x)), self.name
        )

    def encode(self, x: torch.Tensor, features: Sequence[str]) -> dict[str, torch.Tensor]:
        """``features`` under the name ``unetgan_core.losses.feature_loss`` calls (as ``LVUnet.encode``)."""
        return self.features(x, features)

    def adaptation(self, size_px: int | None = None) -> str:
        """One line on how the suite's images reach the model (with sizes for ``size_px`` square images)."""
        return self.adapter.describe(size_px, size_px)

    def provenance(self) -> dict[str, Any]:
        """The model's files (name, size, SHA-256), declared contracts and adaptation, for manifest and report."""
        return external_provenance(self.name, self.spec, self.files, self.differentiable)

    def as_module(self) -> SegmenterModule:
        """This segmenter as an ``nn.Module``, for the suite's pipelines and translator training."""
        return SegmenterModule(self)

    @torch.no_grad()
    def probe(self, size_px: int) -> None:
        """Run a small batch through the model and check the declared output contract.

        Args:
            size_px: side of the probe images when the model takes any size (rounded up to
                ``size_multiple``); a fixed ``input_size`` is probed at that size.

        Raises:
            UserError: the model fails on the input, or returns the wrong shape, channel count,
                non-finite values, or declared probabilities outside [0, 1].
        """
        side = self.spec.input_size or math.ceil(size_px / self.spec.size_multiple) * self.spec.size_multiple
        generator = torch.Generator().manual_seed(0)
        images = torch.rand(PROBE_BATCH, 1, side, side, generator=generator).to(self.device)
        model_input = self.adapter.to_model(images)
        self.network.eval()
        try:
            out = self._run(model_input)
        except UserError:
            raise
        except Exception as exc:  # the model's own error: a size or channel mismatch, usually
            raise UserError(
                f"model {self.name!r} failed on a probe batch of shape {list(model_input.shape)} "
                f"(check input_size, size_multiple and in_channels): {one_line(exc)}"
            ) from exc
        if self.spec.output == "probabilities":
            lo, hi = float(out.min()), float(out.max())
            if lo < -_PROBABILITY_SLACK or hi > 1 + _PROBABILITY_SLACK:
                raise UserError(
                    f'model {self.name!r} declares output = "probabilities" but returned values in [{lo:.3g}, {hi:.3g}]'
                )


class SegmenterModule(nn.Module):
    """An ``ExternalSegmenter`` where the suite expects its trained LV-Unet module.

    ``forward`` is the segmenter's ``logits`` (suite images in, three suite classes out, the input
    adaptation included) and ``encode`` its feature hooks, so ``UnetPipeline``, ``TranslatedPipeline``,
    ``HistMatchPipeline`` and ``train_translator`` (the feature loss) use it unchanged.

    Args:
        segmenter: the loaded external model.
    """

    split_batches = False  # its runtime (ONNX Runtime, TorchScript) may run its own threads: Pipeline.predict

    def __init__(self, segmenter: ExternalSegmenter) -> None:
        super().__init__()
        self.network = segmenter.network  # registered, so eval(), to() and parameters() reach it
        self.segmenter = segmenter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.segmenter.logits(x)

    def encode(self, x: torch.Tensor, features: Sequence[str]) -> dict[str, torch.Tensor]:
        return self.segmenter.encode(x, features)


def external_provenance(
    name: str,
    spec: ExternalModelSpec,
    files: Sequence[tuple[str, Path]],
    differentiable: bool,
    size_px: int | None = None,
) -> dict[str, Any]:
    """What identifies an external model (``ExternalSegmenter.provenance``), from its declaration alone.

    Args:
        name: the model's name in the suite.
        spec: its declared contract.
        files: ``(role, path)`` of its files (``provenance.declared_files`` gives them without loading the model).
        differentiable: whether its format computes gradients (``loaders.NO_GRADIENT_FORMATS``).
        size_px: the suite's image side, for the adaptation line (None: no sizes).

    Returns:
        ``{"name", "format", "files": [file_record ...], "factory", "kwargs", "contracts", "adaptation",
        "feature_layers", "differentiable"}``.
    """
    return {
        "name": name,
        "format": spec.format,
        "files": [file_record(role, path) for role, path in sorted(files, key=lambda f: FILE_ROLES.index(f[0]))],
        "factory": spec.factory or None,
        "kwargs": dict(spec.kwargs),
        "contracts": spec.contracts(),
        "adaptation": InputAdapter(spec, name).describe(size_px, size_px),
        "feature_layers": list(spec.feature_layers),
        "differentiable": differentiable,
    }


def load_external(
    spec: ExternalModelSpec,
    base_dir: str | Path,
    *,
    name: str,
    device: str | torch.device = "cpu",
    probe_size: int = 64,
) -> ExternalSegmenter:
    """Load an external segmenter and check its declared contract on a probe batch.

    Args:
        spec: the ``[models.NAME]`` table as an ``ExternalModelSpec``.
        base_dir: folder that relative ``path`` and ``weights`` are read from (the suite file's folder);
            a ``factory`` module is also looked up there.
        name: the model's name in the suite.
        device: where the model runs (``"cpu"``, ``"cuda"``); ONNX runs on CPU unless onnxruntime has CUDA.
        probe_size: side in pixels of the probe images of a model that takes any size (the suite's size).

    Returns:
        An ``ExternalSegmenter`` (a ``Pipeline``).

    Raises:
        UserError: one line naming the model and the problem (a missing file, an unknown module, a
            wrong output shape or channel count, NaN outputs, an input-size mismatch).
    """
    spec.check(f"model {name!r}")
    loaded = LOADERS.get(spec.format)(spec, Path(base_dir), name, torch.device(device))
    segmenter = ExternalSegmenter(name, spec, loaded)
    segmenter.probe(probe_size)
    return segmenter
