"""The order and names in which reports show a run's vendors and scenarios.

Vendors follow the suite (source first), scenarios the paper's Table 1 (clean, noisy, ...,
Unet-GAN). A scenario's printed name is its ``Scenario.label`` from
:mod:`unetgan_core.scenarios`, the one home of scenario names.
"""

from __future__ import annotations

from typing import Any

from unetgan_bench.reports.collect import Run
from unetgan_core.scenarios import SCENARIOS

SCENARIO_ORDER = ("clean", "noisy", "histmatch", "cyclegan", "unetgan")


def vendor_order(run: Run) -> list[str]:
    """Vendors as the suite lists them (source first), then any others alphabetically."""
    config = run.manifest.get("suite_config") or {}
    vendors = config.get("vendors") or {}
    listed = [vendors.get("source"), *(vendors.get("targets") or [])]
    seen = set()
    for frame in (run.segmentation, run.fgsm, run.corruption):
        if "vendor" in frame:
            seen.update(str(v) for v in frame["vendor"].dropna())
    roles = {}
    if "role" in run.segmentation:
        roles = dict(zip(run.segmentation["vendor"], run.segmentation["role"], strict=False))
    ordered = [v for v in listed if isinstance(v, str) and v in seen]
    rest = sorted(seen - set(ordered), key=lambda v: (roles.get(v) != "source", v))
    return ordered + rest


def scenario_order(names: Any) -> list[str]:
    """Scenarios in the paper's order (clean, noisy, ..., Unet-GAN), unknown ones after, sorted."""
    names = {str(n) for n in names}
    known = [s for s in SCENARIO_ORDER if s in names]
    return known + sorted(names - set(known))


def scenario_label(name: str) -> str:
    """A scenario's short title (``"unetgan"`` -> ``"Unet-GAN"``); a name not registered is shown as it is."""
    return (SCENARIOS.get(name).label or name) if name in SCENARIOS else name
