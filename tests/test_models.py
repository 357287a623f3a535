"""Registered networks: shapes, feature taps, the identity generator, argument checks, determinism."""

from __future__ import annotations

import pytest
import torch

from unetgan_core.device import seed_everything
from unetgan_core.errors import UserError
from unetgan_core.losses import segmentation_loss
from unetgan_core.models import MODELS, LVUnet, PatchDiscriminator, ResnetGenerator, create_model, freeze


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors on a shared 2-core machine run far faster on one thread than with OpenMP contention."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# Small widths keep the registry sweep fast on a 2-core CPU.
SMALL = {
    "lv_unet": {"width": 4},
    "resnet_generator": {"width": 4, "n_blocks": 1},
    "patch_discriminator": {"width": 4},
}


def expected_shape(name: str, n: int, size: int) -> tuple[int, ...]:
    if name == "lv_unet":
        return (n, 3, size, size)
    if name == "resnet_generator":
        return (n, 1, size, size)
    # Two stride-2 4x4 convs (size/4), then two stride-1 4x4 convs with padding 1 (each -1).
    return (n, 1, size // 4 - 2, size // 4 - 2)


def test_every_registered_model_has_a_shape_rule():
    assert set(MODELS.names()) == set(SMALL)


@pytest.mark.parametrize("name", MODELS.names())
@pytest.mark.parametrize("size", [64, 96, 192])
def test_registered_model_output_shape_and_finite(name, size):
    torch.manual_seed(0)
    model = create_model(name, **SMALL[name])
    out = model(torch.rand(2, 1, size, size))
    assert tuple(out.shape) == expected_shape(name, 2, size)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", MODELS.names())
def test_registered_model_default_arguments_build_and_run(name):
    model = create_model(name)
    assert torch.isfinite(model(torch.rand(1, 1, 64, 64))).all()


def test_feature_taps_block7_block9_come_after_three_pools():
    net = LVUnet(width=8)
    assert net.n_blocks == 9
    logits, feats = net(torch.rand(2, 1, 96, 96), features=("block7", "block9"))
    assert logits.shape == (2, 3, 96, 96)
    assert set(feats) == {"block7", "block9"}
    # Stage 4 has 8 * width channels at 1/8 of the input size.
    assert feats["block7"].shape == (2, 64, 12, 12)
    assert feats["block9"].shape == (2, 64, 12, 12)


def test_forward_without_features_returns_logits_only():
    out = LVUnet(width=4)(torch.rand(1, 1, 64, 64))
    assert isinstance(out, torch.Tensor)


def test_encode_matches_forward_and_stops_at_deepest_block():
    net = LVUnet(width=4).eval()
    x = torch.rand(2, 1, 64, 64)
    calls = []
    hooks = [block.register_forward_hook(lambda m, i, o, k=k: calls.append(k)) for k, block in enumerate(net.encoder)]
    feats = net.encode(x, ["block5", "block3"])
    for h in hooks:
        h.remove()
    assert calls == [0, 1, 2, 3, 4]  # blocks 1..5 only
    _, full = net(x, features=("block3", "block5"))
    for name in ("block3", "block5"):
        torch.testing.assert_close(feats[name], full[name])
    assert feats["block3"].shape == (2, 8, 32, 32)


def test_unknown_feature_name_is_a_user_error():
    net = LVUnet(width=4)
    with pytest.raises(UserError, match="block10"):
        net.encode(torch.rand(1, 1, 64, 64), ["block10"])
    with pytest.raises(UserError, match="conv1"):
        net(torch.rand(1, 1, 64, 64), features=["conv1"])


def test_odd_input_size_still_gives_full_resolution_logits():
    assert LVUnet(width=4)(torch.rand(1, 1, 70, 53)).shape == (1, 3, 70, 53)
    assert ResnetGenerator(width=4, n_blocks=1)(torch.rand(1, 1, 70, 53)).shape == (1, 1, 70, 53)


def test_depth_is_configurable():
    net = LVUnet(width=4, blocks_per_stage=(1, 1, 1, 1, 2), decoder_blocks=2)
    _, feats = net(torch.rand(1, 1, 64, 64), features=("block6",))
    assert feats["block6"].shape == (1, 64, 4, 4)


@pytest.mark.parametrize("norm", ["group", "instance", "batch"])
def test_lv_unet_norm_choices_run(norm):
    assert torch.isfinite(LVUnet(width=4, norm=norm)(torch.rand(2, 1, 64, 64))).all()


def test_groupnorm_unet_gives_same_output_in_train_and_eval_mode():
    net = LVUnet(width=4)
    x = torch.rand(2, 1, 64, 64)
    torch.testing.assert_close(net.train()(x), net.eval()(x))


def test_residual_generator_starts_as_identity():
    gen = ResnetGenerator(width=4, n_blocks=2)
    x = torch.rand(3, 1, 64, 64)
    assert torch.equal(gen(x), x)


def test_non_residual_generator_outputs_a_sigmoid_image():
    gen = ResnetGenerator(width=4, n_blocks=1, residual=False)
    y = gen(torch.rand(2, 1, 64, 64))
    assert y.min() > 0 and y.max() < 1


def test_residual_generator_output_stays_in_unit_range_after_training_step():
    torch.manual_seed(0)
    gen = ResnetGenerator(width=4, n_blocks=1)
    opt = torch.optim.Adam(gen.parameters(), lr=0.5)
    x = torch.rand(2, 1, 32, 32)
    (gen(x) - 2.0).pow(2).mean().backward()  # pushes the output up, beyond 1
    opt.step()
    y = gen(x)
    assert not torch.equal(y, x)
    assert y.min() >= 0 and y.max() <= 1


def test_spectral_norm_discriminator_bounds_its_weights():
    torch.manual_seed(0)
    disc = PatchDiscriminator(width=4, norm="none", spectral_norm=True)
    disc(torch.rand(1, 1, 64, 64))  # a forward pass runs the power iteration
    first = disc.net[0].weight
    sigma = torch.linalg.matrix_norm(first.reshape(first.shape[0], -1), ord=2)
    assert sigma.item() == pytest.approx(1.0, abs=0.3)


@pytest.mark.parametrize(
    "name, kwargs, match",
    [
        ("no_such_model", {}, "known: lv_unet"),
        ("lv_unet", {"widht": 4}, "widht"),
        ("lv_unet", {"norm": "layer"}, "norm"),
        ("lv_unet", {"blocks_per_stage": (2, 0)}, "blocks_per_stage"),
        ("patch_discriminator", {"norm": "batch"}, "norm"),
        ("resnet_generator", {"width": 0}, "width"),
    ],
)
def test_bad_model_arguments_are_user_errors(name, kwargs, match):
    with pytest.raises(UserError, match=match):
        create_model(name, **kwargs)


def test_wrong_input_channels_is_a_user_error():
    with pytest.raises(UserError, match=r"\[N, 1, H, W\]"):
        LVUnet(width=4)(torch.rand(1, 2, 64, 64))


def test_freeze_stops_parameter_gradients_but_not_input_gradients():
    net = freeze(LVUnet(width=4))
    assert not net.training
    x = torch.rand(1, 1, 64, 64, requires_grad=True)
    net.encode(x, ["block9"])["block9"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in net.parameters())


def _train_a_few_steps(seed: int, steps: int = 3) -> dict[str, torch.Tensor]:
    seed_everything(seed)
    net = LVUnet(width=4)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.rand(2, 1, 32, 32)
    y = torch.randint(0, 3, (2, 32, 32))
    for _ in range(steps):
        opt.zero_grad()
        segmentation_loss(net(x), y).backward()
        opt.step()
    return {k: v.clone() for k, v in net.state_dict().items()}


def test_same_seed_gives_identical_weights_after_training_on_cpu():
    a, b = _train_a_few_steps(7), _train_a_few_steps(7)
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = _train_a_few_steps(8)
    assert any(not torch.equal(a[k], c[k]) for k in a)
