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


def read(run_dir: Path) -> dict[str, Any] | None:
    path = Path(run_dir) / "manifest.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None


def write(run_dir: Path, suite, runner, started: float, finished: float | None) -> None:
    """Write the manifest atomically (it is rewritten as stages finish)."""
    import torch

    commit, dirty = git_state()
    data = {
        "suite": suite.name,
        "suite_path": suite.path,
        "suite_config": suite.resolved(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(finished)) if finished else None,
        "duration_s": round((finished or time.time()) - started, 3),
        "commit": commit,
        "dirty": dirty,
        "packages": package_versions(),
        "python": platform.python_version(),
        "device": runner.device,
        "device_name": device_name(runner.device),
        "numerics": numerics(runner.device),
        "threads": torch.get_num_threads(),
        "jobs": runner.jobs,
        "stages": {k: round(v, 3) for k, v in runner.stages.items()},
        "data_source": suite.data["source"],
        "synthetic": bool(getattr(runner.source, "synthetic", False)),
        "oracle": suite.scenarios.selection == "oracle",
        # Real-data sources with skip_bad = true leave out unreadable subjects: say which and why.
        "skipped_subjects": [list(item) for item in getattr(runner.source, "skipped", [])],
        "artifact_store": str(runner.store.root),
        "hostname": platform.node(),
    }
    path = Path(run_dir) / "manifest.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)
