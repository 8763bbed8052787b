"""The client actor pool: sized from declared resources, fed with fits over the round's cohort.

The pool holds groups of ``resources.actors_per_client`` actors (:mod:`fedray.engine.group`; a group of
one is a plain actor). Fits are queued on the groups a few at a time (:mod:`fedray.engine.dispatch`), so
a pool of G groups runs a cohort of any size with G fits running and the next ones already waiting in
the actors' queues. ``resources.actors`` sets G, or, when None, the cluster does:
as many groups as its nodes hold, capped at the fits a round runs. Every wait has a deadline: Ray
leaves an unschedulable request pending forever, so a pool that cannot start within
``start_timeout_s`` raises an error that says what was asked and what the cluster has.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Mapping, Sequence

import ray

from fedray.config.schema import ResourcesConfig
from fedray.engine.client_setup import ClientSetup
from fedray.engine.dispatch import FitOutcome, FitRound, OnResult, root_cause
from fedray.engine.group import ActorGroup, cluster_totals, fitting_groups
from fedray.engine.remote import ClientActor
from fedray.engine.tasks import EvalRequest, EvalShard, FitTask
from fedray.errors import DataError, ModelError, SchedulingError

logger = logging.getLogger(__name__)

#: Fits queued per actor group at once: the one running and the next (see :mod:`fedray.engine.dispatch`).
QUEUE_DEPTH = 2

__all__ = ["ActorPool", "FitOutcome", "QUEUE_DEPTH", "check_capacity", "pool_size"]

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


class ActorPool:
    """A fixed number of :class:`~fedray.engine.group.ActorGroup` s of :class:`ClientActor` s."""

    def __init__(self, resources: ResourcesConfig, setup: ClientSetup, train_ref: Any = None,
                 eval_ref: Any = None, fits_per_round: int = 1, fit_retries: int = 0,
                 start_timeout_s: float = 300.0, actor_cls: type | None = None, wait: bool = True,
                 queue_depth: int = QUEUE_DEPTH) -> None:
        """``fits_per_round`` (the run mode's) caps a pool sized from the cluster; a fit whose actor
        dies is retried ``fit_retries`` times (``federation.fit_retries``).

        The actors start building their models at once. Without data (``train_ref`` None) they wait
        for :meth:`attach_data`; with ``wait=False`` the caller does other work (the engine builds the
        data meanwhile) and then calls :meth:`wait_ready`.
        """
        size = pool_size(resources, fits_per_round)
        check_capacity(resources, size)
        self.retries = fit_retries
        self.depth = queue_depth
        self.start_timeout_s = start_timeout_s
        self._resources, self._setup = resources, setup
        self._actor_cls = actor_cls or ClientActor  # the stand-in: no torch here
        self._data = (train_ref, eval_ref)
        self.groups = [self._new_group() for _ in range(size)]
        self.restarts = 0
        self._described = [actor.describe.remote() for actor in self.actors]
        self._joined = [ref for group in self.groups for ref in group.joined]
        self._attached: list[Any] = []
        self.info: list[dict[str, Any]] = []
        if wait:
            self.wait_ready()

    def _new_group(self) -> ActorGroup:
        # Also builds a replacement when a group dies (its actors rebuild their models from the setup,
        # with the data the pool holds by then).
        return ActorGroup(self._actor_cls, (self._setup, *self._data), self._resources)

    @property
    def actors(self) -> list[Any]:
        """Every client actor, group by group (rank 0 first)."""
        return [member for group in self.groups for member in group.members]

    def attach_data(self, train_ref: Any, eval_ref: Any,
                    train_needs: Mapping[int, Sequence[int]] | None = None,
                    cache_dir: str | None = None) -> None:
        """Hand the actors started without data their training table and eval tables (ObjectRefs), and
        the training rows to prepare now (mask → row positions; the rest is prepared when first used)."""
        self._data = (train_ref, eval_ref)
        self._attached = [actor.set_data.remote(train_ref, eval_ref, train_needs, cache_dir)
                          for actor in self.actors]

    def wait_ready(self) -> list[dict[str, Any]]:
        """Block until every actor has built its model (and joined its group, and taken its data)."""
        timeout_s, res = self.start_timeout_s, self._resources
        calls = self._described + self._joined + self._attached
        ready, pending = ray.wait(calls, num_returns=len(calls), timeout=timeout_s)
        if pending:
            raise SchedulingError(
                f"{len(pending)} of {len(calls)} client actor start-up calls did not "
                f"finish within {timeout_s:.0f} s. Requested per group: {_per_group(res)}; cluster "
                f"available now: {ray.available_resources()}. {_LOWER}")
        try:
            self.info = ray.get(self._described, timeout=timeout_s)
        except ray.exceptions.RayActorError as exc:
            raise ModelError(f"a client actor failed while building its model: "
                             f"{root_cause(exc)}") from exc
        try:
            ray.get(self._attached, timeout=timeout_s)
        except ray.exceptions.RayError as exc:
            raise DataError(f"a client actor failed while taking its data: {root_cause(exc)}") from exc
        try:
            ray.get(self._joined, timeout=timeout_s)
        except ray.exceptions.RayError as exc:
            raise SchedulingError(f"a client group could not form its process group: "
                                  f"{root_cause(exc)}") from exc
        return self.info

    def initial_adapter_ref(self) -> Any:
        """The initial adapter (rank 0 of the first group builds it) as an ObjectRef."""
        return self.actors[0].initial_adapter.remote()

    def initial_adapter(self, timeout_s: float = 120.0) -> Any:
        return ray.get(self.initial_adapter_ref(), timeout=timeout_s)

    def fit(self, tasks: Sequence[FitTask], global_ref: Any, timeout_s: float,
            start_refs: Mapping[int, Any] | None = None, objectives: Mapping[int, Any] | None = None,
            on_result: OnResult | None = None, fits_per_call: int = 1) -> FitOutcome:
        """Run ``tasks`` over the pool (see :mod:`fedray.engine.dispatch`); fits not done by the
        deadline become failures.

        Every fit starts from ``global_ref``, or from ``start_refs[client_id]`` where given, with the
        objective ``objectives[client_id]`` (an ObjectRef) where given, else the task's own. A fit whose
        actor (any member of its group) dies is retried on another group up to
        ``federation.fit_retries`` times (fits are pure functions of (round, client), so a retry gives
        the same result), else it is a failure; the dead group is replaced by a new one that rebuilds
        its models. ``on_result`` sees each call's result refs as soon as it finishes. A call carries up
        to ``fits_per_call`` fits (:mod:`fedray.engine.chunking`); the results never depend on it.
        """
        starts, chosen = start_refs or {}, objectives or {}

        def start(task: FitTask) -> tuple[Any, Any]:
            return starts.get(task.client_id, global_ref), chosen.get(task.client_id)

        return FitRound(self, start, self.depth, on_result, fits_per_call).run(tasks, timeout_s)

    def replace(self, dead: ActorGroup) -> ActorGroup:
        """Swap a dead group for a fresh one (built asynchronously; Ray queues calls until it is up)."""
        dead.kill()
        fresh = self._new_group()
        self.groups[self.groups.index(dead)] = fresh
        self.restarts += 1
        logger.warning("a client actor died; started a replacement %s (%d restarts so far)",
                       "group" if fresh.size > 1 else "actor", self.restarts)
        return fresh

    def evaluate(self, state_ref: Any, set_name: str, num_rows: int, timeout_s: float,
                 condition: str = "full", score_options: bool = False,
                 on_rows: Callable[[int], None] | None = None) -> EvalShard:
        """Evaluate rows 0..num_rows-1 of one eval set, sharded over the actors in contiguous blocks;
        ``on_rows`` hears each shard's row count as it comes back (for progress displays)."""
        bounds = [round(i * num_rows / len(self.actors)) for i in range(len(self.actors) + 1)]
        refs = {actor.evaluate.remote(state_ref, EvalRequest(set_name, tuple(range(lo, hi)), condition,
                                                             score_options)): hi - lo
                for actor, lo, hi in zip(self.actors, bounds, bounds[1:]) if hi > lo}
        deadline, pending = time.monotonic() + timeout_s, list(refs)
        while on_rows is not None and pending:
            done, pending = ray.wait(pending, num_returns=1, timeout=max(0.0, deadline - time.monotonic()))
            if not done:
                break  # the get below raises the timeout
            on_rows(refs[done[0]])
        shards: list[EvalShard] = ray.get(list(refs), timeout=max(0.0, deadline - time.monotonic()))
        scores = [s for shard in shards for s in shard.option_logprobs or []] if score_options else None
        return EvalShard(generations=[g for shard in shards for g in shard.generations],
                         option_logprobs=scores)

    def shutdown(self) -> None:
        for group in self.groups:
            group.kill()
        self.groups = []
