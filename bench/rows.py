"""Self-describing results rows: the one place a row is put together.

Every row carries, besides its cell's key fields and metrics, the schema version, the code it
was measured with (commit, dirty flag, package version), the machine (``manifest.machine``),
and ``config``: the resolved settings that determine the cell. In ``config`` every reference to
another task (a trained Unet or translator) or to a data split is replaced by what it stands for,
with the hash kept as ``id``, so a row read alone says what it measured.
"""

from __future__ import annotations

import dataclasses
from importlib import metadata
from typing import Any

from unetgan_bench.bench import manifest
from unetgan_bench.bench.plan import Plan, Task
from unetgan_bench.reports import rundir
from unetgan_core.errors import DataError


@dataclasses.dataclass(frozen=True)
class Provenance:
    """The code and machine that measure a run's rows.

    Args:
        commit: the git commit, or None outside a git checkout.
        dirty: whether tracked files had uncommitted changes (None outside a checkout).
        package_version: the installed ``unetgan-bench`` version, or None.
        machine: ``manifest.machine(device)``.
    """

    commit: str | None
    dirty: bool | None
    package_version: str | None
    machine: dict[str, Any]

    @classmethod
    def current(cls, device: str) -> Provenance:
        """The code in this checkout and this machine, measuring on ``device``."""
        commit, dirty = manifest.git_state()
        try:
            version = metadata.version("unetgan-bench")
        except metadata.PackageNotFoundError:
            version = None
        return cls(commit, dirty, version, manifest.machine(device))

    def fields(self) -> dict[str, Any]:
        """The row (and manifest) fields: commit, dirty, package_version, machine."""
        return {
            "commit": self.commit,
            "dirty": self.dirty,
            "package_version": self.package_version,
            "machine": dict(self.machine),
        }

    def describe(self) -> str:
        """The code state in words, e.g. ``commit 0123abcd (dirty)``."""
        return describe_commit(self.commit, self.dirty)


def describe_commit(commit: str | None, dirty: bool | None) -> str:
    """``commit 0123abcd``, with `` (dirty)`` for uncommitted changes; ``an unrecorded commit`` for None."""
    if commit is None:
        return "an unrecorded commit"
    return f"commit {commit[:12]}" + (" (dirty)" if dirty else "")


def resolved_config(plan: Plan, task: Task) -> dict[str, Any]:
    """The settings that determine ``task``'s output, with task and data references resolved.

    Args:
        plan: the run's plan (its tasks and data splits).
        task: a measured cell.

    Returns:
        ``task.config`` in which a string that is another task's key becomes
        ``{"id": key, **that task's resolved config}`` and a data key becomes
        ``{"id": key, "vendor", "split", "subjects"}``; plus ``data_source``, the settings of
        the data source the splits are drawn from (with several sources, the one the cell's vendor
        comes from: its name in the suite, its settings and the preprocessing all sources share).
    """
    tasks = {t.key: t for t in plan.tasks}
    data = {ref.key: ref for ref in plan.data.values()}

    def resolve(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: resolve(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [resolve(v) for v in value]
        if isinstance(value, str) and value in tasks and value != task.key:
            return {"id": value, **resolve(tasks[value].config)}
        if isinstance(value, str) and value in data:
            ref = data[value]
            return {"id": value, "vendor": ref.vendor, "split": ref.split, "subjects": list(ref.subjects)}
        return value

    source = plan.vendor_sources.get(task.config.get("vendor"), plan.source_key)
    return {**resolve(task.config), "data_source": source}


def build_row(
    task: Task,
    suite: str,
    device: str,
    config: dict[str, Any],
    provenance: Provenance,
    fields: dict[str, Any],
    metrics: dict[str, Any],
) -> dict[str, Any]:
    """One results row of the cell ``task``, checked against the schema the reader applies.

    Args:
        task: the measured cell.
        suite: the suite's name.
        device: the torch device measured on.
        config: :func:`resolved_config` of the cell.
        provenance: the run's code and machine.
        fields: the row's key fields and other settings (scenario, vendor, seed, ... or the
            throughput settings), by their names in ``reports.rundir.FIELDS``.
        metrics: measured numbers (or None) by name.

    Raises:
        ValueError: the row does not fit the schema (a bug in the caller, not bad input).
    """
    row = {
        "schema_version": rundir.SCHEMA_VERSION,
        "kind": task.kind,
        "cell_id": task.key,
        "suite": suite,
        "device": device,
        **fields,
        "metrics": metrics,
        "config": config,
        **provenance.fields(),
    }
    try:
        rundir.check_row(row, f"{task.kind} row of cell {task.key}")
    except DataError as exc:
        raise ValueError(str(exc)) from None
    return row
