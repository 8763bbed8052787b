"""The aggregator actor: the global adapter, the strategy and the client-state store, in one place.

A plain class; the engine wraps it with ``ray.remote`` and pins it to the driver's node. It knows no
algorithm: the strategy aggregates and says what each client keeps between fits
(:meth:`~fedray.strategies.base.Strategy.client_state_update`), and each client's objective reads that
back (:meth:`~fedray.client.objectives.LocalObjective.for_client`).

A round streams through it: :meth:`AggregatorActor.begin_round` names the cohort, the driver forwards
each fit's result as it finishes (:meth:`AggregatorActor.add_result`; Ray hands the adapter over as a
zero-copy view of the object store), and the results are taken in cohort order as soon as the next one
in that order is there, so a rule that accumulates (:meth:`~fedray.strategies.base.Strategy.accumulate`)
has folded all but the last by the time the last fit ends. The order never depends on which fit
finished first, so a round gives the same bits however its fits were scheduled (and a resumed run
repeats an uninterrupted one). :meth:`AggregatorActor.close_round` then finishes the round.

The process imports the strategies and torch, never a model or transformers: it holds adapters only.
It also writes the adapter files and checkpoints, so the driver never holds a tensor.
"""

from __future__ import annotations

import importlib
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from fedray.client.objectives import LocalObjective, build_objective
from fedray.engine.checkpoint import load_checkpoint, save_checkpoint, write_adapter
from fedray.engine.client_state import ClientStateStore
from fedray.engine.tasks import AggregatorSetup, FitFailure, FitReport
from fedray.flat import FlatState, Layout
from fedray.strategies import ClientFailure, ClientResult, build_strategy
from fedray.strategies.base import RoundAggregation


@dataclass
class OpenRound:
    """A round being aggregated: what has arrived, and how far the cohort-order prefix has been taken."""

    server_round: int
    order: list[int]  # the cohort, in the order results are taken
    aggregation: RoundAggregation | None  # None in the local baseline (nothing is aggregated)
    arrived: dict[int, ClientResult] = field(default_factory=dict)
    taken: int = 0  # results of order[:taken] (or their absence) are taken
    kept: int = 0  # results taken
    error: BaseException | None = None  # the first error while taking results, raised at the close


class AggregatorActor:
    """Holds the global adapter, the strategy and the client-state store; runs on the driver's node.

    In the ``local`` baseline there is no aggregation: each client keeps its own adapter in the store,
    and a client's next fit starts from it (the clients never see each other's updates).
    """

    def __init__(self, setup: AggregatorSetup, initial_state: Mapping[str, Any] | None,
                 run_path: str) -> None:
        """``initial_state`` may come later, through :meth:`set_global` (the engine starts the aggregator
        before a client actor has built the model the initial adapter comes from)."""
        self.strategy = build_strategy(setup.strategy.name, setup.strategy.options,
                                       num_clients=setup.num_clients)
        self.objective = build_objective(setup.objective.name, setup.objective.options)
        self.global_state = initial_state
        self.isolated = setup.isolated
        self.run_path = Path(run_path)
        self.clients = ClientStateStore(os.path.join(run_path, "client_state"), setup.client_states_in_memory)
        self.round: OpenRound | None = None
        self.checkpoint_writer = BackgroundImport("torch") if setup.checkpoints else None

    # -- the global adapter -----------------------------------------------------------------------
    def set_global(self, state: Mapping[str, Any]) -> int:
        """Start from ``state`` (a client actor's initial adapter); return its size in bytes."""
        self.global_state = state
        return self.global_nbytes()

    def get_global(self) -> Mapping[str, Any]:
        return self.global_state

    def get_client_state(self, client_id: int) -> Mapping[str, Any]:
        """The adapter a client starts from in the local baseline (the initial one before its first fit)."""
        return (self.clients.get(client_id) or {}).get("adapter", self.global_state)

    def global_nbytes(self) -> int:
        state = self.global_state or {}
        if isinstance(state, FlatState):
            return state.nbytes
        return sum(t.numel() * t.element_size() for t in state.values())

    def configure_fit(self, server_round: int, cohort: list[int]) -> dict[int, LocalObjective]:
        """Each cohort member's objective: the strategy's for this round, with the client's own state."""
        objective = self.strategy.configure_fit(server_round, cohort, self.global_state, self.objective)
        return {c: objective.for_client(self.clients.get(c)) for c in cohort}

    def objectives(self, server_round: int, cohort: list[int]) -> tuple[LocalObjective, ...] | LocalObjective:
        """:meth:`configure_fit` as one return value per client, in cohort order (called with
        ``num_returns=len(cohort)``, so each fit fetches its own from the object store and the driver
        never holds one; a cohort of one gets the objective itself)."""
        chosen = self.configure_fit(server_round, cohort)
        values = tuple(chosen[c] for c in cohort)
        return values[0] if len(values) == 1 else values

    # -- a streamed round ---------------------------------------------------------------------------
    def begin_round(self, server_round: int, expected: Sequence[tuple[int, int]]) -> None:
        """Open a round whose results will come from ``expected``: (client id, sample count) in cohort
        order, the counts the clients are expected to report (a mismatch only costs the early fold)."""
        if self.checkpoint_writer is not None:
            self.checkpoint_writer.start()  # the round's fits leave time for it (see BackgroundImport)
        aggregation = None if self.isolated else \
            RoundAggregation(self.strategy, server_round, self.global_state, list(expected))
        self.round = OpenRound(server_round, [c for c, _ in expected], aggregation)

    def add_result(self, server_round: int, report: FitReport, params: Mapping[str, Any]) -> None:
        """One finished fit; taken at once when it is the next in cohort order (with any that waited
        on it). Errors are kept for :meth:`close_round`: nobody waits on this call."""
        open_round = self._open(server_round)
        open_round.arrived[report.client_id] = ClientResult(
            client_id=report.client_id, num_examples=report.num_examples, params=params,
            metrics=report.metrics, extras=report.extras)
        while open_round.taken < len(open_round.order) and \
                open_round.order[open_round.taken] in open_round.arrived:
            self._take(open_round, open_round.arrived.pop(open_round.order[open_round.taken]))
            open_round.taken += 1

    def add_results(self, server_round: int, *reports_and_params: Any) -> None:
        """Several finished calls at once: (report, params) pairs, flattened (so that Ray resolves each
        ObjectRef before the call). A call that carried several fits gives a list of reports and a list
        of adapters; a :class:`FitFailure` in the reports has no adapter and is skipped (the driver
        names it at :meth:`close_round`)."""
        for report, params in zip(reports_and_params[::2], reports_and_params[1::2]):
            if not isinstance(report, list):
                report, params = [report], [params]
            for one, state in zip(report, params, strict=True):
                if not isinstance(one, FitFailure):
                    self.add_result(server_round, one, state)

    def close_round(self, server_round: int,
                    failures: Sequence[ClientFailure | FitFailure]) -> dict[str, float]:
        """Take what waited behind a failed client (in cohort order), finish the round, return its metrics."""
        open_round = self._open(server_round)
        self.round = None
        rank = {c: i for i, c in enumerate(open_round.order)}
        for client in sorted(open_round.arrived, key=lambda c: rank.get(c, len(rank))):
            self._take(open_round, open_round.arrived[client])
        if open_round.error is not None:
            raise open_round.error
        if open_round.aggregation is None:
            return {"clients_kept": float(open_round.kept)}
        new_state, metrics = open_round.aggregation.close([ClientFailure(f.client_id, f.reason)
                                                           for f in failures])
        self.global_state = self._stored(new_state)
        return metrics

    def aggregate(self, server_round: int, reports: list[FitReport], params: list[Any],
                  failures: list[ClientFailure]) -> dict[str, float]:
        """A whole round at once; ``params`` holds ObjectRefs (fetched here, never by the driver)."""
        import ray

        states = ray.get(list(params))
        self.begin_round(server_round, [(r.client_id, r.num_examples) for r in reports])
        for report, state in zip(reports, states):
            self.add_result(server_round, report, state)
        return self.close_round(server_round, failures)

    def _open(self, server_round: int) -> OpenRound:
        if self.round is None or self.round.server_round != server_round:
            raise RuntimeError(f"round {server_round} was not begun on the aggregator (begin_round first)")
        return self.round

    def _take(self, open_round: OpenRound, result: ClientResult) -> None:
        """What the strategy keeps for the client, then its adapter (kept or folded into the round)."""
        if open_round.error is not None:
            return
        try:
            kept = self.strategy.client_state_update(result)
            if kept:
                self.clients.update(result.client_id, **kept)
            if open_round.aggregation is None:
                self.clients.update(result.client_id, adapter=_owned(result.params))
            else:
                open_round.aggregation.add(result)
            open_round.kept += 1
        except Exception as exc:  # raised by close_round, in the driver's wait for the round
            open_round.error = exc

    def _stored(self, state: Mapping[str, Any]) -> Mapping[str, Any]:
        """The new global adapter as one buffer in the old one's layout (what every fit then reads)."""
        layout = self.global_state.layout if isinstance(self.global_state, FlatState) else None
        if layout is None or layout.keys != tuple(state):
            return state
        return FlatState.pack(state, layout)

    # -- files ----------------------------------------------------------------------------------
    def save_adapter(self, name: str, state: Mapping[str, Any] | None = None,
                     config: Mapping[str, Any] | None = None) -> str:
        """Write ``state`` (default: the global adapter) as the PEFT adapter directory ``<run>/<name>/``,
        with ``config`` (PEFT's adapter config, from a client actor) as its ``adapter_config.json``."""
        return str(write_adapter(self.run_path, self.global_state if state is None else state, name, config))

    def save_checkpoint(self, server_round: int, driver: dict[str, Any]) -> float:
        """Write the run's checkpoint: this actor's state with the driver's ``driver`` part; return the
        seconds it took. Client states are written to their own files only when they changed since the
        last checkpoint, and the checkpoint names those files."""
        start = time.perf_counter()
        index = self.clients.checkpoint_index()
        save_checkpoint(self.run_path, {"round": server_round, "aggregator": self.snapshot(index),
                                        "driver": driver})
        self.clients.committed(index)
        return time.perf_counter() - start

    def resume(self) -> tuple[int, dict[str, Any]]:
        """Restore from the run's checkpoint; return (its round, the driver's part)."""
        payload = load_checkpoint(self.run_path)
        self.restore(payload["aggregator"], inline_clients=payload["format"] == 1)
        return int(payload["round"]), payload["driver"]

    def snapshot(self, client_index: dict[int, dict[str, Any]] | None = None) -> dict[str, Any]:
        """Everything server-side a checkpoint must hold (as plain tensors); the client states as the
        index of their files (``client_index``, from the store)."""
        clients = self.clients.checkpoint_index() if client_index is None else client_index
        return {"global_state": _plain(self.global_state), "strategy": self.strategy.state_dict(),
                "clients": clients}

    def restore(self, snapshot: dict[str, Any], inline_clients: bool = False) -> None:
        state = snapshot["global_state"]
        self.global_state = FlatState.pack(state, Layout.of(state)) if state else state
        self.strategy.load_state_dict(snapshot["strategy"])
        if inline_clients:  # checkpoint format 1: the states themselves
            self.clients.load_state_dict({cid: {k: _plain(v) for k, v in values.items()}
                                          for cid, values in snapshot["clients"].items()})
        else:
            self.clients.load_index(snapshot["clients"])


class BackgroundImport:
    """Imports a module on a daemon thread, once: the checkpoint writer's torch (``torch.save``).

    A FedAvg round needs no torch here (:mod:`fedray.strategies.updates` folds flat buffers in numpy),
    but a checkpoint is written with torch; imported at the first checkpoint, torch's import (≈ 1.5 s of
    CPU) would hold up the driver, which waits for the checkpoint. Started with the first round, it
    runs while the aggregator waits for that round's fits. Python's import lock makes a later ``import
    torch`` on the actor's thread wait for this one rather than import twice; a failed import is
    raised again, with its own message, by that later import.
    """

    def __init__(self, module: str) -> None:
        self.module = module
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        if self.thread is None:
            self.thread = threading.Thread(target=self._load, name=f"import-{self.module}", daemon=True)
            self.thread.start()

    def _load(self) -> None:
        try:
            importlib.import_module(self.module)
        except Exception:  # noqa: BLE001 - the writer's own import reports it where it matters
            pass


def _owned(state: Mapping[str, Any]) -> Mapping[str, Any]:
    """A copy of a result's adapter this actor can keep past the round (a view of the object store
    would pin the fit's return value there)."""
    return FlatState.pack(state) if isinstance(state, FlatState) else state


def _plain(value: Any) -> Any:
    """A FlatState as a dict of independent tensors (what ``torch.load(weights_only=True)`` reads)."""
    return value.to_dict() if isinstance(value, FlatState) else value
