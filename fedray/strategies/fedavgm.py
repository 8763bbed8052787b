"""FedAvgM (Hsu, Qi & Brown, 2019, "Measuring the Effects of Non-Identical Data Distribution for
Federated Visual Classification"): FedAvg's pseudo-gradient driven through server heavy-ball momentum."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from fedray.config.schema import spec
from fedray.strategies.base import Accumulator, AdapterState, Aggregate, Strategy, StrategyParams, Variant
from fedray.strategies.registry import register
from fedray.strategies.updates import MeanAccumulator, MeanFold, apply_update, elementwise, update_weights


@dataclass(frozen=True)
class FedAvgMParams(StrategyParams):
    """FedAvgM's parameters."""

    fedmllm_requires = {"server_lr": (1.0, "has no server learning rate (x ← x + m)")}

    server_lr: float = spec(1.0, gt=0.0, help="server learning rate (fedmllm variant: must stay 1.0)")
    momentum: float = spec(0.9, ge=0.0, lt=1.0, help="momentum β of the server velocity")
    variant: Variant = spec("standard", help="standard: heavy ball; fedmllm: the reference's dampened rule")


@register("fedavgm")
class FedAvgM(Strategy):
    """Server momentum over the sample-weighted pseudo-gradient Δ = Σ_k (n_k/N)(x_k − x).

    ``variant="standard"`` (the paper's heavy ball): v ← momentum·v + Δ with v₀ = 0; x ← x + server_lr·v.

    ``variant="fedmllm"`` (the FedMLLM reference's dampened momentum with an implicit server learning
    rate of 1): m ← Δ on the first aggregated round, m ← β·m + (1−β)·Δ afterwards (β = ``momentum``);
    x ← x + m. ``server_lr`` must stay 1.0 there.
    """

    Params = FedAvgMParams
    linear = True
    state_keys = ("velocity",)

    def init_state(self) -> None:
        # A dict of tensors, or a FlatState (numpy) while the adapters arrive as float32 flat buffers.
        self.velocity: Mapping[str, Any] | None = None  # v (standard) or m (fedmllm); None before round one

    def accumulate(self, server_round: int, global_state: AdapterState,
                   num_examples: Sequence[int]) -> Accumulator:
        fold = MeanFold(update_weights(num_examples, weighted=True), center=global_state)
        return MeanAccumulator(fold, lambda done: self._step(global_state, done.update()))

    def _step(self, global_state: AdapterState, delta: Mapping[str, Any]) -> Aggregate:
        """Move the velocity by the round's pseudo-gradient Δ and apply it."""
        beta = self.params.momentum
        if self.velocity is None:  # v₀ = 0 gives v = Δ; the fedmllm rule also starts from m = Δ
            self.velocity = delta
        elif self.params.variant == "standard":
            self.velocity = elementwise(lambda v, d: beta * v + d, self.velocity, delta)
        else:
            self.velocity = elementwise(lambda m, d: beta * m + (1.0 - beta) * d, self.velocity, delta)
        return apply_update(global_state, self.velocity, scale=self.params.server_lr), {}
