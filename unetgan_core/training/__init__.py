"""Training loops: the source Unet (supervised), the vendor translators (unpaired) and checkpoint selection.

- ``train_segmenter(train, val, SegTrainConfig, seed)``: the LV-Unet, variants ``clean``, ``noisy``,
  ``intensity_aug``, ``appearance_aug``.
- ``train_translator(source, target, unet, TranslatorConfig, seed)``: CycleGAN / Unet-GAN, returns ``G_S``.
- ``SELECTORS``: how a translator checkpoint is chosen (``unlabelled`` or ``oracle``).
- ``training_status(history)``: ``("ok", "")`` or ``("failed_training", reason)`` for a trained Unet or
  translator, from the ``health`` record its trainer stored in the history.
"""

from unetgan_core.training.augment import VARIANTS, AugmentSettings, augment_batch, spatial_augment
from unetgan_core.training.health import training_status
from unetgan_core.training.segmentation import SegTrainConfig, train_segmenter
from unetgan_core.training.selection import SELECTORS
from unetgan_core.training.translation import TranslatorConfig, build_translator_models, train_translator

__all__ = [
    "SELECTORS",
    "VARIANTS",
    "AugmentSettings",
    "SegTrainConfig",
    "TranslatorConfig",
    "augment_batch",
    "build_translator_models",
    "train_segmenter",
    "spatial_augment",
    "train_translator",
    "training_status",
]
