"""The ``unetgan-bench`` command line.

Exit codes: 0 success; 1 a measured regression (``compare``) or a run in which some cell
failed; 2 bad input (a malformed suite, a missing folder, a bad flag), reported as one line.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from unetgan_bench.bench.history import cli as history_cli
from unetgan_core.errors import UserError

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's own errors are bad input too: one line, exit 2
        self.print_usage(sys.stderr)
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="unetgan-bench", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="run a suite (resumes what its --out folder already holds)")
    run.add_argument("suite", help="built-in suite name (smoke, quick, paper, ...) or a path to a .toml file")
    run.add_argument("--out", type=Path, help="run folder (default: runs/<suite>)")
    run.add_argument("--device", choices=("cpu", "cuda", "auto"), help="overrides [suite] device")
    run.add_argument("--seeds", type=int, nargs="+", help="overrides [suite] seeds")
    run.add_argument("--data-root", type=Path, help="root folder of a real data set (sets [data] root)")
    run.add_argument(
        "--cache", type=Path, help="artifact cache folder (default $UNETGAN_CACHE or ~/.cache/unetgan-bench)"
    )
    run.add_argument(
        "--jobs",
        type=int,
        help="models trained at once in worker processes (default: CPU cores / [suite] train_threads; 1 on a GPU)",
    )
    run.add_argument(
        "--executor",
        choices=("local", "dask"),
        default="local",
        help="local: a process pool on this machine (default); dask: a Dask cluster (docs/dask.md)",
    )
    run.add_argument(
        "--scheduler",
        help="Dask scheduler address, e.g. tcp://head:8786 (default $UNETGAN_DASK_SCHEDULER; "
        "without either, a local Dask cluster of --jobs workers)",
    )
    run.add_argument("--no-report", action="store_true", help="skip the HTML report")
    run.add_argument(
        "--allow-mixed-commits",
        action="store_true",
        help="resume a run folder whose rows were measured at another commit or dirty state (each row records its own)",
    )
    run.add_argument("--quiet", action="store_true", help="no progress bars")

    val = sub.add_parser("validate", help="check a suite file and print its cells; runs nothing")
    val.add_argument("suite")
    val.add_argument("--data-root", type=Path)

    sub.add_parser("list", help="registered styles, models, scenarios, attacks, data sources and suites")

    rep = sub.add_parser("report", help="(re)render report.html and the exported tables of a run folder")
    rep.add_argument("run_dir", type=Path)

    cmp_ = sub.add_parser("compare", help="compare two run folders; exit 1 on a regression beyond thresholds")
    cmp_.add_argument("base_dir", type=Path)
    cmp_.add_argument("new_dir", type=Path)
    cmp_.add_argument("--dice-drop", type=float, help="largest allowed Dice drop (default: the suite's [compare])")
    cmp_.add_argument("--throughput-ratio", type=float, help="smallest allowed new/base images/s ratio")
    cmp_.add_argument(
        "--dice-drop-other-hardware",
        type=float,
        help="Dice threshold when the runs used different numerics (CPU model, torch kernels or build)",
    )
    cmp_.add_argument(
        "--dice-margin",
        type=float,
        help="noise-aware gate: a cell regresses when its Dice CI lies below -margin (default: the suite's [compare])",
    )
    cmp_.add_argument("--gate-throughput", action="store_true", help="also fail on throughput regressions")
    cmp_.add_argument(
        "--format",
        default="text",
        choices=("text", "markdown", "json", "junit"),
        help="what is printed: a text table, a Markdown summary, JSON, or JUnit XML for CI",
    )
    cmp_.add_argument("--html", type=Path, help="where to write the comparison HTML (default NEW_DIR/comparison.html)")
    history_cli.add_parser(sub)
    return p


def _load(args: argparse.Namespace):
    from unetgan_bench.bench.suite import load_suite

    return load_suite(args.suite, data_root=getattr(args, "data_root", None))


def cmd_run(args: argparse.Namespace) -> int:
    import dataclasses

    from unetgan_bench.bench.parallel import default_jobs
    from unetgan_bench.bench.runner import run_suite
    from unetgan_bench.bench.store import ArtifactStore
    from unetgan_core.device import resolve_device

    suite = _load(args)
    if args.seeds:
        if len(set(args.seeds)) != len(args.seeds) or min(args.seeds) < 0:
            raise UserError(f"--seeds: expected distinct non-negative integers, got {args.seeds}")
        suite = suite.with_seeds(args.seeds)
    device = args.device or suite.suite.device
    if args.device:
        suite = dataclasses.replace(suite, suite=dataclasses.replace(suite.suite, device=args.device))
    if args.jobs is not None and args.jobs < 1:
        raise UserError(f"--jobs: expected a positive integer, got {args.jobs}")
    jobs = args.jobs or default_jobs(str(resolve_device(device)), suite.suite.train_threads)
    out = args.out or Path("runs") / suite.name
    start = time.perf_counter()
    store = ArtifactStore(args.cache)
    with _executor(args, store, str(resolve_device(device)), suite.suite.train_threads, jobs) as executor:
        result = run_suite(
            suite,
            out,
            device=device,
            store=store,
            progress=not args.quiet,
            report=not args.no_report,
            jobs=jobs,
            allow_mixed_commits=args.allow_mixed_commits,
            executor=executor,
        )
    minutes = (time.perf_counter() - start) / 60
    print(
        f"measured {result.measured} cells ({result.skipped} already done) in {minutes:.1f} min; results: {out / 'results.jsonl'}"
    )
    if result.report is not None:
        print(f"report: {result.report.resolve()}")
    if result.failed:
        print(f"{len(result.failed)} cell(s) failed; see {out / 'logs' / 'errors.log'}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _executor(args: argparse.Namespace, store, device: str, train_threads: int, jobs: int):
    """The run's executor as a context: None (the local one) or a checked Dask executor (``bench.dask_executor``)."""
    import contextlib

    if args.executor == "local":
        if args.scheduler:
            raise UserError("--scheduler: only with --executor dask")
        return contextlib.nullcontext(None)
    try:
        import distributed  # noqa: F401  (an optional extra)
    except ImportError as exc:
        raise UserError(f"--executor dask needs Dask: pip install 'unetgan-bench[dask]' ({exc})") from None
    from unetgan_bench.bench import dask_executor

    address = dask_executor.scheduler_address(args.scheduler)
    return dask_executor.connect(address, store.root, device, train_threads, jobs)


def cmd_validate(args: argparse.Namespace) -> int:
    from unetgan_bench.bench.plan import build_plan, describe_trainings
    from unetgan_bench.bench.registries import open_source
    from unetgan_bench.bench.store import ArtifactStore
    from unetgan_bench.bench.variants import describe_declared
    from unetgan_core.data.sources import check_files

    suite = _load(args)
    source = open_source(suite, suite.path)
    check_files(source)  # a truncated or corrupt data file stops here, not in the run
    plan = build_plan(suite, source)
    counts: dict[str, int] = {}
    for task in plan.tasks:
        counts[task.kind] = counts.get(task.kind, 0) + 1
    print(f"{suite.path}: valid suite {suite.name!r}")
    print("  " + ", ".join(f"{n} {k} task(s)" for k, n in counts.items()))
    for line in describe_trainings(plan, ArtifactStore(getattr(args, "cache", None))):
        print(f"  {line}")
    for line in describe_declared(suite):
        print(f"  {line}")
    for (vendor, split), ref in sorted(plan.data.items()):
        print(f"  {vendor:>10} {split:<5} {len(ref.subjects)} subjects")
    for subject, reason in getattr(source, "unused_labels", []):
        print(f"  warning: labels left out for {subject}: {reason}")
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    from unetgan_bench.bench.registries import registered
    from unetgan_bench.bench.suite import builtin_suites, describe_sections

    for kind, names in registered().items():
        print(f"{kind}: {', '.join(names)}")
    print(f"built-in suites: {', '.join(sorted(builtin_suites()))}")
    print("suite settings:")
    for line in describe_sections():
        print(f"  {line}")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from unetgan_bench.reports.render import render_report
    from unetgan_bench.reports.rundir import RESULTS

    if not (args.run_dir / RESULTS).is_file():
        raise UserError(f"{args.run_dir}: not a run folder (no {RESULTS})")
    print(f"report: {render_report(args.run_dir).resolve()}")
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    from unetgan_bench.bench.compare import compare_runs, recorded_thresholds

    # A threshold left off the command line comes from the base run's suite [compare] section,
    # else the [compare] default (bench.compare_settings).
    given = {
        "dice_drop": args.dice_drop,
        "throughput_ratio": args.throughput_ratio,
        "dice_drop_other_hardware": args.dice_drop_other_hardware,
        "dice_margin": args.dice_margin,
    }
    comparison = compare_runs(
        args.base_dir,
        args.new_dir,
        **recorded_thresholds(args.base_dir, given),
        gate_throughput=args.gate_throughput,
        html_path=args.html,
        output_format=args.format,
    )
    return comparison.exit_code


COMMANDS = {
    "run": cmd_run,
    "validate": cmd_validate,
    "list": cmd_list,
    "report": cmd_report,
    "compare": cmd_compare,
    "history": history_cli.cmd_history,
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
