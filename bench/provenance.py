"""What outside code a suite measures or runs: its external models and plugin modules, as JSON-ready data
for ``manifest.json`` and the report."""

from __future__ import annotations

from typing import Any

from unetgan_bench.bench.registries import open_source
from unetgan_bench.bench.suite import Suite
from unetgan_core.plugins import entry_point_modules, plugin_versions


def suite_provenance(suite: Suite) -> dict[str, Any]:
    """Each ``[models.NAME]`` with its files, declared contracts and adaptation, and the plugins with versions.

    Every model is loaded (on the CPU) and probed as at validation, so the record describes the files that
    were actually read.

    Args:
        suite: a validated suite (its plugins are imported).

    Returns:
        ``{"models": {NAME: {"name", "format", "files": [{"role", "file", "path", "size_bytes", "sha256"}],
        "factory", "kwargs", "contracts", "adaptation", "feature_layers", "differentiable"}},
        "plugins": [{"module", "via", "distribution", "version"}]}``; ``adaptation`` is said for the suite's
        image size.
    """
    from unetgan_core.external import load_external

    models = {}
    if suite.models:
        size = getattr(open_source(suite, suite.path), "size_px", None)
        for name, spec in suite.models.items():
            segmenter = load_external(spec, suite.base_dir, name=name, probe_size=size or 64)
            models[name] = {**segmenter.provenance(), "adaptation": segmenter.adaptation(size)}
    modules = list(dict.fromkeys([*suite.suite.plugins, *entry_point_modules()]))
    return {"models": models, "plugins": plugin_versions(modules)}
