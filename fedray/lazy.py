"""Heavy libraries imported on first use, so that a process that only *names* plug-ins stays lean.

The driver imports every plug-in module (strategies, client objectives, train engines) to check a
scenario's names and parameters at load, but it never computes with tensors: with ``torch`` imported at
the top of those modules it paid about a second and 300 MiB for nothing. A plug-in module therefore
writes::

    from fedray.lazy import lazy_import

    torch = lazy_import("torch")  # loaded by the first attribute use (a fit, an aggregation)

and uses ``torch.…`` as before. The stand-in is not put in :data:`sys.modules`, so ``"torch" in
sys.modules`` stays an honest test of whether a process loaded it (other libraries look there too).
Names evaluated when a module is imported (a base class ``nn.Module``, a decorator ``@torch.no_grad()``,
a default argument) load the library at once; such code belongs inside the function that computes.
"""

from __future__ import annotations

import importlib
import sys
import types
from contextlib import contextmanager
from typing import Any, Iterator

#: Attributes that tools look up on any object to learn what it is; the stand-in does not have them.
_PROBES = frozenset({"__path__", "__file__", "__wrapped__", "__getstate__", "__reduce_ex__", "__reduce__",
                     "__copy__", "__deepcopy__", "__qualname__", "__signature__", "__origin__"})


class LazyModule(types.ModuleType):
    """A module that imports the real one (``importlib.import_module(name)``) on first attribute use and
    forwards every attribute to it from then on."""

    def __init__(self, name: str) -> None:
        super().__init__(name, f"{name}, imported on first use (fedray.lazy)")
        self.__dict__["_fedray_loaded"] = None

    def _fedray_module(self) -> types.ModuleType:
        module = self.__dict__["_fedray_loaded"]
        if module is None:
            module = importlib.import_module(self.__name__)
            self.__dict__["_fedray_loaded"] = module
        return module

    def __getattr__(self, attr: str) -> Any:  # only called for names not set on the stand-in itself
        if attr in _PROBES:
            raise AttributeError(attr)  # copy, pickle and inspect probes must not load the library
        return getattr(self._fedray_module(), attr)

    def __dir__(self) -> list[str]:
        return dir(self._fedray_module())

    @property
    def loaded(self) -> bool:
        """Whether the real module has been imported through this stand-in."""
        return self.__dict__["_fedray_loaded"] is not None


def lazy_import(name: str) -> types.ModuleType:
    """A stand-in for ``import name`` that imports the module on first attribute use (see the module
    docstring for when that is, and why)."""
    return LazyModule(name)


@contextmanager
def hidden(name: str) -> Iterator[None]:
    """Inside the block ``import name`` raises ImportError, for a library that only *probes* for
    ``name`` when it is imported (tensorboardX's writer tries ``import torch`` to accept its tensors):
    the probe then costs nothing. A module already imported stays visible."""
    if name in sys.modules:
        yield
        return
    sys.modules[name] = None  # type: ignore[assignment]  (the import system's "not importable")
    try:
        yield
    finally:
        if name in sys.modules and sys.modules[name] is None:
            del sys.modules[name]
