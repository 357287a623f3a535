"""Strict, typed loading of TOML tables into frozen dataclasses: the one configuration loader.

A field's type annotation is the schema: unknown keys, wrong types and values outside a
field's declared bounds are rejected with one line naming the file, the table, the key and
what is allowed. Bounds live in the field metadata (``ge``, ``gt``, ``le``, ``lt``,
``choices``, ``nonempty``). Numeric policy: numbers must be finite (``inf`` and ``nan`` are
refused) unless a field declares ``finite=False``; every count and rate declares an upper
bound, so a typo like ``epochs = 1e12`` fails at validation instead of running for ever.

Lists become tuples where a field is a tuple; integers become floats where a field is a
float; a field with ``one_or_many=True`` also takes a single value as a one-element list.
Settings that hold constructor arguments of a registered model (``model_kwargs``,
``generator``) are checked against that constructor with :func:`check_model_options`.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import inspect
import math
import types
import typing
from typing import Any, Literal

from unetgan_core.errors import UserError

# Largest integer a model option may take (widths, block counts): bigger is a typo, not a model.
MAX_MODEL_INT = 4096


def field(default: Any = dataclasses.MISSING, *, doc: str = "", **bounds: Any) -> Any:
    """A dataclass field with a description and bounds.

    Args:
        default: the default value (lists and dicts are copied per instance); none = required.
        doc: one line for ``unetgan-bench list`` and error messages.
        **bounds: ``ge``, ``gt``, ``le``, ``lt`` (numbers, checked on every element of a list),
            ``choices`` (a sequence, or a callable returning one, e.g. a registry's ``names``),
            ``nonempty`` (a list must have an element), ``finite=False`` (allow inf/nan),
            ``one_or_many`` (a single value is read as a one-element list), ``omit_default=True`` (a setting
            added later: left out of hashes while at its default, ``hashing.OMIT_DEFAULT``).
    """
    meta = {"doc": doc, **bounds}
    if isinstance(default, (list, dict)):
        value = default
        return dataclasses.field(default_factory=lambda: type(value)(value), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _union_args(tp: Any) -> tuple[Any, ...] | None:
    return typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else None


def _type_name(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return "one of " + ", ".join(map(repr, args))
    if origin is tuple and args and args[-1] is not Ellipsis:
        return f"a list of {len(args)} values ({', '.join(_type_name(a) for a in args)})"
    if origin in (list, tuple, collections.abc.Sequence):
        return f"a list of {_type_name(args[0] if args else Any)}"
    if origin is dict or tp is dict:
        return "a table"
    if _union_args(tp) is not None:
        return " or ".join(_type_name(a) for a in _union_args(tp) if a is not type(None))
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false", Any: "any value"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


class _Mismatch(Exception):
    """A value does not have the declared type (turned into a UserError by the caller)."""


def _coerce(value: Any, tp: Any) -> Any:
    """``value`` checked against annotation ``tp`` and converted (lists to tuples, ints to floats).

    Raises:
        _Mismatch: the value does not have the type.
    """
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin is Literal:
        if value not in args:
            raise _Mismatch
        return value
    if _union_args(tp) is not None:
        for option in args:
            try:
                return _coerce(value, option)
            except _Mismatch:
                continue
        raise _Mismatch
    if tp is type(None):
        if value is not None:
            raise _Mismatch
        return None
    if origin in (list, tuple, collections.abc.Sequence):
        if not isinstance(value, (list, tuple)):
            raise _Mismatch
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise _Mismatch
            return tuple(_coerce(v, a) for v, a in zip(value, args, strict=True))
        items = [_coerce(v, args[0] if args else Any) for v in value]
        return items if origin is list else tuple(items)
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise _Mismatch
        return dict(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _Mismatch
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Mismatch
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise _Mismatch
    return value


def _numbers(value: Any) -> list[Any]:
    """Every number inside ``value`` (nested lists and tables included)."""
    if isinstance(value, (list, tuple)):
        return [n for v in value for n in _numbers(v)]
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    return [value] if isinstance(value, (int, float)) and not isinstance(value, bool) else []


def bounds_problem(value: Any, meta: typing.Mapping[str, Any]) -> str | None:
    """What ``value`` should have been under the bounds in ``meta``, or None when it is fine."""
    if meta.get("finite", True) and any(isinstance(n, float) and not math.isfinite(n) for n in _numbers(value)):
        return "a finite number"
    values = value if isinstance(value, (list, tuple)) else [value]
    if meta.get("nonempty") and isinstance(value, (list, tuple)) and not value:
        return "a non-empty list"
    choices = meta.get("choices")
    if callable(choices):
        choices = choices()
    for v in values:
        if choices is not None and v not in choices:
            return f"one of {', '.join(map(str, choices))}"
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            for key, ok, text in (
                ("ge", lambda a, b: a >= b, ">="),
                ("gt", lambda a, b: a > b, ">"),
                ("le", lambda a, b: a <= b, "<="),
                ("lt", lambda a, b: a < b, "<"),
            ):
                if key in meta and not ok(v, meta[key]):
                    return f"a value {text} {meta[key]}"
    return None


def check_fields(obj: Any) -> None:
    """Check every field of dataclass ``obj`` against the bounds in its metadata.

    Call it from ``__post_init__`` so directly built configs obey the same bounds as loaded ones.

    Raises:
        UserError: ``"<key>: expected <what>, got <value>"`` for the first field out of bounds.
    """
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        problem = bounds_problem(value, f.metadata)
        if problem:
            raise UserError(f"{f.name}: expected {problem}, got {value!r}")


def load_table(cls: type, table: Any, where: str) -> Any:
    """Build dataclass ``cls`` from a TOML table, rejecting anything it does not declare.

    Args:
        cls: a dataclass whose fields carry types and optional bounds (see ``field``).
        table: the parsed TOML table.
        where: ``"<file>: [section]"`` prefix for error messages (named once per message).

    Raises:
        UserError: an unknown key, a missing required key, a wrong type, a value out of bounds,
            or a value the dataclass's own ``__post_init__`` rejects; one line each.
    """
    if not isinstance(table, dict):
        raise UserError(f"{where}: expected a table, got {type(table).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(table) - set(fields))
    if unknown:
        raise UserError(f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(fields))}")
    kwargs = {}
    for name, f in fields.items():
        if name not in table:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise UserError(f"{where}: missing required key {name!r} ({f.metadata.get('doc', '')})")
            continue
        value, tp = table[name], hints[name]
        if f.metadata.get("one_or_many") and not isinstance(value, list):
            value = [value]
        try:
            value = _coerce(value, tp)
        except _Mismatch:
            raise UserError(f"{where} {name}: expected {_type_name(tp)}, got {value!r}") from None
        problem = bounds_problem(value, f.metadata)
        if problem:
            raise UserError(f"{where} {name}: expected {problem}, got {table[name]!r}")
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except UserError as exc:
        raise UserError(f"{where} {exc}") from None


def describe(cls: type) -> list[tuple[str, str, Any, str]]:
    """(key, type and bounds, default, doc) for every field of ``cls``, for ``unetgan-bench list``."""
    hints = typing.get_type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        default = (
            f.default
            if f.default is not dataclasses.MISSING
            else (f.default_factory() if f.default_factory is not dataclasses.MISSING else "(required)")
        )
        limits = [f"{k} {f.metadata[k]}" for k in ("ge", "gt", "le", "lt") if k in f.metadata]
        if "choices" in f.metadata:
            choices = f.metadata["choices"]
            limits.append("one of " + ", ".join(map(str, choices() if callable(choices) else choices)))
        kind = _type_name(hints[f.name]) + (f" ({', '.join(limits)})" if limits else "")
        rows.append((f.name, kind, default, f.metadata.get("doc", "")))
    return rows


def check_model_options(model: str, options: dict[str, Any]) -> None:
    """Reject constructor arguments that model ``model`` would refuse, without allocating its weights.

    Each option must be a parameter of the registered model's constructor, of its annotated type,
    finite, and (integers) within 0..``MAX_MODEL_INT``; the constructor then runs on torch's
    ``meta`` device, so its own checks (e.g. ``width >= 1``) apply at validation.

    Args:
        model: a registered model name (``unetgan_core.models.MODELS``).
        options: its keyword arguments, e.g. ``{"width": 16}``.

    Raises:
        UserError: ``"<model>: <option>: <problem>"``, one line.
    """
    import torch

    from unetgan_core.models import MODELS

    cls = MODELS.get(model)
    params = {
        name: p
        for name, p in inspect.signature(cls).parameters.items()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }
    hints = typing.get_type_hints(cls.__init__)
    for key, value in options.items():
        if key not in params:
            raise UserError(f"{model}: unknown option {key!r}; allowed: {', '.join(params)}")
        tp = hints.get(key, Any)
        try:
            _coerce(value, tp)
        except _Mismatch:
            raise UserError(f"{model}: {key}: expected {_type_name(tp)}, got {value!r}") from None
        problem = bounds_problem(value, {"ge": 0, "le": MAX_MODEL_INT})
        if problem:
            raise UserError(f"{model}: {key}: expected {problem}, got {value!r}")
    try:
        with torch.device("meta"):
            cls(**options)
    except UserError as exc:
        text = str(exc)
        raise UserError(text if text.startswith(model) else f"{model}: {text}") from None
    except (TypeError, ValueError, RuntimeError) as exc:
        first = (str(exc).splitlines() or [""])[0]
        raise UserError(f"{model}: options {options!r} rejected: {first}") from None
