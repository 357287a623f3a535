"""Input perturbations that probe how fragile a segmenter is: FGSM, PGD and a random-sign control.

Every attack has the same call, ``attack(logits_fn, x, y, eps, **options) -> x_adv``, where
``logits_fn`` maps images ``[N, 1, H, W]`` in [0, 1] to class logits ``[N, C, H, W]`` (a
pipeline's ``logits``, or any ``torch.nn.Module``). ``eps`` is the L-infinity radius in units of
the normalised input intensity, so ``eps=0.01`` moves a pixel by at most 1% of the [0, 1] range.

The loss is the per-pixel cross-entropy, summed over pixels and images: summing (not averaging)
keeps each image's gradient independent of the batch size, and the sign is all FGSM uses.
``target="label"`` attacks the ground truth (untargeted); ``target="prediction"`` attacks the
model's own clean prediction, for data whose labels must not be used.

The FGSM direction does not depend on ``eps``, so ``fgsm_sweep`` takes one gradient and returns
the adversarial image for every ``eps``; ``sweep_cost_ratio`` measures what that saves.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from unetgan_core.data.sliceset import BACKGROUND, RIGHT_VENTRICLE
from unetgan_core.errors import DataError, UserError
from unetgan_core.inference import class_map
from unetgan_core.registry import Registry
from unetgan_core.throughput.timing import device_sync, measure, summarise

LogitsFn = Callable[[torch.Tensor], torch.Tensor]
TARGETS = ("label", "prediction")

ATTACKS: Registry[Callable[..., torch.Tensor]] = Registry("attack")


def check_eps(eps: float) -> float:
    """Return ``eps`` as a float, or raise ``UserError`` if it is not a finite number >= 0.

    Args:
        eps: L-infinity radius in units of the normalised [0, 1] input intensity.
    """
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps) or eps < 0:
        raise UserError(f"eps must be a finite number >= 0 (units of the [0, 1] input), got {eps!r}")
    return float(eps)


def check_images(x: torch.Tensor) -> torch.Tensor:
    """Return ``x`` as float32 ``[N, C, H, W]``, or raise ``DataError`` if its shape or range is wrong.

    Args:
        x: images, intensities normalised to [0, 1].
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        shape = tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
        raise DataError(f"attack input must be a tensor [N, C, H, W], got {shape}")
    x = x.detach().to(torch.float32)
    if x.numel() and (not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1):
        raise DataError(f"attack input must lie in [0, 1], got range [{x.min().item():.4g}, {x.max().item():.4g}]")
    return x


def class_targets(y: torch.Tensor, x: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Ground-truth labels as int64 class indices for the cross-entropy.

    The right ventricle (label 3) is drawn in pictures but scored as background, so it is
    attacked as background too. Any other value outside ``[0, n_classes)`` is an error.

    Args:
        y: labels ``[N, H, W]`` (0 background, 1 blood pool, 2 myocardium, 3 RV).
        x: the images ``[N, C, H, W]`` the labels belong to (for the shape check).
        n_classes: number of logit channels.
    """
    if not isinstance(y, torch.Tensor) or tuple(y.shape) != (x.shape[0], *x.shape[2:]):
        shape = tuple(y.shape) if hasattr(y, "shape") else type(y).__name__
        raise DataError(f"labels must be [N, H, W] = {(x.shape[0], *x.shape[2:])} to match the images, got {shape}")
    y = y.to(device=x.device, dtype=torch.int64)
    y = torch.where(y == RIGHT_VENTRICLE, torch.full_like(y, BACKGROUND), y)
    if y.numel() and (y.min() < 0 or y.max() >= n_classes):
        raise DataError(f"labels must be in [0, {n_classes}) (or {RIGHT_VENTRICLE} for RV), got max {y.max().item()}")
    return y


def _check_target(target: str) -> None:
    if target not in TARGETS:
        raise UserError(f"attack target must be one of {', '.join(TARGETS)}, got {target!r}")


def _check_logits(logits: torch.Tensor, x: torch.Tensor) -> None:
    if logits.ndim != 4 or logits.shape[0] != x.shape[0] or logits.shape[2:] != x.shape[2:]:
        raise UserError(
            f"logits_fn must return [N, C, H, W] matching the input {tuple(x.shape)}, got {tuple(logits.shape)}"
        )


def loss_gradient(logits_fn: LogitsFn, x: torch.Tensor, y: torch.Tensor | None, target: str = "label") -> torch.Tensor:
    """Gradient of the summed per-pixel cross-entropy with respect to the input.

    One forward and one backward pass. Only the input's gradient is taken, so the model's
    parameters keep no ``.grad`` from an attack.

    Args:
        logits_fn: images ``[N, C, H, W]`` in [0, 1] -> logits ``[N, K, H, W]``.
        x: images ``[N, C, H, W]`` in [0, 1].
        y: labels ``[N, H, W]``; unused (may be None) when ``target="prediction"``.
        target: ``"label"`` (cross-entropy against ``y``) or ``"prediction"`` (against the
            model's own prediction on ``x``).

    Returns:
        Tensor shaped like ``x`` (loss units per unit of input intensity).
    """
    _check_target(target)
    x = check_images(x).requires_grad_(True)
    # The caller may be inside torch.no_grad() (an evaluation loop); the attack needs a graph.
    with torch.enable_grad():
        logits = logits_fn(x)
        _check_logits(logits, x)
        if target == "prediction":
            goal = class_map(logits.detach())
        else:
            if y is None:
                raise UserError('target="label" needs labels; pass y or use target="prediction"')
            goal = class_targets(y, x, logits.shape[1])
        loss = F.cross_entropy(logits, goal, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x)
    return grad


def _step(x: torch.Tensor, direction: torch.Tensor, eps: float) -> torch.Tensor:
    return (x + eps * direction).clamp_(0.0, 1.0)


@ATTACKS.register("fgsm")
def fgsm(
    logits_fn: LogitsFn, x: torch.Tensor, y: torch.Tensor | None, eps: float, *, target: str = "label", seed: int = 0
) -> torch.Tensor:
    """Fast gradient sign method: ``clip(x + eps * sign(grad_x L), 0, 1)``.

    Args:
        logits_fn: images ``[N, C, H, W]`` in [0, 1] -> logits ``[N, K, H, W]``.
        x: images ``[N, C, H, W]``, intensities in [0, 1].
        y: labels ``[N, H, W]`` (may be None with ``target="prediction"``).
        eps: L-infinity step in units of the normalised [0, 1] input intensity.
        target: ``"label"`` or ``"prediction"`` (see the module docstring).
        seed: unused; FGSM is deterministic (accepted so every attack takes the same options).

    Returns:
        Adversarial images shaped like ``x``, detached, in [0, 1].
    """
    eps = check_eps(eps)
    x = check_images(x)
    return _step(x, loss_gradient(logits_fn, x, y, target).sign(), eps)


def fgsm_sweep(
    logits_fn: LogitsFn, x: torch.Tensor, y: torch.Tensor | None, eps_list: Sequence[float], *, target: str = "label"
) -> dict[float, torch.Tensor]:
    """FGSM at every ``eps`` from one gradient: one forward and backward pass for the whole sweep.

    The sign of the gradient at ``x`` does not depend on ``eps``, so the result for each ``eps``
    is bit-for-bit what ``fgsm(logits_fn, x, y, eps)`` returns.

    Args:
        logits_fn: images ``[N, C, H, W]`` in [0, 1] -> logits ``[N, K, H, W]``.
        x: images ``[N, C, H, W]``, intensities in [0, 1].
        y: labels ``[N, H, W]`` (may be None with ``target="prediction"``).
        eps_list: L-infinity steps in units of the normalised [0, 1] input intensity.
        target: ``"label"`` or ``"prediction"``.

    Returns:
        ``{eps: x_adv}`` in the order of ``eps_list``.
    """
    eps_values = [check_eps(e) for e in eps_list]
    x = check_images(x)
    direction = loss_gradient(logits_fn, x, y, target).sign()
    return {eps: _step(x, direction, eps) for eps in eps_values}


@ATTACKS.register("pgd")
def pgd(
    logits_fn: LogitsFn,
    x: torch.Tensor,
    y: torch.Tensor | None,
    eps: float,
    *,
    target: str = "label",
    steps: int = 10,
    step_size: float | None = None,
    step_fraction: float | None = None,
    random_start: bool = False,
    seed: int = 0,
) -> torch.Tensor:
    """Projected gradient descent (iterated FGSM) inside the L-infinity ball of radius ``eps``.

    Each step moves by ``step_size * sign(grad)``, then projects onto ``[x - eps, x + eps]`` and
    onto [0, 1]. With ``target="prediction"`` the target is the clean prediction, fixed for all
    steps, so the attack keeps pushing away from the same answer.

    Args:
        logits_fn: images ``[N, C, H, W]`` in [0, 1] -> logits ``[N, K, H, W]``.
        x: images ``[N, C, H, W]``, intensities in [0, 1].
        y: labels ``[N, H, W]`` (may be None with ``target="prediction"``).
        eps: L-infinity radius in units of the normalised [0, 1] input intensity.
        target: ``"label"`` or ``"prediction"``.
        steps: number of gradient steps, >= 1.
        step_size: intensity change per step (units of the [0, 1] input).
        step_fraction: step size as a fraction of ``eps``, the form a sweep over eps needs; give
            ``step_size`` or ``step_fraction``, not both. Default ``2.5 / steps`` (Madry et al.),
            which lets the iterate reach the edge of the ball and still move along it.
        random_start: start from a uniform random point in the ball instead of ``x``.
        seed: seeds the random start (a local generator; global RNG state is untouched).

    Returns:
        Adversarial images shaped like ``x``, detached, in [0, 1].
    """
    eps = check_eps(eps)
    x = check_images(x)
    _check_target(target)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise UserError(f"pgd steps must be an integer >= 1, got {steps!r}")
    if step_size is not None and step_fraction is not None:
        raise UserError("pgd takes step_size or step_fraction, not both")
    if step_size is not None:
        step = check_eps(step_size)
    else:
        step = eps * (2.5 / steps if step_fraction is None else check_eps(step_fraction))
    if target == "prediction":
        with torch.no_grad():
            logits = logits_fn(x)
        _check_logits(logits, x)
        y, target = class_map(logits), "label"
    lower, upper = (x - eps).clamp(min=0.0), (x + eps).clamp(max=1.0)
    x_adv = x.clone()
    if random_start:
        noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(int(seed)), dtype=x.dtype)
        x_adv = torch.max(torch.min(x_adv + eps * (2 * noise.to(x.device) - 1), upper), lower)
    for _ in range(steps):
        grad = loss_gradient(logits_fn, x_adv, y, target)
        x_adv = torch.max(torch.min(x_adv + step * grad.sign(), upper), lower)
    return x_adv


@ATTACKS.register("random_sign")
def random_sign(
    logits_fn: LogitsFn, x: torch.Tensor, y: torch.Tensor | None, eps: float, *, target: str = "label", seed: int = 0
) -> torch.Tensor:
    """Control: ``clip(x + eps * s, 0, 1)`` with ``s`` a random +-1 per pixel.

    Same L-infinity size as FGSM but no gradient, so the gap between the two separates
    adversarial fragility from plain noise fragility.

    Args:
        logits_fn: unused (accepted so every attack has the same call).
        x: images ``[N, C, H, W]``, intensities in [0, 1].
        y: unused.
        eps: noise amplitude in units of the normalised [0, 1] input intensity.
        target: unused; checked only so a typo is still reported.
        seed: seeds the signs (a local generator; global RNG state is untouched). The same seed
            gives the same sign pattern at every ``eps``, as FGSM keeps one direction.

    Returns:
        Perturbed images shaped like ``x``, in [0, 1].
    """
    eps = check_eps(eps)
    x = check_images(x)
    _check_target(target)
    bits = torch.randint(0, 2, x.shape, generator=torch.Generator().manual_seed(int(seed)))
    return _step(x, (2 * bits - 1).to(device=x.device, dtype=x.dtype), eps)


def check_attack_options(name: str, options: dict[str, Any]) -> None:
    """Raise ``UserError`` if ``options`` holds a keyword the attack ``name`` does not take.

    Args:
        name: a registered attack name.
        options: keyword options for the attack (e.g. ``{"steps": 20}`` for ``pgd``).
    """
    params = inspect.signature(ATTACKS.get(name)).parameters
    allowed = [p for p, spec in params.items() if spec.kind is inspect.Parameter.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise UserError(f"unknown option(s) {', '.join(unknown)} for attack {name!r}; allowed: {', '.join(allowed)}")


def sweep_cost_ratio(
    logits_fn: LogitsFn,
    x: torch.Tensor,
    y: torch.Tensor | None,
    eps_list: Sequence[float],
    *,
    target: str = "label",
    warmup: int = 1,
    repeats: int = 3,
) -> dict[str, float]:
    """Time an FGSM sweep done per ``eps`` against the one-gradient ``fgsm_sweep``, on one batch.

    Both sides include scoring every adversarial batch (one forward pass per ``eps``), since a
    sweep is always scored: per ``eps`` costs K x (forward + backward) + K forwards, the
    one-gradient sweep 1 x (forward + backward) + K forwards.

    Args:
        logits_fn: images ``[N, C, H, W]`` in [0, 1] -> logits ``[N, K, H, W]``.
        x: one batch ``[N, C, H, W]`` in [0, 1].
        y: labels ``[N, H, W]`` (may be None with ``target="prediction"``).
        eps_list: the K values of eps (units of the [0, 1] input).
        target: ``"label"`` or ``"prediction"``.
        warmup: untimed runs of each side first.
        repeats: timed runs of each side, alternating between the sides; the median is used.

    Returns:
        ``{"n_eps", "batch_size", "per_eps_s", "one_gradient_s", "cost_ratio"}``: median seconds
        of each side and ``cost_ratio = per_eps_s / one_gradient_s`` (> 1 means the sweep saves).
    """
    eps_values = [check_eps(e) for e in eps_list]
    if not eps_values:
        raise UserError("sweep_cost_ratio needs at least one eps")
    for name, value, least in (("warmup", warmup, 0), ("repeats", repeats, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise UserError(f"sweep_cost_ratio: {name} must be an integer >= {least}, got {value!r}")
    x = check_images(x)
    sync = device_sync(x.device)

    def score(x_adv: torch.Tensor) -> None:
        with torch.no_grad():
            class_map(logits_fn(x_adv))

    def per_eps() -> None:
        for eps in eps_values:
            score(fgsm(logits_fn, x, y, eps, target=target))

    def one_gradient() -> None:
        for x_adv in fgsm_sweep(logits_fn, x, y, eps_values, target=target).values():
            score(x_adv)

    for _ in range(warmup):
        per_eps()
        one_gradient()
    # Alternate the two sides, so load from other processes on a shared machine falls on both.
    separate_s, shared_s = [], []
    for _ in range(repeats):
        separate_s.append(measure(per_eps, warmup=0, repeats=1, sync=sync).median_s)
        shared_s.append(measure(one_gradient, warmup=0, repeats=1, sync=sync).median_s)
    separate, shared = summarise(separate_s), summarise(shared_s)
    return {
        "n_eps": len(eps_values),
        "batch_size": int(x.shape[0]),
        "per_eps_s": separate.median_s,
        "one_gradient_s": shared.median_s,
        "cost_ratio": separate.median_s / shared.median_s,
    }
