"""The client actor pool: sized from declared resources, fed with fits over the round's cohort.

Fits are handed out as actors free up, so a pool of A actors runs a cohort of any size with at most A
fits in flight. Every wait has a deadline: Ray leaves an unschedulable request pending forever, so a
pool that cannot start within ``start_timeout_s`` raises an error that says what was asked and what the
cluster has.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import ray

from fedray.config.schema import ResourcesConfig, Scenario
from fedray.engine.actors import ClientActor
from fedray.engine.tasks import EvalRequest, EvalShard, FitReport, FitTask
from fedray.errors import FedRayError, ModelError, SchedulingError
from fedray.strategies import ClientFailure

logger = logging.getLogger(__name__)


def check_capacity(resources: ResourcesConfig) -> None:
    """Fail fast when the cluster's totals cannot hold the requested actors at all."""
    cluster = ray.cluster_resources()
    need_cpu = resources.actors * resources.cpus_per_actor
    need_gpu = resources.actors * resources.gpus_per_actor
    have_cpu, have_gpu = cluster.get("CPU", 0.0), cluster.get("GPU", 0.0)
    problems = []
    if need_cpu > have_cpu + 1e-9:
        problems.append(f"{resources.actors} actors × {resources.cpus_per_actor} CPU = {need_cpu:g} CPU "
                        f"but the cluster has {have_cpu:g}")
    if need_gpu > have_gpu + 1e-9:
        problems.append(f"{resources.actors} actors × {resources.gpus_per_actor} GPU = {need_gpu:g} GPU "
                        f"but the cluster has {have_gpu:g}")
    if problems:
        raise SchedulingError("the client actor pool does not fit: " + "; ".join(problems) +
                              ". Lower resources.actors, resources.cpus_per_actor or "
                              "resources.gpus_per_actor, or add nodes.")


@dataclass
class FitOutcome:
    """What came back from one round's fits."""

    reports: list[FitReport] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)  # ObjectRefs, aligned with reports
    failures: list[ClientFailure] = field(default_factory=list)

    def in_cohort_order(self, tasks: Sequence[FitTask]) -> "FitOutcome":
        """The same outcome with results and failures in the order the tasks were dispatched.

        Fits finish in whatever order the actors happen to run; summing float32 updates in that order
        would make the aggregate differ in its last bits from run to run (and break exact resume).
        """
        rank = {task.client_id: i for i, task in enumerate(tasks)}
        pairs = sorted(zip(self.reports, self.params), key=lambda pair: rank[pair[0].client_id])
        return FitOutcome(reports=[r for r, _ in pairs], params=[p for _, p in pairs],
                          failures=sorted(self.failures, key=lambda f: rank[f.client_id]))


class ActorPool:
    """A fixed set of :class:`ClientActor` handles."""

    def __init__(self, scenario: Scenario, train_ref: Any, eval_ref: Any,
                 start_timeout_s: float = 300.0) -> None:
        res = scenario.resources
        check_capacity(res)
        self.retries = scenario.federation.fit_retries
        remote_cls = ray.remote(ClientActor).options(
            num_cpus=res.cpus_per_actor, num_gpus=res.gpus_per_actor, max_concurrency=1)
        # Kept to build a replacement when an actor dies (it rebuilds its model from the scenario).
        self._new_actor = lambda: remote_cls.remote(scenario, train_ref, eval_ref)
        self.actors = [self._new_actor() for _ in range(res.actors)]
        self.restarts = 0
        self.info = self._wait_ready(start_timeout_s, res)

    def _wait_ready(self, timeout_s: float, res: ResourcesConfig) -> list[dict[str, Any]]:
        refs = [actor.describe.remote() for actor in self.actors]
        ready, pending = ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
        if pending:
            raise SchedulingError(
                f"{len(pending)} of {len(refs)} client actors did not start within {timeout_s:.0f} s. "
                f"Requested per actor: {res.cpus_per_actor} CPU, {res.gpus_per_actor} GPU; cluster "
                f"available now: {ray.available_resources()}. Lower resources.actors or the "
                f"per-actor resources.")
        try:
            return ray.get(ready, timeout=timeout_s)
        except ray.exceptions.RayActorError as exc:
            raise ModelError(f"a client actor failed while building its model: "
                             f"{_root_cause(exc)}") from exc

    def initial_adapter(self, timeout_s: float = 120.0) -> Any:
        return ray.get(self.actors[0].initial_adapter.remote(), timeout=timeout_s)

    def fit(self, tasks: Sequence[FitTask], global_ref: Any, timeout_s: float,
            start_refs: Mapping[int, Any] | None = None) -> FitOutcome:
        """Run ``tasks`` over the pool; fits not done by the deadline become failures.

        Every fit starts from ``global_ref``, or from ``start_refs[client_id]`` where given. A fit whose
        actor dies is retried on another actor up to ``federation.fit_retries`` times (fits are pure
        functions of (round, client), so a retry gives the same result), else it is a failure; the dead
        actor is replaced by a new one that rebuilds its model.
        """
        deadline = time.monotonic() + timeout_s
        queue = [(task, 0) for task in tasks]
        in_flight: dict[Any, tuple[Any, Any, FitTask, int]] = {}  # report ref → (actor, params, task, try)
        idle = list(self.actors)
        outcome = FitOutcome()
        while queue or in_flight:
            while queue and idle:
                actor, (task, attempt) = idle.pop(0), queue.pop(0)
                start = (start_refs or {}).get(task.client_id, global_ref)
                report_ref, params_ref = actor.fit.options(num_returns=2).remote(task, start)
                in_flight[report_ref] = (actor, params_ref, task, attempt)
            remaining = deadline - time.monotonic()
            done, _ = ray.wait(list(in_flight), num_returns=1, timeout=max(0.0, remaining))
            if not done:
                self._expire(in_flight, [t for t, _ in queue], outcome, timeout_s)
                break
            actor, params_ref, task, attempt = in_flight.pop(done[0])
            died = self._collect(done[0], params_ref, task, outcome, retry=attempt < self.retries)
            if died:
                actor = self._replace(actor)
                if attempt < self.retries:
                    queue.append((task, attempt + 1))
            idle.append(actor)
        return outcome.in_cohort_order(tasks)

    def _replace(self, dead: Any) -> Any:
        """Swap a dead actor for a fresh one (built asynchronously; Ray queues calls until it is up)."""
        fresh = self._new_actor()
        self.actors[self.actors.index(dead)] = fresh
        self.restarts += 1
        logger.warning("a client actor died; started a replacement (%d restarts so far)", self.restarts)
        return fresh

    @staticmethod
    def _collect(report_ref: Any, params_ref: Any, task: FitTask, outcome: FitOutcome,
                 retry: bool) -> bool:
        """Record the fit's report or failure; True when its actor died (it must be replaced)."""
        try:
            report = ray.get(report_ref)
        except ray.exceptions.RayActorError as exc:
            logger.error("client %d's actor died in round %d%s", task.client_id, task.server_round,
                         " (retrying on another actor)" if retry else "", exc_info=exc)
            if not retry:
                outcome.failures.append(ClientFailure(task.client_id, f"actor died: {_root_cause(exc)}"))
            return True
        except Exception as exc:  # a client's exception must not end the round for the others
            logger.error("client %d failed in round %d", task.client_id, task.server_round,
                         exc_info=exc)
            outcome.failures.append(ClientFailure(task.client_id, f"{type(exc).__name__}: {exc}"))
            return False
        outcome.reports.append(report)
        outcome.params.append(params_ref)
        return False

    @staticmethod
    def _expire(in_flight: dict, queue: list[FitTask], outcome: FitOutcome, timeout_s: float) -> None:
        reason = f"timed out: not done within federation.round_timeout_s={timeout_s:g}"
        for ref, (_, _, task, _) in in_flight.items():
            ray.cancel(ref)
            outcome.failures.append(ClientFailure(task.client_id, reason))
        outcome.failures += [ClientFailure(task.client_id, reason + " (never started)") for task in queue]
        in_flight.clear()
        queue.clear()

    def evaluate(self, state_ref: Any, set_name: str, num_rows: int, timeout_s: float,
                 condition: str = "full", score_options: bool = False) -> EvalShard:
        """Evaluate rows 0..num_rows-1 of one eval set, sharded over the actors in contiguous blocks."""
        bounds = [round(i * num_rows / len(self.actors)) for i in range(len(self.actors) + 1)]
        refs = [actor.evaluate.remote(state_ref, EvalRequest(set_name, tuple(range(lo, hi)), condition,
                                                             score_options))
                for actor, lo, hi in zip(self.actors, bounds, bounds[1:]) if hi > lo]
        shards: list[EvalShard] = ray.get(refs, timeout=timeout_s)
        scores = [s for shard in shards for s in shard.option_logprobs or []] if score_options else None
        return EvalShard(generations=[g for shard in shards for g in shard.generations],
                         option_logprobs=scores)

    def shutdown(self) -> None:
        for actor in self.actors:
            ray.kill(actor)
        self.actors = []


def _root_cause(exc: BaseException) -> str:
    """The innermost exception's message: a fedray error raised in an actor keeps its own words."""
    cause = getattr(exc, "cause", None) or exc.__cause__
    while cause is not None:
        if isinstance(cause, FedRayError):
            return str(cause)
        cause = getattr(cause, "cause", None) or cause.__cause__
    return str(exc).strip().splitlines()[-1]
