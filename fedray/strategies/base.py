"""The strategy contract: pure server-side aggregation over adapter tensors, as a template method.

Strategies import no Ray and touch no device or file. They map the current global adapter and the
clients' results to a new global adapter, own their server state, and round-trip it through
``state_dict()`` / ``load_state_dict()`` for checkpoints.

:meth:`Strategy.aggregate_fit` runs what every rule shares once (structural checks, rejection of failed
and non-finite clients, the "nothing usable" error, the count metrics) and hands the usable results to
the one method a rule implements, :meth:`Strategy.aggregate`.

A rule whose new global reads its clients only through sums (``linear``) may instead implement
:meth:`Strategy.accumulate`: an :class:`Accumulator` that folds the results in one at a time. The engine
then feeds a round's results to a :class:`RoundAggregation` as they arrive (in cohort order), so the
round is aggregated by the time its last fit returns, instead of gathering every adapter after it. The
fold is the rule's only arithmetic: ``aggregate`` folds a list through the same accumulator, so a
streamed round and a gathered one give the same bits.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Sequence

import numpy as np

from fedray.client.objectives import LocalObjective
from fedray.config.params import NoParams, params_or_raise
from fedray.errors import FedRayError
from fedray.flat import FlatState
from fedray.lazy import lazy_import

torch = lazy_import("torch")  # imported by the first computation (fedray.lazy)

AdapterState = dict[str, "torch.Tensor"]

#: The new global adapter and the rule's own metrics for the round.
Aggregate = tuple[AdapterState, dict[str, float]]

#: ``variant`` of the rules that also reproduce the FedMLLM reference code's formulas.
Variant = Literal["standard", "fedmllm"]


@dataclass
class ClientResult:
    """What one client returns from a fit: its adapter after local training and how much data it saw."""

    client_id: int
    num_examples: int
    params: Mapping[str, torch.Tensor]  # a dict, or a FlatState's read-only views
    metrics: dict[str, float] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ClientFailure:
    """A sampled client that produced no usable result this round, and why."""

    client_id: int
    reason: str


class Accumulator(ABC):
    """One round's aggregate, folded in one client result at a time (see :meth:`Strategy.accumulate`)."""

    @abstractmethod
    def add(self, result: ClientResult) -> None:
        """Fold in the next usable result (finite, checked), in cohort order."""

    @abstractmethod
    def finish(self) -> Aggregate:
        """The new global adapter and the rule's metrics; the server state moves on here, not before."""


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
    (the weighted mean or pseudo-gradient of :mod:`fedray.strategies.updates`), so that results can be
    accumulated one at a time as they arrive; robust rules (median, trimmed mean, Krum) need them all
    at once. A linear rule says so to the engine by implementing :meth:`accumulate` (and then need not
    implement :meth:`aggregate`); one that implements only :meth:`aggregate` is aggregated after its
    round's last fit, like a robust rule.
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
        round_ = RoundAggregation(self, server_round, global_state,
                                  [(r.client_id, r.num_examples) for r in results])
        for result in results:
            round_.add(result)
        return round_.close(failures)

    def accumulate(self, server_round: int, global_state: AdapterState,
                   num_examples: Sequence[int]) -> Accumulator | None:
        """A fold of this round's results, for results that will carry ``num_examples`` in this order;
        None (the default): the rule needs all results at once, in :meth:`aggregate`.

        The accumulator must leave the server state alone until :meth:`Accumulator.finish`: the engine
        drops it unfinished when the round's usable results turn out to differ from the ones expected.
        """
        return None

    def aggregate(self, server_round: int, global_state: AdapterState,
                  results: list[ClientResult]) -> Aggregate:
        """The rule itself: new global adapter and extra metrics from at least one finite, checked result.

        By default, the results folded through :meth:`accumulate`; a rule implements one of the two.
        """
        fold = self.accumulate(server_round, global_state, [r.num_examples for r in results])
        if fold is None:
            raise FedRayError(f"strategy {self.name} implements neither aggregate() nor accumulate(); "
                              "a rule must define one of them")
        for result in results:
            fold.add(result)
        return fold.finish()

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
        if result.num_examples > 0 and _same_layout(result.params, global_state):
            continue  # one flat buffer in the global adapter's layout: same keys and shapes
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
        bad = _non_finite_keys(result.params)
        if bad:
            shown = ", ".join(bad[:5]) + (f" (+{len(bad) - 5} more)" if len(bad) > 5 else "")
            rejected.append(ClientFailure(result.client_id, f"non-finite (NaN/Inf) values in {shown}"))
        else:
            good.append(result)
    return good, rejected


def _non_finite_keys(params: Mapping[str, torch.Tensor]) -> list[str]:
    """The sorted keys of the tensors in ``params`` that hold a NaN or ±Inf.

    A FlatState is checked as one buffer first, in numpy where numpy has its dtype (so the aggregator
    checks a round without importing torch), and tensor by tensor only when that finds something."""
    values = params.typed_array() if isinstance(params, FlatState) else None
    if values is not None:
        if bool(np.isfinite(values).all()):
            return []
        layout = params.layout
        return sorted(slot.key for slot in layout.slots
                      if not bool(np.isfinite(values[layout.element(slot)]).all()))
    whole = params.typed() if isinstance(params, FlatState) else None
    if whole is not None and bool(torch.isfinite(whole).all()):  # the whole buffer in one check
        return []
    return sorted(key for key, tensor in params.items() if not bool(torch.isfinite(tensor).all()))


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


class RoundAggregation:
    """One round of :meth:`Strategy.aggregate_fit`, fed one result at a time in cohort order.

    Each result gets the template's checks as it comes (structure, then finiteness). When the rule
    accumulates, the usable ones are folded in at once, on the bet that the round's usable results will
    be exactly ``expected`` ((client id, sample count) pairs, in cohort order): a rule's weights (n_k / Σn,
    or 1/K) need the whole round's total before the first sum. When the bet fails (a client failed,
    timed out or was rejected, or reported another count), the fold is dropped and the rule aggregates
    the usable results at once when the round closes: the same result, later.
    """

    def __init__(self, strategy: Strategy, server_round: int, global_state: AdapterState,
                 expected: Sequence[tuple[int, int]]) -> None:
        self.strategy, self.server_round, self.global_state = strategy, server_round, global_state
        self.expected = list(expected)
        self.fold = strategy.accumulate(server_round, global_state, [n for _, n in self.expected]) \
            if self.expected else None
        self.usable: list[ClientResult] = []
        self.rejected: list[ClientFailure] = []

    def add(self, result: ClientResult) -> None:
        """Check ``result`` and, when usable, fold it in (or keep it for the close)."""
        check_results(self.global_state, [result])
        good, bad = filter_finite([result])
        self.rejected += bad
        self.usable += good
        if self.fold is None:
            return
        position = len(self.usable) - 1
        on_track = not bad and position < len(self.expected) and \
            self.expected[position] == (result.client_id, result.num_examples)
        if on_track:
            self.fold.add(result)
        else:
            self.fold = None  # the bet failed: aggregate the usable results at the close

    def close(self, failures: Sequence[ClientFailure]) -> Aggregate:
        """The round's aggregate: the fold's when it saw exactly the expected results, else the rule's
        own over the usable ones; raises when none is usable."""
        if not self.usable:
            reasons = "; ".join(f"client {f.client_id}: {f.reason}" for f in [*failures, *self.rejected])
            returned = len(self.usable) + len(self.rejected)
            raise FedRayError(f"no usable client result to aggregate ({returned} "
                              f"returned, {len(self.rejected)} rejected, {len(failures)} failed): "
                              f"{reasons or 'no clients'}")
        if self.fold is not None and len(self.usable) == len(self.expected):
            new_state, metrics = self.fold.finish()
        else:
            new_state, metrics = self.strategy.aggregate(self.server_round, self.global_state, self.usable)
        self.fold = None
        return new_state, {**round_metrics(self.usable, failures, self.rejected), **metrics}


def round_metrics(
    results: Sequence[ClientResult],
    failures: Sequence[ClientFailure],
    rejected: Sequence[ClientFailure],
) -> dict[str, float]:
    """The counts every rule reports: aggregated results, engine failures, rejected (non-finite) results."""
    return {"num_results": float(len(results)), "num_failures": float(len(failures)),
            "num_rejected": float(len(rejected))}


def _same_layout(params: Mapping[str, torch.Tensor], global_state: Mapping[str, torch.Tensor]) -> bool:
    return isinstance(params, FlatState) and isinstance(global_state, FlatState) and \
        params.layout == global_state.layout


def _copy(value: Any) -> Any:
    """A detached copy of an adapter-shaped state (dict of tensors; a FlatState becomes one, which is what
    checkpoints hold); other values (counters, None) as is."""
    if isinstance(value, FlatState):
        return value.to_dict()
    if isinstance(value, dict):
        return {key: tensor.detach().clone() for key, tensor in value.items()}
    return value
