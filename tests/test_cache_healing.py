"""Damaged caches heal: a truncated checkpoint or phantom ``.npz`` is reported once, set aside and rebuilt."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_realdata_nifti import MNMS_CASES, make_mnms
from tiny_suites import tiny_text

from unetgan_bench.bench.cli import main
from unetgan_core.data.cache import cached_sliceset
from unetgan_core.data.mnms import MnmsSource
from unetgan_core.data.phantom.source import PhantomSource


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _dice(run_dir: Path) -> dict[str, float]:
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    return {r["cell_id"]: r["metrics"]["dice_mean"] for r in rows}


@pytest.mark.parametrize("damage", [_truncate, lambda p: p.write_bytes(b"")])
def test_an_unreadable_phantom_cache_file_is_set_aside_and_generated_again(tmp_path, capsys, damage) -> None:
    source = PhantomSource(size_px=32, subjects_per_vendor=2, slices_per_subject=2, cache_dir=tmp_path)
    first = source.load("siemens", ["siemens-000", "siemens-001"])
    (path,) = (tmp_path / "phantom").glob("*.npz")
    damage(path)
    # A new source object: nothing is held in memory, the file is all there is.
    again = PhantomSource(size_px=32, subjects_per_vendor=2, slices_per_subject=2, cache_dir=tmp_path)
    second = again.load("siemens", ["siemens-000", "siemens-001"])
    np.testing.assert_array_equal(first.images, second.images)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"warning: {path} is corrupt")
    assert len(list((tmp_path / "phantom").glob("*.npz.corrupt-*"))) == 1
    # The rebuilt file is read quietly.
    third = cached_sliceset(again.vendor_key("siemens"), lambda: pytest.fail("cache not used"), "phantom", tmp_path)
    np.testing.assert_array_equal(third.images, first.images)
    assert capsys.readouterr().err == ""


def test_an_unreadable_preprocessed_subject_is_set_aside_and_preprocessed_again(tmp_path, capsys) -> None:
    root = make_mnms(tmp_path / "mnms", MNMS_CASES[:2])
    options = {"size_px": 32, "cache_dir": tmp_path / "cache"}
    first = MnmsSource(root, **options).load("siemens", ["c1-A0S9V9"])
    (path,) = (tmp_path / "cache" / "mnms").glob("*.npz")
    _truncate(path)
    second = MnmsSource(root, **options).load("siemens", ["c1-A0S9V9"])
    np.testing.assert_array_equal(first.images, second.images)
    np.testing.assert_array_equal(first.labels, second.labels)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"warning: {path} is corrupt")


def test_a_rerun_heals_a_truncated_checkpoint_and_phantom_cache(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("UNETGAN_CACHE", str(tmp_path / "data"))
    suite = tmp_path / "tiny.toml"
    suite.write_text(tiny_text())
    store = tmp_path / "store"
    args = ["--cache", str(store), "--quiet", "--no-report", "--jobs", "1"]
    assert main(["run", str(suite), "--out", str(tmp_path / "run1"), *args]) == 0
    (checkpoint,) = store.glob("unet/*/model.pt")
    _truncate(checkpoint)
    phantom = sorted((tmp_path / "data" / "phantom").glob("*.npz"))
    _truncate(phantom[0])
    capsys.readouterr()

    assert main(["run", str(suite), "--out", str(tmp_path / "run2"), *args]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2, warnings
    assert any(str(checkpoint.parent) in w for w in warnings) and any(str(phantom[0]) in w for w in warnings)
    # Rebuilt from the same config and seeds, so the numbers are the first run's.
    assert _dice(tmp_path / "run2") == _dice(tmp_path / "run1")
    assert len(list(store.glob("unet/*.corrupt-*"))) == 1
