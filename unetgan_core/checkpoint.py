"""Model checkpoints: weights plus the resolved config, written atomically and read without unpickling code.

One file per checkpoint (e.g. ``unet.pt``) holding a plain dict::

    {"format": "unetgan-checkpoint", "version": 1,
     "state_dict": {name: tensor}, "config_json": "<JSON text>", "extra": {...}}

The config is stored as JSON text rather than as Python objects so that the file loads with
``torch.load(weights_only=True)``, which refuses any pickle that would construct arbitrary
objects or run code; such a file is reported as a ``DataError`` naming it. ``extra`` may hold
tensors, numbers, strings, booleans, None and lists/dicts of them (e.g. an optimiser state dict
or the training step), everything ``weights_only`` can read back.

``config["model"]`` should be ``{"name": <registered model>, "kwargs": {...}}`` so that
``build_from_checkpoint`` can recreate the network.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from unetgan_core.errors import DataError, UserError
from unetgan_core.hashing import canonical

FORMAT, VERSION = "unetgan-checkpoint", 1
_EXTRA_SCALARS = (bool, int, float, str, type(None), torch.Tensor)


class Checkpoint(NamedTuple):
    """What a checkpoint file holds."""

    state_dict: dict[str, torch.Tensor]
    config: dict[str, Any]
    extra: dict[str, Any]


def _check_extra(value: Any, where: str) -> None:
    if isinstance(value, _EXTRA_SCALARS):
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_extra(v, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, (str, int)):
                raise UserError(f"checkpoint extra: key {k!r} at {where} must be a string or an integer")
            _check_extra(v, f"{where}[{k!r}]")
        return
    raise UserError(
        f"checkpoint extra: {where} is a {type(value).__name__}; allowed: tensors, numbers, str, bool, None, lists, dicts"
    )


def save_checkpoint(
    path: str | os.PathLike, model: nn.Module, config: dict[str, Any], extra: dict[str, Any] | None = None
) -> Path:
    """Write ``model``'s weights, ``config`` and ``extra`` to ``path`` atomically (temp file, then rename).

    Args:
        path: the checkpoint file to write (parent folders are created).
        model: its ``state_dict()`` is saved (tensors moved to CPU).
        config: the resolved config, JSON-able (dataclasses and numpy scalars are converted);
            ``config["model"] = {"name": ..., "kwargs": {...}}`` enables ``build_from_checkpoint``.
        extra: optional tensors/numbers to keep alongside (e.g. ``{"step": 100}``).

    Returns:
        The path written.
    """
    path = Path(path)
    try:
        config_json = json.dumps(canonical(config), sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise UserError(f"checkpoint {path}: config is not JSON-serialisable ({exc})") from None
    extra = dict(extra or {})
    _check_extra(extra, "extra")
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "config_json": config_json,
        "extra": extra,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        # A reader never sees a half-written checkpoint: the rename is atomic on one file system.
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_failure(exc: BaseException) -> str:
    """Why ``torch.load`` failed, in one short line, without torch's advice on ``weights_only``.

    torch's message for a refused pickle suggests loading again with ``weights_only`` turned off,
    which would run whatever code the file holds; that advice is never passed on. What is kept
    is the cause: the text after ``WeightsUnpickler error:`` (e.g. ``Unsupported global: GLOBAL
    os.system ...``), else the first sentence of the message.
    """
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).split("WeightsUnpickler error:", 1)[-1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    first = re.split(r"(?<=\.)\s", lines[0], maxsplit=1)[0] if lines else ""
    if not first or "weights_only" in first or "weights only" in first.lower():
        return type(exc).__name__
    return first[:200]


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read a checkpoint written by ``save_checkpoint``, refusing anything but plain data.

    Args:
        path: the checkpoint file.
        map_location: device for the tensors (e.g. ``"cpu"``).

    Returns:
        ``Checkpoint(state_dict, config, extra)``.

    Raises:
        DataError: missing file, not a checkpoint, or a pickle that ``weights_only`` refuses.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"checkpoint {path}: no such file")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError or EOFError depending on the damage
        raise DataError(f"checkpoint {path}: refused or unreadable ({load_failure(exc)})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise DataError(f"checkpoint {path}: not a {FORMAT} file")
    if payload.get("version") != VERSION:
        raise DataError(f"checkpoint {path}: version {payload.get('version')!r}; this code reads {VERSION}")
    try:
        config = json.loads(payload["config_json"])
        state_dict = payload["state_dict"]
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"checkpoint {path}: damaged config or weights ({exc})") from None
    return Checkpoint(state_dict, config, payload.get("extra", {}))


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(state_dict, config)`` of a checkpoint (see ``read_checkpoint`` for ``extra`` too).

    Args:
        path: the checkpoint file.
        map_location: device for the tensors.

    Returns:
        The weights and the config dict.
    """
    ckpt = read_checkpoint(path, map_location)
    return ckpt.state_dict, ckpt.config


def build_from_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> nn.Module:
    """Recreate the model named in ``config["model"]`` via the registry and load its weights.

    Args:
        path: the checkpoint file.
        map_location: device for the model.

    Returns:
        The model, in eval mode, on ``map_location``.
    """
    # Imported here so that reading a checkpoint does not require building every network.
    from unetgan_core.models import create_model

    state_dict, config = load_checkpoint(path, map_location)
    spec = config.get("model")
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise DataError(f'checkpoint {path}: config has no model spec {{"name": ..., "kwargs": {{...}}}}')
    model = create_model(spec["name"], **spec.get("kwargs", {}))
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise DataError(f"checkpoint {path}: weights do not fit model {spec['name']!r} ({first})") from None
    return model.to(map_location).eval()
