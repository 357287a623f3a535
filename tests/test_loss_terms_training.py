"""Loss-term records of translator training, the standardised feature loss, and settings left out of hashes."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from test_training import toy_slices
from test_training_translation import SIZE, _cfg

from unetgan_core.device import seed_everything
from unetgan_core.hashing import OMIT_DEFAULT, canonical, config_hash
from unetgan_core.losses import _standardised, feature_loss
from unetgan_core.models import create_model
from unetgan_core.schema import field
from unetgan_core.training import build_translator_models, train_translator
from unetgan_core.training.translation import PROBE_TERMS, loss_magnitudes


@pytest.fixture(scope="module")
def unet():
    seed_everything(0)
    return create_model("lv_unet", width=4).eval()


def _batch(seed: int, gamma: float = 1.0) -> torch.Tensor:
    return torch.from_numpy(toy_slices(2, SIZE, seed, "x", gamma=gamma).images)[:, None]


def test_loss_magnitudes_measure_every_term_whatever_its_weight_and_change_nothing(unet):
    cfg = _cfg(lambda_unet=0.0, lambda_ssim=0.0)  # plain GAN: no term but the GAN one is trained
    nets = build_translator_models(cfg, seed=0)
    for net in nets.values():  # move the generators off the identity so every term is non-zero
        with torch.no_grad():
            for p in net.parameters():
                p.add_(0.01)
    before = {k: [p.clone() for p in m.parameters()] for k, m in nets.items()}
    rng = torch.get_rng_state()
    terms = loss_magnitudes(nets, unet, _batch(0), _batch(1, gamma=2.0), cfg)
    assert set(terms) == {f"probe_{t}" for t in PROBE_TERMS}
    assert all(v > 0 for v in terms.values())
    assert torch.equal(rng, torch.get_rng_state())
    for k, m in nets.items():
        assert all(torch.equal(a, b) for a, b in zip(before[k], m.parameters(), strict=True))


def test_every_checkpoint_records_the_probe_terms(unet):
    source, target = toy_slices(4, SIZE, 0, "src"), toy_slices(4, SIZE, 1, "tgt", gamma=2.0)
    _, history = train_translator(source, target, unet, _cfg(), seed=0, progress=False)
    assert [c["step"] for c in history["checks"]] == [0, 1, 2]
    for check in history["checks"]:
        assert {f"probe_{t}" for t in PROBE_TERMS} <= set(check)
    assert "loss_unet" in history["checks"][-1] and "loss_cycle" not in history["checks"][-1]


def test_standardised_feature_mse_ignores_each_channels_scale():
    torch.manual_seed(0)
    fa = {"b": torch.randn(3, 4, 5, 5)}
    fb = {"b": fa["b"] + 0.1 * torch.randn(3, 4, 5, 5)}
    scale = torch.tensor([1.0, 100.0, 0.01, 7.0]).view(1, 4, 1, 1)
    scaled_a, scaled_b = {"b": fa["b"] * scale}, {"b": fb["b"] * scale}

    def mse(a, b):
        return float(torch.nn.functional.mse_loss(a["b"], b["b"]))

    assert mse(*_standardised(fa, fb)) == pytest.approx(mse(*_standardised(scaled_a, scaled_b)), rel=1e-4)
    assert mse(scaled_a, scaled_b) > 100 * mse(fa, fb)  # the plain MSE is dominated by the large channel


def test_standardised_feature_loss_is_zero_for_equal_images_and_differs_from_the_plain_one(unet):
    a, b = _batch(0), _batch(1, gamma=2.0)
    with torch.no_grad():
        same, standardised, plain = (
            float(feature_loss(unet, a, a, standardise=True)),
            float(feature_loss(unet, a, b, standardise=True)),
            float(feature_loss(unet, a, b)),
        )
    assert same == pytest.approx(0.0, abs=1e-10)
    assert standardised > 0 and standardised != pytest.approx(plain)


def test_a_setting_at_its_default_is_left_out_of_the_hash():
    @dataclasses.dataclass(frozen=True)
    class Old:
        x: int = 1

    @dataclasses.dataclass(frozen=True)
    class New:
        x: int = 1
        y: str = field("off", omit_default=True)

    assert dataclasses.fields(New)[1].metadata[OMIT_DEFAULT]
    assert canonical(New()) == canonical(Old()) == {"x": 1}
    assert config_hash(New()) == config_hash(Old())
    assert canonical(New(y="on")) == {"x": 1, "y": "on"}


def test_the_translator_hash_is_unchanged_by_the_feature_norm_option_until_it_is_set():
    assert "feature_norm" not in canonical(_cfg())
    assert canonical(_cfg(feature_norm="channel"))["feature_norm"] == "channel"
