"""Deterministic train/validation/test splits by subject (never by slice)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from unetgan_core.errors import UserError
from unetgan_core.hashing import derive_seed


def _sizes(n: int, spec: Mapping[str, int | float]) -> dict[str, int]:
    values = list(spec.values())
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        if any(v < 0 for v in values):
            raise UserError(f"split counts must be >= 0, got {dict(spec)}")
        if sum(values) > n:
            raise UserError(f"split counts {dict(spec)} add up to {sum(values)} but there are only {n} subjects")
        return dict(spec)
    if all(isinstance(v, float) for v in values):
        if any(not math.isfinite(v) or v < 0 or v > 1 for v in values):
            raise UserError(f"split fractions must be within 0..1, got {dict(spec)}")
        total = sum(values)
        if total > 1.0 + 1e-9:
            raise UserError(f"split fractions {dict(spec)} add up to {total:g} > 1")
        exact = {k: v * n for k, v in spec.items()}
        sizes = {k: int(math.floor(x + 1e-9)) for k, x in exact.items()}
        if abs(total - 1.0) <= 1e-9:
            # Fractions that cover everything hand out the leftover subjects by largest
            # remainder (ties: the order given), so every subject lands in a split.
            order = sorted(exact, key=lambda k: -(exact[k] - sizes[k]))
            for k in order[: n - sum(sizes.values())]:
                sizes[k] += 1
        return sizes
    raise UserError(f"split sizes must be all integer counts or all fractions (floats), got {dict(spec)}")


def split_subjects(
    subjects: Sequence[str], counts_or_fractions: Mapping[str, int | float], seed: int
) -> dict[str, list[str]]:
    """Split subject ids into disjoint named groups, deterministically.

    Args:
        subjects: distinct subject ids (order does not matter: they are sorted first).
        counts_or_fractions: split name -> number of subjects (all ints) or fraction of them
            (all floats, adding up to at most 1). Fractions adding up to 1 assign every
            subject (largest remainder); e.g. 44 subjects with ``{"train": 0.8, "test": 0.2}``
            give 35 and 9, as in the paper.
        seed: the split's seed (any int); the same seed and subjects give the same split.

    Returns:
        split name -> sorted subject ids, in the order the names were given.

    Raises:
        UserError: on duplicates, no splits, mixed or negative sizes, or too many subjects asked.
    """
    if not counts_or_fractions:
        raise UserError("split_subjects needs at least one split name")
    ids = sorted(str(s) for s in subjects)
    if len(set(ids)) != len(ids):
        dup = next(a for a, b in zip(ids, ids[1:], strict=False) if a == b)
        raise UserError(f"subject {dup!r} appears more than once in the list to split")
    sizes = _sizes(len(ids), counts_or_fractions)
    order = np.random.default_rng(derive_seed("split_subjects", seed)).permutation(len(ids))
    out, start = {}, 0
    for name, size in sizes.items():
        out[name] = sorted(ids[i] for i in order[start : start + size])
        start += size
    return out
