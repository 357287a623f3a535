"""``manifest.json``: what ran, where, on which code, and how long each stage took."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from unetgan_core.device import device_name

PACKAGES = (
    "torch",
    "numpy",
    "scipy",
    "pandas",
    "scikit-learn",
    "jinja2",
    "matplotlib",
    "nibabel",
    "pydicom",
    "unetgan-bench",
)
REPO = Path(__file__).resolve().parents[1]


def git_state(repo: Path = REPO) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the code that runs, or (None, None) outside a git checkout (an installed wheel,
    even one installed into a virtual environment that lies inside some other repository)."""
    if not (repo / ".git").exists():
        return None, None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10)
        if commit.returncode != 0:
            return None, None
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return commit.stdout.strip(), bool(status.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return None, None


def package_versions() -> dict[str, str | None]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def numerics(device: str) -> dict[str, str]:
    """What decides the float results besides the code: device model, the CPU kernels torch picks, torch build.

    Two runs of the same suite and seed agree bit for bit only when these agree too; ``compare``
    loosens its Dice gate when they differ.
    """
    import torch

    return {
        "device_name": device_name(device),
        "cpu_capability": str(torch.backends.cpu.get_cpu_capability()),
        "torch": torch.__version__,
    }


def machine(device: str) -> dict[str, Any]:
    """The machine a result was measured on: :func:`numerics`, the CPU model and torch's thread count.

    The manifest and every results row record this same dict.
    """
    import torch

    return {**numerics(device), "cpu_model": device_name("cpu"), "threads": torch.get_num_threads()}


def write(
    run_dir: Path,
    suite,
    *,
    device: str,
    jobs: int,
    executor: str = "local",
    stages: dict[str, float],
    source,
    artifact_store: Path,
    code: dict[str, Any],
    started: float,
    finished: float | None,
    audited: dict[str, Any] | None = None,
) -> None:
    """Write the manifest atomically (it is rewritten as stages finish).

    Args:
        run_dir: the run folder.
        suite: the parsed suite.
        device: the resolved torch device of the run.
        jobs: training worker processes.
        executor: what ran the tasks: ``local`` or ``dask (<scheduler>)`` (``bench.runner.Executor.name``).
        stages: seconds spent per stage so far.
        source: the opened data source (is it synthetic, which subjects it skipped).
        artifact_store: the artifact store's root folder.
        code: the code and machine this run stamps on its rows (``bench.rows.Provenance.fields``).
        started: start time, seconds since the epoch.
        finished: end time, or None while the run goes on.
        audited: the external models (files, sizes, SHA-256, contracts, adaptation) and plugin modules
            (versions) the suite measures (``bench.provenance.suite_provenance``).
    """
    data = {
        "suite": suite.name,
        "suite_path": suite.path,
        "suite_config": suite.resolved(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(finished)) if finished else None,
        "duration_s": round((finished or time.time()) - started, 3),
        "commit": code["commit"],
        "dirty": code["dirty"],
        "packages": package_versions(),
        "python": platform.python_version(),
        "device": device,
        "device_name": code["machine"]["device_name"],
        "numerics": {k: code["machine"][k] for k in ("device_name", "cpu_capability", "torch")},
        "machine": code["machine"],
        "threads": code["machine"]["threads"],
        "jobs": jobs,
        "executor": executor,
        "stages": {k: round(v, 3) for k, v in stages.items()},
        "data_source": suite.data_source,
        "synthetic": bool(getattr(source, "synthetic", False)),
        "oracle": suite.scenarios.selection == "oracle",
        # Real-data sources with skip_bad = true leave out unreadable subjects: say which and why.
        "skipped_subjects": [list(item) for item in getattr(source, "skipped", [])],
        # Annotations a source found inconsistent and did not use (e.g. Sunnybrook contour pairs): which and why.
        "unused_labels": [list(item) for item in getattr(source, "unused_labels", [])],
        "artifact_store": str(artifact_store),
        "hostname": platform.node(),
        "audited": audited or {"models": {}, "plugins": []},
    }
    path = Path(run_dir) / "manifest.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)
