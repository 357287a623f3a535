"""Turn a declared external model (``ExternalModelSpec``) into a torch module, one loader per format.

Trust: TorchScript archives are read by ``torch.jit.load`` and ONNX graphs by onnxruntime, neither of
which unpickles Python objects; a ``python`` model's state dict is read with ``weights_only=True``. A
``python`` model's ``factory`` is user code by design: it is imported and run as it is, like the suite's
own code, so only name factories you trust. Every failure is a ``UserError`` of one line naming the
model and its file.
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from unetgan_core.errors import DataError, UserError
from unetgan_core.external.spec import ExternalModelSpec
from unetgan_core.registry import Registry


class NotDifferentiable(UserError):
    """A gradient was asked of a model that computes none (ONNX Runtime): gradient attacks report it, not fail."""


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    """A loaded network and the files it came from.

    Args:
        module: ``[N, in_channels, h, w] -> [N, out_channels, h, w]`` (not yet checked).
        files: ``(role, path)`` of every file read: ``model``, ``weights``, ``factory_source``.
        has_gradient: False where the forward pass computes no gradient (ONNX Runtime).
    """

    module: nn.Module
    files: tuple[tuple[str, Path], ...]
    has_gradient: bool = True


# Formats whose loaded model computes no gradient (known before loading, for provenance without a load).
NO_GRADIENT_FORMATS = frozenset({"onnx"})

Loader = Callable[[ExternalModelSpec, Path, str, torch.device], LoadedModel]
LOADERS: Registry[Loader] = Registry("external model format")


def one_line(exc: BaseException) -> str:
    """``"ExcType: message"`` on one line (lines joined, cut at 300 characters), for an error about someone
    else's exception."""
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    text = text if len(text) <= 300 else text[:297] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def existing_file(base_dir: Path, relative: str, name: str, key: str) -> Path:
    """``base_dir / relative``, or a one-line ``DataError`` naming the model and the missing file."""
    path = (base_dir / relative).resolve()
    if not path.is_file():
        raise DataError(f"model {name!r}: {key} file not found: {path}")
    return path


@LOADERS.register("torchscript")
def load_torchscript(spec: ExternalModelSpec, base_dir: Path, name: str, device: torch.device) -> LoadedModel:
    """A TorchScript archive (``torch.jit.save``); its code is TorchScript, not pickled Python."""
    path = existing_file(base_dir, spec.path, name, "path")
    try:
        module = torch.jit.load(str(path), map_location=device)
    except Exception as exc:  # torch raises RuntimeError or zipfile/pickle errors for a foreign file
        raise DataError(f"model {name!r}: {path.name} is not a TorchScript archive ({one_line(exc)})") from exc
    return LoadedModel(module, (("model", path),))


class OnnxModule(nn.Module):
    """An ONNX Runtime session behind the ``nn.Module`` call interface; forward only, no gradient.

    Args:
        session: an ``onnxruntime.InferenceSession`` with one image input and the class scores as
            its first output.
        name: the model's name, for error messages.
    """

    def __init__(self, session, name: str) -> None:
        super().__init__()
        self.session, self.name = session, name
        self.input_name = session.get_inputs()[0].name
        # A graph exported with batch 1 fixed is run one image at a time (checked in _check_onnx_input).
        self.one_at_a_time = session.get_inputs()[0].shape[0] == 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.requires_grad and torch.is_grad_enabled():
            raise NotDifferentiable(
                f"model {self.name!r} (onnx): not differentiable; ONNX Runtime computes no gradient"
            )
        images = np.ascontiguousarray(x.detach().float().cpu().numpy())
        batches = np.split(images, len(images)) if self.one_at_a_time and len(images) > 1 else [images]
        try:
            out = np.concatenate([self.session.run(None, {self.input_name: b})[0] for b in batches])
        except Exception as exc:  # onnxruntime raises its own Fail / InvalidArgument types
            raise UserError(f"model {self.name!r} (onnx) failed on input {list(x.shape)}: {one_line(exc)}") from exc
        return torch.from_numpy(np.asarray(out, dtype=np.float32)).to(x.device)


@LOADERS.register("onnx")
def load_onnx(spec: ExternalModelSpec, base_dir: Path, name: str, device: torch.device) -> LoadedModel:
    """An ONNX graph run by onnxruntime (optional extra ``unetgan-bench[onnx]``); Dice and throughput only."""
    path = existing_file(base_dir, spec.path, name, "path")
    try:
        import onnxruntime
    except ImportError as exc:
        raise UserError(
            f'model {name!r}: format = "onnx" needs onnxruntime; pip install "unetgan-bench[onnx]"'
        ) from exc
    providers = ["CPUExecutionProvider"]
    if device.type == "cuda" and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    try:
        session = onnxruntime.InferenceSession(str(path), providers=providers)
    except Exception as exc:
        raise DataError(f"model {name!r}: {path.name} is not a readable ONNX graph ({one_line(exc)})") from exc
    _check_onnx_input(session.get_inputs(), spec, name)
    return LoadedModel(
        OnnxModule(session, name), (("model", path),), has_gradient=spec.format not in NO_GRADIENT_FORMATS
    )


def _check_onnx_input(inputs, spec: ExternalModelSpec, name: str) -> None:
    """Compare the graph's own input declaration with the suite's; the graph's fixed dimensions win."""
    if len(inputs) != 1:
        raise UserError(f"model {name!r}: the ONNX graph has {len(inputs)} inputs; one image input is supported")
    shape = list(inputs[0].shape)
    if len(shape) != 4:
        raise UserError(f"model {name!r}: the ONNX graph's input has shape {shape}; expected [N, C, H, W]")
    batch, channels, height, width = shape
    if isinstance(batch, int) and batch != 1:
        raise UserError(
            f"model {name!r}: the ONNX graph has a fixed batch of {batch}; export it with batch 1 or a dynamic batch axis"
        )
    if isinstance(channels, int) and channels != spec.in_channels:
        raise UserError(
            f"model {name!r}: the ONNX graph reads {channels} channels but in_channels = {spec.in_channels}"
        )
    fixed = [d for d in (height, width) if isinstance(d, int)]
    if fixed and any(d != spec.input_size for d in fixed):
        raise UserError(
            f"model {name!r}: the ONNX graph's input is {height}x{width} px but the suite declares "
            f"{f'input_size = {spec.input_size}' if spec.input_size else 'any size'}"
        )


@LOADERS.register("python")
def load_python(spec: ExternalModelSpec, base_dir: Path, name: str, device: torch.device) -> LoadedModel:
    """``factory(**kwargs)`` (user code, looked up in ``base_dir`` and on ``sys.path``) plus optional weights.

    A module already imported under the factory's module name is reused, as Python does; provenance
    names the file that was actually imported (``factory_source``).
    """
    files: list[tuple[str, Path]] = []
    weights_path = existing_file(base_dir, spec.weights, name, "weights") if spec.weights else None
    factory = _import_factory(spec.factory, base_dir, name)
    source = getattr(sys.modules.get(factory.__module__), "__file__", None)
    if source:
        files.append(("factory_source", Path(source).resolve()))
    try:
        module = factory(**spec.kwargs)
    except Exception as exc:
        raise UserError(f"model {name!r}: factory {spec.factory}(**{spec.kwargs}) failed: {one_line(exc)}") from exc
    if not isinstance(module, nn.Module):
        raise UserError(
            f"model {name!r}: factory {spec.factory} returned {type(module).__name__}, not a torch nn.Module"
        )
    if weights_path is not None:
        _load_weights(module, weights_path, name)
        files.append(("weights", weights_path))
    return LoadedModel(module.to(device), tuple(files))


def _import_factory(factory: str, base_dir: Path, name: str) -> Callable[..., object]:
    module_name, attr = factory.split(":")
    added = str(base_dir) not in sys.path
    if added:
        sys.path.insert(0, str(base_dir))
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise UserError(
                f"model {name!r}: factory module {module_name!r} not found (looked in {base_dir} and sys.path)"
            ) from exc
        raise UserError(f"model {name!r}: importing factory module {module_name!r} failed: {one_line(exc)}") from exc
    except Exception as exc:
        raise UserError(f"model {name!r}: importing factory module {module_name!r} failed: {one_line(exc)}") from exc
    finally:
        if added:
            sys.path.remove(str(base_dir))
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise UserError(f"model {name!r}: module {module_name!r} has no function {attr!r}")
    return fn


def _load_weights(module: nn.Module, path: Path, name: str) -> None:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DataError(
            f"model {name!r}: {path.name} is not a plain state dict (torch.load weights_only=True: {one_line(exc)})"
        ) from exc
    if not isinstance(state, dict):
        raise DataError(f"model {name!r}: {path.name} holds a {type(state).__name__}, not a state dict")
    try:
        result = module.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # a tensor of the wrong shape
        raise DataError(f"model {name!r}: {path.name} does not fit the factory's module: {one_line(exc)}") from exc
    problems = [f"missing {k}" for k in result.missing_keys] + [f"unexpected {k}" for k in result.unexpected_keys]
    if problems:
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        raise DataError(
            f"model {name!r}: {path.name} does not fit the factory's module: {', '.join(problems[:3])}{more}"
        )
