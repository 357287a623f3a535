"""FLOPs of one call, counted from the operators torch actually runs.

Counting (rather than a formula per layer) stays right when a model changes, and for
training steps it includes the backward pass. ``FlopCounterMode`` counts matrix
products and convolutions (2 FLOPs per multiply-add); elementwise ops, normalisation and
the optimiser update are not counted, so the count is a slight underestimate of work
done and the achieved fraction of the matmul peak is directly comparable to that peak.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch.utils.flop_counter import FlopCounterMode


class _GlobalOnly:
    """Stands in for ``FlopCounterMode``'s per-module tracker: only the global total is wanted here.

    The tracker's backward hooks fail under ``torch.autograd.grad`` with a leaf input ("A leaf node
    was passed to _will_engine_execute_node"), which is exactly what an FGSM step does. Without it
    every counted op is attributed to ``"Global"``, the key ``get_total_flops`` sums.
    """

    parents = frozenset({"Global"})

    def __enter__(self) -> _GlobalOnly:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of one call of ``fn()`` (forward and, if ``fn`` runs it, backward).

    Args:
        fn: the work to count; called once with no arguments. Side effects happen (an
            optimiser step in ``fn`` really updates the weights).

    Returns:
        total floating-point operations, counted as 2 per multiply-add.
    """
    counter = FlopCounterMode(display=False)
    if hasattr(counter, "mod_tracker"):
        counter.mod_tracker = _GlobalOnly()
    with counter:
        fn()
    return int(counter.get_total_flops())
