"""Natural corruptions (MRI-C): MRI artefacts at five physical severities, for a robustness table beside FGSM.

``CORRUPTIONS`` holds each artefact with its parameter and levels (``table.Corruption``);
``corrupt(name, images, severity, seed, pixel_mm)`` applies one. Importing this package registers the
built-in corruptions (``kspace``: motion, ghosting, spike, gibbs; ``image``: noise, bias_field, blur, gamma).
"""

from unetgan_core.corruptions import image, kspace  # noqa: F401  (registers the built-in corruptions)
from unetgan_core.corruptions.table import (
    CORRUPTIONS,
    MAX_SEVERITY,
    SEVERITIES,
    Corruption,
    corrupt,
    register,
    severity_table,
)

__all__ = ["CORRUPTIONS", "MAX_SEVERITY", "SEVERITIES", "Corruption", "corrupt", "register", "severity_table"]
