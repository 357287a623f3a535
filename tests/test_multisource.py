"""Suites with several data sources: [data.NAME] tables, SOURCE:vendor names, one preprocessing, rows that
say which source they measured; and the typed [data] table."""

import json
import os
from pathlib import Path

import pytest
from tiny_suites import tiny_text

from unetgan_bench.bench.cli import main
from unetgan_bench.bench.plan import build_plan
from unetgan_bench.bench.registries import open_source
from unetgan_bench.bench.suite import parse_suite
from unetgan_bench.reports.collect import load_run
from unetgan_core.data.multisource import MultiSource
from unetgan_core.errors import UserError

SHARED = Path(os.environ.get("UNETGAN_SHARED", Path(__file__).resolve().parents[2] / "shared"))
SUNNYBROOK = SHARED / "data" / "sunnybrook"

# Two phantom configurations (other anatomies and acquisitions: seed 7) as two sources.
TWO_PHANTOMS = """
[suite]
name = "two"
seeds = [0]

[data]
size_px = 32
pixel_mm = 6.0

[data.a]
source = "phantom"
subjects_per_vendor = 4
slices_per_subject = 2

[data.b]
source = "phantom"
subjects_per_vendor = 4
slices_per_subject = 2
seed = 7
{second}

[vendors]
source = "a:philips"
targets = {targets}

[splits]
source = {{ train = 2, val = 1, test = 1 }}
target = {{ train = 1, val = 1, test = 2 }}

[unet]
model_kwargs = {{ width = 4 }}
epochs = 1
fail_dice_floor = 0.0       # a one-epoch toy Unet: nothing here is meant to be accurate
fail_empty_fraction = 1.0

[scenarios]
run = ["clean", "histmatch"]

[metrics]
bootstrap_samples = 100
figure_images = 0
"""


def two_sources(targets='["b:siemens", "a:ge"]', second="", sunnybrook=False) -> str:
    text = TWO_PHANTOMS.format(targets=targets, second=second)
    if sunnybrook:  # the real GE scans as source b
        text = text.replace(
            '[data.b]\nsource = "phantom"\nsubjects_per_vendor = 4\nslices_per_subject = 2\nseed = 7',
            (f'[data.b]\nsource = "sunnybrook"\nroot = "{SUNNYBROOK}"'),
        )
    return text


def test_vendors_are_addressed_as_source_vendor_and_split_keys_never_collide():
    suite = parse_suite(two_sources('["b:philips", "a:ge"]'), "two.toml")
    source = open_source(suite, suite.path)
    assert isinstance(source, MultiSource)
    assert "a:philips" in source.vendors() and "b:philips" in source.vendors()
    plan = build_plan(suite, source)
    # The same style and subject ids in two sources: other slices, so other keys.
    keys = {ref.key for ref in plan.data.values()}
    assert len(keys) == len(plan.data)
    assert plan.data[("a:philips", "test")].subjects == ("philips-003",)
    assert source.load("b:philips", ["philips-000"]).vendor == "b:philips"
    # Each vendor's row records its own source and the shared preprocessing.
    record = plan.vendor_sources["b:philips"]
    assert record["name"] == "b" and record["seed"] == 7
    assert record["preprocessing"] == {"size_px": 32, "pixel_mm": 6.0, "normalisation": source.normalisation}


def test_a_source_changes_only_its_own_vendors_keys():
    base = build_plan(*(lambda s: (s, open_source(s, s.path)))(parse_suite(two_sources(), "two.toml")))
    other = parse_suite(two_sources(second="include_rv = true"), "two.toml")
    changed = build_plan(other, open_source(other, other.path))
    assert changed.data[("a:philips", "train")].key == base.data[("a:philips", "train")].key
    assert changed.data[("b:siemens", "test")].key != base.data[("b:siemens", "test")].key


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace('"a:philips"', '"philips"'), r"\[vendors\] source/targets: unknown name 'philips'"),
        (lambda t: t.replace('"a:philips"', '"c:philips"'), r"unknown name 'c:philips'"),
        (
            lambda t: t.replace("seed = 7", "seed = 7\npixel_mm = 4.0"),
            r"\[data.b\] pixel_mm = 4.0 contradicts \[data\]",
        ),
        (lambda t: t.replace("pixel_mm = 6.0\n", "pixel_mm = 6.0\nseed = 1\n"), r"\[data\] seed: with \[data.NAME\]"),
        (lambda t: t.replace("seed = 7", 'seed = 7\nsubjects = "x"'), r"\[data.b\]: unknown key 'subjects'"),
        (lambda t: t.replace("[data.b]", '[data."b:c"]'), r"\[data\]: data source name 'b:c' is not allowed"),
    ],
)
def test_bad_multi_source_tables_are_one_line(edit, message):
    with pytest.raises(UserError, match=message) as info:
        suite = parse_suite(edit(two_sources()), "two.toml")
        open_source(suite, suite.path)
    assert "\n" not in str(info.value)


def test_unlike_preprocessing_is_refused_at_validation():
    # Without a shared pixel size the sources' defaults differ (phantom 288 mm / 32 px against 6 mm): refused.
    text = two_sources().replace("pixel_mm = 6.0\n", "").replace("seed = 7", "seed = 7\npixel_mm = 6.0")
    with pytest.raises(UserError, match=r"\[data.b\] pixel_mm: pixel size \(mm\) 6.0 differs from \[data.a\]'s 9.0"):
        parse_suite(text, "two.toml")


def test_data_table_is_typed_and_its_errors_name_the_key(tmp_path, capsys):
    with pytest.raises(UserError, match=r"^s.toml: \[data\]: unknown key 'sizepx'; allowed: cache_dir, include_rv"):
        parse_suite(tiny_text().replace("size_px = 32", "sizepx = 32"), "s.toml")
    with pytest.raises(UserError, match=r"^s.toml: \[data\] size_px: expected an integer, got '32'"):
        parse_suite(tiny_text().replace("size_px = 32", 'size_px = "32"'), "s.toml")
    path = tmp_path / "bad.toml"
    path.write_text(tiny_text().replace("size_px = 32", "size_px = 32\nflip = 3"))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown key 'flip'" in err and "__init__" not in err


def _assert_two_source_run(run_dir: Path, result, sources: dict[str, str]) -> None:
    assert not result.failed and result.report.is_file()
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert {(r["scenario"], r["vendor"]) for r in rows} == {
        ("clean", "a:philips"),
        *((s, v) for s in ("clean", "histmatch") for v in ("b:siemens", "a:ge")),
    }
    for row in rows:
        name = row["vendor"].split(":")[0]
        assert row["config"]["data_source"]["name"] == name
        assert row["config"]["data_source"]["source"] == sources[name]
        assert row["config"]["pipeline"]["unet"]["train"]["vendor"] == "a:philips"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["data_source"] == ", ".join(f"{k}={v}" for k, v in sources.items())
    run = load_run(run_dir)
    assert run.synthetic  # a phantom source is in it: the report must say so
    assert set(run.segmentation["vendor"]) == {"a:philips", "b:siemens", "a:ge"}


def _run(text: str, tmp_path, monkeypatch):
    from unetgan_bench.bench.runner import run_suite
    from unetgan_bench.bench.store import ArtifactStore

    monkeypatch.setenv("UNETGAN_CACHE", str(tmp_path / "cache"))
    suite = parse_suite(text, str(tmp_path / "two.toml"))
    return run_suite(suite, tmp_path / "run", store=ArtifactStore(tmp_path / "store"), progress=False)


@pytest.mark.slow
def test_two_phantom_sources_run_end_to_end(tmp_path, monkeypatch):
    result = _run(two_sources(), tmp_path, monkeypatch)
    _assert_two_source_run(tmp_path / "run", result, {"a": "phantom", "b": "phantom"})


@pytest.mark.slow
@pytest.mark.skipif(not SUNNYBROOK.is_dir(), reason=f"Sunnybrook data not found at {SUNNYBROOK}")
def test_phantom_source_and_real_sunnybrook_target_run_end_to_end(tmp_path, monkeypatch):
    # Train on the phantom's philips style, test on real GE scans (4 of the 5 patients: 1 train, 1 val, 2 test).
    text = two_sources('["b:ge", "a:ge"]', sunnybrook=True).replace('"b:siemens"', '"b:ge"')
    result = _run(text, tmp_path, monkeypatch)
    assert not result.failed
    rows = [json.loads(line) for line in (tmp_path / "run" / "results.jsonl").read_text().splitlines()]
    real = [r for r in rows if r["vendor"] == "b:ge"]
    assert {r["scenario"] for r in real} == {"clean", "histmatch"}
    assert all(r["config"]["data_source"]["source"] == "sunnybrook" for r in real)
    assert all(r["config"]["data_source"]["preprocessing"]["pixel_mm"] == 6.0 for r in real)
    assert all(r["metrics"]["n_images"] > 0 for r in real)
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["data_source"] == "a=phantom, b=sunnybrook"
