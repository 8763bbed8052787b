"""SCAFFOLD (Karimireddy et al., 2020, "SCAFFOLD: Stochastic Controlled Averaging for Federated
Learning"), both halves: clients step with gradients corrected by c − c_i and return Δc_i (option II,
see :class:`~fedray.client.objectives.ScaffoldObjective`); the server applies

    x ← x + η_g · (1/|S|) Σ_{i∈S} (y_i − x),        c ← c + (1/N) Σ_{i∈S} Δc_i

with N the total number of clients (the population the engine passes; the cohort size |S| where none
is given). Each client's own c_i is kept for its next fit through :meth:`Scaffold.client_state_update`.
The reference's "scaffold" had no client side and reduced to FedAvg; here the client half is paired
automatically and any other objective is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from fedray.client.objectives import CONTROL_DELTA, CONTROL_VARIATE, LocalObjective, ScaffoldObjective
from fedray.config.schema import spec
from fedray.errors import FedRayError
from fedray.strategies.base import AdapterState, Aggregate, ClientResult, Strategy, StrategyParams
from fedray.strategies.registry import register
from fedray.strategies.updates import apply_update, pseudo_gradient


@dataclass(frozen=True)
class ScaffoldParams(StrategyParams):
    """SCAFFOLD's server parameter."""

    server_lr: float = spec(1.0, gt=0.0, help="global step size η_g on the unweighted mean change")


@register("scaffold")
class Scaffold(Strategy):
    """SCAFFOLD's server: unweighted model step and the control-variate update (see module docstring)."""

    Params = ScaffoldParams
    linear = True
    state_keys = ("control",)

    def init_state(self) -> None:
        self.control: AdapterState | None = None  # c, zero until the first aggregation

    def configure_fit(self, server_round: int, cohort: Sequence[int],
                      global_state: AdapterState | None = None,
                      objective: LocalObjective | None = None) -> LocalObjective:
        if objective is not None and type(objective) is not LocalObjective:
            raise FedRayError(f"strategy scaffold brings its own client objective; remove objective "
                              f"{type(objective).__name__} from the scenario (objective.name: plain)")
        if self.control is None:
            if global_state is None:
                raise FedRayError("scaffold.configure_fit needs the global state to size its variates")
            self.control = {k: torch.zeros_like(v) for k, v in global_state.items()}
        return ScaffoldObjective(server_variate=self.control)

    def client_state_update(self, result: ClientResult) -> dict[str, Any] | None:
        """The client's new c_i, which :meth:`ScaffoldObjective.for_client` hands back next time."""
        variate = result.extras.get(CONTROL_VARIATE)
        return None if variate is None else {CONTROL_VARIATE: variate}

    def aggregate(self, server_round: int, global_state: AdapterState,
                  results: list[ClientResult]) -> Aggregate:
        missing = [r.client_id for r in results if CONTROL_DELTA not in r.extras]
        if missing:
            raise FedRayError(f"scaffold: clients {missing} returned no control_delta; they did not train "
                              "with SCAFFOLD's client objective")
        total = self.num_clients or len(results)
        if self.control is None:
            self.control = {k: torch.zeros_like(v) for k, v in global_state.items()}
        for key in self.control:
            summed = sum(r.extras[CONTROL_DELTA][key].to(torch.float64) for r in results)
            self.control[key] = (self.control[key].to(torch.float64) + summed / total).to(
                self.control[key].dtype)
        step = pseudo_gradient(global_state, results, weighted=False)
        control_norm = float(sum(float(v.norm() ** 2) for v in self.control.values()) ** 0.5)
        return apply_update(global_state, step, self.params.server_lr), {"control_norm": control_norm}
