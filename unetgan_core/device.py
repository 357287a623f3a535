"""Device choice and naming, seeding and reproducibility settings, and an optional mixed-precision context."""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import random
from collections.abc import Iterator

import numpy as np
import torch

from unetgan_core.errors import UserError

DEVICE_CHOICES = ("cpu", "cuda", "auto")
_AUTOCAST_DTYPES = {
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
}


@contextlib.contextmanager
def cpu_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op CPU threads, then restore the previous count.

    torch's CPU kernels split sums across threads, so the thread count changes results in the last
    bits (and a trained model in visible ways); a fixed count keeps CPU training the same on any
    machine.

    Args:
        n: threads, at least 1.
    """
    if n < 1:
        raise UserError(f"threads must be >= 1, got {n}")
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def resolve_device(name: str | torch.device) -> torch.device:
    """Turn ``"cpu"``, ``"cuda"`` (or ``"cuda:1"``) or ``"auto"`` into a ``torch.device``.

    Args:
        name: the requested device; ``"auto"`` picks CUDA when present, else CPU.

    Returns:
        The device.

    Raises:
        UserError: an unknown name, or CUDA asked for on a machine without it.
    """
    text = str(name)
    kind = text.split(":", 1)[0]
    if kind not in DEVICE_CHOICES or (kind != "cuda" and ":" in text):
        raise UserError(f"unknown device {text!r}; known: {', '.join(DEVICE_CHOICES)} (or cuda:<index>)")
    if kind == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"device {text!r} asked for, but no CUDA device is available; use 'cpu' or 'auto'")
        device = torch.device(text)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(f"device {text!r}: only {torch.cuda.device_count()} CUDA device(s) present")
        return device
    return torch.device("cpu")


def module_device(module: torch.nn.Module) -> torch.device:
    """The device of a module's first parameter (CPU for a module without parameters)."""
    for p in module.parameters():
        return p.device
    return torch.device("cpu")


def device_name(device: str | torch.device) -> str:
    """A readable name of the hardware behind ``device``: the CUDA name, or the CPU model.

    Args:
        device: a torch device or its name.
    """
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return _cpu_model()


@functools.cache
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def seed_everything(seed: int, deterministic: bool = True) -> torch.Generator:
    """Seed Python, numpy and torch (all devices), and optionally ask torch for deterministic kernels.

    Determinism uses ``torch.use_deterministic_algorithms(True, warn_only=True)``: kernels with
    no deterministic version warn instead of failing (some CUDA backward passes, e.g. of bilinear
    upsampling, have none), so CPU runs are bit-for-bit repeatable and CUDA runs nearly so.
    cuDNN autotuning is switched off because it may pick different algorithms per run.

    Args:
        seed: a non-negative integer (e.g. from ``hashing.derive_seed``).
        deterministic: also set the deterministic-kernel flags (process-wide).

    Returns:
        A CPU ``torch.Generator`` seeded with ``seed``, for code that wants its own stream.
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise UserError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device
    if deterministic:
        # cuBLAS reads this when it first starts; setting it early makes CUDA matmuls repeatable.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    return torch.Generator().manual_seed(seed)


def autocast(
    device: str | torch.device, enabled: bool = False, dtype: str | torch.dtype = torch.bfloat16
) -> contextlib.AbstractContextManager:
    """A mixed-precision context for ``device``, or a no-op when ``enabled`` is False.

    Args:
        device: where the computation runs.
        enabled: turn autocast on.
        dtype: ``torch.bfloat16`` / ``"bf16"`` (CPU and CUDA) or ``torch.float16`` / ``"fp16"`` (CUDA only).

    Returns:
        A context manager.

    Example:
        >>> with autocast("cpu", enabled=True):
        ...     y = torch.ones(2, 2) @ torch.ones(2, 2)
        >>> y.dtype
        torch.bfloat16
    """
    device = torch.device(device)
    if isinstance(dtype, str):
        if dtype not in _AUTOCAST_DTYPES:
            raise UserError(f"unknown autocast dtype {dtype!r}; known: {', '.join(_AUTOCAST_DTYPES)}")
        dtype = _AUTOCAST_DTYPES[dtype]
    if dtype not in (torch.bfloat16, torch.float16):
        raise UserError(f"autocast dtype must be bfloat16 or float16, got {dtype}")
    if not enabled:
        return contextlib.nullcontext()
    if device.type == "cpu" and dtype == torch.float16:
        raise UserError("float16 autocast needs a CUDA device; use bfloat16 on the CPU")
    return torch.autocast(device_type=device.type, dtype=dtype)


def synchronize(device: str | torch.device) -> None:
    """Wait for queued work on ``device`` to finish (call before reading a clock).

    Args:
        device: the device whose queue to drain; a no-op on the CPU.
    """
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def eval_mode(module: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Temporarily put ``module`` in eval mode, restoring its previous mode afterwards.

    Args:
        module: the network.
    """
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)
