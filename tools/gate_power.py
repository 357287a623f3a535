"""The noise-aware gate's false-alarm rate and minimum detectable Dice drop on a run's cells.

For each segmentation cell of RUN_DIR (several seeds, per-image CSVs) this measures the spread
of the cell's Dice over seeds and the per-image model x image residual, then simulates pairs of
runs of the same method (other trainings: each seed its own offset and per-image errors, around
the cell's own per-image means) and applies ``bench.gate.decide`` to each pair:

    python tools/gate_power.py runs/quick [--pairs 200] [--margin 0.01]

It prints, per cell: seed sd, residual sd, the share of the simulated pairs flagged as
regressed (false alarms) and the median minimum detectable drop.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from unetgan_bench.bench.gate import decide
from unetgan_bench.reports.collect import load_run


def cell_noise(per_image: pd.DataFrame) -> tuple[np.ndarray, float, float]:
    """(per-image means, sd over seeds of the seed means, sd of the model x image residual) of one cell."""
    table = per_image.pivot_table(index="index", columns="seed", values="dice_mean").dropna()
    seed_means = table.mean(axis=0)
    residual = table.sub(table.mean(axis=1), axis=0).sub(seed_means - seed_means.mean(), axis=1)
    return table.mean(axis=1).to_numpy(), float(seed_means.std(ddof=1)), float(np.std(residual.to_numpy()))


def simulate(images: np.ndarray, seed_sd: float, image_sd: float, n_seeds: int, pairs: int, margin: float, rng):
    """(false-alarm share, median minimum detectable drop) over ``pairs`` simulated same-method pairs."""
    alarms, mdds = 0, []
    grid = np.indices((n_seeds, len(images)))
    for _ in range(pairs):
        runs = [
            images + rng.normal(0, seed_sd, (n_seeds, 1)) + rng.normal(0, image_sd, (n_seeds, len(images)))
            for _ in range(2)
        ]
        diffs = pd.DataFrame(
            {"replicate": grid[0].ravel(), "image": grid[1].ravel(), "diff": (runs[1] - runs[0]).ravel()}
        )
        decision = decide(diffs, margin)
        alarms += decision.status == "regressed"
        mdds.append(decision.mdd)
    return alarms / pairs, float(np.median(mdds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--margin", type=float, default=0.01)
    args = parser.parse_args()
    run = load_run(args.run_dir)
    rng = np.random.default_rng(0)
    print(f"{'cell':<28} {'images':>6} {'seeds':>5} {'seed_sd':>8} {'resid_sd':>8} {'false_alarm':>11} {'mdd':>6}")
    for (scenario, vendor), cell in run.per_image.groupby(["scenario", "vendor"], sort=False):
        images, seed_sd, image_sd = cell_noise(cell)
        n_seeds = int(cell["seed"].nunique())
        rate, mdd = simulate(images, seed_sd, image_sd, n_seeds, args.pairs, args.margin, rng)
        print(
            f"{scenario + ' / ' + vendor:<28} {len(images):>6} {n_seeds:>5} {seed_sd:>8.4f} {image_sd:>8.4f} {rate:>11.3f} {mdd:>6.3f}"
        )


if __name__ == "__main__":
    main()
