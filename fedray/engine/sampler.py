"""Seeded client sampling: the cohort of a round depends only on (seed, server_round)."""

from __future__ import annotations

import random

from fedray.seeding import derive_rng


def sample_cohort(seed: int, server_round: int, num_clients: int, clients_per_round: int,
                  mode: str = "fedray") -> list[int]:
    """``clients_per_round`` distinct client ids, sorted, drawn uniformly without replacement.

    ``mode="fedmllm"`` draws as the FedMLLM code does, ``random.seed(round)`` then ``random.sample``
    (its rounds count from 0, so server round r uses seed r − 1), on a private generator; the cohorts then
    match the reference's and, as there, do not depend on the scenario seed.
    """
    if clients_per_round >= num_clients:
        return list(range(num_clients))
    if mode == "fedmllm":
        return sorted(random.Random(server_round - 1).sample(range(num_clients), clients_per_round))
    rng = derive_rng(seed, "cohort", server_round)
    return sorted(int(c) for c in rng.choice(num_clients, size=clients_per_round, replace=False))
