"""Seeded client sampling: the cohort of a round depends only on (seed, server_round)."""

from __future__ import annotations

from fedray.seeding import derive_rng


def sample_cohort(seed: int, server_round: int, num_clients: int, clients_per_round: int) -> list[int]:
    """``clients_per_round`` distinct client ids, sorted, drawn uniformly without replacement."""
    if clients_per_round >= num_clients:
        return list(range(num_clients))
    rng = derive_rng(seed, "cohort", server_round)
    return sorted(int(c) for c in rng.choice(num_clients, size=clients_per_round, replace=False))
