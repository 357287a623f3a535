"""The scenario registry: every scenario builds a working pipeline, and overrides resolve as documented."""

from __future__ import annotations

import numpy as np
import pytest

from unetgan_core.device import seed_everything
from unetgan_core.errors import UserError
from unetgan_core.models import create_model
from unetgan_core.scenarios import SCENARIOS, Scenario
from unetgan_core.training import TranslatorConfig, build_translator_models

SIZE = 32


@pytest.fixture(scope="module")
def parts():
    seed_everything(0)
    images = np.random.default_rng(0).uniform(0, 1, (3, SIZE, SIZE)).astype(np.float32)
    cfg = TranslatorConfig(generator={"width": 4, "n_blocks": 1}, discriminator={"width": 4})
    return {
        "unet": create_model("lv_unet", width=4),
        "generator": build_translator_models(cfg, seed=0)["g_s"],
        "images": images,
    }


@pytest.mark.parametrize("name", SCENARIOS.names())
def test_every_scenario_builds_a_pipeline_that_predicts_label_maps(name, parts):
    pipe = SCENARIOS.get(name).build_pipeline(parts["unet"], generator=parts["generator"], fit_images=parts["images"])
    pred = pipe.predict(parts["images"])
    assert pipe.name == name
    assert pred.shape == parts["images"].shape and pred.dtype == np.uint8
    assert set(np.unique(pred)) <= {0, 1, 2}
    assert pipe.attack_note


def test_the_papers_columns_are_all_there():
    columns = {SCENARIOS.get(n).paper_column: n for n in SCENARIOS.names() if SCENARIOS.get(n).paper_column}
    assert columns == {"Clean Unet": "clean", "Noisy Unet": "noisy", "Unet-GAN": "unetgan"}


def test_translator_overrides_apply_on_top_of_the_suite_settings():
    base = TranslatorConfig(steps=123, lr=2e-4)
    assert SCENARIOS.get("unetgan").translator_config(base) == base
    cyclegan = SCENARIOS.get("cyclegan").translator_config(base)
    assert (cyclegan.lambda_unet, cyclegan.lambda_ssim, cyclegan.lambda_cycle) == (0.0, 0.0, 10.0)
    assert cyclegan.steps == 123 and cyclegan.lr == 2e-4
    assert SCENARIOS.get("unetgan_cyclepair").translator_config(base).unet_pairing == "cycle"
    assert SCENARIOS.get("unetgan_cycle_l1").translator_config(base).cycle_loss == "l1"
    assert SCENARIOS.get("unetgan_nofeat").translator_config(base).lambda_unet == 0.0
    assert SCENARIOS.get("unetgan_nossim").translator_config(base).lambda_ssim == 0.0
    with pytest.raises(UserError, match="trains no translator"):
        SCENARIOS.get("histmatch").translator_config(base)


def test_adapters_name_what_each_pipeline_reads():
    """The scenario says what its pipeline needs besides the Unet; the plan puts it into the cell's key."""
    assert SCENARIOS.get("clean").adapter("src-train") is None
    assert SCENARIOS.get("histmatch").adapter("src-train") == {"kind": "histmatch", "fit": "src-train"}
    assert SCENARIOS.get("unetgan").adapter("src-train", "t-key") == {"kind": "translator", "key": "t-key"}
    with pytest.raises(UserError, match="needs the key of its trained translator"):
        SCENARIOS.get("cyclegan").adapter("src-train")


def test_missing_parts_and_bad_scenarios_are_user_errors(parts):
    with pytest.raises(UserError, match="needs a trained translator generator"):
        SCENARIOS.get("unetgan").build_pipeline(parts["unet"])
    with pytest.raises(UserError, match="needs source images to fit its histmatch adaptation"):
        SCENARIOS.get("histmatch").build_pipeline(parts["unet"])
    with pytest.raises(UserError, match="unknown scenario 'unet-gan'"):
        SCENARIOS.get("unet-gan")
    with pytest.raises(UserError, match="scenario typo: translator: unknown key 'lambda_feat'"):
        Scenario("typo", "clean", {"lambda_feat": 1.0}, "misspelt override")
    with pytest.raises(UserError, match="scenario typo: translator lambda_unet: expected a finite number"):
        Scenario("typo", "clean", {"lambda_unet": float("inf")}, "infinite weight")
    with pytest.raises(UserError, match="unknown unet_variant"):
        Scenario("bad", "blurry", None, "unknown variant")
    with pytest.raises(UserError, match="scenario name 'a/b' is not allowed"):
        Scenario("a/b", "clean", None, "a name that would become a path")
