"""SCAFFOLD (Karimireddy et al., 2020, "SCAFFOLD: Stochastic Controlled Averaging for Federated
Learning"), both halves: clients step with gradients corrected by c − c_i and return Δc_i (option II,
see :class:`~fedray.client.objectives.ScaffoldObjective`); the server applies

    x ← x + η_g · (1/|S|) Σ_{i∈S} (y_i − x),        c ← c + (1/N) Σ_{i∈S} Δc_i

with N the total number of clients. The reference's "scaffold" had no client side and reduced to
FedAvg; here the client half is paired automatically and any other objective is refused.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from fedray.client.objectives import LocalObjective, ScaffoldObjective
from fedray.errors import FedRayError
from fedray.strategies.base import (
    AdapterState,
    ClientFailure,
    ClientResult,
    Strategy,
    apply_update,
    check_range,
    clone_state,
    pseudo_gradient,
    round_metrics,
    usable_results,
)
from fedray.strategies.registry import STRATEGIES


@STRATEGIES.register("scaffold")
class Scaffold(Strategy):
    """SCAFFOLD's server: unweighted model step and the control-variate update (see module docstring)."""

    def __init__(self, server_lr: float = 1.0, num_clients: int = 0) -> None:
        check_range("scaffold server_lr", server_lr, low=0.0, low_open=True)
        if isinstance(num_clients, bool) or not isinstance(num_clients, int) or num_clients < 0:
            raise FedRayError(f"scaffold: num_clients must be a non-negative integer (0: set by the "
                              f"engine from partition.num_clients), got {num_clients!r}")
        self.server_lr = server_lr
        self.num_clients = num_clients
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

    def aggregate_fit(self, server_round: int, global_state: AdapterState,
                      results: Sequence[ClientResult],
                      failures: Sequence[ClientFailure]) -> tuple[AdapterState, dict[str, float]]:
        results, rejected = usable_results(global_state, results, failures)
        missing = [r.client_id for r in results if "control_delta" not in r.extras]
        if missing:
            raise FedRayError(f"scaffold: clients {missing} returned no control_delta; they did not train "
                              "with SCAFFOLD's client objective")
        total = self.num_clients or len(results)
        if self.control is None:
            self.control = {k: torch.zeros_like(v) for k, v in global_state.items()}
        for key in self.control:
            summed = sum(r.extras["control_delta"][key].to(torch.float64) for r in results)
            self.control[key] = (self.control[key].to(torch.float64) + summed / total).to(
                self.control[key].dtype)
        step = pseudo_gradient(global_state, results, weighted=False)
        metrics = round_metrics(results, failures, rejected)
        metrics["control_norm"] = float(sum(float(v.norm() ** 2) for v in self.control.values()) ** 0.5)
        return apply_update(global_state, step, self.server_lr), metrics

    def state_dict(self) -> dict[str, Any]:
        return {"control": clone_state(self.control)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.control = clone_state(state["control"])
