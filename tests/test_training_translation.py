"""Translator training (CycleGAN / Unet-GAN) and checkpoint selection."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from test_training import toy_slices

from unetgan_core.device import seed_everything
from unetgan_core.errors import UserError
from unetgan_core.models import create_model
from unetgan_core.training import TranslatorConfig, build_translator_models, train_translator
from unetgan_core.training.selection import SELECTORS, frechet_distance_diagonal
from unetgan_core.training.translation import ImagePool, _selection_inputs, generator_losses

SIZE = 32
TINY = {"generator": {"residual": True, "width": 4, "n_blocks": 1}, "discriminator": {"width": 4}}


def _cfg(**kw) -> TranslatorConfig:
    return TranslatorConfig(**{**TINY, "steps": 2, "batch_size": 2, "lr": 2e-4, "check_every": 1, **kw})


@pytest.fixture(scope="module")
def unet():
    seed_everything(0)
    return create_model("lv_unet", width=4).eval()


@pytest.fixture(scope="module")
def domains():
    return {
        "source": toy_slices(4, SIZE, 0, "src"),
        "target": toy_slices(4, SIZE, 1, "tgt", gamma=2.0),
        "val_source": toy_slices(2, SIZE, 2, "src"),
        "val_target": toy_slices(2, SIZE, 3, "tgt", gamma=2.0),
    }


def _weights(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_residual_generators_start_at_the_identity_so_feature_and_ssim_losses_start_at_zero(unet, domains):
    nets = build_translator_models(_cfg(), seed=0)
    t = torch.from_numpy(domains["target"].images)[:, None]
    s = torch.from_numpy(domains["source"].images)[:, None]
    with torch.no_grad():
        assert torch.allclose(nets["g_s"](t), t, atol=1e-6)
        assert torch.allclose(nets["g_t"](s), s, atol=1e-6)
        _, parts, _, _ = generator_losses(nets, unet, s, t, _cfg())
    assert parts["loss_unet"] == pytest.approx(0.0, abs=1e-10)
    assert parts["loss_ssim"] == pytest.approx(0.0, abs=1e-6)
    assert parts["loss_g"] == pytest.approx(parts["loss_gan"], abs=1e-6)


def test_cyclegan_objective_has_only_gan_and_cycle_terms(unet, domains):
    cfg = _cfg(lambda_unet=0.0, lambda_ssim=0.0, lambda_cycle=10.0, cycle_loss="l1")
    nets = build_translator_models(cfg, seed=0)
    s = torch.from_numpy(domains["source"].images)[:, None]
    t = torch.from_numpy(domains["target"].images)[:, None]
    _, parts, _, _ = generator_losses(nets, unet, s, t, cfg)
    assert set(parts) == {"loss_gan", "loss_cycle", "loss_g"}
    assert parts["loss_g"] == pytest.approx(parts["loss_gan"] + 10.0 * parts["loss_cycle"], rel=1e-5)


def test_same_seed_gives_identical_generator_weights(unet, domains):
    cfg = _cfg(steps=2, check_every=2)
    a, _ = train_translator(domains["source"], domains["target"], unet, cfg, seed=1, progress=False)
    b, _ = train_translator(domains["source"], domains["target"], unet, cfg, seed=1, progress=False)
    wa, wb = a.state_dict(), b.state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    moved = build_translator_models(cfg, seed=1)["g_s"].state_dict()
    assert any(not torch.equal(wa[k], moved[k]) for k in wa), "training changed nothing"


def test_training_leaves_the_unet_as_it_found_it(domains):
    seed_everything(0)
    unet = create_model("lv_unet", width=4).train()
    before = _weights(unet)
    train_translator(domains["source"], domains["target"], unet, _cfg(steps=1), seed=0, progress=False)
    assert unet.training
    assert all(p.requires_grad for p in unet.parameters())
    assert all(torch.equal(before[k], v) for k, v in unet.state_dict().items())


def test_unlabelled_selection_never_reads_target_labels(unet, domains):
    cfg = _cfg(steps=2, check_every=1)
    vt = domains["val_target"]
    garbage = dataclasses.replace(vt, labels=np.random.default_rng(0).integers(0, 3, vt.labels.shape).astype(np.uint8))
    inputs = _selection_inputs(cfg, domains["val_source"], garbage)
    assert inputs.target_labels is None and inputs.target_myo_labelled is None
    runs = [
        train_translator(
            domains["source"],
            domains["target"],
            unet,
            cfg,
            2,
            val_source=domains["val_source"],
            val_target=v,
            progress=False,
        )
        for v in (vt, garbage)
    ]
    (g_real, h_real), (g_garbage, h_garbage) = runs
    assert h_real["selection"] == "unlabelled"
    assert h_real["best_step"] == h_garbage["best_step"]
    assert [c["score"] for c in h_real["checks"]] == [c["score"] for c in h_garbage["checks"]]
    assert all(
        torch.equal(a, b) for a, b in zip(g_real.state_dict().values(), g_garbage.state_dict().values(), strict=True)
    )


def test_unlabelled_scores_with_the_source_reference_computed_once_are_the_same_as_without(unet, domains):
    cfg = _cfg()
    selector = SELECTORS.get("unlabelled")
    inputs = _selection_inputs(cfg, domains["val_source"], domains["val_target"])
    prepared = selector.prepare(unet, inputs)
    assert inputs.source_reference is None and prepared.source_reference is not None
    nets = build_translator_models(cfg, 3)
    for _ in range(2):  # the same reference serves later checkpoints too
        assert selector.score(unet, nets["g_s"], nets["g_t"], prepared) == selector.score(
            unet, nets["g_s"], nets["g_t"], inputs
        )
        with torch.no_grad():
            for p in nets["g_s"].parameters():
                p.add_(0.01)


def test_selected_checkpoint_is_the_best_scored_and_every_check_is_logged(unet, domains, tmp_path):
    log = tmp_path / "translator.jsonl"
    cfg = _cfg(steps=2, check_every=1, selection="oracle")
    g, history = train_translator(
        domains["source"],
        domains["target"],
        unet,
        cfg,
        0,
        val_source=domains["val_source"],
        val_target=domains["val_target"],
        log_path=log,
        progress=False,
    )
    scores = [c["score"] for c in history["checks"]]
    assert [c["step"] for c in history["checks"]] == [0, 1, 2]
    assert history["selection"] == "oracle"
    assert all(c["selection"] == "oracle" for c in history["checks"])
    assert history["best_score"] == max(scores)
    assert history["best_step"] == scores.index(max(scores))
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["target_val_dice"] for r in rows] == scores
    # The returned generator really is the selected one: re-scoring it gives the recorded best score.
    inputs = _selection_inputs(cfg, domains["val_source"], domains["val_target"])
    assert SELECTORS.get("oracle").score(unet, g, g, inputs)["score"] == pytest.approx(history["best_score"])


def test_without_validation_data_the_last_step_is_kept(unet, domains):
    _, history = train_translator(domains["source"], domains["target"], unet, _cfg(steps=1), 0, progress=False)
    assert history["selection"] == "final" and history["best_step"] == 1 and history["best_score"] is None
    assert history["images_per_s"] > 0
    # Failed-training check on the training target images (no validation ones): a working generator passes.
    assert history["health"]["n_images"] == min(len(domains["target"]), 64) and history["health"]["finite"]
    assert (history["status"], history["status_reason"]) == ("ok", "")


def test_unlabelled_selection_needs_source_validation_images(unet, domains):
    with pytest.raises(UserError, match="needs held-out source validation"):
        train_translator(
            domains["source"], domains["target"], unet, _cfg(), 0, val_target=domains["val_target"], progress=False
        )


def test_frechet_distance_is_zero_for_equal_sets_and_grows_with_a_shift():
    a = torch.randn(50, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert frechet_distance_diagonal(a, a) == pytest.approx(0.0)
    # A shift of 1 in every dimension adds exactly 1 (mean term) and leaves the spread alone.
    assert frechet_distance_diagonal(a, a + 1.0) == pytest.approx(1.0)
    assert frechet_distance_diagonal(a, 2.0 * a) > 0


def test_image_pool_is_a_passthrough_when_empty_and_seeded_otherwise():
    fakes = [torch.full((2, 1, 4, 4), float(i)) for i in range(6)]
    assert torch.equal(ImagePool(0, torch.Generator()).query(fakes[0]), fakes[0])

    def run(seed):
        pool = ImagePool(3, torch.Generator().manual_seed(seed))
        return torch.stack([pool.query(f) for f in fakes])

    first = run(0)
    assert torch.equal(first, run(0))
    assert torch.equal(first[0], fakes[0]) and torch.equal(first[1][0], fakes[1][0])  # filling: newest returned
    assert set(first[3:].unique().tolist()) <= set(range(6))
