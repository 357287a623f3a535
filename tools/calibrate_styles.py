"""Check a phantom suite's vendor styles on the *validation* split, never the test split.

Trains (or reuses from the artifact store) the suite's clean Unet for each seed and prints
its Dice on every vendor's validation subjects, so style ranges can be adjusted until the
domain shift has the intended size (paper: Siemens drops most, GE less) without ever looking
at the test subjects that the suite reports.

Usage: python tools/calibrate_styles.py SUITE [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from bench.runner import Runner
from bench.store import ArtifactStore
from bench.suite import load_suite
from unetgan_core.metrics import dice_scores
from unetgan_core.pipelines import UnetPipeline


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("suite")
    p.add_argument("--seeds", type=int, nargs="+")
    args = p.parse_args()
    suite = load_suite(args.suite)
    if args.seeds:
        suite = suite.with_seeds(args.seeds)
    runner = Runner(suite, Path(tempfile.mkdtemp()), "cpu", ArtifactStore(), progress=False)
    rows = []
    for task in runner.plan.of_kind("unet"):
        if task.config["config"]["variant"] != "clean":
            continue
        pipeline = UnetPipeline(runner.unet(task.key))
        for vendor in suite.all_vendors:
            val = runner.data(runner.data_ref(vendor, "val").key)
            pred = pipeline.predict(val.images)
            dice = float(np.mean(dice_scores(pred, val.labels, myo_labelled=val.myo_labelled)["dice_mean"]))
            rows.append({"seed": task.config["replicate"], "vendor": vendor, "val_dice": round(dice, 3)})
    for vendor in suite.all_vendors:
        values = [r["val_dice"] for r in rows if r["vendor"] == vendor]
        print(json.dumps({"vendor": vendor, "val_dice_mean": round(float(np.mean(values)), 3), "per_seed": values}))


if __name__ == "__main__":
    main()
