"""Name → builder registries.

Plug-ins (strategies, model builders, data sources, partitioners) are chosen by a lowercase registered
name; an unknown name raises an error that lists the names that are known.
"""

from __future__ import annotations

import difflib
from typing import Callable, Generic, Iterator, TypeVar

from fedray.errors import FedRayError

T = TypeVar("T")


class UnknownNameError(FedRayError):
    """A registry was asked for a name it does not hold."""


class Registry(Generic[T]):
    """A mapping from lowercase names to objects of one kind (classes or factories).

    >>> strategies = Registry("strategy")
    >>> @strategies.register("fedavg")
    ... class FedAvg: ...
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that registers its target under ``name``."""
        key = name.lower()

        def add(obj: T) -> T:
            if key in self._entries and self._entries[key] is not obj:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
            self._entries[key] = obj
            return obj

        return add

    def get(self, name: str) -> T:
        """Return the entry for ``name`` or raise :class:`UnknownNameError` naming the known ones."""
        key = str(name).lower()
        if key not in self._entries:
            raise UnknownNameError(self.unknown_message(name))
        return self._entries[key]

    def unknown_message(self, name: object) -> str:
        """The message for an unknown name: what was asked, what is known, the closest match."""
        close = difflib.get_close_matches(str(name).lower(), self.names(), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        return f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}.{hint}"

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return str(name).lower() in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
