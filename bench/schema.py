"""Strict, typed loading of TOML tables into frozen dataclasses.

A field's type annotation is the schema: unknown keys, wrong types and values outside a
field's declared bounds are rejected with one line naming the file, the key and what is
allowed. Bounds live in the field metadata (``ge``, ``gt``, ``le``, ``choices``).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from unetgan_core.errors import UserError


def field(default: Any = dataclasses.MISSING, *, doc: str = "", **bounds: Any) -> Any:
    """A dataclass field with a description and bounds (``ge``, ``gt``, ``le``, ``lt``, ``choices``)."""
    meta = {"doc": doc, **bounds}
    if isinstance(default, (list, dict)):
        value = default
        return dataclasses.field(default_factory=lambda: type(value)(value), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (list, tuple):
        (inner, *_) = typing.get_args(tp) or (Any,)
        return f"a list of {_type_name(inner)}"
    if origin is dict:
        return "a table"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp) if a is not type(None))
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(tp, str(tp))


def _check_type(value: Any, tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if tp is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_check_type(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if origin in (list, tuple):
        (inner, *_) = typing.get_args(tp) or (Any,)
        return isinstance(value, list) and all(_check_type(v, inner) for v in value)
    if origin is dict:
        return isinstance(value, dict)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(tp, type):
        return isinstance(value, tp)
    return True


def _check_bounds(value: Any, meta: dict[str, Any]) -> str | None:
    values = value if isinstance(value, list) else [value]
    for v in values:
        if "choices" in meta and v not in meta["choices"]:
            return f"one of {', '.join(map(str, meta['choices']))}"
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if "ge" in meta and v < meta["ge"]:
                return f"a value >= {meta['ge']}"
            if "gt" in meta and v <= meta["gt"]:
                return f"a value > {meta['gt']}"
            if "le" in meta and v > meta["le"]:
                return f"a value <= {meta['le']}"
            if "lt" in meta and v >= meta["lt"]:
                return f"a value < {meta['lt']}"
    if meta.get("nonempty") and isinstance(value, list) and not value:
        return "a non-empty list"
    return None


def load_table(cls: type, table: Any, where: str) -> Any:
    """Build dataclass ``cls`` from a TOML table, rejecting anything it does not declare.

    Args:
        cls: a dataclass whose fields carry types and optional bounds (see ``field``).
        table: the parsed TOML table.
        where: ``"<file>: [section]"`` prefix for error messages.
    """
    if not isinstance(table, dict):
        raise UserError(f"{where}: expected a table, got {type(table).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - set(fields))
    if unknown:
        raise UserError(f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(fields))}")
    kwargs = {}
    for name, f in fields.items():
        if name not in table:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise UserError(f"{where}: missing required key {name!r} ({f.metadata.get('doc', '')})")
            continue
        value = table[name]
        tp = hints[name]
        if not _check_type(value, tp):
            raise UserError(f"{where} {name}: expected {_type_name(tp)}, got {value!r}")
        problem = _check_bounds(value, dict(f.metadata))
        if problem:
            raise UserError(f"{where} {name}: expected {problem}, got {value!r}")
        if tp is float or (typing.get_origin(tp) in (typing.Union, types.UnionType) and float in typing.get_args(tp)):
            value = float(value) if isinstance(value, int) and not isinstance(value, bool) else value
        kwargs[name] = value
    return cls(**kwargs)


def describe(cls: type) -> list[tuple[str, str, Any, str]]:
    """(key, type, default, doc) for every field of ``cls``, for ``unetgan-bench list``."""
    hints = typing.get_type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        default = (
            f.default
            if f.default is not dataclasses.MISSING
            else (f.default_factory() if f.default_factory is not dataclasses.MISSING else "(required)")
        )
        rows.append((f.name, _type_name(hints[f.name]), default, f.metadata.get("doc", "")))
    return rows
