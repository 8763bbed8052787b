"""Byzantine-robust aggregation: FedMedian, FedTrimmedAvg, Krum / Multi-Krum.

All three ignore sample counts when deciding which values to trust (a client can lie about its count);
Multi-Krum uses them only to average the clients it kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from fedray.config.schema import spec
from fedray.errors import FedRayError
from fedray.lazy import lazy_import
from fedray.strategies.base import AdapterState, Aggregate, ClientResult, Strategy
from fedray.strategies.registry import register
from fedray.strategies.updates import weighted_mean

torch = lazy_import("torch")  # imported by the first computation (fedray.lazy)


def _sorted_stack(results: Sequence[ClientResult], key: str) -> torch.Tensor:
    """The clients' values of tensor ``key``, sorted per coordinate: shape (K, *tensor.shape), float64."""
    return torch.stack([r.params[key].to(torch.float64) for r in results]).sort(dim=0).values


def coordinate_median(global_state: AdapterState, results: Sequence[ClientResult]) -> AdapterState:
    """Per-coordinate median of the clients' params; the mean of the two middle values for even K."""
    count = len(results)
    out: AdapterState = {}
    for key, x in global_state.items():
        values = _sorted_stack(results, key)  # (K, *shape)
        middle = values[count // 2] if count % 2 else (values[count // 2 - 1] + values[count // 2]) / 2
        out[key] = middle.to(x.dtype)
    return out


def trimmed_mean(global_state: AdapterState, results: Sequence[ClientResult], trim: int) -> AdapterState:
    """Per-coordinate unweighted mean after dropping the ``trim`` lowest and ``trim`` highest values."""
    count = len(results)
    out: AdapterState = {}
    for key, x in global_state.items():
        values = _sorted_stack(results, key)  # (K, *shape)
        out[key] = values[trim:count - trim].mean(dim=0).to(x.dtype)
    return out


def pairwise_sq_distances(results: Sequence[ClientResult]) -> torch.Tensor:
    """D[i, j] = Σ over all adapter tensors of ‖x_i − x_j‖², shape (K, K), float64."""
    count = len(results)
    dist = torch.zeros(count, count, dtype=torch.float64)
    for key in results[0].params:
        flat = torch.stack([r.params[key].reshape(-1).to(torch.float64) for r in results])  # (K, n)
        for i in range(count):
            dist[i] += ((flat - flat[i]) ** 2).sum(dim=1)
    return dist


def krum_scores(results: Sequence[ClientResult], num_malicious: int) -> list[float]:
    """Krum score of each client: the sum of its K − f − 2 smallest squared distances to the others."""
    dist = pairwise_sq_distances(results)
    count = len(results)
    neighbours = count - num_malicious - 2
    scores = []
    for i in range(count):
        others = torch.cat([dist[i, :i], dist[i, i + 1:]]).sort().values
        scores.append(float(others[:neighbours].sum()))
    return scores


@register("fedmedian")
class FedMedian(Strategy):
    """FedMedian (Yin et al., 2018, "Byzantine-Robust Distributed Learning: Towards Optimal Statistical
    Rates"): x ← coordinate-wise median of the x_k, unweighted; for an even number of clients the median
    is the mean of the two middle values."""

    linear = False

    def aggregate(self, server_round: int, global_state: AdapterState,
                  results: list[ClientResult]) -> Aggregate:
        return coordinate_median(global_state, results), {}


@dataclass(frozen=True)
class TrimmedAvgParams:
    """FedTrimmedAvg's parameter."""

    beta: float = spec(0.1, ge=0.0, lt=0.5, help="share of clients trimmed from each side, per coordinate")


@register("fedtrimmedavg")
class FedTrimmedAvg(Strategy):
    """FedTrimmedAvg (Yin et al., 2018, coordinate-wise trimmed mean): per coordinate, drop the
    ⌊β·K⌋ lowest and ⌊β·K⌋ highest client values and take the unweighted mean of the rest.

    ``beta`` ∈ [0, 0.5); β = 0 is the unweighted mean. A round where nothing would remain is an error.
    """

    Params = TrimmedAvgParams
    linear = False

    def aggregate(self, server_round: int, global_state: AdapterState,
                  results: list[ClientResult]) -> Aggregate:
        count, beta = len(results), self.params.beta
        trim = math.floor(beta * count + 1e-9)  # tolerance: 0.3·10 is 3.0000000000000004 in floats
        if count - 2 * trim <= 0:
            raise FedRayError(f"fedtrimmedavg beta={beta} trims {trim} values from each side of "
                              f"{count} clients, leaving none; lower beta or raise the cohort size")
        return trimmed_mean(global_state, results, trim), {"trimmed_per_side": float(trim)}


@dataclass(frozen=True)
class KrumParams:
    """Krum's parameters."""

    num_malicious: int = spec(0, ge=0, help="f, the Byzantine clients tolerated (needs K >= f + 3)")
    num_to_keep: int = spec(1, ge=0, help="m: 1 (or 0) is Krum, m > 1 averages the m best (Multi-Krum)")


@register("krum")
class Krum(Strategy):
    """Krum and Multi-Krum (Blanchard et al., 2017, "Machine Learning with Adversaries: Byzantine
    Tolerant Gradient Descent").

    score_k = Σ of the K − f − 2 smallest ‖x_k − x_j‖² (j ≠ k; distances over all adapter tensors
    together). ``num_to_keep`` m ≤ 1: x ← x_k of the lowest score (Krum). m > 1: x ← sample-weighted mean
    of the m lowest-scoring clients (Multi-Krum), m capped at K − f. Needs K ≥ f + 3 clients a round.
    Metrics: ``krum_selected_<rank>`` = client id (rank 0 is the best), ``krum_num_selected``.
    """

    Params = KrumParams
    linear = False

    def aggregate(self, server_round: int, global_state: AdapterState,
                  results: list[ClientResult]) -> Aggregate:
        count, f = len(results), self.params.num_malicious
        if count < f + 3:
            raise FedRayError(f"krum with num_malicious={f} needs at least {f + 3} usable clients a round "
                              f"(K >= f + 3); got {count}. Sample more clients or lower num_malicious")
        scores = krum_scores(results, f)
        order = sorted(range(count), key=lambda i: (scores[i], i))
        keep = order[:min(max(self.params.num_to_keep, 1), count - f)]
        chosen = [results[i] for i in keep]
        if len(chosen) == 1:
            new_state = {k: chosen[0].params[k].to(x.dtype).clone() for k, x in global_state.items()}
        else:
            mean = weighted_mean([r.params for r in chosen], [r.num_examples for r in chosen])
            new_state = {k: mean[k].to(x.dtype) for k, x in global_state.items()}
        metrics = {"krum_num_selected": float(len(chosen)), "krum_best_score": scores[keep[0]]}
        metrics.update({f"krum_selected_{rank}": float(r.client_id) for rank, r in enumerate(chosen)})
        return new_state, metrics
