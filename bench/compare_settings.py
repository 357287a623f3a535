"""The ``[compare]`` suite section: the one home of the comparison's thresholds and their defaults.

``bench.suite`` loads it from a suite file; ``bench.compare`` and the command line take their
defaults from :data:`DEFAULTS`, so a default lives here only.
"""

from __future__ import annotations

import dataclasses

from unetgan_bench.bench.schema import field


@dataclasses.dataclass(frozen=True)
class CompareSection:
    dice_drop: float = field(
        0.005,
        doc="largest allowed Dice drop per row when both runs share code and numerics (then runs are deterministic)",
        ge=0.0,
        le=1.0,
    )
    dice_margin: float = field(
        0.01,
        doc="noise-aware gate: a cell regressed only when the CI of its paired Dice difference lies below -dice_margin",
        ge=0.0,
        le=1.0,
    )
    throughput_ratio: float = field(0.8, doc="smallest allowed new/base images-per-second ratio", gt=0.0, le=1000.0)
    dice_drop_other_hardware: float = field(
        0.05,
        doc="largest allowed Dice drop per row of a cell without a noise estimate (no per-image values, one FGSM seed) when the runs are not deterministic relative to each other (other code, or other numerics: device model, torch's CPU kernels or torch build)",
        ge=0.0,
        le=1.0,
    )


DEFAULTS = CompareSection()
