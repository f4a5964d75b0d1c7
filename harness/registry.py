"""A name -> object registry with did-you-mean errors, shared by losses, metrics, tasks and commands."""

from __future__ import annotations

import difflib
from typing import Generic, Iterator, TypeVar

from harness.errors import HarnessError

T = TypeVar("T")

class Registry(Generic[T]):
    """Maps names to objects; unknown names fail with the closest known names suggested."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, obj: T | None = None):
        """Register `obj` under `name`; without `obj`, works as a decorator."""

        def add(item: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = item
            return item

        return add(obj) if obj is not None else add

    def get(self, name: str) -> T:
        if name in self._items:
            return self._items[name]
        close = difflib.get_close_matches(name, list(self._items), n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(map(repr, close))}?" if close else None
        known = ", ".join(sorted(self._items)) or "(none)"
        raise HarnessError(
            f"unknown {self.kind} {name!r}; known: {known}",
            hint or f"pick one of the known {self.kind} names",
        )

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def items(self) -> list[tuple[str, T]]:
        return [(n, self._items[n]) for n in self.names()]
