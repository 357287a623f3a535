"""What the one-gradient FGSM sweep saves: K = 8 eps values, a small conv net, 96 px, batch 16.

Run with ``python -m pytest tests/benchmarks/test_bench_attacks.py --benchmark-enable``.
Both sides score every adversarial batch (one forward pass per eps), as a sweep always does;
the ratio is measured in the same run and recorded in ``extra_info["cost_ratio"]``.
"""

from __future__ import annotations

import pytest
import torch

from unetgan_core.attacks import fgsm, fgsm_sweep, sweep_cost_ratio

EPS_LIST = [0.0, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1]
BATCH, SIZE = 16, 96


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """One thread: the 2 cores are shared, and OpenMP spin-waiting under contention makes the
    timings of a small net noise; restore the setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def small_segmenter() -> torch.nn.Module:
    """A small encoder-decoder (one downsampling) with 3 output classes, seeded."""
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(16, 16, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 32, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Upsample(scale_factor=2),
        torch.nn.Conv2d(32, 16, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(16, 3, 1),
    ).eval()


@pytest.fixture(scope="module")
def case():
    generator = torch.Generator().manual_seed(0)
    x = torch.rand((BATCH, 1, SIZE, SIZE), generator=generator)
    y = torch.randint(0, 3, (BATCH, SIZE, SIZE), generator=generator)
    return small_segmenter(), x, y


def _score(model: torch.nn.Module, x_adv: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x_adv).argmax(dim=1)


@pytest.mark.parametrize("mode", ["one_gradient", "per_eps"])
def test_fgsm_sweep(benchmark, case, mode):
    model, x, y = case
    benchmark.group = "fgsm sweep, K=8, 16 x 96 px"

    def one_gradient():
        return [_score(model, x_adv) for x_adv in fgsm_sweep(model, x, y, EPS_LIST).values()]

    def per_eps():
        return [_score(model, fgsm(model, x, y, eps)) for eps in EPS_LIST]

    predictions = benchmark(one_gradient if mode == "one_gradient" else per_eps)
    assert len(predictions) == len(EPS_LIST)


def test_sweep_cost_ratio(benchmark, case):
    model, x, y = case
    result = benchmark.pedantic(
        sweep_cost_ratio, args=(model, x, y, EPS_LIST), kwargs={"repeats": 3}, rounds=1, iterations=1
    )
    benchmark.extra_info.update(result)
    # 8 backward passes against 1 must save time; the expected size (about 3x) is reported, not asserted.
    assert result["cost_ratio"] > 1.0
