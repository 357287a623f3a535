"""The installable wheel: built from this tree, installed into a fresh virtual environment outside the
source tree, it carries the built-in suites and the smoke baseline and runs ``smoke`` end to end, and it
installs nothing as a top-level ``bench`` or ``reports``."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: int = 600):
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{command} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """(venv bin folder, the wheel): the wheel built from this tree and installed with ``--no-deps`` into a
    virtual environment that sees the test environment's packages (torch, numpy, ...) but not this tree."""
    root = tmp_path_factory.mktemp("wheel")
    dist = root / "dist"
    run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(REPO)],
        root,
    )
    (wheel,) = dist.glob("unetgan_bench-*.whl")
    venv = root / "venv"
    run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], root)
    run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], root)
    return venv / "bin", wheel


def clean_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env["UNETGAN_CACHE"] = str(tmp / "cache")
    return env


def test_wheel_has_suites_baseline_templates_and_no_top_level_bench(installed) -> None:
    _, wheel = installed
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"unetgan_core", "unetgan_bench"}
    assert "unetgan_bench/suites/quick.toml" in names
    assert "unetgan_bench/bench/baselines/smoke/results.jsonl" in names
    assert "unetgan_bench/bench/baselines/smoke/manifest.json" in names
    assert any(name.startswith("unetgan_bench/bench/baselines/smoke/per_image/") for name in names)
    assert "unetgan_bench/reports/templates/report.html.j2" in names


def test_installed_wheel_validates_quick_and_runs_smoke_outside_the_tree(installed, tmp_path: Path) -> None:
    bin_dir, _ = installed
    env = clean_env(tmp_path)
    where = run(
        [str(bin_dir / "python"), "-c", "import unetgan_bench.bench.cli as m; print(m.__file__)"], tmp_path, env
    )
    assert str(bin_dir.parent) in where.stdout, where.stdout  # the wheel's copy, not the source tree's
    assert REPO.as_posix() not in where.stdout
    validated = run([str(bin_dir / "unetgan-bench"), "validate", "quick"], tmp_path, env)
    assert "valid suite 'quick'" in validated.stdout
    out = tmp_path / "smoke"
    run([str(bin_dir / "unetgan-bench"), "run", "smoke", "--out", str(out), "--quiet"], tmp_path, env)
    assert (out / "report.html").is_file()
    assert (out / "results.jsonl").read_text(encoding="utf-8").count("\n") > 0
    baseline = run(
        [
            str(bin_dir / "python"),
            "-c",
            "from unetgan_bench.bench.baselines import smoke_baseline; print(smoke_baseline())",
        ],
        tmp_path,
        env,
    )
    assert (Path(baseline.stdout.strip()) / "results.jsonl").is_file()
