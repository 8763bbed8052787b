"""The strategy contract: pure server-side aggregation over adapter tensors.

Strategies import no Ray and touch no device or file. They map the current global adapter and the
clients' results to a new global adapter, own their server state, and round-trip it through
``state_dict()`` / ``load_state_dict()`` for checkpoints.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from fedray.client.objectives import LocalObjective
from fedray.errors import FedRayError

AdapterState = dict[str, torch.Tensor]

#: ``variant`` values of rules that also reproduce the FedMLLM code's formulas (spec §4.1).
VARIANTS: tuple[str, ...] = ("standard", "fedmllm")


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

    def configure_fit(
        self,
        server_round: int,
        cohort: Sequence[int],
        global_state: AdapterState | None = None,
        objective: LocalObjective | None = None,
    ) -> LocalObjective:
        """The client-side objective every client in ``cohort`` trains with this round.

        Server-only rules hand out the scenario's ``objective`` unchanged (plain risk when none is given);
        rules with a client half (SCAFFOLD) override this.
        """
        return objective if objective is not None else LocalObjective()

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


# ---------------------------------------------------------------------------------------------------
# Shared helpers for the rules beyond FedAvg: usable results, the pseudo-gradient, round metrics.


def filter_finite(results: Sequence[ClientResult]) -> tuple[list[ClientResult], list[ClientFailure]]:
    """Split ``results`` into those whose params are all finite and failures for the rest.

    A client whose adapter holds any NaN or ±Inf is turned into a :class:`ClientFailure` whose reason
    names the offending tensors, so one diverged client cannot poison the global adapter.
    """
    good: list[ClientResult] = []
    rejected: list[ClientFailure] = []
    for result in results:
        bad = sorted(key for key, tensor in result.params.items() if not bool(torch.isfinite(tensor).all()))
        if bad:
            shown = ", ".join(bad[:5]) + (f" (+{len(bad) - 5} more)" if len(bad) > 5 else "")
            rejected.append(ClientFailure(result.client_id, f"non-finite (NaN/Inf) values in {shown}"))
        else:
            good.append(result)
    return good, rejected


def usable_results(
    global_state: AdapterState,
    results: Sequence[ClientResult],
    failures: Sequence[ClientFailure],
) -> tuple[list[ClientResult], list[ClientFailure]]:
    """The start of every rule: structural checks, then :func:`filter_finite`.

    Returns ``(good, rejected)``; raises :class:`FedRayError` listing every reason (engine failures and
    rejections) when no usable result remains.
    """
    good: list[ClientResult] = []
    rejected: list[ClientFailure] = []
    if results:
        check_results(global_state, results)
        good, rejected = filter_finite(results)
    if not good:
        reasons = "; ".join(f"client {f.client_id}: {f.reason}" for f in [*failures, *rejected])
        raise FedRayError(f"no usable client result to aggregate ({len(results)} returned, "
                          f"{len(rejected)} rejected, {len(failures)} failed): {reasons or 'no clients'}")
    return good, rejected


def round_metrics(
    results: Sequence[ClientResult],
    failures: Sequence[ClientFailure],
    rejected: Sequence[ClientFailure],
) -> dict[str, float]:
    """The counts every rule reports: aggregated results, engine failures, rejected (non-finite) results."""
    return {"num_results": float(len(results)), "num_failures": float(len(failures)),
            "num_rejected": float(len(rejected))}


def state_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype server state and pseudo-gradients are kept in: at least float32 (float64 stays float64)."""
    return torch.promote_types(dtype, torch.float32)


def pseudo_gradient(
    global_state: AdapterState,
    results: Sequence[ClientResult],
    weighted: bool = True,
) -> AdapterState:
    """Δ = Σ_k w_k (x_k − x) / Σ_k w_k with w_k = n_k (``weighted``) or 1, per tensor.

    Accumulated in float64 and returned in :func:`state_dtype` of each global tensor (so a bfloat16
    adapter's small deltas are not rounded away).
    """
    weights = [float(r.num_examples) if weighted else 1.0 for r in results]
    total = sum(weights)
    if not results or total <= 0:
        raise ValueError("pseudo_gradient needs at least one result and a positive total weight")
    delta: AdapterState = {}
    for key, x in global_state.items():
        x64 = x.to(torch.float64)
        acc = torch.zeros_like(x64)
        for result, weight in zip(results, weights):
            acc += (result.params[key].to(torch.float64) - x64) * (weight / total)
        delta[key] = acc.to(state_dtype(x.dtype))
    return delta


def apply_update(global_state: AdapterState, step: AdapterState, scale: float = 1.0) -> AdapterState:
    """x + scale · step per tensor, computed in float64 and cast back to each global tensor's dtype."""
    return {key: (x.to(torch.float64) + scale * step[key].to(torch.float64)).to(x.dtype)
            for key, x in global_state.items()}


def clone_state(state: AdapterState | None) -> AdapterState | None:
    """A detached copy of ``state`` (or None), for ``state_dict()`` / ``load_state_dict()``."""
    return None if state is None else {key: tensor.detach().clone() for key, tensor in state.items()}


def check_choice(name: str, value: object, allowed: Sequence[object]) -> None:
    """Raise :class:`FedRayError` unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise FedRayError(f"{name} must be one of {', '.join(repr(a) for a in allowed)}; got {value!r}")


def check_range(name: str, value: object, low: float | None = None, high: float | None = None,
                low_open: bool = False, high_open: bool = False) -> None:
    """Raise :class:`FedRayError` unless ``value`` is a real number within the stated bounds."""
    left = "(" if low_open else "["
    right = ")" if high_open else "]"
    allowed = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        raise FedRayError(f"{name} must be a number in {allowed}; got {value!r}")
