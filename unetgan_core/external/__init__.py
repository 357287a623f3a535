"""External segmentation networks (TorchScript, ONNX, or a Python factory) audited by the suite.

``ExternalModelSpec`` is a suite's ``[models.NAME]`` table; ``load_external`` turns it into an
``ExternalSegmenter`` (a ``Pipeline``). See ``docs/architecture.md`` and
``examples/audit_external_model/``.
"""

from unetgan_core.external.loaders import NotDifferentiable
from unetgan_core.external.segmenter import ExternalSegmenter, load_external
from unetgan_core.external.spec import ExternalModelSpec

__all__ = ["ExternalModelSpec", "ExternalSegmenter", "NotDifferentiable", "load_external"]
