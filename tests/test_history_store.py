"""The history database: creation, migration from version 1, add/list/show/export round trip, bad input."""

import json
import shutil
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from unetgan_bench.bench.cli import main
from unetgan_bench.bench.history import store
from unetgan_bench.bench.history.schema import SCHEMA_VERSION, open_engine, suite_hash
from unetgan_core.errors import UserError

FIXTURE = Path(__file__).parent / "fixtures" / "run_small"

# The version 1 schema as unetgan-bench wrote it before per-image values and suite hashes were kept.
V1_DDL = """
CREATE TABLE meta (key VARCHAR(64) PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (run_id INTEGER PRIMARY KEY AUTOINCREMENT, fingerprint VARCHAR(64) NOT NULL UNIQUE,
  run_dir TEXT NOT NULL, suite VARCHAR(200) NOT NULL, "commit" VARCHAR(40), dirty BOOLEAN,
  started VARCHAR(40), finished VARCHAR(40), machine TEXT NOT NULL, numerics TEXT NOT NULL,
  manifest TEXT NOT NULL, report TEXT, added VARCHAR(40) NOT NULL);
CREATE TABLE results (run_id INTEGER NOT NULL REFERENCES runs(run_id), kind VARCHAR(20) NOT NULL,
  scenario VARCHAR(200), vendor VARCHAR(100), seed INTEGER, fold INTEGER, attack VARCHAR(100), eps FLOAT,
  setting VARCHAR(300), metric VARCHAR(100) NOT NULL, value FLOAT);
INSERT INTO meta VALUES ('schema_version', '1');
"""


def _count(db: Path, table: str) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def test_a_new_database_has_the_current_schema(tmp_path):
    db = tmp_path / "h.sqlite"
    open_engine(db)
    with sqlite3.connect(db) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        version = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
    assert {"meta", "runs", "results", "per_image"} <= tables
    assert int(version) == SCHEMA_VERSION == 2


def test_version_1_migrates_to_version_2_keeping_its_runs(tmp_path):
    db = tmp_path / "v1.sqlite"
    manifest = json.loads((FIXTURE / "manifest.json").read_text())
    with sqlite3.connect(db) as conn:
        conn.executescript(V1_DDL)
        conn.execute(
            "INSERT INTO runs (fingerprint, run_dir, suite, machine, numerics, manifest, added) VALUES (?,?,?,?,?,?,?)",
            ("f" * 64, "/old/run", "fixture-small", "{}", "{}", json.dumps(manifest), "2024-01-01"),
        )
        conn.execute("INSERT INTO results (run_id, kind, metric, value) VALUES (1, 'segmentation', 'dice_mean', 0.8)")
    open_engine(db)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "2"
        assert conn.execute("SELECT suite_hash FROM runs").fetchone()[0] == suite_hash(manifest)
        assert conn.execute("SELECT COUNT(*) FROM per_image").fetchone()[0] == 0
    assert _count(db, "results") == 1
    run_id = store.add_run(FIXTURE, db)  # the migrated database takes new runs
    assert run_id == 2 and _count(db, "per_image") > 0


def test_add_list_show_export_round_trip(tmp_path, capsys):
    db = tmp_path / "h.sqlite"
    assert main(["history", "add", str(FIXTURE), "--db", str(db)]) == 0
    runs = store.runs_table(db)
    assert list(runs["suite"]) == ["fixture-small"] and runs["commit"][0].startswith("0123456789")
    assert main(["history", "list", "--db", str(db)]) == 0
    assert "fixture-small" in capsys.readouterr().out

    rows = [json.loads(line) for line in (FIXTURE / "results.jsonl").read_text().splitlines()]
    seg = [r for r in rows if r["kind"] == "segmentation" and r["scenario"] == "clean" and r["vendor"] == "siemens"]
    expected = sum(r["metrics"]["dice_mean"] for r in seg) / len(seg)
    table = store.metric_table("dice_mean", db, vendor="siemens", scenario="clean")
    shown = table[table["kind"] == "segmentation"]
    assert shown["mean"].iloc[0] == pytest.approx(expected) and shown["n_seeds"].iloc[0] == len(seg)
    assert main(["history", "show", "dice_mean", "--vendor", "siemens", "--db", str(db)]) == 0
    eps50 = store.metric_table("eps50", db)
    assert set(eps50["kind"]) == {"summary"} and eps50["mean"].notna().any()

    for suffix in (".parquet", ".csv"):
        out = tmp_path / f"results{suffix}"
        assert main(["history", "export", "--out", str(out), "--db", str(db)]) == 0
        frame = pd.read_parquet(out) if suffix == ".parquet" else pd.read_csv(out)
        assert len(frame) == _count(db, "results")
        assert {"run_id", "commit", "metric", "value", "scenario", "vendor"} <= set(frame.columns)
    per_image = tmp_path / "per_image.csv"
    assert main(["history", "export", "--out", str(per_image), "--table", "per_image", "--db", str(db)]) == 0
    assert len(pd.read_csv(per_image)) == _count(db, "per_image") > 0


def test_a_sqlalchemy_url_works_like_a_path(tmp_path):
    url = f"sqlite:///{tmp_path / 'url.sqlite'}"
    assert store.add_run(FIXTURE, url) == 1
    assert len(store.runs_table(url)) == 1


def _one_line_exit_2(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


def test_a_newer_schema_is_refused(tmp_path, capsys):
    db = tmp_path / "new.sqlite"
    open_engine(db)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    err = _one_line_exit_2(["history", "add", str(FIXTURE), "--db", str(db)], capsys)
    assert "schema version 99" in err
    assert _count(db, "runs") == 0


def test_bad_runs_write_nothing(tmp_path, capsys):
    db = tmp_path / "h.sqlite"
    no_manifest = tmp_path / "no_manifest"
    shutil.copytree(FIXTURE, no_manifest)
    (no_manifest / "manifest.json").unlink()
    assert "no manifest.json" in _one_line_exit_2(["history", "add", str(no_manifest), "--db", str(db)], capsys)
    corrupt = tmp_path / "corrupt"
    shutil.copytree(FIXTURE, corrupt)
    with open(corrupt / "results.jsonl", "a") as f:
        f.write('{"kind": "segmentation"}\n')
    assert "results.jsonl" in _one_line_exit_2(["history", "add", str(corrupt), "--db", str(db)], capsys)
    assert not db.exists()  # nothing was written, not even an empty database
    store.add_run(FIXTURE, db)
    before = _count(db, "results")
    assert "already recorded" in _one_line_exit_2(["history", "add", str(FIXTURE), "--db", str(db)], capsys)
    assert _count(db, "results") == before


def test_show_of_an_unknown_metric_is_a_user_error(tmp_path):
    db = tmp_path / "h.sqlite"
    store.add_run(FIXTURE, db)
    with pytest.raises(UserError, match="no stored value of 'dice_nothing'"):
        store.metric_table("dice_nothing", db)


def test_check_against_a_recorded_run_id_or_folder(tmp_path, capsys):
    db = tmp_path / "h.sqlite"
    run_id = store.add_run(FIXTURE, db)
    new = tmp_path / "new"
    shutil.copytree(FIXTURE, new)
    assert main(["history", "check", str(new), "--against", str(run_id), "--db", str(db), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["exit_code"] == 0
    assert main(["history", "check", str(new), "--against", str(FIXTURE), "--db", str(db)]) == 0
    capsys.readouterr()
    assert "no run 99" in _one_line_exit_2(["history", "check", str(new), "--against", "99", "--db", str(db)], capsys)
