"""The artifact store: whole artifacts or none, and temporary folders of killed builds cleaned up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from unetgan_bench.bench.store import ArtifactStore, remove_abandoned


def _write(text: str):
    def make(folder: Path) -> None:
        (folder / "model.pt").write_text(text)

    return make


def test_build_makes_the_artifact_once_and_a_failed_build_leaves_nothing(tmp_path) -> None:
    store = ArtifactStore(tmp_path)
    path = store.build("unet", "abc", _write("first"))
    assert (path / "model.pt").read_text() == "first"
    assert store.build("unet", "abc", _write("second")) == path  # already there: not built again
    assert (path / "model.pt").read_text() == "first"

    def broken(folder: Path) -> None:
        (folder / "half.pt").write_text("x")
        raise RuntimeError("training diverged")

    with pytest.raises(RuntimeError, match="diverged"):
        store.build("unet", "def", broken)
    assert not store.exists("unet", "def")
    assert [p.name for p in (tmp_path / "unet").iterdir()] == ["abc"]


def test_temporary_folders_of_dead_builders_are_removed_and_live_ones_kept(tmp_path) -> None:
    folder = tmp_path / "unet"
    folder.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    abandoned = folder / f".abc.{dead_pid}.x1y2"
    live = folder / f".abc.{os.getpid()}.z3w4"
    other_key = folder / f".abd.{dead_pid}.q5"
    for p in (abandoned, live, other_key):
        p.mkdir()
        (p / "model.pt").write_text("partial")

    assert remove_abandoned(folder, "abc") == [abandoned]
    assert not abandoned.exists() and live.exists() and other_key.exists()

    # Building the artifact cleans up after a builder that was killed earlier.
    again = folder / f".abc.{dead_pid}.k9"
    again.mkdir()
    ArtifactStore(tmp_path).build("unet", "abc", _write("done"))
    assert not again.exists() and live.exists()
    assert (folder / "abc" / "model.pt").read_text() == "done"
