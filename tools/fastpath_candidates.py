"""Measure CPU inference fast-path candidates for the LV-Unet: images/s against fp32 eager, and dDice.

Each candidate is timed interleaved with the fp32 eager reference (reference, candidate,
reference, ...), so a ratio compares runs that saw the same machine load. Speed is measured
at ``--size`` px on the model (weights do not change the cost); dDice is the mean Dice of the
candidate's predictions minus fp32 eager's on 54 phantom source-style (philips) slices at
``--dice-size`` px, with a trained Unet (``--model``, e.g. quick's clean Unet:
``~/.cache/unetgan-bench/unet/<hash>/model.pt``, trained at 64 px) or, without one, an untrained
width-``--width`` LV-Unet (then only "does it change predictions" is meaningful). The int8
candidates take their activation scales from other phantom subjects (seed 1), never the dDice images.

The summary line also gives the fp32 ceiling: the model's FLOPs per image, eager's achieved GFLOP/s
and the fp32 matmul peak (``throughput.peak``), timed alternately; their ratio bounds what any fp32
candidate can gain (one that ran every FLOP at the matmul peak).

With several ``--batch`` sizes every candidate is timed at each (alternately with eager at the same
batch) and also compared best against best: its fastest batch against eager's fastest.

    PYTHONPATH=. python tools/fastpath_candidates.py --model MODEL.pt --size 192 --batch 1 4 16 --json out.json
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import platform
import statistics
import time
from collections.abc import Callable, Iterator

import numpy as np
import torch

from unetgan_core.device import cpu_threads, device_name
from unetgan_core.inference import class_map
from unetgan_core.models import create_model
from unetgan_core.throughput.fastpath import single_thread_workers
from unetgan_core.throughput.flops import count_flops
from unetgan_core.throughput.peak import measure_matmul_tflops
from unetgan_core.training import selection

Predict = Callable[[torch.Tensor], torch.Tensor]


def _eager(model: torch.nn.Module) -> Predict:
    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return model(x)

    return run


def _channels_last(model: torch.nn.Module) -> Predict:
    net = _copy(model).to(memory_format=torch.channels_last)

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return net(x.contiguous(memory_format=torch.channels_last))

    return run


def _split_over_workers(build_one: Callable[[], Predict]) -> Predict:
    """Each call's batch split over single-thread workers, one per torch thread (``Pipeline.predict(fast=True)``)."""
    workers = torch.get_num_threads()
    with cpu_threads(1):
        single = build_one()  # an ONNX Runtime session gets one intra-op thread

    def run(x: torch.Tensor) -> torch.Tensor:
        with single_thread_workers(workers) as pool:
            if pool is None or len(x) < 2:
                return single(x)
            return torch.cat(list(pool.map(single, x.chunk(workers))))

    return run


def _copy(model: torch.nn.Module) -> torch.nn.Module:
    return copy.deepcopy(model).eval()


def _jit_frozen(model: torch.nn.Module, example: torch.Tensor, channels_last: bool) -> Predict:
    net = _copy(model)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        example = example.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        traced = torch.jit.trace(net, example)
        frozen = torch.jit.optimize_for_inference(torch.jit.freeze(traced))

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return frozen(x.contiguous(memory_format=torch.channels_last) if channels_last else x)

    return run


def _compiled(model: torch.nn.Module) -> Predict:
    """``torch.compile`` (inductor) with its defaults: no freezing, weights stay parameters."""
    compiled = torch.compile(_copy(model))

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return compiled(x)

    return run


def _compiled_frozen(model: torch.nn.Module, example: torch.Tensor, channels_last: bool, cpp_wrapper: bool) -> Predict:
    """Inductor with weight freezing (constant folding, conv weight prepacking): the config is set while
    compiling, which happens on the first call, made here under no_grad as every later call."""
    import torch._inductor.config as inductor_config

    net = _copy(model)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    compiled = torch.compile(net)

    def layout(x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if channels_last else x

    with inductor_config.patch(freezing=True, cpp_wrapper=cpp_wrapper), torch.no_grad():
        compiled(layout(example))

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return compiled(layout(x))

    return run


@contextlib.contextmanager
def _onednn_fusion() -> Iterator[None]:
    """TorchScript's oneDNN Graph fuser on for the block only (a global switch: other candidates run without it)."""
    previous = torch._C._jit_llga_enabled()
    torch.jit.enable_onednn_fusion(True)
    try:
        yield
    finally:
        torch.jit.enable_onednn_fusion(previous)


def _jit_onednn(model: torch.nn.Module, example: torch.Tensor) -> Predict:
    """A frozen traced model run by TorchScript's oneDNN Graph fuser (``torch.jit.enable_onednn_fusion``)."""
    net = _copy(model)
    with _onednn_fusion(), torch.no_grad():
        frozen = torch.jit.freeze(torch.jit.trace(net, example))
        for _ in range(3):  # the profiling executor fuses after its profiling runs
            frozen(example)

    def run(x: torch.Tensor) -> torch.Tensor:
        with _onednn_fusion(), torch.no_grad():
            return frozen(x)

    return run


def _onnx_graph(model: torch.nn.Module) -> bytes:
    import io

    buffer = io.BytesIO()
    torch.onnx.export(
        _copy(model),
        (torch.zeros(1, 1, 64, 64),),
        buffer,
        dynamo=False,
        input_names=["image"],
        output_names=["scores"],
        dynamic_axes={"image": {0: "n", 2: "h", 3: "w"}, "scores": {0: "n", 2: "h", 3: "w"}},
    )
    return buffer.getvalue()


def _ort(graph: bytes, level: str) -> Predict:
    import onnxruntime

    from unetgan_core.external.loaders import OnnxModule

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = getattr(onnxruntime.GraphOptimizationLevel, level)
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
    module = OnnxModule(session, "lv_unet")

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return module(x)

    return run


def _ort_int8(model: torch.nn.Module, calibration: torch.Tensor, static: bool) -> Predict:
    """Convolutions in int8 (weights per channel), GroupNorm and the rest in float: static QDQ calibrated on
    ``calibration`` images (not the dDice test images), or dynamic (activation scales per call)."""
    import tempfile
    from pathlib import Path

    from onnxruntime import quantization as q

    class Reader(q.CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"image": calibration[i : i + 4].numpy()} for i in range(0, len(calibration), 4)])

        def get_next(self):
            return next(self.batches, None)

    with tempfile.TemporaryDirectory() as tmp:
        source, target = Path(tmp, "fp32.onnx"), Path(tmp, "int8.onnx")
        source.write_bytes(_onnx_graph(model))
        if static:
            q.quantize_static(
                str(source),
                str(target),
                Reader(),
                quant_format=q.QuantFormat.QDQ,
                op_types_to_quantize=["Conv"],
                per_channel=True,
                activation_type=q.QuantType.QUInt8,
                weight_type=q.QuantType.QInt8,
            )
        else:
            q.quantize_dynamic(str(source), str(target), op_types_to_quantize=["Conv"], weight_type=q.QuantType.QUInt8)
        return _ort(target.read_bytes(), "ORT_ENABLE_ALL")


def candidates(
    model: torch.nn.Module, example: torch.Tensor, calibration: torch.Tensor
) -> dict[str, Callable[[], Predict]]:
    """Builders of every candidate, by name; building one may export, quantize or compile (timed apart)."""
    return {
        "channels_last": lambda: _channels_last(model),
        "channels_last+workers": lambda: _split_over_workers(lambda: _channels_last(model)),
        "onnxruntime": lambda: _ort(_onnx_graph(model), "ORT_ENABLE_ALL"),
        "onnxruntime+workers": lambda: _split_over_workers(lambda: _ort(_onnx_graph(model), "ORT_ENABLE_ALL")),
        "onnxruntime_no_layout": lambda: _ort(_onnx_graph(model), "ORT_ENABLE_EXTENDED"),
        "onnxruntime_int8_static": lambda: _ort_int8(model, calibration, static=True),
        "onnxruntime_int8_dynamic": lambda: _ort_int8(model, calibration, static=False),
        "jit_freeze": lambda: _jit_frozen(model, example, channels_last=False),
        "jit_freeze+channels_last": lambda: _jit_frozen(model, example, channels_last=True),
        "jit_freeze+onednn_fusion": lambda: _jit_onednn(model, example),
        "compile": lambda: _compiled(model),
        "compile+freezing": lambda: _compiled_frozen(model, example, channels_last=False, cpp_wrapper=False),
        "compile+freezing+channels_last": lambda: _compiled_frozen(
            model, example, channels_last=True, cpp_wrapper=False
        ),
        "compile+freezing+cpp_wrapper": lambda: _compiled_frozen(model, example, channels_last=False, cpp_wrapper=True),
    }


def _time(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved_ratio(reference: Predict, candidate: Predict, x: torch.Tensor, rounds: int) -> dict[str, float]:
    """Median seconds per batch of both, timed alternately, and the ratio of medians."""
    for _ in range(2):  # warm-up (compilation, allocator)
        reference(x)
        candidate(x)
    ref_s, cand_s = [], []
    for _ in range(rounds):
        ref_s.append(_time(lambda: reference(x)))
        cand_s.append(_time(lambda: candidate(x)))
    ref, cand = statistics.median(ref_s), statistics.median(cand_s)
    return {"reference_s": ref, "candidate_s": cand, "speedup": ref / cand}


def mean_dice(predict: Predict, images: torch.Tensor, labels: np.ndarray) -> float:
    """The suites' mean Dice (``training.selection.mean_dice``) of a candidate's labels on ``images``."""
    preds = torch.cat([class_map(predict(images[i : i + 8])) for i in range(0, len(images), 8)])
    return selection.mean_dice(preds.to(torch.uint8).numpy(), labels)


def phantom_test_set(size: int, n: int, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """``n`` slices of the phantom's source style (philips) at ``size`` px, with labels."""
    from unetgan_core.data.sources import create_source

    source = create_source("phantom", size_px=size, subjects_per_vendor=6, slices_per_subject=3, seed=seed)
    slices = source.load("philips", source.subjects("philips"))
    return torch.as_tensor(slices.images[:n, None], dtype=torch.float32), slices.labels[:n]


CEILING_MATMUL_SIDES = (1024, 2048)  # fp32 matmul sides timed for the peak (its plateau on a 2-core AVX2 EPYC)


def fp32_ceiling(reference: Predict, x: torch.Tensor, rounds: int, peak=None) -> dict[str, float]:
    """Eager's achieved GFLOP/s and the fp32 matmul peak, timed alternately (eager, peak, eager, ...), and
    their ratio: the largest speed-up any fp32 candidate can reach (one that ran every FLOP at the
    matmul peak); int8 alone can go past it.

    Args:
        reference: fp32 eager.
        x: the timed batch.
        rounds: alternations (medians taken).
        peak: () -> TFLOP/s (tests pass their own; None: ``measure_matmul_tflops`` at ``CEILING_MATMUL_SIDES``).
    """
    if peak is None:

        def peak() -> float:
            return measure_matmul_tflops(torch.float32, "cpu", sizes=CEILING_MATMUL_SIDES, warmup=1, repeats=3)

    flops_per_image = count_flops(lambda: reference(x)) / len(x)
    reference(x)
    eager_s, peaks = [], []
    for _ in range(rounds):
        eager_s.append(_time(lambda: reference(x)))
        peaks.append(peak())
    eager_gflops = flops_per_image * len(x) / statistics.median(eager_s) / 1e9
    peak_gflops = statistics.median(peaks) * 1e3
    return {
        "gflop_per_image": flops_per_image / 1e9,
        "eager_gflops": eager_gflops,
        "fp32_matmul_peak_gflops": peak_gflops,
        "eager_fraction_of_peak": eager_gflops / peak_gflops,
        "fp32_ceiling_speedup": peak_gflops / eager_gflops,
    }


def measure(
    name: str, build: Callable[[], Predict], reference: Predict, inputs: dict[int, torch.Tensor], rounds: int, dice
) -> list[dict]:
    """One row per batch size for one candidate: set-up seconds, both rates timed alternately, dDice.

    Args:
        name: the candidate.
        build: its builder (export, quantization or compilation happen here and in the first call).
        reference: fp32 eager.
        inputs: the timed batch for each batch size.
        rounds: timed calls per path and batch (medians taken).
        dice: predict -> mean Dice on the dDice test images.
    """
    first = next(iter(inputs.values()))
    try:
        start = time.perf_counter()
        candidate = build()
        candidate(first)  # first call: tracing or compilation
        build_s = time.perf_counter() - start
        d_dice = dice(candidate) - dice(reference)
    except Exception as exc:  # a candidate that does not run here is a row, not the end
        return [{"candidate": name, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}]
    rows = []
    for batch, x in inputs.items():
        ratio = interleaved_ratio(reference, candidate, x, rounds)
        rows.append(
            {
                "candidate": name,
                "batch": batch,
                "build_s": build_s,
                **ratio,
                "images_per_s": batch / ratio["candidate_s"],
                "eager_images_per_s": batch / ratio["reference_s"],
                "d_dice": d_dice,
                "error": None,
            }
        )
    return rows


def best_vs_best(rows: list[dict]) -> dict | None:
    """A candidate at its fastest batch against fp32 eager at eager's fastest batch (both from these rows)."""
    timed = [row for row in rows if row.get("images_per_s")]
    if not timed:
        return None
    best = max(timed, key=lambda row: row["images_per_s"])
    eager = max(timed, key=lambda row: row["eager_images_per_s"])
    return {
        "candidate": best["candidate"],
        "best_batch": best["batch"],
        "eager_best_batch": eager["batch"],
        "best_vs_best": best["images_per_s"] / eager["eager_images_per_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--batch", type=int, nargs="+", default=[4], help="batch sizes (each timed alternately)")
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--only", nargs="*", help="candidate names (default: all)")
    parser.add_argument("--json", help="write the table here")
    parser.add_argument(
        "--model", help="a trained LV-Unet checkpoint (an artifact's model.pt) for dDice; default: untrained"
    )
    parser.add_argument("--dice-size", type=int, default=64, help="phantom size of the dDice test images (px)")
    parser.add_argument("--threads", type=int, help="torch and onnxruntime intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.model:
        from unetgan_core.checkpoint import build_from_checkpoint

        model = build_from_checkpoint(args.model, map_location="cpu").eval()
    else:
        model = create_model("lv_unet", width=args.width).eval()
    generator = torch.Generator().manual_seed(0)
    inputs = {b: torch.rand(b, 1, args.size, args.size, generator=generator) for b in args.batch}
    test_x, test_y = phantom_test_set(args.dice_size, 54)
    calibration, _ = phantom_test_set(args.dice_size, 32, seed=1)  # int8 scales: other phantom subjects
    reference = _eager(model)
    rows, best = [], []
    for name, build in candidates(model, inputs[args.batch[0]], calibration).items():
        if args.only and name not in args.only:
            continue
        measured = measure(
            name, build, reference, inputs, args.rounds, lambda predict: mean_dice(predict, test_x, test_y)
        )
        rows += measured
        for row in measured:
            print(json.dumps(row), flush=True)
        if len(args.batch) > 1 and best_vs_best(measured):
            best.append(best_vs_best(measured))
            print(json.dumps(best[-1]), flush=True)
    meta = {
        "cpu": device_name("cpu"),
        "capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "size": args.size,
        "batches": args.batch,
        "width": args.width,
        "rounds": args.rounds,
        "model": args.model or f"untrained lv_unet width {args.width}",
        "dice_size": args.dice_size,
        "reference_dice": mean_dice(reference, test_x, test_y),
        **fp32_ceiling(reference, inputs[args.batch[0]], rounds=3),
    }
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"meta": meta, "rows": rows, "best_vs_best": best}, f, indent=1)
    print(json.dumps(meta))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
