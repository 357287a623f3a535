"""Name -> object registries for models, styles, scenarios, attacks, metrics and data sources.

Every pluggable concept registers itself with a decorator, so the suite files can
name it and ``unetgan-bench list`` can show it. Unknown or duplicate names raise
an error that lists the known ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from unetgan_core.errors import UserError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named collection of registered objects.

    Args:
        kind: what is registered, used in error messages (e.g. ``"model"``).

    Example:
        >>> MODELS = Registry("model")
        >>> @MODELS.register("tiny")
        ... def make_tiny(): ...
        >>> MODELS.get("tiny") is make_tiny
        True
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            self.add(name, obj)
            return obj

        return decorator

    def add(self, name: str, obj: T) -> None:
        if name in self._items:
            raise ValueError(f"duplicate {self.kind} name {name!r}; already registered: {self.names()}")
        self._items[name] = obj

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise UserError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}") from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def items(self) -> list[tuple[str, T]]:
        return [(n, self._items[n]) for n in self.names()]


def create(registry: Registry[Any], name: str, /, **kwargs: Any) -> Any:
    """Look ``name`` up in ``registry`` and call it with ``kwargs``."""
    return registry.get(name)(**kwargs)
