"""Engine benchmarks: where a round's time goes, how well the actors are used, what it costs in memory.

One *case* is a scenario run for a few rounds without evaluation. From its history:

- ``round_s``: wall seconds per round (mean over rounds after the first, which pays for warm-up);
- split: ``fit_s`` (dispatch + queue + client compute + transfer), ``aggregate_s``;
- ``compute_s``: client compute seconds per round (inside the actors);
- ``efficiency`` = compute_s / (fit_s × actors): the share of actor time spent computing;
- ``bytes``: adapter bytes moved per round; ``actor_peak_mb`` / ``driver_peak_mb``: peak memory.

The *sequential* baseline trains the same cohorts one client after another in one process with one
model, swapping adapters (the reference's design), so ``speedup`` = sequential round_s / fedray round_s
on the same workload in the same invocation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from fedray.config.load import scenario_from_dict
from fedray.config.schema import Scenario


@dataclass(frozen=True)
class Case:
    """One benchmark configuration over the tiny model on digits."""

    name: str
    num_clients: int
    clients_per_round: int
    actors: int
    rounds: int = 4
    local_steps: int = 5
    batch_size: int = 8


def case_scenario(case: Case, seed: int = 0) -> Scenario:
    """The scenario of ``case``: IID digits split over its clients, FedAvg, no evaluation."""
    return scenario_from_dict({
        "name": f"bench-{case.name}", "seed": seed,
        "data": {"source": "digits", "test_fraction": 0.05, "max_test_samples": 8},
        "partition": {"name": "iid", "num_clients": case.num_clients, "min_client_size": 1},
        "model": {"max_length": 48},
        "lora": {"rank": 8},
        "train": {"local_steps": case.local_steps, "batch_size": case.batch_size, "lr": 1e-3},
        "federation": {"rounds": case.rounds, "clients_per_round": case.clients_per_round,
                       "checkpoint_every": 0},
        "eval": {"every": 0, "at_start": False},
        "resources": {"actors": case.actors, "cpus_per_actor": 1},
    })


def run_case(case: Case, out: Path) -> dict[str, Any]:
    """Run ``case`` on the engine and summarise its history (see the module docstring)."""
    from fedray.engine.history import read_history
    from fedray.engine.simulation import Simulation

    scenario = case_scenario(case)
    # Only the final round evaluates (8 test rows); timings below use fit and aggregate only.
    start = time.perf_counter()
    Simulation(scenario, out / case.name).execute()
    total_s = time.perf_counter() - start
    history = [h for h in read_history(out / case.name / "history.jsonl") if h["round"] > 0]
    steady = history[1:] or history
    fit = np.mean([h["time_s"]["fit"] for h in steady])
    aggregate = np.mean([h["time_s"]["aggregate"] for h in steady])
    compute = np.mean([h["compute_s"] for h in steady])
    return {
        "case": case.name, "clients": case.num_clients, "per_round": case.clients_per_round,
        "actors": case.actors, "round_s": float(fit + aggregate), "fit_s": float(fit),
        "aggregate_s": float(aggregate), "compute_s": float(compute),
        "efficiency": float(compute / (fit * case.actors)) if fit else float("nan"),
        "rounds_per_min": float(60.0 / (fit + aggregate)),
        "bytes_per_round": int(np.mean([h["bytes_sent"] for h in steady])),
        "actor_peak_mb": float(max(h["memory_mb"]["actor_peak"] for h in history)),
        "driver_peak_mb": float(max(h["memory_mb"]["driver_peak"] for h in history)),
        "total_s": round(total_s, 1),
    }


def run_sequential(case: Case) -> dict[str, Any]:
    """The reference's design on the same workload: one model, clients trained one after another."""
    import torch

    from fedray.client.objectives import LocalObjective
    from fedray.client.train import local_train
    from fedray.data.federated import build_federated_data
    from fedray.data.modality import mask_rows
    from fedray.engine.sampler import sample_cohort
    from fedray.models.base import build_model
    from fedray.models.collate import Collator
    from fedray.models.lora import apply_lora, get_adapter_state, set_adapter_state
    from fedray.seeding import derive_rng, derive_seed
    from fedray.strategies import ClientResult, build_strategy

    s = case_scenario(case)
    # One process, one model, one core, as each engine actor has: the reference's design, which cannot
    # spread clients over devices, so the ratio measures what parallel actors buy on the same cores.
    torch.set_num_threads(1)
    data = build_federated_data(s)
    built = build_model(s.model)
    model = apply_lora(built.model, s.lora, built.family)
    collator = Collator(built.processor, s.model.max_length)
    strategy, global_state = build_strategy("fedavg"), get_adapter_state(model)
    times = []
    for server_round in range(1, s.federation.rounds + 1):
        start = time.perf_counter()
        results = []
        for c in sample_cohort(s.seed, server_round, len(data.specs), s.federation.clients_per_round):
            spec = data.specs[c]
            set_adapter_state(model, global_state)
            rows = mask_rows(data.train.take(list(spec.indices)).to_pylist(), spec.masks)
            seed = derive_seed(s.seed, "fit", server_round, c)
            stats = local_train(model, collator, rows, s.train, LocalObjective(), global_state,
                                derive_rng(seed, "batches"))
            results.append(ClientResult(client_id=c, num_examples=stats.num_examples,
                                        params=get_adapter_state(model)))
        global_state, _ = strategy.aggregate_fit(server_round, global_state, results, [])
        times.append(time.perf_counter() - start)
    steady = times[1:] or times
    return {"case": case.name, "sequential_round_s": float(np.mean(steady))}


#: The standard suite: efficiency, scaling over clients per round, total clients and actors, and the
#: 1,000-client workload.
SUITE: tuple[Case, ...] = (
    Case("k10-m10-a2", 10, 10, 2),
    Case("k10-m10-a1", 10, 10, 1),
    Case("k10-m2-a2", 10, 2, 2),
    Case("k10-m4-a2", 10, 4, 2),
    Case("k100-m10-a2", 100, 10, 2),
    Case("k1000-m10-a2", 1000, 10, 2),
    Case("k1000-m50-a2", 1000, 50, 2, rounds=3, local_steps=2),
)
#: Cases whose workload the sequential baseline repeats.
SEQUENTIAL: tuple[str, ...] = ("k10-m10-a2", "k1000-m50-a2")


def quick(cases: tuple[Case, ...]) -> tuple[Case, ...]:
    """A fast version of ``cases`` for smoke tests: two rounds of one step."""
    return tuple(replace(c, rounds=2, local_steps=1) for c in cases)
