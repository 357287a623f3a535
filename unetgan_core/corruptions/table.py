"""The corruption registry and its one severity table: each corruption, its physical parameter, five levels.

A corruption is a pure function of (images, severity, seed, pixel size): the images are a ``[N, H, W]``
stack in [0, 1] (phantom or real, after the suite's normalisation), the result is the same stack with
the artefact, normalised again by ``normalise_images`` as a scanner image would be before it reaches
the network. Severity 0 is the identity; severities 1-5 take the parameter values of
:attr:`Corruption.levels`, in physical units (mm, dB, a ratio), so the table reads the same for any
data set. Each image draws its randomness from its own seed (derived from the cell seed, the
corruption's name and the image's position), so a result does not depend on the other images of the
batch, and the same random draw serves every severity: only the physical parameter changes with it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from unetgan_core.data.normalise import normalise_images
from unetgan_core.errors import DataError, UserError
from unetgan_core.hashing import derive_seed
from unetgan_core.registry import Registry

SEVERITIES = (1, 2, 3, 4, 5)
MAX_SEVERITY = SEVERITIES[-1]

# apply(images float64 [N, H, W] in [0, 1], value, rngs (one per image), pixel_mm) -> float [N, H, W] >= 0
ApplyFn = Callable[[np.ndarray, float, list[np.random.Generator], float], np.ndarray]


@dataclasses.dataclass(frozen=True)
class Corruption:
    """One artefact and its severity scale.

    Args:
        name: registry name (``"motion"``).
        parameter: what the levels measure, e.g. ``"displacement"``.
        unit: the parameter's unit, e.g. ``"mm"``.
        levels: the parameter at severities 1-5, in ``unit``; severity grows along the tuple.
        domain: ``"k-space"`` (simulated on the image's spectrum) or ``"image"``.
        description: one sentence on how the artefact is simulated.
        apply: the simulation (see ``ApplyFn``); it never sees labels.
    """

    name: str
    parameter: str
    unit: str
    levels: tuple[float, ...]
    domain: str
    description: str
    apply: ApplyFn = dataclasses.field(repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.levels) != MAX_SEVERITY:
            raise ValueError(f"corruption {self.name!r}: needs {MAX_SEVERITY} levels, got {len(self.levels)}")
        if self.domain not in ("k-space", "image"):
            raise ValueError(f"corruption {self.name!r}: domain must be 'k-space' or 'image', got {self.domain!r}")

    def level(self, severity: int) -> float:
        """The physical parameter at ``severity`` (1-5)."""
        return float(self.levels[check_severity(severity) - 1])


CORRUPTIONS: Registry[Corruption] = Registry("corruption")


def register(corruption: Corruption) -> Corruption:
    """Add ``corruption`` to :data:`CORRUPTIONS` under its name (a taken name is an error)."""
    CORRUPTIONS.add(corruption.name, corruption)
    return corruption


def check_severity(severity: int) -> int:
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) or not 0 <= severity <= MAX_SEVERITY:
        raise UserError(f"corruption severity must be an integer 0-{MAX_SEVERITY}, got {severity!r}")
    return int(severity)


def image_rngs(seed: int, name: str, n: int) -> list[np.random.Generator]:
    """One generator per image, from the cell seed, the corruption and the image's position."""
    return [np.random.default_rng(derive_seed(seed, "corruption", name, i)) for i in range(n)]


def corrupt(name: str, images: np.ndarray, severity: int, seed: int, pixel_mm: float) -> np.ndarray:
    """``images`` with corruption ``name`` at ``severity``, normalised to [0, 1] again.

    Args:
        name: a registered corruption (``CORRUPTIONS.names()``).
        images: ``[N, H, W]`` intensities in [0, 1] (a ``SliceSet``'s images).
        severity: 0 (the identity: a copy of ``images``) to 5.
        seed: fixes every random draw (motion timing and direction, noise, field shape, ...).
        pixel_mm: in-plane pixel size in mm (turns mm levels into pixels).

    Returns:
        float32 ``[N, H, W]``, real-valued and in [0, 1].

    Raises:
        UserError: an unknown name or a severity outside 0-5.
        DataError: images that are not a finite ``[N, H, W]`` stack, or a pixel size that is not positive.

    Example:
        >>> x = np.random.default_rng(0).random((2, 32, 32), dtype=np.float32)
        >>> corrupt("blur", x, 3, seed=0, pixel_mm=2.0).shape
        (2, 32, 32)
    """
    corruption = CORRUPTIONS.get(name)
    severity = check_severity(severity)
    x = np.asarray(images)
    if x.ndim != 3 or not np.isfinite(x).all():
        raise DataError(f"corruption {name!r}: expected finite images [N, H, W], got shape {x.shape}")
    if not (np.isfinite(pixel_mm) and pixel_mm > 0):
        raise DataError(f"corruption {name!r}: pixel size must be a positive number of mm, got {pixel_mm!r}")
    if severity == 0 or len(x) == 0:
        return x.astype(np.float32, copy=True)
    out = corruption.apply(x.astype(np.float64), corruption.level(severity), image_rngs(seed, name, len(x)), pixel_mm)
    return normalise_images(out)


def severity_table() -> list[dict[str, str]]:
    """The severity table as rows of text (name, domain, parameter with unit, levels 1-5, description),
    for ``unetgan-bench list``, docs and the report."""
    rows = []
    for name, c in CORRUPTIONS.items():
        rows.append(
            {
                "corruption": name,
                "domain": c.domain,
                "parameter": f"{c.parameter} ({c.unit})",
                **{f"severity {s}": f"{c.level(s):g}" for s in SEVERITIES},
                "simulation": c.description,
            }
        )
    return rows
