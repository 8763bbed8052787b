"""The shared update math of the rules: the sample-weighted mean, the pseudo-gradient and the step.

The mean and the pseudo-gradient are the sums through which a ``linear`` rule reads its clients. Both
accumulate in float64 and cast back, so results do not depend on the adapter's dtype more than they must.
"""

from __future__ import annotations

from typing import Sequence

import torch

from fedray.strategies.base import AdapterState, ClientResult


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
