"""Score a phantom suite's scenarios on the *validation* split, never the test split.

Trains (or reuses from the artifact store) what the suite's scenarios need for each seed and
prints their Dice on every vendor's validation subjects. Style ranges are adjusted with the
clean scenario until the domain shift has the intended size (paper: Siemens drops most, GE
less), and settings of the adaptation methods are chosen with the others, without ever
looking at the test subjects that the suite reports.

Usage: python tools/calibrate_styles.py SUITE [--seeds 0 1 2] [--scenarios clean cyclegan] [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from unetgan_bench.bench.parallel import default_jobs
from unetgan_bench.bench.runner import Runner
from unetgan_bench.bench.store import ArtifactStore
from unetgan_bench.bench.suite import load_suite
from unetgan_core.metrics import dice_scores


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("suite")
    p.add_argument("--seeds", type=int, nargs="+")
    p.add_argument("--scenarios", nargs="+", default=["clean"], help="scenarios of the suite to score (default: clean)")
    p.add_argument("--jobs", type=int, help="models trained at once (default: CPU cores / train_threads)")
    args = p.parse_args()
    suite = load_suite(args.suite)
    if args.seeds:
        suite = suite.with_seeds(args.seeds)
    jobs = args.jobs or default_jobs("cpu", suite.suite.train_threads)
    runner = Runner(suite, Path(tempfile.mkdtemp()), "cpu", ArtifactStore(), progress=False, jobs=jobs)
    cells = [t for t in runner.plan.of_kind("segmentation") if t.config["scenario"] in args.scenarios]
    runner.train_for(cells)
    rows = []
    for cell in cells:
        cfg = cell.config
        split = "val" if cfg.get("fold") is None else f"fold{cfg['fold']}/val"
        val = runner.data(runner.data_ref(cfg["vendor"], split if cfg["role"] == "source" else "val").key)
        pred = runner.pipeline(cfg["pipeline"]).predict(val.images)
        dice = float(np.mean(dice_scores(pred, val.labels, myo_labelled=val.myo_labelled)["dice_mean"]))
        rows.append({"scenario": cfg["scenario"], "vendor": cfg["vendor"], "seed": cfg["replicate"], "dice": dice})
    for scenario in args.scenarios:
        for vendor in suite.all_vendors:
            values = [r["dice"] for r in rows if r["scenario"] == scenario and r["vendor"] == vendor]
            if values:
                print(
                    json.dumps(
                        {
                            "scenario": scenario,
                            "vendor": vendor,
                            "val_dice_mean": round(float(np.mean(values)), 3),
                            "per_seed": [round(v, 3) for v in values],
                        }
                    )
                )


if __name__ == "__main__":
    main()
