"""A named registry that refuses duplicates and names the known entries when a lookup misses.

The one registry pattern: model artifacts, scorer cards, the attribute vocabulary and the fix
catalogue all use it, so "registered twice" and "unknown X" read the same everywhere."""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self._kind = kind
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        if name in self._entries:
            raise ValueError(f"{self._kind} {name!r} registered twice")
        self._entries[name] = entry
        return entry

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            known = sorted(self._entries)
            raise KeyError(f"unknown {self._kind} {name!r}; known: {known}") from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def in_order(self) -> dict[str, T]:
        """The entries by name in the order they were registered (a copy)."""
        return dict(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def values(self) -> list[T]:
        return list(self._entries.values())
