"""Scenarios a suite declares: [scenarios.NAME] variants and [sweep] cells, their checks, expansion and sharing."""

from __future__ import annotations

import dataclasses

import pytest
from tiny_suites import TRANSLATOR, tiny_text

from unetgan_bench.bench.cli import main
from unetgan_bench.bench.plan import build_plan
from unetgan_bench.bench.registries import open_source
from unetgan_bench.bench.suite import parse_suite
from unetgan_bench.bench.variants import SweepSection, sweep_cells
from unetgan_core.errors import UserError
from unetgan_core.hashing import derive_seed


def _suite(tables: str = "", scenarios=("clean", "unetgan"), sweep: str = ""):
    text = tiny_text(scenarios=scenarios, extra=TRANSLATOR + sweep) + tables
    return parse_suite(text, "s.toml")


def _sweep(body: str, base: str = "unetgan", name: str = "lam") -> str:
    return f'\n[sweep]\nbase = "{base}"\nname = "{name}"\n{body}\n'


def test_variant_overrides_translator_and_unet_settings_of_its_base():
    suite = _suite(
        '[scenarios.feat]\nbase = "unetgan"\nlabel = "std"\ntranslator = { feature_norm = "channel", lambda_unet = 3 }\n'
        '[scenarios.noisier]\nbase = "noisy"\nunet = { noise_sigma = 0.2 }\n',
        scenarios=("clean", "feat", "noisier"),
    )
    feat = suite.scenario("feat")
    cfg = feat.translator_config(suite.translator)
    assert (cfg.feature_norm, cfg.lambda_unet, cfg.lambda_ssim) == ("channel", 3.0, 5.0)
    assert feat.label == "std" and feat.seed_name == "unetgan"
    noisier = suite.scenario("noisier").train_config(suite.unet)
    assert (noisier.variant, noisier.noise_sigma, noisier.epochs) == ("noisy", 0.2, 1)


@pytest.mark.parametrize(
    ("tables", "message"),
    [
        ('[scenarios.v]\nbase = "unetgan"\ncolour = 1\n', "unknown key 'colour'"),
        ('[scenarios.v]\nbase = "nosuch"\n', "unknown scenario 'nosuch'"),
        ('[scenarios.v]\nbase = "unetgan"\ntranslator = { lambda_feat = 1 }\n', "unknown key 'lambda_feat'"),
        ('[scenarios.v]\nbase = "unetgan"\ntranslator = { lambda_unet = -1 }\n', "lambda_unet: expected a value >= 0"),
        ('[scenarios.v]\nbase = "unetgan"\nunet = { epochs = "many" }\n', "epochs: expected an integer"),
        ('[scenarios.v]\nbase = "unetgan"\nunet = { variant = "noisy" }\n', "unet_variant"),
        ('[scenarios.v]\nbase = "clean"\ntranslator = { lambda_unet = 1 }\n', "trains no translator"),
        ('[scenarios.v]\nbase = "unetgan"\nunet_variant = "shiny"\n', "unknown unet_variant 'shiny'"),
        ('[scenarios."bad name"]\nbase = "unetgan"\n', "scenario name 'bad name' is not allowed"),
        ('[scenarios.unetgan]\nbase = "clean"\n', "taken by a registered scenario"),
        ('[scenarios.v]\nlabel = "x"\n', "missing required key 'base'"),
    ],
)
def test_bad_variants_are_one_line_errors(tables, message):
    with pytest.raises(UserError, match="s.toml: \\[scenarios") as info:
        _suite(tables)
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("sweep", "message"),
    [
        (_sweep("translator.lambda_unet = []"), "expected a non-empty list"),
        (_sweep("translator.lambda_unet = 15"), "expected a non-empty list"),
        (_sweep(""), "nothing to sweep"),
        (_sweep("translator.lambda_feat = [1, 2]"), "unknown key 'lambda_feat'"),
        (_sweep("translator.lambda_unet = [1, -2]"), "lambda_unet: expected a value >= 0"),
        (_sweep("solver.lr = [1, 2]"), "unknown key 'solver'"),
        (_sweep('mode = "zip"\ntranslator.lambda_unet = [1, 2]\ntranslator.lambda_ssim = [1]'), "one length"),
        (_sweep('mode = "grid"\ntranslator.lambda_unet = [1]'), "one of product, zip"),
        (_sweep("translator.lambda_unet = [1, 1]"), "named 'lam-1'"),
        (_sweep('translator.gan_loss = ["log", "a b"]'), "'lam-a b' is not allowed"),
        (_sweep("translator.lambda_unet = [1]", name="../x"), "sweep name '../x' is not allowed"),
        (_sweep("translator.lambda_unet = [1]", base="clean"), "trains no translator"),
        (_sweep("translator.lambda_unet = [1]", base="nosuch"), "unknown scenario 'nosuch'"),
    ],
)
def test_bad_sweeps_are_one_line_errors(sweep, message):
    with pytest.raises(UserError, match="s.toml: \\[sweep\\]") as info:
        _suite(sweep=sweep)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_cell_name_taken_by_a_variant_is_refused():
    with pytest.raises(UserError, match="cell name 'lam-1' is taken"):
        _suite('[scenarios.lam-1]\nbase = "unetgan"\n', sweep=_sweep("translator.lambda_unet = [1]"))


def test_product_and_zip_expansion_name_every_cell():
    product = SweepSection(base="unetgan", name="g", translator={"lambda_unet": [0, 1.5], "lambda_ssim": [5, 0.5]})
    assert sweep_cells(product, "w") == [
        ("g-0-5", {"translator.lambda_unet": 0, "translator.lambda_ssim": 5}),
        ("g-0-0.5", {"translator.lambda_unet": 0, "translator.lambda_ssim": 0.5}),
        ("g-1.5-5", {"translator.lambda_unet": 1.5, "translator.lambda_ssim": 5}),
        ("g-1.5-0.5", {"translator.lambda_unet": 1.5, "translator.lambda_ssim": 0.5}),
    ]
    zipped = SweepSection(base="unetgan", name="z", mode="zip", translator={"unet_pairing": ["translated", "cycle"]})
    zipped = sweep_cells(dataclasses.replace(zipped, unet={"epochs": [1, 2]}), "w")
    assert [name for name, _ in zipped] == ["z-1-translated", "z-2-cycle"]


def test_sweep_cells_join_the_run_list_as_variants_of_their_base():
    suite = _suite(sweep=_sweep("translator.lambda_unet = [0, 0.15, 15]"))
    assert suite.scenarios.run == ["clean", "unetgan", "lam-0", "lam-0.15", "lam-15"]
    assert suite.sweep == ["lam-0", "lam-0.15", "lam-15"]
    cell = suite.scenario("lam-0.15")
    assert cell.settings == {"translator.lambda_unet": 0.15}
    assert cell.translator_config(suite.translator).lambda_unet == 0.15


def _keys(suite, kind):
    plan = build_plan(suite, open_source(suite, "s.toml"))
    return plan, {t.key for t in plan.of_kind(kind)}


def test_a_translator_sweep_trains_the_unets_once_and_its_paper_cell_is_the_base_translator():
    plain, plain_unets = _keys(_suite(), "unet")
    swept, swept_unets = _keys(_suite(sweep=_sweep("translator.lambda_unet = [0, 1.5, 15]")), "unet")
    assert swept_unets == plain_unets and len(swept_unets) == 1
    base_translators = {t.key for t in plain.of_kind("translator")}
    by_scenario = {}
    for cell in swept.of_kind("segmentation"):
        adapter = cell.config["pipeline"]["adapter"]
        if adapter:
            by_scenario[cell.config["scenario"]] = adapter["key"]
    # lambda_unet = 15 is the suite's own Unet-GAN: same settings, same seeds, the same artifact.
    assert {by_scenario["lam-15"]} == base_translators == {by_scenario["unetgan"]}
    assert len({by_scenario["lam-0"], by_scenario["lam-1.5"], by_scenario["lam-15"]}) == 3
    # Every cell draws the base's seeds (paired by seed).
    seeds = {swept.task(k).config["seed"] for k in by_scenario.values()}
    assert seeds == {derive_seed(0, "translator", "siemens", "unetgan")}


def test_a_unet_override_trains_its_own_unet_and_shares_the_rest():
    suite = _suite(
        '[scenarios.long]\nbase = "unetgan"\nunet = { epochs = 2 }\n', scenarios=("clean", "unetgan", "long")
    )
    _, unets = _keys(suite, "unet")
    _, plain = _keys(_suite(), "unet")
    assert len(unets) == 2 and plain < unets


def test_validate_lists_the_cells_and_the_trainings(tmp_path, capsys):
    path = tmp_path / "s.toml"
    path.write_text(tiny_text(scenarios=("clean",), extra=TRANSLATOR + _sweep("translator.lambda_unet = [0, 15]")))
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "sweep cell lam-0 (base unetgan): translator.lambda_unet = 0" in out
    assert "3 trainings (1 unet(s), 2 translator(s))" in out
