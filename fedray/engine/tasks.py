"""The small immutable messages that travel between the driver, the actors and the aggregator.

They hold no tensors and import no torch: the driver builds and reads them (the adapters and the
objectives travel beside them, as object-store references the driver never opens).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from fedray.config.schema import ObjectiveConfig, Scenario, StrategyConfig

if TYPE_CHECKING:
    from fedray.client.objectives import LocalObjective


@dataclass(frozen=True)
class AggregatorSetup:
    """What the aggregator is built from: the scenario sections it reads, and nothing else.

    ``num_clients`` is the client population N (SCAFFOLD's 1/N step); ``isolated`` is the local
    baseline, where each client keeps its own adapter instead of aggregating; ``checkpoints``: the run
    writes checkpoints (``federation.checkpoint_every`` > 0), which need torch.
    """

    strategy: StrategyConfig
    objective: ObjectiveConfig
    num_clients: int
    client_states_in_memory: int
    isolated: bool = False
    checkpoints: bool = False

    @classmethod
    def from_scenario(cls, scenario: Scenario, isolated: bool) -> AggregatorSetup:
        return cls(strategy=scenario.strategy, objective=scenario.objective,
                   num_clients=scenario.partition.num_clients,
                   client_states_in_memory=scenario.federation.client_states_in_memory, isolated=isolated,
                   checkpoints=scenario.federation.checkpoint_every > 0)


@dataclass(frozen=True)
class FitTask:
    """One client's fit in one round: which rows, with which objective, from which seed."""

    server_round: int
    client_id: int
    indices: np.ndarray  # row indices into the training table
    masks: tuple[int, ...]  # per row: the modalities it holds (fedray.data.modality bits)
    objective: LocalObjective | None  # None: the objective travels beside the task (ClientActor.fit)
    seed: int
    slowdown: float = 1.0  # simulated slow client: the fit takes this many times longer
    lr: float | None = None  # this round's base lr (train.round_schedule); None: train.lr


@dataclass(frozen=True)
class FitReport:
    """The small half of a fit's result, read by the driver (the params go to the aggregator)."""

    client_id: int
    num_examples: int
    metrics: dict[str, float] = field(default_factory=dict)
    extras: dict = field(default_factory=dict)
    params_nbytes: int = 0
    fit_s: float = 0.0  # compute time inside the actor (load adapter, train, read adapter)
    peak_mem_mb: float = 0.0  # the actor's peak memory so far: GPU memory on GPU, else process RSS


@dataclass(frozen=True)
class FitFailure:
    """A cohort member whose fit produced nothing this round, and why (the strategies read it as a
    :class:`~fedray.strategies.base.ClientFailure`; this one needs no torch, so the driver can build it)."""

    client_id: int
    reason: str


@dataclass(frozen=True)
class EvalRequest:
    """Evaluate some rows of one eval set under one test condition."""

    set_name: str
    indices: tuple[int, ...]
    condition: str = "full"
    score_options: bool = False


@dataclass(frozen=True)
class EvalShard:
    """Generations for the requested rows and, when asked, each row's option log-likelihoods."""

    generations: list[str]
    option_logprobs: list[list[float]] | None = None
