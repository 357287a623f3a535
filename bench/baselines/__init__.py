"""Committed baseline runs for the CI regression gate, shipped as package data."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def smoke_baseline() -> Path:
    """The run folder of the committed ``smoke`` baseline (``unetgan-bench compare`` takes it as BASE)."""
    return Path(str(resources.files(__name__) / "smoke"))
