"""Choose a cross-validated suite's Unet settings by nested cross-validation (``bench.nested``).

    python tools/nested_select.py sunnybrook --vary 'unet.epochs=60' \\
        --vary 'data.pixel_mm=1.5; data.size_px=128' --out runs/nested-sunnybrook [--inner first|all] [--jobs 2]

Each ``--vary`` is one candidate (settings changed together, separated by ``;``); the suite as written is always
the first. Per outer fold it prints every candidate's inner Dice and the choice, then the chosen settings' Dice on
the fold's test subjects, pooled over folds: the honest estimate of the whole procedure. Then each candidate's inner
Dice averaged over folds and the best of them: one fixed setting to write into the suite. ``OUT/nested.json`` holds
every score, ``OUT/scores.csv`` one row per scored training, ``OUT/outer_per_image.csv`` the outer test images.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd

from unetgan_bench.bench.nested import INNER_RULES, SCORE_COLUMNS, parse_candidate, run_nested
from unetgan_bench.bench.store import ArtifactStore
from unetgan_core.errors import UserError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("suite", help="built-in suite name or .toml path (with [splits] folds)")
    p.add_argument("--vary", action="append", default=[], help="a candidate: 'table.key=value[; table.key=value]'")
    p.add_argument("--inner", choices=INNER_RULES, default="first", help="inner validation subject(s) of a fold")
    p.add_argument("--out", type=Path, required=True, help="folder for nested.json and the CSV files")
    p.add_argument("--cache", type=Path, help="artifact store (default: the shared cache, or UNETGAN_CACHE)")
    p.add_argument("--jobs", type=int, default=1, help="trainings at once")
    p.add_argument("--device", default="cpu")
    p.add_argument("--data-root", help="overrides [data] root")
    return p


def _fmt(value) -> str:
    return "-" if value is None or value != value else f"{value:.3f}"


def report(result: dict) -> list[str]:
    """The lines printed: inner means per fold and candidate, the choices, outer scores and the pooled estimate."""
    lines = []
    for fold, choice in result["choices"].items():
        lines.append(f"fold {fold}:")
        inner = [r for r in result["rows"] if r["phase"] == "inner" and str(r["fold"]) == fold]
        for name in dict.fromkeys(r["candidate"] for r in inner):
            mine = [r["dice_mean"] for r in inner if r["candidate"] == name]
            mark = "  <- chosen" if name == choice else ""
            lines.append(f"  inner {name}: dice_mean {sum(mine) / len(mine):.3f} ({len(mine)} held out){mark}")
        for r in (r for r in result["rows"] if r["phase"] == "outer" and str(r["fold"]) == fold):
            scores = " ".join(f"{c} {_fmt(r[c])}" for c in SCORE_COLUMNS)
            lines.append(f"  outer {r['test_subjects']}: {scores} ({r['status']})")
    lines.append("inner dice_mean over folds (each fold's mean, then their mean):")
    for name, mean in result["inner_mean_over_folds"].items():
        mark = "  <- one fixed setting for the suite" if name == result["fixed_choice"] else ""
        lines.append(f"  {name}: {mean:.3f}{mark}")
    lines.append("  (every subject is an inner validation subject of another fold: the suite's own CV with the fixed")
    lines.append("   setting is not free of selection; the nested outer estimate below is)")
    scores = " ".join(f"{c} {_fmt(result['pooled'][c])}" for c in SCORE_COLUMNS)
    lines.append(f"nested outer estimate, pooled over {result['pooled']['n_images']} test images: {scores}")
    return lines


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.jobs < 1:
            raise UserError(f"--jobs: expected at least 1, got {args.jobs}")
        candidates = [parse_candidate(v) for v in args.vary]
        start = time.perf_counter()
        result = run_nested(
            args.suite, candidates, ArtifactStore(args.cache), args.inner, args.jobs, args.device, args.data_root
        )
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result["wall_s"] = round(time.perf_counter() - start, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    per_image = result.pop("per_image")
    per_image.to_csv(args.out / "outer_per_image.csv", index=False)
    pd.DataFrame(result["rows"]).to_csv(args.out / "scores.csv", index=False)
    (args.out / "nested.json").write_text(json.dumps(result, indent=1, default=str), encoding="utf-8")
    print("\n".join(report(result)))
    print(f"wall time {result['wall_s']:.0f} s; scores in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
