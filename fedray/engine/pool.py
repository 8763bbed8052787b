"""The client actor pool: sized from declared resources, fed with fits over the round's cohort.

The pool holds groups of ``resources.actors_per_client`` actors (:mod:`fedray.engine.group`; a group of
one is a plain actor). Fits are handed out as groups free up, so a pool of G groups runs a cohort of
any size with at most G fits in flight. ``resources.actors`` sets G, or, when None, the cluster does:
as many groups as its nodes hold, capped at the fits a round runs. Every wait has a deadline: Ray
leaves an unschedulable request pending forever, so a pool that cannot start within
``start_timeout_s`` raises an error that says what was asked and what the cluster has.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import ray

from fedray.config.schema import ResourcesConfig
from fedray.engine.actors import ClientActor
from fedray.engine.client_setup import ClientSetup
from fedray.engine.group import ActorGroup, GroupFit, cluster_totals, fitting_groups
from fedray.engine.tasks import EvalRequest, EvalShard, FitReport, FitTask
from fedray.errors import FedRayError, ModelError, SchedulingError
from fedray.strategies import ClientFailure

logger = logging.getLogger(__name__)

_LOWER = ("Lower resources.actors, resources.cpus_per_actor or resources.gpus_per_actor, or add nodes.")


def _per_group(res: ResourcesConfig) -> str:
    n = res.actors_per_client
    return (f"{n} actors × " if n > 1 else "") + f"{res.cpus_per_actor:g} CPU, " + \
        (f"{n} actors × " if n > 1 else "") + f"{res.gpus_per_actor:g} GPU"


def pool_size(res: ResourcesConfig, fits_per_round: int) -> int:
    """Groups in the pool: ``resources.actors``, or as many as the cluster holds, at most
    ``fits_per_round`` (more would sit idle)."""
    if res.actors is not None:
        return res.actors
    groups = fitting_groups(res)
    if groups is None:  # the actors ask for no CPU and no GPU: nothing bounds them but the cohort
        return fits_per_round
    if groups < 1:
        have = cluster_totals()
        raise SchedulingError(
            f"resources.actors is unset (size the pool from the cluster), but not even one client "
            f"group fits: a group needs {_per_group(res)}, and the cluster has {have['CPU']:g} CPU and "
            f"{have['GPU']:g} GPU (an actor must fit on one node). Lower resources.cpus_per_actor, "
            f"resources.gpus_per_actor or resources.actors_per_client, or add nodes.")
    size = min(groups, fits_per_round)
    logger.info("pool size derived from the cluster: %d group(s) of %d actor(s) (%d fit, %d fits per "
                "round)", size, res.actors_per_client, groups, fits_per_round)
    return size


def check_capacity(resources: ResourcesConfig, groups: int | None = None) -> None:
    """Fail fast when the cluster's totals cannot hold the requested actors at all."""
    groups = resources.actors if groups is None else groups
    count = groups * resources.actors_per_client
    what = (f"{groups} groups × {resources.actors_per_client} actors" if resources.actors_per_client > 1
            else f"{count} actors")
    cluster = ray.cluster_resources()
    need_cpu = count * resources.cpus_per_actor
    need_gpu = count * resources.gpus_per_actor
    have_cpu, have_gpu = cluster.get("CPU", 0.0), cluster.get("GPU", 0.0)
    problems = []
    if need_cpu > have_cpu + 1e-9:
        problems.append(f"{what} × {resources.cpus_per_actor} CPU = {need_cpu:g} CPU "
                        f"but the cluster has {have_cpu:g}")
    if need_gpu > have_gpu + 1e-9:
        problems.append(f"{what} × {resources.gpus_per_actor} GPU = {need_gpu:g} GPU "
                        f"but the cluster has {have_gpu:g}")
    if problems:
        raise SchedulingError("the client actor pool does not fit: " + "; ".join(problems) + ". " + _LOWER)


@dataclass
class FitOutcome:
    """What came back from one round's fits."""

    reports: list[FitReport] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)  # ObjectRefs, aligned with reports
    failures: list[ClientFailure] = field(default_factory=list)

    def in_cohort_order(self, tasks: Sequence[FitTask]) -> FitOutcome:
        """The same outcome with results and failures in the order the tasks were dispatched.

        Fits finish in whatever order the actors happen to run; summing float32 updates in that order
        would make the aggregate differ in its last bits from run to run (and break exact resume).
        """
        rank = {task.client_id: i for i, task in enumerate(tasks)}
        pairs = sorted(zip(self.reports, self.params), key=lambda pair: rank[pair[0].client_id])
        return FitOutcome(reports=[r for r, _ in pairs], params=[p for _, p in pairs],
                          failures=sorted(self.failures, key=lambda f: rank[f.client_id]))


class ActorPool:
    """A fixed number of :class:`~fedray.engine.group.ActorGroup` s of :class:`ClientActor` s."""

    def __init__(self, resources: ResourcesConfig, setup: ClientSetup, train_ref: Any, eval_ref: Any,
                 fits_per_round: int, fit_retries: int = 0, start_timeout_s: float = 300.0,
                 actor_cls: type = ClientActor) -> None:
        """``fits_per_round`` (the run mode's) caps a pool sized from the cluster; a fit whose actor
        dies is retried ``fit_retries`` times (``federation.fit_retries``)."""
        size = pool_size(resources, fits_per_round)
        check_capacity(resources, size)
        self.retries = fit_retries
        # Kept to build a replacement when a group dies (its actors rebuild their models from the setup).
        self._new_group = lambda: ActorGroup(actor_cls, (setup, train_ref, eval_ref), resources)
        self.groups = [self._new_group() for _ in range(size)]
        self.restarts = 0
        self.info = self._wait_ready(start_timeout_s, resources)

    @property
    def actors(self) -> list[Any]:
        """Every client actor, group by group (rank 0 first)."""
        return [member for group in self.groups for member in group.members]

    def _wait_ready(self, timeout_s: float, res: ResourcesConfig) -> list[dict[str, Any]]:
        described = [actor.describe.remote() for actor in self.actors]
        joined = [ref for group in self.groups for ref in group.joined]
        ready, pending = ray.wait(described + joined, num_returns=len(described) + len(joined),
                                  timeout=timeout_s)
        if pending:
            raise SchedulingError(
                f"{len(pending)} of {len(described) + len(joined)} client actor start-up calls did not "
                f"finish within {timeout_s:.0f} s. Requested per group: {_per_group(res)}; cluster "
                f"available now: {ray.available_resources()}. {_LOWER}")
        try:
            info = ray.get(described, timeout=timeout_s)
        except ray.exceptions.RayActorError as exc:
            raise ModelError(f"a client actor failed while building its model: "
                             f"{_root_cause(exc)}") from exc
        try:
            ray.get(joined, timeout=timeout_s)
        except ray.exceptions.RayError as exc:
            raise SchedulingError(f"a client group could not form its process group: "
                                  f"{_root_cause(exc)}") from exc
        return info

    def initial_adapter(self, timeout_s: float = 120.0) -> Any:
        return ray.get(self.actors[0].initial_adapter.remote(), timeout=timeout_s)

    def fit(self, tasks: Sequence[FitTask], global_ref: Any, timeout_s: float,
            start_refs: Mapping[int, Any] | None = None) -> FitOutcome:
        """Run ``tasks`` over the pool; fits not done by the deadline become failures.

        Every fit starts from ``global_ref``, or from ``start_refs[client_id]`` where given. A fit whose
        actor (any member of its group) dies is retried on another group up to
        ``federation.fit_retries`` times (fits are pure functions of (round, client), so a retry gives
        the same result), else it is a failure; the dead group is replaced by a new one that rebuilds
        its models.
        """
        deadline = time.monotonic() + timeout_s
        queue = [(task, 0) for task in tasks]
        in_flight: dict[Any, GroupFit] = {}  # each member's report ref → its group's fit
        idle = list(self.groups)
        outcome = FitOutcome()
        while queue or in_flight:
            while queue and idle:
                group, (task, attempt) = idle.pop(0), queue.pop(0)
                fit = group.fit(task, (start_refs or {}).get(task.client_id, global_ref), attempt)
                in_flight.update(dict.fromkeys(fit.pending, fit))
            remaining = deadline - time.monotonic()
            done, _ = ray.wait(list(in_flight), num_returns=1, timeout=max(0.0, remaining))
            if not done:
                self._expire(in_flight, [t for t, _ in queue], outcome, timeout_s)
                break
            fit = in_flight.pop(done[0])
            fit.pending.discard(done[0])
            error = _error_of(done[0])
            if error is None and fit.pending:
                continue  # the group's other ranks are still training
            for ref in fit.pending:  # a member failed: the others may never return
                in_flight.pop(ref, None)
            retry = fit.attempt < self.retries
            died, broken = self._collect(fit, error, outcome, retry)
            group = self._replace(fit.group) if died or broken else fit.group
            if died and retry:
                queue.append((fit.task, fit.attempt + 1))
            idle.append(group)
        return outcome.in_cohort_order(tasks)

    def _replace(self, dead: ActorGroup) -> ActorGroup:
        """Swap a dead group for a fresh one (built asynchronously; Ray queues calls until it is up)."""
        dead.kill()
        fresh = self._new_group()
        self.groups[self.groups.index(dead)] = fresh
        self.restarts += 1
        logger.warning("a client actor died; started a replacement %s (%d restarts so far)",
                       "group" if fresh.size > 1 else "actor", self.restarts)
        return fresh

    @staticmethod
    def _collect(fit: GroupFit, error: BaseException | None, outcome: FitOutcome,
                 retry: bool) -> tuple[bool, bool]:
        """Record the fit's report or failure; return (an actor died, the group must be replaced)."""
        task = fit.task
        if isinstance(error, ray.exceptions.RayActorError):
            logger.error("client %d's actor died in round %d%s", task.client_id, task.server_round,
                         " (retrying on another actor)" if retry else "", exc_info=error)
            if not retry:
                outcome.failures.append(ClientFailure(task.client_id, f"actor died: {_root_cause(error)}"))
            return True, True
        if error is not None:  # a client's exception must not end the round for the others
            logger.error("client %d failed in round %d", task.client_id, task.server_round,
                         exc_info=error)
            outcome.failures.append(ClientFailure(task.client_id, f"{type(error).__name__}: {error}"))
            return False, fit.group.size > 1  # its other ranks may be stuck in a collective
        outcome.reports.append(ray.get(fit.report_ref))
        outcome.params.append(fit.params_ref)
        return False, False

    def _expire(self, in_flight: dict[Any, GroupFit], queue: list[FitTask], outcome: FitOutcome,
                timeout_s: float) -> None:
        reason = f"timed out: not done within federation.round_timeout_s={timeout_s:g}"
        for ref in in_flight:
            ray.cancel(ref)
        for fit in dict.fromkeys(in_flight.values()):
            outcome.failures.append(ClientFailure(fit.task.client_id, reason))
            if fit.group.size > 1:  # cancelled ranks leave the others in a collective
                self._replace(fit.group)
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
        for group in self.groups:
            group.kill()
        self.groups = []


def _error_of(ref: Any) -> BaseException | None:
    """The exception a finished call raised, or None."""
    try:
        ray.get(ref, timeout=0)
    except Exception as exc:  # what it raised is the answer, not a failure of this function
        return exc
    return None


def _root_cause(exc: BaseException) -> str:
    """The innermost exception's message: a fedray error raised in an actor keeps its own words."""
    cause = getattr(exc, "cause", None) or exc.__cause__
    while cause is not None:
        if isinstance(cause, FedRayError):
            return str(cause)
        cause = getattr(cause, "cause", None) or cause.__cause__
    return str(exc).strip().splitlines()[-1]
