"""Name → plug-in registries.

Plug-ins (strategies, objectives, data sources, partitioners, modality scenarios, model builders, train
engines) are chosen by a lowercase registered name; an unknown name raises an error that lists the names
that are known. Each entry declares its parameters as a frozen dataclass (see
:mod:`fedray.config.params`), registered beside it, so the loader checks them at load time.

A registry whose entries live in modules that import heavy libraries (the model builders) can hold
*declarations* (a name and its parameter class) and the package whose modules register the entries
(:meth:`Registry.defer_to`): a scenario is then checked by name and parameters without importing model
code, and the package is imported the first time an entry is used or a name is asked for that is not
declared. Each module still registers what it defines; a declaration only says it early.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import pkgutil
from collections.abc import Mapping
from typing import Any, Callable, Generic, Iterator, TypeVar

from fedray.config.params import NoParams, parse_params
from fedray.errors import FedRayError
from fedray.plugins import load_plugins

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
        self._params: dict[str, type] = {}
        self._declared: dict[str, type] = {}
        self._pending_package: str | None = None

    def register(self, name: str, params: type | None = None) -> Callable[[T], T]:
        """Decorator that registers its target under ``name`` with its parameter dataclass.

        ``params`` defaults to the target's ``Params`` attribute, then to :class:`NoParams`.
        """
        key = name.lower()

        def add(obj: T) -> T:
            if key in self._entries and self._entries[key] is not obj:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
            declared = params or getattr(obj, "Params", None) or NoParams
            if key in self._declared and self._declared[key] is not declared:
                raise ValueError(f"{self.kind} {key!r} was declared with parameters "
                                 f"{self._declared[key].__name__} but registers {declared.__name__}; "
                                 "make the declaration name the class its module registers")
            self._entries[key] = obj
            self._params[key] = declared
            return obj

        return add

    def declare(self, name: str, params: type | None = None) -> None:
        """Say that the package given to :meth:`defer_to` registers ``name`` with parameters ``params``
        (default :class:`NoParams`): the name and its parameters are then known without that import."""
        self._declared[name.lower()] = params or NoParams

    def defer_to(self, package: str) -> None:
        """The entries are registered by the modules of ``package``, imported (with
        :func:`import_submodules`) when an entry is first used or an undeclared name is asked for."""
        self._pending_package = package

    def _import_pending(self) -> None:
        package, self._pending_package = self._pending_package, None  # cleared first: a module may ask
        if package is not None:
            import_submodules(package)

    def params_class(self, name: str) -> type:
        """The parameter dataclass of the entry ``name`` (a declared one's without importing it)."""
        key = str(name).lower()
        if key not in self._entries and key in self._declared:
            return self._declared[key]
        self.get(name)
        return self._params[key]

    def parse(self, name: str, options: Mapping[str, Any] | None, path: str) -> tuple[Any | None, list[str]]:
        """Typed parameters of ``name`` built from ``options``: (instance or None, every problem).

        An unknown name is one problem at ``path``.name, so it joins the loader's single error.
        """
        if name not in self:
            where = f"{path}.name: " if path else ""
            return None, [where + self.unknown_message(name)]
        declared = self.param_names(name)
        options = dict(options or {})
        unknown = [self._unknown_param(name, key, declared, path) for key in options if key not in declared]
        taken = {key: value for key, value in options.items() if key in declared}
        instance, problems = parse_params(self.params_class(name), taken, path)
        return (None if unknown else instance), unknown + problems

    def param_names(self, name: str) -> list[str]:
        """The parameters entry ``name`` declares."""
        return [f.name for f in dataclasses.fields(self.params_class(name))]

    def _unknown_param(self, name: str, key: str, declared: list[str], path: str) -> str:
        """A key entry ``name`` does not take, with the entries that do take it and a close match."""
        takers = [other for other in self if key in self.param_names(other)]
        owners = f" (a parameter of {', '.join(takers)})" if takers else ""
        close = difflib.get_close_matches(key, declared, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return (f"{path}.{key}: {self.kind} {name!r} has no parameter {key!r}{owners}; {hint}"
                f"it accepts: {', '.join(declared) or 'none'}")

    def get(self, name: str) -> T:
        """Return the entry for ``name`` or raise :class:`UnknownNameError` naming the known ones."""
        load_plugins()  # installed packages' plug-ins register on first lookup (fedray.plugins)
        key = str(name).lower()
        if key not in self._entries:
            self._import_pending()
        if key not in self._entries:
            raise UnknownNameError(self.unknown_message(name))
        return self._entries[key]

    def unknown_message(self, name: object) -> str:
        """The message for an unknown name: what was asked, what is known, the closest match."""
        close = difflib.get_close_matches(str(name).lower(), self.names(), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        return f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}.{hint}"

    def names(self) -> list[str]:
        load_plugins()
        self._import_pending()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        load_plugins()
        key = str(name).lower()
        if key in self._entries or key in self._declared:
            return True
        self._import_pending()
        return key in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def import_submodules(package: str) -> list[str]:
    """Import every module of ``package`` (not starting with ``_``), so that a plug-in registers itself
    by being a file there: adding a strategy, a source or a run mode touches one file.

    Returns the imported module names, in name order (registration order is then deterministic).
    """
    module = importlib.import_module(package)
    names = sorted(info.name for info in pkgutil.iter_modules(module.__path__)
                   if not info.name.startswith("_"))
    for name in names:
        importlib.import_module(f"{package}.{name}")
    return names
