"""Honest wall-clock timing of a callable: warm up, synchronise the device, repeat, take the median.

Why the median and the interquartile range: one slow repeat (a page fault, another process
on a shared core) moves the mean but not the median, and the IQR shows how noisy the
machine was without being dominated by one outlier.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from unetgan_core.device import synchronize
from unetgan_core.errors import UserError


@dataclasses.dataclass(frozen=True)
class Timing:
    """Seconds per call of a measured function.

    Args:
        median_s: median of the repeats, in seconds.
        iqr_s: interquartile range (75th minus 25th percentile, linear interpolation), in seconds.
        min_s: fastest repeat, in seconds.
        times: every repeat, in seconds, in the order they ran.
    """

    median_s: float
    iqr_s: float
    min_s: float
    times: tuple[float, ...]


def device_sync(device: torch.device | str) -> Callable[[], None]:
    """The function that waits for queued work on ``device`` to finish.

    Args:
        device: a torch device or its name (``"cpu"``, ``"cuda"``, ``"cuda:1"``).

    CUDA kernels run asynchronously, so reading the clock without ``torch.cuda.synchronize``
    times only the kernel launches. CPU ops are synchronous, so the CPU sync does nothing.
    """
    return functools.partial(synchronize, torch.device(device))


def summarise(times: list[float] | tuple[float, ...]) -> Timing:
    """Median, IQR and minimum of repeat durations.

    Args:
        times: durations in seconds, at least one.
    """
    if len(times) == 0:
        raise UserError("summarise: no timings to summarise (repeats must be at least 1)")
    arr = np.asarray(times, dtype=np.float64)
    q25, q50, q75 = np.percentile(arr, [25, 50, 75])
    return Timing(
        median_s=float(q50), iqr_s=float(q75 - q25), min_s=float(arr.min()), times=tuple(float(t) for t in arr)
    )


def measure(
    fn: Callable[[], Any],
    *,
    warmup: int,
    repeats: int,
    sync: Callable[[], None],
    clock: Callable[[], float] = time.perf_counter,
    budget_s: float | None = None,
) -> Timing:
    """Time ``fn()`` after ``warmup`` untimed calls.

    Args:
        fn: the work to time; called with no arguments, its result is discarded.
        warmup: untimed calls first (lazy initialisation, allocator growth, autotuning, compilation).
        repeats: timed calls, at least 1; each is timed on its own.
        sync: waits for the device (see ``device_sync``); called before each clock read so queued
            asynchronous work is inside the interval it belongs to.
        clock: a monotonic clock in seconds; injectable so tests can use a fake one.
        budget_s: the time cap of the whole measurement, warm-up included, in seconds; None for
            none. Timed calls stop once the cap is spent, after at least one: a workload that is
            slow on this device costs about ``budget_s`` plus one call, not ``warmup + repeats``
            calls. ``len(Timing.times)`` says how many ran.

    Returns:
        ``Timing`` of one call, in seconds.
    """
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise UserError(f"measure: warmup must be an integer >= 0, got {warmup!r}")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise UserError(f"measure: repeats must be an integer >= 1, got {repeats!r}")
    if budget_s is not None and not budget_s > 0:
        raise UserError(f"measure: budget_s must be a positive number of seconds, got {budget_s!r}")
    began = clock() if budget_s is not None else 0.0
    for _ in range(warmup):
        fn()
        if budget_s is not None and clock() - began >= budget_s:
            break
    times: list[float] = []
    for _ in range(repeats):
        sync()
        start = clock()
        fn()
        sync()
        times.append(clock() - start)
        if budget_s is not None and clock() - began >= budget_s:
            break
    return summarise(times)
