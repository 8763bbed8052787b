"""The driver's round loop.

``Simulation.execute`` reads as its phases: start (Ray; the actors and the aggregator, which build their
models and import the strategies while the driver builds the data), then per round sample a cohort, fit
it on the actor pool while the aggregator folds in each result as it comes, close the round on the
aggregator, evaluate when due, record and checkpoint.

The driver holds no tensor: adapters and objectives travel between the actors and the aggregator as
object-store references, and the aggregator writes the adapter files and checkpoints. It imports
neither transformers nor the model code (nor the strategies).

How the rounds of a run differ (``federated``, or a baseline on the same data, model and budget:
``centralized``, ``local``, ``zero_shot``) is the run mode's to say (:mod:`fedray.engine.modes`). Who
watches the rounds (TensorBoard, the terminal, Ray Tune) is up to the caller, who hands in
:class:`~fedray.engine.observers.RoundObserver` s; the run directory's history is always one of them.
"""

from __future__ import annotations

import logging
import resource
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from fedray.client.schedule import round_lr
from fedray.config.schema import Scenario, SystemConfig
from fedray.data.federated import FederatedData, build_federated_data
from fedray.data.manifest import ClientSpec, train_needs, write_manifest
from fedray.data.modality import BOTH
from fedray.engine.chunking import CallSizer
from fedray.engine.client_setup import ClientSetup
from fedray.engine.dispatch import ResultBatches
from fedray.engine.evaluation import Evaluator
from fedray.engine.faults import AGGREGATOR_RESTARTS, actor_dead, stop_message, write_error_in
from fedray.engine.files import RunDirWriteError
from fedray.engine.history import RoundRecord
from fedray.engine.modes import build_run_mode
from fedray.engine.observers import Observers, Progress, RoundObserver, RunStart
from fedray.engine.pool import ActorPool, FitOutcome
from fedray.engine.remote import AggregatorActor, AggregatorStates
from fedray.engine.resume import ResumePlan, config_fingerprint, plan_resume
from fedray.engine.rundir import RunDir
from fedray.engine.runtime import RayStart, actor_output, begin_local_ray, ensure_ray
from fedray.engine.sampler import SystemDraw, draw_system
from fedray.engine.startup import StartupClock
from fedray.engine.summary import RunSummary
from fedray.engine.tasks import AggregatorSetup, FitTask
from fedray.errors import FedRayError, SchedulingError
from fedray.seeding import derive_seed

logger = logging.getLogger(__name__)

__all__ = ["RunSummary", "Simulation", "run"]


class Simulation:
    """One run of a scenario on Ray actors, watched by ``observers`` (called in the order given, after
    the run directory's history)."""

    def __init__(self, scenario: Scenario, run_dir: str | Path | None = None,
                 observers: Sequence[RoundObserver] = (), resume: bool = False,
                 overwrite: bool = False) -> None:
        """``resume``: continue the run in ``run_dir`` (checked here, before anything starts or is
        written: see :mod:`fedray.engine.resume`); ``overwrite``: move a run already in ``run_dir``
        aside instead of refusing to start."""
        self.scenario = scenario
        self.mode = build_run_mode(scenario)
        self.resume = resume
        self.plan: ResumePlan | None = None
        if resume:
            if run_dir is None:
                raise FedRayError("resuming needs the run directory to continue")
            self.run = RunDir.reopen(run_dir)
            self.plan = plan_resume(self.run.path, self.mode.rounds, self.run.client_state_dir)
            if not self.plan.finished:
                self.run.attach_log()
            for note in self.plan.notes:
                logger.warning("%s", note)
        else:
            self.run = RunDir.create(scenario, run_dir, overwrite=overwrite)
        keep = self.plan.checkpoint_round if self.plan else None
        self.history = self.run.history_writer(keep_through=keep)
        self.observers = Observers([self.history, *observers])
        self.best_validation = float("-inf")
        self.config_sha256 = config_fingerprint(self.run.config_path)
        self.rounds_done = 0  # rounds completed by this execution (a resume's count from 0)
        self.last_checkpoint = keep
        self.checkpoint_s: float | None = None  # the last checkpoint's time, for the next round's record

    # -- phases ---------------------------------------------------------------------------------
    @property
    def already_finished(self) -> bool:
        """True when resuming a run that had finished: :meth:`execute` returns its summary at once."""
        return self.plan is not None and self.plan.finished

    def execute(self) -> RunSummary:
        """Run every round; the run directory stays readable whatever happens."""
        self.summary = RunSummary(run_dir=self.run.path)
        if self.already_finished:  # nothing to do, nothing written, no Ray
            self.summary.rounds = [RoundRecord.from_json(r) for r in self.plan.records]
            self.summary.best_round = None if self.plan.best_round is True else self.plan.best_round
            return self.summary
        started_ray = completed = False
        clock = StartupClock(self.observers.on_progress)
        early = None
        try:
            early = begin_local_ray(self.scenario.resources)
            if early is not None:  # the data is built while Ray starts, not while the actors load
                with clock.phase("data (Ray starting meanwhile)", "building the data (Ray starting)"):
                    self._prepare_data()
            with clock.phase("ray.init", "starting Ray"):
                started_ray = ensure_ray(self.scenario.resources, early)
            self._start(clock)
            first = self._restore() + 1 if self.resume else 1
            evaluate_start = first == 1 and self.mode.evaluates_round_zero
            self.observers.on_start(RunStart(self.run.path, self.scenario, 0 if evaluate_start else first,
                                             self.mode.rounds))
            if evaluate_start:
                self.summary.rounds.append(self._record(RoundRecord(server_round=0), evaluate=True))
            self._rounds(first, clock)
            completed = True
        except Exception as exc:
            stop = self._stop_message(exc)
            if stop is None:
                raise
            raise FedRayError(stop) from exc
        finally:
            try:
                self._finish(started_ray, completed)
            finally:
                if early is not None:
                    early.close()  # after ray.shutdown (EarlyHead's docstring)
        return self.summary

    def _rounds(self, first: int, clock: StartupClock) -> None:
        """Rounds ``first`` to the last, each checkpointed when due. A dead aggregator is restarted
        from the last checkpoint (at most ``AGGREGATOR_RESTARTS`` times, :mod:`fedray.engine.faults`)
        and the rounds after it are redone, with the same results (pure functions of seed and round)."""
        server_round, restarts = first, 0
        while server_round <= self.mode.rounds:
            try:
                self.summary.rounds.append(self._round(server_round))
                self.rounds_done += 1
                clock.first_round_done(server_round)
                self._checkpoint_if_due(server_round)
            except Exception as exc:
                if restarts >= AGGREGATOR_RESTARTS or self.last_checkpoint is None or \
                        write_error_in(exc) is not None or not actor_dead(self.aggregator):
                    raise
                restarts += 1
                server_round = self._restart_aggregator(server_round) + 1
                continue
            server_round += 1

    def _restart_aggregator(self, server_round: int) -> int:
        """A new aggregator actor from the last checkpoint; return the checkpoint's round."""
        logger.warning("the aggregator actor died in round %d; restarting it from the checkpoint of "
                       "round %d and redoing the rounds after it", server_round, self.last_checkpoint)
        self.aggregator = self._start_aggregator()
        self.states = AggregatorStates(self.aggregator)
        last, driver = ray.get(self.aggregator.resume.remote(), timeout=600)
        self.states.changed()
        self.best_validation, self.summary.best_round = driver["best_validation"], driver["best_round"]
        self.summary.rounds = [r for r in self.summary.rounds if r.server_round <= last]
        self.history.keep_through = last  # the redone rounds replace their first records
        return last

    def _start(self, clock: StartupClock) -> None:
        """The actors and the aggregator start first (models, imports) and the data is built meanwhile;
        the actors take it when it is ready. ``clock`` records how long each step kept the driver."""
        s = self.scenario
        with clock.phase("actors + aggregator started", "starting the client actors"):
            setup = ClientSetup.from_scenario(s, train=self.mode.train_config())
            self.call_sizer = CallSizer(s.resources.fits_per_call, s.resources.actors_per_client)
            self.pool = ActorPool(s.resources, setup, fits_per_round=self.mode.fits_per_round(
                self._training_clients()), fit_retries=s.federation.fit_retries, wait=False)
            self.aggregator = self._start_aggregator()
            self.states = AggregatorStates(self.aggregator)
        built = getattr(self, "data", None) is not None  # while Ray started (not when joining a cluster)
        with clock.phase("data to the actors" if built else "data (actors loading meanwhile)",
                         "handing the data over" if built else "building the data (models loading)"):
            if not built:
                self._prepare_data()
            # One object per table set: Ray resolves top-level ObjectRef arguments only.
            self.pool.attach_data(ray.put(self.data.train), ray.put(Evaluator.eval_tables(self.data)),
                                  train_needs(self.specs), self.scenario.data.cache_dir)
            self.evaluator = Evaluator(s.eval, self.data, self.pool, setup.prompt, self.run.path,
                                       on_progress=self.observers.on_progress)
        with clock.phase("actors ready", f"loading the model on {len(self.pool.actors)} actor(s)"):
            self.pool.wait_ready()
        with clock.phase("aggregator ready", "initial adapter to the aggregator"):
            self.adapter_nbytes = ray.get(self.aggregator.set_global.remote(self.pool.initial_adapter_ref()),
                                          timeout=120)
        self.pool_adapter_keys = sorted(self.pool.info[0]["adapter_keys"])
        self.adapter_config = self.pool.info[0]["adapter_config"]  # PEFT's, saved beside each adapter
        clock.report(self.pool.info, self.adapter_nbytes)

    def _training_clients(self) -> int:
        """How many clients train, before the data is built: the run mode's pick from placeholders of
        the partition's clients (what sizes a pool that the cluster sizes)."""
        placeholders = [ClientSpec(client_id=i, indices=(), task="")
                        for i in range(self.scenario.partition.num_clients)]
        return len(self.mode.client_specs(placeholders))

    def _prepare_data(self) -> None:
        s = self.scenario
        self.data: FederatedData = build_federated_data(s)
        labels = self.data.train.column("label").fill_null(-1).to_numpy()
        write_manifest(self.run.manifest_path, self.data.specs, labels, self.data.label_names,
                       extra={"seed": s.seed, "source": s.data.source, "partitioner": s.partition.name,
                              "modality": s.modality.name, "mode": s.mode,
                              "test_samples": self.data.primary_test.table.num_rows})
        # The manifest shows the real split; the run mode picks the clients that train from it.
        self.specs: list[ClientSpec] = self.mode.client_specs(self.data.specs)

    def _start_aggregator(self) -> Any:
        """The aggregator actor, pinned to the driver's node (it asks for no resources); the run mode
        says whether it keeps each client's adapter apart instead of aggregating. It gets the initial
        adapter once a client actor has built it."""
        here = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)
        setup = AggregatorSetup.from_scenario(self.scenario, isolated=self.mode.isolated)
        return ray.remote(AggregatorActor).options(num_cpus=0, scheduling_strategy=here).remote(
            setup, None, str(self.run.path))

    def _restore(self) -> int:
        """Load the run directory's checkpoint into the aggregator; return the round it ended."""
        last, driver = ray.get(self.aggregator.resume.remote(), timeout=600)
        self.states.changed()
        self.best_validation = driver["best_validation"]
        self.summary.best_round = driver["best_round"]
        self.summary.rounds = [RoundRecord.from_json(r) for r in self.plan.records]
        logger.info("resumed %s after round %d", self.run.path, last)
        return last

    def _round(self, server_round: int) -> RoundRecord:
        system = self._system(server_round)
        cohort = self.mode.cohort(server_round, len(self.specs), system.available if system else None)
        record = RoundRecord(server_round=server_round, clients=cohort)
        if self.checkpoint_s is not None:  # the checkpoint written after the previous round
            record.time_s["checkpoint"], self.checkpoint_s = self.checkpoint_s, None
        if system:
            cohort = _apply_system(record, cohort, system, len(self.specs))

        start = time.perf_counter()
        outcome = self._fit(server_round, cohort, system)  # the aggregator folds results in meanwhile
        record.time_s["fit"] = time.perf_counter() - start
        self._account(record, outcome, dispatched=len(cohort))
        self._check_quorum(record, outcome)

        start = time.perf_counter()
        record.aggregate = self._aggregate(record, outcome)  # what is left after the last fit
        record.time_s["aggregate"] = time.perf_counter() - start
        return self._record(record, evaluate=self._eval_due(server_round))

    # -- one round's steps ----------------------------------------------------------------------
    def _system(self, server_round: int) -> SystemDraw | None:
        """This round's simulated availability, dropouts and slow clients (None when all are off)."""
        if self.scenario.system == SystemConfig():
            return None
        return draw_system(self.scenario.system, self.scenario.seed, server_round, len(self.specs))

    def _fit(self, server_round: int, cohort: list[int], system: SystemDraw | None) -> FitOutcome:
        """Each cohort member's fit on the pool, from the global adapter or the one the mode gives;
        each result goes on to the aggregator as soon as it is back."""
        global_ref = self.states.global_state()  # stored once a round, read by every fit
        start_refs = self.mode.start_states(cohort, self.states)
        objectives = self._objectives(server_round, cohort)
        self.aggregator.begin_round.remote(server_round, [(c, self.specs[c].num_samples) for c in cohort])
        lr = self._round_lr(server_round)
        tasks = [FitTask(server_round, c, np.asarray(self.specs[c].indices), self._masks(c), None,
                         derive_seed(self.scenario.seed, "fit", server_round, c),
                         slowdown=system.slowdown.get(c, 1.0) if system else 1.0, lr=lr)
                 for c in cohort]

        forward = ResultBatches(lambda batch: self.aggregator.add_results.remote(
            server_round, *(ref for pair in batch for ref in pair)), self.adapter_nbytes)
        returned: list[int] = []

        def on_result(report_ref: Any, params_ref: Any, report: Any) -> None:
            forward(report_ref, params_ref, report)  # a call of several fits: the list of its reports
            returned.extend(r.client_id for r in (report if isinstance(report, list) else [report]))
            self._fit_progress(server_round, len(returned), len(tasks))

        self._fit_progress(server_round, 0, len(tasks))
        try:
            outcome = self.pool.fit(tasks, global_ref, self.scenario.federation.round_timeout_s, start_refs,
                                    objectives, on_result=on_result,
                                    fits_per_call=self.call_sizer.next(len(tasks), len(self.pool.groups)))
            self.call_sizer.observe(outcome.reports)
            return outcome
        finally:
            forward.flush()
            self._fit_progress(server_round, len(tasks), len(tasks))  # failed fits end the round too

    def _fit_progress(self, server_round: int, done: int, total: int) -> None:
        if total:
            self.observers.on_progress(Progress("fit", f"round {server_round}", done, total))

    def _objectives(self, server_round: int, cohort: list[int]) -> dict[int, Any]:
        """Each member's objective as its own ObjectRef: it goes from the aggregator to the fit, and
        the driver never opens it (SCAFFOLD's carry adapter-sized variates)."""
        if not cohort:
            return {}
        refs = self.aggregator.objectives.options(num_returns=len(cohort)).remote(server_round, cohort)
        return dict(zip(cohort, refs if len(cohort) > 1 else [refs]))

    def _round_lr(self, server_round: int) -> float | None:
        """The round's base lr under ``train.round_schedule`` (None: the constant ``train.lr``)."""
        train = self.scenario.train
        if train.round_schedule.name == "constant":
            return None
        return round_lr(train.lr, server_round, self.scenario.federation.rounds, train.round_schedule)

    def _masks(self, client: int) -> tuple[int, ...]:
        spec = self.specs[client]
        return spec.masks if spec.masks is not None else (BOTH,) * spec.num_samples

    def _account(self, record: RoundRecord, outcome: FitOutcome, dispatched: int) -> None:
        record.failures = [{"client_id": f.client_id, "reason": f.reason} for f in outcome.failures]
        record.retries = [{"client_id": f.client_id, "reason": f.reason} for f in outcome.retries]
        weights = [r.num_examples for r in outcome.reports]
        if weights:
            losses = [r.metrics["train_loss"] for r in outcome.reports]
            record.train_loss = float(np.average(losses, weights=weights))
        record.bytes_down, record.bytes_up = self.mode.traffic(
            self.adapter_nbytes * dispatched, sum(r.params_nbytes for r in outcome.reports))
        record.compute_s = sum(r.fit_s for r in outcome.reports)
        record.memory_mb = {"actor_peak": max((r.peak_mem_mb for r in outcome.reports), default=0.0),
                            "driver_peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
        record.bytes_sent = record.bytes_down + record.bytes_up

    def _check_quorum(self, record: RoundRecord, outcome: FitOutcome) -> None:
        needed = self.scenario.federation.min_fit_clients
        if len(outcome.reports) < needed:
            self.observers.on_failed_round(record)
            reasons = "; ".join(f"client {f.client_id}: {f.reason}" for f in outcome.failures)
            raise SchedulingError(f"round {record.server_round}: only {len(outcome.reports)} of "
                                  f"{len(record.clients)} clients returned, below "
                                  f"federation.min_fit_clients={needed} ({reasons})")

    def _aggregate(self, record: RoundRecord, outcome: FitOutcome) -> dict[str, float]:
        """Close the round on the aggregator (its results are already there, most of them folded in)."""
        try:
            metrics = ray.get(self.aggregator.close_round.remote(record.server_round, outcome.failures),
                              timeout=600)
            self.states.changed()
            return metrics
        except ray.exceptions.RayTaskError as exc:
            self.observers.on_failed_round(record)  # the failed round stays readable
            raise FedRayError(f"round {record.server_round}: aggregation failed: {_cause(exc)}") from exc

    def _eval_due(self, server_round: int) -> bool:
        every, last = self.scenario.eval.every, self.mode.rounds
        return server_round == last or (every > 0 and server_round % every == 0)

    def _record(self, record: RoundRecord, evaluate: bool) -> RoundRecord:
        if evaluate:
            start = time.perf_counter()
            best_state = self.mode.evaluate(record, self.evaluator, self.states, len(self.specs))
            self.evaluator.write_predictions(record.server_round)
            self._consider_best(record, best_state)
            record.time_s["eval"] = time.perf_counter() - start
        logger.info("round %d: clients=%s loss=%s eval=%s", record.server_round, record.clients,
                    record.train_loss, record.eval)
        self.observers.on_round(record)
        return record

    def _save_summary(self, completed: bool) -> None:
        try:
            self.run.save_summary(self.summary.to_json(self.scenario))
        except RunDirWriteError as exc:
            if completed:  # the run's own last write: its error is the run's
                raise FedRayError(f"the run finished but {exc}; its history and checkpoint are complete: "
                                  f"free some space, then write the summary with: fedray run --resume "
                                  f"{self.run.path}") from None
            logger.error("%s", exc)

    def _consider_best(self, record: RoundRecord, best_state: Any) -> None:
        """Make ``record`` the best round if its validation score beats every earlier one."""
        metric = self.scenario.eval.select_metric
        if record.validation.get(metric, float("-inf")) > self.best_validation:
            self.best_validation = record.validation[metric]
            self.summary.best_round = record.server_round
            if best_state is not None:  # the local baseline has one adapter per client, none global
                ray.get(self.aggregator.save_adapter.remote("best_adapter", best_state, self.adapter_config),
                        timeout=120)

    def _checkpoint_if_due(self, server_round: int) -> None:
        every = self.scenario.federation.checkpoint_every
        if every and (server_round % every == 0 or server_round == self.mode.rounds):
            start = time.perf_counter()
            driver = {"best_validation": self.best_validation, "best_round": self.summary.best_round,
                      "config_sha256": self.config_sha256}
            ray.get(self.aggregator.save_checkpoint.remote(server_round, driver), timeout=600)
            self.checkpoint_s = time.perf_counter() - start
            self.last_checkpoint = server_round

    def _stop_message(self, exc: BaseException) -> str | None:
        """The message that stops the run when ``exc`` came from outside fedray's control (see
        :func:`~fedray.engine.faults.stop_message`); None for any other error."""
        self.aggregator_lost = write_error_in(exc) is None and actor_dead(getattr(self, "aggregator", None))
        return stop_message(exc, self.run.path, [r.server_round for r in self.summary.rounds],
                            self.last_checkpoint, self.aggregator_lost)

    # -- the end --------------------------------------------------------------------------------
    def _may_replace_results(self) -> bool:
        """A resumed run replaces the adapter and summary it found only once it has completed a round
        (or when it resumes a run that stopped inside its final save)."""
        return not self.resume or self.rounds_done > 0 or self.plan.checkpoint_round == self.mode.rounds

    def _finish(self, started_ray: RayStart | bool, completed: bool) -> None:
        aggregator = getattr(self, "aggregator", None)
        keep_files = not self._may_replace_results()
        if aggregator is not None and getattr(self, "adapter_nbytes", None) is not None and not keep_files \
                and not getattr(self, "aggregator_lost", False):
            try:  # (the aggregator has a global adapter once start-up got that far)
                config = getattr(self, "adapter_config", None)
                ray.get(aggregator.save_adapter.remote("global_adapter", None, config), timeout=120)
            except Exception as exc:  # keep the original error; the history is already on disk
                logger.error("could not save the final global adapter: %s", _cause(exc))
                logger.debug("the final global adapter's error", exc_info=True)
        if aggregator is not None:
            ray.kill(aggregator)
        if not keep_files:
            self._save_summary(completed)
        if getattr(self, "pool", None) is not None:
            self.pool.shutdown()
        if started_ray:
            _log_actor_output(started_ray)
            ray.shutdown()
        try:
            self.observers.on_finish(self.summary, completed)
        finally:
            self.run.close_log()


def _apply_system(record: RoundRecord, cohort: list[int], system: SystemDraw, num_clients: int) -> list[int]:
    """Record this round's simulated unavailable, dropped and slow clients; return who still fits."""
    record.system = {"unavailable": sorted(set(range(num_clients)) - set(system.available)),
                     "dropped": [c for c in cohort if c in system.dropped],
                     "slow": [c for c in cohort if c in system.slowdown]}
    return [c for c in cohort if c not in record.system["dropped"]]


def _log_actor_output(start: RayStart | bool) -> None:
    """Copy this run's actor output (kept off the terminal) into the run log."""
    lines = actor_output(getattr(start, "session_dir", None), ray.get_runtime_context().get_job_id())
    if lines:
        logger.info("the actors' output (not shown on the terminal):\n%s", "\n".join(lines))


def _cause(exc: BaseException) -> str:
    """A remote error's own message (a fedray error raised in an actor keeps its words)."""
    cause = getattr(exc, "cause", None)
    return str(cause) if cause is not None else str(exc).strip().splitlines()[-1]


def run(scenario: Scenario, run_dir: str | Path | None = None, observers: Sequence[RoundObserver] = (),
        resume: bool = False, overwrite: bool = False) -> RunSummary:
    """Run ``scenario`` (or continue the stopped run in ``run_dir``) and return its summary."""
    return Simulation(scenario, run_dir, observers, resume, overwrite).execute()
