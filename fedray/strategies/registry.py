"""The strategy registry and ``build_strategy(name, options, num_clients=N)``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Mapping, TypeVar

from fedray.config.params import params_or_raise
from fedray.registry import Registry

if TYPE_CHECKING:
    from fedray.strategies.base import Strategy

STRATEGIES: Registry[type] = Registry("strategy")

S = TypeVar("S", bound=type)


def register(name: str) -> Callable[[S], S]:
    """Register a strategy class (with its ``Params``) under ``name``, which its messages then use."""

    def add(cls: S) -> S:
        cls.name = name
        return STRATEGIES.register(name)(cls)

    return add


def build_strategy(name: str, options: Mapping[str, Any] | None = None, *,
                   num_clients: int | None = None) -> Strategy:
    """The strategy registered as ``name``, its ``options`` checked as the scenario's ``strategy`` section.

    ``num_clients``: the size N of the client population (the engine passes ``partition.num_clients``).

    >>> strategy = build_strategy("fedadam", {"eta": 0.01}, num_clients=10)
    """
    params = params_or_raise(STRATEGIES.params_class(name), options, "strategy")
    return STRATEGIES.get(name)(params, num_clients=num_clients)
