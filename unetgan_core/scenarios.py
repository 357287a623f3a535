"""The scenarios a suite can measure: which Unet, and which translation (if any) comes before it.

A scenario names the Unet training variant and the translator: None (segment target images as they are),
``"histmatch"`` (quantile matching to the source) or a dict of ``TranslatorConfig`` overrides applied on top of the
suite's ``[translator]`` table (a learned translator). The runner trains what a scenario needs and builds its
pipeline with ``build_pipeline``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from torch import nn

from unetgan_core.errors import UserError
from unetgan_core.histmatch import HistogramMatcher
from unetgan_core.pipelines import HistMatchPipeline, Pipeline, TranslatedPipeline, UnetPipeline
from unetgan_core.registry import Registry
from unetgan_core.training.augment import VARIANTS
from unetgan_core.training.translation import TranslatorConfig

HISTMATCH = "histmatch"


@dataclasses.dataclass(frozen=True)
class Scenario:
    """One way of segmenting target-vendor images.

    Args:
        name: registry name, used in suites and results.
        unet_variant: training variant of the source Unet (``clean``, ``noisy``, ``intensity_aug``, ``appearance_aug``).
        translator: None, ``"histmatch"``, or ``TranslatorConfig`` overrides (a dict; ``{}`` = the suite's
            settings, which default to the paper's Unet-GAN).
        description: one line for ``unetgan-bench list`` and reports.
        paper_column: the column of the paper's Table 1 this reproduces, or None.
        label: the short title of the scenario's column or legend entry in reports.
    """

    name: str
    unet_variant: str
    translator: None | str | dict[str, Any]
    description: str
    paper_column: str | None = None
    label: str = ""

    def __post_init__(self) -> None:
        if self.unet_variant not in VARIANTS:
            raise UserError(
                f"scenario {self.name}: unknown unet_variant {self.unet_variant!r}; known: {', '.join(VARIANTS.names())}"
            )
        if isinstance(self.translator, str) and self.translator != HISTMATCH:
            raise UserError(f"scenario {self.name}: translator must be None, {HISTMATCH!r} or a dict of settings")
        if isinstance(self.translator, dict):
            TranslatorConfig.from_dict(self.translator)  # rejects misspelt overrides at import time

    @property
    def learned_translator(self) -> bool:
        """Whether the scenario trains a CycleGAN-style translator."""
        return isinstance(self.translator, dict)

    def translator_config(self, base: TranslatorConfig) -> TranslatorConfig:
        """The suite's translator settings with this scenario's overrides applied.

        Args:
            base: the suite's ``[translator]`` settings.
        """
        if not self.learned_translator:
            raise UserError(f"scenario {self.name} trains no translator")
        return TranslatorConfig.from_dict({**_as_dict(base), **self.translator})


def _as_dict(cfg: TranslatorConfig) -> dict[str, Any]:
    return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}


SCENARIOS: Registry[Scenario] = Registry("scenario")


def _register(scenario: Scenario) -> None:
    SCENARIOS.add(scenario.name, scenario)


CYCLEGAN = {"lambda_unet": 0.0, "lambda_ssim": 0.0, "lambda_cycle": 10.0}

_register(
    Scenario(
        "clean", "clean", None, "Unet trained on the clean source, applied directly", "Clean Unet", label="Clean Unet"
    )
)
_register(
    Scenario(
        "noisy",
        "noisy",
        None,
        "Unet trained on source images with Gaussian noise (the paper's)",
        "Noisy Unet",
        label="Noisy Unet",
    )
)
_register(
    Scenario(
        "intensity_aug",
        "intensity_aug",
        None,
        "Unet trained with gamma, bias-field and contrast augmentation",
        label="Intensity-aug. Unet",
    )
)
_register(
    Scenario(
        "appearance_aug",
        "appearance_aug",
        None,
        "Unet trained with broad appearance augmentation (wide gamma, bias field, contrast, blur, noise; BigAug-like)",
        label="Appearance-aug. Unet",
    )
)
_register(
    Scenario(
        HISTMATCH,
        "clean",
        HISTMATCH,
        "target images histogram-matched to the source, clean Unet",
        label="Histogram matching",
    )
)
_register(
    Scenario(
        "cyclegan", "clean", CYCLEGAN, "plain CycleGAN translation (cycle loss only), clean Unet", label="CycleGAN"
    )
)
_register(
    Scenario(
        "unetgan", "clean", {}, "Unet-GAN translation with the paper's loss, clean Unet", "Unet-GAN", label="Unet-GAN"
    )
)
_register(
    Scenario(
        "unetgan_nofeat",
        "clean",
        {"lambda_unet": 0.0},
        "Unet-GAN without the Unet feature loss",
        label="Unet-GAN, no feature loss",
    )
)
_register(
    Scenario(
        "unetgan_nossim",
        "clean",
        {"lambda_ssim": 0.0},
        "Unet-GAN without the SSIM loss",
        label="Unet-GAN, no SSIM loss",
    )
)
_register(
    Scenario(
        "unetgan_cyclepair",
        "clean",
        {"unet_pairing": "cycle", "ssim_pairing": "cycle"},
        "Unet-GAN with feature and SSIM losses on cycle-reconstructed pairs",
        label="Unet-GAN, cycle pairs",
    )
)
_register(
    Scenario(
        "unetgan_cycle_l1",
        "clean",
        {"lambda_cycle": 10.0, "cycle_loss": "l1"},
        "Unet-GAN plus an L1 cycle loss (weight 10)",
        label="Unet-GAN + L1 cycle",
    )
)
_register(
    Scenario(
        "unetgan_cycle_l2",
        "clean",
        {"lambda_cycle": 10.0, "cycle_loss": "l2"},
        "Unet-GAN plus an L2 cycle loss (weight 10)",
        label="Unet-GAN + L2 cycle",
    )
)


def build_pipeline(
    scenario: Scenario | str,
    unet: nn.Module,
    generator: nn.Module | None = None,
    matcher: HistogramMatcher | None = None,
) -> Pipeline:
    """The pipeline that measures ``scenario``.

    Args:
        scenario: a ``Scenario`` or its registered name.
        unet: the source Unet trained with ``scenario.unet_variant``.
        generator: the trained ``G_S`` (needed when the scenario learns a translator).
        matcher: the fitted histogram matcher (needed for ``histmatch``).
    """
    sc = SCENARIOS.get(scenario) if isinstance(scenario, str) else scenario
    if sc.translator is None:
        return UnetPipeline(unet, name=sc.name)
    if sc.translator == HISTMATCH:
        if matcher is None:
            raise UserError(f"scenario {sc.name} needs a fitted histogram matcher")
        return HistMatchPipeline(matcher, unet, name=sc.name)
    if generator is None:
        raise UserError(f"scenario {sc.name} needs a trained translator generator")
    return TranslatedPipeline(generator, unet, name=sc.name)
