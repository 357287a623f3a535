"""Post-processing of predicted label maps before they are scored (``[metrics] postprocess``).

Label maps hold 0 = background, 1 = LV blood pool, 2 = LV myocardium (``metrics``); any other label
(3 = RV) counts as background when scored and is left alone here.

``largest_component``, the usual clean-up in cardiac segmentation (one left ventricle per slice):

1. the left ventricle (blood pool and myocardium together) keeps only its largest 8-connected component;
   every other blood-pool or myocardium pixel becomes background;
2. inside that component the blood pool keeps its largest 8-connected component; its other islands become
   myocardium. Such an island always touches the kept myocardium: it is part of a connected ventricle but not
   connected to the rest of the blood pool, so its neighbours in the ventricle are myocardium pixels. Relabelling
   it keeps the ventricle's outline (the epicardium) as predicted.

Ties between equally large components go to the first in scan order (``scipy.ndimage.label``'s numbering), so
the result is deterministic. An image without blood pool or myocardium is returned unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage

from unetgan_core.metrics import BLOOD_POOL, MYOCARDIUM

EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def _largest(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected component of a 2D boolean mask (empty for an empty mask)."""
    labelled, n = ndimage.label(mask, structure=EIGHT_CONNECTED)
    if n <= 1:
        return mask.copy()
    sizes = np.bincount(labelled.ravel(), minlength=n + 1)[1:]
    return labelled == 1 + int(np.argmax(sizes))


def largest_component(labels: np.ndarray) -> np.ndarray:
    """``labels`` (``[N, H, W]`` or ``[H, W]`` integer label maps) with one connected left ventricle per image.

    Returns a new array of the same shape and dtype (module docstring: the rule).
    """
    labels = np.asarray(labels)
    out = labels.copy()
    for image in out.reshape(-1, *labels.shape[-2:]):  # views into ``out``
        ventricle = (image == BLOOD_POOL) | (image == MYOCARDIUM)
        if not ventricle.any():
            continue
        kept = _largest(ventricle)
        image[ventricle & ~kept] = 0
        pool = image == BLOOD_POOL
        image[pool & ~_largest(pool)] = MYOCARDIUM
    return out


def unchanged(labels: np.ndarray) -> np.ndarray:
    return labels


POSTPROCESS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "none": unchanged,
    "largest_component": largest_component,
}


def postprocess(labels: np.ndarray, name: str) -> np.ndarray:
    """``labels`` post-processed by the rule ``name`` (a key of ``POSTPROCESS``; the suite validates it)."""
    return POSTPROCESS[name](labels)
