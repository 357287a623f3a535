"""Faster inference: channels_last layout, under reduced precision only where the hardware runs it fast.

The fast path runs the segmenter in NHWC (channels_last) layout, which oneDNN's convolutions and
CUDA tensor cores want. A 1-channel image has the same strides in both layouts, so the layout
must come from the weights: the model's 4D weights are switched to channels_last for the call
(a conv with channels_last weights runs channels_last) and switched back after it.

Reduced precision (bfloat16 autocast; float16 on GPUs without bfloat16) pays only with matrix
units for it: on a GPU, or a CPU with AMX or AVX-512 BF16. Elsewhere bf16 convolutions are emulated
and several times slower than fp32 (~24x for the 192 px LV-Unet on a 2-core AVX2 EPYC, where
channels_last fp32 is ~1.4x faster than the default layout). ``choose_fast_path`` asks the rule
that decides which precisions get throughput rows (``precision.decide_precision``) once per
process and device, and picks channels_last+bf16 or channels_last fp32;
``fast_path_description`` names the choice for the results. On a CPU each batch is also split over
single-thread workers, one per torch thread (``fast_workers``): small convolutions do not split well
across threads. ``check_fast_path`` compares mean
Dice of the reduced-precision candidate (``fast_predict``) and fp32 on test images and, when
asked, their speed, and says which to use and why.

The other CPU candidates measured against fp32 eager (ONNX Runtime with and without its NCHWc
layout, int8 static and dynamic, torch.compile with freezing, TorchScript freezing and oneDNN fusion;
``tools/fastpath_candidates.py``) were no faster than channels_last at the suites' batches on a
2-core AVX2 EPYC, or needed seconds of set-up per model: docs/architecture.md, "CPU inference fast path".
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch import nn

from unetgan_core.device import autocast, eval_mode, module_device
from unetgan_core.errors import DataError, UserError
from unetgan_core.inference import class_map, segment
from unetgan_core.throughput.precision import PrecisionDecision, decide_precision
from unetgan_core.throughput.timing import device_sync, measure
from unetgan_core.training.selection import mean_dice

DICE_TOLERANCE = 0.005  # largest accepted change of mean Dice on the fast path (half a Dice point)


@dataclasses.dataclass(frozen=True)
class FastPathDecision:
    """Which inference path to use, with the evidence.

    Args:
        use_fast: True when the fast path agrees with fp32 within the tolerance (and, if speed
            was measured, is faster).
        dice_fp32: mean Dice (blood pool and myocardium) of fp32 predictions.
        dice_fast: mean Dice of fast-path predictions.
        delta: ``dice_fast - dice_fp32``.
        note: one line saying what was decided and why.
        speedup: fast-path images/s divided by fp32 images/s, measured in the same call; None if not measured.
    """

    use_fast: bool
    dice_fp32: float
    dice_fast: float
    delta: float
    note: str
    speedup: float | None = None


def fast_dtype(device: torch.device | str) -> torch.dtype:
    """The reduced-precision dtype of the fast path on ``device``.

    Args:
        device: where the model runs. bfloat16 keeps fp32's exponent range (no overflow in logits);
            float16 is used only on GPUs without bfloat16.
    """
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


_PRECISION_NAMES = {torch.bfloat16: "bf16", torch.float16: "fp16"}


@dataclasses.dataclass(frozen=True)
class FastPath:
    """How ``Pipeline.predict(fast=True)`` runs on one device.

    Args:
        device_type: ``"cpu"`` or ``"cuda"``.
        dtype: autocast dtype (``torch.bfloat16`` or ``torch.float16``), or None for fp32.
        reason: one line on why (the measured bf16/fp32 matmul ratio on a CPU).
    """

    device_type: str
    dtype: torch.dtype | None
    reason: str

    @property
    def description(self) -> str:
        """``"channels_last+bf16"``, ``"channels_last+fp16"`` or ``"channels_last fp32"``."""
        return "channels_last fp32" if self.dtype is None else f"channels_last+{_PRECISION_NAMES[self.dtype]}"


def choose_fast_path(
    device: torch.device | str, *, decide: Callable[[torch.device, str], PrecisionDecision] | None = None
) -> FastPath:
    """The fast path for ``device``: channels_last, plus reduced precision where it is faster.

    On CUDA reduced precision is always taken (tensor cores). On a CPU bf16 is taken by the same rule
    that gives it throughput rows (``precision.decide_precision``: native bf16 instructions, or a
    probe convolution measurably faster than in fp32); the decision is made once per process and device.

    Args:
        device: where the model runs.
        decide: ``(device, "bf16") -> PrecisionDecision`` (tests pass their own; None: the real,
            cached ``decide_precision``).

    Returns:
        A ``FastPath``; its ``description`` goes into the results.
    """
    device = torch.device(device)
    if decide is None:
        return _cached_choice(str(device))
    return _choose(device, decide)


@functools.cache
def _cached_choice(device: str) -> FastPath:
    return _choose(torch.device(device), decide_precision)


def _choose(device: torch.device, decide: Callable[[torch.device, str], PrecisionDecision]) -> FastPath:
    if device.type == "cuda":
        dtype = fast_dtype(device)
        return FastPath("cuda", dtype, f"GPU: {_PRECISION_NAMES[dtype]} autocast runs on tensor cores")
    if device.type != "cpu":
        return FastPath(device.type, None, f"no reduced-precision fast path known for {device.type}; fp32")
    decision = decide(device, "bf16")
    if decision.measured:
        return FastPath("cpu", torch.bfloat16, f"bf16: {decision.reason}")
    return FastPath("cpu", None, f"fp32; bf16 {decision.reason}")


def fast_path_description(device: torch.device | str, workers: int | None = None) -> str:
    """What ``Pipeline.predict(fast=True)`` runs on ``device``, e.g. ``"channels_last fp32 on 2 single-thread workers"``.

    Args:
        device: where the model runs (the first call on a CPU times two small matmuls).
        workers: the workers each batch is split over (``Pipeline.fast_workers``); None: ``fast_workers(device)``.
    """
    workers = fast_workers(device) if workers is None else workers
    split = f" on {workers} single-thread workers" if workers > 1 else ""
    return choose_fast_path(device).description + split


def fast_workers(device: torch.device | str) -> int:
    """How many single-thread workers the fast path splits each batch over: torch's CPU thread count, 1 on a GPU.

    Small convolutions do not split well across threads: on a 2-core AVX2 EPYC the channels_last LV-Unet
    predicts 1.12-1.18x more images per second as two halves of a batch, each on one thread, than as one
    batch on two threads (64-192 px; docs/performance.md). Each image's labels do not depend on the split.
    """
    return torch.get_num_threads() if torch.device(device).type == "cpu" else 1


@contextlib.contextmanager
def single_thread_workers(workers: int) -> Iterator[ThreadPoolExecutor | None]:
    """A pool of ``workers`` threads (kept for the process), with torch's CPU ops on one thread each, for the block;
    None for one worker.

    torch releases the GIL inside its operators, so the workers' forward passes run on separate cores.
    The thread count is restored afterwards.
    """
    if workers <= 1:
        yield None
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield _worker_pool(workers)
    finally:
        torch.set_num_threads(before)


@functools.cache
def _worker_pool(workers: int) -> ThreadPoolExecutor:
    # One pool per size for the process: a fresh thread sets up torch's and oneDNN's per-thread state again,
    # which cost up to a tenth of a 96 px batch's time.
    return ThreadPoolExecutor(workers, thread_name_prefix="fastpath")


def _check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise UserError(f"batch_size must be an integer >= 1, got {batch_size!r}")


def _as_images(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(images, dtype=np.float32) if isinstance(images, np.ndarray) else images)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[1] != 1:
        raise DataError(f"images must be [N, H, W] or [N, 1, H, W], got {list(x.shape)}")
    if x.numel() and not torch.isfinite(x).all():
        raise DataError("images contain NaN or infinite values")
    return x.to(torch.float32)


@contextlib.contextmanager
def channels_last_weights(model: nn.Module) -> Iterator[nn.Module]:
    """Temporarily store ``model``'s weights channels_last; restore the contiguous layout afterwards.

    Args:
        model: any module; only its 4D parameters and buffers change layout (values are unchanged).
    """
    weights = [t for t in (*model.parameters(), *model.buffers()) if t.ndim == 4]
    if all(t.is_contiguous(memory_format=torch.channels_last) for t in weights):
        yield model
        return
    model.to(memory_format=torch.channels_last)
    try:
        yield model
    finally:
        model.to(memory_format=torch.contiguous_format)


def fast_predict(
    model: nn.Module, images: np.ndarray | torch.Tensor, batch_size: int, path: FastPath | None = None
) -> np.ndarray:
    """Label maps from a fast path: channels_last inputs, under reduced-precision autocast unless ``path`` says fp32.

    The model runs in eval mode with channels_last weights; its mode and layout are restored after.

    Args:
        model: segmenter, images ``[B, 1, H, W]`` -> logits ``[B, C, H, W]``.
        images: ``[N, H, W]`` or ``[N, 1, H, W]``, intensities in [0, 1].
        batch_size: images per forward pass.
        path: how to run; None means the reduced-precision candidate (bf16, or fp16 on GPUs without
            bf16), which ``check_fast_path`` judges. ``choose_fast_path(device)`` gives what this
            hardware runs fastest.

    Returns:
        uint8 ``[N, H, W]``, the argmax class per pixel.
    """
    _check_batch_size(batch_size)
    device = module_device(model)
    dtype = fast_dtype(device) if path is None else path.dtype
    x = _as_images(images)
    out = []
    with (
        eval_mode(model),
        channels_last_weights(model),
        torch.inference_mode(),
        autocast(device, enabled=dtype is not None, dtype=dtype or torch.bfloat16),
    ):
        for start in range(0, len(x), batch_size):
            batch = x[start : start + batch_size].to(device).contiguous(memory_format=torch.channels_last)
            out.append(class_map(model(batch)).to(torch.uint8).cpu())
    if not out:
        return np.zeros((0, *x.shape[2:]), dtype=np.uint8)
    return torch.cat(out).numpy()


def fp32_predict(model: nn.Module, images: np.ndarray | torch.Tensor, batch_size: int) -> np.ndarray:
    """Label maps from the reference path (fp32, default memory format); see ``fast_predict`` for the arguments."""
    _check_batch_size(batch_size)
    return segment(model, _as_images(images), batch_size)


def speed_ratio(
    model: nn.Module, images: np.ndarray | torch.Tensor, batch_size: int, *, warmup: int = 1, repeats: int = 3
) -> dict[str, float]:
    """Images per second of the fp32 and the fast path on the same images, measured back to back.

    Args:
        model: the segmenter.
        images: ``[N, H, W]`` in [0, 1]; every call predicts all of them.
        batch_size: images per forward pass.
        warmup: untimed calls per path.
        repeats: timed calls per path (median taken).

    Returns:
        ``{"fp32_images_per_s", "fast_images_per_s", "speedup"}`` (speedup = fast / fp32).
    """
    x = _as_images(images)
    sync = device_sync(module_device(model))
    fp32 = measure(lambda: fp32_predict(model, x, batch_size), warmup=warmup, repeats=repeats, sync=sync)
    fast = measure(lambda: fast_predict(model, x, batch_size), warmup=warmup, repeats=repeats, sync=sync)
    fp32_rate, fast_rate = len(x) / fp32.median_s, len(x) / fast.median_s
    return {"fp32_images_per_s": fp32_rate, "fast_images_per_s": fast_rate, "speedup": fast_rate / fp32_rate}


def judge_fast_path(
    pred_fp32: np.ndarray,
    pred_fast: np.ndarray,
    labels: np.ndarray,
    myo_labelled: np.ndarray | None,
    tolerance: float,
    *,
    mode: str,
) -> FastPathDecision:
    """The Dice rule of ``check_fast_path`` on label maps already predicted by both paths.

    For callers that keep the predictions (an evaluation predicts every image on the fast path once, then
    only the checked images in fp32, instead of predicting the checked ones twice).

    Args:
        pred_fp32, pred_fast: ``[N, H, W]`` label maps of the same images from fp32 and the fast path.
        labels: their ground truth; ``myo_labelled`` as in ``check_fast_path``.
        tolerance: largest accepted difference in mean Dice.
        mode: the fast path's description, for the note.
    """
    dice_fp32 = float(mean_dice(pred_fp32, labels, myo_labelled))
    dice_fast = float(mean_dice(pred_fast, labels, myo_labelled))
    delta = dice_fast - dice_fp32
    if abs(delta) > tolerance:
        note = f"fast path ({mode}) changes mean Dice by {delta:+.4f} (tolerance {tolerance}); falling back to fp32"
        return FastPathDecision(False, dice_fp32, dice_fast, delta, note)
    note = f"fast path ({mode}) agrees with fp32 within {tolerance} (delta {delta:+.4f})"
    return FastPathDecision(True, dice_fp32, dice_fast, delta, note)


def check_fast_path(
    model,
    images: np.ndarray | torch.Tensor,
    labels: np.ndarray,
    tolerance: float = DICE_TOLERANCE,
    *,
    batch_size: int = 16,
    myo_labelled: np.ndarray | None = None,
    measure_speed: bool = False,
) -> FastPathDecision:
    """Decide between the fast path and fp32 from their mean Dice on test images.

    The fast path is rejected when ``|dice_fast - dice_fp32| > tolerance``: a gain is as
    suspicious as a loss, since both mean the reduced precision changes the predictions. With
    ``measure_speed`` it is also rejected when it is not faster than fp32 on this machine.

    Args:
        model: the segmenter (its fast path is the reduced-precision candidate, ``fast_predict``),
            or a ``Pipeline``, whose own ``predict(..., fast=True)`` is judged (what the suites run).
        images: test images ``[N, H, W]`` in [0, 1].
        labels: their ground truth ``[N, H, W]`` (0 background, 1 blood pool, 2 myocardium).
        tolerance: largest accepted difference in mean Dice (a fraction, 0.005 = half a Dice point).
        batch_size: images per forward pass.
        myo_labelled: bool ``[N]``; False where the myocardium is not annotated (None: all annotated).
        measure_speed: also time both paths and require a speed-up.

    Returns:
        A ``FastPathDecision``.
    """
    if not isinstance(tolerance, (int, float)) or isinstance(tolerance, bool) or not tolerance >= 0:
        raise UserError(f"tolerance must be a number >= 0 (a Dice difference), got {tolerance!r}")
    x = _as_images(images)
    labels = np.asarray(labels)
    if labels.shape != (x.shape[0], *x.shape[2:]):
        raise DataError(f"labels {list(labels.shape)} do not match images {list(x.shape)}")
    if len(x) == 0:
        raise DataError("check_fast_path needs at least one test image")
    if hasattr(model, "predict"):  # a Pipeline runs its own fp32 and fast paths
        array = x[:, 0].cpu().numpy()
        device = model.device

        def run_fp32() -> np.ndarray:
            return model.predict(array, batch_size, fast=False)

        def run_fast() -> np.ndarray:
            return model.predict(array, batch_size, fast=True)

        mode = model.fast_path_description()
    else:
        device = module_device(model)

        def run_fp32() -> np.ndarray:
            return fp32_predict(model, x, batch_size)

        def run_fast() -> np.ndarray:
            return fast_predict(model, x, batch_size)

        mode = f"{str(fast_dtype(device)).removeprefix('torch.')}, channels_last"
    decision = judge_fast_path(run_fp32(), run_fast(), labels, myo_labelled, tolerance, mode=mode)
    if not decision.use_fast or not measure_speed:
        return decision
    dice_fp32, dice_fast, delta = decision.dice_fp32, decision.dice_fast, decision.delta
    sync = device_sync(device)
    fp32_s = measure(run_fp32, warmup=1, repeats=3, sync=sync).median_s
    speedup = fp32_s / measure(run_fast, warmup=1, repeats=3, sync=sync).median_s
    if speedup <= 1.0:
        note = f"fast path agrees (delta {delta:+.4f}) but is not faster here (x{speedup:.2f}); falling back to fp32"
        return FastPathDecision(False, dice_fp32, dice_fast, delta, note, speedup)
    note = f"fast path ({mode}) agrees (delta {delta:+.4f}) and is x{speedup:.2f} faster"
    return FastPathDecision(True, dice_fp32, dice_fast, delta, note, speedup)
