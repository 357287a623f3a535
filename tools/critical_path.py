"""Print a suite's total work, critical path and simulated speedups (``bench.critical_path``).

Costs are estimated from each task's settings in reference task-seconds, calibrated on the ``quick``
suite's stage times (README); the speedups are ratios and do not depend on that scale.

Usage: python tools/critical_path.py SUITE [--workers 1 2 8] [--data-root DIR] [--json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from unetgan_bench.bench.critical_path import graph_cost
from unetgan_bench.bench.plan import build_plan
from unetgan_bench.bench.registries import open_source
from unetgan_bench.bench.suite import load_suite
from unetgan_core.errors import UserError


def _plan(name: str, data_root=None):
    suite = load_suite(name, data_root=data_root)
    return build_plan(suite, open_source(suite, suite.path))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("suite")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2, 8], help="worker counts to simulate")
    p.add_argument("--data-root", help="root folder of a real data set (sets [data] root)")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = p.parse_args(argv)
    try:
        if min(args.workers) < 1:
            raise UserError(f"--workers: expected positive integers, got {args.workers}")
        cost = graph_cost(_plan(args.suite, args.data_root), _plan("quick"), args.workers)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({**dataclasses.asdict(cost), "best_speedup": cost.best_speedup}, indent=1))
        return 0
    print(f"{cost.suite}: {cost.tasks} tasks, {cost.total_s:.0f} reference task-seconds of work")
    chain = " -> ".join(cost.critical_kinds)
    print(f"critical path: {cost.critical_s:.0f} s ({chain}); best possible speedup {cost.best_speedup:.1f}x")
    for w in args.workers:
        print(f"  {w:>3} workers: makespan {cost.makespan_s[w]:.0f} s, speedup {cost.speedup(w):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
