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
from dataclasses import dataclass
from typing import Sequence

from fedray.config.schema import spec
from fedray.lazy import lazy_import
from fedray.strategies.base import Accumulator, AdapterState, Aggregate, Strategy, StrategyParams, Variant
from fedray.strategies.registry import register
from fedray.strategies.updates import MeanAccumulator, MeanFold, apply_update, update_weights

torch = lazy_import("torch")  # imported by the first computation (fedray.lazy)


@dataclass(frozen=True)
class FedOptParams(StrategyParams):
    """The FedOpt family's parameters (one class for the three rules)."""

    fedmllm_requires = {"bias_correction": (False, "has no bias correction")}

    eta: float = spec(1e-3, gt=0.0, help="server learning rate η")
    beta1: float = spec(0.9, ge=0.0, lt=1.0, help="first-moment decay β1 (0: no momentum)")
    beta2: float = spec(0.99, ge=0.0, lt=1.0, help="second-moment decay β2 (unused by fedadagrad)")
    tau: float = spec(1e-3, gt=0.0, help="adaptivity τ added to √v")
    bias_correction: bool = spec(False, help="scale η by Adam's bias corrections (standard variant only)")
    variant: Variant = spec("standard", help="standard: Reddi et al.; fedmllm: the reference's formulas")


@dataclass(frozen=True)
class FedAdagradParams(FedOptParams):
    """FedAdagrad's: the family's, with no momentum by default (the fedmllm variant requires none)."""

    fedmllm_requires = {**FedOptParams.fedmllm_requires,
                        "beta1": (0.0, "of fedadagrad uses no momentum (m ← Δ every round)")}

    beta1: float = spec(0.0, ge=0.0, lt=1.0, help="first-moment decay β1 (0: no momentum)")


class FedOpt(Strategy):
    """Shared server optimizer of the FedOpt family; subclasses define :meth:`second_moment`.

    ``variant="standard"`` (Reddi et al., Algorithm 2 with m₀ = v₀ = 0, as in Flower):
    Δ = Σ_k (n_k/N)(x_k − x) (sample-weighted); m ← β1·m + (1−β1)·Δ; v ← second_moment(v, Δ²);
    x ← x + η_t·m/(√v + τ), with η_t = η unless ``bias_correction``, then η·√(1−β2ᵗ)/(1−β1ᵗ)
    (t counts updates including this one; rules without β2 use η/(1−β1ᵗ)).

    ``variant="fedmllm"`` (the FedMLLM reference's formulas): Δ = (1/K) Σ_k (x_k − x) (unweighted);
    m ← Δ on the first aggregated round, β1·m + (1−β1)·Δ afterwards; v₀ = τ² and v is updated from m²
    (not Δ²); x ← x + η·m/(√v + τ); no bias correction.
    """

    Params = FedOptParams
    linear = True
    state_keys = ("t", "m", "v")
    uses_beta2 = True

    def init_state(self) -> None:
        self.t = 0  # server updates applied so far
        self.m: AdapterState | None = None
        self.v: AdapterState | None = None

    @abstractmethod
    def second_moment(self, v: torch.Tensor, g2: torch.Tensor) -> torch.Tensor:
        """The new second moment from the old one ``v`` and the squared (pseudo-)gradient ``g2``."""

    def accumulate(self, server_round: int, global_state: AdapterState,
                   num_examples: Sequence[int]) -> Accumulator:
        """Δ is sample-weighted in the standard variant, unweighted in the fedmllm one."""
        weighted = self.params.variant == "standard"
        fold = MeanFold(update_weights(num_examples, weighted), center=global_state)
        return MeanAccumulator(fold, lambda done: self._step(global_state, done.update()))

    def _step(self, global_state: AdapterState, delta: AdapterState) -> Aggregate:
        """Move the moments by the round's pseudo-gradient Δ and take the adaptive step."""
        if self.params.variant == "standard":
            self._standard_moments(delta)
        else:
            self._fedmllm_moments(delta)
        self.t += 1
        eta_t = self.params.eta * self._correction()
        tau = self.params.tau
        step = {k: m / (torch.sqrt(self.v[k]) + tau) for k, m in self.m.items()}  # x ← x + η_t·step
        return apply_update(global_state, step, scale=eta_t), {"server_lr": eta_t}

    def _standard_moments(self, delta: AdapterState) -> None:
        b1 = self.params.beta1
        m_old = self.m if self.m is not None else {k: torch.zeros_like(d) for k, d in delta.items()}
        v_old = self.v if self.v is not None else {k: torch.zeros_like(d) for k, d in delta.items()}
        self.m = {k: b1 * m_old[k] + (1.0 - b1) * d for k, d in delta.items()}
        self.v = {k: self.second_moment(v_old[k], d * d) for k, d in delta.items()}

    def _fedmllm_moments(self, delta: AdapterState) -> None:
        b1 = self.params.beta1
        if self.m is None:  # the reference's round 0: m ← Δ, v ← τ² before its update
            self.m = dict(delta)
            v_old = {k: torch.full_like(d, self.params.tau**2) for k, d in delta.items()}
        else:
            self.m = {k: b1 * self.m[k] + (1.0 - b1) * d for k, d in delta.items()}
            v_old = self.v
        self.v = {k: self.second_moment(v_old[k], m * m) for k, m in self.m.items()}

    def _correction(self) -> float:
        if not self.params.bias_correction:
            return 1.0
        factor = 1.0 / (1.0 - self.params.beta1**self.t)
        if self.uses_beta2:
            factor *= math.sqrt(1.0 - self.params.beta2**self.t)
        return factor


@register("fedadagrad")
class FedAdagrad(FedOpt):
    """FedAdagrad (Reddi et al., 2021): v ← v + Δ²; x ← x + η·m/(√v + τ). β2 is accepted but unused.

    ``beta1`` defaults to 0 (m = Δ, no momentum); the fedmllm variant requires it (the reference uses
    no momentum: m ← Δ every round).
    """

    Params = FedAdagradParams
    uses_beta2 = False

    def second_moment(self, v: torch.Tensor, g2: torch.Tensor) -> torch.Tensor:
        return v + g2


@register("fedadam")
class FedAdam(FedOpt):
    """FedAdam (Reddi et al., 2021): v ← β2·v + (1−β2)·Δ²; x ← x + η·m/(√v + τ)."""

    def second_moment(self, v: torch.Tensor, g2: torch.Tensor) -> torch.Tensor:
        return self.params.beta2 * v + (1.0 - self.params.beta2) * g2


@register("fedyogi")
class FedYogi(FedOpt):
    """FedYogi (Reddi et al., 2021): v ← v − (1−β2)·Δ²·sign(v − Δ²); x ← x + η·m/(√v + τ)."""

    def second_moment(self, v: torch.Tensor, g2: torch.Tensor) -> torch.Tensor:
        return v - (1.0 - self.params.beta2) * g2 * torch.sign(v - g2)
