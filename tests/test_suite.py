"""Suite files: valid ones load, broken ones are rejected with one line naming file and key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import tomllib
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tiny_suites import TRANSLATOR, tiny_text

from unetgan_bench.bench.plan import build_plan
from unetgan_bench.bench.registries import open_source
from unetgan_bench.bench.suite import MissingDataRoot, builtin_suites, load_suite, parse_suite
from unetgan_core.errors import UserError

BUILTIN = sorted(builtin_suites())

TINY = tiny_text(
    seeds=(0, 1), targets=("siemens", "ge"), scenarios=("clean", "noisy", "histmatch", "unetgan"), extra=TRANSLATOR
)


SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.mark.parametrize("name", BUILTIN)
def test_every_builtin_suite_is_valid(name: str) -> None:
    if name == "sunnybrook" and not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent")
    try:
        suite = load_suite(name)
    except MissingDataRoot as exc:  # real-data suites without their data: the one-line layout error
        assert "expected layout" in str(exc) and "\n" not in str(exc)
        return
    assert suite.name
    assert suite.suite.seeds


def test_expansion_counts_cells_and_shares_unets() -> None:
    suite = parse_suite(TINY, "tiny.toml")
    plan = build_plan(suite, open_source(suite, "tiny.toml"))
    kinds = [t.kind for t in plan.tasks]
    # Unets: clean and noisy per seed (histmatch and unetgan reuse the clean one).
    assert kinds.count("unet") == 2 * 2
    # Translators: one per target and seed for unetgan.
    assert kinds.count("translator") == 2 * 2
    # Cells: clean and noisy on 3 vendors, histmatch and unetgan on the 2 targets, per seed.
    assert kinds.count("segmentation") == 2 * (2 * 3 + 2 * 2)
    assert len({t.key for t in plan.tasks}) == len(plan.tasks)
    # Dependencies come before their dependents.
    position = {t.key: i for i, t in enumerate(plan.tasks)}
    assert all(position[d] < position[t.key] for t in plan.tasks for d in t.deps)


def test_splits_are_by_subject_and_disjoint() -> None:
    suite = parse_suite(TINY, "tiny.toml")
    plan = build_plan(suite, open_source(suite, "tiny.toml"))
    for vendor in suite.all_vendors:
        parts = [set(plan.data[(vendor, s)].subjects) for s in ("train", "val", "test")]
        assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])


def test_task_keys_do_not_depend_on_suite_name_or_order() -> None:
    a = parse_suite(TINY, "a.toml")
    b = parse_suite(TINY.replace('name = "tiny"', 'name = "other"').replace("seeds = [0, 1]", "seeds = [1, 0]"), "b")
    keys_a = {t.key for t in build_plan(a, open_source(a, "a")).tasks if t.kind in ("unet", "translator")}
    keys_b = {t.key for t in build_plan(b, open_source(b, "b")).tasks if t.kind in ("unet", "translator")}
    assert keys_a == keys_b


BROKEN = [
    ('[suite]\nname = "x"\nseeds = "zero"', r"\[suite\] seeds: expected a list of an integer"),
    ('[suite]\nname = "x"\ncolour = 1', r"\[suite\]: unknown key 'colour'; allowed: "),
    ('[suite]\nname = "x"\ndevice = "tpu"', r"\[suite\] device: expected one of cpu, cuda, auto"),
    ('[suite]\nname = "x"\nseeds = []', r"\[suite\] seeds: expected a non-empty list"),
    ('[suite]\nname = "x"\nseeds = [-1]', r"\[suite\] seeds: expected a value >= 0"),
    ('[scenarios]\nrun = ["clean", "magic"]', r"\[scenarios\] run: unknown name 'magic'; allowed: "),
    ('[vendors]\nsource = "philips"\ntargets = ["philips"]', r"cannot also be a target"),
    ('[vendors]\nsource = "philips"\ntargets = ["hitachi"]', r"unknown name 'hitachi'"),
    ("[splits]\nsource = { train = 2, val = 1 }", r"\[splits\] source: expected a table with keys train, val, test"),
    ("[splits]\nsource = { train = 0.9, val = 0.2, test = 0.1 }", r"summing to at most 1"),
    ("[unet]\nepochz = 3", r"\[unet\].*epochz"),
    ('[translator]\nlambda_unet = "high"', r"\[translator\].*lambda_unet"),
    ('[data]\nsource = "pacs"', r"\[data\] source: unknown name 'pacs'"),
    ('[fgsm]\nattacks = ["deepfool"]', r"\[fgsm\] attacks: unknown name 'deepfool'"),
    ("[fgsm]\neps = [0.0, 2.0]", r"\[fgsm\] eps: expected a value <= 1"),
    ("[nonsense]\na = 1", r"unknown table \[nonsense\]"),
    ("[suite\nname=", r"not valid TOML"),
    # Numeric policy: finite numbers only, and an upper bound on every count and rate.
    ("[unet]\nlr = inf", r"\[unet\] lr: expected a finite number, got inf"),
    ("[unet]\nlr = nan", r"\[unet\] lr: expected a finite number"),
    ("[fgsm]\neps = [nan]", r"\[fgsm\] eps: expected a finite number"),
    ("[compare]\ndice_drop = inf", r"\[compare\] dice_drop: expected a finite number"),
    ("[compare]\ndice_drop = nan", r"\[compare\] dice_drop: expected a finite number"),
    ("[unet]\nepochs = 1e12", r"\[unet\] epochs: expected an integer"),
    ("[unet]\nepochs = 1000000000000", r"\[unet\] epochs: expected a value <= 10000"),
    ("[translator]\nsteps = 1000000000", r"\[translator\] steps: expected a value <= 1000000"),
    ("[metrics]\nbootstrap_samples = 1000000000", r"\[metrics\] bootstrap_samples: expected a value <= "),
    ("[splits]\nsource = { train = 10000000, val = 1, test = 1 }", r"\[splits\] source: expected subject counts"),
    # Model options are checked against the model's constructor.
    ("[unet]\nmodel_kwargs = { bogus = 1 }", r"\[unet\] model_kwargs: lv_unet: unknown option 'bogus'; allowed: "),
    ("[unet]\nmodel_kwargs = { width = 0 }", r"\[unet\] model_kwargs: lv_unet: .*width >= 1"),
    ("[unet]\nmodel_kwargs = { width = 100000 }", r"\[unet\] model_kwargs: lv_unet: width: expected a value <= "),
    ('[unet]\nmodel_kwargs = { width = "wide" }', r"\[unet\] model_kwargs: lv_unet: width: expected an integer"),
    ("[translator]\ngenerator = { widht = 4 }", r"\[translator\] generator: resnet_generator: unknown option"),
    ("[throughput]\nunet = { bogus = 1 }", r"\[throughput\] unet: lv_unet: unknown option 'bogus'"),
    # Throughput settings go through the same loader (the table is named once).
    ("[throughput]\nbatch_sizes = [0]", r"^broken.toml: \[throughput\] batch_sizes: expected a value >= 1"),
    ('[throughput]\npipelines = ["nope"]', r"\[throughput\] pipelines: unknown throughput pipeline 'nope'"),
    ("[throughput]\nrepeats = inf", r"\[throughput\] repeats: expected an integer"),
    # Names that become paths.
    ('[suite]\nname = "../../etc"', r"\[suite\] name: suite name '../../etc' is not allowed; a name is "),
    ('[suite]\nname = ""', r"\[suite\] name: suite name '' is not allowed"),
    ('[suite]\nname = "a\\u0000b"', r"\[suite\] name: suite name 'a\\x00b' is not allowed"),
    ('[suite]\nname = "' + "x" * 100_000 + '"', r"\[suite\] name: suite name 'x+\.\.\. \(100002 characters\)"),
    (
        '[vendors]\nsource = "philips"\ntargets = ["siemens"]\n[vendors.styles."x/../../../../trav_escape"]\nbase = "ge"',
        r"\[vendors\] styles: style 'x/../../../../trav_escape' is not allowed",
    ),
    (
        '[vendors]\nsource = "philips"\ntargets = ["siemens"]\n[vendors.styles."a/b"]\nbase = "ge"',
        r"\[vendors\] styles: style 'a/b' is not allowed",
    ),
    ('[vendors]\nsource = "philips"\ntargets = ["../ge"]', r"\[vendors\] targets: vendor '../ge' is not allowed"),
]


def _merge(base: str, patch: str) -> str:
    """Replace whole tables of ``base`` by the tables written in ``patch``."""
    try:
        patched = tomllib.loads(patch)
    except tomllib.TOMLDecodeError:
        return patch
    tables = re.split(r"\n(?=\[)", base.strip())
    keep = [t for t in tables if tomllib.loads(t).keys().isdisjoint(patched.keys())]
    return "\n".join(keep) + "\n" + patch + "\n"


@pytest.mark.parametrize("patch,message", BROKEN)
def test_broken_suite_gives_one_line_naming_file_and_key(patch: str, message: str) -> None:
    with pytest.raises(UserError) as info:
        parse_suite(_merge(TINY, patch), "broken.toml")
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith("broken.toml")
    assert re.search(message, text), text


def test_deeply_nested_suite_is_a_one_line_error() -> None:
    text = TINY + "[compare]\ndice_drop = " + "[" * 5000 + "]" * 5000 + "\n"
    with pytest.raises(UserError) as info:
        parse_suite(text, "deep.toml")
    assert str(info.value) == "deep.toml: not valid TOML (arrays or tables nested too deeply)"


def test_sections_are_typed_and_frozen() -> None:
    """Every table is loaded once into a frozen dataclass; nested tables keep their values."""
    import dataclasses

    from unetgan_core.throughput.pipelines import ThroughputSection
    from unetgan_core.training import SegTrainConfig, TranslatorConfig

    suite = load_suite("smoke")
    assert isinstance(suite.unet, SegTrainConfig) and suite.unet.model_kwargs == {"width": 8}
    assert isinstance(suite.translator, TranslatorConfig) and suite.translator.generator["n_blocks"] == 1
    assert isinstance(suite.throughput, ThroughputSection) and suite.throughput.batch_sizes == (4,)
    # [throughput] unet options default to the suite's Unet.
    assert suite.throughput.unet == {"width": 8}
    with pytest.raises(dataclasses.FrozenInstanceError):
        suite.unet.epochs = 1  # type: ignore[misc]


def test_resolved_suite_is_plain_json_data() -> None:
    """The manifest stores ``resolved()``; read back from JSON it must compare equal (a resumed run checks it)."""
    import json

    suite = load_suite("smoke")
    assert json.loads(json.dumps(suite.resolved())) == suite.resolved()


_values = st.one_of(
    st.integers(-5, 5),
    st.floats(allow_nan=False, width=32),
    st.text(max_size=5),
    st.booleans(),
    st.lists(st.integers(-2, 2), max_size=3),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    table=st.sampled_from(["suite", "vendors", "splits", "scenarios", "metrics", "fgsm", "unet", "translator"]),
    key=st.sampled_from(["seeds", "name", "targets", "source", "run", "epochs", "lr", "eps", "n_images", "bogus"]),
    value=_values,
)
def test_random_corruptions_never_escape_as_tracebacks(table: str, key: str, value) -> None:
    """Whatever a user writes into a suite, the result is a valid suite or a one-line UserError."""
    raw = tomllib.loads(TINY)
    raw.setdefault(table, {})[key] = value
    text = _dump(raw)
    try:
        parse_suite(text, "fuzz.toml")
    except UserError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("fuzz.toml")


def _dump(raw: dict) -> str:
    import json

    def value(v):
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + " }"
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, float):
            return repr(v) if v == v and abs(v) != float("inf") else "0.0"
        return json.dumps(v) if isinstance(v, str) else str(v)

    return "\n".join(f"[{t}]\n" + "\n".join(f"{k} = {value(v)}" for k, v in body.items()) for t, body in raw.items())


def test_unknown_suite_name_lists_builtins(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="built-in suites: .*smoke"):
        load_suite("no_such_suite")


def test_source_unet_is_shared_by_suites_with_other_targets() -> None:
    """The Unet depends on the source vendor's data only, so another target list reuses it."""
    a = parse_suite(TINY, "a.toml")
    b = parse_suite(TINY.replace('targets = ["siemens", "ge"]', 'targets = ["canon"]'), "b.toml")
    unets_a = {t.key for t in build_plan(a, open_source(a, "a")).tasks if t.kind == "unet"}
    unets_b = {t.key for t in build_plan(b, open_source(b, "b")).tasks if t.kind == "unet"}
    assert unets_a == unets_b


@pytest.mark.parametrize("name", ["unseen_vendor", "ablation"])
def test_suites_meant_to_reuse_quick_unets_do(name: str) -> None:
    """Their headers promise quick's trained Unets come from the cache: keep the settings in step."""
    quick = load_suite("quick")
    other = load_suite(name)
    unets = {t.key for t in build_plan(quick, open_source(quick, "q")).tasks if t.kind == "unet"}
    needed = {t.key for t in build_plan(other, open_source(other, "o")).tasks if t.kind == "unet"}
    assert needed <= unets


def test_registries_do_not_import_the_suite_loader() -> None:
    """Layers point one way: ``bench.suite`` uses ``bench.registries``, never the reverse."""
    import subprocess
    import sys

    code = (
        "import sys, unetgan_bench.bench.registries as r; r.registered(); "
        "print('unetgan_bench.bench.suite' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_every_setting_is_described_with_its_bounds() -> None:
    from unetgan_bench.bench.suite import describe_sections

    lines = describe_sections()
    assert any(line.startswith("[unet] epochs: an integer (ge 1, le 10000); default 35;") for line in lines)
    assert any(line.startswith("[throughput] batch_sizes: ") and "le 65536" in line for line in lines)
    assert lines[-1].startswith("names (suite, vendors, styles, scenarios, models): 1-64 characters")
    assert any(line.startswith("[models.NAME] format: a string (one of torchscript, onnx, python)") for line in lines)
