"""A tiny name -> object registry, one per kind of component (layers, encodings, activations, models, ...).

The library's own registries are built from explicit lists (:mod:`model_components.catalog`,
:data:`model_components.inrs.MODELS`), so what is registered is written in one place and does not depend on
which modules happen to have been imported. :meth:`Registry.register` remains for user code that adds a
component at run time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(ValueError, KeyError):
    """A name that is not registered; a ``ValueError`` (bad config value) and a ``KeyError`` (failed lookup)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class Registry(Generic[T]):
    """Maps names to objects of one kind.

    Args:
      kind: what the registry holds, used in error messages (e.g. ``"encoding"``).
      entries: the initial name -> object list (the explicit list of what is registered).

    A duplicate registration raises ``KeyError``; looking up an unknown name (``get`` or ``registry[name]``)
    raises :class:`UnknownNameError` whose message lists every known name, so a typo in a config or a flag
    explains itself. Iterating yields the sorted names.
    """

    def __init__(self, kind: str, entries: Mapping[str, T] | None = None):
        self.kind = kind
        self._entries: dict[str, T] = {}
        for name, obj in (entries or {}).items():
            self.register(name)(obj)

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering its argument under ``name`` and returning it unchanged."""

        def decorator(obj: T) -> T:
            if name in self._entries:
                raise KeyError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        """Returns the object registered as ``name``; raises :class:`UnknownNameError` listing the valid names."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):  # TypeError: an unhashable name from a hand-written config
            raise UnknownNameError(f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}") from None

    def names(self) -> list[str]:
        """Sorted list of registered names."""
        return sorted(self._entries)

    def items(self) -> list[tuple[str, T]]:
        """``(name, object)`` pairs sorted by name."""
        return [(name, self._entries[name]) for name in self.names()]

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        try:
            return name in self._entries
        except TypeError:
            return False

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self.names())})"
