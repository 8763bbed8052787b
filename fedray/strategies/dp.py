"""Central differential privacy with fixed clipping: DP-FedAvg (McMahan et al., 2018, "Learning
Differentially Private Recurrent Language Models"; Andrew et al., 2021, "Differentially Private Learning
with Adaptive Clipping", fixed-clip baseline), wrapping a mean-based server rule.

Where the noise goes. Each client's update u_k = x_k − x (all adapter tensors as one vector) is clipped to
ū_k = u_k·min(1, C/‖u_k‖). The privatised quantity is the UNWEIGHTED average of the clipped updates plus
one Gaussian draw, ũ = (1/K) Σ_k ū_k + z with z ~ N(0, (σ·C/K)²) per coordinate (K = clients aggregated
this round). Averaging is unweighted on purpose: with sample weights one client's share of the sum, and so
the sensitivity, is no longer bounded by C. The wrapped rule is then handed the clients x + ū_k + z, each
with weight 1; every accepted inner rule depends on the clients only through their unweighted mean, which
is then exactly x + ũ, so the rule runs on the private average and its server optimizer (momentum, Adam,
...) is post-processing. For the default ``inner="fedavg"`` this is x ← x + ũ: the noise is added to the
aggregate's change, as in DP-FedAvg.

Accounting. ε for the given δ after T rounds of the Gaussian mechanism with noise multiplier σ, under
add/remove-one-client adjacency (user-level DP), by Rényi DP: RDP(α) = T·α/(2σ²), converted to (ε, δ)
with the conversion of Balle et al. (2020) over a grid of orders α, using Opacus's RDP analysis. It
ignores the amplification by sampling a cohort of the clients, so the reported ε is conservative.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Literal, Mapping, Optional, Sequence, get_args

from fedray.config.schema import spec
from fedray.lazy import lazy_import
from fedray.seeding import derive_seed
from fedray.strategies import fedavg, fedavgm, fedopt  # noqa: F401  (register the inner rules)
from fedray.strategies.base import Accumulator, AdapterState, ClientResult, Strategy, StrategyParams
from fedray.strategies.registry import STRATEGIES, build_strategy, register

torch = lazy_import("torch")  # imported by the first computation (fedray.lazy)

#: Rules whose output depends on the clients only through their unweighted mean (with equal weights).
MeanBasedRule = Literal["fedavg", "fedavgm", "fedadagrad", "fedadam", "fedyogi"]
MEAN_BASED_RULES: tuple[str, ...] = get_args(MeanBasedRule)

# RDP orders searched by the accountant (Opacus's default grid extended to large α for large σ).
RDP_ORDERS = ([1 + x / 10.0 for x in range(1, 100)] + [float(a) for a in range(12, 64)]
              + [64.0, 80.0, 96.0, 128.0, 192.0, 256.0, 384.0, 512.0, 1024.0, 2048.0, 4096.0])


def clip_update(global_state: AdapterState, params: AdapterState,
                clip_norm: float) -> tuple[AdapterState, float]:
    """(ū, ‖u‖): the update u = params − global scaled to L2 norm ≤ ``clip_norm`` (float64), and ‖u‖."""
    update = {k: params[k].to(torch.float64) - x.to(torch.float64) for k, x in global_state.items()}
    norm = math.sqrt(sum(float((u * u).sum()) for u in update.values()))
    scale = min(1.0, clip_norm / norm) if norm > 0 else 1.0
    return {k: u * scale for k, u in update.items()}, norm


def gaussian_epsilon(noise_multiplier: float, rounds: int, delta: float) -> float:
    """ε(δ) of ``rounds`` compositions of the Gaussian mechanism with ``noise_multiplier`` σ (no sampling)."""
    if rounds == 0:
        return 0.0
    if noise_multiplier == 0:
        return math.inf
    from opacus.accountants.analysis.rdp import compute_rdp, get_privacy_spent  # heavy: import on use

    rdp = compute_rdp(q=1.0, noise_multiplier=noise_multiplier, steps=rounds, orders=RDP_ORDERS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "optimal order is the largest alpha"
        epsilon, _ = get_privacy_spent(orders=RDP_ORDERS, rdp=rdp, delta=delta)
    return max(0.0, float(epsilon))


@dataclass(frozen=True)
class DPParams(StrategyParams):
    """The DP wrapper's parameters; the wrapped rule's are checked as ``inner_params``."""

    inner: MeanBasedRule = spec("fedavg", help="the wrapped rule (one that reads the clients' mean only)")
    inner_params: Optional[Mapping[str, Any]] = spec(None, help="the wrapped rule's parameters")
    clip_norm: float = spec(1.0, gt=0.0, help="C: each client's update is clipped to L2 norm <= C")
    noise_multiplier: float = spec(1.0, ge=0.0, help="σ: noise std σ·C/K on the mean (0: no noise, ε = inf)")
    delta: float = spec(1e-5, gt=0.0, lt=1.0, help="δ of the reported (ε, δ)")
    seed: int = spec(0, ge=0, help="seeds the noise of each round (with the round number)")

    def problems(self) -> list[str]:
        _, inner_problems = STRATEGIES.parse(self.inner, self.inner_params, "inner_params")
        return super().problems() + inner_problems


@register("dp")
class DPFixedClip(Strategy):
    """Central DP with fixed clipping around a mean-based rule (see the module docstring for the math).

    ``inner`` / ``inner_params``: the wrapped rule (one of fedavg, fedavgm, fedadagrad, fedadam, fedyogi)
    and its parameters (default: none). ``clip_norm`` C > 0; ``noise_multiplier`` σ ≥ 0 (0 disables the
    noise, and ε is infinite); ``delta`` δ ∈ (0, 1) for the reported ε; ``seed``: the noise of round r is
    drawn from a ``torch.Generator`` seeded by (seed, r), so runs are reproducible.
    Metrics: ``dp_epsilon``, ``dp_delta``, ``dp_noise_std``, ``dp_clipped_fraction``,
    ``dp_mean_update_norm`` (before clipping), plus the wrapped rule's own.
    """

    Params = DPParams
    linear = True  # the clipped updates enter only through their sum

    def init_state(self) -> None:
        self.inner = build_strategy(self.params.inner, self.params.inner_params, num_clients=self.num_clients)
        self.rounds = 0  # noisy aggregations so far, for the accountant

    def accumulate(self, server_round: int, global_state: AdapterState,
                   num_examples: Sequence[int]) -> Accumulator:
        return _PrivateFold(self, server_round, global_state, len(num_examples))

    def _metrics(self, norms: list[float], noise_std: float) -> dict[str, float]:
        """The round's privacy metrics; counts the round for the accountant."""
        clip_norm, sigma = self.params.clip_norm, self.params.noise_multiplier
        self.rounds += 1
        return {
            "dp_epsilon": gaussian_epsilon(sigma, self.rounds, self.params.delta),
            "dp_delta": self.params.delta,
            "dp_noise_std": noise_std,
            "dp_clipped_fraction": sum(n > clip_norm for n in norms) / len(norms),
            "dp_mean_update_norm": sum(norms) / len(norms),
        }

    def _noise(self, server_round: int, global_state: AdapterState, std: float) -> AdapterState:
        """z ~ N(0, std²) per coordinate (float64), drawn in sorted key order from the round's generator."""
        if std == 0:
            return {k: torch.zeros(x.shape, dtype=torch.float64) for k, x in global_state.items()}
        generator = torch.Generator().manual_seed(derive_seed(self.params.seed, "dp-noise", server_round))
        return {k: torch.randn(global_state[k].shape, generator=generator, dtype=torch.float64) * std
                for k in sorted(global_state)}

    def state_dict(self) -> dict[str, Any]:
        return {"rounds": self.rounds, "inner": self.inner.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.require_keys(state, "rounds", "inner")
        self.rounds = int(state["rounds"])
        self.inner.load_state_dict(state["inner"])


class _PrivateFold(Accumulator):
    """DP-FedAvg one client at a time: clip its update, add the round's noise, fold the private client
    into the wrapped rule (with weight 1). The noise's std σ·C/K needs the round's K up front."""

    def __init__(self, strategy: DPFixedClip, server_round: int, global_state: AdapterState,
                 count: int) -> None:
        self.strategy, self.server_round, self.global_state = strategy, server_round, global_state
        self.noise_std = strategy.params.noise_multiplier * strategy.params.clip_norm / count
        self.noise = strategy._noise(server_round, global_state, self.noise_std)
        self.inner = strategy.inner.accumulate(server_round, global_state, [1] * count)
        self.private: list[ClientResult] = []  # kept only for an inner rule that does not accumulate
        self.norms: list[float] = []

    def add(self, result: ClientResult) -> None:
        update, norm = clip_update(self.global_state, result.params, self.strategy.params.clip_norm)
        self.norms.append(norm)
        params = {k: (x.to(torch.float64) + update[k] + self.noise[k]).to(x.dtype)
                  for k, x in self.global_state.items()}
        private = ClientResult(result.client_id, 1, params, metrics=dict(result.metrics))
        if self.inner is None:
            self.private.append(private)
        else:
            self.inner.add(private)

    def finish(self) -> tuple[AdapterState, dict[str, float]]:  # the rule's Aggregate
        # The private clients are finite and checked already: the inner rule's own fold takes them.
        new_state, metrics = self.inner.finish() if self.inner is not None else \
            self.strategy.inner.aggregate(self.server_round, self.global_state, self.private)
        metrics.update(self.strategy._metrics(self.norms, self.noise_std))
        return new_state, metrics
