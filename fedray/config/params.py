"""Typed plug-in parameters: one frozen dataclass per plug-in, checked by the same rules as the schema.

Every registered plug-in (strategy, objective, data source, partitioner, modality scenario, model builder,
train engine) declares its parameters as a frozen dataclass whose fields use
:func:`~fedray.config.schema.spec` (type, default, bounds, one-line help). The loader builds that
dataclass from the scenario's inline keys at load time, so ``fedray validate`` reports an out-of-range or
ill-typed plug-in parameter with its field path beside every other problem. Code that constructs a
plug-in directly in Python goes through :func:`parse_params` too: there is one validation mechanism.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any, get_type_hints

from fedray.config.load import bound_text, build_dataclass, describe_type
from fedray.errors import ConfigError

_FIELD_PATH = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*|\[\d+\])*")


@dataclasses.dataclass(frozen=True)
class NoParams:
    """The parameters of a plug-in that takes none."""


def parse_params(cls: type, options: Mapping[str, Any] | None, path: str) -> tuple[Any | None, list[str]]:
    """Build plug-in parameter class ``cls`` from ``options``; return (instance or None, every problem).

    Problems carry ``path`` (e.g. ``strategy``) so they read ``strategy.eta: got -1.0, must be > 0``.
    Cross-field rules live in the class's ``problems()`` method, as they do for schema sections.
    """
    instance, problems = build_dataclass(cls, dict(options or {}), path)
    return instance, [_with_path(p, path) for p in problems]


def params_or_raise(cls: type, options: Mapping[str, Any] | None, path: str,
                    source: str | None = None) -> Any:
    """:func:`parse_params` for code that needs the instance: raise one ConfigError with every problem."""
    instance, problems = parse_params(cls, options, path)
    if problems or instance is None:
        raise ConfigError(problems, source=source)
    return instance


def describe_params(cls: type) -> list[dict[str, Any]]:
    """One entry per parameter: name, type in words, default, bounds and help (for ``fedray config``)."""
    hints = get_type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        bounds = " ".join(f"{symbol} {bound_text(f.metadata[key])}" for key, symbol in
                          (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))
                          if f.metadata.get(key) is not None)
        rows.append({"name": f.name, "type": describe_type(hints[f.name]), "default": default,
                     "bounds": bounds, "help": f.metadata.get("help", "")})
    return rows


def _with_path(problem: str, path: str) -> str:
    """A cross-field message from ``problems()`` does not know where its section sits; say it."""
    if not path or problem.startswith(path):
        return problem
    head, sep, _ = problem.partition(": ")
    joiner = "." if sep and _FIELD_PATH.fullmatch(head) else ": "  # "eta: ..." → "strategy.eta: ..."
    return f"{path}{joiner}{problem}"
