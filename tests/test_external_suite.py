"""External models in suites: ``[models.NAME]`` tables, the segmenter syntax of ``[scenarios]``, the plan's
``external`` tasks, and tiny suite runs that measure the same network in every format."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest
from external_nets import export_all, trained_tiny_net
from tiny_suites import TRANSLATOR, tiny_text

from unetgan_bench.bench.cli import EXIT_BAD_INPUT, main
from unetgan_bench.bench.plan import build_plan
from unetgan_bench.bench.registries import open_source
from unetgan_bench.bench.runner import run_suite
from unetgan_bench.bench.store import ArtifactStore
from unetgan_bench.bench.suite import load_suite, parse_suite
from unetgan_core.data.phantom.source import PhantomSource
from unetgan_core.errors import UserError

MODELS = """
[models.ts]
format = "torchscript"
path = "models/net.ts"
size_multiple = 2

[models.py]
format = "python"
factory = "external_nets:tiny_net"
weights = "models/weights.pt"
size_multiple = 2
feature_layers = ["encoder", "down"]

[models.onnx]
format = "onnx"
path = "models/net.onnx"
size_multiple = 2
"""

FGSM = """
[fgsm]
attacks = ["fgsm", "random_sign"]
eps = [0.0, 0.01]
scenarios = ["clean@model:ts", "clean@model:onnx"]
n_images = 2
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A tiny net trained on the tiny suite's phantom (32 px, source vendor), exported in every format."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    root = tmp_path_factory.mktemp("external_suite")
    source = PhantomSource(size_px=32, subjects_per_vendor=4, slices_per_subject=2, cache_dir=root / "cache")
    export_all(trained_tiny_net(source.load("philips", source.subjects("philips"))), root / "models")
    return root


@pytest.fixture
def cache(folder, monkeypatch):
    monkeypatch.setenv("UNETGAN_CACHE", str(folder / "cache"))
    return folder / "cache"


def write_suite(folder: Path, name: str, scenarios, extra: str = MODELS) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(tiny_text(name=name, scenarios=tuple(scenarios), extra=extra), encoding="utf-8")
    return path


def rows_by_scenario(run_dir: Path, kind: str = "segmentation") -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for line in (run_dir / "results.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["kind"] == kind:
            out.setdefault(row.get("scenario") or row.get("pipeline"), []).append(row)
    return out


def test_run_entries_name_their_segmenter(folder, cache):
    path = write_suite(folder, "entries", ["clean", "clean@model:ts", "histmatch@model:py"])
    suite = load_suite(str(path))
    entries = suite.scenarios.entries()
    assert [(e.label, e.scenario, e.model) for e in entries] == [
        ("clean", "clean", None),
        ("clean@model:ts", "clean", "ts"),
        ("histmatch@model:py", "histmatch", "py"),
    ]
    assert set(suite.models) == {"ts", "py", "onnx"} and suite.models["py"].feature_layers == ["encoder", "down"]


def test_external_model_replaces_the_unet_task(folder, cache):
    path = write_suite(folder, "plan", ["clean", "clean@model:ts", "histmatch@model:ts"])
    suite = load_suite(str(path))
    plan = build_plan(suite, open_source(suite, suite.path))
    external = plan.of_kind("external")
    assert len(external) == 1 and len(plan.of_kind("unet")) == 1  # "clean" alone trains a Unet
    sha = __import__("hashlib").sha256((folder / "models" / "net.ts").read_bytes()).hexdigest()
    assert external[0].config["files"] == [{"role": "model", "sha256": sha}]
    assert external[0].config["contracts"] == suite.models["ts"].contracts()
    cells = {t.config["scenario"]: t for t in plan.of_kind("segmentation") if t.config["vendor"] == "siemens"}
    assert cells["clean@model:ts"].config["pipeline"]["unet"] == external[0].key
    assert cells["histmatch@model:ts"].config["pipeline"]["scenario"] == "histmatch"
    assert cells["clean"].config["pipeline"]["unet"] == plan.of_kind("unet")[0].key


def test_external_key_ignores_the_name_and_follows_the_contract(folder, cache):
    one = load_suite(str(write_suite(folder, "one", ["clean@model:ts"])))
    renamed = parse_suite(
        tiny_text(name="two", scenarios=("clean@model:other",), extra=MODELS.replace("[models.ts]", "[models.other]")),
        str(folder / "two.toml"),
    )
    keys = [build_plan(s, open_source(s, s.path)).of_kind("external")[0].key for s in (one, renamed)]
    assert keys[0] == keys[1]
    changed = dataclasses.replace(one, models={"ts": dataclasses.replace(one.models["ts"], resize="resample")})
    assert build_plan(changed, open_source(changed, changed.path)).of_kind("external")[0].key != keys[0]


def test_every_format_gives_the_same_dice_through_a_suite_run(folder, cache, tmp_path):
    """TorchScript and the Python factory give identical Dice; ONNX agrees within 1e-3; FGSM on ONNX says why."""
    scenarios = ["clean@model:ts", "clean@model:py", "clean@model:onnx"]
    suite = load_suite(str(write_suite(folder, "formats", scenarios, MODELS + FGSM)))
    result = run_suite(suite, tmp_path / "run", store=ArtifactStore(tmp_path / "store"), progress=False, report=False)
    assert result.failed == []
    rows = rows_by_scenario(tmp_path / "run")
    dice = {s: {r["vendor"]: r["metrics"]["dice_mean"] for r in rows[s]} for s in scenarios}
    assert set(dice["clean@model:ts"]) == {"philips", "siemens"}
    assert dice["clean@model:ts"]["philips"] > 0.05  # a trained net, so equality below is not 0 == 0
    assert dice["clean@model:ts"] == dice["clean@model:py"]
    for vendor, value in dice["clean@model:ts"].items():
        assert abs(dice["clean@model:onnx"][vendor] - value) <= 1e-3
    fgsm = rows_by_scenario(tmp_path / "run", "fgsm")
    onnx = {(r["attack"], r["eps"]): r for r in fgsm["clean@model:onnx"]}
    assert onnx[("fgsm", 0.01)]["metrics"]["dice_mean"] is None
    assert "not differentiable" in onnx[("fgsm", 0.01)]["attack_note"]
    assert onnx[("random_sign", 0.01)]["metrics"]["dice_mean"] is not None  # no gradient needed
    ts = {(r["attack"], r["eps"]): r for r in fgsm["clean@model:ts"]}
    assert ts[("fgsm", 0.01)]["metrics"]["dice_mean"] is not None
    # The report renders rows without a Dice (the ONNX model's gradient attacks).
    from unetgan_bench.reports.render import render_report

    html = render_report(tmp_path / "run").read_text(encoding="utf-8")
    # The manifest and the report identify exactly what was audited: file, size and SHA-256 of each model.
    audited = json.loads((tmp_path / "run" / "manifest.json").read_text(encoding="utf-8"))["audited"]["models"]
    assert set(audited) == {"ts", "py", "onnx"}
    onnx_file = audited["onnx"]["files"][0]
    assert onnx_file["sha256"] == hashlib.sha256(Path(onnx_file["path"]).read_bytes()).hexdigest()
    assert f"SHA-256 {onnx_file['sha256']}" in html and "model onnx" in html


def test_translator_trained_for_an_external_model_uses_its_feature_layers(folder, cache, tmp_path):
    suite = load_suite(str(write_suite(folder, "feat", ["unetgan@model:py"], MODELS + TRANSLATOR)))
    plan = build_plan(suite, open_source(suite, suite.path))
    (translator,) = plan.of_kind("translator")
    assert translator.settings.feature_blocks == ("encoder", "down") and translator.settings.lambda_unet > 0
    assert translator.config["unet"] == plan.of_kind("external")[0].key
    result = run_suite(suite, tmp_path / "run", store=ArtifactStore(tmp_path / "store"), progress=False, report=False)
    assert result.failed == []
    (row,) = rows_by_scenario(tmp_path / "run")["unetgan@model:py"]
    assert row["vendor"] == "siemens" and 0.0 <= row["metrics"]["dice_mean"] <= 1.0


@pytest.mark.parametrize(
    ("scenarios", "extra", "message"),
    [
        (["unetgan@model:ts"], MODELS + TRANSLATOR, "compiled torchscript graph runs no forward hooks"),
        (["cyclegan@model:onnx"], MODELS + TRANSLATOR, "unlabelled checkpoint selection"),
        (["clean@model:nope"], MODELS, "unknown name 'model:nope'"),
        (["clean"], MODELS.replace("net.ts", "missing.ts"), "missing.ts"),
        (
            ["clean@model:bad"],
            '[models.bad]\nformat = "python"\nfactory = "external_nets:broken"\nkwargs = { kind = "four_channels" }\n',
            "out_channels",
        ),
        (
            ["clean@model:bad"],
            '[models.bad]\nformat = "python"\nfactory = "external_nets:broken"\nkwargs = { kind = "nan" }\n',
            "NaN",
        ),
        (
            ["clean@model:bad"],
            '[models.bad]\nformat = "python"\nfactory = "external_nets:broken"\nkwargs = { kind = "half_size" }\n',
            "returned shape",
        ),
        (
            ["clean@model:bad"],
            '[models.bad]\nformat = "python"\nfactory = "external_nets:broken"\n'
            'kwargs = { kind = "fixed_32" }\ninput_size = 64\n',
            "probe batch",
        ),
        (["clean"], '[models."../up"]\nformat = "onnx"\npath = "x.onnx"\n', "model name"),
        (["clean"], '[models.x]\nformat = "onnx"\npath = "x.onnx"\ncolour = 1\n', "colour"),
    ],
)
def test_contract_errors_are_one_line_exit_2_before_anything_is_written(
    folder, cache, tmp_path, capsys, scenarios, extra, message
):
    path = write_suite(folder, "broken", scenarios, extra)
    out = tmp_path / "run"
    for command in (["validate", str(path)], ["run", str(path), "--out", str(out), "--quiet", "--no-report"]):
        assert main(command) == EXIT_BAD_INPUT
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())


def test_scenario_segmenter_applies_to_every_entry(folder, cache):
    text = tiny_text(name="all", scenarios=("clean", "histmatch@unet"), extra=MODELS).replace(
        'run = ["clean"', 'segmenter = "model:ts"\nrun = ["clean"'
    )
    suite = parse_suite(text, str(folder / "all.toml"))
    assert [e.segmenter for e in suite.scenarios.entries()] == ["model:ts", "unet"]
    with pytest.raises(UserError, match="segmenter"):
        parse_suite(text.replace("model:ts", "model:zz"), str(folder / "all.toml"))


THROUGHPUT = """
[throughput]
pipelines = ["segment", "fgsm_step"]
image_sizes = [32]
batch_sizes = [2]
warmup = 0
repeats = 1
"""


def test_external_models_get_throughput_rows(folder, cache, tmp_path):
    suite = load_suite(str(write_suite(folder, "speed", ["clean@model:ts", "clean@model:onnx"], MODELS + THROUGHPUT)))
    result = run_suite(suite, tmp_path / "run", store=ArtifactStore(tmp_path / "store"), progress=False, report=False)
    assert result.failed == []
    rows = {r["pipeline"]: r for rs in rows_by_scenario(tmp_path / "run", "throughput").values() for r in rs}
    assert {"segment", "fgsm_step", "segment@model:ts", "fgsm_step@model:ts", "segment@model:onnx"} <= set(rows)
    for name in ("segment@model:ts", "fgsm_step@model:ts", "segment@model:onnx"):
        assert rows[name]["error"] is None and rows[name]["metrics"]["images_per_s"] > 0
    assert "not differentiable" in rows["fgsm_step@model:onnx"]["error"]
    seg = rows_by_scenario(tmp_path / "run")["clean@model:ts"][0]
    assert seg["fast_path_check"]["checked_images"] > 0  # the fast-path check ran on the external model


def test_provenance_names_model_files_contracts_adaptation_and_plugins(folder, cache):
    import hashlib

    from unetgan_bench.bench.provenance import suite_provenance

    suite = load_suite(str(write_suite(folder, "prov", ["clean@model:ts", "clean@model:py"])))
    record = suite_provenance(suite)
    assert json.loads(json.dumps(record)) == record
    ts = record["models"]["ts"]
    (model_file,) = ts["files"]
    path = folder / "models" / "net.ts"
    assert model_file["role"] == "model" and model_file["file"] == "net.ts"
    assert model_file["size_bytes"] == path.stat().st_size
    assert model_file["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert ts["contracts"] == suite.models["ts"].contracts() and ts["differentiable"] is True
    assert ts["adaptation"].startswith("input any size that is a multiple of 2 px (32x32 px as is)")
    roles = {f["role"] for f in record["models"]["py"]["files"]}
    assert roles == {"weights", "factory_source"} and record["models"]["py"]["factory"] == "external_nets:tiny_net"
    assert record["models"]["onnx"]["differentiable"] is False  # declared models are all described
    assert record["plugins"] == []


def test_provenance_is_what_the_loaded_model_says_without_loading_it_again(folder, cache, monkeypatch):
    from unetgan_bench.bench.provenance import suite_provenance
    from unetgan_core.external import load_external
    from unetgan_core.external import segmenter as segmenter_module

    suite = load_suite(str(write_suite(folder, "prov1", ["clean@model:ts", "clean@model:py"])))
    loaded = {
        name: load_external(spec, suite.base_dir, name=name, probe_size=32) for name, spec in suite.models.items()
    }

    def refuse(*args, **kwargs):
        raise AssertionError("provenance loaded a model")

    monkeypatch.setattr(segmenter_module, "load_external", refuse)
    record = suite_provenance(suite)
    for name, model in loaded.items():
        assert record["models"][name] == {**model.provenance(), "adaptation": model.adaptation(32)}


def test_naming_the_trained_unet_explicitly_keeps_every_key():
    """`segmenter = "unet"` is the default: the built-in suites' plans do not change when it is written out."""
    from unetgan_bench.bench.suite import resolve_suite_path

    path = resolve_suite_path("quick")
    text = path.read_text()
    explicit = text.replace("[scenarios]\n", '[scenarios]\nsegmenter = "unet"\n', 1)
    assert explicit != text
    plans = [build_plan(s, open_source(s, s.path)) for s in (load_suite("quick"), parse_suite(explicit, str(path)))]
    assert [t.key for t in plans[0].tasks] == [t.key for t in plans[1].tasks]
    assert not plans[0].of_kind("external")
    assert all(set(t.config["pipeline"]) == {"scenario", "unet", "adapter"} for t in plans[0].of_kind("segmentation"))


def test_training_workers_load_the_external_model(folder, cache, tmp_path):
    """With --jobs 2 the translator for an external model is trained in a worker process, which loads the model."""
    scenarios = ["cyclegan@model:py", "unetgan_nofeat@model:py"]
    suite = load_suite(str(write_suite(folder, "jobs", scenarios, MODELS + TRANSLATOR)))
    store = ArtifactStore(tmp_path / "store")
    result = run_suite(suite, tmp_path / "run", store=store, progress=False, report=False, jobs=2)
    assert result.failed == []
    assert {r["scenario"] for rs in rows_by_scenario(tmp_path / "run").values() for r in rs} == set(scenarios)
    plan = build_plan(suite, open_source(suite, suite.path))
    assert all(store.exists("translator", t.key) for t in plan.of_kind("translator"))


def test_oracle_selection_lets_a_model_without_features_train_a_plain_translator(folder, cache):
    text = tiny_text(name="oracle", scenarios=("cyclegan@model:ts",), extra=MODELS + TRANSLATOR)
    with pytest.raises(UserError, match="unlabelled checkpoint selection"):
        parse_suite(text, str(folder / "oracle.toml"))
    suite = parse_suite(
        text.replace("[scenarios]\n", '[scenarios]\nselection = "oracle"\n'), str(folder / "oracle.toml")
    )
    with pytest.raises(UserError, match="feature loss"):
        parse_suite(
            text.replace("[scenarios]\n", '[scenarios]\nselection = "oracle"\n').replace("cyclegan@", "unetgan@"),
            str(folder / "oracle.toml"),
        )
    assert suite.scenarios.selection == "oracle"
