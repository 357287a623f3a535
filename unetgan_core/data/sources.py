"""The data-source registry: every source of slices (phantom, real data sets) is named here.

A registered factory is called with the suite's ``[data]`` options and returns a
``DataSource``. Real-data loaders register themselves in their own modules; ``create_source``
imports those lazily so their registration has happened before the name is looked up.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from unetgan_core.data.options import PhantomOptions
from unetgan_core.data.sliceset import SliceSet
from unetgan_core.errors import DataError
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


_phantom.OPTIONS = PhantomOptions  # the typed [data] table


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


def check_files(source: DataSource) -> int:
    """Open the header of every file ``source`` will read, so a bad one stops ``validate``, not a run.

    A source with files provides ``check_subject_files(subject) -> int`` (see ``data/filecheck.py``);
    the phantom has none and checks nothing. With the source's ``skip_bad`` on, a subject with a
    bad file is recorded in ``source.skipped`` (as ``load`` would) instead of raising.

    Returns:
        The number of files checked.

    Raises:
        DataError: a missing, unreadable or truncated file, named in the message.
    """
    parts = getattr(source, "parts", None)  # a MultiSource: check each source
    if parts:
        return sum(check_files(part) for part in parts.values())
    check = getattr(source, "check_subject_files", None)
    if check is None:
        return 0
    count = 0
    for vendor in source.vendors():
        for subject in source.subjects(vendor):
            try:
                count += check(subject)
            except DataError as exc:
                if not getattr(source, "skip_bad", False):
                    raise
                source.skipped.append((subject, str(exc)))
    return count
