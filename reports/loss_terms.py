"""How large each term of a translator's objective was: GAN, Unet feature, SSIM and cycle loss.

Read from the run folder's loss-term files (``reports.rundir.read_loss_terms``, copied there by the runner from
each translator's checkpoint records). Per (scenario, target vendor, term), averaged over seeds:

- ``train``: the term's mean over the last training interval (the steps before the final checkpoint), unweighted;
  only terms with a weight above 0 are computed in training, so the others are NaN here.
- ``weighted``: ``weight * train``, and ``share``: that over the whole generator objective (``loss_g``) of the
  same interval, i.e. how much of what the optimiser minimised the term was.
- ``probe_selected`` and ``probe_final``: the unweighted term on fixed held-out images at the selected and at the
  final checkpoint; measured for every term, weighted or not (so a run without the feature loss shows how far the
  Unet's features of a translation drift from the original's). NaN for translators trained before these
  records existed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from unetgan_bench.reports import rundir
from unetgan_bench.reports.collect import Run
from unetgan_bench.reports.ordering import scenario_order, vendor_order

TERMS = ("gan", "unet", "ssim", "cycle")
TERM_LABELS = {"gan": "GAN", "unet": "Unet feature", "ssim": "SSIM", "cycle": "cycle"}
LOSS_TERM_COLUMNS = (
    "scenario",
    "vendor",
    "term",
    "weight",
    "train",
    "weighted",
    "share",
    "probe_selected",
    "probe_final",
    "n_seeds",
    "selected_steps",
)


def _value(check: dict | None, key: str) -> float:
    value = None if check is None else check.get(key)
    return float("nan") if value is None else float(value)


def _mean(values: list[float]) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def loss_term_table(run: Run) -> pd.DataFrame:
    """One row per (scenario, target vendor, term) with columns :data:`LOSS_TERM_COLUMNS` (module docstring).

    ``selected_steps`` lists the selected checkpoint's step of each seed, in seed order.

    Raises:
        DataError: a loss-term file is malformed.
    """
    records = rundir.read_loss_terms(run.path)
    if not records:
        return pd.DataFrame(columns=list(LOSS_TERM_COLUMNS))
    groups: dict[tuple[str, str], list[dict]] = {}
    for record in sorted(records, key=lambda r: r["seed"]):
        groups.setdefault((record["scenario"], record["vendor"]), []).append(record)
    vendors = {v: i for i, v in enumerate(vendor_order(run))}
    scenarios = {s: i for i, s in enumerate(scenario_order({s for s, _ in groups}))}
    rows = []
    for (scenario, vendor), seeds in sorted(
        groups.items(), key=lambda kv: (scenarios[kv[0][0]], vendors.get(kv[0][1], len(vendors)), kv[0][1])
    ):
        finals = [r["checks"][-1] if r["checks"] else None for r in seeds]
        selected = [next((c for c in r["checks"] if c["step"] == r["best_step"]), None) for r in seeds]
        for term in TERMS:
            weight = float(seeds[0]["weights"].get(term, 0.0))
            train = [_value(c, f"loss_{term}") for c in finals]
            total = [_value(c, "loss_g") for c in finals]
            rows.append(
                {
                    "scenario": scenario,
                    "vendor": vendor,
                    "term": term,
                    "weight": weight,
                    "train": _mean(train),
                    "weighted": weight * _mean(train),
                    "share": _mean([weight * t / g if g else float("nan") for t, g in zip(train, total, strict=True)]),
                    "probe_selected": _mean([_value(c, f"probe_{term}") for c in selected]),
                    "probe_final": _mean([_value(c, f"probe_{term}") for c in finals]),
                    "n_seeds": len(seeds),
                    "selected_steps": ", ".join(str(r["best_step"]) for r in seeds),
                }
            )
    return pd.DataFrame(rows, columns=list(LOSS_TERM_COLUMNS))
