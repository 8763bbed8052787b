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

from fedray.client.objectives import CONTROL_DELTA, CONTROL_VARIATE, LocalObjective, ScaffoldObjective
from fedray.config.schema import spec
from fedray.errors import FedRayError
from fedray.lazy import lazy_import
from fedray.strategies.base import (
    Accumulator,
    AdapterState,
    Aggregate,
    ClientResult,
    Strategy,
    StrategyParams,
)
from fedray.strategies.registry import register
from fedray.strategies.updates import MeanFold, apply_update, update_weights

torch = lazy_import("torch")  # imported by the first computation (fedray.lazy)


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

    def accumulate(self, server_round: int, global_state: AdapterState,
                   num_examples: Sequence[int]) -> Accumulator:
        return _ScaffoldFold(self, global_state, len(num_examples))

    def _step(self, global_state: AdapterState, control_sum: dict[str, torch.Tensor],
              count: int, step: AdapterState) -> Aggregate:
        """c ← c + Σ Δc_i / N, then x ← x + η_g · step."""
        total = self.num_clients or count
        if self.control is None:
            self.control = {k: torch.zeros_like(v) for k, v in global_state.items()}
        for key in self.control:
            self.control[key] = (self.control[key].to(torch.float64) + control_sum[key] / total).to(
                self.control[key].dtype)
        control_norm = float(sum(float(v.norm() ** 2) for v in self.control.values()) ** 0.5)
        return apply_update(global_state, step, self.params.server_lr), {"control_norm": control_norm}


class _ScaffoldFold(Accumulator):
    """SCAFFOLD's two sums, one client at a time: the unweighted mean change and Σ Δc_i (float64)."""

    def __init__(self, strategy: Scaffold, global_state: AdapterState, count: int) -> None:
        self.strategy, self.global_state, self.count = strategy, global_state, count
        self.update = MeanFold(update_weights([1] * count, weighted=False), center=global_state)
        self.control_sum = {k: torch.zeros_like(v, dtype=torch.float64) for k, v in global_state.items()}
        self.missing: list[int] = []

    def add(self, result: ClientResult) -> None:
        delta = result.extras.get(CONTROL_DELTA)
        if delta is None:
            self.missing.append(result.client_id)
            return
        self.update.add(result.params)
        for key, acc in self.control_sum.items():
            acc += delta[key].to(torch.float64)

    def finish(self) -> Aggregate:
        if self.missing:
            raise FedRayError(f"scaffold: clients {self.missing} returned no control_delta; they did not "
                              "train with SCAFFOLD's client objective")
        return self.strategy._step(self.global_state, self.control_sum, self.count, self.update.update())
