"""FedAvg (McMahan et al., 2017, "Communication-Efficient Learning of Deep Networks from Decentralized
Data"): x ← Σ_k n_k · x_k / Σ_k n_k, the sample-weighted mean of the clients' adapters."""

from __future__ import annotations

from typing import Sequence

from fedray.strategies.base import Accumulator, AdapterState, Strategy
from fedray.strategies.registry import register
from fedray.strategies.updates import MeanAccumulator, MeanFold


@register("fedavg")
class FedAvg(Strategy):
    """Sample-weighted averaging of client adapters; failed clients simply do not contribute."""

    linear = True

    def accumulate(self, server_round: int, global_state: AdapterState,
                   num_examples: Sequence[int]) -> Accumulator:
        return MeanAccumulator(MeanFold(num_examples), lambda fold: (fold.mean(), {}))
