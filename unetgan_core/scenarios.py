"""The scenarios a suite can measure: which Unet, and which translation (if any) comes before it.

A scenario names the Unet training variant and the translator: None (segment target images as they are), the
name of a fitted adaptation in ``ADAPTATIONS`` (e.g. ``"histmatch"``, quantile matching to the source) or a dict of
``TranslatorConfig`` overrides applied on top of the suite's ``[translator]`` table (a learned translator).

A fitted adaptation is ``fit(source_train_images) -> transform`` where ``transform.transform(images)`` maps target
images ``[N, H, W]`` in [0, 1] to the source's look with numpy; its pipeline segments the transformed images and
is attacked straight through the transform (``HistMatchPipeline``). Plugins add their own
(``unetgan_core.plugins``). The scenario owns what follows from that choice: its
translator settings (``translator_config``), the inputs its pipeline needs besides the Unet (``adapter``, plain data
that goes into a cell's key) and the pipeline itself (``build_pipeline``). The plan and the runner ask the scenario;
nothing else branches on the kind of translation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
from torch import nn

from unetgan_core.errors import UserError
from unetgan_core.external.segmenter import SegmenterModule
from unetgan_core.histmatch import HistogramMatcher
from unetgan_core.names import check_name
from unetgan_core.pipelines import HistMatchPipeline, Pipeline, TranslatedPipeline, UnetPipeline
from unetgan_core.registry import Registry
from unetgan_core.schema import load_table
from unetgan_core.training.augment import VARIANTS
from unetgan_core.training.segmentation import SegTrainConfig
from unetgan_core.training.translation import TranslatorConfig

HISTMATCH = "histmatch"

# Fitted adaptations: name -> fit(source training images [N, H, W]) -> an object with transform(images).
ADAPTATIONS: Registry[Callable[[np.ndarray], Any]] = Registry("adaptation method")
ADAPTATIONS.add(HISTMATCH, HistogramMatcher.fit)


@dataclasses.dataclass(frozen=True)
class Scenario:
    """One way of segmenting target-vendor images.

    Args:
        name: registry name, used in suites and results (a safe name: it becomes part of file names).
        unet_variant: training variant of the source Unet (``clean``, ``noisy``, ``intensity_aug``, ``appearance_aug``).
        translator: None, a fitted adaptation's name (``"histmatch"``), or ``TranslatorConfig`` overrides (a dict; ``{}`` = the suite's
            settings, which default to the paper's Unet-GAN).
        description: one line for ``unetgan-bench list`` and reports.
        paper_column: the column of the paper's Table 1 this reproduces, or None.
        label: the short title of the scenario's column or legend entry in reports.
        unet: ``SegTrainConfig`` overrides applied on top of the suite's ``[unet]`` table ({} = the suite's).
        settings: the swept settings this scenario stands for (``"translator.lambda_unet" -> 15.0``), copied into
            its rows; {} outside a sweep.
        seed_name: the name whose seeds its translators draw ("" = its own): a suite's variants use their base's,
            so a variant differs from its base only in the settings it overrides (paired by seed).
    """

    name: str
    unet_variant: str
    translator: None | str | dict[str, Any]
    description: str
    paper_column: str | None = None
    label: str = ""
    unet: dict[str, Any] = dataclasses.field(default_factory=dict)
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)
    seed_name: str = ""

    def __post_init__(self) -> None:
        check_name("scenario name", self.name, "scenario")
        if self.unet_variant not in VARIANTS:
            raise UserError(
                f"scenario {self.name}: unknown unet_variant {self.unet_variant!r}; known: {', '.join(VARIANTS.names())}"
            )
        if isinstance(self.translator, str) and self.translator not in ADAPTATIONS:
            raise UserError(
                f"scenario {self.name}: translator must be None, a fitted adaptation "
                f"({', '.join(ADAPTATIONS.names())}) or a dict of settings"
            )
        if isinstance(self.translator, dict):
            self._overrides()  # rejects misspelt overrides at import time
        if "variant" in self.unet:
            raise UserError(f"scenario {self.name}: unet: set the training variant as unet_variant, not unet.variant")
        load_table(SegTrainConfig, self.unet, f"scenario {self.name}: unet")

    @property
    def learned_translator(self) -> bool:
        """Whether the scenario trains a CycleGAN-style translator."""
        return isinstance(self.translator, dict)

    def _overrides(self) -> dict[str, Any]:
        """The translator overrides, type-checked and converted by the schema loader."""
        parsed = load_table(TranslatorConfig, self.translator, f"scenario {self.name}: translator")
        return {key: getattr(parsed, key) for key in self.translator}

    def translator_config(self, base: TranslatorConfig) -> TranslatorConfig:
        """The suite's translator settings with this scenario's overrides applied.

        Args:
            base: the suite's ``[translator]`` settings.
        """
        if not self.learned_translator:
            raise UserError(f"scenario {self.name} trains no translator")
        return dataclasses.replace(base, **self._overrides())

    def train_config(self, base: SegTrainConfig) -> SegTrainConfig:
        """The suite's Unet settings with this scenario's variant and ``unet`` overrides applied.

        Args:
            base: the suite's ``[unet]`` settings.
        """
        parsed = load_table(SegTrainConfig, self.unet, f"scenario {self.name}: unet")
        overrides = {key: getattr(parsed, key) for key in self.unet}
        return dataclasses.replace(base, **overrides, variant=self.unet_variant)

    def adapter(self, source_train: str, translator: str | None = None) -> dict[str, str] | None:
        """What the pipeline reads besides the Unet, as plain data for a cell's config and key.

        Args:
            source_train: key of the source training slices (the histogram matcher is fitted on them).
            translator: key of the trained translator (learned translators only).

        Returns:
            None (the Unet alone), ``{"kind": <adaptation>, "fit": source_train}`` (e.g. ``"histmatch"``) or
            ``{"kind": "translator", "key": translator}``.
        """
        if self.translator is None:
            return None
        if isinstance(self.translator, str):
            return {"kind": self.translator, "fit": source_train}
        if translator is None:
            raise UserError(f"scenario {self.name} needs the key of its trained translator")
        return {"kind": "translator", "key": translator}

    def build_pipeline(
        self, unet: nn.Module, generator: nn.Module | None = None, fit_images: np.ndarray | None = None
    ) -> Pipeline:
        """The pipeline that measures this scenario.

        Args:
            unet: the source Unet trained with ``unet_variant``, or an external model as a ``SegmenterModule``
                (a model without gradients makes the pipeline ``has_gradient = False``, with its attack note).
            generator: the trained ``G_S`` (needed when the scenario learns a translator).
            fit_images: source training images ``[N, H, W]`` in [0, 1] (needed for a fitted adaptation).
        """
        pipeline = self._pipeline(unet, generator, fit_images)
        if isinstance(unet, SegmenterModule) and not unet.segmenter.has_gradient:
            pipeline.has_gradient = pipeline.differentiable = False
            pipeline.attack_note = unet.segmenter.attack_note
        return pipeline

    def _pipeline(self, unet: nn.Module, generator: nn.Module | None, fit_images: np.ndarray | None) -> Pipeline:
        if self.translator is None:
            return UnetPipeline(unet, name=self.name)
        if isinstance(self.translator, str):
            if fit_images is None:
                raise UserError(f"scenario {self.name} needs source images to fit its {self.translator} adaptation")
            return HistMatchPipeline(ADAPTATIONS.get(self.translator)(fit_images), unet, name=self.name)
        if generator is None:
            raise UserError(f"scenario {self.name} needs a trained translator generator")
        return TranslatedPipeline(generator, unet, name=self.name)


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
