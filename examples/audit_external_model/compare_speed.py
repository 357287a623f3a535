"""Images/s of the exported models beside the built-in LV-Unet, timed round by round in one process.

The suite's throughput rows time each model in its own task, one after the other; on a machine shared with
other jobs the load changes between tasks and their ratio with it. Here every round runs each model once in
turn (after a warm-up), and the median over rounds is reported, so a changing load hits all models alike.
Inputs as in ``audit_suite.toml``'s ``[throughput]``: 64 px, batch 8, fp32, argmax label maps, the input
adaptation of each external model included.

Run ``python compare_speed.py --models runs/monai`` (the ``--out`` folder of ``train_monai.py``).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from unetgan_bench.bench.schema import load_table
from unetgan_core.external import ExternalModelSpec, load_external
from unetgan_core.models import MODELS

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

SIZE_PX, BATCH = 64, 8
UNET_WIDTH = 8  # the LV-Unet as suites/quick.toml trains it


def workloads(folder: Path) -> dict[str, Callable[[], torch.Tensor]]:
    """Name -> one inference batch (label maps) of the LV-Unet and of every model in ``folder/models.toml``."""
    x = torch.rand(BATCH, 1, SIZE_PX, SIZE_PX, generator=torch.Generator().manual_seed(0))
    unet = MODELS.get("lv_unet")(width=UNET_WIDTH).eval()
    out = {f"lv_unet (width {UNET_WIDTH})": lambda: unet(x).argmax(1)}
    tables = tomllib.loads((folder / "models.toml").read_text())["models"]
    for name, table in tables.items():
        model = load_external(load_table(ExternalModelSpec, table, name), folder, name=name, probe_size=SIZE_PX)
        out[name] = lambda m=model: m.logits(x).argmax(1)
    return out


def interleaved_images_per_s(runs: dict[str, Callable[[], torch.Tensor]], rounds: int, warmup: int = 3) -> dict:
    """Median images/s of each workload over ``rounds`` rounds that run every workload once in turn."""
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    with torch.inference_mode():
        for run in runs.values():
            for _ in range(warmup):
                run()
        for _ in range(rounds):
            for name, run in runs.items():
                start = time.perf_counter()
                run()
                seconds[name].append(time.perf_counter() - start)
    return {name: BATCH / statistics.median(values) for name, values in seconds.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, required=True, help="the --out folder of train_monai.py")
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    speed = interleaved_images_per_s(workloads(args.models), args.rounds)
    base = next(iter(speed.values()))
    for name, value in speed.items():
        print(f"{name}: {value:.1f} images/s ({value / base:.2f}x the LV-Unet)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
