"""Plug-ins from installed packages: entry points in the group ``fedray.plugins``, each a module to import.

A package adds data sources, strategies, models (or anything else fedray registers by name) without editing
fedray: its modules register themselves on import, exactly as fedray's own files do, and its metadata names
them, e.g. in ``pyproject.toml``::

    [project.entry-points."fedray.plugins"]
    my_sources = "my_package.fedray_sources"

They are imported once per process, the first time any registry is asked for a name (so Ray actors, which
look plug-ins up by name too, load them as well). This module imports nothing of fedray's at import time:
the registries call it.
"""

from __future__ import annotations

import importlib
import logging
from importlib.metadata import EntryPoint, entry_points

from fedray.errors import FedRayError

GROUP = "fedray.plugins"

logger = logging.getLogger(__name__)
_loaded = False


class PluginError(FedRayError):
    """An installed fedray plug-in could not be imported."""


def load_plugins() -> list[str]:
    """Import every ``fedray.plugins`` entry point's module, once per process; return their names.

    A module that fails to import raises :class:`PluginError` naming the entry point and its package.
    """
    global _loaded
    if _loaded:
        return []
    _loaded = True  # first, so a plug-in that looks up a registry while it registers does not recurse
    found = sorted(entry_points(group=GROUP), key=lambda ep: ep.name)
    for ep in found:
        _import(ep)
    if found:
        logger.debug("fedray plug-ins loaded: %s", ", ".join(ep.name for ep in found))
    return [ep.name for ep in found]


def _import(ep: EntryPoint) -> None:
    dist = getattr(getattr(ep, "dist", None), "name", None) or "an installed package"
    try:
        importlib.import_module(ep.value.split(":")[0])
    except Exception as exc:  # any failure in a third-party module: say whose it is
        raise PluginError(f"fedray plug-in {ep.name!r} ({ep.value}, from {dist}) failed to import: "
                          f"{type(exc).__name__}: {exc}. Fix or uninstall that package "
                          f"(pip uninstall {dist})") from exc


def reset_for_tests() -> None:
    """Forget that plug-ins were loaded, so a test can install a fake one and load again."""
    global _loaded
    _loaded = False
