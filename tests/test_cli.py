"""The command line: exit codes (0 ok, 2 bad input) and one-line errors without a traceback."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_suites import tiny_text

from unetgan_bench.bench.cli import EXIT_BAD_INPUT, EXIT_OK, main

REPO = Path(__file__).resolve().parents[1]
# Phantom at 32 px, width-4 Unet, one epoch, one seed: a run with its report takes seconds.
TINY = tiny_text()


def assert_one_error_line(stderr: str) -> str:
    """The single ``error:`` line of ``stderr`` (argparse may add its usage line before it)."""
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    assert "Traceback" not in stderr
    return errors[0]


def test_validate_builtin_suite_exits_0(capsys) -> None:
    assert main(["validate", "smoke"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "valid suite 'smoke'" in out
    assert "segmentation task(s)" in out


def test_list_exits_0_and_names_registries_and_suites(capsys) -> None:
    assert main(["list"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "built-in suites:" in out
    assert "smoke" in out.split("built-in suites:")[1]
    assert "lv_unet" in out


def test_malformed_suite_file_exits_2_with_one_line(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[suite]\nname = "bad"\nseeds = [0\n', encoding="utf-8")  # unclosed array
    assert main(["validate", str(bad)]) == EXIT_BAD_INPUT
    line = assert_one_error_line(capsys.readouterr().err)
    assert "bad.toml" in line


def test_unknown_key_in_suite_file_exits_2_naming_the_key(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "typo.toml"
    bad.write_text(TINY.replace("epochs = 1", "epochz = 1"), encoding="utf-8")
    assert main(["validate", str(bad)]) == EXIT_BAD_INPUT
    line = assert_one_error_line(capsys.readouterr().err)
    assert "epochz" in line


def test_unknown_suite_name_exits_2_listing_builtins(capsys) -> None:
    assert main(["run", "no_such_suite", "--no-report", "--quiet"]) == EXIT_BAD_INPUT
    line = assert_one_error_line(capsys.readouterr().err)
    assert "no_such_suite" in line
    assert "smoke" in line


def test_bad_flag_exits_2_with_one_line(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["run", "smoke", "--no-such-flag"])
    assert info.value.code == EXIT_BAD_INPUT
    line = assert_one_error_line(capsys.readouterr().err)
    assert "--no-such-flag" in line


def test_bad_seeds_exit_2(tmp_path: Path, capsys) -> None:
    assert main(["run", "smoke", "--seeds", "1", "1", "--out", str(tmp_path / "run")]) == EXIT_BAD_INPUT
    assert "--seeds" in assert_one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "run").exists()


def test_report_on_folder_that_is_not_a_run_exits_2(tmp_path: Path, capsys) -> None:
    assert main(["report", str(tmp_path)]) == EXIT_BAD_INPUT
    line = assert_one_error_line(capsys.readouterr().err)
    assert "not a run folder" in line
    assert not (tmp_path / "report.html").exists()


# bench/cli.py passes --dice-drop/--throughput-ratio as None when they are not given, and
# compare_runs rejects None, so every `compare` without both flags (the one in .ci/run too) exits 2.


def test_compare_on_missing_folders_exits_2_naming_the_folder(tmp_path: Path, capsys) -> None:
    assert main(["compare", str(tmp_path / "base"), str(tmp_path / "new")]) == EXIT_BAD_INPUT
    line = assert_one_error_line(capsys.readouterr().err)
    assert "base" in line


def test_compare_on_missing_folders_with_thresholds_exits_2_naming_the_folder(tmp_path: Path, capsys) -> None:
    argv = [
        "compare",
        str(tmp_path / "base"),
        str(tmp_path / "new"),
        "--dice-drop",
        "0.01",
        "--throughput-ratio",
        "0.8",
    ]
    assert main(argv) == EXIT_BAD_INPUT
    line = assert_one_error_line(capsys.readouterr().err)
    assert "base" in line


def test_compare_run_with_itself_without_flags_exits_0(tmp_path: Path, capsys) -> None:
    run = str(REPO / "tests" / "fixtures" / "run_small")
    assert main(["compare", run, run, "--html", str(tmp_path / "cmp.html")]) == EXIT_OK
    assert (tmp_path / "cmp.html").is_file()


def test_compare_run_with_itself_exits_0(tmp_path: Path, capsys) -> None:
    run = str(REPO / "tests" / "fixtures" / "run_small")
    argv = ["compare", run, run, "--html", str(tmp_path / "cmp.html"), "--dice-drop", "0", "--throughput-ratio", "1"]
    assert main(argv) == EXIT_OK
    assert "no gated value regressed" in capsys.readouterr().out
    assert (tmp_path / "cmp.html").is_file()


def test_real_subprocess_reports_bad_suite_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[suite\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "unetgan_bench", "validate", str(bad)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == EXIT_BAD_INPUT
    assert_one_error_line(done.stderr)
    assert done.stdout == ""


def test_run_prints_report_path_last(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("UNETGAN_CACHE", str(tmp_path / "cache"))
    suite = tmp_path / "tiny.toml"
    suite.write_text(TINY, encoding="utf-8")
    out = tmp_path / "run"
    code = main(["run", str(suite), "--out", str(out), "--cache", str(tmp_path / "store"), "--quiet"])
    assert code == EXIT_OK
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == f"report: {(out / 'report.html').resolve()}"
    assert (out / "report.html").stat().st_size > 0
    assert (out / "tables" / "table1.csv").is_file()


@pytest.mark.parametrize(
    "line",
    [
        b"42",
        b"[1, 2]",
        b"null",
        b'{"kind": "\xff"}',
        b'{"schema_version": 1, "kind": "fgsm", "cell_id": "c", "suite": "s", "scenario": "clean", "vendor": "ge",'
        b' "seed": 0, "attack": "fgsm", "eps": "big", "metrics": {"dice_mean": 0.5}}',
    ],
)
def test_report_on_a_malformed_results_line_exits_2_naming_file_and_line(tmp_path: Path, capsys, line) -> None:
    run = tmp_path / "run"
    shutil.copytree(REPO / "tests" / "fixtures" / "run_small", run)
    with open(run / "results.jsonl", "ab") as f:
        f.write(line + b"\n")
    rows = (run / "results.jsonl").read_bytes().count(b"\n")
    assert main(["report", str(run)]) == EXIT_BAD_INPUT
    assert f"{run / 'results.jsonl'}:{rows}: " in assert_one_error_line(capsys.readouterr().err)
    assert not (run / "report.html").exists()
