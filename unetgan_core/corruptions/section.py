"""The ``[corruptions]`` suite section: which artefacts, severities, pipelines and images a suite measures."""

from __future__ import annotations

import dataclasses

from unetgan_core.corruptions.table import MAX_SEVERITY, SEVERITIES
from unetgan_core.schema import field

MAX_SEED = 2**31 - 1


@dataclasses.dataclass(frozen=True)
class CorruptionSection:
    corruptions: list[str] = field([], doc="corruptions to apply (see `unetgan-bench list`); [] = every registered one")
    severities: list[int] = field(
        list(SEVERITIES),
        doc=f"severities measured besides 0 (the uncorrupted reference, always measured), 1-{MAX_SEVERITY}",
        nonempty=True,
        ge=1,
        le=MAX_SEVERITY,
    )
    scenarios: list[str] = field(["clean"], doc="pipelines to measure (entries of [scenarios] run)", nonempty=True)
    reference: str = field(
        "clean", doc="pipeline the corruption error is normalised by (ImageNet-C's AlexNet; an entry of scenarios)"
    )
    vendors: list[str] = field([], doc="vendors to corrupt (default: source and targets)")
    n_images: int = field(16, doc="labelled test images corrupted per vendor", ge=1, le=100_000)
    seeds: list[int] = field([], doc="replicate seeds to measure (default: the first suite seed)", ge=0, le=MAX_SEED)
    seed: int = field(
        0, doc="seed of the corruptions' random draws (motion timing, noise, field shape)", ge=0, le=MAX_SEED
    )
