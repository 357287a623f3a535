"""Attacks: cases whose answer is known by hand, plus properties every attack must keep."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from unetgan_core.attacks import (
    ATTACKS,
    check_attack_options,
    fgsm,
    fgsm_sweep,
    loss_gradient,
    pgd,
    random_sign,
    sweep_cost_ratio,
)
from unetgan_core.errors import DataError, UserError


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny tensors gain nothing from threads, and on a shared 2-core machine OpenMP spin-waiting
    makes them many times slower; restore the setting for the other test modules."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def two_class_pixel_model(weight: float = 4.0, bias: float = -2.0) -> torch.nn.Conv2d:
    """1x1 conv: logit 0 is constant, logit 1 = weight * x + bias. Brighter pixels look more like class 1."""
    conv = torch.nn.Conv2d(1, 2, kernel_size=1)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([0.0, weight]).view(2, 1, 1, 1))
        conv.bias.copy_(torch.tensor([0.0, bias]))
    return conv.eval()


def small_conv_net(seed: int = 0, gain: float = 1.0) -> torch.nn.Module:
    """A seeded, untrained 3-layer conv net with 3 classes.

    ``gain`` scales every weight: at the default init the net is nearly linear over small eps
    (so PGD lands where FGSM does); a gain of 6 saturates the tanh units, the regime where
    iterating can find more than one signed step.
    """
    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1),
        torch.nn.Tanh(),
        torch.nn.Conv2d(8, 8, 3, padding=1),
        torch.nn.Tanh(),
        torch.nn.Conv2d(8, 3, 3, padding=1),
    )
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(gain)
    return net.eval()


def images(n: int = 4, size: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand((n, 1, size, size), generator=torch.Generator().manual_seed(seed))


def summed_ce(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float(F.cross_entropy(model(x), y, reduction="sum"))


def flipped_fraction(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(dim=1) != y).float().mean())


@pytest.mark.parametrize("name", ["fgsm", "pgd", "random_sign"])
def test_eps_zero_changes_nothing(name):
    model, x = small_conv_net(), images()
    y = torch.randint(0, 3, (4, 16, 16), generator=torch.Generator().manual_seed(1))
    assert torch.equal(ATTACKS.get(name)(model, x, y, 0.0, seed=3), x)


def test_fgsm_moves_each_pixel_against_its_label_and_raises_the_loss():
    # Class 1's logit grows with intensity, so the loss of a class-1 pixel falls as it brightens:
    # FGSM must darken class-1 pixels and brighten class-0 pixels, by exactly eps.
    model = two_class_pixel_model()
    x = torch.full((1, 1, 2, 2), 0.5)
    y = torch.tensor([[[1, 0], [0, 1]]])
    x_adv = fgsm(model, x, y, 0.1)
    expected = torch.tensor([[[[0.4, 0.6], [0.6, 0.4]]]])
    assert torch.allclose(x_adv, expected, atol=1e-6)
    assert summed_ce(model, x_adv, y) > summed_ce(model, x, y)


def test_fgsm_clips_to_the_unit_range():
    model = two_class_pixel_model()
    x = torch.tensor([[[[0.02, 0.97]]]])
    y = torch.tensor([[[1, 0]]])  # pushes the first pixel down and the second up, past the range
    assert torch.equal(fgsm(model, x, y, 0.1), torch.tensor([[[[0.0, 1.0]]]]))


def test_prediction_target_equals_label_target_when_labels_are_the_prediction():
    model, x = small_conv_net(), images()
    with torch.no_grad():
        own = model(x).argmax(dim=1)
    assert torch.equal(fgsm(model, x, None, 0.05, target="prediction"), fgsm(model, x, own, 0.05))


def test_right_ventricle_label_is_attacked_as_background():
    model, x = small_conv_net(), images(n=2)
    y = torch.randint(0, 4, (2, 16, 16), generator=torch.Generator().manual_seed(2))
    as_background = torch.where(y == 3, torch.zeros_like(y), y)
    assert torch.equal(fgsm(model, x, y, 0.03), fgsm(model, x, as_background, 0.03))


def test_one_gradient_sweep_equals_each_eps_computed_alone():
    model, x = small_conv_net(), images()
    y = torch.randint(0, 3, (4, 16, 16), generator=torch.Generator().manual_seed(1))
    eps_list = [0.0, 0.002, 0.01, 0.05, 0.3]
    swept = fgsm_sweep(model, x, y, eps_list)
    assert list(swept) == eps_list
    for eps in eps_list:
        assert torch.equal(swept[eps], fgsm(model, x, y, eps))


def test_attack_leaves_no_gradient_on_the_model():
    model, x = small_conv_net(), images()
    fgsm(model, x, None, 0.01, target="prediction")
    assert all(p.grad is None for p in model.parameters())


def test_attack_works_inside_no_grad():
    model, x = small_conv_net(), images()
    with torch.no_grad():
        x_adv = fgsm(model, x, None, 0.01, target="prediction")
    assert not torch.equal(x_adv, x)


def test_loss_gradient_of_pixel_model_matches_the_formula():
    # d/dx of -log softmax(z)_y with z = (0, w x + b): w * (sigmoid(w x + b) - [y == 1]).
    model = two_class_pixel_model(weight=4.0, bias=-2.0)
    x = torch.tensor([[[[0.25, 0.75]]]])
    y = torch.tensor([[[1, 0]]])
    p1 = torch.sigmoid(4.0 * x - 2.0)
    expected = 4.0 * (p1 - torch.tensor([[[[1.0, 0.0]]]]))
    assert torch.allclose(loss_gradient(model, x, y), expected, atol=1e-6)


@settings(max_examples=15, deadline=None)
@given(
    eps=st.floats(0.0, 1.0),
    name=st.sampled_from(["fgsm", "pgd", "random_sign"]),
    seed=st.integers(0, 2**16),
)
def test_outputs_stay_in_unit_range_and_inside_the_eps_ball(eps, name, seed):
    model, x = small_conv_net(), images(n=2, size=8, seed=seed)
    y = torch.randint(0, 3, (2, 8, 8), generator=torch.Generator().manual_seed(seed))
    options = {"steps": 3} if name == "pgd" else {}  # few steps keep the property test fast
    x_adv = ATTACKS.get(name)(model, x, y, eps, seed=seed, **options)
    assert x_adv.shape == x.shape
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    assert (x_adv - x).abs().max() <= eps + 1e-6


def test_pgd_is_at_least_as_damaging_as_fgsm_and_noise_is_least():
    model, x = small_conv_net(seed=5, gain=6.0), images(n=4, size=16, seed=5)
    with torch.no_grad():
        own = model(x).argmax(dim=1)
    eps = 0.1
    attacked = {
        "fgsm": fgsm(model, x, own, eps),
        "pgd": pgd(model, x, own, eps, steps=10),
        "pgd_random_start": pgd(model, x, own, eps, steps=10, random_start=True, seed=1),
        "random_sign": random_sign(model, x, own, eps, seed=1),
        "clean": x,
    }
    loss = {name: summed_ce(model, x_adv, own) for name, x_adv in attacked.items()}
    flipped = {name: flipped_fraction(model, x_adv, own) for name, x_adv in attacked.items()}
    for damage in (loss, flipped):
        assert damage["pgd"] >= damage["fgsm"]
        assert damage["pgd_random_start"] >= damage["fgsm"]
        assert damage["fgsm"] > damage["random_sign"] > damage["clean"]


def test_pgd_stays_in_the_ball_with_a_large_step():
    model, x = small_conv_net(), images()
    x_adv = pgd(model, x, None, 0.02, target="prediction", steps=3, step_size=0.5)
    assert (x_adv - x).abs().max() <= 0.02 + 1e-6


def test_pgd_step_fraction_scales_with_eps():
    model, x = small_conv_net(seed=5, gain=6.0), images()
    by_fraction = pgd(model, x, None, 0.04, target="prediction", steps=3, step_fraction=0.25)
    by_size = pgd(model, x, None, 0.04, target="prediction", steps=3, step_size=0.01)
    assert torch.equal(by_fraction, by_size)
    # One step of the whole radius is FGSM.
    one_step = pgd(model, x, None, 0.04, target="prediction", steps=1, step_fraction=1.0)
    assert torch.equal(one_step, fgsm(model, x, None, 0.04, target="prediction"))
    with pytest.raises(UserError, match="not both"):
        pgd(model, x, None, 0.04, target="prediction", step_size=0.01, step_fraction=0.25)


def test_random_attacks_are_seeded():
    model, x = small_conv_net(), images()
    assert torch.equal(random_sign(model, x, None, 0.1, seed=7), random_sign(model, x, None, 0.1, seed=7))
    assert not torch.equal(random_sign(model, x, None, 0.1, seed=7), random_sign(model, x, None, 0.1, seed=8))
    a = pgd(model, x, None, 0.05, target="prediction", steps=2, random_start=True, seed=4)
    b = pgd(model, x, None, 0.05, target="prediction", steps=2, random_start=True, seed=4)
    assert torch.equal(a, b)


def test_random_sign_is_eps_times_a_sign_pattern_shared_across_eps():
    x = torch.full((1, 1, 8, 8), 0.5)
    small, large = random_sign(None, x, None, 0.1, seed=3), random_sign(None, x, None, 0.2, seed=3)
    assert torch.allclose((small - x).abs(), torch.full_like(x, 0.1), atol=1e-6)
    assert torch.equal(torch.sign(small - x), torch.sign(large - x))


def test_bad_inputs_name_what_is_wrong():
    model, x = small_conv_net(), images()
    with pytest.raises(UserError, match="eps"):
        fgsm(model, x, None, -0.1, target="prediction")
    with pytest.raises(UserError, match="eps"):
        fgsm(model, x, None, float("nan"), target="prediction")
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        fgsm(model, x * 2, None, 0.1, target="prediction")
    with pytest.raises(DataError, match="N, C, H, W"):
        fgsm(model, x[0], None, 0.1, target="prediction")
    with pytest.raises(DataError, match="labels"):
        fgsm(model, x, torch.zeros(4, 8, 8, dtype=torch.long), 0.1)
    with pytest.raises(DataError, match="labels"):
        fgsm(model, x, torch.full((4, 16, 16), 7), 0.1)
    with pytest.raises(UserError, match="needs labels"):
        fgsm(model, x, None, 0.1)
    with pytest.raises(UserError, match="target"):
        fgsm(model, x, None, 0.1, target="gt")
    with pytest.raises(UserError, match="steps"):
        pgd(model, x, None, 0.1, target="prediction", steps=0)
    with pytest.raises(UserError, match="known: fgsm, pgd, random_sign"):
        ATTACKS.get("deepfool")
    with pytest.raises(UserError, match="stepz.*allowed: target, steps"):
        check_attack_options("pgd", {"stepz": 3})


def test_sweep_cost_ratio_reports_both_sides():
    model, x = small_conv_net(), images(n=2)
    result = sweep_cost_ratio(model, x, None, [0.0, 0.01, 0.02], target="prediction", warmup=0, repeats=1)
    assert result["n_eps"] == 3 and result["batch_size"] == 2
    assert result["per_eps_s"] > 0 and result["one_gradient_s"] > 0
    assert result["cost_ratio"] == pytest.approx(result["per_eps_s"] / result["one_gradient_s"])
