"""The driver's round loop.

``Simulation.run`` reads as its phases: prepare (data, partition, actors), then per round sample a
cohort, fit it on the actor pool, aggregate on the aggregator actor, evaluate when due, and record.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from fedray.client.metrics import accuracy_metrics
from fedray.config.schema import Scenario
from fedray.data.manifest import ClientSpec, build_client_specs, write_manifest
from fedray.data.partition import partition
from fedray.data.sources import DatasetSplits, load_primary
from fedray.engine.actors import AggregatorActor
from fedray.engine.history import HistoryWriter, RoundRecord
from fedray.engine.pool import ActorPool, FitOutcome
from fedray.engine.rundir import RunDir
from fedray.engine.runtime import ensure_ray
from fedray.engine.sampler import sample_cohort
from fedray.engine.tasks import FitTask
from fedray.errors import SchedulingError
from fedray.seeding import derive_seed

logger = logging.getLogger(__name__)

RoundCallback = Callable[[RoundRecord], None]


@dataclass
class RunSummary:
    run_dir: Path
    rounds: list[RoundRecord] = field(default_factory=list)

    @property
    def final_eval(self) -> dict[str, float]:
        evaluated = [r.eval for r in self.rounds if r.eval]
        return evaluated[-1] if evaluated else {}


class Simulation:
    """One federated run of a scenario on Ray actors."""

    def __init__(self, scenario: Scenario, run_dir: str | Path | None = None,
                 on_round: RoundCallback | None = None) -> None:
        self.scenario = scenario
        self.run = RunDir.create(scenario, run_dir)
        self.on_round = on_round
        self.history = HistoryWriter(self.run.history_path)

    # -- phases ---------------------------------------------------------------------------------
    def execute(self) -> RunSummary:
        """Run every round; the run directory stays readable whatever happens."""
        summary = RunSummary(run_dir=self.run.path)
        started_ray = False
        try:
            self._prepare_data()
            started_ray = ensure_ray(self.scenario.resources)
            self._start_actors()
            if self.scenario.eval.at_start:
                summary.rounds.append(self._record(RoundRecord(server_round=0), evaluate=True))
            for server_round in range(1, self.scenario.federation.rounds + 1):
                summary.rounds.append(self._round(server_round))
        finally:
            self._finish(started_ray)
        return summary

    def _prepare_data(self) -> None:
        s = self.scenario
        self.splits: DatasetSplits = load_primary(s.data, s.seed)
        labels = self.splits.train.column("label").to_numpy(zero_copy_only=False)
        parts = partition(labels, s.partition, s.seed)
        self.specs: list[ClientSpec] = build_client_specs(parts, self.splits.task)
        write_manifest(self.run.manifest_path, self.specs, labels, self.splits.label_names,
                       extra={"seed": s.seed, "source": s.data.source, "partitioner": s.partition.name,
                              "test_samples": self.splits.test.num_rows})
        self.test_answers = self.splits.test.column("answer").to_pylist()

    def _start_actors(self) -> None:
        start = time.perf_counter()
        train_ref, test_ref = ray.put(self.splits.train), ray.put(self.splits.test)
        self.pool = ActorPool(self.scenario, train_ref, test_ref)
        initial = self.pool.initial_adapter()
        self.pool_adapter_keys = sorted(initial)
        here = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(),
                                              soft=False)
        self.aggregator = ray.remote(AggregatorActor).options(
            num_cpus=0, scheduling_strategy=here).remote(self.scenario, initial)
        self.adapter_nbytes = ray.get(self.aggregator.global_nbytes.remote(), timeout=120)
        logger.info("%d client actors ready in %.1f s (%s trainable params each, adapter %.1f KiB)",
                    len(self.pool.actors), time.perf_counter() - start,
                    self.pool.info[0]["trainable_params"], self.adapter_nbytes / 1024)

    def _round(self, server_round: int) -> RoundRecord:
        fed = self.scenario.federation
        cohort = sample_cohort(self.scenario.seed, server_round, len(self.specs), fed.clients_per_round)
        record = RoundRecord(server_round=server_round, clients=cohort)

        start = time.perf_counter()
        global_ref = self.aggregator.get_global.remote()  # stored once, shared by every fit
        objective = ray.get(self.aggregator.configure_fit.remote(server_round, cohort), timeout=60)
        tasks = [FitTask(server_round, c, np.asarray(self.specs[c].indices), objective,
                         derive_seed(self.scenario.seed, "fit", server_round, c)) for c in cohort]
        outcome = self.pool.fit(tasks, global_ref, fed.round_timeout_s)
        record.time_s["fit"] = time.perf_counter() - start
        self._account(record, outcome, dispatched=len(tasks))
        self._check_quorum(record, outcome)

        start = time.perf_counter()
        record.aggregate = ray.get(self.aggregator.aggregate.remote(
            server_round, outcome.reports, outcome.params, outcome.failures), timeout=600)
        record.time_s["aggregate"] = time.perf_counter() - start
        return self._record(record, evaluate=self._eval_due(server_round))

    def _account(self, record: RoundRecord, outcome: FitOutcome, dispatched: int) -> None:
        record.failures = [{"client_id": f.client_id, "reason": f.reason} for f in outcome.failures]
        weights = [r.num_examples for r in outcome.reports]
        if weights:
            losses = [r.metrics["train_loss"] for r in outcome.reports]
            record.train_loss = float(np.average(losses, weights=weights))
        record.bytes_down = self.adapter_nbytes * dispatched
        record.bytes_up = sum(r.params_nbytes for r in outcome.reports)
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
            generations = self.pool.evaluate(self.aggregator.get_global.remote(),
                                             len(self.test_answers), timeout_s=1800)
            record.eval = accuracy_metrics(generations, self.test_answers, self.splits.label_names)
            record.time_s["eval"] = time.perf_counter() - start
        self.history.append(record)
        logger.info("round %d: clients=%s loss=%s eval=%s", record.server_round, record.clients,
                    record.train_loss, record.eval)
        if self.on_round is not None:
            self.on_round(record)
        return record

    def _finish(self, started_ray: bool) -> None:
        aggregator = getattr(self, "aggregator", None)
        if aggregator is not None:
            try:
                self.run.save_adapter(ray.get(aggregator.get_global.remote(), timeout=120))
            except Exception:  # keep the original error; the history is already on disk
                logger.exception("could not save the final global adapter")
            ray.kill(aggregator)
        if getattr(self, "pool", None) is not None:
            self.pool.shutdown()
        if started_ray:
            ray.shutdown()
        self.run.close_log()


def run(scenario: Scenario, run_dir: str | Path | None = None,
        on_round: RoundCallback | None = None) -> RunSummary:
    """Run ``scenario`` and return its summary (see :class:`Simulation`)."""
    return Simulation(scenario, run_dir, on_round).execute()
