"""A suite's ``[data]``: one data source, or several named ones, checked against their typed options.

One source (every built-in suite)::

    [data]
    source = "phantom"
    size_px = 64

Several sources: a ``[data.NAME]`` table each, and in ``[data]`` only what they all share (``size_px``,
``pixel_mm``, ``phases``); vendors are then named ``NAME:vendor`` (``unetgan_core.data.multisource``)::

    [data]
    size_px = 64
    pixel_mm = 3.0
    [data.ph]
    source = "phantom"
    [data.sb]
    source = "sunnybrook"

Every table is checked against its source's ``OPTIONS`` dataclass (``unetgan_core.data.options``) with
the one schema loader, so an unknown key or a wrong type is one line naming the table and the key.

Real data sets need a root folder: ``root`` in the table, ``--data-root`` on the command line (one
source only), or an environment variable (:data:`ROOT_ENV`); Sunnybrook falls back to the shared data
folder beside the repository. A source whose root is not given anywhere is rejected with one line
naming the expected layout.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from unetgan_bench.bench.registries import registry
from unetgan_core.data.options import check_source_table
from unetgan_core.errors import DataError, UserError
from unetgan_core.names import check_name

# Data source -> environment variable that names its root when neither the suite nor --data-root does.
ROOT_ENV = {"mnms": "UNETGAN_MNMS_ROOT", "acdc": "UNETGAN_ACDC_ROOT", "sunnybrook": "UNETGAN_SUNNYBROOK_ROOT"}
# Where each source's layout is documented (its module's LAYOUT constant), for the missing-root message.
LAYOUT_MODULES = {"mnms": "unetgan_core.data.mnms", "acdc": "unetgan_core.data.acdc"}
# The shared folder beside the repository (``<repo>/../shared``) unless $UNETGAN_SHARED says otherwise.
SHARED_ENV = "UNETGAN_SHARED"
DEFAULT_SHARED = Path(__file__).resolve().parents[2] / "shared"
# What [data] may hold beside [data.NAME] tables: the preprocessing every source must share.
SHARED_KEYS = ("size_px", "pixel_mm", "phases")


class MissingDataRoot(DataError):
    """A real-data suite names no root folder and no environment variable supplies one."""


def resolve_data_root(
    data: dict[str, Any], where: str, data_root: str | Path | None = None, table: str = "[data]"
) -> dict[str, Any]:
    """A data table with its ``root`` filled in for real data sets.

    Precedence: ``data_root`` (``--data-root``), ``root`` in the suite, the source's variable in
    :data:`ROOT_ENV`, then (Sunnybrook only) ``$UNETGAN_SHARED/data/sunnybrook`` or
    ``<repo>/../shared/data/sunnybrook``. The phantom and the manifest source are left as they are.

    Args:
        data: the suite's ``[data]`` (or ``[data.NAME]``) table.
        where: ``"<file>"`` prefix for error messages.
        data_root: a root folder that overrides the suite's.
        table: the table's name in messages.

    Raises:
        MissingDataRoot: a source that needs a root gets none; the message names the layout.
    """
    name = data.get("source")
    out = dict(data)
    if data_root is not None:
        out["root"] = str(data_root)
    if name not in ROOT_ENV or out.get("root"):
        return out
    env = ROOT_ENV[name]
    if os.environ.get(env):
        out["root"] = os.environ[env]
    elif name == "sunnybrook":
        shared = Path(os.environ.get(SHARED_ENV) or DEFAULT_SHARED)
        out["root"] = str(shared / "data" / "sunnybrook")
    else:
        layout = importlib.import_module(LAYOUT_MODULES[name]).LAYOUT
        raise MissingDataRoot(
            f"{where}: {table} root: not set; pass --data-root DIR or set {env} to the {name} folder "
            f"(expected layout: {layout})"
        )
    return out


def _checked(table: Any, where: str, label: str, data_root: str | Path | None) -> dict[str, Any]:
    """One source's table: ``source`` names a registered source, its root is resolved, its keys are typed."""
    at = f"{where}: {label}"
    if not isinstance(table, dict) or not isinstance(table.get("source"), str):
        raise UserError(f"{at} source: expected a string naming a data source (see `unetgan-bench list`)")
    sources = registry("data sources")
    if table["source"] not in sources.names():
        raise UserError(f"{at} source: unknown name {table['source']!r}; allowed: {', '.join(sources.names())}")
    table = resolve_data_root(table, where, data_root, label)
    check_source_table(sources.get(table["source"]), table, at)
    return table


def parse_data(raw: Any, where: str, data_root: str | Path | None = None) -> tuple[dict[str, Any], dict[str, dict]]:
    """The ``[data]`` table of a suite: ``(table, {})`` for one source, ``(shared, {NAME: table})`` for several.

    Args:
        raw: the parsed ``[data]`` table.
        where: names the suite file in error messages.
        data_root: ``--data-root``; only for a suite with one source.

    Raises:
        UserError: a malformed table, an unknown source or key, a shared setting that a ``[data.NAME]``
            table contradicts, or ``--data-root`` with several sources.
    """
    if not isinstance(raw, dict):
        raise UserError(f"{where}: [data] expected a table")
    named = {k: v for k, v in raw.items() if isinstance(v, dict)}
    if "source" in raw or not named:
        return _checked(raw, where, "[data]", data_root), {}
    shared = {k: v for k, v in raw.items() if k not in named}
    for key in shared:
        if key not in SHARED_KEYS:
            raise UserError(
                f"{where}: [data] {key}: with [data.NAME] tables, [data] holds only what every source shares "
                f"({', '.join(SHARED_KEYS)}); put {key} in a [data.NAME] table"
            )
    if data_root is not None:
        raise UserError(f"{where}: --data-root names one folder but [data] has several sources; set root in each")
    tables = {}
    for name, table in named.items():
        check_name("data source name", name, f"{where}: [data]")
        for key, value in shared.items():
            if key in table and table[key] != value:
                raise UserError(
                    f"{where}: [data.{name}] {key} = {table[key]!r} contradicts [data] {key} = {value!r}; "
                    "every source is preprocessed alike"
                )
        tables[name] = _checked({**table, **shared}, where, f"[data.{name}]", None)
    return shared, tables
