"""The artifact store: whole artifacts or none, temporary folders of killed builds cleaned up, corrupt ones rebuilt."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from unetgan_bench.bench.store import CHECKSUMS, ArtifactStore, damage, remove_abandoned
from unetgan_core.errors import DataError


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


def _aside(folder: Path, name: str) -> list[str]:
    return sorted(p.name for p in folder.glob(f"{name}.corrupt-*"))


@pytest.mark.parametrize(
    "spoil, problem",
    [
        (lambda a: (a / "model.pt").write_text("firs"), "model.pt does not match"),  # truncated
        (lambda a: (a / "model.pt").unlink(), "model.pt is missing"),
        (lambda a: (a / "stray.txt").write_text("?"), "stray.txt was added"),
        (lambda a: (a / CHECKSUMS).write_text("{oops"), "unreadable checksums.json"),
    ],
)
def test_a_corrupt_artifact_is_reported_once_moved_aside_and_rebuilt(tmp_path, capsys, spoil, problem) -> None:
    store = ArtifactStore(tmp_path)
    path = store.build("unet", "abc", _write("first"))
    assert damage(path) is None and store.exists("unet", "abc")
    assert set(json.loads((path / CHECKSUMS).read_text())) == {"model.pt"}
    spoil(path)
    assert problem in damage(path)
    assert not store.exists("unet", "abc")

    assert store.build("unet", "abc", _write("second")) == path
    assert (path / "model.pt").read_text() == "second" and damage(path) is None
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"warning: {path} is corrupt ({problem}")
    aside = _aside(tmp_path / "unet", "abc")
    assert len(aside) == 1 and aside[0] in err[0]
    # Healed: the next call uses the rebuilt artifact quietly.
    assert store.build("unet", "abc", _write("third")) == path
    assert (path / "model.pt").read_text() == "second" and capsys.readouterr().err == ""


def test_an_artifact_its_reader_rejects_is_rebuilt_once(tmp_path, capsys) -> None:
    store = ArtifactStore(tmp_path)
    path = store.build("unet", "abc", _write("bad"))
    (path / CHECKSUMS).unlink()  # built before checksums were recorded: only the reader can tell

    def read(folder: Path) -> str:
        text = (folder / "model.pt").read_text()
        if text == "bad":
            raise DataError(f"{folder / 'model.pt'}: cannot load")
        return text

    assert store.open("unet", "abc", _write("good"), read) == "good"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot load" in err[0]
    assert len(_aside(tmp_path / "unet", "abc")) == 1
    # A rebuilt artifact that is rejected again is an error, not a loop.
    with pytest.raises(DataError, match="cannot load"):
        store.open("unet", "xyz", _write("bad"), read)


def test_a_corrupt_artifact_that_cannot_be_moved_is_a_one_line_error(tmp_path, monkeypatch) -> None:
    store = ArtifactStore(tmp_path)
    path = store.build("unet", "abc", _write("first"))
    (path / "model.pt").write_text("cut")

    def read_only(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "rename", read_only)  # as in a cache on a read-only file system
    with pytest.raises(DataError, match=r"is corrupt .* cannot be moved aside \(Permission denied\); delete it"):
        store.build("unet", "abc", _write("second"))
