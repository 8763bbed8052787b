"""The aggregator actor: the global adapter, the strategy and the client-state store, in one place.

A plain class; the engine wraps it with ``ray.remote`` and pins it to the driver's node. It knows no
algorithm: the strategy aggregates and says what each client keeps between fits
(:meth:`~fedray.strategies.base.Strategy.client_state_update`), and each client's objective reads that
back (:meth:`~fedray.client.objectives.LocalObjective.for_client`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from fedray.client.objectives import LocalObjective, build_objective
from fedray.config.schema import ObjectiveConfig, Scenario, StrategyConfig
from fedray.engine.client_state import ClientStateStore
from fedray.engine.tasks import FitReport
from fedray.models.lora import AdapterState, state_nbytes
from fedray.strategies import ClientFailure, ClientResult, build_strategy


@dataclass(frozen=True)
class AggregatorSetup:
    """What the aggregator is built from: the scenario sections it reads, and nothing else.

    ``num_clients`` is the client population N (SCAFFOLD's 1/N step); ``isolated`` is the local
    baseline, where each client keeps its own adapter instead of aggregating.
    """

    strategy: StrategyConfig
    objective: ObjectiveConfig
    num_clients: int
    client_states_in_memory: int
    isolated: bool = False

    @classmethod
    def from_scenario(cls, scenario: Scenario, isolated: bool) -> AggregatorSetup:
        return cls(strategy=scenario.strategy, objective=scenario.objective,
                   num_clients=scenario.partition.num_clients,
                   client_states_in_memory=scenario.federation.client_states_in_memory, isolated=isolated)


class AggregatorActor:
    """Holds the global adapter, the strategy and the client-state store; runs on the driver's node.

    In the ``local`` baseline there is no aggregation: each client keeps its own adapter in the store,
    and a client's next fit starts from it (the clients never see each other's updates).
    """

    def __init__(self, setup: AggregatorSetup, initial_state: AdapterState, run_path: str) -> None:
        self.strategy = build_strategy(setup.strategy.name, setup.strategy.options,
                                       num_clients=setup.num_clients)
        self.objective = build_objective(setup.objective.name, setup.objective.options)
        self.global_state = initial_state
        self.isolated = setup.isolated
        self.clients = ClientStateStore(os.path.join(run_path, "client_state"), setup.client_states_in_memory)

    def get_global(self) -> AdapterState:
        return self.global_state

    def get_client_state(self, client_id: int) -> AdapterState:
        """The adapter a client starts from in the local baseline (the initial one before its first fit)."""
        return (self.clients.get(client_id) or {}).get("adapter", self.global_state)

    def configure_fit(self, server_round: int, cohort: list[int]) -> dict[int, LocalObjective]:
        """Each cohort member's objective: the strategy's for this round, with the client's own state."""
        objective = self.strategy.configure_fit(server_round, cohort, self.global_state, self.objective)
        return {c: objective.for_client(self.clients.get(c)) for c in cohort}

    def aggregate(self, server_round: int, reports: list[FitReport], params: list[Any],
                  failures: list[ClientFailure]) -> dict[str, float]:
        """Aggregate; ``params`` holds ObjectRefs (fetched here, never by the driver)."""
        import ray

        states = ray.get(list(params))
        results = [ClientResult(client_id=r.client_id, num_examples=r.num_examples, params=s,
                                metrics=r.metrics, extras=r.extras)
                   for r, s in zip(reports, states)]
        for result in results:
            kept = self.strategy.client_state_update(result)
            if kept:
                self.clients.update(result.client_id, **kept)
        if self.isolated:
            for result in results:
                self.clients.update(result.client_id, adapter=result.params)
            return {"clients_kept": float(len(results))}
        self.global_state, metrics = self.strategy.aggregate_fit(
            server_round, self.global_state, results, failures)
        return metrics

    def global_nbytes(self) -> int:
        return state_nbytes(self.global_state)

    def snapshot(self) -> dict[str, Any]:
        """Everything server-side a checkpoint must hold."""
        return {"global_state": self.global_state, "strategy": self.strategy.state_dict(),
                "clients": self.clients.state_dict()}

    def restore(self, snapshot: dict[str, Any]) -> None:
        self.global_state = snapshot["global_state"]
        self.strategy.load_state_dict(snapshot["strategy"])
        self.clients.load_state_dict(snapshot["clients"])
