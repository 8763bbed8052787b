"""The FedOpt family (Reddi et al., 2021, "Adaptive Federated Optimization", ICLR): FedAdagrad, FedAdam,
FedYogi. The server treats the clients' mean change Δ as a pseudo-gradient and applies an adaptive
optimizer to it; the three rules differ only in the second-moment update, which is all a subclass
overrides.

Defaults follow the FedMLLM reference (η = τ = 1e-3, β1 = 0.9, β2 = 0.99), the values used for LoRA
adapters of an MLLM. Flower's defaults (e.g. FedAdam η = 0.1, τ = 1e-9) suit full models trained from
scratch; on LoRA adapters their early, almost sign-like steps of size η would swamp the adapter.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from typing import Any, Sequence

import torch

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


class FedOpt(Strategy):
    """Shared server optimizer of the FedOpt family; subclasses define :meth:`second_moment`.

    ``variant="standard"`` (Reddi et al., Algorithm 2 with m₀ = v₀ = 0, as in Flower):
    Δ = Σ_k (n_k/N)(x_k − x) (sample-weighted); m ← β1·m + (1−β1)·Δ; v ← second_moment(v, Δ²);
    x ← x + η_t·m/(√v + τ), with η_t = η unless ``bias_correction``, then η·√(1−β2ᵗ)/(1−β1ᵗ)
    (t counts updates including this one; rules without β2 use η/(1−β1ᵗ)).

    ``variant="fedmllm"`` (the FedMLLM reference, spec §4.1 rules 3–5): Δ = (1/K) Σ_k (x_k − x)
    (unweighted); m ← Δ on the first aggregated round, β1·m + (1−β1)·Δ afterwards; v₀ = τ² and v is
    updated from m² (not Δ²); x ← x + η·m/(√v + τ); no bias correction.
    """

    name = "fedopt"
    uses_beta2 = True

    def __init__(self, eta: float, beta1: float, beta2: float, tau: float, bias_correction: bool,
                 variant: str) -> None:
        check_range(f"{self.name} eta", eta, low=0.0, low_open=True)
        check_range(f"{self.name} beta1", beta1, low=0.0, high=1.0, high_open=True)
        check_range(f"{self.name} beta2", beta2, low=0.0, high=1.0, high_open=True)
        check_range(f"{self.name} tau", tau, low=0.0, low_open=True)
        check_choice(f"{self.name} bias_correction", bias_correction, (False, True))
        check_choice(f"{self.name} variant", variant, VARIANTS)
        if variant == "fedmllm" and bias_correction:
            raise FedRayError(f"{self.name} variant='fedmllm' has no bias correction; got "
                              f"bias_correction=True, drop it or use variant='standard'")
        self.eta, self.beta1, self.beta2, self.tau = float(eta), float(beta1), float(beta2), float(tau)
        self.bias_correction = bool(bias_correction)
        self.variant = variant
        self.t = 0  # server updates applied so far
        self.m: AdapterState | None = None
        self.v: AdapterState | None = None

    @abstractmethod
    def second_moment(self, v: torch.Tensor, g2: torch.Tensor) -> torch.Tensor:
        """The new second moment from the old one ``v`` and the squared (pseudo-)gradient ``g2``."""

    def aggregate_fit(
        self,
        server_round: int,
        global_state: AdapterState,
        results: Sequence[ClientResult],
        failures: Sequence[ClientFailure],
    ) -> tuple[AdapterState, dict[str, float]]:
        results, rejected = usable_results(global_state, results, failures)
        if self.variant == "standard":
            self._standard_moments(pseudo_gradient(global_state, results, weighted=True))
        else:
            self._fedmllm_moments(pseudo_gradient(global_state, results, weighted=False))
        self.t += 1
        eta_t = self.eta * self._correction()
        step = {k: m / (torch.sqrt(self.v[k]) + self.tau) for k, m in self.m.items()}  # x ← x + η_t·step
        metrics = round_metrics(results, failures, rejected)
        metrics["server_lr"] = eta_t
        return apply_update(global_state, step, scale=eta_t), metrics

    def _standard_moments(self, delta: AdapterState) -> None:
        b1 = self.beta1
        m_old = self.m if self.m is not None else {k: torch.zeros_like(d) for k, d in delta.items()}
        v_old = self.v if self.v is not None else {k: torch.zeros_like(d) for k, d in delta.items()}
        self.m = {k: b1 * m_old[k] + (1.0 - b1) * d for k, d in delta.items()}
        self.v = {k: self.second_moment(v_old[k], d * d) for k, d in delta.items()}

    def _fedmllm_moments(self, delta: AdapterState) -> None:
        b1 = self.beta1
        if self.m is None:  # the reference's round 0: m ← Δ, v ← τ² before its update
            self.m = dict(delta)
            v_old = {k: torch.full_like(d, self.tau**2) for k, d in delta.items()}
        else:
            self.m = {k: b1 * self.m[k] + (1.0 - b1) * d for k, d in delta.items()}
            v_old = self.v
        self.v = {k: self.second_moment(v_old[k], m * m) for k, m in self.m.items()}

    def _correction(self) -> float:
        if not self.bias_correction:
            return 1.0
        factor = 1.0 / (1.0 - self.beta1**self.t)
        if self.uses_beta2:
            factor *= math.sqrt(1.0 - self.beta2**self.t)
        return factor

    def state_dict(self) -> dict[str, Any]:
        return {"t": self.t, "m": clone_state(self.m), "v": clone_state(self.v)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        missing = {"t", "m", "v"} - set(state)
        if missing:
            raise FedRayError(f"{self.name} state needs keys t, m, v; missing {sorted(missing)}")
        self.t = int(state["t"])
        self.m, self.v = clone_state(state["m"]), clone_state(state["v"])


@STRATEGIES.register("fedadagrad")
class FedAdagrad(FedOpt):
    """FedAdagrad (Reddi et al., 2021): v ← v + Δ²; x ← x + η·m/(√v + τ). β2 is accepted but unused.

    ``beta1`` defaults to 0 (m = Δ, no momentum); the fedmllm variant requires it (the reference uses
    no momentum: m ← Δ every round).
    """

    name = "fedadagrad"
    uses_beta2 = False

    def __init__(self, eta: float = 1e-3, beta1: float = 0.0, beta2: float = 0.99, tau: float = 1e-3,
                 bias_correction: bool = False, variant: str = "standard") -> None:
        super().__init__(eta, beta1, beta2, tau, bias_correction, variant)
        if variant == "fedmllm" and beta1 != 0.0:
            raise FedRayError(f"fedadagrad variant='fedmllm' uses no momentum (m ← Δ every round); got "
                              f"beta1={beta1!r}, set beta1=0 or use variant='standard'")

    def second_moment(self, v: torch.Tensor, g2: torch.Tensor) -> torch.Tensor:
        return v + g2


@STRATEGIES.register("fedadam")
class FedAdam(FedOpt):
    """FedAdam (Reddi et al., 2021): v ← β2·v + (1−β2)·Δ²; x ← x + η·m/(√v + τ)."""

    name = "fedadam"

    def __init__(self, eta: float = 1e-3, beta1: float = 0.9, beta2: float = 0.99, tau: float = 1e-3,
                 bias_correction: bool = False, variant: str = "standard") -> None:
        super().__init__(eta, beta1, beta2, tau, bias_correction, variant)

    def second_moment(self, v: torch.Tensor, g2: torch.Tensor) -> torch.Tensor:
        return self.beta2 * v + (1.0 - self.beta2) * g2


@STRATEGIES.register("fedyogi")
class FedYogi(FedOpt):
    """FedYogi (Reddi et al., 2021): v ← v − (1−β2)·Δ²·sign(v − Δ²); x ← x + η·m/(√v + τ)."""

    name = "fedyogi"

    def __init__(self, eta: float = 1e-3, beta1: float = 0.9, beta2: float = 0.99, tau: float = 1e-3,
                 bias_correction: bool = False, variant: str = "standard") -> None:
        super().__init__(eta, beta1, beta2, tau, bias_correction, variant)

    def second_moment(self, v: torch.Tensor, g2: torch.Tensor) -> torch.Tensor:
        return v - (1.0 - self.beta2) * g2 * torch.sign(v - g2)
