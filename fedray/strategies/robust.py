"""Byzantine-robust aggregation: FedMedian, FedTrimmedAvg, Krum / Multi-Krum.

All three ignore sample counts when deciding which values to trust (a client can lie about its count);
Multi-Krum uses them only to average the clients it kept.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from fedray.errors import FedRayError
from fedray.strategies.base import (
    AdapterState,
    ClientFailure,
    ClientResult,
    Strategy,
    check_range,
    round_metrics,
    usable_results,
    weighted_mean,
)
from fedray.strategies.registry import STRATEGIES


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


@STRATEGIES.register("fedmedian")
class FedMedian(Strategy):
    """FedMedian (Yin et al., 2018, "Byzantine-Robust Distributed Learning: Towards Optimal Statistical
    Rates"): x ← coordinate-wise median of the x_k, unweighted; for an even number of clients the median
    is the mean of the two middle values."""

    def aggregate_fit(
        self,
        server_round: int,
        global_state: AdapterState,
        results: Sequence[ClientResult],
        failures: Sequence[ClientFailure],
    ) -> tuple[AdapterState, dict[str, float]]:
        results, rejected = usable_results(global_state, results, failures)
        return coordinate_median(global_state, results), round_metrics(results, failures, rejected)


@STRATEGIES.register("fedtrimmedavg")
class FedTrimmedAvg(Strategy):
    """FedTrimmedAvg (Yin et al., 2018, coordinate-wise trimmed mean): per coordinate, drop the
    ⌊β·K⌋ lowest and ⌊β·K⌋ highest client values and take the unweighted mean of the rest.

    ``beta`` ∈ [0, 0.5); β = 0 is the unweighted mean. A round where nothing would remain is an error.
    """

    def __init__(self, beta: float = 0.1) -> None:
        check_range("fedtrimmedavg beta", beta, low=0.0, high=0.5, high_open=True)
        self.beta = float(beta)

    def aggregate_fit(
        self,
        server_round: int,
        global_state: AdapterState,
        results: Sequence[ClientResult],
        failures: Sequence[ClientFailure],
    ) -> tuple[AdapterState, dict[str, float]]:
        results, rejected = usable_results(global_state, results, failures)
        count = len(results)
        trim = math.floor(self.beta * count + 1e-9)  # tolerance: 0.3·10 is 3.0000000000000004 in floats
        if count - 2 * trim <= 0:
            raise FedRayError(f"fedtrimmedavg beta={self.beta} trims {trim} values from each side of "
                              f"{count} clients, leaving none; lower beta or raise the cohort size")
        metrics = round_metrics(results, failures, rejected)
        metrics["trimmed_per_side"] = float(trim)
        return trimmed_mean(global_state, results, trim), metrics


@STRATEGIES.register("krum")
class Krum(Strategy):
    """Krum and Multi-Krum (Blanchard et al., 2017, "Machine Learning with Adversaries: Byzantine
    Tolerant Gradient Descent").

    score_k = Σ of the K − f − 2 smallest ‖x_k − x_j‖² (j ≠ k; distances over all adapter tensors
    together). ``num_to_keep`` m ≤ 1: x ← x_k of the lowest score (Krum). m > 1: x ← sample-weighted mean
    of the m lowest-scoring clients (Multi-Krum), m capped at K − f. Needs K ≥ f + 3 clients a round.
    Metrics: ``krum_selected_<rank>`` = client id (rank 0 is the best), ``krum_num_selected``.
    """

    def __init__(self, num_malicious: int = 0, num_to_keep: int = 1) -> None:
        for name, value in (("num_malicious", num_malicious), ("num_to_keep", num_to_keep)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise FedRayError(f"krum {name} must be an integer >= 0; got {value!r}")
        self.num_malicious = num_malicious
        self.num_to_keep = num_to_keep

    def aggregate_fit(
        self,
        server_round: int,
        global_state: AdapterState,
        results: Sequence[ClientResult],
        failures: Sequence[ClientFailure],
    ) -> tuple[AdapterState, dict[str, float]]:
        results, rejected = usable_results(global_state, results, failures)
        count, f = len(results), self.num_malicious
        if count < f + 3:
            raise FedRayError(f"krum with num_malicious={f} needs at least {f + 3} usable clients a round "
                              f"(K >= f + 3); got {count}. Sample more clients or lower num_malicious")
        scores = krum_scores(results, f)
        order = sorted(range(count), key=lambda i: (scores[i], i))
        keep = order[:min(max(self.num_to_keep, 1), count - f)]
        chosen = [results[i] for i in keep]
        if len(chosen) == 1:
            new_state = {k: chosen[0].params[k].to(x.dtype).clone() for k, x in global_state.items()}
        else:
            mean = weighted_mean([r.params for r in chosen], [r.num_examples for r in chosen])
            new_state = {k: mean[k].to(x.dtype) for k, x in global_state.items()}
        metrics = round_metrics(results, failures, rejected)
        metrics["krum_num_selected"] = float(len(chosen))
        metrics["krum_best_score"] = scores[keep[0]]
        metrics.update({f"krum_selected_{rank}": float(r.client_id) for rank, r in enumerate(chosen)})
        return new_state, metrics
