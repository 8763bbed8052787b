"""Seeded client sampling: the cohort of a round depends only on (seed, server_round)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedray.config.schema import SystemConfig
from fedray.data import fedmllm
from fedray.seeding import derive_rng


def sample_cohort(seed: int, server_round: int, num_clients: int, clients_per_round: int,
                  mode: str = "fedray", available: list[int] | None = None) -> list[int]:
    """``clients_per_round`` distinct client ids, sorted, drawn uniformly without replacement.

    ``mode="fedmllm"`` draws as the FedMLLM code does (:func:`fedray.data.fedmllm.cohort`), so the cohorts
    match the reference's and, as there, do not depend on the scenario seed.
    """
    pool = list(range(num_clients)) if available is None else sorted(available)
    if clients_per_round >= len(pool):
        return pool
    if mode == "fedmllm":
        return fedmllm.cohort(pool, clients_per_round, server_round)
    rng = derive_rng(seed, "cohort", server_round)
    return sorted(int(pool[i]) for i in rng.choice(len(pool), size=clients_per_round, replace=False))


@dataclass(frozen=True)
class SystemDraw:
    """One round's simulated system events (see ``SystemConfig``)."""

    available: list[int]
    dropped: list[int]
    slowdown: dict[int, float]


def draw_system(cfg: SystemConfig, seed: int, server_round: int, num_clients: int) -> SystemDraw:
    """Which clients are available this round, which would drop out, and which are slow (fixed)."""
    rng = derive_rng(seed, "system", server_round)
    available = np.flatnonzero(rng.random(num_clients) < cfg.availability).tolist()
    dropped = np.flatnonzero(rng.random(num_clients) < cfg.dropout).tolist()
    slow = derive_rng(seed, "system", "slow").random(num_clients) < cfg.slow_fraction  # same every round
    return SystemDraw(available=[int(c) for c in available], dropped=[int(c) for c in dropped],
                      slowdown={int(c): cfg.slow_factor for c in np.flatnonzero(slow)})
