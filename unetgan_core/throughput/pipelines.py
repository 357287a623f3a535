"""The measured workloads and the throughput rows of a suite's ``[throughput]`` section.

Each workload is registered in ``WORKLOADS`` under the name a suite uses and is built
from a ``WorkloadSpec`` (image size, batch, precision, channels_last, compile, device,
network options). Building returns a ``Workload`` whose ``step()`` processes one batch;
``run_throughput`` times the steps and turns them into flat rows.

The networks and losses come from ``unetgan_core.models`` and ``unetgan_core.losses``;
they are imported inside the builders so the harness itself (timing, rows, OOM
step-down) works with any callable, including tiny test workloads.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
from collections.abc import Callable
from typing import Any

import torch

from unetgan_core.device import autocast, device_name
from unetgan_core.errors import UserError
from unetgan_core.hashing import config_hash
from unetgan_core.inference import class_map
from unetgan_core.registry import Registry
from unetgan_core.schema import check_fields, check_model_options, field, load_table
from unetgan_core.throughput.flops import count_flops
from unetgan_core.throughput.memory import peak_memory_mb, reset_peak_memory
from unetgan_core.throughput.peak import PeakCache, dtype_of
from unetgan_core.throughput.precision import PrecisionDecision, decide_precision
from unetgan_core.throughput.timing import device_sync, measure

# Precisions each device type runs; anything else gives a row with an error.
SUPPORTED_PRECISIONS = {"cpu": ("fp32", "bf16"), "cuda": ("fp32", "fp16", "bf16")}

FGSM_EPS = 0.01  # intensity units of [0, 1] images; the value does not change the cost

ROW_KEYS = (
    "pipeline",
    "image_size",
    "batch",
    "requested_batch",
    "precision",
    "channels_last",
    "compile",
    "device",
    "images_per_s",
    "ms_per_batch_median",
    "ms_per_batch_iqr",
    "peak_mem_mb",
    "flops_per_image",
    "achieved_tflops",
    "peak_tflops",
    "fraction_of_peak",
    "device_name",
    "torch_version",
    "threads",
    "warmup",
    "repeats",
    "repeats_done",
    "error",
)


@dataclasses.dataclass(frozen=True)
class WorkloadSpec:
    """Everything that determines one measured workload.

    Args:
        image_size: side of the square input images, in pixels.
        batch: images per step.
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"`` (autocast dtype; weights stay fp32).
        channels_last: NHWC memory format for inputs and weights (what oneDNN and tensor cores prefer).
        compile: wrap each network in ``torch.compile``.
        device: torch device name.
        unet: keyword arguments of ``create_model("lv_unet", ...)``.
        generator: keyword arguments of ``create_model("resnet_generator", ...)``.
        discriminator: keyword arguments of ``create_model("patch_discriminator", ...)``.
        seed: seeds weights and inputs, so FLOP counts and outputs are reproducible.
    """

    image_size: int
    batch: int
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    device: str = "cpu"
    unet: dict = dataclasses.field(default_factory=dict)
    generator: dict = dataclasses.field(default_factory=dict)
    discriminator: dict = dataclasses.field(default_factory=dict)
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class Workload:
    """One built workload.

    Args:
        step: processes one batch; its result is discarded by the timer.
        images_per_step: images one ``step()`` handles (the batch size).
        models: the networks the step runs, by role (uncompiled), for inspection.
    """

    step: Callable[[], Any]
    images_per_step: int
    models: dict = dataclasses.field(default_factory=dict)


WORKLOADS: Registry[Callable[[WorkloadSpec], Workload]] = Registry("throughput pipeline")


# --------------------------------------------------------------------------------------------
# Building blocks shared by the workloads


def autocast_context(device: torch.device | str, precision: str) -> contextlib.AbstractContextManager:
    """The autocast context of ``precision`` on ``device`` (a no-op for fp32).

    Args:
        device: where the workload runs.
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"``; raises ``UserError`` where unsupported.
    """
    check_precision(device, precision)
    return autocast(device, enabled=precision != "fp32", dtype="bf16" if precision == "fp32" else precision)


def check_precision(device: torch.device | str, precision: str) -> None:
    """Raise ``UserError`` when ``precision`` cannot run on ``device``.

    Args:
        device: where the workload would run.
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"``.
    """
    device = torch.device(device)
    dtype_of(precision)  # rejects unknown names
    supported = SUPPORTED_PRECISIONS.get(device.type, ("fp32",))
    if precision not in supported:
        raise UserError(f"precision {precision} is not supported on {device.type} (supported: {', '.join(supported)})")
    if device.type == "cuda" and precision == "bf16" and not torch.cuda.is_bf16_supported():
        raise UserError(f"precision bf16 is not supported by {torch.cuda.get_device_name(device)}")


def _generator(spec: WorkloadSpec, stream: str) -> torch.Generator:
    # One CPU generator per input stream, so inputs do not depend on the order of building.
    return torch.Generator(device="cpu").manual_seed(int(config_hash([spec.seed, stream], 8), 16) & 0x7FFFFFFF)


def _images(spec: WorkloadSpec, stream: str) -> torch.Tensor:
    x = torch.rand(spec.batch, 1, spec.image_size, spec.image_size, generator=_generator(spec, stream))
    x = x.to(spec.device)
    return x.contiguous(memory_format=torch.channels_last) if spec.channels_last else x


def _labels(spec: WorkloadSpec, n_classes: int) -> torch.Tensor:
    shape = (spec.batch, spec.image_size, spec.image_size)
    return torch.randint(0, n_classes, shape, generator=_generator(spec, "labels")).to(spec.device)


def _network(spec: WorkloadSpec, name: str, kwargs: dict, *, train: bool) -> torch.nn.Module:
    from unetgan_core.models import create_model

    torch.manual_seed(int(config_hash([spec.seed, name], 8), 16) & 0x7FFFFFFF)
    net = create_model(name, **kwargs).to(spec.device)
    if spec.channels_last:
        net = net.to(memory_format=torch.channels_last)
    return net.train(train)


def _maybe_compile(spec: WorkloadSpec, net: torch.nn.Module) -> torch.nn.Module:
    return torch.compile(net) if spec.compile else net


def _grad_scaler(spec: WorkloadSpec) -> torch.amp.GradScaler:
    # fp16 gradients underflow without loss scaling; a real fp16 training step pays for it.
    return torch.amp.GradScaler(torch.device(spec.device).type, enabled=spec.precision == "fp16")


# --------------------------------------------------------------------------------------------
# The workloads


@WORKLOADS.register("segment")
def segment_workload(spec: WorkloadSpec) -> Workload:
    """Unet inference: logits and the argmax label map of one batch.

    Args:
        spec: the workload settings (``spec.unet`` for the LV-Unet).
    """
    return _segment(spec, _network(spec, "lv_unet", spec.unet, train=False))


def _segment(spec: WorkloadSpec, raw: torch.nn.Module) -> Workload:
    """Inference of segmenter ``raw`` on one batch: logits and the argmax label map."""
    unet = _maybe_compile(spec, raw)
    x = _images(spec, "images")

    def step() -> torch.Tensor:
        with torch.inference_mode(), autocast_context(spec.device, spec.precision):
            return class_map(unet(x))

    return Workload(step, spec.batch, {"unet": raw})


@WORKLOADS.register("translate_segment")
def translate_segment_workload(spec: WorkloadSpec) -> Workload:
    """Translate a batch with the generator, then segment it with the Unet.

    Args:
        spec: the workload settings (``spec.generator`` and ``spec.unet``).
    """
    raw = {
        "generator": _network(spec, "resnet_generator", spec.generator, train=False),
        "unet": _network(spec, "lv_unet", spec.unet, train=False),
    }
    generator, unet = (_maybe_compile(spec, raw[k]) for k in ("generator", "unet"))
    x = _images(spec, "images")

    def step() -> torch.Tensor:
        with torch.inference_mode(), autocast_context(spec.device, spec.precision):
            return class_map(unet(generator(x)))

    return Workload(step, spec.batch, raw)


@WORKLOADS.register("unet_train_step")
def unet_train_step_workload(spec: WorkloadSpec) -> Workload:
    """One supervised Unet step: forward, segmentation loss, backward, Adam update.

    Args:
        spec: the workload settings (``spec.unet``).
    """
    from unetgan_core.losses import segmentation_loss

    raw = _network(spec, "lv_unet", spec.unet, train=True)
    unet = _maybe_compile(spec, raw)
    optimiser = torch.optim.Adam(raw.parameters(), lr=1e-3)
    scaler = _grad_scaler(spec)
    x = _images(spec, "images")
    y = _labels(spec, n_classes=spec.unet.get("n_classes", 3))

    def step() -> None:
        optimiser.zero_grad(set_to_none=True)
        with autocast_context(spec.device, spec.precision):
            loss = segmentation_loss(unet(x), y)
        scaler.scale(loss).backward()
        scaler.step(optimiser)
        scaler.update()

    return Workload(step, spec.batch, {"unet": raw})


@WORKLOADS.register("unetgan_train_step")
def unetgan_train_step_workload(spec: WorkloadSpec) -> Workload:
    """One alternating Unet-GAN step: generators G_S and G_T, then discriminators D_S and D_T.

    The same losses as ``unetgan_core.training.translation.train_translator`` with the paper's
    settings (eq. 5: adversarial + 15 x Unet feature loss on blocks 7 and 9 of the frozen
    LV-Unet + 5 x SSIM loss with alpha = beta = 0.1, gamma = 1; Adam, lr 1e-5). The history
    pool of fakes is left out: it copies a few images and does no arithmetic worth timing.
    ``images_per_step`` counts the source batch; each step also reads a target batch of the
    same size (so translator images/s in ``train_translator`` is twice this).

    Args:
        spec: the workload settings (``spec.generator``, ``spec.discriminator``, ``spec.unet``).
    """
    from unetgan_core.training.translation import TranslatorConfig, discriminator_loss, generator_losses

    defaults = TranslatorConfig()
    cfg = TranslatorConfig(generator=spec.generator or defaults.generator, discriminator=spec.discriminator)
    unet = _network(spec, "lv_unet", spec.unet, train=False)
    for p in unet.parameters():
        p.requires_grad_(False)
    raw = {
        "g_s": _network(spec, "resnet_generator", cfg.generator, train=True),  # target -> source
        "g_t": _network(spec, "resnet_generator", cfg.generator, train=True),  # source -> target
        "d_s": _network(spec, "patch_discriminator", cfg.discriminator, train=True),
        "d_t": _network(spec, "patch_discriminator", cfg.discriminator, train=True),
    }
    nets = {name: _maybe_compile(spec, net) for name, net in raw.items()}
    raw_unet, unet = unet, _maybe_compile(spec, unet)
    opt_g = torch.optim.Adam([*raw["g_s"].parameters(), *raw["g_t"].parameters()], lr=cfg.lr, betas=cfg.adam_betas)
    opt_d = torch.optim.Adam([*raw["d_s"].parameters(), *raw["d_t"].parameters()], lr=cfg.lr, betas=cfg.adam_betas)
    scaler = _grad_scaler(spec)
    source, target = _images(spec, "source"), _images(spec, "target")

    def step() -> None:
        # Critics get no parameter gradients from the generator loss, as in training.
        for name in ("d_s", "d_t"):
            raw[name].requires_grad_(False)
        opt_g.zero_grad(set_to_none=True)
        with autocast_context(spec.device, spec.precision):
            loss_g, _, fake_s, fake_t = generator_losses(nets, unet, source, target, cfg)
        scaler.scale(loss_g).backward()
        scaler.step(opt_g)
        for name in ("d_s", "d_t"):
            raw[name].requires_grad_(True)
        opt_d.zero_grad(set_to_none=True)
        with autocast_context(spec.device, spec.precision):
            loss_d = discriminator_loss(nets["d_s"], source, fake_s, cfg) + discriminator_loss(
                nets["d_t"], target, fake_t, cfg
            )
        scaler.scale(loss_d).backward()
        scaler.step(opt_d)
        scaler.update()

    return Workload(step, spec.batch, {**raw, "unet": raw_unet})


@WORKLOADS.register("fgsm_step")
def fgsm_step_workload(spec: WorkloadSpec) -> Workload:
    """One FGSM attack on a batch (``unetgan_core.attacks.fgsm``: one input gradient), then one forward.

    Args:
        spec: the workload settings (``spec.unet``).
    """
    return _fgsm(spec, _network(spec, "lv_unet", spec.unet, train=False), spec.unet.get("n_classes", 3))


def _fgsm(spec: WorkloadSpec, unet: torch.nn.Module, n_classes: int) -> Workload:
    """One FGSM attack through segmenter ``unet`` on a batch (labels of ``n_classes``), then one forward."""
    from unetgan_core.attacks import fgsm

    for p in unet.parameters():
        p.requires_grad_(False)
    raw, unet = unet, _maybe_compile(spec, unet)
    x = _images(spec, "images")
    y = _labels(spec, n_classes=n_classes)

    def step() -> torch.Tensor:
        with autocast_context(spec.device, spec.precision):
            x_adv = fgsm(unet, x, y, FGSM_EPS)
        with torch.no_grad(), autocast_context(spec.device, spec.precision):
            return class_map(unet(x_adv))

    return Workload(step, spec.batch, {"unet": raw})


EXTERNAL_WORKLOADS = ("segment", "fgsm_step")  # workloads that also time a suite's [models.NAME]


def external_workloads(segmenter: torch.nn.Module, differentiable: bool) -> Registry:
    """``segment`` and ``fgsm_step`` timed on an external segmenter (``fgsm_step`` rows of a model without
    gradients carry the reason as their ``error``).

    Args:
        segmenter: the loaded ``[models.NAME]`` as an ``nn.Module`` (``ExternalSegmenter.as_module``),
            already on the device measured: suite images ``[N, 1, H, W]`` in, three class scores out,
            its input adaptation included in the time.
        differentiable: whether FGSM can take its input gradient (not for ONNX).
    """

    def prepared(spec: WorkloadSpec) -> torch.nn.Module:
        layout = torch.channels_last if spec.channels_last else torch.contiguous_format
        return segmenter.to(memory_format=layout).eval()

    def fgsm(spec: WorkloadSpec) -> Workload:
        if not differentiable:  # the row records this as its error
            raise UserError("not differentiable: the model computes no input gradient, so FGSM cannot run")
        return _fgsm(spec, prepared(spec), 3)

    registry: Registry = Registry("throughput pipeline")
    registry.add("segment", lambda spec: _segment(spec, prepared(spec)))
    registry.add("fgsm_step", fgsm)
    return registry


# --------------------------------------------------------------------------------------------
# Rows


@dataclasses.dataclass(frozen=True)
class ThroughputSection:
    """A validated ``[throughput]`` section: the full product of these settings is measured.

    List settings also take a single value (``batch_sizes = 8``). ``unet`` defaults to the suite's
    ``[unet] model_kwargs`` (filled in by the suite loader).

    Args:
        pipelines: workload names from ``WORKLOADS``.
        batch_sizes: requested images per step; an out-of-memory batch is halved down to ``min_batch``.
        image_sizes: square image sides, in pixels.
        precisions: ``fp32``/``bf16`` (CPU), plus ``fp16`` on CUDA.
        channels_last: memory formats to try (False = NCHW, True = NHWC).
        compile: whether to ``torch.compile`` the networks.
        warmup: untimed steps before measuring (compilation happens here).
        repeats: timed steps (median and IQR over them).
        min_batch: smallest batch the out-of-memory step-down tries.
        seed: weights and inputs.
        unet, generator, discriminator: network keyword arguments.
        peak_sizes: matmul sides (elements) for the peak measurement; empty to search for the plateau.
        max_row_s: time cap of one row; a slow workload is timed over fewer repeats (``repeats_done``).
        emulated_precisions: ``skip`` a reduced precision the device only emulates (see
            ``throughput.precision``), recording one row with the reason, or ``measure`` it anyway.
    """

    pipelines: tuple[str, ...] = field(("segment",), doc="workloads to time", nonempty=True, one_or_many=True)
    batch_sizes: tuple[int, ...] = field(
        (8,), doc="requested images per step", nonempty=True, one_or_many=True, ge=1, le=65_536
    )
    image_sizes: tuple[int, ...] = field(
        (96,), doc="square image sides (pixels)", nonempty=True, one_or_many=True, ge=1, le=4096
    )
    precisions: tuple[str, ...] = field(
        ("fp32",), doc="autocast precisions", nonempty=True, one_or_many=True, choices=("fp32", "bf16", "fp16")
    )
    channels_last: tuple[bool, ...] = field(
        (False,), doc="memory formats (true = NHWC)", nonempty=True, one_or_many=True
    )
    compile: tuple[bool, ...] = field((False,), doc="torch.compile the networks", nonempty=True, one_or_many=True)
    warmup: int = field(3, doc="untimed steps before measuring", ge=0, le=10_000)
    repeats: int = field(10, doc="timed steps", ge=1, le=100_000)
    min_batch: int = field(1, doc="smallest batch of the out-of-memory step-down", ge=1, le=65_536)
    seed: int = field(0, doc="seeds weights and inputs", ge=0, le=2**31 - 1)
    unet: dict = field({}, doc="lv_unet options (default: [unet] model_kwargs)")
    generator: dict = field({}, doc="resnet_generator options")
    discriminator: dict = field({}, doc="patch_discriminator options")
    peak_sizes: tuple[int, ...] = field(
        (), doc="matmul sides for the peak measurement; [] = search for the plateau", one_or_many=True, ge=1, le=65_536
    )
    max_row_s: float = field(
        30.0, doc="time cap of one row, warm-up included (seconds); repeats stop once it is spent", gt=0, le=86_400
    )
    emulated_precisions: str = field(
        "skip",
        doc="precisions the device neither runs natively nor faster than fp32: skip (one row says why) or measure",
        choices=("skip", "measure"),
    )

    def __post_init__(self) -> None:
        check_fields(self)
        for key, model in (
            ("unet", "lv_unet"),
            ("generator", "resnet_generator"),
            ("discriminator", "patch_discriminator"),
        ):
            try:
                check_model_options(model, getattr(self, key))
            except UserError as exc:
                raise UserError(f"{key}: {exc}") from None


def parse_section(section: dict, workloads: Registry = WORKLOADS, where: str = "[throughput]") -> ThroughputSection:
    """Load a ``[throughput]`` table with the schema loader and check its pipeline names against ``workloads``.

    Args:
        section: the table as loaded from TOML.
        workloads: the registry pipeline names are checked against.
        where: ``"<file>: [throughput]"`` prefix for error messages.

    Raises:
        UserError: an unknown key, a wrong type, a value out of range or an unknown pipeline; one line.
    """
    parsed = load_table(ThroughputSection, section, where)
    for name in parsed.pipelines:
        try:
            workloads.get(name)
        except UserError as exc:
            raise UserError(f"{where} pipelines: {exc}") from None
    return parsed


def is_out_of_memory(exc: BaseException) -> bool:
    """True for an out-of-memory error from torch (CUDA, or a CPU allocation failure).

    Args:
        exc: the raised exception.
    """
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    return isinstance(exc, (RuntimeError, MemoryError)) and (
        isinstance(exc, MemoryError) or "out of memory" in str(exc).lower()
    )


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _free_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _measure_cell(
    build: Callable[[WorkloadSpec], Workload],
    spec: WorkloadSpec,
    section: ThroughputSection,
    peaks: PeakCache,
    flops_cache: dict,
    pipeline: str,
) -> dict:
    device = torch.device(spec.device)
    check_precision(device, spec.precision)
    # FLOPs do not depend on precision, memory format or compilation, so they are counted
    # once per shape on a plain eager build (the flop counter cannot see inside compiled graphs).
    flops_key = (pipeline, spec.image_size, spec.batch, config_hash([spec.unet, spec.generator, spec.discriminator]))
    if flops_key not in flops_cache:
        eager = build(dataclasses.replace(spec, precision="fp32", channels_last=False, compile=False))
        flops_cache[flops_key] = count_flops(eager.step) / eager.images_per_step
        del eager
    flops_per_image = flops_cache[flops_key]
    peak = peaks.tflops(dtype_of(spec.precision), device)

    reset_peak_memory(device)
    workload = build(spec)
    timing = measure(
        workload.step,
        warmup=section.warmup,
        repeats=section.repeats,
        sync=device_sync(device),
        budget_s=section.max_row_s,
    )
    images_per_s = workload.images_per_step / timing.median_s
    achieved = flops_per_image * images_per_s / 1e12
    # A workload cannot beat the device's matmul peak; when it seems to, the peak was not measured
    # at its plateau (or the FLOP count missed work), so no fraction is printed (the report says why).
    fraction = achieved / peak if 0 < peak and achieved <= peak else None
    return {
        "images_per_s": images_per_s,
        "ms_per_batch_median": timing.median_s * 1e3,
        "ms_per_batch_iqr": timing.iqr_s * 1e3,
        "peak_mem_mb": peak_memory_mb(device),
        "flops_per_image": float(flops_per_image),
        "achieved_tflops": achieved,
        "peak_tflops": peak,
        "fraction_of_peak": fraction,
        "repeats_done": len(timing.times),
    }


# The pipeline name of the one row that records a skipped precision for every pipeline.
SKIPPED_PIPELINE = "all"


def _precision_decision(device: torch.device, precision: str, section: ThroughputSection) -> PrecisionDecision | None:
    """Whether ``precision`` is measured; None when the row loop should decide (fp32, an unsupported one, ``measure``)."""
    if precision == "fp32" or section.emulated_precisions == "measure":
        return None
    try:
        check_precision(device, precision)
    except UserError:
        return None  # each of its rows then carries the one-line error, as before
    return decide_precision(device, precision)


def run_throughput(
    section: ThroughputSection | dict, device: torch.device | str, *, workloads: Registry = WORKLOADS
) -> list[dict]:
    """Measure every combination of a ``[throughput]`` section on ``device``; one flat row each.

    A reduced precision the device only emulates (no hardware support and not faster than fp32 in
    a millisecond probe, ``throughput.precision``) is not measured: one row with pipeline
    ``"all"`` records it as skipped, with the reason in ``error``. Each row's timing stops at
    ``max_row_s``. A combination that runs out of memory is retried with half the batch (down to
    ``min_batch``); the row then records the batch used and ``requested_batch``. Any other
    failure (an unsupported precision, a ``torch.compile`` error, OOM at ``min_batch``)
    gives a row whose ``error`` is a one-line message and whose measurements are None; the
    run goes on with the next combination.

    Args:
        section: a loaded ``ThroughputSection``, or a ``[throughput]`` table to load (see its keys and defaults).
        device: torch device to measure on.
        workloads: registry of workload builders (tests pass their own).

    Returns:
        One dict per (pipeline, image size, precision, channels_last, compile, batch), with the
        keys ``ROW_KEYS``. Times in milliseconds, memory in MiB, rates in images/s and TFLOP/s.
    """
    parsed = section if isinstance(section, ThroughputSection) else parse_section(section, workloads)
    device = torch.device(device)
    peaks = PeakCache(sizes=parsed.peak_sizes or None)
    flops_cache: dict = {}
    common = {
        "device": str(device),
        "device_name": device_name(device),
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "warmup": parsed.warmup,
        "repeats": parsed.repeats,
    }
    rows = []
    precisions = []
    for precision in parsed.precisions:
        decision = _precision_decision(device, precision, parsed)
        if decision is None or decision.measured:
            precisions.append(precision)
            continue
        row = dict.fromkeys(ROW_KEYS)
        row.update(common, pipeline=SKIPPED_PIPELINE, precision=precision, error=decision.reason)
        rows.append(row)
    for pipeline, size, precision, channels_last, compile_, requested in itertools.product(
        parsed.pipelines,
        parsed.image_sizes,
        precisions,
        parsed.channels_last,
        parsed.compile,
        parsed.batch_sizes,
    ):
        build = workloads.get(pipeline)
        row = dict.fromkeys(ROW_KEYS)
        row.update(common)
        row.update(
            pipeline=pipeline,
            image_size=size,
            precision=precision,
            channels_last=channels_last,
            compile=compile_,
            requested_batch=requested,
        )
        batch = requested
        while True:
            spec = WorkloadSpec(
                image_size=size,
                batch=batch,
                precision=precision,
                channels_last=channels_last,
                compile=compile_,
                device=str(device),
                unet=parsed.unet,
                generator=parsed.generator,
                discriminator=parsed.discriminator,
                seed=parsed.seed,
            )
            row["batch"] = batch
            try:
                row.update(_measure_cell(build, spec, parsed, peaks, flops_cache, pipeline))
                break
            except Exception as exc:  # a failed cell is a row, not the end of the run
                _free_memory(device)
                if is_out_of_memory(exc) and batch // 2 >= parsed.min_batch:
                    batch //= 2
                    continue
                prefix = f"out of memory at batch {batch}: " if is_out_of_memory(exc) else ""
                row["error"] = prefix + _one_line(exc)
                break
        rows.append(row)
    return rows
