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

# Without explicit sizes the peak is searched: square products from ``PLATEAU_START`` elements a
# side, doubling until the rate stops rising by ``PLATEAU_GAIN`` (the compute-bound plateau), one
# product takes longer than ``PLATEAU_MAX_PRODUCT_S``, or the side reaches the device's cap.
PLATEAU_START = 256
PLATEAU_GAIN = 1.05
PLATEAU_MAX_PRODUCT_S = 0.5
MAX_SIDE = {"cpu": 4096, "cuda": 16384}


def dtype_of(precision: str) -> torch.dtype:
    """The torch dtype of a precision name.

    Args:
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"``.
    """
    try:
        return DTYPES[precision]
    except KeyError:
        raise UserError(f"unknown precision {precision!r}; known: {', '.join(DTYPES)}") from None


def _rate_tflops(n: int, dtype: torch.dtype, device: torch.device, warmup: int, repeats: int) -> tuple[float, float]:
    """TFLOP/s of the median ``n x n @ n x n`` product, and that median in seconds."""
    generator = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(n, n, generator=generator).to(device=device, dtype=dtype)
    b = torch.randn(n, n, generator=generator).to(device=device, dtype=dtype)
    median_s = measure(lambda: torch.mm(a, b), warmup=warmup, repeats=repeats, sync=device_sync(device)).median_s
    return 2.0 * n**3 / median_s / 1e12, median_s


def measure_matmul_tflops(
    dtype: torch.dtype,
    device: torch.device | str,
    *,
    sizes: tuple[int, ...] | None = None,
    warmup: int = 2,
    repeats: int = 5,
) -> float:
    """Best achieved rate of a square ``n x n @ n x n`` product, in TFLOP/s (10^12 FLOP per second).

    The product runs in ``dtype`` with the threads torch uses for the workloads, so the peak is
    that of the rows measured against it. Too small a matrix measures overhead, not the peak;
    without ``sizes`` the side doubles until the rate reaches its plateau (module constants).

    Args:
        dtype: element type of both operands (the accumulator is torch's default for it).
        device: where to run.
        sizes: matrix sides ``n`` to try, in elements; the best median rate over them is
            returned. None: search for the plateau.
        warmup: untimed products per size.
        repeats: timed products per size (median taken).
    """
    device = torch.device(device)
    if sizes:
        return max(_rate_tflops(n, dtype, device, warmup, repeats)[0] for n in sizes)
    best, n = 0.0, PLATEAU_START
    while n <= MAX_SIDE.get(device.type, 4096):
        rate, median_s = _rate_tflops(n, dtype, device, warmup, repeats)
        rising = rate > best * PLATEAU_GAIN
        best = max(best, rate)
        if not rising or median_s > PLATEAU_MAX_PRODUCT_S:
            break
        n *= 2
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
