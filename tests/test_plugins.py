"""Plugins: the example package's scenario and attack reach `unetgan-bench list` and a tiny run, through the
``unetgan_bench.plugins`` entry point or ``[suite] plugins``; bad plugin modules are one-line errors.

The runs are subprocesses, so the example's registrations do not leak into this test process's registries.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_suites import tiny_text

from unetgan_bench.bench.cli import EXIT_BAD_INPUT, main
from unetgan_core.errors import UserError
from unetgan_core.plugins import ENTRY_POINT_GROUP, import_plugins, plugin_versions

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "plugin_example"

FGSM = """
[fgsm]
attacks = ["uniform_noise", "random_sign"]
eps = [0.0, 0.01]
scenarios = ["meanstd"]
n_images = 2
"""


def installed_example(root: Path) -> Path:
    """A folder holding the example's dist-info, as ``pip install`` would write it (entry point included)."""
    info = root / "site" / "unetgan_plugin_example-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: unetgan-plugin-example\nVersion: 0.1.0\n")
    (info / "top_level.txt").write_text("unetgan_plugin_example\n")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\nexample = unetgan_plugin_example.methods\n")
    return info.parent


def cli(args: list[str], tmp_path: Path, *paths: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(str(p) for p in paths),
        "UNETGAN_CACHE": str(tmp_path / "cache"),
        "OMP_NUM_THREADS": "1",
    }
    return subprocess.run(
        [sys.executable, "-m", "unetgan_bench", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )


def rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]


def test_entry_point_plugin_appears_in_list_and_in_a_run(tmp_path):
    site = installed_example(tmp_path)
    listed = cli(["list"], tmp_path, site, EXAMPLE)
    assert listed.returncode == 0, listed.stderr
    lines = {line.split(":")[0]: line for line in listed.stdout.splitlines()}
    assert "meanstd" in lines["scenarios"] and "meanstd" in lines["adaptation methods"]
    assert "uniform_noise" in lines["attacks"]

    suite = tmp_path / "plugged.toml"
    suite.write_text(tiny_text(name="plugged", scenarios=("clean", "meanstd"), extra=FGSM))
    run = cli(["run", str(suite), "--out", str(tmp_path / "run"), "--quiet", "--no-report"], tmp_path, site, EXAMPLE)
    assert run.returncode == 0, run.stderr
    measured = rows(tmp_path / "run")
    seg = [r for r in measured if r["kind"] == "segmentation" and r["scenario"] == "meanstd"]
    assert [r["vendor"] for r in seg] == ["siemens"] and 0.0 <= seg[0]["metrics"]["dice_mean"] <= 1.0
    noise = [r for r in measured if r["kind"] == "fgsm" and r["attack"] == "uniform_noise"]
    assert sorted(r["eps"] for r in noise) == [0.0, 0.01] and all(r["scenario"] == "meanstd" for r in noise)


def test_suite_plugins_key_imports_the_module(tmp_path):
    """Not installed, only importable: naming the module in [suite] plugins registers what it adds."""
    text = tiny_text(name="named", scenarios=("meanstd",)).replace(
        "seeds = [0]", 'seeds = [0]\nplugins = ["unetgan_plugin_example.methods"]'
    )
    suite = tmp_path / "named.toml"
    suite.write_text(text)
    assert cli(["validate", str(suite)], tmp_path, EXAMPLE).returncode == 0
    without = tmp_path / "without.toml"
    without.write_text(tiny_text(name="without", scenarios=("meanstd",)))
    refused = cli(["validate", str(without)], tmp_path, EXAMPLE)
    assert refused.returncode == EXIT_BAD_INPUT and "unknown name 'meanstd'" in refused.stderr


def test_unknown_plugin_module_is_one_line_exit_2(tmp_path, capsys):
    suite = tmp_path / "bad.toml"
    suite.write_text(tiny_text(name="bad").replace("seeds = [0]", 'seeds = [0]\nplugins = ["no_such_plugin.mod"]'))
    assert main(["validate", str(suite)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert "[suite] plugins: module 'no_such_plugin.mod' not found" in err and len(err.splitlines()) == 1


def test_a_plugin_that_fails_on_import_is_one_line(tmp_path, monkeypatch):
    (tmp_path / "broken_plugin.py").write_text("raise RuntimeError('cannot start\\nat all')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(UserError) as err:
        import_plugins(["broken_plugin"], "s.toml: [suite] plugins")
    assert (
        str(err.value) == "s.toml: [suite] plugins: importing 'broken_plugin' failed: RuntimeError: cannot start at all"
    )


def test_plugin_versions_name_module_source_and_version(tmp_path, monkeypatch):
    (tmp_path / "versioned_plugin.py").write_text('__version__ = "1.2"\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    import_plugins(["versioned_plugin"], "s.toml: [suite] plugins")
    (record,) = plugin_versions(["versioned_plugin"])
    assert record == {"module": "versioned_plugin", "via": "suite", "distribution": None, "version": "1.2"}
    assert json.loads(json.dumps(plugin_versions())) == plugin_versions()


def test_suite_provenance_lists_the_suite_plugins(tmp_path, monkeypatch):
    from unetgan_bench.bench.provenance import suite_provenance
    from unetgan_bench.bench.suite import parse_suite

    (tmp_path / "provenance_plugin.py").write_text('__version__ = "0.3"\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("UNETGAN_CACHE", str(tmp_path / "cache"))
    text = tiny_text(name="prov").replace("seeds = [0]", 'seeds = [0]\nplugins = ["provenance_plugin"]')
    record = suite_provenance(parse_suite(text, str(tmp_path / "prov.toml")))
    assert record == {
        "models": {},
        "plugins": [{"module": "provenance_plugin", "via": "suite", "distribution": None, "version": "0.3"}],
    }
