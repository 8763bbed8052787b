"""FedAvg (McMahan et al., 2017, "Communication-Efficient Learning of Deep Networks from Decentralized
Data"): x ← Σ_k n_k · x_k / Σ_k n_k, the sample-weighted mean of the clients' adapters."""

from __future__ import annotations

from typing import Sequence

from fedray.strategies.base import (
    AdapterState,
    ClientFailure,
    ClientResult,
    Strategy,
    round_metrics,
    usable_results,
    weighted_mean,
)
from fedray.strategies.registry import STRATEGIES


@STRATEGIES.register("fedavg")
class FedAvg(Strategy):
    """Sample-weighted averaging of client adapters; failed clients simply do not contribute."""

    def aggregate_fit(
        self,
        server_round: int,
        global_state: AdapterState,
        results: Sequence[ClientResult],
        failures: Sequence[ClientFailure],
    ) -> tuple[AdapterState, dict[str, float]]:
        results, rejected = usable_results(global_state, results, failures)
        new_state = weighted_mean([r.params for r in results], [r.num_examples for r in results])
        return new_state, round_metrics(results, failures, rejected)
