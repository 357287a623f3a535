"""What outside code a suite measures or runs: its external models and plugin modules, as JSON-ready data
for ``manifest.json`` and the report."""

from __future__ import annotations

from typing import Any

from unetgan_bench.bench.registries import open_source
from unetgan_bench.bench.suite import Suite
from unetgan_core.plugins import entry_point_modules, plugin_versions


def suite_provenance(suite: Suite) -> dict[str, Any]:
    """Each ``[models.NAME]`` with its files, declared contracts and adaptation, and the plugins with versions.

    The models are not loaded again (validation has loaded and probed each one): their files are named by
    size and SHA-256 as they are on disk, which is what the plan's ``external`` task keys hash too.

    Args:
        suite: a validated suite (its plugins are imported).

    Returns:
        ``{"models": {NAME: {"name", "format", "files": [{"role", "file", "path", "size_bytes", "sha256"}],
        "factory", "kwargs", "contracts", "adaptation", "feature_layers", "differentiable"}},
        "plugins": [{"module", "via", "distribution", "version"}]}``; ``adaptation`` is said for the suite's
        image size.
    """
    from unetgan_core.external.loaders import NO_GRADIENT_FORMATS
    from unetgan_core.external.provenance import declared_files
    from unetgan_core.external.segmenter import external_provenance

    models = {}
    if suite.models:
        size = getattr(open_source(suite, suite.path), "size_px", None)
        for name, spec in suite.models.items():
            files = declared_files(spec, suite.base_dir)
            models[name] = external_provenance(name, spec, files, spec.format not in NO_GRADIENT_FORMATS, size)
    modules = list(dict.fromkeys([*suite.suite.plugins, *entry_point_modules()]))
    return {"models": models, "plugins": plugin_versions(modules)}
