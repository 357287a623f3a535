"""Take the outputs of named submodules with forward hooks: the "Unet features" of an external model.

The Unet-GAN feature loss compares a segmenter's intermediate features of an image and of its
translation. For an external ``python`` model the suite names the modules (``feature_layers``, paths as
in ``named_modules()``); their outputs are captured during one forward pass, with gradients.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence

import torch
from torch import nn

from unetgan_core.errors import UserError


def resolve_layers(module: nn.Module, layers: Sequence[str], name: str) -> dict[str, nn.Module]:
    """The submodules at ``layers`` (paths such as ``"down_2.convs"``), or a one-line error naming the unknown one.

    Args:
        module: the model.
        layers: module paths.
        name: the model's name, for error messages.
    """
    known = dict(module.named_modules())
    found = {}
    for layer in layers:
        if layer not in known or not layer:
            close = difflib.get_close_matches(layer, [k for k in known if k], n=3)
            hint = f"; did you mean {', '.join(close)}" if close else f"; it has {len(known) - 1} named modules"
            raise UserError(f"model {name!r}: feature layer {layer!r} is not a module of the model{hint}")
        found[layer] = known[layer]
    return found


def capture(modules: dict[str, nn.Module], run: Callable[[], object], name: str) -> dict[str, torch.Tensor]:
    """Run ``run()`` once and return each named module's output (the last call's, if it runs twice).

    Args:
        modules: layer path -> submodule (``resolve_layers``).
        run: the forward pass.
        name: the model's name, for error messages.

    Returns:
        Layer path -> output tensor, in the order of ``modules``; gradients flow through them.
    """
    outputs: dict[str, object] = {}

    def keep(layer: str) -> Callable[..., None]:
        def hook(_module: nn.Module, _inputs: object, output: object) -> None:
            outputs[layer] = output

        return hook

    handles = [m.register_forward_hook(keep(layer)) for layer, m in modules.items()]
    try:
        run()
    finally:
        for h in handles:
            h.remove()
    result = {}
    for layer in modules:
        out = outputs.get(layer)
        if out is None:
            raise UserError(f"model {name!r}: feature layer {layer!r} was not called by the forward pass")
        if not isinstance(out, torch.Tensor):
            raise UserError(f"model {name!r}: feature layer {layer!r} returns a {type(out).__name__}, not a tensor")
        result[layer] = out
    return result
