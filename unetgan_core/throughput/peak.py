"""The matrix-product peak of a dtype on a device, measured in the same run as the workloads.

A vendor's datasheet peak says little about a shared 2-core VM or a power-capped GPU, so
the fraction of peak in a throughput row is taken against a square matmul timed on the
same device, in the same process, just before the workloads. ``PeakCache`` measures each
(device, dtype) once per run.
"""

from __future__ import annotations

import torch

from unetgan_core.errors import UserError
from unetgan_core.throughput.timing import device_sync, measure

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

# Square sizes large enough to reach the compute-bound regime: on a 2-core CPU a 2048^3
# fp32 product takes ~0.1 s; on a data-centre GPU 8192^3 is needed to fill the chip.
DEFAULT_SIZES = {"cpu": (1024, 2048), "cuda": (4096, 8192)}


def dtype_of(precision: str) -> torch.dtype:
    """The torch dtype of a precision name.

    Args:
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"``.
    """
    try:
        return DTYPES[precision]
    except KeyError:
        raise UserError(f"unknown precision {precision!r}; known: {', '.join(DTYPES)}") from None


def measure_matmul_tflops(
    dtype: torch.dtype,
    device: torch.device | str,
    *,
    sizes: tuple[int, ...] | None = None,
    warmup: int = 2,
    repeats: int = 5,
) -> float:
    """Best achieved rate of a square ``n x n @ n x n`` product, in TFLOP/s (10^12 FLOP per second).

    Args:
        dtype: element type of both operands (the accumulator is torch's default for it).
        device: where to run.
        sizes: matrix sides ``n`` to try, in elements; the best median rate over them is
            returned. Defaults to ``DEFAULT_SIZES`` for the device type.
        warmup: untimed products per size.
        repeats: timed products per size (median taken).
    """
    device = torch.device(device)
    sizes = sizes or DEFAULT_SIZES.get(device.type, (2048,))
    generator = torch.Generator(device="cpu").manual_seed(0)
    best = 0.0
    for n in sizes:
        a = torch.randn(n, n, generator=generator).to(device=device, dtype=dtype)
        b = torch.randn(n, n, generator=generator).to(device=device, dtype=dtype)
        timing = measure(lambda a=a, b=b: torch.mm(a, b), warmup=warmup, repeats=repeats, sync=device_sync(device))
        best = max(best, 2.0 * n**3 / timing.median_s / 1e12)
    return best


class PeakCache:
    """Matmul peaks measured at most once per (device, dtype) for the lifetime of the cache.

    Args:
        sizes: passed to ``measure_matmul_tflops``; None for the device default.
        repeats: timed products per size.
    """

    def __init__(self, sizes: tuple[int, ...] | None = None, repeats: int = 5) -> None:
        self.sizes = sizes
        self.repeats = repeats
        self._peaks: dict[tuple[str, torch.dtype], float] = {}

    def tflops(self, dtype: torch.dtype, device: torch.device | str) -> float:
        """The measured matmul peak of ``dtype`` on ``device``, in TFLOP/s."""
        key = (str(torch.device(device)), dtype)
        if key not in self._peaks:
            self._peaks[key] = measure_matmul_tflops(dtype, device, sizes=self.sizes, repeats=self.repeats)
        return self._peaks[key]
