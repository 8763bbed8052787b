"""The strategy contract: pure server-side aggregation over adapter tensors, as a template method.

Strategies import no Ray and touch no device or file. They map the current global adapter and the
clients' results to a new global adapter, own their server state, and round-trip it through
``state_dict()`` / ``load_state_dict()`` for checkpoints.

:meth:`Strategy.aggregate_fit` runs what every rule shares once (structural checks, rejection of failed
and non-finite clients, the "nothing usable" error, the count metrics) and hands the usable results to
the one method a rule implements, :meth:`Strategy.aggregate`.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Sequence

import torch

from fedray.client.objectives import LocalObjective
from fedray.config.params import NoParams, params_or_raise
from fedray.errors import FedRayError

AdapterState = dict[str, torch.Tensor]

#: The new global adapter and the rule's own metrics for the round.
Aggregate = tuple[AdapterState, dict[str, float]]

#: ``variant`` of the rules that also reproduce the FedMLLM reference code's formulas.
Variant = Literal["standard", "fedmllm"]


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


@dataclass(frozen=True)
class StrategyParams:
    """Base of the strategies' parameter classes, with the rule they share.

    ``variant: fedmllm`` pins the parameters in ``fedmllm_requires`` (name → (value, why)) to the value
    the reference formulas imply.
    """

    fedmllm_requires: ClassVar[dict[str, tuple[Any, str]]] = {}

    def problems(self) -> list[str]:
        problems: list[str] = []
        if getattr(self, "variant", None) != "fedmllm":
            return problems
        for key, (required, why) in self.fedmllm_requires.items():
            if getattr(self, key) != required:
                problems.append(f"variant 'fedmllm' {why}: {key} must be {json.dumps(required)}, got "
                                f"{json.dumps(getattr(self, key))}; set {key}: {json.dumps(required)} or use "
                                "variant: standard")
        return problems


class Strategy(ABC):
    """A federated aggregation rule with its server state.

    Built from its typed ``Params`` (``FedAdam(eta=0.1)`` checks ``eta`` by the same rules as a scenario
    file) and the size N of the client population, which the engine passes and rules such as SCAFFOLD's
    1/N control step read (None where unknown, as in unit tests: those rules fall back to the cohort).

    ``linear``: whether the new global depends on the clients only through sums of per-client terms
    (the weighted mean or pseudo-gradient of :mod:`fedray.strategies.updates`), so that results could be
    accumulated one at a time as they arrive; robust rules (median, trimmed mean, Krum) need them all
    at once.
    """

    name: ClassVar[str] = "strategy"  # the registered name, set by ``register``
    Params: ClassVar[type] = NoParams
    linear: ClassVar[bool]
    #: The attributes that hold the server state, which ``state_dict()`` copies out and back in.
    state_keys: ClassVar[tuple[str, ...]] = ()

    def __init__(self, params: Any = None, /, *, num_clients: int | None = None, **options: Any) -> None:
        if params is None:
            params = params_or_raise(self.Params, options, self.name)
        elif options or not isinstance(params, self.Params):
            raise FedRayError(f"{self.name}: pass either a {self.Params.__name__} or keyword options, "
                              f"not {type(params).__name__} with {sorted(options)}")
        if num_clients is not None and (type(num_clients) is not int or num_clients < 1):
            raise FedRayError(f"{self.name}: num_clients is the client population, an integer >= 1; "
                              f"got {num_clients!r}")
        self.params = params
        self.num_clients = num_clients
        self.init_state()

    def init_state(self) -> None:  # noqa: B027  (stateless default)
        """Set the server state to what it is before round one (nothing for stateless rules)."""

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

    def client_state_update(self, result: ClientResult) -> dict[str, Any] | None:
        """What to keep for ``result``'s client until its next fit (its objective's ``for_client`` reads
        it back), or None. Asked for every returned result, before aggregation."""
        return None

    def aggregate_fit(
        self,
        server_round: int,
        global_state: AdapterState,
        results: Sequence[ClientResult],
        failures: Sequence[ClientFailure],
    ) -> Aggregate:
        """The new global adapter and this round's metrics: the counts, then the rule's own.

        Rejects non-finite results and raises when nothing usable remains, so :meth:`aggregate` sees
        only results that passed, in the order given (cohort order).
        """
        usable, rejected = usable_results(global_state, results, failures)
        new_state, metrics = self.aggregate(server_round, global_state, usable)
        return new_state, {**round_metrics(usable, failures, rejected), **metrics}

    @abstractmethod
    def aggregate(self, server_round: int, global_state: AdapterState,
                  results: list[ClientResult]) -> Aggregate:
        """The rule itself: new global adapter and extra metrics from at least one finite, checked result."""

    def state_dict(self) -> dict[str, Any]:
        """Server state to checkpoint: a copy of each attribute in ``state_keys`` (tensors cloned)."""
        return {key: _copy(getattr(self, key)) for key in self.state_keys}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.require_keys(state, *self.state_keys)
        for key in self.state_keys:
            setattr(self, key, _copy(state[key]))

    def require_keys(self, state: dict[str, Any], *keys: str) -> None:
        """Raise unless ``state`` (given to :meth:`load_state_dict`) holds ``keys``: a foreign checkpoint."""
        missing = sorted(set(keys) - set(state))
        if missing:
            raise FedRayError(f"{self.name} state needs keys {', '.join(keys)}; missing {missing} (a "
                              f"checkpoint of another strategy?)")


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
    """The prologue of every rule: structural checks, then :func:`filter_finite`.

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


def _copy(value: Any) -> Any:
    """A detached copy of an adapter-shaped state (dict of tensors); other values (counters, None) as is."""
    if isinstance(value, dict):
        return {key: tensor.detach().clone() for key, tensor in value.items()}
    return value
