"""FedAvgM (Hsu, Qi & Brown, 2019, "Measuring the Effects of Non-Identical Data Distribution for
Federated Visual Classification"): FedAvg's pseudo-gradient driven through server heavy-ball momentum."""

from __future__ import annotations

from typing import Any, Sequence

from fedray.errors import FedRayError
from fedray.strategies.base import (
    VARIANTS,
    AdapterState,
    ClientFailure,
    ClientResult,
    Strategy,
    apply_update,
    check_choice,
    check_range,
    clone_state,
    pseudo_gradient,
    round_metrics,
    usable_results,
)
from fedray.strategies.registry import STRATEGIES


@STRATEGIES.register("fedavgm")
class FedAvgM(Strategy):
    """Server momentum over the sample-weighted pseudo-gradient Δ = Σ_k (n_k/N)(x_k − x).

    ``variant="standard"`` (the paper's heavy ball): v ← momentum·v + Δ with v₀ = 0; x ← x + server_lr·v.

    ``variant="fedmllm"`` (the FedMLLM reference, spec §4.1 rule 2, dampened momentum with an implicit
    server learning rate of 1): m ← Δ on the first aggregated round, m ← β·m + (1−β)·Δ afterwards
    (β = ``momentum``); x ← x + m. ``server_lr`` must stay 1.0 there.
    """

    def __init__(self, server_lr: float = 1.0, momentum: float = 0.9, variant: str = "standard") -> None:
        check_range("fedavgm server_lr", server_lr, low=0.0, low_open=True)
        check_range("fedavgm momentum", momentum, low=0.0, high=1.0, high_open=True)
        check_choice("fedavgm variant", variant, VARIANTS)
        if variant == "fedmllm" and server_lr != 1.0:
            raise FedRayError(f"fedavgm variant='fedmllm' has no server learning rate (x ← x + m); got "
                              f"server_lr={server_lr!r}, leave it at 1.0 or use variant='standard'")
        self.server_lr = float(server_lr)
        self.momentum = float(momentum)
        self.variant = variant
        self.velocity: AdapterState | None = None  # v (standard) or m (fedmllm); None before round one

    def aggregate_fit(
        self,
        server_round: int,
        global_state: AdapterState,
        results: Sequence[ClientResult],
        failures: Sequence[ClientFailure],
    ) -> tuple[AdapterState, dict[str, float]]:
        results, rejected = usable_results(global_state, results, failures)
        delta = pseudo_gradient(global_state, results, weighted=True)
        beta = self.momentum
        if self.velocity is None:  # v₀ = 0 gives v = Δ; the fedmllm rule also starts from m = Δ
            self.velocity = delta
        elif self.variant == "standard":
            self.velocity = {k: beta * v + delta[k] for k, v in self.velocity.items()}
        else:
            self.velocity = {k: beta * m + (1.0 - beta) * delta[k] for k, m in self.velocity.items()}
        new_state = apply_update(global_state, self.velocity, scale=self.server_lr)
        return new_state, round_metrics(results, failures, rejected)

    def state_dict(self) -> dict[str, Any]:
        return {"velocity": clone_state(self.velocity)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "velocity" not in state:
            raise FedRayError(f"fedavgm state needs key 'velocity'; got keys {sorted(state)}")
        self.velocity = clone_state(state["velocity"])
