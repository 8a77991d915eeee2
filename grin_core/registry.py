"""Named extension points: an unlearning objective, a probe, an attack, a metric name, a gate check
(policy/gate_registry.py) is one entry of a `Registry`.

OpenUnlearning's habit (`TRAINER_REGISTRY`, `METRICS_REGISTRY`): a new method or probe is a module
plus one registration line, and an unknown name raises with the known ones instead of falling into
the last branch of an if/elif chain. (Not the model registry of the service: that is infra/registry.py.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar, overload

T = TypeVar("T")


class UnknownNameError(ValueError):
    """A name no entry of the registry has; the message lists the known ones."""


class Registry(Generic[T]):
    """Names to entries of one kind, in registration order."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    @overload
    def register(self, name: str) -> Callable[[T], T]: ...
    @overload
    def register(self, name: str, entry: T) -> T: ...

    def register(self, name, entry=None):
        """Add `entry` under `name` (or decorate it); a name already taken by another entry raises."""

        def add(value: T) -> T:
            if name in self._entries and self._entries[name] is not value:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = value
            return value

        return add if entry is None else add(entry)

    def unregister(self, name: str) -> None:
        """Remove `name` (a test's temporary entry)."""
        del self._entries[self.check(name)]

    def check(self, name: str) -> str:
        """`name` itself if registered; UnknownNameError with the known names otherwise."""
        if name not in self._entries:
            raise UnknownNameError(f"unknown {self.kind} {name!r}; known: {', '.join(self._entries)}")
        return name

    def __getitem__(self, name: str) -> T:
        return self._entries[self.check(name)]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)
