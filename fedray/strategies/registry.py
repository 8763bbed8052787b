"""The strategy registry and ``build_strategy(name, **params)``."""

from __future__ import annotations

import inspect
from typing import Any

from fedray.errors import FedRayError
from fedray.registry import Registry

STRATEGIES: Registry[type] = Registry("strategy")


def accepted_params(name: str) -> dict[str, Any]:
    """Parameter name → default for the strategy registered as ``name``."""
    signature = inspect.signature(STRATEGIES.get(name).__init__)
    return {p.name: p.default for p in signature.parameters.values()
            if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def param_problems(name: str, params: dict[str, Any]) -> list[str]:
    """Messages for parameters ``name`` does not accept (empty when all are known)."""
    if name not in STRATEGIES:
        return [STRATEGIES.unknown_message(name)]
    known = accepted_params(name)
    listing = ", ".join(known) or "none"
    return [f"strategy {name!r} has no parameter {key!r}; it accepts: {listing}"
            for key in params if key not in known]


def build_strategy(name: str, **params: Any):
    """Construct the strategy registered as ``name`` with ``params``.

    >>> strategy = build_strategy("fedavg")
    """
    problems = param_problems(name, params)
    if problems:
        raise FedRayError("; ".join(problems))
    return STRATEGIES.get(name)(**params)
