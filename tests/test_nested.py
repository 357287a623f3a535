"""Nested cross-validation (bench.nested, tools/nested_select.py): choices use only each fold's training subjects."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest
from tiny_suites import tiny_text

from unetgan_bench.bench.nested import (
    Candidate,
    changed_tables,
    choose,
    fixed_choice,
    parse_candidate,
    run_nested,
)
from unetgan_bench.bench.plan import build_plan
from unetgan_bench.bench.registries import open_source
from unetgan_bench.bench.store import ArtifactStore
from unetgan_bench.bench.suite import parse_suite
from unetgan_core.errors import UserError

# tiny_suites' phantom (4 subjects, 32 px, width-4 Unet for one epoch), cross-validated in FOLDS folds.
TINY_SPLITS = "source = { train = 2, val = 1, test = 1 }\ntarget = { train = 2, val = 1, test = 1 }"
NESTED_SUITE = tiny_text("nested", targets=(), scenarios=("clean",)).replace(TINY_SPLITS, "folds = FOLDS")


def _suite_file(tmp_path: Path, folds: int = 2) -> Path:
    path = tmp_path / "nested.toml"
    path.write_text(NESTED_SUITE.replace("FOLDS", str(folds)))
    return path


def _tool():
    path = Path(__file__).resolve().parents[1] / "tools" / "nested_select.py"
    spec = importlib.util.spec_from_file_location("nested_select", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_candidates_are_typed_toml_values_and_bad_ones_are_refused():
    c = parse_candidate("unet.epochs=60; data.pixel_mm=1.5 ;unet.model_kwargs.width = 12")
    assert c.changes == (("unet.epochs", 60), ("data.pixel_mm", 1.5), ("unet.model_kwargs.width", 12))
    assert c.name == "unet.epochs=60;data.pixel_mm=1.5;unet.model_kwargs.width=12"
    tables = changed_tables({"unet": {"epochs": 30, "model_kwargs": {"width": 8}}, "data": {}}, c)
    assert tables == {"unet": {"epochs": 60, "model_kwargs": {"width": 12}}, "data": {"pixel_mm": 1.5}}
    for bad in ("epochs=60", "unet.epochs", "unet.epochs=sixty", "unet..epochs=1"):
        with pytest.raises(UserError, match="--vary"):
            parse_candidate(bad)
    with pytest.raises(UserError, match="not a table"):
        changed_tables({"unet": {"epochs": 30}}, parse_candidate("unet.epochs.x=1"))


def test_choice_is_the_best_inner_mean_and_ties_go_to_the_first_listed():
    inner = pd.DataFrame({"candidate": ["a", "b", "b", "c"], "dice_mean": [0.5, 0.4, 0.8, 0.6]})
    assert choose(inner, ["a", "b", "c"]) == "b"
    assert choose(inner.assign(dice_mean=0.5), ["c", "a", "b"]) == "c"


def test_fixed_choice_weighs_every_fold_the_same_and_ties_go_to_the_first_listed():
    # Fold 0 has three inner rows (rule "all"), fold 1 one: a pooled mean would favour "a", the mean of fold means "b".
    inner = pd.DataFrame(
        {
            "fold": [0, 0, 0, 0, 0, 0, 1, 1],
            "candidate": ["a", "a", "a", "b", "b", "b", "a", "b"],
            "dice_mean": [0.9, 0.9, 0.9, 0.8, 0.8, 0.8, 0.1, 0.4],
        }
    )
    name, means = fixed_choice(inner, ["a", "b"])
    assert name == "b"
    assert means == pytest.approx({"a": 0.5, "b": 0.6})
    assert fixed_choice(inner.assign(dice_mean=0.7), ["b", "a"])[0] == "b"


def test_nested_selection_never_scores_a_choice_on_the_fold_test_subjects(tmp_path):
    path = _suite_file(tmp_path)
    store = ArtifactStore(tmp_path / "cache")
    notes: list[str] = []
    result = run_nested(str(path), [parse_candidate("unet.epochs=2")], store, note=notes.append)
    rows = pd.DataFrame(result["rows"])
    suite = parse_suite(path.read_text(), str(path))
    plan = build_plan(suite, open_source(suite, str(path)))
    for fold in (0, 1):
        train = plan.data[("philips", f"fold{fold}/train")].subjects
        test = plan.data[("philips", f"fold{fold}/test")].subjects
        inner = rows[(rows["phase"] == "inner") & (rows["fold"] == fold)]
        assert sorted(inner["candidate"]) == ["suite", "unet.epochs=2"]
        # Inner trainings: the first training subject held out, the rest trained on; test subjects never used.
        assert set(inner["test_subjects"]) == {train[0]}
        assert set(inner["train_subjects"]) == {" ".join(train[1:])}
        assert not set(" ".join(inner["train_subjects"]).split()) & set(test)
        choice = result["choices"][str(fold)]
        assert choice == inner.sort_values("dice_mean", kind="stable", ascending=False)["candidate"].iloc[0]
        (outer,) = rows[(rows["phase"] == "outer") & (rows["fold"] == fold)].to_dict("records")
        assert (outer["candidate"], outer["test_subjects"]) == (choice, " ".join(test))
        # The outer model is the one the suite with the chosen setting trains for this fold (shared in the store).
        text = path.read_text().replace("epochs = 1", "epochs = 2" if choice != "suite" else "epochs = 1")
        chosen = parse_suite(text, str(path))
        (task,) = [
            t for t in build_plan(chosen, open_source(chosen, str(path))).of_kind("unet") if t.config["fold"] == fold
        ]
        assert outer["unet_key"] == task.key
        assert outer["status"] in ("ok", "failed_training")
    assert result["pooled"]["n_images"] == rows[rows["phase"] == "outer"]["n_images"].sum() == 16
    assert len(result["per_image"]) == 16
    assert {"dice_blood_pool", "dice_myo", "hd95_blood_pool_mm", "hd95_myo_mm"} <= set(outer) & set(result["pooled"])
    # Everything is in the store: a second study trains nothing and gives the same scores.
    again = run_nested(str(path), [parse_candidate("unet.epochs=2")], store, note=notes.append)
    assert sum("training" in n for n in notes) == 2
    assert again["rows"] == result["rows"]


def test_rotating_inner_rule_holds_out_every_training_subject(tmp_path):
    path = _suite_file(tmp_path)
    result = run_nested(str(path), [], ArtifactStore(tmp_path / "cache"), inner_rule="all", note=lambda _: None)
    inner = [r for r in result["rows"] if r["phase"] == "inner" and r["fold"] == 0]
    assert len(inner) == 2 and len({r["test_subjects"] for r in inner}) == 2
    assert result["choices"] == {"0": "suite", "1": "suite"}


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    tool = _tool()
    path = _suite_file(tmp_path)
    out = tmp_path / "out"
    assert tool.main([str(path), "--vary", "unet.epochs", "--out", str(out)]) == 2
    assert tool.main([str(path), "--vary", "unet.epochs=-1", "--out", str(out)]) == 2
    assert "epochs" in capsys.readouterr().err
    no_folds = tmp_path / "plain.toml"
    no_folds.write_text(NESTED_SUITE.replace("FOLDS", "0"))
    assert tool.main([str(no_folds), "--out", str(out)]) == 2
    assert "folds >= 2" in capsys.readouterr().err
    assert not out.exists()


def test_the_tool_writes_every_score(tmp_path, capsys):
    tool = _tool()
    out = tmp_path / "out"
    args = [str(_suite_file(tmp_path)), "--vary", "unet.epochs=2", "--out", str(out), "--cache", str(tmp_path / "c")]
    assert tool.main(args) == 0
    printed = capsys.readouterr().out
    assert "nested outer estimate, pooled over 16 test images" in printed
    fixed = [line for line in printed.splitlines() if "<- one fixed setting for the suite" in line]
    assert len(fixed) == 1
    saved = json.loads((out / "nested.json").read_text())
    assert [c["name"] for c in saved["candidates"]] == ["suite", "unet.epochs=2"]
    assert fixed[0].strip().startswith(saved["fixed_choice"] + ":")
    assert set(saved["inner_mean_over_folds"]) == {"suite", "unet.epochs=2"}
    assert len(pd.read_csv(out / "scores.csv")) == 2 * 2 + 2
    assert len(pd.read_csv(out / "outer_per_image.csv")) == 16
    assert Candidate("suite").changes == ()
