"""The strategy contract: pure server-side aggregation over adapter tensors.

Strategies import no Ray and touch no device or file. They map the current global adapter and the
clients' results to a new global adapter, own their server state, and round-trip it through
``state_dict()`` / ``load_state_dict()`` for checkpoints.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from fedray.client.objectives import LocalObjective

AdapterState = dict[str, torch.Tensor]


@dataclass
class ClientResult:
    """What one client returns from a fit: its adapter after local training and how much data it saw."""

    client_id: int
    num_examples: int
    params: AdapterState
    metrics: dict[str, float] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ClientFailure:
    """A sampled client that produced no usable result this round, and why."""

    client_id: int
    reason: str


class Strategy(ABC):
    """A federated aggregation rule with its server state."""

    def configure_fit(self, server_round: int, cohort: Sequence[int]) -> LocalObjective:
        """The client-side objective every client in ``cohort`` trains with this round."""
        return LocalObjective()

    @abstractmethod
    def aggregate_fit(
        self,
        server_round: int,
        global_state: AdapterState,
        results: Sequence[ClientResult],
        failures: Sequence[ClientFailure],
    ) -> tuple[AdapterState, dict[str, float]]:
        """The new global adapter and aggregation metrics for this round."""

    def state_dict(self) -> dict[str, Any]:
        """Server state to checkpoint (empty for stateless rules)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:  # noqa: B027  (stateless default)
        """Restore what :meth:`state_dict` returned."""


def weighted_mean(states: Sequence[AdapterState], weights: Sequence[float]) -> AdapterState:
    """Σ_k w_k · x_k / Σ_k w_k per tensor, computed in float64 and cast back to each tensor's dtype."""
    total = float(sum(weights))
    if not states or total <= 0:
        raise ValueError("weighted_mean needs at least one state and a positive total weight")
    out: AdapterState = {}
    for key, first in states[0].items():
        acc = torch.zeros_like(first, dtype=torch.float64)
        for state, weight in zip(states, weights):
            acc += state[key].to(torch.float64) * (weight / total)
        out[key] = acc.to(first.dtype)
    return out


def check_results(global_state: AdapterState, results: Sequence[ClientResult]) -> None:
    """Every result must carry exactly the global adapter's keys and shapes, and some data."""
    if not results:
        raise ValueError("aggregate_fit called with no results")
    for result in results:
        if set(result.params) != set(global_state):
            raise ValueError(f"client {result.client_id} returned adapter keys that differ from "
                             f"the global adapter's")
        for key, tensor in result.params.items():
            if tensor.shape != global_state[key].shape:
                raise ValueError(f"client {result.client_id}: {key} has shape {tuple(tensor.shape)}, "
                                 f"expected {tuple(global_state[key].shape)}")
        if result.num_examples <= 0:
            raise ValueError(f"client {result.client_id} reports num_examples={result.num_examples}")
