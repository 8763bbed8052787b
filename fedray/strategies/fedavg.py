"""FedAvg (McMahan et al., 2017, "Communication-Efficient Learning of Deep Networks from Decentralized
Data"): x ← Σ_k n_k · x_k / Σ_k n_k, the sample-weighted mean of the clients' adapters."""

from __future__ import annotations

from fedray.strategies.base import AdapterState, Aggregate, ClientResult, Strategy
from fedray.strategies.registry import register
from fedray.strategies.updates import weighted_mean


@register("fedavg")
class FedAvg(Strategy):
    """Sample-weighted averaging of client adapters; failed clients simply do not contribute."""

    linear = True

    def aggregate(self, server_round: int, global_state: AdapterState,
                  results: list[ClientResult]) -> Aggregate:
        return weighted_mean([r.params for r in results], [r.num_examples for r in results]), {}
