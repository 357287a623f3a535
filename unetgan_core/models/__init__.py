"""Networks of the benchmark, registered by name so suites and checkpoints can name them.

``MODELS`` maps a name to a ``torch.nn.Module`` class; ``create_model(name, **kwargs)`` builds one
and rejects unknown names and unknown keyword arguments with a one-line ``UserError``.

Registered models:

- ``lv_unet``: the segmentation network (``unetgan_core.models.unet.LVUnet``).
- ``resnet_generator``: the image translator (``unetgan_core.models.generator.ResnetGenerator``).
- ``patch_discriminator``: the PatchGAN critic (``unetgan_core.models.discriminator.PatchDiscriminator``).
"""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from unetgan_core.errors import UserError
from unetgan_core.registry import Registry

MODELS: Registry[type[nn.Module]] = Registry("model")

# The submodules register themselves on import; they need MODELS to exist first.
from unetgan_core.models import discriminator, generator, unet  # noqa: E402,F401
from unetgan_core.models.discriminator import PatchDiscriminator  # noqa: E402
from unetgan_core.models.generator import ResnetGenerator  # noqa: E402
from unetgan_core.models.unet import LVUnet, freeze  # noqa: E402


def create_model(name: str, /, **kwargs: Any) -> nn.Module:
    """Build the registered model ``name`` with ``kwargs``.

    Args:
        name: a registered model name, e.g. ``"lv_unet"``.
        **kwargs: constructor arguments of that model (e.g. ``width=16``).

    Returns:
        The new module (in training mode, weights from the current torch seed).

    Raises:
        UserError: unknown name, or a keyword the model does not take.

    Example:
        >>> net = create_model("lv_unet", width=8)
    """
    cls = MODELS.get(name)
    try:
        # Bind first so that a misspelt option is reported as the user's mistake, while a
        # TypeError raised inside a constructor still surfaces as the bug it is.
        inspect.signature(cls).bind(**kwargs)
    except TypeError as exc:
        raise UserError(f"model {name!r}: {exc}") from None
    return cls(**kwargs)


__all__ = [
    "MODELS",
    "LVUnet",
    "PatchDiscriminator",
    "ResnetGenerator",
    "create_model",
    "freeze",
]
