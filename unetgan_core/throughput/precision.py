"""Which reduced precisions are worth a throughput row on this device.

A CPU without bf16 instructions (AVX2-only x86, for example) runs bf16 autocast by converting
every operand in software: measured on a 2-core AVX2 EPYC, the 192 px LV-Unet ran 24x slower
in bf16 than in fp32, and a throughput suite spent 12 of its 13 minutes on such rows. A row
of an emulated precision measures the emulation, not the model, so it is not measured: the
precision is recorded once as skipped, with the reason, after a probe that takes milliseconds.

A precision is measured when the device runs it natively (CUDA fp16; CUDA bf16 where
``torch.cuda.is_bf16_supported()``; CPU bf16 with AVX-512 BF16 or AMX) or when the probe shows
it measurably faster than fp32 (at least ``MIN_SPEEDUP``). fp32 is always measured.
"""

from __future__ import annotations

import dataclasses

import torch

from unetgan_core.device import autocast
from unetgan_core.throughput.timing import device_sync, measure

# A reduced precision earns its rows on a device without native support only when the probe
# runs at least this much faster than fp32 (5%: above the probe's run-to-run noise on a quiet CPU).
MIN_SPEEDUP = 1.05

# The probe: one 3x3 convolution of the width the CPU suites' Unets use at their widest level,
# on one 96 px image; a few milliseconds in fp32 on a 2-core CPU.
PROBE_CHANNELS = 32
PROBE_SIZE = 96


@dataclasses.dataclass(frozen=True)
class PrecisionDecision:
    """Whether a precision gets throughput rows on a device, and why.

    Args:
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"``.
        measured: True when its rows are measured.
        reason: one line: what made the decision (native support, or the probe's numbers).
        probe_ms: the probe's median milliseconds as ``{"fp32": ..., precision: ...}``; empty when
            the decision needed no probe.
    """

    precision: str
    measured: bool
    reason: str
    probe_ms: dict = dataclasses.field(default_factory=dict)


def native_support(device: torch.device | str, precision: str) -> str | None:
    """Why ``device`` runs ``precision`` in hardware, or None when it does not (or it cannot tell).

    Args:
        device: the device measured.
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"``.
    """
    device = torch.device(device)
    if precision == "fp32":
        return "fp32 is the reference precision"
    if device.type == "cuda":
        if precision == "fp16":
            return "CUDA runs fp16 natively"
        if precision == "bf16" and torch.cuda.is_bf16_supported():
            return "CUDA device supports bf16"
        return None
    if device.type == "cpu" and precision == "bf16":
        # Private helpers of torch.cpu (present since torch 2.3); a torch without them falls back to the probe.
        for check, name in (("_is_amx_tile_supported", "AMX"), ("_is_avx512_bf16_supported", "AVX-512 BF16")):
            probe = getattr(torch.cpu, check, None)
            if probe is not None and probe():
                return f"CPU has {name}"
    return None


def _probe_ms(device: torch.device, precision: str, repeats: int) -> float:
    generator = torch.Generator(device="cpu").manual_seed(0)
    conv = torch.nn.Conv2d(PROBE_CHANNELS, PROBE_CHANNELS, 3, padding=1).to(device).eval()
    x = torch.rand(1, PROBE_CHANNELS, PROBE_SIZE, PROBE_SIZE, generator=generator).to(device)

    def step() -> None:
        with (
            torch.no_grad(),
            autocast(device, enabled=precision != "fp32", dtype="bf16" if precision == "fp32" else precision),
        ):
            conv(x)

    return measure(step, warmup=2, repeats=repeats, sync=device_sync(device)).median_s * 1e3


def decide_precision(device: torch.device | str, precision: str, *, repeats: int = 7) -> PrecisionDecision:
    """Decide whether ``precision`` gets throughput rows on ``device`` (module docstring).

    Args:
        device: the device measured.
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"`` (already checked to be supported at all).
        repeats: timed probe calls per precision (median taken).
    """
    device = torch.device(device)
    native = native_support(device, precision)
    if native is not None:
        return PrecisionDecision(precision, True, native)
    reference = _probe_ms(device, "fp32", repeats)
    reduced = _probe_ms(device, precision, repeats)
    probe = {"fp32": round(reference, 3), precision: round(reduced, 3)}
    speedup = reference / reduced if reduced > 0 else float("inf")
    shape = f"{PROBE_CHANNELS}-channel 3x3 conv on {PROBE_SIZE} px"
    if speedup >= MIN_SPEEDUP:
        reason = f"no native {precision}, but measured {speedup:.2f}x faster than fp32 ({shape})"
        return PrecisionDecision(precision, True, reason, probe)
    reason = (
        f"skipped: no native {precision} on this {device.type} (emulated); a {shape} took "
        f"{reduced:.2f} ms in {precision} against {reference:.2f} ms in fp32 ({1 / speedup:.1f}x slower)"
    )
    return PrecisionDecision(precision, False, reason, probe)
