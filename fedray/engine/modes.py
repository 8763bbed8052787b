"""Run modes: federated training, and the baselines that share its data, model and budget.

A mode is a small class registered under the scenario's ``mode`` name. The round loop asks it how the
run differs (which clients train, on which rows, with what budget, from which adapter, how a round is
evaluated, how many rounds run) instead of branching on the name:

- ``federated``: a seeded cohort of ``federation.clients_per_round`` clients a round, one global adapter.
- ``centralized``: every client's rows pooled into one client that trains every round with the budget
  of the federated cohort.
- ``local``: every client trains every round from its own previous adapter and is evaluated alone;
  a round reports the clients' mean and spread (nothing is aggregated).
- ``zero_shot``: no training: the initial model is evaluated once, as round 0.

Modes import no Ray: adapters reach them as opaque handles through :class:`AdapterStates`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Protocol, Sequence

import numpy as np

from fedray.config.schema import Scenario, TrainConfig
from fedray.data.manifest import ClientSpec
from fedray.data.modality import BOTH
from fedray.engine.history import RoundRecord
from fedray.engine.sampler import sample_cohort
from fedray.registry import Registry


class AdapterStates(Protocol):
    """Handles to the aggregator's adapters (Ray ObjectRefs in a run)."""

    def global_state(self) -> Any: ...

    def client_state(self, client_id: int) -> Any: ...


class Scorer(Protocol):
    """Test and validation metrics of one adapter (:class:`~fedray.engine.evaluation.Evaluator`)."""

    def test(self, state: Any) -> dict[str, float]: ...

    def validate(self, state: Any) -> dict[str, float]: ...


RUN_MODES: Registry[type[RunMode]] = Registry("run mode")


def build_run_mode(scenario: Scenario) -> RunMode:
    """The run mode the scenario's ``mode`` names."""
    return RUN_MODES.get(scenario.mode)(scenario)


@RUN_MODES.register("federated")
class RunMode:
    """Federated training; each baseline subclasses it and overrides only what differs."""

    name = "federated"
    #: The aggregator keeps each client's adapter instead of aggregating them (and a client's next fit
    #: starts from its own).
    isolated = False
    #: The server rule (``strategy``) shapes the result; headers name it only then.
    uses_strategy = True
    #: Adapters travel between server and clients; otherwise the history records 0 bytes (the simulation
    #: still hands adapters to actors, but a real deployment of the mode sends nothing).
    communicates = True

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario

    @property
    def rounds(self) -> int:
        """Training rounds the run has."""
        return self.scenario.federation.rounds

    @property
    def evaluates_round_zero(self) -> bool:
        """Whether the initial model is evaluated, as round 0, before any training."""
        return self.scenario.eval.at_start

    def train_config(self) -> TrainConfig:
        """The training budget of one fit."""
        return self.scenario.train

    def client_specs(self, specs: Sequence[ClientSpec]) -> list[ClientSpec]:
        """The clients that train, from the scenario's partition (the manifest keeps the partition)."""
        return list(specs)

    def fits_per_round(self, num_clients: int) -> int:
        """The most fits a round runs (a pool sized from the cluster needs no more actor groups)."""
        return min(self.scenario.federation.clients_per_round, num_clients)

    def cohort(self, server_round: int, num_clients: int, available: list[int] | None) -> list[int]:
        """The clients that train in ``server_round``, drawn from ``available`` (None: all)."""
        if num_clients == 1:
            return [0]
        fed = self.scenario.federation
        return sample_cohort(self.scenario.seed, server_round, num_clients, fed.clients_per_round,
                             fed.sampler, available)

    def start_states(self, cohort: Sequence[int], states: AdapterStates) -> dict[int, Any] | None:
        """The adapter each cohort member's fit starts from; None: the global one."""
        return None

    def evaluate(self, record: RoundRecord, scorer: Scorer, states: AdapterStates,
                 num_clients: int) -> Any | None:
        """Fill ``record``'s test and validation metrics; return the adapter the round stands for (kept
        as the best adapter when its validation score is the best so far), or None when there is none."""
        state = states.global_state()
        record.eval = scorer.test(state)
        record.validation = scorer.validate(state)
        return state

    def traffic(self, bytes_down: int, bytes_up: int) -> tuple[int, int]:
        """The bytes a round of this mode sends down and up, given what the simulation moved."""
        return (bytes_down, bytes_up) if self.communicates else (0, 0)

    def header(self, num_clients: int) -> str:
        """How the run's clients and rounds go, in a few words for the terminal."""
        return (f"{num_clients} clients, {self.scenario.federation.clients_per_round} per round, "
                f"{self.rounds} rounds")


@RUN_MODES.register("centralized")
class Centralized(RunMode):
    """One client holding every client's rows, trained with the budget of a federated round."""

    name = "centralized"
    #: The rows are pooled where the model trains, so no adapter crosses a network (what moving the
    #: data would cost is not an adapter's traffic, and the history does not guess it).
    communicates = False

    def train_config(self) -> TrainConfig:
        """As many samples a round as the federated cohort processes, m = ``clients_per_round`` of K
        clients: ``local_steps`` × m steps, or ``local_epochs`` × m/K passes over the pooled data (each
        of the m clients would have made ``local_epochs`` passes over its own share, about 1/K of it)."""
        s = self.scenario
        cohort = min(s.federation.clients_per_round, s.partition.num_clients)
        if s.train.local_steps is not None:
            return replace(s.train, local_steps=s.train.local_steps * cohort)
        return replace(s.train, local_epochs=s.train.local_epochs * cohort / s.partition.num_clients)

    def client_specs(self, specs: Sequence[ClientSpec]) -> list[ClientSpec]:
        return [pooled(specs)]

    def header(self, num_clients: int) -> str:
        return f"{num_clients} clients pooled into one, {self.rounds} rounds"


@RUN_MODES.register("local")
class Local(RunMode):
    """Every client trains alone every round from its own previous adapter; nothing is aggregated."""

    name = "local"
    isolated = True
    uses_strategy = False
    communicates = False

    def fits_per_round(self, num_clients: int) -> int:
        return num_clients

    def cohort(self, server_round: int, num_clients: int, available: list[int] | None) -> list[int]:
        return list(range(num_clients))

    def start_states(self, cohort: Sequence[int], states: AdapterStates) -> dict[int, Any] | None:
        return {c: states.client_state(c) for c in cohort}

    def evaluate(self, record: RoundRecord, scorer: Scorer, states: AdapterStates,
                 num_clients: int) -> Any | None:
        """Each client's own adapter is tested and validated; the round is chosen on the clients' mean
        validation score, the same rule as the other modes. There is no global adapter to keep: round 0
        tests the shared initial one, which as the best adapter would sit beside a better local round."""
        if record.server_round == 0:
            super().evaluate(record, scorer, states, num_clients)
            return None
        client_states = [states.client_state(c) for c in range(num_clients)]
        record.client_eval = {c: scorer.test(state) for c, state in enumerate(client_states)}
        record.eval = mean_metrics(list(record.client_eval.values()))
        record.validation = mean_metrics([scorer.validate(state) for state in client_states])
        return None

    def header(self, num_clients: int) -> str:
        return (f"{num_clients} clients, each alone every round, {self.rounds} rounds, no aggregation, "
                "no communication")


@RUN_MODES.register("zero_shot")
class ZeroShot(RunMode):
    """No training: the initial model is evaluated once, as round 0."""

    name = "zero_shot"
    uses_strategy = False
    communicates = False

    @property
    def rounds(self) -> int:
        return 0

    @property
    def evaluates_round_zero(self) -> bool:
        return True

    def header(self, num_clients: int) -> str:
        return (f"{num_clients} clients, no training: the initial model is evaluated once "
                "(no rounds, no strategy)")


def pooled(specs: Sequence[ClientSpec]) -> ClientSpec:
    """One client holding every client's rows, each with the modalities it held."""
    masks = tuple(m for spec in specs for m in (spec.masks or (BOTH,) * spec.num_samples))
    modalities = tuple(dict.fromkeys(m for spec in specs for m in spec.modalities))
    return ClientSpec(client_id=0, indices=tuple(i for spec in specs for i in spec.indices),
                      task=specs[0].task, modalities=modalities, masks=masks)


def mean_metrics(per_client: list[dict[str, float]]) -> dict[str, float]:
    """Each metric's mean over clients, plus its spread (``<metric>_std``)."""
    keys = sorted(set().union(*per_client)) if per_client else []
    out: dict[str, float] = {}
    for key in keys:
        values = np.array([m[key] for m in per_client if key in m], dtype=float)
        out[key] = float(np.nanmean(values)) if values.size else float("nan")
        out[f"{key}_std"] = float(np.nanstd(values)) if values.size else float("nan")
    return out
