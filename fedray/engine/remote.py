"""The actor classes as the driver sees them: their interface, without their imports.

``ray.remote`` needs a class, and importing :class:`~fedray.engine.actors.ClientActor` or
:class:`~fedray.engine.aggregator.AggregatorActor` would import torch, the strategies and the model code
into a driver that only schedules fits (≈1.5 s and ≈180 MiB for torch alone). So the driver hands Ray
a stand-in of the same name whose methods forward to the real class, imported in the actor's own
process when the actor is built. A test checks that each stand-in lists exactly the real class's
public methods.

:class:`AggregatorStates` is the driver's handle on the aggregator's adapters: object-store references,
never tensors.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Sequence

#: The public methods of each actor class the engine calls remotely.
CLIENT_ACTOR_METHODS = ("describe", "rendezvous", "join_group", "set_data", "initial_adapter", "fit",
                        "fit_chunk", "evaluate")
AGGREGATOR_METHODS = ("set_global", "get_global", "get_client_state", "global_nbytes", "configure_fit",
                      "objectives", "begin_round", "add_result", "add_results", "close_round", "aggregate",
                      "save_adapter", "save_checkpoint", "resume", "snapshot", "restore")


def stand_in(module: str, name: str, methods: Sequence[str]) -> type:
    """A class named ``name`` whose instances build ``module.name`` and forward ``methods`` to it."""

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        self._impl = getattr(importlib.import_module(module), name)(*args, **kwargs)

    def forward(method: str) -> Callable[..., Any]:
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            return getattr(self._impl, method)(*args, **kwargs)

        call.__name__ = call.__qualname__ = method
        return call

    namespace: dict[str, Any] = {"__init__": __init__, "__module__": __name__,
                                 "__doc__": f"Stand-in for {module}.{name} (see {__name__})."}
    namespace.update({method: forward(method) for method in methods})
    return type(name, (), namespace)


# Module attributes of the same name, so that Ray pickles them by reference to this light module.
ClientActor = stand_in("fedray.engine.actors", "ClientActor", CLIENT_ACTOR_METHODS)
AggregatorActor = stand_in("fedray.engine.aggregator", "AggregatorActor", AGGREGATOR_METHODS)


class AggregatorStates:
    """The aggregator's adapters as ObjectRefs: what a run mode starts fits from and evaluates.

    The global adapter is put in the object store once per change (one copy), and every fit and
    evaluation of the round reads that one object without copying it.
    """

    def __init__(self, aggregator: Any) -> None:
        self.aggregator = aggregator
        self._global: Any = None

    def global_state(self) -> Any:
        if self._global is None:
            self._global = self.aggregator.get_global.remote()
        return self._global

    def changed(self) -> None:
        """The aggregator's global adapter moved on (a round closed, a checkpoint was restored)."""
        self._global = None

    def client_state(self, client_id: int) -> Any:
        """A client's own adapter in the local baseline (the initial one before its first fit)."""
        return self.aggregator.get_client_state.remote(client_id)
