"""The driver's round loop.

``Simulation.execute`` reads as its phases: prepare (data, actors), then per round sample a cohort, fit
it on the actor pool, aggregate on the aggregator actor, evaluate when due, and record.

``scenario.mode`` picks the run: ``federated``; or a baseline on the same data, model and budget:
``centralized`` (one client holding every client's rows), ``local`` (every client trains every round
from its own previous adapter and is evaluated alone; reported as the mean and per client) and
``zero_shot`` (no training: the initial model is evaluated once).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from fedray.config.schema import Scenario, SystemConfig
from fedray.data.federated import FederatedData, build_federated_data
from fedray.data.manifest import ClientSpec, write_manifest
from fedray.engine.actors import AggregatorActor, peak_memory_mb
from fedray.engine.checkpoint import load_checkpoint, save_checkpoint, truncate_history
from fedray.engine.evaluation import Evaluator
from fedray.engine.history import HistoryWriter, RoundRecord
from fedray.engine.pool import ActorPool, FitOutcome
from fedray.engine.rundir import RunDir
from fedray.engine.runtime import ensure_ray
from fedray.engine.sampler import SystemDraw, draw_system, sample_cohort
from fedray.engine.tasks import FitTask
from fedray.errors import FedRayError, SchedulingError
from fedray.report.tensorboard import TensorBoardLogger
from fedray.seeding import derive_seed

logger = logging.getLogger(__name__)

RoundCallback = Callable[[RoundRecord], None]


@dataclass
class RunSummary:
    run_dir: Path
    rounds: list[RoundRecord] = field(default_factory=list)
    best_round: int | None = None  # picked on the validation split, never on the test set

    @property
    def final_eval(self) -> dict[str, float]:
        evaluated = [r.eval for r in self.rounds if r.eval]
        return evaluated[-1] if evaluated else {}

    @property
    def best_eval(self) -> dict[str, float]:
        """Test metrics of the best-validation round (the final ones when there is no validation)."""
        chosen = [r.eval for r in self.rounds if r.server_round == self.best_round and r.eval]
        return chosen[0] if chosen else self.final_eval


class Simulation:
    """One run of a scenario on Ray actors."""

    def __init__(self, scenario: Scenario, run_dir: str | Path | None = None,
                 on_round: RoundCallback | None = None, resume: bool = False) -> None:
        self.scenario = scenario
        self.resume = resume
        if resume and run_dir is None:
            raise FedRayError("resuming needs the run directory to continue")
        self.run = RunDir.reopen(run_dir) if resume else RunDir.create(scenario, run_dir)
        self.scenario = _same_budget(scenario)
        self.on_round = on_round
        self.history = HistoryWriter(self.run.history_path)
        self.tensorboard = TensorBoardLogger(self.run.path / "tensorboard")
        self.best_validation = float("-inf")

    # -- phases ---------------------------------------------------------------------------------
    def execute(self) -> RunSummary:
        """Run every round; the run directory stays readable whatever happens."""
        s = self.scenario
        self.summary = RunSummary(run_dir=self.run.path)
        started_ray = False
        try:
            self._prepare_data()
            started_ray = ensure_ray(s.resources)
            self._start_actors()
            first = self._restore() + 1 if self.resume else 1
            if first == 1 and (s.eval.at_start or s.mode == "zero_shot"):
                self.summary.rounds.append(self._record(RoundRecord(server_round=0), evaluate=True))
            rounds = 0 if s.mode == "zero_shot" else s.federation.rounds
            for server_round in range(first, rounds + 1):
                self.summary.rounds.append(self._round(server_round))
                self._checkpoint_if_due(server_round)
        finally:
            self._finish(started_ray)
        return self.summary

    def _checkpoint_if_due(self, server_round: int) -> None:
        every = self.scenario.federation.checkpoint_every
        if every and (server_round % every == 0 or server_round == self.scenario.federation.rounds):
            snapshot = ray.get(self.aggregator.snapshot.remote(), timeout=600)
            save_checkpoint(self.run.path, {"round": server_round, "aggregator": snapshot,
                                            "driver": {"best_validation": self.best_validation,
                                                       "best_round": self.summary.best_round}})

    def _restore(self) -> int:
        """Load the run directory's checkpoint into the aggregator; return the round it ended."""
        payload = load_checkpoint(self.run.path)
        ray.get(self.aggregator.restore.remote(payload["aggregator"]), timeout=600)
        self.best_validation = payload["driver"]["best_validation"]
        self.summary.best_round = payload["driver"]["best_round"]
        kept = truncate_history(self.run.history_path, payload["round"])
        self.summary.rounds = [RoundRecord.from_json(r) for r in kept]
        logger.info("resumed %s after round %d", self.run.path, payload["round"])
        return int(payload["round"])

    def _prepare_data(self) -> None:
        s = self.scenario
        self.data: FederatedData = build_federated_data(s)
        labels = self.data.train.column("label").fill_null(-1).to_numpy()
        write_manifest(self.run.manifest_path, self.data.specs, labels, self.data.label_names,
                       extra={"seed": s.seed, "source": s.data.source, "partitioner": s.partition.name,
                              "modality": s.modality.name, "mode": s.mode,
                              "test_samples": self.data.primary_test.table.num_rows})
        # The manifest shows the real split; a centralized run then pools it into one client.
        self.specs: list[ClientSpec] = _pooled(self.data.specs) if s.mode == "centralized" \
            else self.data.specs

    def _start_actors(self) -> None:
        start = time.perf_counter()
        # One object per table set: Ray resolves top-level ObjectRef arguments only.
        eval_ref = ray.put(Evaluator.eval_tables(self.data))
        self.pool = ActorPool(self.scenario, ray.put(self.data.train), eval_ref,
                              fits_per_round=self._fits_per_round())
        self.evaluator = Evaluator(self.scenario, self.data, self.pool)
        initial = self.pool.initial_adapter()
        self.pool_adapter_keys = sorted(initial)
        here = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(),
                                              soft=False)
        self.aggregator = ray.remote(AggregatorActor).options(
            num_cpus=0, scheduling_strategy=here).remote(self.scenario, initial, str(self.run.path))
        self.adapter_nbytes = ray.get(self.aggregator.global_nbytes.remote(), timeout=120)
        shipped = self.pool.info[0]["adapter_bytes"]  # modules_to_save are whole modules: often the bulk
        logger.info("%d client actors ready in %.1f s (%s trainable params each, adapter %.1f KiB: "
                    "LoRA %.1f KiB, modules_to_save %.1f KiB, sent down and up per client per round)",
                    len(self.pool.actors), time.perf_counter() - start,
                    self.pool.info[0]["trainable_params"], self.adapter_nbytes / 1024,
                    shipped["lora"] / 1024, shipped["modules_to_save"] / 1024)

    def _fits_per_round(self) -> int:
        """The most fits a round runs: a derived pool (``resources.actors: null``) needs no more groups."""
        if self.scenario.mode == "local" or len(self.specs) == 1:
            return len(self.specs)
        return min(self.scenario.federation.clients_per_round, len(self.specs))

    def _cohort(self, server_round: int, available: list[int] | None) -> list[int]:
        s = self.scenario
        if s.mode == "local" or len(self.specs) == 1:
            return list(range(len(self.specs)))
        return sample_cohort(s.seed, server_round, len(self.specs), s.federation.clients_per_round,
                             s.federation.sampler, available)

    def _system(self, server_round: int) -> SystemDraw | None:
        """This round's simulated availability, dropouts and slow clients (None when all are off)."""
        if self.scenario.system == SystemConfig():
            return None
        return draw_system(self.scenario.system, self.scenario.seed, server_round, len(self.specs))

    def _round(self, server_round: int) -> RoundRecord:
        fed = self.scenario.federation
        system = self._system(server_round)
        cohort = self._cohort(server_round, system.available if system else None)
        record = RoundRecord(server_round=server_round, clients=cohort)
        if system:
            record.system = {"unavailable": sorted(set(range(len(self.specs))) - set(system.available)),
                             "dropped": [c for c in cohort if c in system.dropped],
                             "slow": [c for c in cohort if c in system.slowdown]}
            cohort = [c for c in cohort if c not in record.system["dropped"]]

        start = time.perf_counter()
        global_ref = self.aggregator.get_global.remote()  # stored once, shared by every fit
        start_refs = {c: self.aggregator.get_client_state.remote(c) for c in cohort} \
            if self.scenario.mode == "local" else None
        objectives = ray.get(self.aggregator.configure_fit.remote(server_round, cohort), timeout=60)
        tasks = [FitTask(server_round, c, np.asarray(self.specs[c].indices), self._masks(c),
                         objectives[c], derive_seed(self.scenario.seed, "fit", server_round, c),
                         slowdown=system.slowdown.get(c, 1.0) if system else 1.0)
                 for c in cohort]
        outcome = self.pool.fit(tasks, global_ref, fed.round_timeout_s, start_refs)
        record.time_s["fit"] = time.perf_counter() - start
        self._account(record, outcome, dispatched=len(tasks))
        self._check_quorum(record, outcome)

        start = time.perf_counter()
        try:
            record.aggregate = ray.get(self.aggregator.aggregate.remote(
                server_round, outcome.reports, outcome.params, outcome.failures), timeout=600)
        except ray.exceptions.RayTaskError as exc:
            self.history.append(record)  # the failed round stays readable
            raise FedRayError(f"round {server_round}: aggregation failed: {_cause(exc)}") from exc
        record.time_s["aggregate"] = time.perf_counter() - start
        return self._record(record, evaluate=self._eval_due(server_round))

    def _masks(self, client: int) -> tuple[int, ...]:
        spec = self.specs[client]
        return spec.masks if spec.masks is not None else (3,) * spec.num_samples

    def _account(self, record: RoundRecord, outcome: FitOutcome, dispatched: int) -> None:
        record.failures = [{"client_id": f.client_id, "reason": f.reason} for f in outcome.failures]
        weights = [r.num_examples for r in outcome.reports]
        if weights:
            losses = [r.metrics["train_loss"] for r in outcome.reports]
            record.train_loss = float(np.average(losses, weights=weights))
        record.bytes_down = self.adapter_nbytes * dispatched
        record.bytes_up = sum(r.params_nbytes for r in outcome.reports)
        record.compute_s = sum(r.fit_s for r in outcome.reports)
        record.memory_mb = {"actor_peak": max((r.peak_mem_mb for r in outcome.reports), default=0.0),
                            "driver_peak": peak_memory_mb()}
        record.bytes_sent = record.bytes_down + record.bytes_up

    def _check_quorum(self, record: RoundRecord, outcome: FitOutcome) -> None:
        needed = self.scenario.federation.min_fit_clients
        if len(outcome.reports) < needed:
            self.history.append(record)
            reasons = "; ".join(f"client {f.client_id}: {f.reason}" for f in outcome.failures)
            raise SchedulingError(f"round {record.server_round}: only {len(outcome.reports)} of "
                                  f"{len(record.clients)} clients returned, below "
                                  f"federation.min_fit_clients={needed} ({reasons})")

    def _eval_due(self, server_round: int) -> bool:
        every, last = self.scenario.eval.every, self.scenario.federation.rounds
        return server_round == last or (every > 0 and server_round % every == 0)

    def _record(self, record: RoundRecord, evaluate: bool) -> RoundRecord:
        if evaluate:
            start = time.perf_counter()
            self._evaluate(record)
            record.time_s["eval"] = time.perf_counter() - start
        self.history.append(record)
        self.tensorboard.on_round(record)
        logger.info("round %d: clients=%s loss=%s eval=%s", record.server_round, record.clients,
                    record.train_loss, record.eval)
        if self.on_round is not None:
            self.on_round(record)
        return record

    def _evaluate(self, record: RoundRecord) -> None:
        if self.scenario.mode == "local" and record.server_round > 0:
            # No global model: every client's own adapter is tested and validated, and the round is
            # chosen on the clients' mean validation score, the same rule as the other modes.
            states = [self.aggregator.get_client_state.remote(c) for c in range(len(self.specs))]
            record.client_eval = {c: self.evaluator.test(ref) for c, ref in enumerate(states)}
            record.eval = _mean_metrics(list(record.client_eval.values()))
            record.validation = _mean_metrics([self.evaluator.validate(ref) for ref in states])
            self._consider_best(record, best_state=None)
            return
        state_ref = self.aggregator.get_global.remote()
        record.eval = self.evaluator.test(state_ref)
        record.validation = self.evaluator.validate(state_ref)
        # Round 0 of the local baseline tests the shared initial adapter, but no later round has a global
        # one: keeping it as "best_adapter" would leave an untrained file beside a better local round.
        self._consider_best(record, best_state=None if self.scenario.mode == "local" else state_ref)

    def _consider_best(self, record: RoundRecord, best_state: Any) -> None:
        """Make ``record`` the best round if its validation score beats every earlier one."""
        metric = self.scenario.eval.select_metric
        if record.validation.get(metric, float("-inf")) > self.best_validation:
            self.best_validation = record.validation[metric]
            self.summary.best_round = record.server_round
            if best_state is not None:  # the local baseline has one adapter per client, none global
                self.run.save_adapter(ray.get(best_state, timeout=120), "best_adapter")

    def _finish(self, started_ray: bool) -> None:
        aggregator = getattr(self, "aggregator", None)
        if aggregator is not None:
            try:
                self.run.save_adapter(ray.get(aggregator.get_global.remote(), timeout=120))
            except Exception:  # keep the original error; the history is already on disk
                logger.exception("could not save the final global adapter")
            ray.kill(aggregator)
        if getattr(self, "summary", None) is not None:
            self.run.save_summary(_summary_json(self.scenario, self.summary))
        if getattr(self, "pool", None) is not None:
            self.pool.shutdown()
        if started_ray:
            ray.shutdown()
        self.tensorboard.close()
        self.run.close_log()


def _same_budget(s: Scenario) -> Scenario:
    """The centralized baseline's one client processes, per round, as many samples as the federated
    cohort does: ``local_steps`` × ``clients_per_round`` steps (``local_epochs`` over the pooled data
    already matches, since each client would have done those epochs over its own share)."""
    if s.mode != "centralized" or s.train.local_steps is None:
        return s
    cohort = min(s.federation.clients_per_round, s.partition.num_clients)
    return replace(s, train=replace(s.train, local_steps=s.train.local_steps * cohort))


def _cause(exc: BaseException) -> str:
    """A remote error's own message (a fedray error raised in an actor keeps its words)."""
    cause = getattr(exc, "cause", None)
    return str(cause) if cause is not None else str(exc).strip().splitlines()[-1]


def _pooled(specs: list[ClientSpec]) -> list[ClientSpec]:
    """One client holding every client's rows, each with the modalities it held (centralized baseline)."""
    masks = tuple(m for spec in specs for m in (spec.masks or (3,) * spec.num_samples))
    modalities = tuple(dict.fromkeys(m for spec in specs for m in spec.modalities))
    return [ClientSpec(client_id=0, indices=tuple(i for spec in specs for i in spec.indices),
                       task=specs[0].task, modalities=modalities, masks=masks)]


def _mean_metrics(per_client: list[dict[str, float]]) -> dict[str, float]:
    """Each metric's mean over clients, plus its spread (``<metric>_std``) for the local baseline."""
    keys = sorted(set().union(*per_client)) if per_client else []
    out: dict[str, float] = {}
    for key in keys:
        values = np.array([m[key] for m in per_client if key in m], dtype=float)
        out[key] = float(np.nanmean(values)) if values.size else float("nan")
        out[f"{key}_std"] = float(np.nanstd(values)) if values.size else float("nan")
    return out


def _summary_json(scenario: Scenario, summary: RunSummary) -> dict[str, Any]:
    return {"name": scenario.name, "mode": scenario.mode, "modality": scenario.modality.name,
            "strategy": scenario.strategy.name, "seed": scenario.seed,
            "rounds_completed": max((r.server_round for r in summary.rounds), default=0),
            "final_eval": summary.final_eval, "best_round": summary.best_round,
            "best_eval": summary.best_eval}


def run(scenario: Scenario, run_dir: str | Path | None = None,
        on_round: RoundCallback | None = None, resume: bool = False) -> RunSummary:
    """Run ``scenario`` (or continue the stopped run in ``run_dir``) and return its summary."""
    return Simulation(scenario, run_dir, on_round, resume).execute()
