"""A name -> object registry with did-you-mean errors, shared by losses, metrics, tasks and commands.

A registry can also take entries from installed distributions: those that declare entry points in
its `plugin_group` (e.g. `pdl_bench.losses`, in a package's pyproject.toml
`[project.entry-points."pdl_bench.losses"]`). They are loaded once, lazily, the first time the
registry is read (never when builtins register, so `--help` stays fast and a plugin may import the
package it extends), in every process that reads it: sweep workers, torchrun ranks and SLURM tasks
find the same plugins as the command that launched them. A plugin that fails to import, reuses a
name or fails the registry's `check` is skipped with one line naming its distribution and entry
point; the builtins keep working.
"""

from __future__ import annotations

import difflib
import sys
from dataclasses import dataclass
from typing import Callable, Generic, Iterator, TypeVar

from harness.errors import HarnessError

T = TypeVar("T")
BUILTIN = "builtin"


@dataclass(frozen=True)
class Origin:
    """Where an entry comes from: pdl-bench itself, or an installed distribution (a plugin)."""

    distribution: str | None = None  # None: builtin
    version: str | None = None

    @property
    def is_plugin(self) -> bool:
        return self.distribution is not None

    def __str__(self) -> str:
        return f"{self.distribution} {self.version}" if self.is_plugin else BUILTIN

    def pin(self) -> str | None:
        """`dist==version` for a plugin (what a point's identity records), None for a builtin."""
        return f"{self.distribution}=={self.version}" if self.is_plugin else None


class Registry(Generic[T]):
    """Maps names to objects; unknown names fail with the closest known names suggested."""

    def __init__(self, kind: str, *, plugin_group: str | None = None,
                 check: Callable[[str, object], str | None] | None = None):
        self.kind = kind
        self.plugin_group = plugin_group
        self._check = check  # (name, object) -> the problem in words, or None when it is a valid entry
        self._entries: dict[str, T] = {}
        self._origins: dict[str, Origin] = {}
        self._plugins_loaded = plugin_group is None

    def register(self, name: str, obj: T | None = None):
        """Register `obj` under `name`; without `obj`, works as a decorator."""

        def add(item: T) -> T:
            problem = self._check(name, item) if self._check is not None else None
            if problem is not None:  # the same check as a plugin's entry
                raise ValueError(f"{self.kind} {name!r} {problem}")
            self._add(name, item, Origin())
            return item

        return add(obj) if obj is not None else add

    def _add(self, name: str, item: T, origin: Origin) -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = item
        self._origins[name] = origin

    @property
    def _items(self) -> dict[str, T]:
        """Every entry, the plugins' loaded on first read."""
        if not self._plugins_loaded:
            self._plugins_loaded = True  # first: a plugin that reads the registry while loading sees the builtins
            self._load_plugins()
        return self._entries

    def _load_plugins(self) -> None:
        from importlib.metadata import entry_points

        for point in sorted(entry_points(group=self.plugin_group), key=lambda p: (p.name, p.value)):
            dist = getattr(point, "dist", None)
            origin = Origin(dist.name if dist else "an unknown distribution", dist.version if dist else "?")
            where = f"{origin} entry point {self.plugin_group}:{point.name} ({point.value})"
            try:
                item = point.load()
            except Exception as err:  # noqa: BLE001 - any import failure of a plugin is its own, not ours
                _skip(where, f"failed to import: {type(err).__name__}: {err}")
                continue
            problem = self._check(point.name, item) if self._check is not None else None
            if problem is None and point.name in self._entries:
                problem = f"the {self.kind} name {point.name!r} exists already ({self._origins[point.name]})"
            if problem is not None:
                _skip(where, problem)
                continue
            self._add(point.name, item, origin)

    def origin(self, name: str) -> Origin:
        self.get(name)  # unknown -> the did-you-mean error
        return self._origins[name]

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


def _skip(where: str, problem: str) -> None:
    """One line on stderr for a plugin that cannot be used; the rest of the registry still works."""
    print(f"pdl-bench: skipping plugin {where}: {problem}", file=sys.stderr, flush=True)
