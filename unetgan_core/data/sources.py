"""The data-source registry: every source of slices (phantom, real data sets) is named here.

A registered factory is called with the suite's ``[data]`` options and returns a
``DataSource``. Real-data loaders register themselves in their own modules; ``create_source``
imports those lazily so their registration has happened before the name is looked up.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from unetgan_core.data.sliceset import SliceSet
from unetgan_core.registry import Registry


@runtime_checkable
class DataSource(Protocol):
    """What every data source provides (see docs/architecture.md)."""

    synthetic: bool

    def vendors(self) -> list[str]: ...

    def subjects(self, vendor: str) -> list[str]: ...

    def load(self, vendor: str, subjects: Sequence[str]) -> SliceSet: ...

    def cache_key(self) -> dict: ...


DATA_SOURCES: Registry[Any] = Registry("data source")

# Modules whose import registers more sources; a checkout may not have them yet.
_LOADER_MODULES = (
    "unetgan_core.data.sunnybrook",
    "unetgan_core.data.mnms",
    "unetgan_core.data.acdc",
    "unetgan_core.data.manifest",
)


@DATA_SOURCES.register("phantom")
def _phantom(**options: Any) -> DataSource:
    from unetgan_core.data.phantom.source import PhantomSource

    return PhantomSource(**options)


def import_loaders() -> None:
    for module in _LOADER_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            # Only a missing loader module itself is tolerated, never a missing dependency of it.
            if exc.name != module:
                raise


def create_source(name: str, **options: Any) -> DataSource:
    """Build the data source registered as ``name`` with the suite's ``[data]`` options.

    Args:
        name: ``phantom``, ``sunnybrook``, ``mnms``, ``acdc`` or ``manifest``.
        **options: passed to the source's factory.

    Raises:
        UserError: an unknown name (listing the known ones) or a bad option.
    """
    import_loaders()
    return DATA_SOURCES.get(name)(**options)
