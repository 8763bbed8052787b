"""FedExP (Jhunjhunwala, Wang & Joshi, 2023, "FedExP: Speeding Up Federated Averaging via
Extrapolation", ICLR): FedAvg's unweighted mean update Δ̄ = (1/M) Σ_i Δ_i, Δ_i = x_i − x, applied with an
adaptive server step that extrapolates when the clients agree less than their updates' sizes suggest:

    η_g = max(1, Σ_i ‖Δ_i‖² / (2M · (‖Δ̄‖² + ε))),        x ← x + η_g · Δ̄

This file is the worked example of docs/architecture.md ("adding a strategy"): a parameter class, one
``aggregate`` method, and the ``register`` decorator; nothing else in fedray changes.
"""

from __future__ import annotations

from dataclasses import dataclass

from fedray.config.schema import spec
from fedray.lazy import lazy_import
from fedray.strategies.base import AdapterState, Aggregate, ClientResult, Strategy, StrategyParams
from fedray.strategies.registry import register
from fedray.strategies.updates import apply_update, pseudo_gradient

torch = lazy_import("torch")  # imported by the first computation (fedray.lazy)


@dataclass(frozen=True)
class FedExPParams(StrategyParams):
    epsilon: float = spec(1e-3, gt=0.0, help="ε in the step's denominator (the paper's default for LoRA-"
                                             "sized updates is small; it bounds η_g when Δ̄ ≈ 0)")
    max_step: float = spec(10.0, ge=1.0, help="cap on η_g (1: plain FedAvg with uniform weights)")


@register("fedexp")
class FedExP(Strategy):
    """FedAvg with FedExP's extrapolated server step (see the module docstring)."""

    Params = FedExPParams
    linear = False  # η_g needs every client's ‖Δ_i‖², not only their sum

    def aggregate(self, server_round: int, global_state: AdapterState,
                  results: list[ClientResult]) -> Aggregate:
        mean = pseudo_gradient(global_state, results, weighted=False)  # Δ̄
        spread = sum(_squared_norm(r.params, global_state) for r in results)  # Σ_i ‖Δ_i‖²
        mean_sq = sum(float(t.to(torch.float64).pow(2).sum()) for t in mean.values())  # ‖Δ̄‖²
        step = spread / (2 * len(results) * (mean_sq + self.params.epsilon))
        step = min(max(1.0, step), self.params.max_step)
        return apply_update(global_state, mean, scale=step), {"server_lr": step}


def _squared_norm(params: AdapterState, global_state: AdapterState) -> float:
    return sum(float((params[k].to(torch.float64) - x.to(torch.float64)).pow(2).sum())
               for k, x in global_state.items())
